from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar, Final, final

from ..core import Expiry, Reason, StateView, Task
from ..hookspecs import hookimpl
from ..settings import Section, duration

SETTINGS: Final = Section.plugin(
    "task_idle",
    duration(
        "task_idle_ttl",
        10 * 60,
        "a task with no peers is evicted this long after its last change",
        details="(reason `idle`). A task with peers has no deadline.",
    ),
)


@final
class TaskIdleTTL:
    """A task with no peers is reclaimed ``task_idle_ttl`` after its last peer left.

    Config ``[plugins.task_idle]``: see :data:`SETTINGS`.
    """

    name = "task_idle"
    settings: ClassVar[Section] = SETTINGS
    task_idle_ttl: float

    def __init__(self) -> None:
        SETTINGS.init(self)

    @hookimpl
    def scheduler_configure(self, config: Mapping[str, Mapping[str, Any]]) -> None:
        SETTINGS.configure(self, config)

    @hookimpl
    def scheduler_task_expiry(self, task: Task, view: StateView) -> Expiry | None:
        return self.task_expiry(task, view)

    def task_expiry(self, task: Task, view: StateView) -> Expiry | None:
        if view.peer_count_of_task(task.id):
            return None
        return Expiry(task.updated_at + self.task_idle_ttl, Reason.IDLE)
