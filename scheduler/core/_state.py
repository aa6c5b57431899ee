"""The scheduler's state: one facade over the host, peer and task ledgers and the GC engine.

Every mutation takes ``now`` (seconds, from whatever clock the caller owns)
and returns the events it caused. Every mutation validates first and changes
state only once it knows it will succeed, so a raised error changes nothing.

Each record kind has its ledger (:mod:`._hosts`, :mod:`._peers`,
:mod:`._tasks`) owning its records, indexes, counts and deadlines; the GC
engine (:mod:`._gc`) evicts what is due through their common interface
(:mod:`._ledger`). The decisions are the :mod:`._pipeline`'s; :mod:`._followup` keeps
their bookkeeping in step with each mutation and makes the pushes it calls for.
Policies see the state only through :attr:`SchedulerState.view`.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from typing import Any, Final, final

from ._deadlines import DeadlineQueue
from ._events import ContactSource, Event, Expiry
from ._followup import FollowUp
from ._gc import DEFAULT_SWEEP_INTERVAL, GarbageCollector
from ._hosts import HostLedger, require_finite_positive
from ._ledger import Ledger
from ._lifecycle import HostState, PeerState, TaskState
from ._limits import DEFAULT_LIMITS, RecordLimits
from ._model import Host, HostInfo, Peer, RecordKind, Task, TaskInfo
from ._peers import PeerLedger
from ._pipeline import Decided, DecisionPipeline
from ._policy import PolicySet
from ._results import Announced, Scheduled, scheduled_parents
from ._tasks import TaskLedger

_ALL_KINDS: Final = tuple(RecordKind)

__all__ = ["DEFAULT_SWEEP_INTERVAL", "LedgerView", "SchedulerState"]


class LedgerView:
    """The read-only :class:`~._view.StateView` over the three ledgers and the decisions' books."""

    def __init__(
        self,
        hosts: HostLedger,
        peers: PeerLedger,
        tasks: TaskLedger,
        pipeline: DecisionPipeline,
        wall_offset: float = 0.0,
    ) -> None:
        self._wall_offset = wall_offset
        self._hosts = hosts
        self._peers = peers
        self._tasks = tasks
        self._pipeline = pipeline
        # One record by id: the ledgers' own look-ups (raising NotFound), bound once, so
        # that a policy's look-up is one call, not two (decisions make dozens).
        self.host: Callable[[str], Host] = hosts.get
        self.peer: Callable[[str], Peer] = peers.get
        self.task: Callable[[str], Task] = tasks.get
        self._ledgers: Mapping[RecordKind, Ledger[Any]] = {
            RecordKind.HOST: hosts,
            RecordKind.PEER: peers,
            RecordKind.TASK: tasks,
        }

    def wall_time(self, t: float) -> float:
        """A time of the core's clock (a ``now``) as Unix time, in seconds."""
        return self._wall_offset + t

    def has_host(self, host_id: str) -> bool:
        return self._hosts.exists(host_id)

    def has_peer(self, peer_id: str) -> bool:
        return self._peers.exists(peer_id)

    def has_task(self, task_id: str) -> bool:
        return self._tasks.exists(task_id)

    def hosts(self) -> Iterator[Host]:
        return self._hosts.records()

    def peers(self) -> Iterator[Peer]:
        return self._peers.records()

    def tasks(self) -> Iterator[Task]:
        return self._tasks.records()

    def host_count(self) -> int:
        return self._hosts.count()

    def peer_count(self) -> int:
        return self._peers.count()

    def task_count(self) -> int:
        return self._tasks.count()

    def host_counts_by_state(self) -> dict[HostState, int]:
        """O(1): live hosts per connection state (for gauges)."""
        return self._hosts.counts_by_state()

    def peer_counts_by_state(self) -> dict[PeerState, int]:
        """O(1): live peers per state (for gauges)."""
        return self._peers.counts_by_state()

    def task_counts_by_state(self) -> dict[TaskState, int]:
        """O(1): live tasks per state (for gauges)."""
        return self._tasks.counts_by_state()

    def peer_count_of_host(self, host_id: str) -> int:
        """O(1): how many peers the host has (0 for an unknown host)."""
        return self._peers.count_of_host(host_id)

    def peer_count_of_task(self, task_id: str) -> int:
        """O(1): how many peers the task has (0 for an unknown task)."""
        return self._peers.count_of_task(task_id)

    def peer_ids_of_host(self, host_id: str) -> frozenset[str]:
        return self._peers.ids_of_host(host_id)

    def peer_ids_of_task(self, task_id: str) -> frozenset[str]:
        return self._peers.ids_of_task(task_id)

    def peers_of_host(self, host_id: str) -> list[Peer]:
        return self._peers.of_host(host_id)

    def peers_of_task(self, task_id: str) -> list[Peer]:
        return self._peers.of_task(task_id)

    def host_ids_by_hostname(self, hostname: str) -> frozenset[str]:
        """Live (not evicted) hosts that announced ``hostname``."""
        return self._hosts.ids_by_hostname(hostname)

    def is_schedulable(self, host_id: str) -> bool:
        return self._hosts.is_schedulable(host_id)

    def schedulable_hosts(self) -> list[Host]:
        """Hosts that may be handed out as parents: connected, never left or evicted."""
        return self._hosts.schedulable()

    def deadline_of(self, kind: RecordKind, record_id: str) -> Expiry | None:
        """The deadline the engine currently holds for a record (None: no opinion)."""
        return self._ledgers[kind].deadline_of(record_id)

    def parents_of(self, peer_id: str) -> tuple[str, ...]:
        """The parents currently handed out to ``peer_id``, best first (empty: none)."""
        return self._pipeline.edges.parents_of(peer_id)

    def children_of(self, peer_id: str) -> tuple[str, ...]:
        """The children ``peer_id`` is currently handed out to (sorted)."""
        return self._pipeline.edges.children_of(peer_id)

    def blocked_parents_of(self, peer_id: str) -> frozenset[str]:
        """Peers ``peer_id`` reported as failed parents: never its parents again."""
        return self._pipeline.blocked_parents_of(peer_id)

    def piece_costs_of(self, peer_id: str) -> tuple[float, ...]:
        """The peer's recent costs per piece, oldest first (the bad-node rule's window)."""
        return self._pipeline.costs.costs_of(peer_id)

    def feeder_count_of_task(self, task_id: str) -> int:
        """O(1): peers on connected hosts that can feed the task now."""
        return self._pipeline.feeders.count(task_id)


