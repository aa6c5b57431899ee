"""A session with the scheduler: one WebSocket, announced, kept alive, closed in time.

A session runs three tasks in its own nursery:

* the **reader** drains every frame, always: while nobody reads, trio-websocket
  stops processing pongs and close frames too. It hands each reply to the
  request waiting for its id, keeps what the scheduler sends unasked (a pushed
  ``schedule``, a ``fetch_task``) for :meth:`SchedulerSession.unsolicited`, and
  ends the session on ``evicted``, on close, or on a frame it cannot decode;
* the **heartbeat** pings the scheduler every ``ping_interval`` (from
  ``host_accepted``) and ends the session when no pong comes within
  ``ping_interval + ping_timeout`` (the silence the scheduler itself tolerates):
  a frozen scheduler keeps its TCP connection open forever;
* the **re-announcer** sends ``announce_host`` every ``interval``;
* the **batcher** (unless batching is off) sends the requests of each linger
  time as one ``batch`` frame (see :mod:`._batching`); each caller still gets
  its own reply or error.

Every network wait has a deadline: the handshake (``connect_timeout``), each send
(``send_timeout``; a send that times out leaves the stream undefined, so it ends
the session), each reply (``request_timeout``) and the close (``close_timeout``).
"""

from __future__ import annotations

import functools
import itertools
import logging
import ssl
import urllib.parse
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from typing import cast, final

import attrs
import trio
import trio_websocket
from trio_websocket import (
    CloseReason,
    ConnectionClosed,
    ConnectionRejected,
    HandshakeError,
    WebSocketConnection,
)
from wsproto.utilities import LocalProtocolError

from scheduler.protocol import (
    SUBPROTOCOL,
    Ack,
    AnnounceHost,
    BackToSource,
    Batch,
    ClientMessage,
    CloseCode,
    DownloadFailed,
    DownloadFinished,
    DownloadStarted,
    ErrorReply,
    Evicted,
    FetchTask,
    HostAccepted,
    HostPayload,
    LeaveHost,
    LeavePeer,
    PiecesFinished,
    ProtocolError,
    RegisterPeer,
    Reschedule,
    Schedule,
    ServerMessage,
    TaskPayload,
    decode_server,
    encode,
)

from ._batching import Batcher, Batching, Reply
from ._errors import (
    ConnectError,
    RequestError,
    RequestTimeout,
    SchedulerClientError,
    SessionLost,
)

__all__ = ["SchedulerSession", "open_scheduler_session"]

_log = logging.getLogger("scheduler.client")

#: The close code of a connection that dropped without a close handshake.
_ABNORMAL_CLOSURE = 1006

#: Unsolicited messages kept for :meth:`SchedulerSession.unsolicited`; the oldest go first.
DEFAULT_UNSOLICITED_BUFFER = 256


@final
class _PendingReply:
    """One request waiting for its reply. ``done`` is also set when the session ends."""

    __slots__ = ("done", "message")

    def __init__(self) -> None:
        self.done = trio.Event()
        self.message: ServerMessage | None = None


@final
class _Unsolicited:
    """What the scheduler sent unasked, kept until read; the oldest go first when full."""

    def __init__(self, size: int) -> None:
        self._kept: deque[Schedule | FetchTask] = deque(maxlen=size)
        self._arrived = trio.Event()
        self._closed = False
        self.dropped = 0

    def keep(self, message: Schedule | FetchTask) -> None:
        if len(self._kept) == self._kept.maxlen:
            self.dropped += 1
            _log.warning("unsolicited %s dropped: nobody read it in time", self._kept[0].tag)
        self._kept.append(message)
        self._arrived.set()

    def close(self) -> None:
        self._closed = True
        self._arrived.set()

    # An iterator object, not an async generator: breaking out of ``async for``
    # needs no ``aclosing``.
    def __aiter__(self) -> _Unsolicited:
        return self

    async def __anext__(self) -> Schedule | FetchTask:
        while not self._kept:
            if self._closed:
                raise StopAsyncIteration
            self._arrived = trio.Event()
            await self._arrived.wait()
        return self._kept.popleft()


