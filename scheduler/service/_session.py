"""One WebSocket session: one host, in its own nursery.

Three tasks run per session:

* the reader drains frames into a bounded inbox, so trio-websocket's own reader
  never stalls and pongs and close frames are always processed;
* the handler turns frames into core calls and sends the reply, every send
  bounded by ``send_timeout``;
* the heartbeat pings every ``ping_interval`` and ends the session when no
  pong arrives within ``ping_timeout`` (or no ``announce_host`` within
  ``announce_timeout``).

A session ends exactly once, with an :class:`EndCause`; the service maps the
cause to host state (leave → gone, drop → disconnected) and the session then
closes the socket with a bounded close.
"""

from __future__ import annotations

import contextlib
import enum
import logging
import math
from collections import deque
from typing import TYPE_CHECKING, Final, final

import trio
from trio_websocket import ConnectionClosed, WebSocketConnection

from ..core import (
    BackToSourceLimitReached,
    Conflict,
    ContactSource,
    Event,
    Forbidden,
    HostInfo,
    HostType,
    IllegalTransition,
    NotFound,
    RecordKind,
    TaskInfo,
)
from ..protocol import (
    Ack,
    AnnounceHost,
    BackToSource,
    ClientMessage,
    CloseCode,
    DownloadFailed,
    DownloadFinished,
    DownloadStarted,
    ErrorCode,
    ErrorReply,
    Evicted,
    HostAccepted,
    LeaveHost,
    LeavePeer,
    PiecesFinished,
    ProtocolError,
    RegisterPeer,
    ServerMessage,
    decode_client,
    encode,
)
from ._logging import fields

if TYPE_CHECKING:
    from ._service import SchedulerService

log = logging.getLogger("scheduler.session")

#: Any client message refreshes the host's last contact, at most this often.
_TOUCH_EVERY: Final = 1.0


class EndCause(enum.StrEnum):
    LEAVE = "leave"
    CLOSED = "closed"
    PING_TIMEOUT = "ping_timeout"
    SEND_TIMEOUT = "send_timeout"
    EVICTED = "evicted"
    REPLACED = "replaced"
    TOO_MANY_ERRORS = "too_many_errors"
    INBOX_OVERFLOW = "inbox_overflow"
    ANNOUNCE_TIMEOUT = "announce_timeout"
    SHUTDOWN = "shutdown"
    INTERNAL = "internal"


#: The close code and reason sent for each cause.
CLOSE_FOR: Final[dict[EndCause, tuple[int, str]]] = {
    EndCause.LEAVE: (CloseCode.NORMAL, "host left"),
    EndCause.CLOSED: (CloseCode.NORMAL, "connection closed"),
    EndCause.PING_TIMEOUT: (CloseCode.GOING_AWAY, "no pong within ping_timeout"),
    EndCause.SEND_TIMEOUT: (CloseCode.GOING_AWAY, "send timed out"),
    EndCause.EVICTED: (CloseCode.EVICTED, "evicted"),
    EndCause.REPLACED: (CloseCode.REPLACED, "the host announced on a newer session"),
    EndCause.TOO_MANY_ERRORS: (CloseCode.POLICY_VIOLATION, "too many errors"),
    EndCause.INBOX_OVERFLOW: (CloseCode.POLICY_VIOLATION, "too many frames in flight"),
    EndCause.ANNOUNCE_TIMEOUT: (CloseCode.POLICY_VIOLATION, "no announce_host in time"),
    EndCause.SHUTDOWN: (CloseCode.GOING_AWAY, "scheduler shutting down"),
    EndCause.INTERNAL: (CloseCode.INTERNAL_ERROR, "internal error"),
}

#: Causes after which the host is *not* marked disconnected: it is already gone or handed over.
_HOST_SETTLED: Final = frozenset({EndCause.LEAVE, EndCause.EVICTED, EndCause.REPLACED})