@final
class SchedulerState(LedgerView):
    """Host, peer and task ledgers behind one facade, with deadline-driven GC.

    The queries are the :class:`LedgerView`'s; :attr:`view` is a separate view
    object, so a hook that receives it cannot reach the mutators.
    """

    def __init__(
        self,
        policies: PolicySet,
        *,
        now: float = 0.0,
        sweep_interval: float = DEFAULT_SWEEP_INTERVAL,
        rng: random.Random | None = None,
        limits: RecordLimits = DEFAULT_LIMITS,
        wall_offset: float = 0.0,
    ) -> None:
        """``rng`` seeds the decisions' sampling and jitter (a fresh one by default);
        ``limits`` bounds what one host can make the state keep; ``wall_offset`` is
        Unix time minus the core's clock (``view.wall_time(now)`` adds it), 0 when the
        caller's ``now`` already is Unix time or needs no wall time (a simulation)."""
        require_finite_positive("sweep_interval", sweep_interval)
        self.policies = policies
        self.sweep_interval = sweep_interval
        self.limits = limits
        hosts = HostLedger(policies, now=now, sweep_interval=sweep_interval)
        tasks = TaskLedger(policies, now=now, sweep_interval=sweep_interval)
        peers = PeerLedger(
            policies,
            now=now,
            sweep_interval=sweep_interval,
            hosts=hosts,
            tasks=tasks,
            limits=limits,
        )
        # The cascades: a host's or a task's eviction evicts its peers first.
        hosts.peers = tasks.peers = peers
        ledgers: dict[RecordKind, Ledger[Any]] = {
            RecordKind.HOST: hosts,
            RecordKind.PEER: peers,
            RecordKind.TASK: tasks,
        }

        def recompute(kind: RecordKind, record_id: str, now: float) -> None:
            ledgers[kind].reschedule(record_id, now)

        pipeline = DecisionPipeline(policies, rng, hosts.find, limits, recompute)
        super().__init__(hosts, peers, tasks, pipeline, wall_offset)
        #: The read-only view the policies (and any observer) get.
        self.view = LedgerView(hosts, peers, tasks, pipeline, wall_offset)
        self._followup = FollowUp(pipeline)
        for part in (hosts, peers, tasks, pipeline, self._followup):
            part.connect(self.view)
        self._gc = GarbageCollector((hosts, peers, tasks), policies, self.view)

    @property
    def queues(self) -> Mapping[RecordKind, DeadlineQueue]:
        """Each kind's deadline queue (for tests, metrics and benchmarks)."""
        return {ledger.kind: ledger.queue for ledger in self._gc.ledgers}

    # --- hosts -------------------------------------------------------------------------

    def announce_host(
        self, info: HostInfo, now: float, *, interval: float | None = None
    ) -> list[Event]:
        """Create or refresh a host. Re-announcing a disconnected host reconnects it.

        Afterwards the policies may supersede other hosts (e.g. same hostname,
        new address); those are evicted with reason ``superseded``.
        """
        return self._follow(self._hosts.announce(info, now, interval), now)

    def announce(self, info: HostInfo, now: float, *, interval: float | None = None) -> Announced:
        """:meth:`announce_host`, answered in one call: the events with the host's
        deadline and reconnect grace as they stand after it (what a session replies)."""
        events = self.announce_host(info, now, interval=interval)
        host_id, hosts = info.id, self._hosts
        return Announced(
            host_id, hosts.deadline_of(host_id), hosts.reconnect_grace(host_id, now), tuple(events)
        )

    def touch_host(
        self, host_id: str, now: float, source: ContactSource = ContactSource.PONG
    ) -> list[Event]:
        """Record that the host is alive (a pong or any message) without a full announce.

        It never causes an event; it returns the (empty) list like every mutator.
        """
        self._hosts.touch(host_id, now, source)
        return []

    def disconnect_host(
        self, host_id: str, now: float, *, defer_pushes: bool = False
    ) -> list[Event]:
        """The host's session dropped without a leave: unschedulable from now on.

        ``defer_pushes``: the children that held the host's peers as parents are
        not pushed new parents now but at the next :meth:`flush_pushes`, once per
        child, however many deferred disconnects came first. A service whose
        sessions drop by the dozen (a rack loses power) marks every host first and
        then decides once, with every dead host already excluded, instead of
        pushing parents that are about to be marked dead themselves.
        """
        events = self._hosts.disconnect(host_id, now)
        return [*events, *self._followup.follow(events, now, defer=defer_pushes)]

    @property
    def pushes_pending(self) -> bool:
        """Whether a deferred mutation left pushes for :meth:`flush_pushes`."""
        return self._followup.pushes_pending

    def flush_pushes(self, now: float, max_children: int | None = None) -> list[Event]:
        """The proactive pushes deferred so far (one per affected child, oldest first).

        ``max_children`` bounds the call: the other children stay pending, so that a
        caller can let other work (more sessions ending) run between slices.
        """
        return self._followup.flush_pushes(now, max_children)

    def leave_host(self, host_id: str, now: float) -> list[Event]:
        """A graceful leave: the host and its peers are evicted at once."""
        return self._follow(self._hosts.leave(host_id, now), now)

    def reconnect_grace(self, host_id: str, now: float) -> float | None:
        """Seconds a disconnect at ``now`` would leave the host before the policies evict it.

        None when no policy would evict a disconnected host. Changes nothing.
        """
        return self._hosts.reconnect_grace(host_id, now)

    def evict(self, kind: RecordKind, record_id: str, reason: str, now: float) -> list[Event]:
        """Evict one record now (admin action or a policy verdict)."""
        return self._follow(self._gc.by_kind[kind].evict(record_id, reason, now), now)

    # --- peers and tasks ---------------------------------------------------------------

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
        events = self._peers.register(peer_id, host_id, task_info, now, back_to_source_limit)
        return self._follow(events, now)

    def start_download(
        self, peer_id: str, now: float, *, as_host: str | None = None
    ) -> list[Event]:
        self._peers.start_download(peer_id, now, as_host)
        return self._follow([], now, peer_id)

    def back_to_source(
        self, peer_id: str, now: float, *, as_host: str | None = None
    ) -> list[Event]:
        self._peers.back_to_source(peer_id, now, as_host)
        return self._follow([], now, peer_id)

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
        """Record finished pieces (a batch), the parent they came from, and the cost.

        The parent is recorded (``Peer.parents``), and its host counts the new pieces
        as upload successes, only if the scheduler handed that parent to this peer.
        Every piece is checked before any is recorded (see ``RecordLimits``).
        """
        added = self._peers.finish_pieces(peer_id, pieces, now, cost=cost, as_host=as_host)
        self._pipeline.pieces_finished(peer_id, parent_id, added, len(pieces), cost)
        return self._follow([], now, peer_id)

    def finish_download(
        self, peer_id: str, now: float, *, as_host: str | None = None
    ) -> list[Event]:
        self._peers.finish_download(peer_id, now, as_host)
        return self._follow([], now, peer_id)

    def fail_download(self, peer_id: str, now: float, *, as_host: str | None = None) -> list[Event]:
        self._peers.fail_download(peer_id, now, as_host)
        return self._follow([], now, peer_id)

    def leave_peer(self, peer_id: str, now: float, *, as_host: str | None = None) -> list[Event]:
        return self._follow(self._peers.leave(peer_id, now, as_host), now)

    # --- scheduling ----------------------------------------------------------------------

    def schedule_peer(self, peer_id: str, now: float, *, as_host: str | None = None) -> list[Event]:
        """Decide where a newly registered peer downloads from.

        Returns exactly one :class:`~._events.PeerScheduled` (cause ``register``),
        and a :class:`~._events.SeedFetchRequested` when it asks a seed host to
        fetch the task.
        """
        return self._pipeline.schedule(peer_id, now, as_host).events()

    def reschedule_peer(
        self,
        peer_id: str,
        failed_parents: Sequence[str],
        now: float,
        *,
        as_host: str | None = None,
    ) -> list[Event]:
        """The peer asks again: ``failed_parents`` are blocklisted for it.

        Each failed parent that was handed to this peer counts an upload failure
        on its host. Returns one :class:`~._events.PeerScheduled` (``reschedule``).
        """
        return self._pipeline.reschedule(peer_id, failed_parents, now, as_host).events()

    def register_and_schedule(
        self,
        peer_id: str,
        host_id: str,
        task_info: TaskInfo,
        now: float,
        *,
        back_to_source_limit: int = 200,
    ) -> Scheduled:
        """:meth:`register_peer` and the peer's first decision, answered in one call.

        A registration that raises changes nothing and decides nothing.
        """
        events = self.register_peer(
            peer_id, host_id, task_info, now, back_to_source_limit=back_to_source_limit
        )
        return self._scheduled(events, self._pipeline.schedule(peer_id, now, host_id))

    def reschedule(
        self,
        peer_id: str,
        failed_parents: Sequence[str],
        now: float,
        *,
        as_host: str | None = None,
    ) -> Scheduled:
        """:meth:`reschedule_peer`, answered as a :class:`~._results.Scheduled`."""
        decided = self._pipeline.reschedule(peer_id, failed_parents, now, as_host)
        return self._scheduled([], decided)

    def _scheduled(self, events: list[Event], decided: Decided) -> Scheduled:
        parents = scheduled_parents(self.view, decided.parents)
        return Scheduled(decided.event, parents, (*events, decided.event, *decided.requests))

    def _follow(self, events: list[Event], now: float, changed: str | None = None) -> list[Event]:
        """The mutation's events, then the proactive pushes it calls for."""
        return [*events, *self._followup.follow(events, now, changed)]

    # --- GC ----------------------------------------------------------------------------

    def next_deadline(self, kinds: Collection[RecordKind] = _ALL_KINDS) -> float | None:
        """When the GC must next run for ``kinds``: the earliest deadline or sweep."""
        return self._gc.next_deadline(kinds)

    def next_sweep_at(self, kind: RecordKind) -> float:
        return self._gc.by_kind[kind].next_sweep_at

    def collect_expired(
        self,
        now: float,
        kinds: Collection[RecordKind] = _ALL_KINDS,
        max_count: int | None = None,
    ) -> list[Event]:
        """Evict every record of ``kinds`` whose deadline is <= ``now``; nothing else.

        Hosts go first so their peers leave with reason ``host_evicted``; a task
        made idle by that gets a fresh deadline, and is collected in the same
        call if that deadline has passed too.

        ``max_count`` bounds the call: at most that many due records are evicted
        (with what cascades from them), earliest deadline first; the others stay
        due and ``next_deadline(kinds) <= now`` until a later call collects them.
        A caller that must not block long collects in such slices.
        """
        return self._follow(self._gc.collect_expired(now, kinds, max_count), now)

    def sweep(self, now: float, kind: RecordKind) -> list[Event]:
        """The periodic batch sweep of one kind: apply the policies' verdicts.

        It is also the safety net: records with no deadline are re-evaluated
        (kept in a set, so this costs O(undecided), not O(n)), so a policy whose
        earlier answer was lost to a raising plugin gets another chance to decide.
        """
        return self._follow(self._gc.sweep(now, kind), now)

    def run_gc(
        self,
        now: float,
        kinds: Collection[RecordKind] = _ALL_KINDS,
        max_count: int | None = None,
    ) -> list[Event]:
        """Collect what has expired, then run each sweep that is due.

        ``max_count`` bounds each collection, as in :meth:`collect_expired`.
        """
        return self._follow(self._gc.run_gc(now, kinds, max_count), now)

    def invariant_violations(self) -> list[str]:
        """Every way the records and indexes disagree; empty when the state is sound.

        O(n): for tests and the admin API, not for the hot path.
        """
        problems = [p for ledger in self._gc.ledgers for p in ledger.invariant_violations()]
        return problems + self._followup.invariant_violations()