@final
class SchedulerSession:
    """An announced session with the scheduler; made by :func:`open_scheduler_session`.

    Requests may be sent from any task while the session is open. After the
    session was lost they raise :class:`SessionLost`; after :meth:`leave` or the
    end of the ``async with`` block they raise :class:`trio.ClosedResourceError`.
    """

    def __init__(
        self,
        ws: WebSocketConnection,
        *,
        host: HostPayload,
        interval: float | None,
        request_timeout: float,
        send_timeout: float,
        close_timeout: float,
        unsolicited_buffer: int = DEFAULT_UNSOLICITED_BUFFER,
        batching: Batching | None = None,
    ) -> None:
        self._ws = ws
        self._host = host
        self._interval = interval
        self._request_timeout = request_timeout
        self._send_timeout = send_timeout
        self._close_timeout = close_timeout
        self._ids = itertools.count(1)
        self._pending: dict[str | int, _PendingReply] = {}
        # Sends each request at once, or gathers them into ``batch`` frames.
        self._outgoing = Batcher(batching or Batching(), self._send, self._ids)
        self._unsolicited = _Unsolicited(unsolicited_buffer)
        self._accepted: HostAccepted | None = None
        self._evicted: Evicted | None = None
        self._lost: SessionLost | None = None
        self._leaving = False
        # Set once the session is over; no reply arrives after that.
        self._ended = trio.Event()
        # The session's nursery (the body and the tasks), and the tasks' own nursery;
        # both are set by _session_on before the first request.
        self._session_scope = trio.CancelScope()
        self._tasks: trio.Nursery | None = None

    # --- state ---------------------------------------------------------------------

    @property
    def host(self) -> HostPayload:
        """What this session announces."""
        return self._host

    @property
    def interval(self) -> float | None:
        """Seconds between announces (``None``: announce once; the server's TTL applies)."""
        return self._interval

    @property
    def accepted(self) -> HostAccepted:
        """The latest ``host_accepted``: the host id, TTL, ping interval and timeout."""
        if self._accepted is None:
            raise RuntimeError("the host has not been accepted yet")
        return self._accepted

    @property
    def host_id(self) -> str:
        """The host id the scheduler gave this host."""
        return self.accepted.host_id

    @property
    def boot_id(self) -> str | None:
        """The scheduler process's ``boot_id`` from ``host_accepted`` (see :mod:`._boot`)."""
        return self.accepted.boot_id

    @property
    def evicted(self) -> Evicted | None:
        """The ``evicted`` message that ended the session, if one did."""
        return self._evicted

    @property
    def evicted_reason(self) -> str | None:
        """The ``reason`` of the ``evicted`` message that ended the session, if one did."""
        return None if self._evicted is None else self._evicted.reason

    @property
    def lost(self) -> SessionLost | None:
        """Why the session was lost, once it was."""
        return self._lost

    # --- requests --------------------------------------------------------------------

    async def request(self, message: ClientMessage) -> ServerMessage:
        """Send ``message`` with a fresh request id and return the scheduler's reply.

        Any ``id`` on ``message`` is replaced. Raises :class:`RequestError` on an
        ``error`` reply, :class:`RequestTimeout` when no reply comes within
        ``request_timeout``, and :class:`SessionLost` when the session ends first.
        """
        self._check_open()
        return await self._request(message, self._request_timeout)

    async def announce(self) -> HostAccepted:
        """Announce the host again now; the re-announcer does this every ``interval``."""
        reply = await self.request(AnnounceHost(host=self._host, interval=self._interval))
        if not isinstance(reply, HostAccepted):
            raise SchedulerClientError(
                f"the reply to announce_host is not host_accepted: {reply!r}"
            )
        self._accepted = reply
        return reply

    async def register_peer(self, peer_id: str, task: TaskPayload) -> Schedule:
        """A peer of this host starts to take part in ``task``; returns where to download from."""
        return _schedule_reply(
            "register_peer", await self.request(RegisterPeer(peer_id=peer_id, task=task))
        )

    async def reschedule(
        self, peer_id: str, failed_parents: Sequence[str] = (), reason: str = ""
    ) -> Schedule:
        """Ask for new parents; ``failed_parents`` are never handed to this peer again."""
        message = Reschedule(peer_id=peer_id, failed_parents=list(failed_parents), reason=reason)
        return _schedule_reply("reschedule", await self.request(message))

    def unsolicited(self) -> AsyncIterator[Schedule | FetchTask]:
        """What the scheduler sends unasked, in order, until the session ends.

        A ``schedule`` with no ``id`` is a proactive push: a parent handed to the
        peer became unschedulable and these are its new parents. ``fetch_task``
        asks a seed host to fetch a task. Up to ``unsolicited_buffer`` messages
        are kept while nobody iterates; past that the oldest are dropped
        (counted in :attr:`unsolicited_dropped`). Use one iterator at a time.
        """
        return self._unsolicited

    @property
    def unsolicited_dropped(self) -> int:
        """Unsolicited messages dropped because nobody read them in time."""
        return self._unsolicited.dropped

    async def download_started(self, peer_id: str) -> None:
        """The peer starts downloading from other peers."""
        await self.request(DownloadStarted(peer_id=peer_id))

    async def back_to_source(self, peer_id: str) -> None:
        """The peer downloads from the origin instead of from other peers."""
        await self.request(BackToSource(peer_id=peer_id))

    async def pieces_finished(
        self,
        peer_id: str,
        pieces: list[int],
        *,
        parent_id: str | None = None,
        cost: float | None = None,
    ) -> None:
        """The peer has ``pieces`` now, from ``parent_id`` (``None``: the origin)."""
        await self.request(
            PiecesFinished(peer_id=peer_id, pieces=pieces, parent_id=parent_id, cost=cost)
        )

    async def download_finished(self, peer_id: str) -> None:
        """The peer has the whole task."""
        await self.request(DownloadFinished(peer_id=peer_id))

    async def download_failed(self, peer_id: str, reason: str = "") -> None:
        """The peer gave up on the task."""
        await self.request(DownloadFailed(peer_id=peer_id, reason=reason))

    async def leave_peer(self, peer_id: str) -> None:
        """The peer leaves its task."""
        await self.request(LeavePeer(peer_id=peer_id))

    async def leave(self, *, ack_timeout: float | None = None) -> bool:
        """Send ``leave_host``, wait for the ack, and close the connection.

        Both the ack and the close are bounded: ``ack_timeout`` (default
        ``request_timeout``) for the ack, ``close_timeout`` for the close. Returns
        whether the scheduler acknowledged. Either way the session is closed, and
        the ``async with`` block exits without :class:`SessionLost`.
        """
        self._check_open()
        # From now on a close by the scheduler (it closes with 1000 after the ack)
        # is the expected end, not a loss.
        self._leaving = True
        limit = self._request_timeout if ack_timeout is None else ack_timeout
        acked = False
        try:
            acked = isinstance(await self._request(LeaveHost(), limit), Ack)
        except (SchedulerClientError, trio.ClosedResourceError) as exc:
            _log.debug("leave_host was not acknowledged: %s", exc)
        self._end(None)
        await _close_websocket(self._ws, self._close_timeout)
        return acked

    # --- internals -----------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._lost is not None:
            raise self._lost.copy()
        if self._leaving or self._ended.is_set():
            raise trio.ClosedResourceError("the scheduler session is closed")

    def _end_error(self) -> SessionLost | trio.ClosedResourceError:
        """What a request raises once the session has ended."""
        if self._lost is not None:
            return self._lost.copy()
        return trio.ClosedResourceError("the scheduler session is closed")

    async def _request(self, message: ClientMessage, reply_timeout: float) -> ServerMessage:
        request_id = next(self._ids)
        pending = _PendingReply()
        self._pending[request_id] = pending
        try:
            await self._outgoing.submit(attrs.evolve(message, id=request_id))
            with trio.move_on_after(reply_timeout):
                await pending.done.wait()
        finally:
            del self._pending[request_id]
        reply = pending.message
        if reply is None:
            if pending.done.is_set():
                raise self._end_error()
            raise RequestTimeout(message.tag, reply_timeout)
        if isinstance(reply, ErrorReply):
            raise RequestError(reply.code, reply.message, owner=reply.owner, url=reply.url)
        return reply

    async def _send(self, message: ClientMessage | Batch) -> None:
        frame = encode(message)
        try:
            with trio.fail_after(self._send_timeout):
                await self._ws.send_message(frame)
        except trio.TooSlowError:
            # A cancelled send leaves the stream undefined: the connection is dead.
            self._end(
                SessionLost(f"sending {message.tag} took longer than {self._send_timeout:g} s")
            )
            raise self._end_error() from None
        except ConnectionClosed as exc:
            # The reader first drains what is queued (maybe an ``evicted``) and then
            # records why the session ended; wait for that, briefly.
            with trio.move_on_after(self._close_timeout):
                await self._ended.wait()
            self._end(_lost_by_close(exc.reason))
            raise self._end_error() from None

    def _end(self, lost: SessionLost | None) -> None:
        """End the session, once: wake every pending request and stop the tasks.

        A loss also cancels the ``async with`` body, which then exits raising it.
        """
        if self._ended.is_set():
            return
        self._ended.set()
        self._unsolicited.close()
        for pending in self._pending.values():
            pending.done.set()
        if lost is not None and not self._leaving:
            _log.info("scheduler session lost: %s", lost.reason)
            self._lost = lost
            self._session_scope.cancel()
        elif self._tasks is not None:
            self._tasks.cancel_scope.cancel()

    async def _run_tasks(self, *, task_status: trio.TaskStatus[trio.Nursery]) -> None:
        async with trio.open_nursery() as tasks:
            tasks.start_soon(self._read_frames)
            tasks.start_soon(self._outgoing.run)
            task_status.started(tasks)

    async def _start(self) -> None:
        """Announce (bounded), then start the heartbeat and the re-announcer."""
        assert self._tasks is not None, "the reader must run before the announce"
        tasks = self._tasks
        accepted = await self.announce()
        _log.info(
            "announced as %s (ttl %s, ping every %g s)",
            accepted.host_id,
            "none" if accepted.ttl is None else f"{accepted.ttl:g} s",
            accepted.ping_interval,
        )
        tasks.start_soon(self._heartbeat)
        if self._interval is not None:
            tasks.start_soon(self._reannounce, self._interval)

    async def _read_frames(self) -> None:
        while True:
            try:
                frame = await self._ws.get_message()
            except ConnectionClosed as exc:
                self._end(_lost_by_close(exc.reason))
                return
            try:
                message = decode_server(frame)
            except ProtocolError as exc:
                self._end(SessionLost(f"the scheduler sent an invalid frame: {exc}"))
                return
            if isinstance(message, Evicted):
                self._evicted = message
                self._end(_lost_by_eviction(message))
                return
            if isinstance(message, FetchTask) or (
                isinstance(message, Schedule) and message.id is None
            ):
                self._unsolicited.keep(message)
            else:
                for reply in self._outgoing.answers(message):  # a batch's replies, in order
                    self._resolve(reply)

    def _resolve(self, reply: Reply) -> None:
        pending = None if reply.id is None else self._pending.get(reply.id)
        if pending is None:
            # A reply to a request that timed out, or an error without an id (the
            # server could not read the frame's id): nobody is waiting for it.
            level = logging.WARNING if isinstance(reply, ErrorReply) else logging.DEBUG
            _log.log(level, "reply to no pending request: %r", reply)
            return
        pending.message = reply
        pending.done.set()

    async def _heartbeat(self) -> None:
        while True:
            await trio.sleep(self.accepted.ping_interval)
            # As long as the scheduler tolerates silence from us (ping_interval +
            # ping_timeout), not just ping_timeout: a client stricter than the server
            # drops, and gets evicted, on a link whose spikes the server rides out.
            timeout = self.accepted.ping_interval + self.accepted.ping_timeout
            try:
                with trio.fail_after(timeout):
                    await self._ws.ping()
            except trio.TooSlowError:
                self._end(SessionLost(f"no pong from the scheduler within {timeout:g} s"))
                return
            except ConnectionClosed:
                return  # the reader reports why

    async def _reannounce(self, interval: float) -> None:
        # A fixed schedule, so that round trips do not make the announces drift late.
        deadline = trio.current_time()
        while True:
            deadline += interval
            await trio.sleep_until(deadline)
            try:
                await self.announce()
            except (SessionLost, trio.ClosedResourceError):
                return  # the session already ended
            except SchedulerClientError as exc:
                # Without announces the host expires; a new session is the remedy.
                self._end(SessionLost(f"re-announce failed: {exc}"))
                return
            _log.debug("re-announced %s", self.accepted.host_id)


