"""The trio side of one WebSocket session: bytes, timers and bounded sends.

The rules live in :class:`scheduler.session.SessionProtocol`; this shell only
feeds it and applies what it returns. The bytes are the transport's
(:class:`scheduler.transport.WebSocketStream`): every frame received reaches the
session through its one synchronous feed, whichever task read it. A session costs
one task of its own, plus the connection's reader task:

* :meth:`Session.on_message` gets each message from the feed, gives it to the
  protocol, applies the core events and writes the replies at once (what the socket
  does not take is written by the session's task, and nothing more is read until it
  is); pings and pongs are signs of life (the connection answers a ping itself);
* the session's own task (:meth:`Session.run`) sleeps until another task (a GC
  pass, another session, the admin API, the timers) queued an unsolicited
  message with :meth:`Session.deliver`, or bytes wait to be written; it writes them,
  and ends the session when told to; queueing never blocks, the outbox is bounded
  (``outbox_size``), and messages leave in the order they were queued;
* the timers of every session run in **one** task, :class:`SessionTimers`, over
  one timing wheel (:class:`scheduler.session.Liveness`): a session silent for
  ``ping_interval`` is pinged (the timer task writes the ping, see
  :meth:`Session.ping`), and ends with ``ping_timeout`` when nothing arrives within
  ``ping_timeout`` of the ping; the same heap bounds the first ``announce_host``
  (``announce_timeout``) and every send (``send_timeout``).

A session ends exactly once, with an :class:`~scheduler.session.EndCause`; the
protocol maps the end to host state (leave: gone, drop: disconnected) and the
shell then closes the socket with a bounded close handshake.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable, Sequence
from typing import Final, final

import attrs
import trio

from ..core import Event, SchedulerState
from ..protocol import ErrorCode, ServerMessage, encode
from ..session import (
    Check,
    EndCause,
    HostRegistry,
    Identity,
    Liveness,
    Outcome,
    Placement,
    SessionLimits,
    SessionProtocol,
)
from ..transport import SharedReader, StreamClosed, WebSocketStream
from ._config import ServiceConfig
from ._metrics import Metrics

#: The end cause of each check that ends a session.
_END_FOR: Final = {
    Check.PING_TIMEOUT: EndCause.PING_TIMEOUT,
    Check.ANNOUNCE_TIMEOUT: EndCause.ANNOUNCE_TIMEOUT,
    Check.SEND_TIMEOUT: EndCause.SEND_TIMEOUT,
}


#: The timer task wakes on multiples of this: the checks of sessions due close together
#: run in one wake-up (and their pings leave in one burst), at most this much late.
TIMER_TICK: Final = 0.05


def _tick(due: float) -> float:
    """``due`` rounded up to the timer's tick, never below ``due``.

    (``ceil(due / tick) * tick`` can round to just below ``due`` in floating point;
    a wake-up before the entry is due would find nothing to do and sleep until the
    same deadline again: a spin that never lets a mock clock jump.)
    """
    if not math.isfinite(due):
        return due
    return max(math.ceil(due / TIMER_TICK) * TIMER_TICK, due)


@final
class SessionTimers:
    """One task runs the timers of every session (see :mod:`scheduler.session._liveness`)."""

    def __init__(self, config: ServiceConfig) -> None:
        self.liveness: Liveness[Session] = Liveness(
            ping_interval=config.ping_interval,
            ping_timeout=config.ping_timeout,
            send_timeout=config.send_timeout,
        )
        self._sleep: trio.CancelScope | None = None
        #: Pings sent and sessions ended by a timer, since start (for benchmarks and tests).
        self.pings = 0

    def watch(self, session: Session) -> None:
        """(Re)schedule ``session``'s next check; wakes the timer task if it is sooner."""
        due = _tick(self.liveness.watch(session))
        sleep = self._sleep
        if sleep is not None and due < sleep.deadline:
            sleep.deadline = due

    def answered(self, session: Session, now: float) -> None:
        """A sign of life from ``session`` (see ``Liveness.answered``)."""
        self.liveness.answered(session, now)
        sleep = self._sleep
        if sleep is not None and _tick(session.due) < sleep.deadline:
            sleep.deadline = _tick(session.due)

    async def run(self) -> None:
        """Runs until cancelled."""
        liveness = self.liveness
        while True:
            with trio.CancelScope(deadline=_tick(liveness.next_due())) as self._sleep:
                await trio.sleep_forever()
            self._sleep = None
            # Bounded batches: a burst of due sessions never blocks the loop for long.
            for session, check in liveness.expire(trio.current_time()):
                if check is Check.PING:
                    self.pings += 1
                    session.ping()
                else:
                    session.end(_END_FOR[check])
            await trio.lowlevel.checkpoint()


