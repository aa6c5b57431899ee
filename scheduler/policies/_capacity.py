from __future__ import annotations

from collections.abc import Mapping
from typing import Any, final

from ..core import (
    ACTIVE_PEER_STATES,
    ConfigError,
    Reason,
    RecordKind,
    StateView,
    Verdict,
    section_reader,
)
from ..hookspecs import hookimpl


@final
class Capacity:
    """Cap the number of peers per task, applied by the periodic peer sweep.

    Off by default. When a task has more than ``max_peers_per_task`` peers,
    the sweep evicts the least recently updated peers that are not
    downloading (finished or failed ones first), with reason ``capacity``.

    Config ``[plugins.capacity]``: ``max_peers_per_task`` (integer, default off).
    """

    name = "capacity"

    def __init__(self) -> None:
        self.max_peers_per_task: int | None = None

    @hookimpl
    def scheduler_configure(self, config: Mapping[str, Mapping[str, Any]]) -> None:
        section = section_reader(config, self.name, {"max_peers_per_task"})
        value = section.get("max_peers_per_task")
        if value is not None and (
            isinstance(value, bool) or not isinstance(value, int) or value < 1
        ):
            raise ConfigError(
                f"plugins.{self.name}.max_peers_per_task",
                f"expected a positive integer, got {value!r}",
            )
        self.max_peers_per_task = value

    @hookimpl
    def scheduler_sweep(self, kind: RecordKind, view: StateView) -> list[Verdict]:
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