async def _close_websocket(ws: WebSocketConnection, close_timeout: float) -> None:
    # Against a dead peer the close handshake never completes; when cancelled,
    # trio-websocket closes the stream without it.
    with trio.move_on_after(close_timeout):
        await ws.aclose()


def _schedule_reply(request: str, reply: ServerMessage) -> Schedule:
    if not isinstance(reply, Schedule):
        raise SchedulerClientError(f"the reply to {request} is not schedule: {reply!r}")
    return reply


def _lost_by_eviction(evicted: Evicted) -> SessionLost:
    detail = f" ({evicted.message})" if evicted.message else ""
    return SessionLost(
        f"evicted by the scheduler: {evicted.reason}{detail}", evicted_reason=evicted.reason
    )


def _lost_by_close(reason: CloseReason | None) -> SessionLost:
    if reason is None:
        return SessionLost("the connection closed")
    code = reason.code
    if code == CloseCode.GOING_AWAY:
        what = "the scheduler is shutting down"
    elif code == CloseCode.EVICTED:
        what = "evicted by the scheduler"
    elif code == _ABNORMAL_CLOSURE:
        what = "the connection dropped"
    else:
        what = "the scheduler closed the connection"
    detail = f": {reason.reason}" if reason.reason else ""
    return SessionLost(f"{what} (close code {code} {reason.name}{detail})", close_code=code)


