"""The WebSocket connection of one peer: trio-websocket, made to say why it drops one.

wsproto reports a frame it cannot parse (invalid UTF-8 in a text frame, an
unmasked client frame, a reserved opcode or bit) as a ``CloseConnection`` event
with the right code (1007 or 1002), while the connection is still open; a close
frame the client really sent moves it to ``REMOTE_CLOSING`` instead.
trio-websocket 0.12 answers only the second kind and drops the TCP connection on
the first without a close frame, so the client never learns why. Our connection
class sends the close frame first, then lets trio-websocket close as before.

It also hands each complete message straight to its :class:`FrameListener` (the
session), in trio-websocket's own reader task: no message channel, no second task
and no task switch per frame, and, since the next frame is read only once this one
is handled, TCP itself holds back a client that sends faster than it reads. Pings
and pongs tell the listener that the peer is alive; :meth:`ServerConnection.send_ping`
pings without waiting for the pong (one timer task watches every session's pongs,
see :mod:`scheduler.session._liveness`).

The common frames are read and written here rather than by wsproto (see
:mod:`._wire`); on a plain TCP socket the reader waits and reads itself, a frame is
written at once when no other task is writing, and a connection at a frame boundary
waits in the sessions' shared reader (:mod:`._reader`), which hands it the frames it
cannot handle itself.
"""

from __future__ import annotations

import contextlib
import logging
import os
from typing import TYPE_CHECKING, Final, Protocol, cast, final

import trio
from trio_websocket import CloseReason, ConnectionClosed, WebSocketConnection, WebSocketRequest
from wsproto import ConnectionType, WSConnection
from wsproto.connection import ConnectionState
from wsproto.events import (
    AcceptConnection,
    BytesMessage,
    CloseConnection,
    Event,
    Ping,
    Pong,
    RejectConnection,
    RejectData,
    Request,
    TextMessage,
)
from wsproto.utilities import RemoteProtocolError

from ._wire import (
    PING,
    PING_FRAME,
    PONG,
    at_frame_boundary,
    pong_frame,
    server_frame,
    split_frames,
)

if TYPE_CHECKING:
    from ._reader import SharedReader

log = logging.getLogger("scheduler.service")

#: A close reason must fit a control frame (125 bytes, 2 of them the code).
MAX_CLOSE_REASON: Final = 120


class FrameListener(Protocol):
    """What a connection tells its session (called in the connection's reader task)."""

    async def on_message(self, message: str | bytes) -> None: ...

    def on_message_now(self, message: str | bytes) -> bool:
        """Handle ``message`` without waiting if nothing has to wait; False: nothing done."""
        ...

    def on_ping(self) -> None: ...

    def on_pong(self) -> None: ...

    def on_unsent(self) -> None:
        """A frame written without waiting went out in part (:attr:`ServerConnection.unsent`):
        a task that may wait must write the rest (:meth:`ServerConnection.flush`)."""

    def on_closed(self) -> None:
        """The reader task ended: the connection is closed or broken."""


#: What the handshake's event queue becomes once the connection is open (never appended to).
_NO_EVENTS: Final = ()


