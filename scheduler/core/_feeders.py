"""Per task, the peers that can feed a child now: the pool decisions sample from.

A feeder is a peer on a connected host that holds at least one piece, goes to
the origin, or has succeeded. Keeping them in an :class:`IndexedSet` per task
makes "can anybody feed this task?" O(1) and a random sample of ``k``
candidates O(k), whatever the number of peers in the task.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Final, final

from ._lifecycle import PeerState
from ._model import Peer

#: States in which a peer serves pieces (with at least one piece, unless it goes to the origin).
FEEDING_STATES: Final = frozenset(
    {PeerState.RUNNING, PeerState.BACK_TO_SOURCE, PeerState.SUCCEEDED}
)


def can_feed(peer: Peer) -> bool:
    """The peer's own part of being a feeder (its host must be connected too)."""
    if peer.state is PeerState.RUNNING:
        return len(peer.finished_pieces) > 0
    return peer.state in FEEDING_STATES


@final
class IndexedSet:
    """Ids with O(1) add, discard, membership and indexing (a list plus positions)."""

    __slots__ = ("_items", "_position")

    def __init__(self) -> None:
        self._items: list[str] = []
        self._position: dict[str, int] = {}

    def add(self, item: str) -> bool:
        if item in self._position:
            return False
        self._position[item] = len(self._items)
        self._items.append(item)
        return True

    def discard(self, item: str) -> bool:
        """Remove ``item`` by moving the last one into its place."""
        index = self._position.pop(item, None)
        if index is None:
            return False
        last = self._items.pop()
        if index < len(self._items):
            self._items[index] = last
            self._position[last] = index
        return True

    def sample(self, rng: random.Random, k: int) -> list[str]:
        """Up to ``k`` distinct items at random: O(k) for a large set."""
        items = self._items
        count = len(items)
        if count <= 2 * k:
            return rng.sample(items, min(k, count))
        # k << count: draw indexes until k distinct ones (few rejections), O(k).
        random_ = rng.random
        picked: dict[int, None] = {}
        while len(picked) < k:
            picked[int(random_() * count)] = None
        return [items[i] for i in picked]

    def __contains__(self, item: object) -> bool:
        return item in self._position

    def __len__(self) -> int:
        return len(self._items)

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._items))


@final
class Feeders:
    """The feeders of every task; membership is recomputed by :meth:`refresh`."""

    def __init__(self) -> None:
        self._by_task: dict[str, IndexedSet] = {}
        self._task_of: dict[str, str] = {}

    def refresh(self, peer: Peer, host_connected: bool) -> bool:
        """Add or remove ``peer`` as its state and host say; True if it changed."""
        if host_connected and can_feed(peer):
            return self.add(peer)
        return self.discard(peer.id)

    def add(self, peer: Peer) -> bool:
        members = self._by_task.setdefault(peer.task_id, IndexedSet())
        self._task_of[peer.id] = peer.task_id
        return members.add(peer.id)

    def discard(self, peer_id: str) -> bool:
        task_id = self._task_of.pop(peer_id, None)
        if task_id is None:
            return False
        members = self._by_task[task_id]
        members.discard(peer_id)
        if not members:
            del self._by_task[task_id]
        return True

    def count(self, task_id: str) -> int:
        """O(1): how many peers can feed the task now."""
        members = self._by_task.get(task_id)
        return 0 if members is None else len(members)

    def sample(self, task_id: str, rng: random.Random, k: int) -> list[str]:
        members = self._by_task.get(task_id)
        return [] if members is None else members.sample(rng, k)

    def __contains__(self, peer_id: object) -> bool:
        return peer_id in self._task_of

    def members(self, task_id: str) -> frozenset[str]:
        return frozenset(self._by_task.get(task_id, ()))
