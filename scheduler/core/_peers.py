"""The peer ledger (the README's PeerManager): a host's download of one task.

A peer's state changes move its task's state too; which task state follows is
decided by the rules in :mod:`._lifecycle`, and applied here through the task
ledger. Every method validates before it changes anything.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import ClassVar, final

from ._errors import BackToSourceLimitReached, Conflict, IllegalTransition, LimitExceeded, NotFound
from ._events import Event, Eviction, Expiry, PeerRegistered, Reason
from ._hosts import HostLedger
from ._ledger import Ledger
from ._lifecycle import (
    ACTIVE_PEER_STATES,
    PEER_TRANSITIONS,
    PeerEvent,
    PeerState,
    register_event,
    task_after_peer_failed,
    task_after_peer_started,
    task_after_peer_succeeded,
    transition,
)
from ._limits import DEFAULT_LIMITS, RecordLimits
from ._model import Peer, RecordKind, Task, TaskInfo
from ._policy import PolicySet
from ._tasks import TaskLedger


@final
class PeerLedger(Ledger[Peer]):
    """Peers by id, by host and by task, with live counts per state."""

    kind: ClassVar[RecordKind] = RecordKind.PEER

    def __init__(
        self,
        policies: PolicySet,
        *,
        now: float,
        sweep_interval: float,
        hosts: HostLedger,
        tasks: TaskLedger,
        limits: RecordLimits = DEFAULT_LIMITS,
    ) -> None:
        super().__init__(policies, now=now, sweep_interval=sweep_interval)
        self._hosts = hosts
        self._tasks = tasks
        self.limits = limits
        self._by_host: dict[str, set[str]] = {}
        self._by_task: dict[str, set[str]] = {}
        self._states: Counter[PeerState] = Counter()

    # --- queries -----------------------------------------------------------------------

    def ids_of_host(self, host_id: str) -> frozenset[str]:
        return frozenset(self._by_host.get(host_id, ()))

    def ids_of_task(self, task_id: str) -> frozenset[str]:
        return frozenset(self._by_task.get(task_id, ()))

    def count_of_host(self, host_id: str) -> int:
        return len(self._by_host.get(host_id, ()))

    def count_of_task(self, task_id: str) -> int:
        return len(self._by_task.get(task_id, ()))

    def of_host(self, host_id: str) -> list[Peer]:
        return [self._records[p] for p in self._by_host.get(host_id, ())]

    def of_task(self, task_id: str) -> list[Peer]:
        return [self._records[p] for p in self._by_task.get(task_id, ())]

    def counts_by_state(self) -> dict[PeerState, int]:
        return {state: self._states[state] for state in PeerState if state is not PeerState.LEAVE}

    def expiry(self, record: Peer, now: float) -> Expiry | None:
        return self.policies.peer_expiry(record, self.view, now)

    # --- mutations ---------------------------------------------------------------------

    def register(
        self,
        peer_id: str,
        host_id: str,
        task_info: TaskInfo,
        now: float,
        back_to_source_limit: int,
    ) -> list[Event]:
        host = self._hosts.get(host_id)
        if not host.schedulable:
            raise Conflict(f"host {host_id!r} is {host.state.value}; it cannot register peers")
        if not peer_id or not task_info.id:
            raise ValueError("peer id and task id must be non-empty")
        limits = self.limits
        if task_info.total_piece_count > limits.max_piece_count:
            raise ValueError(
                f"total_piece_count {task_info.total_piece_count} is more than "
                f"max_piece_count ({limits.max_piece_count})"
            )
        if peer_id in self._records:
            raise Conflict(f"peer {peer_id!r} is already registered")
        if self.count_of_host(host.id) >= limits.max_peers_per_host:
            raise LimitExceeded(
                f"host {host.id!r} already holds max_peers_per_host "
                f"({limits.max_peers_per_host}) peers"
            )
        new_task = not self._tasks.exists(task_info.id)
        if new_task and self._tasks.created_by(host.id) >= limits.max_tasks_per_host:
            raise LimitExceeded(
                f"host {host.id!r} already created max_tasks_per_host "
                f"({limits.max_tasks_per_host}) live tasks"
            )
        task, events = self._tasks.obtain(task_info, now, back_to_source_limit, host.id)
        # The peer's own claim decides its size scope; the task's size if it claims none.
        content_length = task_info.content_length
        total_piece_count = task_info.total_piece_count
        event = register_event(
            task.content_length if content_length < 0 else content_length,
            task.total_piece_count if total_piece_count < 0 else total_piece_count,
        )
        peer = Peer(
            id=peer_id,
            task_id=task.id,
            host_id=host.id,
            created_at=now,
            updated_at=now,
            piece_updated_at=now,
            state=transition("peer", PEER_TRANSITIONS, PeerState.PENDING, event),
            content_length=content_length,
            total_piece_count=total_piece_count,
        )
        self._add(peer)
        self._states[peer.state] += 1
        self._by_host.setdefault(host.id, set()).add(peer.id)
        self._by_task.setdefault(task.id, set()).add(peer.id)
        events.append(PeerRegistered(peer.id, task.id, host.id, now))
        self._schedule(peer, now)
        self._tasks.touch(task, now)
        self.policies.peer_state_changed(peer, PeerState.PENDING, self.view, now)
        return events

    def start_download(self, peer_id: str, now: float, as_host: str | None) -> None:
        peer, task = self._owned(peer_id, as_host)
        new_peer = transition("peer", PEER_TRANSITIONS, peer.state, PeerEvent.DOWNLOAD)
        new_task = task_after_peer_started(task.state)
        old_state = self._set_state(peer, new_peer)
        self._tasks.set_state(task, new_task)
        self._changed(peer, task, now)
        self.policies.peer_state_changed(peer, old_state, self.view, now)

    def back_to_source(self, peer_id: str, now: float, as_host: str | None) -> None:
        peer, task = self._owned(peer_id, as_host)
        new_peer = transition(
            "peer", PEER_TRANSITIONS, peer.state, PeerEvent.DOWNLOAD_BACK_TO_SOURCE
        )
        if task.back_to_source_count >= task.back_to_source_limit:
            raise BackToSourceLimitReached(
                f"task {task.id!r} already has {task.back_to_source_count} back-to-source peers"
            )
        share = self.limits.max_back_to_source_per_host
        if task.back_to_source_by_host.get(peer.host_id, 0) >= share:
            raise BackToSourceLimitReached(
                f"host {peer.host_id!r} already has max_back_to_source_per_host ({share}) "
                f"back-to-source peers in task {task.id!r}"
            )
        new_task = task_after_peer_started(task.state)
        old_state = self._set_state(peer, new_peer)
        self._tasks.set_state(task, new_task)
        _count_back_to_source(task, peer.host_id, +1)
        self._changed(peer, task, now)
        self.policies.peer_state_changed(peer, old_state, self.view, now)

    def finish_pieces(
        self,
        peer_id: str,
        pieces: Sequence[int],
        now: float,
        *,
        cost: float | None,
        as_host: str | None,
    ) -> int:
        """Record the pieces; return how many were new.

        Every piece is checked before any is recorded: below the peer's own claim of
        the task's piece count, or below ``max_piece_count`` when it claimed none.
        The parent is recorded by the scheduling, only if it handed that parent out.
        """
        peer, task = self._owned(peer_id, as_host)
        if peer.state not in ACTIVE_PEER_STATES:
            raise IllegalTransition("peer", peer.state.value, "pieces_finished")
        claimed = peer.total_piece_count
        limit = claimed if claimed >= 0 else self.limits.max_piece_count
        bound = "its total_piece_count" if claimed >= 0 else "max_piece_count"
        for piece in pieces:
            if not 0 <= piece < limit:
                raise ValueError(
                    f"piece {piece} is out of range for task {task.id!r}: "
                    f"piece numbers are 0..{limit - 1} ({bound} is {limit})"
                )
        if cost is not None and not (math.isfinite(cost) and cost >= 0):
            raise ValueError(f"cost must be a non-negative number of seconds, got {cost!r}")
        # Ascending, so the sparse part of the piece set only ever appends.
        added = sum(map(peer.finished_pieces.add, sorted(pieces)))
        if cost is not None:
            peer.cost_total += cost
        peer.piece_updated_at = now
        self._changed(peer, task, now)
        return added

    def finish_download(self, peer_id: str, now: float, as_host: str | None) -> None:
        peer, task = self._owned(peer_id, as_host)
        new_peer = transition("peer", PEER_TRANSITIONS, peer.state, PeerEvent.DOWNLOAD_SUCCEEDED)
        new_task = task_after_peer_succeeded(task.state)
        if peer.state is PeerState.BACK_TO_SOURCE:
            _count_back_to_source(task, peer.host_id, -1)
        old_state = self._set_state(peer, new_peer)
        self._tasks.set_state(task, new_task)
        self._tasks.confirm_size(task, peer)
        self._changed(peer, task, now)
        self.policies.peer_state_changed(peer, old_state, self.view, now)

    def fail_download(self, peer_id: str, now: float, as_host: str | None) -> None:
        peer, task = self._owned(peer_id, as_host)
        new_peer = transition("peer", PEER_TRANSITIONS, peer.state, PeerEvent.DOWNLOAD_FAILED)
        others = (self._records[p].state for p in self._by_task[task.id] if p != peer.id)
        new_task = task_after_peer_failed(task.state, others)
        if peer.state is PeerState.BACK_TO_SOURCE:
            _count_back_to_source(task, peer.host_id, -1)
        old_state = self._set_state(peer, new_peer)
        self._tasks.set_state(task, new_task)
        self._changed(peer, task, now)
        self.policies.peer_state_changed(peer, old_state, self.view, now)

    def leave(self, peer_id: str, now: float, as_host: str | None) -> list[Event]:
        self._owned(peer_id, as_host)
        return self.evict(peer_id, Reason.LEAVE, now)

    def evict(
        self, record_id: str, reason: str, now: float, deadline: float | None = None
    ) -> list[Event]:
        """Evict the peer; its task loses a peer, so the policies judge the task again."""
        peer = self.get(record_id)
        task = self._tasks.get(peer.task_id)
        if peer.state is PeerState.BACK_TO_SOURCE:
            _count_back_to_source(task, peer.host_id, -1)
        leave = transition("peer", PEER_TRANSITIONS, peer.state, PeerEvent.LEAVE)
        self._states[peer.state] -= 1
        peer.state = leave
        self._forget(peer.id)
        _discard(self._by_host, peer.host_id, peer.id)
        _discard(self._by_task, task.id, peer.id)
        self._tasks.touch(task, now)
        eviction = Eviction(
            kind=RecordKind.PEER,
            record_id=peer.id,
            reason=str(reason),
            at=now,
            last_contact=peer.updated_at,
            deadline=deadline,
            host_id=peer.host_id,
            task_id=peer.task_id,
        )
        self.policies.evicted(eviction)
        return [eviction]

    def evict_of_host(self, host_id: str, now: float) -> list[Event]:
        """Evict every peer of a host that is going (reason ``host_evicted``)."""
        return self._evict_all(self._by_host.get(host_id, ()), Reason.HOST_EVICTED, now)

    def evict_of_task(self, task_id: str, now: float) -> list[Event]:
        """Evict every peer of a task that is going (reason ``task_evicted``)."""
        return self._evict_all(self._by_task.get(task_id, ()), Reason.TASK_EVICTED, now)

    # --- internals ---------------------------------------------------------------------

    def _evict_all(self, peer_ids: Iterable[str], reason: str, now: float) -> list[Event]:
        events: list[Event] = []
        for peer_id in sorted(peer_ids):
            events.extend(self.evict(peer_id, reason, now))
        return events

    def _owned(self, peer_id: str, as_host: str | None) -> tuple[Peer, Task]:
        peer = self.get(peer_id)
        if as_host is not None and peer.host_id != as_host:
            # The same answer as for a missing peer: another host's ids stay private.
            raise NotFound("peer", peer_id)
        return peer, self._tasks.get(peer.task_id)

    def _set_state(self, peer: Peer, state: PeerState) -> PeerState:
        """Move the peer to ``state``; return the state it left."""
        old = peer.state
        self._states[old] -= 1
        self._states[state] += 1
        peer.state = state
        return old

    def _changed(self, peer: Peer, task: Task, now: float) -> None:
        peer.updated_at = task.updated_at = now
        self._schedule(peer, now)
        self._tasks.touch(task, now)

    def _record_violations(self) -> list[str]:
        problems: list[str] = []
        by_host: dict[str, set[str]] = {}
        by_task: dict[str, set[str]] = {}
        for peer in self._records.values():
            if not self._hosts.exists(peer.host_id):
                problems.append(f"peer {peer.id} dangles: host {peer.host_id} is gone")
            if not self._tasks.exists(peer.task_id):
                problems.append(f"peer {peer.id} dangles: task {peer.task_id} is gone")
            if peer.state is PeerState.LEAVE:
                problems.append(f"peer {peer.id} is kept in state leave")
            by_host.setdefault(peer.host_id, set()).add(peer.id)
            by_task.setdefault(peer.task_id, set()).add(peer.id)
        if by_host != self._by_host:
            problems.append("peers-by-host index disagrees with the peer records")
        if by_task != self._by_task:
            problems.append("peers-by-task index disagrees with the peer records")
        counts = Counter(p.state for p in self._records.values())
        if +counts != +self._states:
            problems.append(f"peer state counts {dict(self._states)} != {dict(counts)}")
        return problems


def _count_back_to_source(task: Task, host_id: str, delta: int) -> None:
    """A peer of ``host_id`` starts (+1) or stops (-1) fetching ``task`` from the origin."""
    task.back_to_source_count += delta
    count = task.back_to_source_by_host.get(host_id, 0) + delta
    if count:
        task.back_to_source_by_host[host_id] = count
    else:
        del task.back_to_source_by_host[host_id]


def _discard(index: dict[str, set[str]], key: str, peer_id: str) -> None:
    members = index[key]
    members.discard(peer_id)
    if not members:
        del index[key]
