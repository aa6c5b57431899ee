"""One policy set through one workload: the real core, in virtual time.

The engine owns the clock (an :class:`EventQueue`), the ground truth and the
service's session rules, modelled analytically: a crash is a ``disconnect_host``
at once when the policy set has a disconnect signal; a hang is one at the first
ping after it plus ``ping_timeout`` when the set pings; a graceful leave is a
``leave_host``; a host that stops announcing sends nothing more. Between
events, the GC runs at every deadline the core names, through the same
:class:`~scheduler.core.GcDriver` as the service's GC loops.
"""

from __future__ import annotations

import random
import time
from collections.abc import Sequence
from typing import Final, final

import attrs

from ..core import (
    Event,
    Eviction,
    GcDriver,
    HostInfo,
    HostState,
    HostType,
    PeerScheduled,
    RecordKind,
    ScheduleAction,
    SchedulerError,
    SchedulerState,
    SeedFetchRequested,
    TaskInfo,
)
from ..policies import load_policies
from ._metrics import Metrics, SetResult
from ._peers import PeerDriver
from ._queue import Action, EventQueue
from ._scenario import PolicySetSpec, Scenario, ping_detection_at
from ._transfers import NetworkTransfers, TimedTransfers, Transfers
from ._truth import GroundTruth, Mode, SimHost, SimPeer
from ._workload import Cause, HostPlan, Request, task_ids

#: A live host whose record was evicted reconnects and announces again this much later.
RECONNECT_DELAY: Final = 1.0
#: GC rounds at one instant before the engine gives up (a policy that never settles).
MAX_GC_ROUNDS_AT_ONCE: Final = 1000


