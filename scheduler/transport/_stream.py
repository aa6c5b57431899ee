"""One WebSocket connection over a trio stream: the bytes of a :class:`ServerConnection`.

The one frame path: every byte received goes through :meth:`WebSocketStream.feed`,
whoever read it (the shared reader for a plain TCP socket, the connection's reader
task for TLS, memory streams, or where there is no shared reader). ``feed`` hands the
connection's events to the :class:`Listener` (the session) synchronously, then writes
what the connection owes (pongs, the close frame). Every frame written goes through
:meth:`WebSocketStream.write`: on a plain TCP socket it is written at once when
nothing else is waiting to be written; otherwise (TLS, a memory stream, a socket that
took only part, a flush in progress) it waits in order for :meth:`flush`, which the
session's own task runs. While anything waits to be written, nothing more is read: a
client that sends faster than it reads is held back by TCP itself.
"""

from __future__ import annotations

import contextlib
import os
from typing import Protocol, final

import trio

from ._connection import ServerConnection
from ._events import Closed, Message, Ping, Pong
from ._reader import READ_SIZE, SharedReader


class StreamClosed(Exception):
    """The stream broke or was closed while writing."""


class Listener(Protocol):
    """What a connection tells its session (called synchronously from :meth:`feed`)."""

    def on_message(self, message: str | bytes) -> None: ...

    def on_ping(self) -> None: ...

    def on_pong(self) -> None: ...

    def on_unsent(self) -> None:
        """Bytes wait to be written: the session's task must :meth:`WebSocketStream.flush`."""

    def on_closed(self) -> None:
        """Nothing more will be read: the peer closed, broke the protocol or went away."""


@final
class _Unattached:
    """The listener of a stream no session listens to yet: every event is a bug."""

    def _fail(self, *_: object) -> None:
        raise RuntimeError("a WebSocketStream was used before its session attached")

    on_message = on_ping = on_pong = on_unsent = on_closed = _fail


_NO_LISTENER: Listener = _Unattached()


@final
class WebSocketStream:
    """A :class:`ServerConnection` and the trio stream under it."""

    __slots__ = (
        "_broken",
        "_drained",
        "_fd",
        "_flushing",
        "_reader_done",
        "_reading",
        "_unsent",
        "connection",
        "listener",
        "reader",
        "stream",
    )

    def __init__(
        self,
        stream: trio.abc.Stream,
        connection: ServerConnection,
        reader: SharedReader | None = None,
    ) -> None:
        self.stream = stream
        self.connection = connection
        #: Set by the session before anything is read.
        self.listener: Listener = _NO_LISTENER
        #: Where a plain TCP socket waits for its bytes (None: the reader task reads).
        self.reader = reader if type(stream) is trio.SocketStream else None
        #: The socket's descriptor for writes without waiting; -1: not plain TCP.
        self._fd = stream.socket.fileno() if type(stream) is trio.SocketStream else -1
        #: Bytes written but not yet taken by the stream, in order.
        self._unsent = b""
        self._flushing = False
        self._broken = False
        self._reading = True
        #: Made only when a task waits for them (rare): the unsent bytes written, the
        #: reader task over.
        self._drained: trio.Event | None = None
        self._reader_done: trio.Event | None = None

    # --- the one frame path ----------------------------------------------------------

    def feed(self, data: bytes) -> None:
        """Read ``data``: hand its events to the listener, then write what is owed."""
        connection, listener = self.connection, self.listener
        closed = False
        for event in connection.receive_data(data):
            kind = type(event)
            if kind is Message:
                listener.on_message(event.data)  # type: ignore[attr-defined]
            elif kind is Pong:
                listener.on_pong()
            elif kind is Ping:
                listener.on_ping()
            elif kind is Closed:
                closed = True
        owed = connection.data_to_send()
        if owed:
            self.write(owed)
        if closed:
            listener.on_closed()

    @property
    def wants_task(self) -> bool:
        """Whether the reader task must act before more is read (see :mod:`._reader`)."""
        return bool(self._unsent) or self._broken or self.connection.closed

    def write(self, data: bytes) -> None:
        """Write ``data`` now if the socket takes it, else keep it for :meth:`flush`."""
        if self._broken:
            return
        if self._unsent or self._flushing or self._fd < 0:
            self._unsent += data
            self.listener.on_unsent()
            return
        try:
            sent = os.write(self._fd, data)
        except BlockingIOError:
            sent = 0
        except OSError:
            self._broken = True
            self.listener.on_closed()
            return
        if sent < len(data):
            self._unsent = data[sent:]
            self.listener.on_unsent()

    def send_message(self, message: str | bytes) -> bool:
        """Write one message; False: the connection no longer sends."""
        if self._broken or not self.connection.can_send:
            return False
        self.write(self.connection.send(message))
        return True

    def ping(self) -> bool:
        """Write a ping; False: the connection no longer sends."""
        if self._broken or not self.connection.can_send or self.connection.closed:
            return False
        self.write(self.connection.ping())
        return True

    @property
    def unsent(self) -> bool:
        """Bytes wait for :meth:`flush`."""
        return bool(self._unsent)

    async def flush(self) -> None:
        """Write what waits, in order (the session's task only). Raises :class:`StreamClosed`."""
        self._flushing = True
        try:
            while self._unsent:
                data, self._unsent = self._unsent, b""
                try:
                    await self.stream.send_all(data)
                except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
                    self._broken = True
                    raise StreamClosed(str(exc)) from exc
        finally:
            self._flushing = False
            drained = self._drained
            if drained is not None and not self._unsent:
                self._drained = None
                drained.set()
        if self._broken:
            raise StreamClosed("the stream is broken")

    # --- the reader task -------------------------------------------------------------

    async def read(self) -> None:
        """The connection's reader task: read and :meth:`feed` until nothing more will be read.

        The listener hears :meth:`Listener.on_closed` at the end, however it ends.
        """
        connection = self.connection
        try:
            self.feed(b"")  # frames the client sent right behind its request head
            while not (connection.closed or self._broken):
                if self._unsent:
                    if self._drained is None:
                        self._drained = trio.Event()
                    await self._drained.wait()
                    continue
                reader = self.reader
                if reader is not None and reader.running and self._fd >= 0:
                    if not await reader.wait(self, self._fd):
                        break  # the end of the stream
                    continue
                data = await self.stream.receive_some(READ_SIZE)
                if not data:
                    break
                self.feed(bytes(data))
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            self._broken = True
        finally:
            self._reading = False
            done = self._reader_done
            if done is not None:
                done.set()
            self.listener.on_closed()

    async def aclose(self, code: int, reason: str) -> None:
        """The close handshake, then the stream's close; the caller bounds the time.

        Sends this side's close frame (unless one was sent or owed), writes what waits,
        waits for the peer's close frame (or the end of the stream), then closes.
        """
        try:
            owed = self.connection.close(code, reason)
            if owed:
                self.write(owed)
            if self._unsent and not self._broken:
                with contextlib.suppress(StreamClosed):
                    await self.flush()
            if self._reading and not self._broken:
                if self._reader_done is None:
                    self._reader_done = trio.Event()
                await self._reader_done.wait()
        finally:
            self._broken = True
            if self.reader is not None and self._fd >= 0:
                self.reader.release(self, self._fd)
            self._fd = -1
            await self.stream.aclose()
