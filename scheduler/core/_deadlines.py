"""A min-heap of deadlines with lazy deletion.

Updating or removing a key never searches the heap: the new entry is pushed
and the old one becomes stale, recognised by its sequence number when it
reaches the top. ``pop_due(now)`` therefore costs O((k + s) log n) for k due
entries and s stale heads, and the heap is compacted when stale entries
outnumber live ones, so s stays amortised O(1) per update.

``operations`` counts heap pushes and pops; ``pops`` counts the pops alone and
``stale_pops`` those that only discarded an outdated entry, so tests can check
the bound.
"""

from __future__ import annotations

import heapq
import itertools
from typing import final

from ._events import Expiry

_COMPACT_SLACK = 1024


@final
class DeadlineQueue:
    __slots__ = ("_current", "_heap", "_seq", "operations", "pops", "stale_pops")

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, str]] = []
        self._current: dict[str, tuple[int, Expiry]] = {}
        self._seq = itertools.count()
        self.operations = 0
        self.pops = 0
        self.stale_pops = 0

    def __len__(self) -> int:
        return len(self._current)

    def __contains__(self, key: object) -> bool:
        return key in self._current

    def ids(self) -> list[str]:
        return list(self._current)

    def get(self, key: str) -> Expiry | None:
        entry = self._current.get(key)
        return None if entry is None else entry[1]

    def set(self, key: str, expiry: Expiry | None) -> None:
        """Schedule ``key`` at ``expiry`` (None removes it)."""
        if expiry is None:
            self.discard(key)
            return
        old = self._current.get(key)
        if old is not None and old[1] == expiry:
            return
        seq = next(self._seq)
        self._current[key] = (seq, expiry)
        heapq.heappush(self._heap, (expiry.at, seq, key))
        self.operations += 1
        if len(self._heap) > 2 * len(self._current) + _COMPACT_SLACK:
            self._compact()

    def discard(self, key: str) -> None:
        self._current.pop(key, None)

    def peek(self) -> float | None:
        """The earliest live deadline, or None."""
        self._drop_stale_heads()
        return self._heap[0][0] if self._heap else None

    def pop_due(self, now: float, limit: int | None = None) -> list[tuple[str, Expiry]]:
        """Remove and return every entry whose deadline is <= ``now``, earliest first.

        With ``limit``, at most that many (the rest stay, still due).
        """
        due: list[tuple[str, Expiry]] = []
        heap = self._heap
        while heap and heap[0][0] <= now and (limit is None or len(due) < limit):
            _, seq, key = heapq.heappop(heap)
            self.operations += 1
            self.pops += 1
            entry = self._current.get(key)
            if entry is not None and entry[0] == seq:
                del self._current[key]
                due.append((key, entry[1]))
            else:
                self.stale_pops += 1
        return due

    def heap_size(self) -> int:
        """Entries in the heap, stale ones included (for tests and metrics)."""
        return len(self._heap)

    def _drop_stale_heads(self) -> None:
        heap = self._heap
        while heap:
            _, seq, key = heap[0]
            entry = self._current.get(key)
            if entry is not None and entry[0] == seq:
                return
            heapq.heappop(heap)
            self.operations += 1
            self.pops += 1
            self.stale_pops += 1

    def _compact(self) -> None:
        self._heap = [(expiry.at, seq, key) for key, (seq, expiry) in self._current.items()]
        heapq.heapify(self._heap)
