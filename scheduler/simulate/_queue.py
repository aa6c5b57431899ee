"""The simulator's clock: a discrete-event queue in virtual time.

Events with the same time run in the order they were scheduled (a sequence
number breaks ties), so a run is a pure function of its seed.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable
from typing import final

#: What the queue holds: a handler and the one argument it is called with.
Action = Callable[[float], None]


@final
class EventQueue:
    """A min-heap of ``(at, seq, action)``; ``pop`` returns the earliest, FIFO among equals."""

    __slots__ = ("_heap", "_seq", "now")

    def __init__(self, now: float = 0.0) -> None:
        self._heap: list[tuple[float, int, Action]] = []
        self._seq = 0
        #: The time of the event popped last (virtual seconds).
        self.now = now

    def __len__(self) -> int:
        return len(self._heap)

    def schedule(self, at: float, action: Action) -> None:
        """Run ``action(at)`` at ``at``; never in the past."""
        if at < self.now:
            raise ValueError(f"cannot schedule at {at!r}, before now ({self.now!r})")
        self._seq += 1
        heapq.heappush(self._heap, (at, self._seq, action))

    def peek(self) -> float | None:
        """The time of the next event, or None when the queue is empty."""
        return self._heap[0][0] if self._heap else None

    def pop(self) -> tuple[float, Action]:
        """Remove the next event, advance ``now`` to its time and return it."""
        at, _, action = heapq.heappop(self._heap)
        self.now = at
        return at, action
