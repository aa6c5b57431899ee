from __future__ import annotations

from collections.abc import Mapping
from typing import Any, final

from ..core import Expiry, Reason, StateView, Task, parse_duration, section_reader
from ..hookspecs import hookimpl

DEFAULT_TASK_IDLE_TTL = 10 * 60.0


@final
class TaskIdleTTL:
    """A task with no peers is reclaimed ``task_idle_ttl`` after its last peer left.

    Config ``[plugins.task_idle]``: ``task_idle_ttl`` (default ``10m``).
    """

    name = "task_idle"

    def __init__(self) -> None:
        self.task_idle_ttl = DEFAULT_TASK_IDLE_TTL

    @hookimpl
    def scheduler_configure(self, config: Mapping[str, Mapping[str, Any]]) -> None:
        section = section_reader(config, self.name, {"task_idle_ttl"})
        self.task_idle_ttl = parse_duration(
            section.get("task_idle_ttl", self.task_idle_ttl),
            f"plugins.{self.name}.task_idle_ttl",
        )

    @hookimpl
    def scheduler_task_expiry(self, task: Task, view: StateView) -> Expiry | None:
        if view.peer_count_of_task(task.id):
            return None
        return Expiry(task.updated_at + self.task_idle_ttl, Reason.IDLE)
