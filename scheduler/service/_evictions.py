"""The recent evictions: the last :data:`RECENT_EVICTIONS` of each record kind.

Every eviction the service applies is recorded here (one append, O(1)), whoever
made it: a GC loop, a session's ``leave_host``, the admin API. ``GET
/api/v1/evictions`` and the console read the same records. One ring per kind, so
that a task's thousands of peer evictions never push the host evictions out.
"""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Callable
from typing import Any, Final, final

from ..core import Eviction, RecordKind

#: Evictions kept per record kind.
RECENT_EVICTIONS: Final = 200


@final
class EvictionLog:
    """The last ``size`` evictions of each kind, and how many were recorded in all."""

    def __init__(self, size: int = RECENT_EVICTIONS) -> None:
        if size < 1:
            raise ValueError(f"size must be >= 1, got {size!r}")
        self.size = size
        self._rings: dict[RecordKind, deque[Eviction]] = {
            kind: deque(maxlen=size) for kind in RecordKind
        }
        #: Every eviction recorded since start-up (the console sees it move).
        self.total = 0

    def record(self, event: Eviction) -> None:
        self._rings[event.kind].append(event)
        self.total += 1

    def recent(self, kind: RecordKind | None = None, limit: int | None = None) -> list[Eviction]:
        """The kept evictions of ``kind`` (None: every kind), newest first, at most ``limit``."""
        rings = [self._rings[kind]] if kind is not None else list(self._rings.values())
        # Each ring is in eviction order, and eviction times never go back.
        merged = heapq.merge(*(reversed(ring) for ring in rings), key=_at, reverse=True)
        out: list[Eviction] = []
        for event in merged:
            if limit is not None and len(out) >= limit:
                break
            out.append(event)
        return out


def _at(event: Eviction) -> float:
    return event.at


def eviction_json(event: Eviction, wall_time: Callable[[float], float]) -> dict[str, Any]:
    """One eviction as ``GET /api/v1/evictions`` lists it (times in Unix seconds)."""
    return {
        "kind": event.kind.value,
        "id": event.record_id,
        "reason": event.reason,
        "at": wall_time(event.at),
        "detection_latency": event.detection_latency,
        "lateness": event.lateness,
        "host_id": event.host_id,
        "hostname": event.hostname,
        "task_id": event.task_id,
    }
