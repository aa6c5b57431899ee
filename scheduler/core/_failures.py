"""What children report about their parents: bounded blocklists and failures counted once.

A child's ``reschedule`` names the parents that failed it. Left unchecked, those
names are a way in for one host to make the scheduler keep memory (any string, as
many as it likes) and to ruin an honest parent's reputation (each of its peers
reporting the same parent). So:

* a name counts only if it is a live peer of the child's task that the scheduler
  handed to that child (:class:`Offered`: the last :data:`MAX_OFFERED_PARENTS`
  parents handed to it), and the record's own id string is kept, never the client's;
* a child's blocklist holds at most :data:`MAX_BLOCKED_PARENTS` parents (the oldest
  go first), and both go with the child;
* a failure is charged to a parent's host at most once per reporting host within
  ``window`` seconds (:class:`FailureReports`), however many of that host's peers
  report it.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from typing import Final, final

#: Parents remembered per child as handed out to it (a blocklist may name only these).
MAX_OFFERED_PARENTS: Final = 64
#: Parents one child's blocklist holds at most; the oldest entry goes first.
MAX_BLOCKED_PARENTS: Final = 64


@final
class Offered:
    """Per child, the parents handed out to it, and its blocklist; both bounded."""

    __slots__ = ("_blocked", "_offered")

    def __init__(self) -> None:
        # Dicts as insertion-ordered sets: the oldest entry is the first key.
        self._offered: dict[str, dict[str, None]] = {}
        self._blocked: dict[str, dict[str, None]] = {}

    def hand_out(self, child_id: str, parent_ids: Iterable[str]) -> None:
        """Remember that these parents were handed to the child."""
        _remember(self._offered, child_id, parent_ids, MAX_OFFERED_PARENTS)

    def was_offered(self, child_id: str, parent_id: str) -> bool:
        return parent_id in self._offered.get(child_id, ())

    def block(self, child_id: str, parent_id: str) -> None:
        """Never hand ``parent_id`` to the child again (while it is among the newest)."""
        _remember(self._blocked, child_id, (parent_id,), MAX_BLOCKED_PARENTS)

    def blocked(self, child_id: str) -> dict[str, None] | tuple[()]:
        """The child's blocklist (a container: ``in`` is what a decision asks of it)."""
        return self._blocked.get(child_id, ())

    def forget(self, child_id: str) -> None:
        self._offered.pop(child_id, None)
        self._blocked.pop(child_id, None)

    def sizes(self) -> tuple[int, int]:
        """Entries held in all: ``(offered, blocked)`` (for tests and the invariants)."""
        return (
            sum(map(len, self._offered.values())),
            sum(map(len, self._blocked.values())),
        )


def _remember(
    index: dict[str, dict[str, None]], child_id: str, parent_ids: Iterable[str], limit: int
) -> None:
    entries = index.setdefault(child_id, {})
    for parent_id in parent_ids:
        entries.pop(parent_id, None)  # moves to the newest end
        entries[parent_id] = None
    while len(entries) > limit:
        del entries[next(iter(entries))]


@final
class FailureReports:
    """Which (parent host, reporting host) pairs were charged a failure within ``window``.

    Memory is one entry per pair charged in the last ``window`` seconds; a report
    is possible only for an edge the scheduler handed out, so the pairs are bounded
    by the hosts that really fed each other.
    """

    __slots__ = ("_charged", "_order", "window")

    def __init__(self, window: float) -> None:
        self.window = window
        self._charged: dict[tuple[str, str], float] = {}
        self._order: deque[tuple[float, tuple[str, str]]] = deque()

    def charge(self, parent_host_id: str, reporter_host_id: str, now: float) -> bool:
        """True if this report is the pair's first in the window (charge it), else False."""
        self._expire(now)
        key = (parent_host_id, reporter_host_id)
        if key in self._charged:
            return False
        self._charged[key] = now
        self._order.append((now, key))
        return True

    def __len__(self) -> int:
        return len(self._charged)

    def _expire(self, now: float) -> None:
        order, charged = self._order, self._charged
        while order and order[0][0] <= now - self.window:
            at, key = order.popleft()
            if charged.get(key) == at:
                del charged[key]