@final
@attrs.frozen(kw_only=True)
class SessionEnv:
    """What every session of one service shares."""

    state: SchedulerState
    hosts: HostRegistry
    limits: SessionLimits
    config: ServiceConfig
    metrics: Metrics
    #: Hands core events on to metrics, logs, session closes and the GC loops.
    apply: Callable[[Sequence[Event]], None]
    #: The one timer task of all sessions.
    timers: SessionTimers
    #: With ``--registry``: who owns a task this scheduler does not (``moved``).
    placement: Placement | None = None
    #: The one task that reads the sessions' sockets (None: each reader waits alone).
    reader: SharedReader | None = None


@final
class Session:
    # Slots: many thousands of these live at once, each idle most of the time.
    __slots__ = (
        "_parked",
        "_scope",
        "_task",
        "announce_by",
        "due",
        "env",
        "heard_at",
        "ping_sent_at",
        "protocol",
        "remote",
        "sending_since",
        "watch_over",
        "ws",
    )

    def __init__(
        self,
        env: SessionEnv,
        ws: WebSocketStream,
        remote: str,
        identity: Identity | None = None,
    ) -> None:
        now = trio.current_time()
        self.env = env
        self.ws = ws
        ws.listener = self
        self.remote = remote
        self.protocol = SessionProtocol(
            env.state,
            env.hosts,
            env.limits,
            opened_at=now,
            owner=self,
            remote=remote,
            identity=identity,
            placement=env.placement,
        )
        # What the timers read (scheduler.session.Watched).
        self.heard_at = now
        self.ping_sent_at: float | None = None
        self.sending_since: float | None = None
        self.announce_by: float | None = self.protocol.announce_by
        self.due = math.inf
        self.watch_over = False
        self._scope = trio.CancelScope()
        self._task: trio.lowlevel.Task | None = None
        self._parked = False

    @property
    def host_id(self) -> str | None:
        return self.protocol.host_id

    @property
    def cause(self) -> EndCause | None:
        return self.protocol.cause

    def end(self, cause: EndCause, evicted_reason: str | None = None) -> None:
        """End the session (the first cause wins). Safe to call from any task."""
        self.protocol.end(cause, evicted_reason)
        self.watch_over = True
        self._scope.cancel()

    def deliver(self, message: ServerMessage) -> bool:
        """Queue an unsolicited message without blocking (see ``SessionProtocol.deliver``)."""
        if not self.protocol.deliver(message):
            return False
        self._wake()
        return True

    def ping(self) -> None:
        """Write a ping (the timers decided it is due); what the socket does not take
        is written by the session's task."""
        self.ws.ping()

    async def run(self) -> None:
        env, protocol = self.env, self.protocol
        self._task = trio.lowlevel.current_task()
        env.timers.watch(self)
        try:
            with self._scope:
                await self._write_queued()
        finally:
            # Even when cancelled from outside (the connection failed, the server
            # stops), the host's state must follow the session's end.
            self.watch_over = True
            self._apply(protocol.on_closed(trio.current_time()))
            env.metrics.session_ends.labels(str(protocol.cause)).inc()
        code, reason = protocol.close_frame()
        with trio.move_on_after(env.config.close_timeout):
            self._send_queued()  # replies and pushes queued before the end still leave
            notice = protocol.farewell()
            if notice is not None:
                self.ws.send_message(encode(notice))
            await self.ws.aclose(code, reason)

    # --- what the connection calls (scheduler.transport.Listener), from WebSocketStream.feed ---

    def on_message(self, message: str | bytes) -> None:
        """One message: the protocol's outcome is applied and its replies written."""
        if self._scope.cancel_called:
            return  # the session is over: later frames change nothing
        protocol = self.protocol
        now = trio.current_time()
        if self.ping_sent_at is None:
            self.heard_at = now
        else:
            self.env.timers.answered(self, now)
        outcome = protocol.receive(message, now)
        self._apply(outcome)
        if self.announce_by is not None and protocol.host_id is not None:
            self.announce_by = None
        if outcome.replies:
            protocol.outbox.extend(outcome.replies)
            self._send_queued()
        if outcome.close is not None:
            self.end(outcome.close)

    def on_ping(self) -> None:
        if self._scope.cancel_called:
            return  # the session is over: its host's state no longer follows its frames
        now = trio.current_time()
        self.env.timers.answered(self, now)
        self._apply(self.protocol.on_ping(now))

    def on_pong(self) -> None:
        if self._scope.cancel_called:
            return
        now = trio.current_time()
        self.env.timers.answered(self, now)
        self._apply(self.protocol.on_pong(now))

    def on_unsent(self) -> None:
        self._wake()  # its task writes what the socket did not take (_write_queued)

    def on_closed(self) -> None:
        self.end(EndCause.CLOSED)

    # --- the session's own task ------------------------------------------------------------

    async def _write_queued(self) -> None:
        """Write pushes queued by other tasks, and flush what the socket did not take."""
        ws = self.ws
        while True:
            self._send_queued()
            if ws.unsent:
                await self._bounded(ws.flush())
            else:
                await self._park()

    def _send_queued(self) -> None:
        """Hand the outbox's messages, in order, to the connection (which writes them at
        once or keeps them, in order, for the session's task: the outbox is bounded)."""
        outbox, ws = self.protocol.outbox, self.ws
        while outbox:
            if not ws.send_message(encode(outbox.pop(0))):
                outbox.clear()  # the connection no longer sends: nothing will leave
                return

    async def _park(self) -> None:
        """Sleep until :meth:`_wake` (no Event per session: they are many and idle)."""
        self._parked = True

        def abort(_: object) -> trio.lowlevel.Abort:
            self._parked = False
            return trio.lowlevel.Abort.SUCCEEDED

        await trio.lowlevel.wait_task_rescheduled(abort)

    def _wake(self) -> None:
        if self._parked and self._task is not None:
            self._parked = False
            trio.lowlevel.reschedule(self._task)

    def _apply(self, outcome: Outcome) -> None:
        # Each part is read only when the outcome has it (a pong's has none at all).
        metrics = self.env.metrics
        if outcome.message_type is not None:
            for message_type in outcome.message_types:
                metrics.count_message(message_type)
        if outcome.decision_seconds is not None:
            metrics.decision_seconds.observe(outcome.decision_seconds)
        if outcome.replies:
            for reply in outcome.errors:
                metrics.message_errors.labels(reply.code).inc()
                if reply.code is ErrorCode.RATE_LIMITED:
                    metrics.rate_limited.inc()
        if outcome.events:
            self.env.apply(outcome.events)

    async def _bounded(self, sending: Awaitable[None]) -> None:
        """Await a send; the timers end the session if it takes ``send_timeout``.

        The send is shielded from the session's end up to that deadline: a session
        that ends (a ``leave_host``, an eviction) while its last replies are being
        written still gets them out, before its close frame.
        """
        self.sending_since = now = trio.current_time()
        timers = self.env.timers
        deadline = now + timers.liveness.send_timeout
        if deadline < self.due:
            timers.watch(self)
        try:
            with trio.CancelScope(shield=True, deadline=deadline):
                await sending
        except StreamClosed:
            self.end(EndCause.CLOSED)
        finally:
            self.sending_since = None