def _connect_error(url: str, exc: Exception, connect_timeout: float) -> ConnectError:
    if isinstance(exc, ConnectionRejected):
        text = (exc.body or b"").decode("utf-8", "replace").strip()[:200]
        body = "".join(c if c.isprintable() else " " for c in text)
        detail = f"the handshake was rejected with HTTP {exc.status_code}"
        return ConnectError(url, f"{detail}: {body}" if body else detail, exc.status_code)
    plain = url.startswith("ws://")
    if isinstance(exc, trio.TooSlowError):
        hint = " (if the scheduler serves TLS, use wss://)" if plain else ""
        return ConnectError(url, f"no handshake within {connect_timeout:g} s{hint}")
    cause = exc.__cause__
    if isinstance(exc, trio.BrokenResourceError) and isinstance(cause, ssl.SSLError):
        if isinstance(cause, ssl.SSLCertVerificationError):
            return ConnectError(
                url,
                f"TLS handshake failed: {cause}; pass --ca-file with the CA that signed the "
                "scheduler's certificate",
                permanent=True,
            )
        if cause.reason == "WRONG_VERSION_NUMBER":  # the server answered in plain text
            return ConnectError(
                url, f"TLS handshake failed: {cause}; the scheduler serves plain ws://"
            )
        return ConnectError(url, f"TLS handshake failed: {cause}")
    hint = " (if the scheduler serves TLS, use wss://)" if plain and _dropped(exc) else ""
    return ConnectError(url, (str(exc) or type(exc).__name__) + hint)


