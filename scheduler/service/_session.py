"""The trio side of one WebSocket session: bytes, timers and bounded sends.

The rules live in :class:`scheduler.session.SessionProtocol`; this shell only
feeds it and applies what it returns. Four tasks run per session:

* the reader drains frames into a bounded inbox, so trio-websocket's own reader
  never stalls and pongs and close frames are always processed;
* the handler hands each frame to the protocol, applies the core events, queues
  the replies on the protocol's outbox and flushes it (every send bounded by
  ``send_timeout``), and ends the session if told to;
* the writer flushes the outbox when another task (a GC pass, another session,
  the admin API) queued an unsolicited message with :meth:`Session.deliver`;
  queueing never blocks, the outbox is bounded (``outbox_size``), and one flush
  runs at a time, so messages leave in the order they were queued;
* the heartbeat pings every ``ping_interval`` and ends the session when no
  pong arrives within ``ping_timeout`` (or no ``announce_host`` within
  ``announce_timeout``).

A session ends exactly once, with an :class:`~scheduler.session.EndCause`; the
protocol maps the end to host state (leave: gone, drop: disconnected) and the
shell then closes the socket with a bounded close.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from typing import final

import attrs
import trio
from trio_websocket import ConnectionClosed, WebSocketConnection

from ..core import Event, SchedulerState
from ..protocol import ErrorCode, ErrorReply, ServerMessage, encode
from ..session import (
    EndCause,
    HostRegistry,
    Identity,
    Outcome,
    Placement,
    SessionLimits,
    SessionProtocol,
)
from ._config import ServiceConfig
from ._metrics import Metrics


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
    #: With ``--registry``: who owns a task this scheduler does not (``moved``).
    placement: Placement | None = None


@final
class Session:
    def __init__(
        self,
        env: SessionEnv,
        ws: WebSocketConnection,
        remote: str,
        identity: Identity | None = None,
    ) -> None:
        self.env = env
        self.ws = ws
        self.remote = remote
        self.protocol = SessionProtocol(
            env.state,
            env.hosts,
            env.limits,
            opened_at=trio.current_time(),
            owner=self,
            remote=remote,
            identity=identity,
            placement=env.placement,
        )
        self._scope = trio.CancelScope()
        self._announced = trio.Event()
        self._queued = trio.Event()
        self._send_lock = trio.Lock()
        self._inbox_send, self._inbox_recv = trio.open_memory_channel[str | bytes](
            env.config.inbox_size
        )

    @property
    def host_id(self) -> str | None:
        return self.protocol.host_id

    @property
    def cause(self) -> EndCause | None:
        return self.protocol.cause

    def end(self, cause: EndCause, evicted_reason: str | None = None) -> None:
        """End the session (the first cause wins). Safe to call from any task."""
        self.protocol.end(cause, evicted_reason)
        self._scope.cancel()

    def deliver(self, message: ServerMessage) -> bool:
        """Queue an unsolicited message without blocking (see ``SessionProtocol.deliver``)."""
        if not self.protocol.deliver(message):
            return False
        self._queued.set()
        return True

    async def run(self) -> None:
        env, protocol = self.env, self.protocol
        try:
            with self._scope:
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(self._read_frames)
                    nursery.start_soon(self._heartbeat)
                    nursery.start_soon(self._write_queued)
                    await self._handle_frames()
        finally:
            # Even when cancelled from outside (the connection failed, the server
            # stops), the host's state must follow the session's end.
            self._apply(protocol.on_closed(trio.current_time()))
            env.metrics.session_ends.labels(str(protocol.cause)).inc()
        code, reason = protocol.close_frame()
        with trio.move_on_after(env.config.close_timeout):
            notice = protocol.farewell()
            if notice is not None:
                with contextlib.suppress(ConnectionClosed):
                    await self.ws.send_message(encode(notice))
            await self.ws.aclose(code, reason)

    # --- tasks ---------------------------------------------------------------------------

    async def _read_frames(self) -> None:
        while True:
            try:
                data = await self.ws.get_message()
            except ConnectionClosed:
                self.end(EndCause.CLOSED)
                await trio.lowlevel.checkpoint()
                return
            try:
                self._inbox_send.send_nowait(data)
            except trio.WouldBlock:
                self.end(EndCause.INBOX_OVERFLOW)
                await trio.lowlevel.checkpoint()

    async def _heartbeat(self) -> None:
        """Ping on a timer; before the first announce, also enforce ``announce_timeout``.

        (One task does both: every task costs memory in each of many idle sessions.)
        """
        config, protocol = self.env.config, self.protocol
        while True:
            next_ping = trio.current_time() + config.ping_interval
            if protocol.host_id is None:
                with trio.move_on_at(min(next_ping, protocol.announce_by)):
                    await self._announced.wait()
                if protocol.announce_overdue(trio.current_time()):
                    self.end(EndCause.ANNOUNCE_TIMEOUT)
                    await trio.lowlevel.checkpoint()
            await trio.sleep_until(next_ping)
            try:
                with trio.fail_after(config.ping_timeout):
                    await self.ws.ping()
            except trio.TooSlowError:
                self.end(EndCause.PING_TIMEOUT)
            except ConnectionClosed:
                self.end(EndCause.CLOSED)
            else:
                self._apply(protocol.on_pong(trio.current_time()))
            await trio.lowlevel.checkpoint()

    async def _handle_frames(self) -> None:
        protocol = self.protocol
        async for data in self._inbox_recv:
            outcome = protocol.receive(data, trio.current_time())
            self._apply(outcome)
            if protocol.host_id is not None:
                self._announced.set()
            protocol.outbox.extend(outcome.replies)
            await self._flush()
            if outcome.close is not None:
                self.end(outcome.close)
                await trio.lowlevel.checkpoint()

    async def _write_queued(self) -> None:
        while True:
            await self._queued.wait()
            self._queued = trio.Event()
            await self._flush()

    async def _flush(self) -> None:
        """Send what the outbox holds, in order; one flush at a time."""
        outbox = self.protocol.outbox
        async with self._send_lock:
            while outbox:
                await self.send(outbox.popleft())

    def _apply(self, outcome: Outcome) -> None:
        metrics = self.env.metrics
        if outcome.message_type is not None:
            metrics.messages.labels(outcome.message_type).inc()
        if outcome.decision_seconds is not None:
            metrics.decision_seconds.observe(outcome.decision_seconds)
        for reply in outcome.replies:
            if isinstance(reply, ErrorReply):
                metrics.message_errors.labels(reply.code).inc()
                if reply.code is ErrorCode.RATE_LIMITED:
                    metrics.rate_limited.inc()
        if outcome.events:
            self.env.apply(outcome.events)

    async def send(self, message: ServerMessage) -> None:
        """Send one message, bounded by ``send_timeout``; a timeout ends the session."""
        try:
            with trio.fail_after(self.env.config.send_timeout):
                await self.ws.send_message(encode(message))
        except trio.TooSlowError:
            self.end(EndCause.SEND_TIMEOUT)
        except ConnectionClosed:
            self.end(EndCause.CLOSED)
        else:
            return
        await trio.lowlevel.checkpoint()
