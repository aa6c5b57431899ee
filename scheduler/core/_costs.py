"""Per peer, a bounded window of its piece costs and whether it is a bad node now.

A ``pieces_finished`` report of ``n`` pieces that cost ``c`` seconds adds one
sample, ``c / n`` (the cost per piece of that report). The verdict of
:func:`~._badnode.is_bad_node` is recomputed when a sample arrives, so a
decision reads it in O(1).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Final, final

from ._badnode import is_bad_node

#: Samples kept per peer (the three-sigma rule needs 30).
COST_WINDOW: Final = 64


@final
class CostWindows:
    def __init__(self, size: int = COST_WINDOW) -> None:
        self._size = size
        self._costs: dict[str, deque[float]] = {}
        self._bad: set[str] = set()
        #: Whether the peer is a bad node now: the set's own membership test (one C call,
        #: asked of every candidate of every decision).
        self.is_bad: Callable[[str], bool] = self._bad.__contains__

    def record(self, peer_id: str, cost: float, pieces: int) -> None:
        """One report: ``pieces`` pieces that took ``cost`` seconds together."""
        if pieces <= 0:
            return
        window = self._costs.get(peer_id)
        if window is None:
            window = self._costs[peer_id] = deque(maxlen=self._size)
        window.append(cost / pieces)
        if is_bad_node(window):
            self._bad.add(peer_id)
        else:
            self._bad.discard(peer_id)

    def costs_of(self, peer_id: str) -> tuple[float, ...]:
        return tuple(self._costs.get(peer_id, ()))

    def forget(self, peer_id: str) -> None:
        self._costs.pop(peer_id, None)
        self._bad.discard(peer_id)