def _dropped(exc: Exception) -> bool:
    """The server closed the connection during the handshake (a TLS port read HTTP)."""
    return isinstance(exc, HandshakeError | trio.BrokenResourceError | ConnectionResetError)


@final
@attrs.frozen
class _Target:
    """Where a ``ws://`` or ``wss://`` URL points."""

    host: str
    port: int
    #: The ``Host`` header: the URL's authority as written.
    authority: str
    #: The request target: path and query.
    resource: str
    secure: bool

    @classmethod
    def parse(cls, url: str) -> _Target:
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("ws", "wss"):
            raise ValueError(f"the scheduler URL must be ws:// or wss://, got {url!r}")
        if not parts.hostname:
            raise ValueError(f"the scheduler URL has no host: {url!r}")
        secure = parts.scheme == "wss"
        resource = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        return cls(
            host=parts.hostname,
            port=parts.port or (443 if secure else 80),
            authority=parts.netloc.rpartition("@")[2],
            resource=resource,
            secure=secure,
        )


async def wrap_client_stream(
    nursery: trio.Nursery,
    stream: trio.abc.Stream,
    host: str,
    resource: str,
    *,
    subprotocols: Sequence[str] | None = None,
    extra_headers: list[tuple[bytes, bytes]] | None = None,
) -> WebSocketConnection:
    """``trio_websocket.wrap_client_stream``, its reader task contained in ``nursery``.

    A ping that arrives after the client sent its Close (a frozen link that thaws, a
    scheduler that pings while the client leaves) makes trio-websocket 0.12 answer
    with a pong that wsproto refuses: ``LocalProtocolError`` out of the reader task
    (python-trio/trio-websocket#184). RFC 6455 lets a closing end leave pings
    unanswered; here the reader's task ends the connection quietly instead (the
    stream is closed, so a close waiting for the handshake ends at its bound).
    """
    handshake = functools.partial(
        trio_websocket.wrap_client_stream,
        stream=cast("trio.SocketStream", stream),  # any trio stream serves, as in its tests
        host=host,
        resource=resource,
        subprotocols=list(subprotocols) if subprotocols is not None else None,
        extra_headers=extra_headers,
    )
    ws: WebSocketConnection = await nursery.start(_client_reader, handshake, stream)
    return ws


