"""The decision pipeline: hand a child live parents, or send it to the origin, a wait or a fail.

:class:`DecisionPipeline` answers a child's request (``schedule``, ``reschedule``)
and decides the proactive pushes :class:`~._followup.FollowUp` asks for: sample
the task's feeders, filter, let the policies score and select, keep within the
hosts' upload slots, else the origin, a seed fetch, a wait or a fail. It owns
what a decision reads and writes: the parent edges it handed out (:mod:`._edges`),
the feeders of every task (:mod:`._feeders`), each child's blocklist and attempts,
each peer's piece costs (:mod:`._costs`), and the reserved back-to-source slots and
seed fetches (:mod:`._origin`). Keeping that bookkeeping in step with the records
after each mutation is :class:`~._followup.FollowUp`'s job.

A decision costs O(sample): it samples ``filter_parent_limit`` feeders at
random, never scanning the task's peers.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable, Sequence
from typing import Final, NamedTuple, final

from ._candidates import unfit_reason
from ._costs import CostWindows
from ._decision import Decision, ScheduleAction, ScheduleCause, ScheduleLimits
from ._edges import ParentEdges
from ._errors import IllegalTransition, NotFound
from ._events import Event, PeerScheduled, SeedFetchRequested
from ._failures import FailureReports, Offered
from ._feeders import Feeders
from ._lifecycle import RECEIVED_PEER_STATES, PeerState
from ._limits import DEFAULT_LIMITS, RecordLimits
from ._model import Host, Peer, RecordKind, Task
from ._origin import OriginBook, SeedFetch
from ._policy import PolicySet
from ._quota import Quota
from ._rendezvous import rendezvous_owner
from ._view import StateView

#: States in which a peer may ask for parents, and is pushed new ones ("still downloading").
CHILD_STATES: Final = frozenset(
    {
        PeerState.RECEIVED_EMPTY,
        PeerState.RECEIVED_TINY,
        PeerState.RECEIVED_SMALL,
        PeerState.RECEIVED_NORMAL,
        PeerState.RUNNING,
        PeerState.BACK_TO_SOURCE,
    }
)
#: ``retry_after`` is jittered by up to this share either way.
RETRY_JITTER: Final = 0.2
# Read on every decision: module constants, since an enum member read off its class
# costs about 0.1 µs on CPython 3.11.
_PARENTS: Final = ScheduleAction.PARENTS
_WAIT: Final = ScheduleAction.WAIT


class Decided(NamedTuple):
    """One decision as the pipeline made it: the event, what it asks of others, the parents."""

    event: PeerScheduled
    #: A :class:`~._events.SeedFetchRequested` when the decision asked a seed to fetch.
    requests: list[Event]
    #: The parents handed out, best first (empty unless the action is ``parents``).
    parents: list[Peer]

    def events(self) -> list[Event]:
        """What the decision returns to the facade's caller: the decision, then requests."""
        return [self.event, *self.requests]