@final
class ServerConnection(WebSocketConnection):
    """A server-side WebSocket that sends a close code for a framing error and hands
    messages to its listener."""

    #: Set once the session runs; until then messages queue as trio-websocket does.
    listener: FrameListener | None = None
    #: Where the reader waits at a frame boundary (see :mod:`._reader`); None: never.
    shared_reader: SharedReader | None = None
    #: The last read was all complete common frames: the next wait is the shared reader's.
    _shared: bool = False
    #: The rest of a frame written in part by :meth:`_write_now`; every later send writes
    #: it first.
    _unsent: bytes = b""

    def pending_message(self) -> str | bytes | None:
        """A message read before the listener was set (queued as trio-websocket does), or None."""
        try:
            message: str | bytes = self._recv_channel.receive_nowait()
        except (trio.WouldBlock, trio.EndOfChannel, trio.ClosedResourceError):
            return None
        return message

    def shed_handshake(self) -> None:
        """Drop what only the opening handshake needed, once the connection is open.

        wsproto keeps its handshake object for the connection's life, and with it an
        h11 connection (its state tables, a receive buffer), the request with its
        headers, and an empty event deque (760 bytes alone): about 2 KB that an idle
        session holds for nothing. After the handshake, wsproto reads only the
        handshake's (empty) event queue, which a shared empty tuple stands in for.
        """
        handshake = self._wsproto.handshake
        if handshake.state is not ConnectionState.OPEN or handshake._events:
            return  # not open (or an event still queued): keep everything
        handshake._h11_connection = None  # type: ignore[assignment]
        handshake._events = _NO_EVENTS  # type: ignore[assignment]
        handshake._initiating_request = None  # the request, with its headers

    def ping_now(self) -> bool:
        """Write a ping now, from any task, if nothing stands in the way; False: use
        :meth:`send_ping`. True: written, or the part the socket did not take waits in
        ``_unsent`` (then :attr:`unsent` is true, and :meth:`flush` must follow)."""
        return self._writes_frames() and self._write_now(PING_FRAME)

    def send_now(self, message: str | bytes) -> bool:
        """Write one message now, without waiting, if nothing stands in the way.

        True: its frame is written, or the part the socket did not take waits in
        ``_unsent`` (then :attr:`unsent` is true, and :meth:`flush` must follow before
        anything else is awaited). False: nothing was written; use :meth:`send_message`.
        """
        return self._writes_frames() and self._write_now(server_frame(message))

    @property
    def unsent(self) -> bool:
        """Part of a frame written by :meth:`send_now` still waits to be written."""
        return bool(self._unsent)

    async def flush(self) -> None:
        """Write what a partial :meth:`send_now` left (under the send lock)."""
        if self._unsent:
            await self._write_locked(b"")

    def answer_now(self, data: bytes) -> int:
        """Handle the complete common frames at the start of ``data`` now (for :mod:`._reader`).

        In order: a ping is answered (and the listener told; a pong the socket takes only
        in part is the listener's to finish, see :meth:`FrameListener.on_unsent`), a pong
        tells the listener, a message goes to the listener's ``on_message_now``. It stops
        at the first frame that has to wait (a message the listener cannot take now, a
        ping whose pong cannot be written now, a message over the size limit, anything
        wsproto must read) and returns how many bytes were handled: the reader reads the
        rest itself.
        """
        listener = self.listener
        if listener is None or not self._writes_frames():
            return 0
        frames, _ = split_frames(data)
        done = 0
        for opcode, payload, end in frames:
            if opcode == PONG:
                if payload:  # a pong to someone else's ping: the reader's
                    break
                listener.on_pong()
            elif opcode == PING:
                if not self._write_now(pong_frame(cast("bytes", payload))):
                    break
                listener.on_ping()
                if self._unsent:  # the frames behind it wait for the rest (see on_message_now)
                    listener.on_unsent()
            elif len(payload) > self._max_message_size or not listener.on_message_now(payload):
                break
            done = end
            if self._close_reason or not at_frame_boundary(self._wsproto.connection):
                break
        return done

    def _write_now(self, frame: bytes) -> bool:
        """Write ``frame`` now if the socket is plain TCP, open and not being written to.

        True: written, whole or in part (the socket's buffer nearly full: the rest is
        kept in ``_unsent``, which every later send writes first). False: nothing of it
        was written (not plain TCP, another task writing, the buffer full, the socket
        broken: the task path finds out which).
        """
        fd = self._socket_fd()
        if fd < 0 or self._unsent or self._stream_lock.locked():
            return False
        try:
            sent = os.write(fd, frame)
        except OSError:
            return False
        if sent < len(frame):
            self._unsent = frame[sent:]
        return True

    async def send_ping(self) -> None:
        """Send a ping and return; the pong reaches :meth:`FrameListener.on_pong`.

        The task path, under the send lock: :meth:`ping_now` is the write without waiting.
        """
        if self._writes_frames():
            await self._write_locked(PING_FRAME)
            return
        if self._close_reason:
            raise ConnectionClosed(self._close_reason)
        await self._send(Ping(payload=b""))

    async def send_message(self, message: str | bytes) -> None:
        """Send one message (its frame written here when the connection allows, see ``_wire``).

        The task path, under the send lock: :meth:`send_now` is the write without waiting.
        """
        if self._writes_frames():
            await self._write_locked(server_frame(message))
            return
        await super().send_message(message)

    def _writes_frames(self) -> bool:
        """Whether a frame written here is what wsproto's ``send`` would write.

        (wsproto keeps no state for an unfragmented frame of an open connection.)
        """
        return not self._close_reason and at_frame_boundary(self._wsproto.connection)

    async def _write_locked(self, data: bytes) -> None:
        """Write what ``_write_now`` left, then ``data``, under the send lock.

        (trio-websocket's ``_send`` for bytes already written: a broken stream ends the
        connection and raises ``ConnectionClosed``.)
        """
        async with self._stream_lock:
            data, self._unsent = self._unsent + data, b""
            try:
                await self._stream.send_all(data)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                await self._abort_web_socket()
                assert self._close_reason is not None
                raise ConnectionClosed(self._close_reason) from None

    async def _reader_task(self) -> None:
        """trio-websocket's reader, which reads the common frames itself (see :mod:`._wire`).

        Until the session listens, and whenever wsproto holds part of a frame or
        message, wsproto reads everything, as in trio-websocket.
        """
        handlers = {
            AcceptConnection: self._handle_accept_connection_event,
            BytesMessage: self._handle_message_event,
            CloseConnection: self._handle_close_connection_event,
            Ping: self._handle_ping_event,
            Pong: self._handle_pong_event,
            RejectConnection: self._handle_reject_connection_event,
            RejectData: self._handle_reject_data_event,
            Request: self._handle_request_event,
            TextMessage: self._handle_message_event,
        }
        wsproto = self._wsproto
        async with self._send_channel:
            while self._reader_running:
                for event in wsproto.events():
                    handler = handlers.get(type(event))
                    if handler is None:
                        log.warning("%s received unknown event type: %r", self, type(event))
                        continue
                    try:
                        await handler(event)  # type: ignore[operator]
                    except ConnectionClosed:
                        self._reader_running = False
                        break
                try:
                    data = await self._receive_some()
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    await self._abort_web_socket()
                    break
                if not data:  # TCP closed; before the WebSocket: an abnormal closure
                    if wsproto.state is not ConnectionState.CLOSED:
                        await self._abort_web_socket()
                    break
                self._shared = False
                if self.listener is not None and at_frame_boundary(wsproto.connection):
                    data = await self._read_common_frames(data)
                if data and wsproto.state is not ConnectionState.CLOSED:
                    try:
                        wsproto.receive_data(bytes(data))
                    except RemoteProtocolError as err:
                        if err.event_hint:
                            await self._send(err.event_hint)
                        await self._close_stream()

    async def _send(self, event: Event) -> None:
        """trio-websocket's ``_send`` (a frame wsproto writes), after what ``_write_now`` left."""
        if self._unsent:
            await self._write_locked(b"")
        await super()._send(event)

    async def _close_stream(self) -> None:
        """Close the TCP connection; a reader waiting in the shared reader hears of it first."""
        reader, fd = self.shared_reader, self._socket_fd()
        if reader is not None and fd >= 0:
            reader.release(self, fd)
        await super()._close_stream()

    def _socket_fd(self) -> int:
        """The socket's file descriptor if the stream is plain TCP (not TLS, not memory), else -1.

        (-1 as well once the socket is closed: its number may already name another file.)
        """
        stream = self._stream
        if type(stream) is not trio.SocketStream:
            return -1
        return stream.socket.fileno()

    async def _receive_some(self) -> bytes | bytearray:
        """``receive_some`` of the stream; on plain TCP, one wait for the socket and one read.

        (trio's socket first tries the read, which fails with nothing to read, as it
        nearly always is for a client waiting for its reply, then waits, then reads.)
        """
        stream, size = self._stream, self._receive_buffer_size
        if type(stream) is not trio.SocketStream or size is None:
            return await stream.receive_some(size)
        sock = stream.socket
        shared = self.shared_reader
        while True:
            # Closed by another task (the session's close) while this one was busy: never
            # wait for fd -1, which trio would register (and then refuse for every socket).
            fd = sock.fileno()
            if fd < 0:
                raise trio.ClosedResourceError("the socket was closed")
            if self._shared and shared is not None and shared.running:
                return await shared.wait(self, fd)
            await trio.lowlevel.wait_readable(sock)
            fd = sock.fileno()
            if fd < 0:
                raise trio.ClosedResourceError("the socket was closed")
            try:
                return os.read(fd, size)
            except BlockingIOError:
                continue
            except OSError as exc:
                raise trio.BrokenResourceError(exc) from exc

    async def _read_common_frames(self, data: bytes | bytearray) -> bytes | bytearray:
        """Handle the common frames at the start of ``data``; what wsproto must read is returned.

        Frames are handled one by one, as wsproto's events would be; once one of them
        changes the connection (a close, a message over the size limit), the rest goes
        to wsproto, as all of it would have.
        """
        frames, end = split_frames(data)
        # Nothing left over for wsproto: the next frame may be read by the shared reader.
        self._shared = end == len(data)
        done = 0
        for opcode, payload, frame_end in frames:
            if not self._reader_running or self._wsproto.state is not ConnectionState.OPEN:
                break
            try:
                if opcode == PONG:
                    await self._handle_pong_event(Pong(payload=cast("bytes", payload)))
                elif opcode == PING:
                    await self._handle_ping_event(Ping(payload=cast("bytes", payload)))
                else:
                    await self._deliver(payload)
            except ConnectionClosed:
                self._reader_running = False
                return b""
            done = frame_end
        if not self._reader_running:
            return b""
        return data[done:] if done else data

    async def _deliver(self, data: str | bytes) -> None:
        """One complete message to the listener (over ``max_message_size``: close 1009)."""
        if len(data) > self._max_message_size:
            await self._too_big()
            return
        listener = self.listener
        if listener is None:
            await super()._handle_message_event(
                TextMessage(data=data) if isinstance(data, str) else BytesMessage(data=data)
            )
            return
        await listener.on_message(data)

    async def _handle_message_event(self, event: BytesMessage | TextMessage) -> None:
        listener = self.listener
        if listener is None:
            await super()._handle_message_event(event)
            return
        data = event.data
        if isinstance(data, bytearray):
            data = bytes(data)
        if event.message_finished and not self._message_parts:  # the common case: one frame
            await self._deliver(data)
            return
        self._message_size += len(data)
        self._message_parts.append(data)
        if self._message_size > self._max_message_size:
            await self._too_big()
        elif event.message_finished:
            parts, self._message_parts, self._message_size = self._message_parts, [], 0
            if isinstance(data, bytes):
                await listener.on_message(b"".join(cast("list[bytes]", parts)))
            else:
                await listener.on_message("".join(cast("list[str]", parts)))

    async def _too_big(self) -> None:
        """What trio-websocket does with a message over ``max_message_size``: close 1009."""
        err = f"Exceeded maximum message size: {self._max_message_size} bytes"
        self._message_size = 0
        self._message_parts = []
        self._close_reason = CloseReason(1009, err)
        await self._send(CloseConnection(code=1009, reason=err))
        await self._recv_channel.aclose()
        self._reader_running = False

    async def _handle_ping_event(self, event: Ping) -> None:
        if self.listener is not None:
            self.listener.on_ping()
        if self._wsproto.state is not ConnectionState.OPEN:
            # We sent our Close: RFC 6455 lets a closing end leave a ping unanswered,
            # and wsproto refuses the pong (trio-websocket #184 would raise here).
            return
        await super()._handle_ping_event(event)

    async def _handle_pong_event(self, event: Pong) -> None:
        if self.listener is not None and not event.payload:
            self.listener.on_pong()
            return
        await super()._handle_pong_event(event)

    async def _handle_close_connection_event(self, event: CloseConnection) -> None:
        if self._wsproto.state is ConnectionState.OPEN:
            reason = (event.reason or "").encode()[:MAX_CLOSE_REASON].decode(errors="ignore")
            with contextlib.suppress(ConnectionClosed):
                await self._send(CloseConnection(code=event.code, reason=reason))
        await super()._handle_close_connection_event(event)


async def wrap_server_stream(
    nursery: trio.Nursery,
    stream: trio.abc.Stream,
    *,
    message_queue_size: int,
    max_message_size: int,
) -> WebSocketRequest:
    """``trio_websocket.wrap_server_stream`` with :class:`ServerConnection`."""
    connection = ServerConnection(
        stream,
        WSConnection(ConnectionType.SERVER),
        message_queue_size=message_queue_size,
        max_message_size=max_message_size,
    )
    nursery.start_soon(_read, connection)
    return await connection._get_request()


async def _read(connection: ServerConnection) -> None:
    """trio-websocket's reader task, then tell the listener that the connection is over."""
    try:
        await connection._reader_task()
    finally:
        if connection.listener is not None:
            connection.listener.on_closed()
