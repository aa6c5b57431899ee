"""Per task, the peers that can feed a child now: the pool decisions sample from.

A feeder is a peer on a connected host that holds at least one piece, goes to
the origin, or has succeeded. Keeping them in an :class:`IndexedSet` per task
makes "can anybody feed this task?" O(1) and a random sample of ``k``
candidates O(k), whatever the number of peers in the task.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Hashable, Iterator
from typing import Final, Generic, TypeVar, final

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


T = TypeVar("T")


def _itself(item: T) -> T:
    return item


@final
class IndexedSet(Generic[T]):
    """Items with O(1) add, discard, membership and indexing (a list plus positions).

    An item is known by its ``key`` (the item itself by default): :meth:`discard`
    and ``in`` take the key, :meth:`sample` and iteration give the items.
    """

    __slots__ = ("_items", "_key", "_position")

    def __init__(self, key: Callable[[T], Hashable] = _itself) -> None:
        self._key = key
        self._items: list[T] = []
        self._position: dict[Hashable, int] = {}

    def add(self, item: T) -> bool:
        key = self._key(item)
        if key in self._position:
            return False
        self._position[key] = len(self._items)
        self._items.append(item)
        return True

    def discard(self, key: Hashable) -> bool:
        """Remove the item known by ``key``, moving the last one into its place."""
        index = self._position.pop(key, None)
        if index is None:
            return False
        last = self._items.pop()
        if index < len(self._items):
            self._items[index] = last
            self._position[self._key(last)] = index
        return True

    def sample(self, rng: random.Random, k: int) -> list[T]:
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

    def __iter__(self) -> Iterator[T]:
        return iter(list(self._items))


@final
class Feeders:
    """The feeders of every task; membership is recomputed by :meth:`refresh`.

    It holds the peers themselves (the ledger's records, known by id), so that a
    decision's sample is its candidates, with no look-up by id.
    """

    def __init__(self) -> None:
        self._by_task: dict[str, IndexedSet[Peer]] = {}
        self._task_of: dict[str, str] = {}

    def refresh(self, peer: Peer, host_connected: bool) -> bool:
        """Add or remove ``peer`` as its state and host say; True if it changed."""
        if host_connected and can_feed(peer):
            return self.add(peer)
        return self.discard(peer.id)

    def add(self, peer: Peer) -> bool:
        members = self._by_task.get(peer.task_id)
        if members is None:
            members = self._by_task[peer.task_id] = IndexedSet(_peer_id)
        self._task_of[peer.id] = peer.task_id
        return members.add(peer)

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

    def sample(self, task_id: str, rng: random.Random, k: int) -> list[Peer]:
        members = self._by_task.get(task_id)
        return [] if members is None else members.sample(rng, k)

    def __contains__(self, peer_id: object) -> bool:
        return peer_id in self._task_of

    def members(self, task_id: str) -> frozenset[str]:
        """The ids of the task's feeders."""
        return frozenset(peer.id for peer in self._by_task.get(task_id, ()))

    def peers(self) -> Iterator[Peer]:
        """Every feeder of every task (the records held, for the invariant check)."""
        for members in list(self._by_task.values()):
            yield from members


def _peer_id(peer: Peer) -> str:
    return peer.id
