"""The trio side of one WebSocket session: bytes, timers and bounded sends.

The rules live in :class:`scheduler.session.SessionProtocol`; this shell only
feeds it and applies what it returns. A session costs one task of its own, plus
the connection's reader task (trio-websocket's):

* the reader task hands each frame to :meth:`Session.on_message`, which gives it
  to the protocol, applies the core events, and sends the replies before the
  next frame is read;
* the session's own task (:meth:`Session.run`) sleeps until another task (a GC
  pass, another session, the admin API, the timers) queued an unsolicited
  message with :meth:`Session.deliver` or asked for a ping, sends it, and ends
  the session when told to; queueing never blocks, the outbox is bounded
  (``outbox_size``), and one flush runs at a time, so messages leave in the
  order they were queued;
* the timers of every session run in **one** task, :class:`SessionTimers`, over
  one deadline heap (:class:`scheduler.session.Liveness`): a session silent for
  ``ping_interval`` is pinged (the timer task writes the ping itself when the
  socket is free, see :meth:`Session.ping`), and ends with ``ping_timeout`` when
  nothing arrives within ``ping_timeout`` of the ping; the same heap bounds the
  first ``announce_host`` (``announce_timeout``) and every send (``send_timeout``);
* between frames a session's socket is read by one task for all of them (the shared
  reader, :mod:`scheduler.service._reader`): it tells the session of pings and pongs
  as its reader would, and hands it each message through :meth:`Session.on_message_now`,
  which does what :meth:`Session.on_message` does without waiting when the replies can
  be written at once (a reply the socket does not take whole is finished by the
  session's own task, and the frames behind it go to the reader's
  :meth:`Session.on_message`, which waits for it).

A session ends exactly once, with an :class:`~scheduler.session.EndCause`; the
protocol maps the end to host state (leave: gone, drop: disconnected) and the
shell then closes the socket with a bounded close.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Awaitable, Callable, Sequence
from typing import Final, final

import attrs
import trio
from trio_websocket import ConnectionClosed

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
from ._config import ServiceConfig
from ._framing import ServerConnection
from ._metrics import Metrics
from ._reader import SharedReader

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
        "_end_after",
        "_flush_done",
        "_flushing",
        "_parked",
        "_ping_due",
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
        ws: ServerConnection,
        remote: str,
        identity: Identity | None = None,
    ) -> None:
        now = trio.current_time()
        self.env = env
        self.ws = ws
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
        self._ping_due = False
        self._flushing = False
        self._flush_done: trio.Event | None = None
        #: How the session ends once the replies left to its task are sent (None: it goes on).
        self._end_after: EndCause | None = None

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
        """Send a ping (the timers decided it is due): at once if the socket allows,
        else by the session's task."""
        if self.ws.ping_now():
            if self.ws.unsent:  # the socket took part of it: the session's task writes the rest
                self._wake()
            return
        self._ping_due = True
        self._wake()

    async def run(self) -> None:
        env, protocol = self.env, self.protocol
        self._task = trio.lowlevel.current_task()
        env.timers.watch(self)
        try:
            with self._scope:
                await self._attach()
                await self._write_queued()
        finally:
            # Even when cancelled from outside (the connection failed, the server
            # stops), the host's state must follow the session's end.
            self.watch_over = True
            self.ws.listener = None
            self._apply(protocol.on_closed(trio.current_time()))
            env.metrics.session_ends.labels(str(protocol.cause)).inc()
        code, reason = protocol.close_frame()
        with trio.move_on_after(env.config.close_timeout):
            notice = protocol.farewell()
            if notice is not None:
                with contextlib.suppress(ConnectionClosed):
                    await self.ws.send_message(encode(notice))
            await self.ws.aclose(code, reason)

    # --- what the connection's reader task calls (scheduler.service._framing.FrameListener) ---

    async def on_message(self, message: str | bytes) -> None:
        """One frame: the protocol's outcome is applied and its replies sent before the next."""
        outcome = self._take(message)
        if outcome is None:
            return
        if outcome.replies:
            self.protocol.outbox.extend(outcome.replies)
            await self._flush()
        if outcome.close is not None:
            self.end(outcome.close)

    def on_message_now(self, message: str | bytes) -> bool:
        """:meth:`on_message` without waiting, when its replies can be written at once.

        False (nothing done) while an earlier reply is still being sent: the reader's
        :meth:`on_message` waits for it. A reply the socket does not take whole is left
        to the session's task, and the frames behind it wait for that.
        """
        if self._flushing or self.protocol.outbox or self.ws.unsent or self._end_after is not None:
            return self._scope.cancel_called
        outcome = self._take(message)
        if outcome is None:
            return True
        if outcome.replies:
            self.protocol.outbox.extend(outcome.replies)
            self._send_at_once()
            if (self.protocol.outbox or self.ws.unsent) and not self._scope.cancel_called:
                self._end_after = outcome.close
                self._wake()
                return True
        if outcome.close is not None:
            self.end(outcome.close)
        return True

    def _take(self, message: str | bytes) -> Outcome | None:
        """The protocol's outcome of one frame, applied (None: the session is over)."""
        if self._scope.cancel_called or self._end_after is not None:
            return None  # the session is over: later frames change nothing
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
        return outcome

    def on_ping(self) -> None:
        now = trio.current_time()
        self.env.timers.answered(self, now)
        self._apply(self.protocol.on_ping(now))

    def on_pong(self) -> None:
        now = trio.current_time()
        self.env.timers.answered(self, now)
        self._apply(self.protocol.on_pong(now))

    def on_unsent(self) -> None:
        self._wake()  # its task flushes what the socket did not take (_write_queued)

    def on_closed(self) -> None:
        self.end(EndCause.CLOSED)

    # --- the session's own task ------------------------------------------------------------

    async def _attach(self) -> None:
        """Handle the frames read before this session ran, then take the reader's frames.

        (A client may send its ``announce_host`` right behind the handshake.) The
        listener is set with nothing queued and no await in between: frames stay in order.
        """
        ws = self.ws
        while (pending := ws.pending_message()) is not None:
            await self.on_message(pending)
        ws.listener = self
        if ws.closed is not None:  # closed before the listener was set
            self.end(EndCause.CLOSED)

    async def _write_queued(self) -> None:
        while True:
            if self._ping_due:
                self._ping_due = False
                await self._send_ping()
            elif (self.protocol.outbox or self.ws.unsent) and not self._flushing:
                await self._flush()
            elif self._end_after is not None:
                self.end(self._end_after)
                await self._park()
            else:
                await self._park()

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

    async def _send_ping(self) -> None:
        await self._bounded(self.ws.send_ping())

    async def _flush(self) -> None:
        """Send what the outbox holds, in order; one flush at a time."""
        # The session's own task must not spin once its scope is cancelled.
        await trio.lowlevel.checkpoint_if_cancelled()
        while self._flushing:  # another task is sending: wait for it (rare)
            if self._flush_done is None:
                self._flush_done = trio.Event()
            await self._flush_done.wait()
        self._flushing = True
        try:
            outbox, scope, ws = self.protocol.outbox, self._scope, self.ws
            while True:
                # Nearly always the socket takes every frame at once: no await, no timer.
                self._send_at_once()
                if scope.cancel_called or not (outbox or ws.unsent):
                    break
                if ws.unsent:
                    await self._bounded(ws.flush())
                else:
                    await self._bounded(ws.send_message(encode(outbox.pop(0))))
        finally:
            self._flushing = False
            done, self._flush_done = self._flush_done, None
            if done is not None:
                done.set()

    def _send_at_once(self) -> None:
        """Write the outbox's messages, in order, while the socket takes each at once.

        Stops at one that is not written whole (the rest waits for :meth:`_flush`), and
        once the session is over (its own message's events may have ended it).
        """
        outbox, ws, scope = self.protocol.outbox, self.ws, self._scope
        while outbox and not (ws.unsent or scope.cancel_called):
            if not ws.send_now(encode(outbox[0])):
                return
            outbox.pop(0)

    def _apply(self, outcome: Outcome) -> None:
        metrics = self.env.metrics
        for message_type in outcome.message_types:
            metrics.count_message(message_type)
        if outcome.decision_seconds is not None:
            metrics.decision_seconds.observe(outcome.decision_seconds)
        for reply in outcome.errors:
            metrics.message_errors.labels(reply.code).inc()
            if reply.code is ErrorCode.RATE_LIMITED:
                metrics.rate_limited.inc()
        if outcome.events:
            self.env.apply(outcome.events)

    async def _bounded(self, sending: Awaitable[None]) -> None:
        """Await a send; the timers end the session if it takes ``send_timeout``.

        (One shared timer instead of a cancel scope per send: sends nearly always
        complete at once, and a scope with a deadline costs more than the send.)
        """
        self.sending_since = trio.current_time()
        timers = self.env.timers
        if self.sending_since + timers.liveness.send_timeout < self.due:
            timers.watch(self)
        try:
            await sending
        except ConnectionClosed:
            self.end(EndCause.CLOSED)
        finally:
            self.sending_since = None