async def _client_reader(
    handshake: Callable[..., Awaitable[WebSocketConnection]],
    stream: trio.abc.Stream,
    task_status: trio.TaskStatus[WebSocketConnection] = trio.TASK_STATUS_IGNORED,
) -> None:
    try:
        async with trio.open_nursery() as reader:
            task_status.started(await handshake(reader))
    except BaseExceptionGroup as group:
        _, rest = group.split(LocalProtocolError)
        if rest is None:  # #184 alone: the connection is over, quietly
            await trio.aclose_forcefully(stream)
            return
        _reraise_sole(rest)  # a rejected handshake: bare, as trio-websocket raises it
        raise rest from None


@asynccontextmanager
async def _open_websocket(
    url: str,
    *,
    connect_timeout: float,
    ssl_context: ssl.SSLContext | None,
    token: str | None = None,
) -> AsyncIterator[WebSocketConnection]:
    """Like ``trio_websocket.open_websocket_url``, but the TCP stream is ours to close.

    trio-websocket 0.12.2 leaves the client's socket open when the server rejects
    the handshake, when the handshake times out, and when the server closes the
    WebSocket first (the client then waits for a TCP close that nothing awaits).
    A daemon that reconnects forever would leak a descriptor each time, so we
    connect the stream ourselves, wrap it, and close it on the way out.
    """
    target = _Target.parse(url)
    stream: trio.SocketStream | trio.SSLStream[trio.SocketStream] | None = None
    try:
        async with trio.open_nursery() as nursery:  # runs trio-websocket's reader
            try:
                with trio.fail_after(connect_timeout):
                    if target.secure:
                        stream = await trio.open_ssl_over_tcp_stream(
                            target.host,
                            target.port,
                            ssl_context=ssl_context or ssl.create_default_context(),
                            https_compatible=True,
                        )
                        # Handshake now: a certificate the client does not trust
                        # fails here, with its reason, not as a silent timeout later.
                        await stream.do_handshake()
                    else:
                        stream = await trio.open_tcp_stream(target.host, target.port)
                    ws = await wrap_client_stream(
                        nursery,
                        stream,
                        target.authority,
                        target.resource,
                        subprotocols=[SUBPROTOCOL],
                        extra_headers=_authorization(token),
                    )
                yield ws
            finally:
                # Also ends the reader, which may wait for the server's TCP close.
                if stream is not None:
                    await trio.aclose_forcefully(stream)
    except BaseExceptionGroup as group:
        # A rejected handshake is raised by the reader task, inside a group.
        _reraise_sole(group)
        raise


def _authorization(token: str | None) -> list[tuple[bytes, bytes]] | None:
    """The ``Authorization: Bearer`` header of the handshake, if there is a token."""
    if token is None:
        return None
    return [(b"Authorization", f"Bearer {token}".encode("latin-1"))]