@final
class ChurnSimulation:
    """Run with :meth:`run`; read the figures from the returned :class:`SetResult`."""

    def __init__(self, scenario: Scenario, spec: PolicySetSpec, plans: Sequence[HostPlan]) -> None:
        self.scenario = scenario
        self.spec = spec
        policies = load_policies(enable=spec.enable, disable=spec.disable, config=spec.config)
        self.state = SchedulerState(policies, now=0.0, rng=random.Random(scenario.seed))
        self.gc = GcDriver(self.state)
        self.queue = EventQueue()
        self.truth = GroundTruth()
        self.metrics = Metrics()
        self.transfers: Transfers
        if scenario.bandwidth is None:
            self.transfers = TimedTransfers(scenario, self.queue, self.truth)
        else:
            self.transfers = NetworkTransfers(scenario, scenario.bandwidth, self.queue, self.truth)
        self.peers = PeerDriver(
            scenario=scenario,
            state=self.state,
            queue=self.queue,
            truth=self.truth,
            metrics=self.metrics,
            dispatch=self.dispatch,
            transfers=self.transfers,
        )
        self.tasks = [
            TaskInfo(
                id=task_id,
                url=f"https://origin.invalid/{task_id}",
                piece_length=scenario.piece_length,
                content_length=scenario.pieces * scenario.piece_length,
                total_piece_count=scenario.pieces,
            )
            for task_id in task_ids(scenario)
        ]
        self._task_index = {task.id: i for i, task in enumerate(self.tasks)}
        self._peer_serial = 0
        for plan in plans:
            self.queue.schedule(plan.joined_at, self._joiner(plan))

    # --- the loop ------------------------------------------------------------------------

    def run(self) -> SetResult:
        started, cpu_started = time.perf_counter(), time.process_time()
        end = self.scenario.duration
        queue, gc = self.queue, self.gc
        rounds, last_gc = 0, -1.0
        while True:
            next_event = queue.peek()
            run = gc.run_due(queue.now, end if next_event is None else min(end, next_event))
            if run is not None:
                at = run.at
                rounds = rounds + 1 if at == last_gc else 0
                if rounds > MAX_GC_ROUNDS_AT_ONCE:
                    raise RuntimeError(f"the GC does not settle at t={at}")
                last_gc = queue.now = at
                self.dispatch(run.events, at)
                continue
            if next_event is None or next_event > end:
                break
            at, action = queue.pop()
            action(at)
        elapsed = time.perf_counter() - started
        cpu = time.process_time() - cpu_started
        return SetResult.from_metrics(
            self.spec.name, self.scenario.crash_rate, self.metrics, elapsed, cpu
        )

    def dispatch(self, events: Sequence[Event], at: float) -> list[PeerScheduled]:
        """Apply what the core returned; give back the decisions that are replies.

        Every decision is counted here, once: each list the core returns passes
        through here exactly once. Pushes reach their child as a queued event
        at the same instant; seed fetch requests reach the seed the same way.
        """
        replies: list[PeerScheduled] = []
        for event in events:
            if isinstance(event, PeerScheduled):
                self._record(event)
                if event.pushed:
                    self.queue.schedule(at, self._pusher(event))
                else:
                    replies.append(event)
            elif isinstance(event, SeedFetchRequested):
                self.queue.schedule(at, self._fetcher(event))
            elif isinstance(event, Eviction):
                self._evicted(event, at)
        return replies

    def _record(self, event: PeerScheduled) -> None:
        decision = event.decision
        dead = [self.truth.death_cause(p) for p in decision.parents]
        if decision.action is not ScheduleAction.PARENTS:
            dead = []
        self.metrics.record_decision(str(decision.action), event.cause, dead)

    def _observe_records(self) -> None:
        state = self.state
        self.metrics.observe_records(state.host_count() + state.peer_count() + state.task_count())

    # --- hosts -----------------------------------------------------------------------------

    def _joiner(self, plan: HostPlan) -> Action:
        return lambda at: self._join(plan, at)

    def _join(self, plan: HostPlan, at: float) -> None:
        info = HostInfo(
            hostname=plan.hostname,
            ip=plan.ip,
            type=HostType.SEED if plan.seed else HostType.NORMAL,
            idc=plan.idc,
            location=plan.location,
        )
        host = SimHost(plan=plan, info=info, connected_at=at)
        # With a network model, the host announces its uplink, as a daemon that knows its
        # NIC would; the timed model gives none.
        uplink = self.transfers.add_host(host)
        if uplink:
            host.info = attrs.evolve(info, upload_bandwidth=uplink)
        self.truth.add_host(host)
        self._announce(host, at)
        if plan.death is not None:
            death = plan.death
            self.queue.schedule(death.at, lambda now: self._die(host, death.cause, now))
        for request in plan.requests:
            self.queue.schedule(request.at, self._requester(host, request))

    def _announce(self, host: SimHost, at: float) -> None:
        if host.dead:
            return  # the chain stops: dead hosts (and hosts that stopped announcing) are silent
        interval = self.scenario.announce_interval
        try:
            events = self.state.announce_host(
                host.info, at, interval=interval if self.spec.announce_with_interval else None
            )
        except SchedulerError as exc:
            self.metrics.errors[type(exc).__name__] += 1
            events = []
        self.dispatch(events, at)
        self._observe_records()
        self.queue.schedule(at + interval, lambda now: self._announce(host, now))

    def _die(self, host: SimHost, cause: Cause, at: float) -> None:
        host.dead, host.cause, host.died_at = True, cause, at
        self.metrics.deaths[str(cause)] += 1
        self.transfers.host_died(host, at)
        for peer in host.peers.values():
            peer.epoch += 1  # its downloads stop where they are
            peer.batch = None
        state = self.state
        if not state.has_host(host.id):
            return
        if cause is Cause.LEAVE:
            self.dispatch(state.leave_host(host.id, at), at)
        elif cause is Cause.CRASH and self.spec.disconnect_signal:
            self._disconnect(host, at)
        elif cause is Cause.HANG and self.spec.pings:
            detected = ping_detection_at(host.connected_at, at, self.scenario)
            self.queue.schedule(detected, lambda now: self._disconnect(host, now))
        # STALE: the daemon stopped announcing (and serving) but its session lives on.

    def _disconnect(self, host: SimHost, at: float) -> None:
        state = self.state
        if state.has_host(host.id) and state.host(host.id).state is HostState.CONNECTED:
            self.dispatch(state.disconnect_host(host.id, at), at)

    def _evicted(self, eviction: Eviction, at: float) -> None:
        """A record went. Only a live host's own records need the simulation to react."""
        if eviction.kind is RecordKind.HOST:
            host = self.truth.hosts.get(eviction.record_id)
            if host is None or host.dead:
                return
            # A false positive: the daemon is told, reconnects and announces again.
            self.metrics.false_evictions += 1
            host.connected_at = at + RECONNECT_DELAY
            self.queue.schedule(at + RECONNECT_DELAY, lambda now: self._reannounce(host, now))
        elif eviction.kind is RecordKind.PEER:
            peer = self.truth.peers.get(eviction.record_id)
            if peer is not None and peer.active:
                self.peers.abandon(peer, at)

    def _reannounce(self, host: SimHost, at: float) -> None:
        if host.dead or self.state.has_host(host.id):
            return
        try:
            events = self.state.announce_host(
                host.info,
                at,
                interval=self.scenario.announce_interval
                if self.spec.announce_with_interval
                else None,
            )
        except SchedulerError as exc:
            self.metrics.errors[type(exc).__name__] += 1
            return
        self.dispatch(events, at)

    # --- peers -------------------------------------------------------------------------------

    def _requester(self, host: SimHost, request: Request) -> Action:
        return lambda at: self._request(host, request.task, at)

    def _request(self, host: SimHost, task: int, at: float) -> None:
        if host.dead:
            return
        existing = host.peers.get(task)
        if existing is not None and existing.mode not in (Mode.FAILED, Mode.ABANDONED):
            self.metrics.cache_hits += 1  # it has (or is getting) the task already
            return
        self._peer_serial += 1
        peer = SimPeer(
            id=f"peer-{self._peer_serial}",
            host=host,
            task=task,
            task_id=self.tasks[task].id,
            registered_at=at,
            seed=False,
        )
        if self._register(peer, self.tasks[task], at):
            self.metrics.downloads_started += 1
            self.peers.schedule(peer, at)

    def _register(self, peer: SimPeer, task: TaskInfo, at: float) -> bool:
        self.peers.contact(peer.host, at)
        try:
            events = self.state.register_peer(peer.id, peer.host.id, task, at)
        except SchedulerError as exc:
            self.metrics.errors[type(exc).__name__] += 1
            return False
        self.truth.add_peer(peer)
        self.dispatch(events, at)
        self._observe_records()
        return True

    def _pusher(self, event: PeerScheduled) -> Action:
        def deliver(at: float) -> None:
            peer = self.truth.peers.get(event.peer_id)
            if peer is not None:
                self.peers.apply(peer, event.decision, at)

        return deliver

    def _fetcher(self, event: SeedFetchRequested) -> Action:
        return lambda at: self._seed_fetch(event, at)

    def _seed_fetch(self, event: SeedFetchRequested, at: float) -> None:
        """A seed obeys ``fetch_task``: it registers the peer id it was given, then fetches."""
        host = self.truth.hosts.get(event.seed_host_id)
        if host is None or host.dead or event.peer_id in self.truth.peers:
            return
        task = TaskInfo(
            id=event.task_id,
            url=event.url,
            piece_length=event.piece_length,
            content_length=event.content_length,
            total_piece_count=event.total_piece_count,
        )
        index = self._task_index.get(event.task_id)
        if index is None:
            return
        peer = SimPeer(
            id=event.peer_id,
            host=host,
            task=index,
            task_id=event.task_id,
            registered_at=at,
            seed=True,
        )
        if self._register(peer, task, at):
            self.peers.schedule(peer, at)
