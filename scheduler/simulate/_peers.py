"""How a simulated peer downloads: it obeys decisions and fetches pieces in batches.

Pieces are fetched in order, in batches of ``report_batch`` pieces spread over
the parents round-robin (best first; one batch at a time, like a client that
spreads its piece requests over all its parents), each batch reported with one ``pieces_finished``
(``finish_pieces(..., parent_id=..., cost=...)``). A parent that is dead in the
ground truth makes the request fail after ``piece_timeout``; the child then
reschedules with that parent in ``failed_parents``. A parent that dies during a
batch delivers the pieces it sent before it died, then the same timeout runs.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import final

from ..core import (
    BackToSourceLimitReached,
    ContactSource,
    Decision,
    Event,
    PeerScheduled,
    ScheduleAction,
    SchedulerError,
    SchedulerState,
)
from ._metrics import Metrics
from ._queue import EventQueue
from ._scenario import Scenario
from ._transfers import Transfers
from ._truth import Batch, GroundTruth, Mode, SimHost, SimPeer

#: Dispatches the events a core call returned; gives back the decisions that reply to it.
Dispatch = Callable[[Sequence[Event], float], list[PeerScheduled]]

#: The session touches a host at most this often for its messages (SessionLimits.touch_every).
TOUCH_EVERY = 1.0
DEFAULT_RETRY_AFTER = 0.5


@final
class PeerDriver:
    """Drives every simulated peer: decisions in, piece batches and reports out."""

    def __init__(
        self,
        *,
        scenario: Scenario,
        state: SchedulerState,
        queue: EventQueue,
        truth: GroundTruth,
        metrics: Metrics,
        dispatch: Dispatch,
        transfers: Transfers,
    ) -> None:
        self.scenario = scenario
        self.state = state
        self.queue = queue
        self.truth = truth
        self.metrics = metrics
        self.dispatch = dispatch
        self.transfers = transfers

    # --- messages to the scheduler ---------------------------------------------------

    def contact(self, host: SimHost, at: float) -> None:
        """The session touches the host for a message, rate-limited like the real one."""
        if at - host.last_touch < TOUCH_EVERY or not self.state.has_host(host.id):
            return
        host.last_touch = at
        self.state.touch_host(host.id, at, ContactSource.MESSAGE)

    def schedule(self, peer: SimPeer, at: float) -> None:
        """``register_peer`` was accepted: the session asks for the first decision."""
        self.contact(peer.host, at)
        try:
            events = self.state.schedule_peer(peer.id, at, as_host=peer.host.id)
        except SchedulerError as exc:
            self._error(peer, exc, at)
            return
        for decision in self.dispatch(events, at):
            self.apply(peer, decision.decision, at)

    def reschedule(self, peer: SimPeer, failed: Sequence[str], at: float) -> None:
        self.contact(peer.host, at)
        self.metrics.reschedules += 1
        try:
            events = self.state.reschedule_peer(peer.id, failed, at, as_host=peer.host.id)
        except SchedulerError as exc:
            self._error(peer, exc, at)
            return
        for decision in self.dispatch(events, at):
            self.apply(peer, decision.decision, at)

    # --- decisions ---------------------------------------------------------------------

    def apply(self, peer: SimPeer, decision: Decision, at: float) -> None:
        """Obey a decision (a reply or a push). Dead or finished peers ignore it."""
        if not peer.active:
            return
        action = decision.action
        if peer.seed and action is not ScheduleAction.PARENTS:
            # A seed was asked to fetch the task: it goes to the origin rather than wait.
            action = ScheduleAction.BACK_TO_SOURCE
        if peer.mode is Mode.ORIGIN:
            return  # already fetching from the origin; parents would not be faster
        self._interrupt(peer, at)
        if action is ScheduleAction.PARENTS:
            if not peer.started and not self._call(peer, self.state.start_download, at):
                return
            peer.started = True
            peer.parents = decision.parents
            peer.cursor = 0
            peer.mode = Mode.P2P
            peer.stalled_since = None
            self._next_batch(peer, at)
        elif action is ScheduleAction.BACK_TO_SOURCE:
            try:
                self.state.back_to_source(peer.id, at, as_host=peer.host.id)
            except BackToSourceLimitReached:
                self.metrics.errors["back_to_source_limit"] += 1
                self._wait(peer, DEFAULT_RETRY_AFTER, at)
                return
            except SchedulerError as exc:
                self._error(peer, exc, at)
                return
            peer.started = True
            peer.used_origin = True
            peer.mode = Mode.ORIGIN
            self._next_batch(peer, at)
        elif action is ScheduleAction.WAIT:
            self._wait(peer, decision.retry_after or DEFAULT_RETRY_AFTER, at)
        else:
            peer.mode = Mode.FAILED
            self.metrics.downloads_failed += not peer.seed
            self._call(peer, self.state.fail_download, at)

    def _wait(self, peer: SimPeer, retry_after: float, at: float) -> None:
        peer.mode = Mode.WAIT
        epoch = peer.epoch

        def retry(now: float) -> None:
            if peer.epoch == epoch and peer.active:
                self.reschedule(peer, (), now)

        self.queue.schedule(at + retry_after, retry)

    # --- pieces ------------------------------------------------------------------------

    def _next_batch(self, peer: SimPeer, at: float) -> None:
        total = self.scenario.pieces
        if peer.pieces >= total:
            self._finish(peer, at)
            return
        if peer.mode is Mode.ORIGIN:
            count = min(self.scenario.report_batch, total - peer.pieces)
            self._start_batch(peer, self.transfers.batch(peer, None, count, at), at)
            return
        parents = peer.parents
        for turn in range(len(parents)):
            index = (peer.cursor + turn) % len(parents)
            parent_id = parents[index]
            if self.truth.death_cause(parent_id) is not None:
                self._parent_failed(peer, parent_id, at + self.scenario.piece_timeout)
                return
            parent = self.truth.peers[parent_id]
            ahead = parent.pieces - peer.pieces
            if ahead > 0:
                count = min(self.scenario.report_batch, ahead)
                peer.stalled_since = None
                peer.cursor = index + 1
                self._start_batch(peer, self.transfers.batch(peer, parent_id, count, at), at)
                return
        self._stall(peer, at)

    def _start_batch(self, peer: SimPeer, batch: Batch, at: float) -> None:
        peer.batch = batch
        epoch = peer.epoch

        def done(now: float) -> None:
            if peer.epoch == epoch and peer.active:
                self._batch_done(peer, now)

        self.transfers.start(peer, batch, at, done)

    def _batch_done(self, peer: SimPeer, at: float) -> None:
        batch = peer.batch
        assert batch is not None
        peer.batch = None
        parent_id = batch.parent_id
        if parent_id is not None:
            died_at = self.truth.peers[parent_id].host.died_at
            if died_at is not None:
                # The parent went mid-batch: what it sent before is kept, then it times out.
                self._report(peer, batch, self.transfers.pieces_by(peer, batch, died_at), at)
                timeout_at = max(at, died_at + self.scenario.piece_timeout)
                if peer.active:
                    self._parent_failed(peer, parent_id, timeout_at)
                return
        self._report(peer, batch, batch.count, at)
        if peer.active:
            self._next_batch(peer, at)

    def _stall(self, peer: SimPeer, at: float) -> None:
        """No parent holds a piece the child lacks: look again soon; reschedule after a timeout."""
        if peer.stalled_since is None:
            peer.stalled_since = at
        if at - peer.stalled_since >= self.scenario.piece_timeout:
            peer.stalled_since = None
            # Its parents are alive, only behind: ask again, blocklisting nobody.
            self.reschedule(peer, (), at)
            return
        epoch = peer.epoch

        def again(now: float) -> None:
            if peer.epoch == epoch and peer.active:
                self._next_batch(peer, now)

        self.queue.schedule(at + self.scenario.stall_retry, again)

    def _parent_failed(self, peer: SimPeer, parent_id: str, at: float) -> None:
        """The request to a dead parent fails at ``at``; then the child reschedules."""
        epoch = peer.epoch

        def fail(now: float) -> None:
            if peer.epoch == epoch and peer.active:
                self.metrics.parent_failures += 1
                self.reschedule(peer, (parent_id,), now)

        self.queue.schedule(at, fail)

    def _interrupt(self, peer: SimPeer, at: float) -> None:
        """A new decision replaces the plan: keep the pieces of the batch fetched so far."""
        peer.epoch += 1
        batch = peer.batch
        if batch is None:
            return
        peer.batch = None
        until = at
        if batch.parent_id is not None:
            died_at = self.truth.peers[batch.parent_id].host.died_at
            if died_at is not None:
                until = min(until, died_at)
        count = self.transfers.pieces_by(peer, batch, until)
        self.transfers.stop(peer, at)
        self._report(peer, batch, count, at)

    def _report(self, peer: SimPeer, batch: Batch, count: int, at: float) -> None:
        if count <= 0:
            return
        pieces = range(peer.pieces, peer.pieces + count)
        self.contact(peer.host, at)
        try:
            self.state.finish_pieces(
                peer.id,
                pieces,
                at,
                parent_id=batch.parent_id,
                cost=self.transfers.cost(batch, count, at),
                as_host=peer.host.id,
            )
        except SchedulerError as exc:
            self._error(peer, exc, at)
            return
        peer.pieces += count
        self.metrics.record_bytes(self._source_host(batch), count * self.scenario.piece_length)

    def _finish(self, peer: SimPeer, at: float) -> None:
        if not self._call(peer, self.state.finish_download, at):
            return
        peer.mode = Mode.DONE
        if not peer.seed:
            self.metrics.record_download(at - peer.registered_at, peer.used_origin)

    # --- errors --------------------------------------------------------------------------

    def _call(self, peer: SimPeer, method: Callable[..., list[Event]], at: float) -> bool:
        self.contact(peer.host, at)
        try:
            method(peer.id, at, as_host=peer.host.id)
        except SchedulerError as exc:
            self._error(peer, exc, at)
            return False
        return True

    def _source_host(self, batch: Batch) -> str | None:
        """The host a batch came from (None: the origin)."""
        if batch.parent_id is None:
            return None
        return self.truth.peers[batch.parent_id].host.id

    def _error(self, peer: SimPeer, exc: SchedulerError, at: float) -> None:
        """The scheduler refused a peer's message: count it; the download is over."""
        self.metrics.errors[type(exc).__name__] += 1
        if peer.active:
            self.abandon(peer, at)

    def abandon(self, peer: SimPeer, at: float) -> None:
        peer.epoch += 1
        if peer.batch is not None:
            self.transfers.stop(peer, at)
        peer.batch = None
        peer.mode = Mode.ABANDONED
        self.metrics.downloads_abandoned += not peer.seed
