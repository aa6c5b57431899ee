"""Who is about to feed a task from the origin: reserved back-to-source slots and seed fetches.

A back-to-source decision *reserves* one of the task's back-to-source slots
until the child reports ``back_to_source`` (then the task counts it), or
finishes, fails, leaves or asks again; so a burst of first peers sends one of
them to the origin, and the others wait for it. The slots are shared between
hosts: the peers of one host hold at most ``per_host`` of a task's slots
(reserved and in use), so one host cannot take them all.

A seed fetch is in flight from the moment the scheduler asks a seed host for a
task (or a peer of that task registers on a seed host) until that seed peer
holds a piece, ends, or its host goes.
"""

from __future__ import annotations

from typing import final

import attrs

from ._lifecycle import PeerState
from ._model import Peer, Task


@final
@attrs.frozen
class SeedFetch:
    task_id: str
    seed_host_id: str
    #: The peer the seed registers (or registered) for the task.
    peer_id: str
    at: float


@final
class OriginBook:
    def __init__(self, per_host: int) -> None:
        #: Most back-to-source slots of one task the peers of one host may hold.
        self.per_host = per_host
        self._reserved: dict[str, set[str]] = {}
        #: peer -> (task, host) of its reservation.
        self._reservation_of: dict[str, tuple[str, str]] = {}
        self._reserved_by_host: dict[tuple[str, str], int] = {}
        self._fetches: dict[str, SeedFetch] = {}
        self._fetch_of_peer: dict[str, str] = {}
        self._fetches_of_host: dict[str, set[str]] = {}

    # --- back-to-source reservations --------------------------------------------------

    def reserved(self, task_id: str) -> int:
        return len(self._reserved.get(task_id, ()))

    def has_reservation(self, peer_id: str) -> bool:
        return peer_id in self._reservation_of

    def back_to_source_allowed(self, task: Task, child: Peer) -> bool:
        """Under the task's limit and the host's share of it, counting reservations.

        A child already there (or holding a reservation) may stay.
        """
        if child.state is PeerState.BACK_TO_SOURCE or child.id in self._reservation_of:
            return True
        if task.back_to_source_count + self.reserved(task.id) >= task.back_to_source_limit:
            return False
        key = (task.id, child.host_id)
        held = task.back_to_source_by_host.get(child.host_id, 0)
        return held + self._reserved_by_host.get(key, 0) < self.per_host

    def reserve(self, child: Peer) -> None:
        if child.state is PeerState.BACK_TO_SOURCE:
            return  # the task counts it already
        key = (child.task_id, child.host_id)
        self._reservation_of[child.id] = key
        self._reserved.setdefault(child.task_id, set()).add(child.id)
        self._reserved_by_host[key] = self._reserved_by_host.get(key, 0) + 1

    def release(self, peer_id: str) -> None:
        key = self._reservation_of.pop(peer_id, None)
        if key is not None:
            members = self._reserved[key[0]]
            members.discard(peer_id)
            if not members:
                del self._reserved[key[0]]
            left = self._reserved_by_host[key] - 1
            if left:
                self._reserved_by_host[key] = left
            else:
                del self._reserved_by_host[key]

    # --- seed fetches -------------------------------------------------------------------

    def fetch_of(self, task_id: str) -> SeedFetch | None:
        return self._fetches.get(task_id)

    def start_fetch(self, fetch: SeedFetch) -> None:
        self._fetches[fetch.task_id] = fetch
        self._fetch_of_peer[fetch.peer_id] = fetch.task_id
        self._fetches_of_host.setdefault(fetch.seed_host_id, set()).add(fetch.task_id)

    def end_fetch_of_peer(self, peer_id: str) -> None:
        task_id = self._fetch_of_peer.get(peer_id)
        if task_id is not None:
            self._end(self._fetches[task_id])

    def end_fetches_of_host(self, host_id: str) -> None:
        for task_id in sorted(self._fetches_of_host.get(host_id, ())):
            self._end(self._fetches[task_id])

    def _end(self, fetch: SeedFetch) -> None:
        del self._fetches[fetch.task_id]
        del self._fetch_of_peer[fetch.peer_id]
        tasks = self._fetches_of_host[fetch.seed_host_id]
        tasks.discard(fetch.task_id)
        if not tasks:
            del self._fetches_of_host[fetch.seed_host_id]

    def violations(self, live_peers: set[str]) -> list[str]:
        problems = [
            f"peer {peer_id} holds a back-to-source reservation but is gone"
            for peer_id in self._reservation_of
            if peer_id not in live_peers
        ]
        counted = sum(len(members) for members in self._reserved.values())
        by_host: dict[tuple[str, str], int] = {}
        for key in self._reservation_of.values():
            by_host[key] = by_host.get(key, 0) + 1
        if counted != len(self._reservation_of) or by_host != self._reserved_by_host:
            problems.append("back-to-source reservations disagree with their index")
        return problems
