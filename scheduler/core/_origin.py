"""Who is about to feed a task from the origin: reserved back-to-source slots and seed fetches.

A back-to-source decision *reserves* one of the task's back-to-source slots
until the child reports ``back_to_source`` (then the task counts it), or
finishes, fails, leaves or asks again; so a burst of first peers sends one of
them to the origin, and the others wait for it.

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
    def __init__(self) -> None:
        self._reserved: dict[str, set[str]] = {}
        self._reservation_of: dict[str, str] = {}
        self._fetches: dict[str, SeedFetch] = {}
        self._fetch_of_peer: dict[str, str] = {}
        self._fetches_of_host: dict[str, set[str]] = {}

    # --- back-to-source reservations --------------------------------------------------

    def reserved(self, task_id: str) -> int:
        return len(self._reserved.get(task_id, ()))

    def has_reservation(self, peer_id: str) -> bool:
        return peer_id in self._reservation_of

    def back_to_source_allowed(self, task: Task, child: Peer) -> bool:
        """Under the task's limit, counting reservations (a child already there may stay)."""
        if child.state is PeerState.BACK_TO_SOURCE or child.id in self._reservation_of:
            return True
        return task.back_to_source_count + self.reserved(task.id) < task.back_to_source_limit

    def reserve(self, child: Peer) -> None:
        if child.state is PeerState.BACK_TO_SOURCE:
            return  # the task counts it already
        self._reservation_of[child.id] = child.task_id
        self._reserved.setdefault(child.task_id, set()).add(child.id)

    def release(self, peer_id: str) -> None:
        task_id = self._reservation_of.pop(peer_id, None)
        if task_id is not None:
            members = self._reserved[task_id]
            members.discard(peer_id)
            if not members:
                del self._reserved[task_id]

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
        if counted != len(self._reservation_of):
            problems.append("back-to-source reservations disagree with their index")
        return problems