@final
class DecisionPipeline:
    """Decisions, and the bookkeeping they read and write."""

    def __init__(
        self,
        policies: PolicySet,
        rng: random.Random | None,
        find_host: Callable[[str], Host | None],
        limits: RecordLimits = DEFAULT_LIMITS,
        recompute: Callable[[RecordKind, str, float], None] | None = None,
    ) -> None:
        """``recompute(kind, record_id, now)`` asks that kind's ledger for a record's
        deadline again, after the scheduling changed what the policies read of it."""
        self.policies = policies
        self.limits = limits
        self._recompute = recompute
        #: A live host by id, or None (the host ledger's ``find``).
        self._live_host = find_host
        self.rng = rng if rng is not None else random.Random()
        self.edges = ParentEdges(self._live_host)
        self.feeders = Feeders()
        self.costs = CostWindows()
        self.origin = OriginBook(limits.max_back_to_source_per_host)
        #: Per child, the parents handed to it and its blocklist (bounded).
        self.offered = Offered()
        #: Failures charged per (parent host, reporting host) in the window.
        self.failures = FailureReports(limits.failure_report_window)
        #: Seed fetches caused per requesting host, in a sliding window.
        self.seed_fetches = Quota(limits.seed_fetches_per_host, limits.seed_fetch_window)
        self._attempts: dict[str, int] = {}
        #: Children whose last answer was ``wait``: their next reschedule is that wait's retry.
        self._waiting: set[str] = set()
        #: Connected seed hosts (candidates for seed fetches); the follow-up keeps it.
        self.seeds: set[str] = set()
        #: Every live peer, so that a push can name a parent after its eviction; the
        #: follow-up keeps it.
        self.peers: dict[str, Peer] = {}
        self._fetch_seq = 0
        self._view: StateView | None = None

    def connect(self, view: StateView) -> None:
        self._view = view

    @property
    def view(self) -> StateView:
        if self._view is None:
            raise RuntimeError("the decision pipeline is not connected to a view")
        return self._view

    # --- queries -----------------------------------------------------------------------

    def blocked_parents_of(self, child_id: str) -> frozenset[str]:
        return frozenset(self.offered.blocked(child_id))

    # --- requests ----------------------------------------------------------------------

    def schedule(self, peer_id: str, now: float, as_host: str | None) -> Decided:
        """The child's first decision (right after ``register_peer``)."""
        child = self._schedulable_child(peer_id, as_host, "schedule")
        return self.decide(child, now, ScheduleCause.REGISTER)

    def reschedule(
        self, peer_id: str, failed_parents: Sequence[str], now: float, as_host: str | None
    ) -> Decided:
        """The child asks again; ``failed_parents`` are blocklisted and charged a failure.

        Only a live peer of the child's task that was handed to this child counts
        (other names are ignored and kept nowhere); its host is charged at most once
        per reporting host within ``failure_report_window``.
        """
        child = self._schedulable_child(peer_id, as_host, "reschedule")
        if any(not isinstance(p, str) for p in failed_parents):
            raise TypeError("failed_parents must be peer ids")
        for parent_id in dict.fromkeys(failed_parents):
            parent = self.peers.get(parent_id)
            if (
                parent is None
                or parent.task_id != child.task_id
                or not self.offered.was_offered(child.id, parent_id)
            ):
                continue
            self.offered.block(child.id, parent.id)  # the record's id: nothing of the frame
            host = self._live_host(parent.host_id)
            charged = host is not None and self.failures.charge(host.id, child.host_id, now)
            if charged:
                assert host is not None
                host.upload_failed_count += 1
            reporter = self.view.host(child.host_id)
            self.policies.parent_failed(
                child, parent, reporter, charged=charged, view=self.view, now=now
            )
            if charged and self._recompute is not None:
                # A policy may read the count (a quarantine): its deadline follows it.
                self._recompute(RecordKind.HOST, parent.host_id, now)
        if child.id not in self._waiting:
            self._attempts[child.id] = self._attempts.get(child.id, 0) + 1
        return self.decide(child, now, ScheduleCause.RESCHEDULE)

    def pieces_finished(
        self, peer_id: str, parent_id: str | None, added: int, pieces: int, cost: float | None
    ) -> None:
        """After the peer ledger recorded a report: the parent, its uploads, the cost window.

        A parent counts only if the scheduler handed it to this peer: a client cannot
        credit (or name) a peer of its choice.
        """
        if parent_id is not None and parent_id in self.edges.parents_of(peer_id):
            self.peers[peer_id].parents.add(parent_id)
            host = self._live_host(self.peers[parent_id].host_id)
            if host is not None:
                host.upload_count += added
        if cost is not None:
            self.costs.record(peer_id, cost, pieces)

    def forget(self, peer_id: str) -> None:
        """The peer is gone: drop what the decisions kept of it as a child."""
        self.costs.forget(peer_id)
        self.offered.forget(peer_id)
        self._attempts.pop(peer_id, None)
        self._waiting.discard(peer_id)

    # --- the decision ------------------------------------------------------------------

    def decide(self, child: Peer, now: float, cause: ScheduleCause) -> Decided:
        """Decide for ``child`` now: parents, the origin, a wait or a fail."""
        limits = self.policies.schedule_limits()
        # The child moves away from what it held: its parents' slots, its reservation.
        self.edges.release_child(child.id)
        self.origin.release(child.id)
        parents = self._select(child, limits, now)
        extra: list[Event] = []
        if parents:
            parent_ids = tuple([p.id for p in parents])
            self.edges.hand_out(child.id, parents, child_host=child.host_id)
            self.offered.hand_out(child.id, parent_ids)
            if child.handed_parents_at is None and child.state in RECEIVED_PEER_STATES:
                # The start timeout counts from here (see Peer.handed_parents_at).
                child.handed_parents_at = now
                if self._recompute is not None:
                    self._recompute(RecordKind.PEER, child.id, now)
            decision = Decision(_PARENTS, parent_ids)
        else:
            task = self.view.task(child.task_id)
            decision, extra = self._no_candidate(child, task, limits, now)
        if decision.action is _WAIT:
            self._attempts[child.id] = self._attempts.get(child.id, 0) + 1
            self._waiting.add(child.id)
        else:
            self._waiting.discard(child.id)
        pushed = cause is ScheduleCause.PARENT_LOST
        event = PeerScheduled(
            child.id, child.host_id, child.task_id, decision, now, cause.value, pushed
        )
        return Decided(event, extra, parents)

    def _select(self, child: Peer, limits: ScheduleLimits, now: float) -> list[Peer]:
        view, policies = self.view, self.policies
        sample = self.feeders.sample(child.task_id, self.rng, limits.filter_parent_limit)
        fit = self._fit(child, sample)
        fit = policies.fit_candidates(child, fit, view, now)
        scores = policies.candidate_scores(child, fit, view, now)
        # Best first; equal scores keep the (random) sampling order.
        ranked = [fit[i] for i in sorted(range(len(fit)), key=scores.__getitem__, reverse=True)]
        chosen = policies.select_parents(child, ranked, view, now)
        if chosen is None:
            return self._within_slots(child, ranked, limits.candidate_parent_limit)
        picked = [view.peer(i) for i in dict.fromkeys(chosen) if view.has_peer(i)]
        return self._within_slots(child, self._fit(child, picked), limits.candidate_parent_limit)

    def _fit(self, child: Peer, candidates: Iterable[Peer]) -> list[Peer]:
        """The candidates that may be parents of ``child`` now, in order."""
        live_host = self._live_host
        blocked = self.offered.blocked(child.id)
        is_bad = self.costs.is_bad
        below = self.edges.descendants(child.id)
        closes_cycle = self.edges.reaches if below is None else _among(below)
        return [
            candidate
            for candidate in candidates
            if unfit_reason(
                child,
                candidate,
                live_host(candidate.host_id),
                blocked=blocked,
                is_bad=is_bad,
                closes_cycle=closes_cycle,
            )
            is None
        ]

    def _within_slots(self, child: Peer, ranked: Iterable[Peer], limit: int) -> list[Peer]:
        """The first ``limit`` parents, none taking a host past its upload limit, nor
        past the share of its slots the peers of the child's host may hold."""
        taken: dict[str, int] = {}
        chosen: list[Peer] = []
        share = self.limits.upload_slots_for_one_host
        pair_slots = self.edges.pair_slots
        child_host = child.host_id
        for parent in ranked:
            host = self.view.host(parent.host_id)
            upload_limit = host.info.concurrent_upload_limit
            mine = taken.get(host.id, 0)
            if host.concurrent_upload_count + mine < upload_limit and pair_slots(
                host.id, child_host
            ) + mine < share(upload_limit):
                taken[host.id] = mine + 1
                chosen.append(parent)
                if len(chosen) == limit:
                    break
        return chosen

    def _no_candidate(
        self, child: Peer, task: Task, limits: ScheduleLimits, now: float
    ) -> tuple[Decision, list[Event]]:
        """The origin when nobody can feed the child soon, a seed fetch, wait, or fail."""
        attempts = self._attempts.get(child.id, 0)
        origin_allowed = self.origin.back_to_source_allowed(task, child)
        if attempts > limits.retry_back_to_source_limit and origin_allowed:
            return self._to_origin(child, "retried too often; fetch from the origin"), []
        if attempts > limits.retry_limit:
            return Decision(ScheduleAction.FAIL, message="no parent after every retry"), []
        fetch = self.origin.fetch_of(task.id)
        fetch_pending = fetch is not None and fetch.peer_id != child.id
        # Nobody but the child itself (a back-to-source child asking again).
        feeders = self.feeders.count(task.id) - (child.id in self.feeders)
        nobody_soon = feeders == 0 and self.origin.reserved(task.id) == 0
        if nobody_soon and not fetch_pending:
            seed_fetch = self._request_seed_fetch(child, task, now)
            if seed_fetch is not None:
                message = f"seed host {seed_fetch.seed_host_id} is fetching the task"
                return self._wait(limits, message), [seed_fetch]
            if origin_allowed:
                return self._to_origin(child, "nobody can feed the task yet"), []
        return self._wait(limits, "no parent can feed the child yet"), []

    def _to_origin(self, child: Peer, message: str) -> Decision:
        self.origin.reserve(child)
        return Decision(ScheduleAction.BACK_TO_SOURCE, message=message)

    def _wait(self, limits: ScheduleLimits, message: str) -> Decision:
        jitter = self.rng.uniform(1.0 - RETRY_JITTER, 1.0 + RETRY_JITTER)
        return Decision(
            ScheduleAction.WAIT, retry_after=limits.retry_after * jitter, message=message
        )

    def _request_seed_fetch(self, child: Peer, task: Task, now: float) -> SeedFetchRequested | None:
        """Ask the task's seed host (rendezvous over connected seeds) to fetch it."""
        if child.host_id in self.seeds:
            return None  # a child on a seed host fetches from the origin itself
        seed_host_id = rendezvous_owner(task.id, self.seeds)
        if seed_host_id is None or not self.seed_fetches.take(child.host_id, now):
            # No seed, or the child's host used its quota: the origin or a wait, as
            # when there is no seed (the task's URL is the requesting host's word).
            return None
        self._fetch_seq += 1
        peer_id = f"seed-{self._fetch_seq}-{task.id}"
        self.origin.start_fetch(SeedFetch(task.id, seed_host_id, peer_id, now))
        return SeedFetchRequested(
            seed_host_id,
            task.id,
            peer_id,
            task.url,
            task.piece_length,
            task.content_length,
            task.total_piece_count,
            now,
        )

    # --- internals ---------------------------------------------------------------------

    def _schedulable_child(self, peer_id: str, as_host: str | None, request: str) -> Peer:
        peer = self.view.peer(peer_id)
        if as_host is not None and peer.host_id != as_host:
            raise NotFound("peer", peer_id)  # as for a missing peer: ids stay private
        if peer.state not in CHILD_STATES:
            raise IllegalTransition("peer", peer.state.value, request)
        return peer


def _among(below: set[str]) -> Callable[[str, str], bool]:
    """The cycle check against the child's descendants (itself included), known at once."""

    def closes_cycle(candidate_id: str, child_id: str) -> bool:
        return candidate_id in below

    return closes_cycle