@final
class Session:
    def __init__(self, service: SchedulerService, ws: WebSocketConnection, remote: str) -> None:
        self.service = service
        self.ws = ws
        self.remote = remote
        self.host_id: str | None = None
        self.cause: EndCause | None = None
        self.evicted_reason: str | None = None
        self.opened_at = trio.current_time()
        self._scope = trio.CancelScope()
        self._announced = trio.Event()
        self._errors: deque[float] = deque()
        self._last_touch = -math.inf
        self._inbox_send, self._inbox_recv = trio.open_memory_channel[str | bytes](
            service.config.inbox_size
        )

    @property
    def settles_host(self) -> bool:
        """True if the end cause already decided the host's fate (no disconnect needed)."""
        return self.cause in _HOST_SETTLED

    def end(self, cause: EndCause, evicted_reason: str | None = None) -> None:
        """End the session (the first cause wins). Safe to call from any task."""
        if self.cause is None:
            self.cause = cause
            self.evicted_reason = evicted_reason
        self._scope.cancel()

    async def run(self) -> None:
        config = self.service.config
        try:
            with self._scope:
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(self._read_frames)
                    nursery.start_soon(self._heartbeat)
                    await self._handle_frames()
        finally:
            # Even when cancelled from outside (the connection failed, the server
            # stops), the host's state must follow the session's end.
            if self.cause is None:
                self.cause = EndCause.CLOSED
            self.service.session_ended(self)
        code, reason = CLOSE_FOR[self.cause]
        with trio.move_on_after(config.close_timeout):
            if self.cause is EndCause.EVICTED and self.evicted_reason is not None:
                notice = Evicted(reason=self.evicted_reason, message=f"host {self.host_id} evicted")
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
        config = self.service.config
        announce_by = self.opened_at + config.announce_timeout
        while True:
            next_ping = trio.current_time() + config.ping_interval
            if self.host_id is None:
                with trio.move_on_at(min(next_ping, announce_by)):
                    await self._announced.wait()
                if self.host_id is None and trio.current_time() >= announce_by:
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
                self._alive(ContactSource.PONG, trio.current_time(), force=True)
            await trio.lowlevel.checkpoint()

    async def _handle_frames(self) -> None:
        async for data in self._inbox_recv:
            reply, cause = self.handle_frame(data, trio.current_time())
            await self.send(reply)
            if cause is not None:
                self.end(cause)
                await trio.lowlevel.checkpoint()

    async def send(self, message: ServerMessage) -> None:
        """Send one message, bounded by ``send_timeout``; a timeout ends the session."""
        try:
            with trio.fail_after(self.service.config.send_timeout):
                await self.ws.send_message(encode(message))
        except trio.TooSlowError:
            self.end(EndCause.SEND_TIMEOUT)
        except ConnectionClosed:
            self.end(EndCause.CLOSED)
        else:
            return
        await trio.lowlevel.checkpoint()

    # --- frames -> core calls (synchronous) ---------------------------------------------

    def handle_frame(self, data: str | bytes, now: float) -> tuple[ServerMessage, EndCause | None]:
        """Decode one frame, apply it to the core, and return the reply (and an end cause)."""
        metrics = self.service.metrics
        try:
            message = decode_client(data)
        except ProtocolError as exc:
            metrics.messages.labels("invalid").inc()
            return self._error(exc.code, exc.message, exc.request_id, now)
        metrics.messages.labels(message.tag).inc()
        request_id = message.id
        try:
            return self._dispatch(message, now)
        except Forbidden as exc:
            return self._error(ErrorCode.FORBIDDEN, str(exc), request_id, now)
        except NotFound as exc:
            return self._error(ErrorCode.NOT_FOUND, str(exc), request_id, now)
        except (Conflict, BackToSourceLimitReached) as exc:
            return self._error(ErrorCode.CONFLICT, str(exc), request_id, now)
        except IllegalTransition as exc:
            return self._error(ErrorCode.ILLEGAL_STATE, str(exc), request_id, now)
        except ValueError as exc:
            return self._error(ErrorCode.INVALID_MESSAGE, str(exc), request_id, now)
        except Exception:
            log.exception("internal error handling %s", message.tag, extra=self._fields())
            return self._error(ErrorCode.INTERNAL, "internal error", request_id, now)

    def _dispatch(
        self, message: ClientMessage, now: float
    ) -> tuple[ServerMessage, EndCause | None]:
        service, state = self.service, self.service.state
        if isinstance(message, AnnounceHost):
            return self._announce(message, now), None
        host_id = self.host_id
        if host_id is None:
            return self._error(
                ErrorCode.NOT_ANNOUNCED, "the first message must be announce_host", message.id, now
            )
        events: list[Event]
        self._alive(ContactSource.MESSAGE, now)
        if isinstance(message, LeaveHost):
            events = state.leave_host(host_id, now)
            self.cause = self.cause or EndCause.LEAVE
            service.apply(events)
            return Ack(id=message.id), EndCause.LEAVE
        if isinstance(message, RegisterPeer):
            task = message.task
            info = TaskInfo(
                id=task.task_id,
                url=task.url,
                piece_length=task.piece_length,
                content_length=task.content_length,
                total_piece_count=task.total_piece_count,
            )
            events = state.register_peer(message.peer_id, host_id, info, now)
        elif isinstance(message, DownloadStarted):
            events = state.start_download(message.peer_id, now, as_host=host_id)
        elif isinstance(message, BackToSource):
            events = state.back_to_source(message.peer_id, now, as_host=host_id)
        elif isinstance(message, PiecesFinished):
            events = state.finish_pieces(
                message.peer_id,
                message.pieces,
                now,
                parent_id=message.parent_id,
                cost=message.cost,
                as_host=host_id,
            )
        elif isinstance(message, DownloadFinished):
            events = state.finish_download(message.peer_id, now, as_host=host_id)
        elif isinstance(message, DownloadFailed):
            events = state.fail_download(message.peer_id, now, as_host=host_id)
        elif isinstance(message, LeavePeer):
            events = state.leave_peer(message.peer_id, now, as_host=host_id)
        else:  # pragma: no cover - the codec only yields the types above
            raise TypeError(f"unhandled message {message!r}")
        service.apply(events)
        return Ack(id=message.id), None

    def _announce(self, message: AnnounceHost, now: float) -> ServerMessage:
        payload = message.host
        info = HostInfo(
            hostname=payload.hostname,
            ip=payload.ip,
            port=payload.port,
            download_port=payload.download_port,
            type=HostType(payload.type),
            idc=payload.idc,
            location=payload.location,
            concurrent_upload_limit=payload.concurrent_upload_limit,
        )
        if self.host_id is not None and info.id != self.host_id:
            raise Forbidden(
                f"this session owns host {self.host_id!r}; it cannot announce {info.id!r}"
            )
        service = self.service
        events = service.state.announce_host(info, now, interval=message.interval)
        self._last_touch = now
        if self.host_id is None:
            self.host_id = info.id
            service.claim_host(self)
            self._announced.set()
        service.apply(events)
        expiry = service.state.deadline_of(RecordKind.HOST, info.id)
        config = service.config
        return HostAccepted(
            id=message.id,
            host_id=info.id,
            ttl=None if expiry is None else max(expiry.at - now, 1e-3),
            ping_interval=config.ping_interval,
            ping_timeout=config.ping_timeout,
            reconnect_grace=config.reconnect_grace,
        )

    def _alive(self, source: ContactSource, now: float, *, force: bool = False) -> None:
        """Count a sign of life (rate-limited for ordinary messages)."""
        host_id = self.host_id
        if host_id is None or (not force and now - self._last_touch < _TOUCH_EVERY):
            return
        if self.service.owns(self, host_id):
            self._last_touch = now
            self.service.apply(self.service.state.touch_host(host_id, now, source))

    def _error(
        self, code: ErrorCode, message: str, request_id: str | int | None, now: float
    ) -> tuple[ServerMessage, EndCause | None]:
        config = self.service.config
        errors = self._errors
        errors.append(now)
        while errors and errors[0] <= now - config.error_window:
            errors.popleft()
        if len(errors) > config.error_limit:
            code = ErrorCode.TOO_MANY_ERRORS
            message = f"more than {config.error_limit} errors in {config.error_window:g}s"
            self.service.metrics.message_errors.labels(code.value).inc()
            return ErrorReply(id=request_id, code=code, message=message), EndCause.TOO_MANY_ERRORS
        self.service.metrics.message_errors.labels(code.value).inc()
        return ErrorReply(id=request_id, code=code, message=message), None

    def _fields(self) -> dict[str, object]:
        return fields(host_id=self.host_id, remote=self.remote)