def _reraise_sole(group: BaseExceptionGroup[BaseException]) -> None:
    """Raise the group's only exception bare, keeping its context; return if it holds more.

    The session's tasks raise nothing themselves (they end the session instead),
    so a group out of the session's nursery holds what the body raised.
    """
    if len(group.exceptions) != 1:
        return
    exc = group.exceptions[0]
    context = exc.__context__
    try:
        raise exc
    finally:
        exc.__context__ = context
        del exc, context


@asynccontextmanager
async def _session_on(
    ws: WebSocketConnection,
    host: HostPayload,
    *,
    interval: float | None,
    request_timeout: float,
    send_timeout: float,
    close_timeout: float,
    batching: Batching | None = None,
) -> AsyncIterator[SchedulerSession]:
    """Run a session on an open WebSocket; :func:`open_scheduler_session` without the connect."""
    session = SchedulerSession(
        ws,
        host=host,
        interval=interval,
        request_timeout=request_timeout,
        send_timeout=send_timeout,
        close_timeout=close_timeout,
        batching=batching,
    )
    try:
        async with trio.open_nursery() as nursery:
            # A loss cancels the body and the tasks alike.
            session._session_scope = nursery.cancel_scope
            session._tasks = await nursery.start(session._run_tasks)
            await session._start()
            try:
                yield session
            finally:
                session._end(None)
    except BaseExceptionGroup as group:
        _reraise_sole(group)
        raise
    finally:
        await _close_websocket(session._ws, session._close_timeout)
    if session.lost is not None:
        raise session.lost


@asynccontextmanager
async def open_scheduler_session(
    url: str,
    host: HostPayload,
    *,
    interval: float | None,
    connect_timeout: float = 5.0,
    request_timeout: float = 5.0,
    send_timeout: float = 5.0,
    close_timeout: float = 2.0,
    ssl_context: ssl.SSLContext | None = None,
    token: str | None = None,
    batching: Batching | None = None,
) -> AsyncIterator[SchedulerSession]:
    """Connect to the scheduler at ``url``, announce ``host``, and keep the session.

    Entering opens the WebSocket (subprotocol ``scheduler.v1``; ``ssl_context``
    for ``wss://``, default: the system's; ``token`` is sent as
    ``Authorization: Bearer``) within ``connect_timeout``, sends
    ``announce_host`` and waits up to ``request_timeout`` for ``host_accepted``.
    It raises :class:`ConnectError` when the connection or handshake fails,
    :class:`RequestError` when the announce is rejected, :class:`RequestTimeout`
    when it is not answered, and :class:`SessionLost` when the connection ends
    first. A bad URL raises :class:`ValueError`.

    Inside the block the session re-announces every ``interval`` seconds (``None``:
    never) and pings the scheduler as ``host_accepted`` says. When the session is
    lost (the connection drops or is closed, no pong in time, an ``evicted``
    message, a failed re-announce) the body is cancelled and the block raises
    :class:`SessionLost`. After :meth:`SchedulerSession.leave`, or when the body
    ends, it closes the connection (bounded by ``close_timeout``) and returns.

    Requests sent within ``batching.linger`` (default 5 ms) of each other go out
    as one ``batch`` frame of at most ``batching.max_messages`` (default 100);
    each caller still gets its own reply or error, and ``request_timeout``
    counts from the call. ``Batching(linger=0)`` sends each request at once.
    """
    connected = False
    try:
        async with _open_websocket(
            url, connect_timeout=connect_timeout, ssl_context=ssl_context, token=token
        ) as ws:
            connected = True
            if ws.subprotocol != SUBPROTOCOL:
                raise ConnectError(
                    url,
                    f"the server did not select the subprotocol {SUBPROTOCOL}: not a scheduler",
                    permanent=True,
                )
            async with _session_on(
                ws,
                host,
                interval=interval,
                request_timeout=request_timeout,
                send_timeout=send_timeout,
                close_timeout=close_timeout,
                batching=batching,
            ) as session:
                yield session
    except (OSError, trio.TooSlowError, trio.BrokenResourceError, HandshakeError) as exc:
        if connected:
            raise
        raise _connect_error(url, exc, connect_timeout) from exc
