"""A deterministic harness that drives :class:`SchedulerState` the way the service does.

Many simulated hosts, each with its own announce interval, jitter and clock
drift, are interleaved on one timeline. Time only moves forward; whenever it
moves, the harness wakes the GC at every deadline on the way, through the same
:class:`~scheduler.core.GcDriver` as the service's GC loops, and after every step
it checks the core invariants, the decisions and pushes the step made, and that no
plugin raised (the core contains a plugin's error; a test must not).
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from typing import Any

from ..core import (
    ACTIVE_PEER_STATES,
    DEFAULT_SWEEP_INTERVAL,
    BackToSourceLimitReached,
    Conflict,
    ContactSource,
    Decision,
    Event,
    Eviction,
    Expiry,
    GcDriver,
    GcRun,
    HostState,
    IllegalTransition,
    Peer,
    PeerScheduled,
    PeerState,
    PolicySet,
    Reason,
    RecordKind,
    ScheduleAction,
    SchedulerState,
    SeedFetchRequested,
    Task,
    TaskInfo,
)
from ._decisions import InvariantError, PushCheck, check_decisions
from ._strategies import (
    Advance,
    Announce,
    Crash,
    DownloadSwarm,
    Elapse,
    EveryoneObeys,
    Hang,
    HostProfile,
    Leave,
    NextAnnounce,
    PeerStep,
    Pong,
    RegisterPeer,
    ReportFailedParent,
    Step,
    Swarm,
    Sweep,
)

#: Reasons that never come with a deadline: the record went because another did.
CASCADE_REASONS = frozenset({Reason.HOST_EVICTED, Reason.TASK_EVICTED})
_EXPECTED_ERRORS = (IllegalTransition, Conflict, BackToSourceLimitReached)


class Simulation:
    """Apply steps to a fresh :class:`SchedulerState` and check the invariants after each.

    It takes over ``policies.on_error`` (calling the one it had, if any) to learn of
    every error the policy set contains; ``expected_plugin_errors`` lists the
    ``(plugin, hook)`` pairs whose errors the test expects.
    """

    def __init__(
        self,
        policies: PolicySet,
        profiles: Sequence[HostProfile],
        *,
        start: float = 1000.0,
        sweep_interval: float = DEFAULT_SWEEP_INTERVAL,
        unique_hostnames: bool = True,
        seed: int = 0,
        expected_plugin_errors: Collection[tuple[str, str]] = (),
    ) -> None:
        if not profiles:
            raise ValueError("a simulation needs at least one host profile")
        self.policies = policies
        #: ``(plugin, hook)`` pairs whose contained errors the test expects; any other
        #: error a plugin raises (or a malformed answer it gives) fails the next check.
        self.expected_plugin_errors = frozenset(expected_plugin_errors)
        #: Every error the policy set contained, in order: ``(plugin, hook, exception)``.
        self.plugin_errors: list[tuple[str, str, BaseException]] = []
        self._errors_checked = 0
        earlier = policies.on_error

        def contained(plugin: str, hook: str, exc: BaseException) -> None:
            self.plugin_errors.append((plugin, hook, exc))
            if earlier is not None:
                earlier(plugin, hook, exc)

        policies.on_error = contained
        self.profiles = list(profiles)
        self.now = start
        self.state = SchedulerState(
            policies, now=start, sweep_interval=sweep_interval, rng=random.Random(seed)
        )
        self._gc = GcDriver(self.state)
        self.unique_hostnames = unique_hostnames
        #: Per host: when it will next announce on its own (None: silent, crashed or left).
        self.next_announce: list[float | None] = [None] * len(profiles)
        self.evictions: list[Eviction] = []
        self.events: list[Event] = []
        self.host_evicted_at: dict[str, float] = {}
        self._peer_seq = 0
        #: How many ``reschedule`` requests named a failed parent the peer was handed.
        self.failed_parent_reports = 0
        #: The jitter of each announce an :class:`Elapse` delivers (seeded: reproducible).
        self._jitter = random.Random(f"announces-{seed}")
        self._pushes = PushCheck(self.state.view)
        #: The last decision each peer was given (what ``obey`` steps follow).
        self.decisions: dict[str, Decision] = {}
        self.check()

    # --- steps ----------------------------------------------------------------------------

    def apply(self, step: Step) -> None:
        """Apply one step, then check every invariant."""
        handler: Callable[[Any], None] = getattr(self, f"_on_{type(step).__name__.lower()}")
        handler(step)
        self.run_gc()
        self.check()

    def run(self, steps: Iterable[Step]) -> None:
        for step in steps:
            self.apply(step)

    def announce(self, host: int, jitter: float = 0.0) -> None:
        self.apply(Announce(host, jitter))

    def advance(self, seconds: float) -> None:
        self.apply(Advance(seconds))

    def _profile(self, index: int) -> HostProfile:
        return self.profiles[index % len(self.profiles)]

    def _on_announce(self, step: Announce) -> None:
        index = step.host % len(self.profiles)
        profile = self.profiles[index]
        events = self.state.announce_host(profile.info, self.now, interval=profile.interval)
        self._record(events, allowed={Reason.SUPERSEDED, *CASCADE_REASONS})
        period = profile.period()
        self.next_announce[index] = (
            None if period is None else self.now + period * (1.0 + profile.jitter * step.jitter)
        )
        host = self.state.host(profile.info.id)
        if not host.schedulable:
            raise InvariantError(f"host {host.id} is not schedulable right after it announced")

    def _on_leave(self, step: Leave) -> None:
        index = step.host % len(self.profiles)
        host_id = self.profiles[index].info.id
        self.next_announce[index] = None
        if self.state.has_host(host_id):
            self._record(self.state.leave_host(host_id, self.now), allowed={Reason.LEAVE})
            if self.state.has_host(host_id):
                raise InvariantError(f"host {host_id} is still present after a leave")

    def _on_crash(self, step: Crash) -> None:
        index = step.host % len(self.profiles)
        host_id = self.profiles[index].info.id
        self.next_announce[index] = None
        if self.state.has_host(host_id) and self.state.host(host_id).state is HostState.CONNECTED:
            self._record(self.state.disconnect_host(host_id, self.now), allowed=set())
            if self.state.is_schedulable(host_id):
                raise InvariantError(f"host {host_id} is schedulable right after it disconnected")

    def _on_hang(self, step: Hang) -> None:
        self.next_announce[step.host % len(self.profiles)] = None

    def _on_pong(self, step: Pong) -> None:
        index = step.host % len(self.profiles)
        host_id = self.profiles[index].info.id
        # Only a live session answers pings.
        if self.next_announce[index] is not None and self.state.is_schedulable(host_id):
            self.state.touch_host(host_id, self.now, ContactSource.PONG)

    def _on_registerpeer(self, step: RegisterPeer) -> str | None:
        """Register a peer on the host, if it is connected; return the peer's id."""
        host_id = self._profile(step.host).info.id
        if not self.state.is_schedulable(host_id):
            return None
        self._peer_seq += 1
        peer_id = f"peer-{self._peer_seq}"
        # The session answers register_peer with the peer's first decision, in one call.
        scheduled = self.state.register_and_schedule(peer_id, host_id, step.task, self.now)
        self._record(list(scheduled.events), allowed=set())
        return peer_id

    def _connected(self, start: int, size: int) -> list[int]:
        """Up to ``size`` indexes of hosts that are connected now, from the ``start``-th."""
        connected = [i for i, p in enumerate(self.profiles) if self.state.is_schedulable(p.info.id)]
        if not connected:
            return []
        first = start % len(connected)
        return (connected[first:] + connected[:first])[:size]

    def _on_swarm(self, step: Swarm) -> None:
        for index in self._connected(step.start, step.size):
            self._on_registerpeer(RegisterPeer(index, step.task))

    def _on_downloadswarm(self, step: DownloadSwarm) -> None:
        for index in self._connected(step.start, step.size):
            before = self.state.peer_ids_of_task(step.task.id)
            if self._on_registerpeer(RegisterPeer(index, step.task)) is None:
                continue
            # The new peer, and a seed peer its registration may have asked for, each
            # obey twice: start (or go to the origin, or ask again), then report a piece.
            # The next member of the swarm finds them parents with a finished piece.
            for _ in range(2):
                for peer_id in sorted(self.state.peer_ids_of_task(step.task.id) - before):
                    if self.state.has_peer(peer_id):  # an earlier one may have evicted it
                        self._act(peer_id, "obey", step.cost)
                        self.run_gc()
                        self.check()

    def _on_reportfailedparent(self, step: ReportFailedParent) -> None:
        holders = sorted(p.id for p in self.state.peers() if self.state.parents_of(p.id))
        if not holders:
            return
        child = holders[step.peer % len(holders)]
        parents = self.state.parents_of(child)
        self._act(child, "reschedule", None, failed=parents[step.parent % len(parents)])

    def _on_everyoneobeys(self, step: EveryoneObeys) -> None:
        for peer_id in sorted(p.id for p in self.state.peers()):
            if self.state.has_peer(peer_id):  # an earlier one's step may have evicted it
                self._act(peer_id, "obey", step.cost)
                self.run_gc()
                self.check()

    def _on_peerstep(self, step: PeerStep) -> None:
        peers = sorted(p.id for p in self.state.peers())
        if peers:
            self._act(peers[step.peer % len(peers)], step.action, step.cost, pick=step.peer)

    def _act(
        self,
        peer_id: str,
        action: str,
        cost: float | None,
        *,
        pick: int = 0,
        failed: str | None = None,
    ) -> None:
        """The peer does ``action`` (one of :data:`PEER_ACTIONS`); an illegal one changes nothing.

        ``pick`` chooses the parent a piece comes from; a ``reschedule`` reports
        ``failed`` (default: the first parent it holds, if any) as a failed parent.
        """
        peer = self.state.peer(peer_id)
        task = self.state.task(peer.task_id)
        action = self._obey(peer, task) if action == "obey" else action
        before = (peer.state, task.state, peer.updated_at, task.back_to_source_count)
        before_pieces = len(peer.finished_pieces)
        state, now = self.state, self.now
        parents = state.parents_of(peer.id)
        # Pieces come from a parent the scheduler handed out, when there is one.
        parent_id = parents[pick % len(parents)] if parents else None
        failed_parents = parents[:1] if failed is None else (failed,)
        piece = self._next_piece(peer, task)
        actions: Mapping[str, Callable[[], list[Event]]] = {
            "start": lambda: state.start_download(peer.id, now),
            "back_to_source": lambda: state.back_to_source(peer.id, now),
            "pieces": lambda: state.finish_pieces(
                peer.id, [piece], now, parent_id=parent_id, cost=cost
            ),
            "finish": lambda: state.finish_download(peer.id, now),
            "fail": lambda: state.fail_download(peer.id, now),
            "leave": lambda: state.leave_peer(peer.id, now),
            "schedule": lambda: state.schedule_peer(peer.id, now),
            "reschedule": lambda: state.reschedule_peer(peer.id, failed_parents, now),
        }
        try:
            events = actions[action]()
        except _EXPECTED_ERRORS as exc:
            after = (peer.state, task.state, peer.updated_at, task.back_to_source_count)
            if after != before or len(peer.finished_pieces) != before_pieces:
                error = type(exc).__name__
                raise InvariantError(f"{error} changed state: {before} -> {after}") from exc
            return
        if action == "reschedule" and failed_parents:
            self.failed_parent_reports += 1
        self._record(events, allowed={Reason.LEAVE})

    def _obey(self, peer: Peer, task: Task) -> str:
        """What a well-behaved peer does next, after the last decision it was given."""
        decision = self.decisions.get(peer.id)
        if decision is None:
            return "schedule"
        complete = 0 < _piece_count(peer, task) <= len(peer.finished_pieces)
        progress = "finish" if complete else "pieces"
        if decision.action is ScheduleAction.PARENTS:
            return progress if peer.state in ACTIVE_PEER_STATES else "start"
        if decision.action is ScheduleAction.BACK_TO_SOURCE:
            return progress if peer.state is PeerState.BACK_TO_SOURCE else "back_to_source"
        if decision.action is ScheduleAction.WAIT:
            return "reschedule"
        return "fail"

    @staticmethod
    def _next_piece(peer: Any, task: Any) -> int:
        count = _piece_count(peer, task)
        limit = count if count > 0 else 10
        return len(peer.finished_pieces) % limit

    def _on_advance(self, step: Advance) -> None:
        self.advance_to(self.now + step.seconds)

    def _on_elapse(self, step: Elapse) -> None:
        until = self.now + step.seconds
        while True:
            due = [(t, i) for i, t in enumerate(self.next_announce) if t is not None and t <= until]
            if not due:
                break
            when, index = min(due)
            self.advance_to(max(when, self.now))
            self._on_announce(Announce(index, self._jitter.uniform(-1.0, 1.0)))
            self.run_gc()
        self.advance_to(until)

    def _on_nextannounce(self, step: NextAnnounce) -> None:
        pending = [(t, i) for i, t in enumerate(self.next_announce) if t is not None]
        if not pending:
            return
        when, index = min(pending)
        self.advance_to(max(when, self.now))
        self._on_announce(Announce(index, 0.0))

    def _on_sweep(self, step: Sweep) -> None:
        kind = RecordKind(step.kind)
        self._record(self.state.sweep(self.now, kind), any_reason=True)

    # --- time and GC ------------------------------------------------------------------------

    def advance_to(self, when: float) -> None:
        """Move the clock to ``when``, waking the GC at every deadline on the way."""
        if when < self.now or math.isnan(when):
            raise ValueError(f"time cannot go backwards ({self.now} -> {when})")
        for run in self._gc.advance(self.now, when):
            self.now = run.at
            self._record_gc(run)
        self.now = when

    def run_gc(self) -> None:
        """Run the GC now: what has expired, and each sweep that is due."""
        self._record_gc(self._gc.run(self.now))

    def _record_gc(self, run: GcRun) -> None:
        # Evictions here must come from a held deadline, except a due sweep's verdicts.
        self._record(list(run.events), swept=run.swept)

    def record(self, events: list[Event]) -> None:
        """Judge and keep the events of a mutation made on :attr:`state` directly.

        A test that calls the core itself (rather than through :meth:`apply`) passes
        the events here, so decisions, pushes and evictions are checked as for any
        step; the next step's push check then starts from the state after them.
        """
        self._record(events)

    def _record(
        self,
        events: list[Event],
        *,
        allowed: set[Reason] | None = None,
        any_reason: bool = False,
        swept: Collection[RecordKind] = (),
    ) -> None:
        """Check each eviction against why it was allowed to happen, and keep it.

        Also judge the mutation's decisions (never a dead or useless parent) and
        pushes (exactly the children that lost a parent, once each), and let a
        seed host obey a fetch request as ``scheduler peer --seed`` does.
        """
        self.events.extend(events)
        view = self.state.view
        check_decisions(
            view, events, limit=self.state.policies.schedule_limits().candidate_parent_limit
        )
        self._pushes.check(view, events, self.state.policies, self.now)
        self._pushes = PushCheck(view)
        for event in events:
            if isinstance(event, PeerScheduled):
                self.decisions[event.peer_id] = event.decision
            elif isinstance(event, SeedFetchRequested):
                self._fetch(event)
        for event in events:
            if not isinstance(event, Eviction):
                continue
            self.evictions.append(event)
            if event.kind is RecordKind.HOST:
                self.host_evicted_at[event.record_id] = event.at
            if event.reason in CASCADE_REASONS:
                continue
            if event.deadline is not None:
                if event.deadline > event.at:
                    raise InvariantError(f"evicted before its deadline: {event}")
            elif (
                not any_reason
                and event.kind not in swept
                and (allowed is None or event.reason not in allowed)
            ):
                raise InvariantError(f"evicted with no deadline and no verdict: {event}")

    def _fetch(self, request: SeedFetchRequested) -> None:
        """The seed registers the peer it was asked for; its first decision follows."""
        task = TaskInfo(
            request.task_id,
            request.url,
            request.piece_length,
            request.content_length,
            request.total_piece_count,
        )
        state = self.state
        if not state.is_schedulable(request.seed_host_id) or state.has_peer(request.peer_id):
            raise InvariantError(f"a seed fetch names a host that cannot register: {request}")
        host_id = request.seed_host_id
        scheduled = state.register_and_schedule(request.peer_id, host_id, task, self.now)
        self._record(list(scheduled.events))

    # --- invariants --------------------------------------------------------------------------

    def check(self) -> None:
        """Every core invariant at the current time, and no unexpected plugin error."""
        state, now = self.state, self.now
        problems = state.invariant_violations()
        if problems:
            raise InvariantError("; ".join(problems))
        fresh: dict[RecordKind, Callable[[Any], Expiry | None]] = {
            RecordKind.HOST: lambda r: state.policies.host_expiry(r, state.view, now),
            RecordKind.PEER: lambda r: state.policies.peer_expiry(r, state.view, now),
            RecordKind.TASK: lambda r: state.policies.task_expiry(r, state.view, now),
        }
        records: dict[RecordKind, Iterable[Any]] = {
            RecordKind.HOST: state.hosts(),
            RecordKind.PEER: state.peers(),
            RecordKind.TASK: state.tasks(),
        }
        for kind, items in records.items():
            for record in items:
                held = state.deadline_of(kind, record.id)
                if held is not None and held.at <= now:
                    raise InvariantError(
                        f"{kind.value} {record.id} survived collect_expired({now}) past {held}"
                    )
                expected = fresh[kind](record)
                if (held is None) != (expected is None) or (
                    held is not None and expected is not None and held.at != expected.at
                ):
                    raise InvariantError(
                        f"{kind.value} {record.id}: engine holds {held}, policies say {expected}"
                    )
        if self.unique_hostnames:
            names: dict[tuple[str, str], list[str]] = {}
            for host in state.hosts():
                names.setdefault((host.info.hostname, host.info.type.value), []).append(host.id)
            for (name, host_type), ids in names.items():
                if len(ids) > 1:
                    raise InvariantError(f"{host_type} hostname {name} has {len(ids)} hosts: {ids}")
        for host in state.schedulable_hosts():
            if host.state is not HostState.CONNECTED or not state.has_host(host.id):
                raise InvariantError(f"schedulable host {host.id} is {host.state.value}")
        for host_id, evicted_at in self.host_evicted_at.items():
            if state.has_host(host_id) and state.host(host_id).created_at < evicted_at:
                raise InvariantError(
                    f"host {host_id} was evicted at {evicted_at} but is still kept"
                )
        self._check_plugin_errors()

    def _check_plugin_errors(self) -> None:
        """Fail on the first error a plugin raised since the last check, unless expected.

        The core contains a plugin's error (the other plugins still decide), which is
        right in production and wrong in a plugin's tests: a hook that raises on every
        call would pass them with the built-ins deciding in its place.
        """
        new = self.plugin_errors[self._errors_checked :]
        self._errors_checked = len(self.plugin_errors)
        unexpected = [e for e in new if (e[0], e[1]) not in self.expected_plugin_errors]
        if unexpected:
            plugin, hook, exc = unexpected[0]
            more = f" (and {len(unexpected) - 1} more)" if len(unexpected) > 1 else ""
            raise InvariantError(
                f"plugin {plugin} raised in {hook}: {exc!r}{more}; a test that expects it "
                f"passes expected_plugin_errors={{({plugin!r}, {hook!r})}}"
            ) from exc


def register_task(index: int) -> TaskInfo:
    """A small helper for hand-written scenarios: a 10-piece task named ``task-{index}``."""
    return TaskInfo(
        id=f"task-{index}", url=f"https://example.invalid/{index}", total_piece_count=10
    )


def _piece_count(peer: Peer, task: Task) -> int:
    """The piece count a peer works to: its own claim, else the task's (-1: unknown)."""
    return peer.total_piece_count if peer.total_piece_count >= 0 else task.total_piece_count
