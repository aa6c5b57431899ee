from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar, Final, final

from ..core import (
    ACTIVE_PEER_STATES,
    Reason,
    RecordKind,
    StateView,
    Verdict,
)
from ..hookspecs import hookimpl
from ..settings import Section, integer

SETTINGS: Final = Section.plugin(
    "capacity",
    integer(
        "max_peers_per_task",
        None,
        "most peers per task; the peer sweep evicts the least recently updated idle ones",
        details="(reason `capacity`), finished or failed peers first, never downloading ones.",
        minimum=1,
        optional=True,
        unset="off",
    ),
)


@final
class Capacity:
    """Cap the number of peers per task, applied by the periodic peer sweep.

    Off by default. When a task has more than ``max_peers_per_task`` peers,
    the sweep evicts the least recently updated peers that are not
    downloading (finished or failed ones first), with reason ``capacity``.

    Config ``[plugins.capacity]``: see :data:`SETTINGS`.
    """

    name = "capacity"
    settings: ClassVar[Section] = SETTINGS
    max_peers_per_task: int | None

    def __init__(self) -> None:
        SETTINGS.init(self)

    @hookimpl
    def scheduler_configure(self, config: Mapping[str, Mapping[str, Any]]) -> None:
        SETTINGS.configure(self, config)

    @hookimpl
    def scheduler_sweep(self, kind: RecordKind, view: StateView) -> list[Verdict]:
        return self.sweep(kind, view)

    def sweep(self, kind: RecordKind, view: StateView) -> list[Verdict]:
        """Verdicts for the least recently updated idle peers of each task over the cap."""
        cap = self.max_peers_per_task
        if cap is None or kind is not RecordKind.PEER:
            return []
        verdicts: list[Verdict] = []
        for task in view.tasks():
            peers = view.peers_of_task(task.id)
            excess = len(peers) - cap
            if excess <= 0:
                continue
            idle = sorted(
                (p for p in peers if p.state not in ACTIVE_PEER_STATES),
                key=lambda p: (p.updated_at, p.id),
            )
            verdicts.extend(Verdict(RecordKind.PEER, p.id, Reason.CAPACITY) for p in idle[:excess])
        return verdicts
