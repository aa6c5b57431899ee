"""The scheduler's state: hosts, peers and tasks, their indexes, and the GC engine.

Every mutation takes ``now`` (seconds, from whatever clock the caller owns)
and returns the events it caused. Every mutation validates first and changes
state only once it knows it will succeed, so a raised error changes nothing.

Deadlines are kept per record kind in a :class:`DeadlineQueue`; whenever a
record changes, its deadline is recomputed by asking the policies (the
earliest answer wins). ``collect_expired(now)`` evicts exactly what is due.
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from collections.abc import Collection, Iterator, Sequence
from typing import Final, final

from ._deadlines import DeadlineQueue
from ._errors import BackToSourceLimitReached, Conflict, Forbidden, IllegalTransition, NotFound
from ._events import (
    ContactSource,
    Event,
    Eviction,
    Expiry,
    HostDisconnected,
    HostReconnected,
    HostRegistered,
    PeerRegistered,
    Reason,
    TaskCreated,
)
from ._lifecycle import (
    ACTIVE_PEER_STATES,
    HOST_TRANSITIONS,
    PEER_TRANSITIONS,
    TASK_TRANSITIONS,
    HostEvent,
    HostState,
    PeerEvent,
    PeerState,
    TaskEvent,
    TaskState,
    transition,
)
from ._model import Host, HostInfo, Peer, RecordKind, Task, TaskInfo
from ._policy import PolicySet

log = logging.getLogger("scheduler.gc")

#: Default period of the batch sweep, per record kind (seconds).
DEFAULT_SWEEP_INTERVAL: Final = 60.0

_ALL_KINDS: Final = (RecordKind.HOST, RecordKind.PEER, RecordKind.TASK)
_TINY_TASK_BYTES: Final = 128
_SERVING_PEER_STATES: Final = ACTIVE_PEER_STATES | {PeerState.SUCCEEDED}


def _require_finite_positive(name: str, value: float | None) -> None:
    if value is not None and not (math.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a positive finite number of seconds, got {value!r}")


@final
class SchedulerState:
    """Host, peer and task managers behind one facade, with deadline-driven GC."""

    def __init__(
        self,
        policies: PolicySet,
        *,
        now: float = 0.0,
        sweep_interval: float = DEFAULT_SWEEP_INTERVAL,
    ) -> None:
        _require_finite_positive("sweep_interval", sweep_interval)
        self.policies = policies
        self.sweep_interval = sweep_interval
        self._hosts: dict[str, Host] = {}
        self._peers: dict[str, Peer] = {}
        self._tasks: dict[str, Task] = {}
        self._peers_by_host: dict[str, set[str]] = {}
        self._peers_by_task: dict[str, set[str]] = {}
        self._hosts_by_hostname: dict[str, set[str]] = {}
        # Live records per state, kept up to date so gauges never scan the state.
        self._host_states: Counter[HostState] = Counter()
        self._peer_states: Counter[PeerState] = Counter()
        self.queues: dict[RecordKind, DeadlineQueue] = {k: DeadlineQueue() for k in _ALL_KINDS}
        #: Records no policy gave a deadline to; the sweep asks again (the safety net).
        self._undecided: dict[RecordKind, set[str]] = {k: set() for k in _ALL_KINDS}
        self._next_sweep: dict[RecordKind, float] = {k: now + sweep_interval for k in _ALL_KINDS}

    # ==================================================================================
    # Queries
    # ==================================================================================

    def host(self, host_id: str) -> Host:
        try:
            return self._hosts[host_id]
        except KeyError:
            raise NotFound("host", host_id) from None

    def peer(self, peer_id: str) -> Peer:
        try:
            return self._peers[peer_id]
        except KeyError:
            raise NotFound("peer", peer_id) from None

    def task(self, task_id: str) -> Task:
        try:
            return self._tasks[task_id]
        except KeyError:
            raise NotFound("task", task_id) from None

    def has_host(self, host_id: str) -> bool:
        return host_id in self._hosts

    def has_peer(self, peer_id: str) -> bool:
        return peer_id in self._peers

    def has_task(self, task_id: str) -> bool:
        return task_id in self._tasks

    def hosts(self) -> Iterator[Host]:
        return iter(list(self._hosts.values()))

    def peers(self) -> Iterator[Peer]:
        return iter(list(self._peers.values()))

    def tasks(self) -> Iterator[Task]:
        return iter(list(self._tasks.values()))

    def host_count(self) -> int:
        return len(self._hosts)

    def peer_count(self) -> int:
        return len(self._peers)

    def task_count(self) -> int:
        return len(self._tasks)

    def peer_ids_of_host(self, host_id: str) -> frozenset[str]:
        return frozenset(self._peers_by_host.get(host_id, ()))

    def peer_ids_of_task(self, task_id: str) -> frozenset[str]:
        return frozenset(self._peers_by_task.get(task_id, ()))

    def peer_count_of_task(self, task_id: str) -> int:
        """O(1): how many peers the task has (0 for an unknown task)."""
        return len(self._peers_by_task.get(task_id, ()))

    def peer_count_of_host(self, host_id: str) -> int:
        """O(1): how many peers the host has (0 for an unknown host)."""
        return len(self._peers_by_host.get(host_id, ()))

    def peers_of_task(self, task_id: str) -> list[Peer]:
        return [self._peers[p] for p in self._peers_by_task.get(task_id, ())]

    def peers_of_host(self, host_id: str) -> list[Peer]:
        return [self._peers[p] for p in self._peers_by_host.get(host_id, ())]

    def host_counts_by_state(self) -> dict[HostState, int]:
        """O(1): live hosts per connection state (for gauges)."""
        return {
            state: self._host_states[state] for state in HostState if state is not HostState.LEFT
        }

    def peer_counts_by_state(self) -> dict[PeerState, int]:
        """O(1): live peers per state (for gauges)."""
        return {
            state: self._peer_states[state] for state in PeerState if state is not PeerState.LEAVE
        }

    def host_ids_by_hostname(self, hostname: str) -> frozenset[str]:
        """Live (not evicted) hosts that announced ``hostname``."""
        return frozenset(self._hosts_by_hostname.get(hostname, ()))

    def schedulable_hosts(self) -> list[Host]:
        """Hosts that may be handed out as parents: connected, never left or evicted."""
        return [h for h in self._hosts.values() if h.state is HostState.CONNECTED]

    def is_schedulable(self, host_id: str) -> bool:
        host = self._hosts.get(host_id)
        return host is not None and host.state is HostState.CONNECTED

    def deadline_of(self, kind: RecordKind, record_id: str) -> Expiry | None:
        """The deadline the engine currently holds for a record (None: no opinion)."""
        return self.queues[kind].get(record_id)

    # ==================================================================================
    # Hosts
    # ==================================================================================

    def announce_host(
        self, info: HostInfo, now: float, *, interval: float | None = None
    ) -> list[Event]:
        """Create or refresh a host. Re-announcing a disconnected host reconnects it.

        Afterwards the policies may supersede other hosts (e.g. same hostname,
        new address); those are evicted with reason ``superseded``.
        """
        _require_finite_positive("interval", interval)
        if not info.hostname or not info.ip:
            raise ValueError("hostname and ip must be non-empty")
        events: list[Event] = []
        host = self._hosts.get(info.id)
        if host is None:
            host = Host(
                id=info.id,
                hostname=info.hostname,
                ip=info.ip,
                port=info.port,
                download_port=info.download_port,
                type=info.type,
                idc=info.idc,
                location=info.location,
                announce_interval=interval,
                concurrent_upload_limit=info.concurrent_upload_limit,
                created_at=now,
                last_announce_at=now,
                last_contact_at=now,
            )
            self._hosts[host.id] = host
            self._host_states[host.state] += 1
            self._peers_by_host[host.id] = set()
            self._hosts_by_hostname.setdefault(host.hostname, set()).add(host.id)
            events.append(HostRegistered(host.id, now))
        else:
            new_state = transition("host", HOST_TRANSITIONS, host.state, HostEvent.ANNOUNCE)
            reconnected_after = (
                now - host.disconnected_at if host.disconnected_at is not None else None
            )
            self._set_host_state(host, new_state)
            host.disconnected_at = None
            host.port = info.port
            host.download_port = info.download_port
            host.idc = info.idc
            host.location = info.location
            host.concurrent_upload_limit = info.concurrent_upload_limit
            host.announce_interval = interval
            host.last_announce_at = now
            host.last_contact_at = now
            if reconnected_after is not None:
                events.append(HostReconnected(host.id, now, reconnected_after))
                self.policies.host_reconnected(host, reconnected_after, now)
        self.policies.host_contact(host, ContactSource.ANNOUNCE, now)
        for other_id in dict.fromkeys(self.policies.host_supersedes(host, self, now)):
            other = self._hosts.get(other_id)
            if other is not None and other is not host:
                events.extend(self._evict_host(other, Reason.SUPERSEDED, now))
        self._reschedule_host(host, now)
        return events

    def touch_host(
        self, host_id: str, now: float, source: ContactSource = ContactSource.PONG
    ) -> list[Event]:
        """Record that the host is alive (a pong or any message) without a full announce."""
        host = self.host(host_id)
        host.last_contact_at = max(host.last_contact_at, now)
        self.policies.host_contact(host, source, now)
        self._reschedule_host(host, now)
        return []

    def disconnect_host(self, host_id: str, now: float) -> list[Event]:
        """The host's session dropped without a leave: unschedulable from now on."""
        host = self.host(host_id)
        self._set_host_state(
            host, transition("host", HOST_TRANSITIONS, host.state, HostEvent.DISCONNECT)
        )
        host.disconnected_at = now
        self.policies.host_disconnected(host, now)
        self._reschedule_host(host, now)
        return [HostDisconnected(host.id, now)]

    def leave_host(self, host_id: str, now: float) -> list[Event]:
        """A graceful leave: the host and its peers are evicted at once."""
        host = self.host(host_id)
        transition("host", HOST_TRANSITIONS, host.state, HostEvent.LEAVE)
        host.last_contact_at = max(host.last_contact_at, now)
        return self._evict_host(host, Reason.LEAVE, now)

    def evict(self, kind: RecordKind, record_id: str, reason: str, now: float) -> list[Event]:
        """Evict one record now (admin action or a policy verdict)."""
        if kind is RecordKind.HOST:
            return self._evict_host(self.host(record_id), reason, now)
        if kind is RecordKind.PEER:
            return self._evict_peer(self.peer(record_id), reason, now)
        return self._evict_task(self.task(record_id), reason, now)

    # ==================================================================================
    # Peers and tasks
    # ==================================================================================

    def register_peer(
        self,
        peer_id: str,
        host_id: str,
        task_info: TaskInfo,
        now: float,
        *,
        back_to_source_limit: int = 200,
    ) -> list[Event]:
        """A host starts downloading a task: create the peer (and the task if new)."""
        host = self.host(host_id)
        if not host.schedulable:
            raise Conflict(f"host {host_id!r} is {host.state.value}; it cannot register peers")
        if not peer_id or not task_info.id:
            raise ValueError("peer id and task id must be non-empty")
        if peer_id in self._peers:
            raise Conflict(f"peer {peer_id!r} is already registered")
        events: list[Event] = []
        task = self._tasks.get(task_info.id)
        if task is None:
            task = Task(
                id=task_info.id,
                url=task_info.url,
                piece_length=task_info.piece_length,
                content_length=task_info.content_length,
                total_piece_count=task_info.total_piece_count,
                created_at=now,
                updated_at=now,
                back_to_source_limit=back_to_source_limit,
            )
            self._tasks[task.id] = task
            self._peers_by_task[task.id] = set()
            events.append(TaskCreated(task.id, now))
        else:
            if task.content_length < 0 <= task_info.content_length:
                task.content_length = task_info.content_length
            if task.total_piece_count < 0 <= task_info.total_piece_count:
                task.total_piece_count = task_info.total_piece_count
            task.updated_at = now
        peer = Peer(
            id=peer_id,
            task_id=task.id,
            host_id=host.id,
            created_at=now,
            updated_at=now,
            piece_updated_at=now,
        )
        peer.state = transition("peer", PEER_TRANSITIONS, peer.state, _register_event(task))
        self._peers[peer.id] = peer
        self._peer_states[peer.state] += 1
        self._peers_by_host[host.id].add(peer.id)
        self._peers_by_task[task.id].add(peer.id)
        events.append(PeerRegistered(peer.id, task.id, host.id, now))
        self._reschedule_peer(peer, now)
        self._reschedule_task(task, now)
        return events

    def start_download(
        self, peer_id: str, now: float, *, as_host: str | None = None
    ) -> list[Event]:
        peer = self._owned_peer(peer_id, as_host)
        task = self._tasks[peer.task_id]
        new_peer = transition("peer", PEER_TRANSITIONS, peer.state, PeerEvent.DOWNLOAD)
        new_task = task.state
        if task.state is not TaskState.RUNNING:
            new_task = transition("task", TASK_TRANSITIONS, task.state, TaskEvent.DOWNLOAD)
        self._set_peer_state(peer, new_peer)
        task.state = new_task
        return self._peer_changed(peer, task, now)

    def back_to_source(
        self, peer_id: str, now: float, *, as_host: str | None = None
    ) -> list[Event]:
        peer = self._owned_peer(peer_id, as_host)
        task = self._tasks[peer.task_id]
        new_peer = transition(
            "peer", PEER_TRANSITIONS, peer.state, PeerEvent.DOWNLOAD_BACK_TO_SOURCE
        )
        if task.back_to_source_count >= task.back_to_source_limit:
            raise BackToSourceLimitReached(
                f"task {task.id!r} already has {task.back_to_source_count} back-to-source peers"
            )
        new_task = task.state
        if task.state is not TaskState.RUNNING:
            new_task = transition("task", TASK_TRANSITIONS, task.state, TaskEvent.DOWNLOAD)
        self._set_peer_state(peer, new_peer)
        task.state = new_task
        task.back_to_source_count += 1
        return self._peer_changed(peer, task, now)

    def finish_pieces(
        self,
        peer_id: str,
        pieces: Sequence[int],
        now: float,
        *,
        parent_id: str | None = None,
        cost: float | None = None,
        as_host: str | None = None,
    ) -> list[Event]:
        """Record finished pieces (a batch), the parent they came from, and the cost."""
        peer = self._owned_peer(peer_id, as_host)
        task = self._tasks[peer.task_id]
        if peer.state not in ACTIVE_PEER_STATES:
            raise IllegalTransition("peer", peer.state.value, "pieces_finished")
        limit = task.total_piece_count
        for piece in pieces:
            if piece < 0 or (limit >= 0 and piece >= limit):
                raise ValueError(f"piece {piece} is out of range for task {task.id!r}")
        if cost is not None and not (math.isfinite(cost) and cost >= 0):
            raise ValueError(f"cost must be a non-negative number of seconds, got {cost!r}")
        parent = self._peers.get(parent_id) if parent_id is not None else None
        added = sum(peer.finished_pieces.add(piece) for piece in pieces)
        if parent is not None and parent.task_id == peer.task_id:
            peer.parents.add(parent.id)
            parent_host = self._hosts.get(parent.host_id)
            if parent_host is not None:
                parent_host.upload_count += added
        if cost is not None:
            peer.cost_total += cost
        peer.piece_updated_at = now
        return self._peer_changed(peer, task, now)

    def finish_download(
        self, peer_id: str, now: float, *, as_host: str | None = None
    ) -> list[Event]:
        peer = self._owned_peer(peer_id, as_host)
        task = self._tasks[peer.task_id]
        was_back_to_source = peer.state is PeerState.BACK_TO_SOURCE
        new_peer = transition("peer", PEER_TRANSITIONS, peer.state, PeerEvent.DOWNLOAD_SUCCEEDED)
        new_task = task.state
        if new_task is TaskState.PENDING:  # a tiny task can finish without running
            new_task = transition("task", TASK_TRANSITIONS, new_task, TaskEvent.DOWNLOAD)
        if new_task is not TaskState.SUCCEEDED:
            new_task = transition("task", TASK_TRANSITIONS, new_task, TaskEvent.DOWNLOAD_SUCCEEDED)
        self._set_peer_state(peer, new_peer)
        task.state = new_task
        if was_back_to_source:
            task.back_to_source_count -= 1
        return self._peer_changed(peer, task, now)

    def fail_download(self, peer_id: str, now: float, *, as_host: str | None = None) -> list[Event]:
        peer = self._owned_peer(peer_id, as_host)
        task = self._tasks[peer.task_id]
        was_back_to_source = peer.state is PeerState.BACK_TO_SOURCE
        new_peer = transition("peer", PEER_TRANSITIONS, peer.state, PeerEvent.DOWNLOAD_FAILED)
        self._set_peer_state(peer, new_peer)
        if was_back_to_source:
            task.back_to_source_count -= 1
        others_alive = any(
            self._peers[p].state in ACTIVE_PEER_STATES
            or self._peers[p].state is PeerState.SUCCEEDED
            for p in self._peers_by_task[task.id]
        )
        if task.state is TaskState.RUNNING and not others_alive:
            task.state = transition("task", TASK_TRANSITIONS, task.state, TaskEvent.DOWNLOAD_FAILED)
        return self._peer_changed(peer, task, now)

    def leave_peer(self, peer_id: str, now: float, *, as_host: str | None = None) -> list[Event]:
        peer = self._owned_peer(peer_id, as_host)
        return self._evict_peer(peer, Reason.LEAVE, now)

    # ==================================================================================
    # GC
    # ==================================================================================

    def next_deadline(self, kinds: Collection[RecordKind] = _ALL_KINDS) -> float | None:
        """When the GC must next run for ``kinds``: the earliest deadline or sweep."""
        times = [self._next_sweep[k] for k in kinds]
        for kind in kinds:
            head = self.queues[kind].peek()
            if head is not None:
                times.append(head)
        return min(times) if times else None

    def next_sweep_at(self, kind: RecordKind) -> float:
        return self._next_sweep[kind]

    def collect_expired(
        self, now: float, kinds: Collection[RecordKind] = _ALL_KINDS
    ) -> list[Event]:
        """Evict every record of ``kinds`` whose deadline is <= ``now``; nothing else.

        Hosts go first so their peers leave with reason ``host_evicted``; a task
        made idle by that gets a fresh deadline, and is collected in the same
        call if that deadline has passed too.
        """
        events: list[Event] = []
        while True:
            evicted_any = False
            for kind in _ALL_KINDS:
                if kind not in kinds:
                    continue
                for record_id, expiry in self.queues[kind].pop_due(now):
                    evicted_any = True
                    events.extend(self._evict_by_deadline(kind, record_id, expiry, now))
            if not evicted_any:
                return events

    def sweep(self, now: float, kind: RecordKind) -> list[Event]:
        """The periodic batch sweep of one kind: apply the policies' verdicts.

        It is also the safety net: records with no deadline are re-evaluated
        (kept in a set, so this costs O(undecided), not O(n)), so a policy whose
        earlier answer was lost to a raising plugin gets another chance to decide.
        """
        self._next_sweep[kind] = now + self.sweep_interval
        events: list[Event] = []
        for record_id in list(self._undecided[kind]):
            self._reschedule(kind, record_id, now)
        for verdict in self.policies.sweep(kind, self, now):
            if verdict.kind is not kind or not self._exists(kind, verdict.record_id):
                log.warning(
                    "ignoring sweep verdict for %s %s: not a live %s record",
                    verdict.kind.value,
                    verdict.record_id,
                    kind.value,
                )
                continue
            events.extend(self.evict(kind, verdict.record_id, verdict.reason, now))
        events.extend(self.collect_expired(now, (kind,)))
        return events

    def run_gc(self, now: float, kinds: Collection[RecordKind] = _ALL_KINDS) -> list[Event]:
        """Collect what has expired, then run each sweep that is due."""
        events = self.collect_expired(now, kinds)
        for kind in kinds:
            if self._next_sweep[kind] <= now:
                events.extend(self.sweep(now, kind))
        return events

    # ==================================================================================
    # Self-check
    # ==================================================================================

    def invariant_violations(self) -> list[str]:
        """Every way the records and indexes disagree; empty when the state is sound.

        O(n): for tests and the admin API, not for the hot path.
        """
        problems: list[str] = []
        for peer in self._peers.values():
            if peer.host_id not in self._hosts:
                problems.append(f"peer {peer.id} dangles: host {peer.host_id} is gone")
            if peer.task_id not in self._tasks:
                problems.append(f"peer {peer.id} dangles: task {peer.task_id} is gone")
            if peer.state is PeerState.LEAVE:
                problems.append(f"peer {peer.id} is kept in state leave")
        by_host: dict[str, set[str]] = {h: set() for h in self._hosts}
        by_task: dict[str, set[str]] = {t: set() for t in self._tasks}
        by_name: dict[str, set[str]] = {}
        for peer in self._peers.values():
            by_host.setdefault(peer.host_id, set()).add(peer.id)
            by_task.setdefault(peer.task_id, set()).add(peer.id)
        for host in self._hosts.values():
            by_name.setdefault(host.hostname, set()).add(host.id)
            if host.state is HostState.LEFT:
                problems.append(f"host {host.id} is kept in state left")
            if (host.state is HostState.DISCONNECTED) != (host.disconnected_at is not None):
                problems.append(f"host {host.id}: disconnected_at disagrees with {host.state}")
        if by_host != self._peers_by_host:
            problems.append("peers-by-host index disagrees with the peer records")
        if by_task != self._peers_by_task:
            problems.append("peers-by-task index disagrees with the peer records")
        if by_name != self._hosts_by_hostname:
            problems.append("hosts-by-hostname index disagrees with the host records")
        host_counts = Counter(h.state for h in self._hosts.values())
        if +host_counts != +self._host_states:
            problems.append(f"host state counts {dict(self._host_states)} != {dict(host_counts)}")
        peer_counts = Counter(p.state for p in self._peers.values())
        if +peer_counts != +self._peer_states:
            problems.append(f"peer state counts {dict(self._peer_states)} != {dict(peer_counts)}")
        for task in self._tasks.values():
            if task.state is TaskState.LEAVE:
                problems.append(f"task {task.id} is kept in state leave")
            bts = sum(
                self._peers[p].state is PeerState.BACK_TO_SOURCE for p in by_task.get(task.id, ())
            )
            if bts != task.back_to_source_count:
                problems.append(f"task {task.id}: back_to_source_count {task.back_to_source_count}")
        for kind in _ALL_KINDS:
            for record_id in self.queues[kind].ids():
                if not self._exists(kind, record_id):
                    problems.append(f"deadline held for evicted {kind.value} {record_id}")
                if record_id in self._undecided[kind]:
                    problems.append(f"{kind.value} {record_id} is both scheduled and undecided")
            for record_id in self._undecided[kind]:
                if not self._exists(kind, record_id):
                    problems.append(f"evicted {kind.value} {record_id} is still undecided")
        return problems

    # ==================================================================================
    # Internals
    # ==================================================================================

    def _set_host_state(self, host: Host, state: HostState) -> None:
        self._host_states[host.state] -= 1
        self._host_states[state] += 1
        host.state = state

    def _set_peer_state(self, peer: Peer, state: PeerState) -> None:
        self._peer_states[peer.state] -= 1
        self._peer_states[state] += 1
        peer.state = state

    def _owned_peer(self, peer_id: str, as_host: str | None) -> Peer:
        peer = self.peer(peer_id)
        if as_host is not None and peer.host_id != as_host:
            raise Forbidden(f"peer {peer_id!r} belongs to another host")
        return peer

    def _peer_changed(self, peer: Peer, task: Task, now: float) -> list[Event]:
        peer.updated_at = now
        task.updated_at = now
        self._reschedule_peer(peer, now)
        self._reschedule_task(task, now)
        return []

    def _exists(self, kind: RecordKind, record_id: str) -> bool:
        if kind is RecordKind.HOST:
            return record_id in self._hosts
        if kind is RecordKind.PEER:
            return record_id in self._peers
        return record_id in self._tasks

    def _reschedule(self, kind: RecordKind, record_id: str, now: float) -> None:
        if kind is RecordKind.HOST:
            self._reschedule_host(self._hosts[record_id], now)
        elif kind is RecordKind.PEER:
            self._reschedule_peer(self._peers[record_id], now)
        else:
            self._reschedule_task(self._tasks[record_id], now)

    def _reschedule_host(self, host: Host, now: float) -> None:
        self._schedule(RecordKind.HOST, host.id, self.policies.host_expiry(host, self, now))

    def _reschedule_peer(self, peer: Peer, now: float) -> None:
        self._schedule(RecordKind.PEER, peer.id, self.policies.peer_expiry(peer, self, now))

    def _reschedule_task(self, task: Task, now: float) -> None:
        self._schedule(RecordKind.TASK, task.id, self.policies.task_expiry(task, self, now))

    def _schedule(self, kind: RecordKind, record_id: str, expiry: Expiry | None) -> None:
        self.queues[kind].set(record_id, expiry)
        if expiry is None:
            self._undecided[kind].add(record_id)
        else:
            self._undecided[kind].discard(record_id)

    def _unschedule(self, kind: RecordKind, record_id: str) -> None:
        self.queues[kind].discard(record_id)
        self._undecided[kind].discard(record_id)

    def _evict_by_deadline(
        self, kind: RecordKind, record_id: str, expiry: Expiry, now: float
    ) -> list[Event]:
        if not self._exists(kind, record_id):  # pragma: no cover - removal discards deadlines
            return []
        if kind is RecordKind.HOST:
            return self._evict_host(self._hosts[record_id], expiry.reason, now, expiry.at)
        if kind is RecordKind.PEER:
            return self._evict_peer(self._peers[record_id], expiry.reason, now, expiry.at)
        return self._evict_task(self._tasks[record_id], expiry.reason, now, expiry.at)

    def _evict_host(
        self, host: Host, reason: str, now: float, deadline: float | None = None
    ) -> list[Event]:
        events: list[Event] = []
        for peer_id in sorted(self._peers_by_host.get(host.id, ())):
            events.extend(self._evict_peer(self._peers[peer_id], Reason.HOST_EVICTED, now))
        self._host_states[host.state] -= 1
        host.state = HostState.LEFT
        del self._hosts[host.id]
        del self._peers_by_host[host.id]
        same_name = self._hosts_by_hostname[host.hostname]
        same_name.discard(host.id)
        if not same_name:
            del self._hosts_by_hostname[host.hostname]
        self._unschedule(RecordKind.HOST, host.id)
        eviction = Eviction(
            kind=RecordKind.HOST,
            record_id=host.id,
            reason=str(reason),
            at=now,
            last_contact=host.last_contact_at,
            deadline=deadline,
            host_id=host.id,
            hostname=host.hostname,
        )
        self.policies.evicted(eviction)
        events.append(eviction)
        return events

    def _evict_peer(
        self, peer: Peer, reason: str, now: float, deadline: float | None = None
    ) -> list[Event]:
        task = self._tasks[peer.task_id]
        if peer.state is PeerState.BACK_TO_SOURCE:
            task.back_to_source_count -= 1
        self._peer_states[peer.state] -= 1
        peer.state = transition("peer", PEER_TRANSITIONS, peer.state, PeerEvent.LEAVE)
        del self._peers[peer.id]
        self._peers_by_host[peer.host_id].discard(peer.id)
        self._peers_by_task[task.id].discard(peer.id)
        self._unschedule(RecordKind.PEER, peer.id)
        task.updated_at = now
        self._reschedule_task(task, now)
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

    def _evict_task(
        self, task: Task, reason: str, now: float, deadline: float | None = None
    ) -> list[Event]:
        events: list[Event] = []
        for peer_id in sorted(self._peers_by_task.get(task.id, ())):
            events.extend(self._evict_peer(self._peers[peer_id], Reason.TASK_EVICTED, now))
        task.state = transition("task", TASK_TRANSITIONS, task.state, TaskEvent.LEAVE)
        last_contact = task.updated_at
        del self._tasks[task.id]
        del self._peers_by_task[task.id]
        self._unschedule(RecordKind.TASK, task.id)
        eviction = Eviction(
            kind=RecordKind.TASK,
            record_id=task.id,
            reason=str(reason),
            at=now,
            last_contact=last_contact,
            deadline=deadline,
            task_id=task.id,
        )
        self.policies.evicted(eviction)
        events.append(eviction)
        return events


def _register_event(task: Task) -> PeerEvent:
    """Dragonfly's size scope decides which Received state a new peer enters."""
    if task.content_length == 0:
        return PeerEvent.REGISTER_EMPTY
    if 0 < task.content_length <= _TINY_TASK_BYTES:
        return PeerEvent.REGISTER_TINY
    if task.total_piece_count == 1:
        return PeerEvent.REGISTER_SMALL
    return PeerEvent.REGISTER_NORMAL
