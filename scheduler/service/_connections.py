"""Connections on the peers' port: admission, the gate, the handshake, and the open sessions.

A connection is counted from its TCP accept, before a byte is read
(:class:`~scheduler.session.Admission`: ``limits.max_connections`` in total,
``limits.max_connections_per_address`` per client address); one over a limit
gets a one-line HTTP 503 and is closed at once. Its request head and the
WebSocket handshake must arrive within ``limits.handshake_timeout`` (else 408
and close). The handshake then takes a session slot (``server.max_sessions``,
``limits.max_sessions_per_address``; 503 when full), which the session holds
until it ends; a session that never announces ends at ``announce_timeout``.

Every exception of one connection is contained here: one peer's failure never
reaches the listener or another session.
"""

from __future__ import annotations

import contextlib
import logging
import ssl
from collections.abc import Sequence
from typing import Final, final

import trio

from ..protocol import SUBPROTOCOL
from ..session import Admission, AdmissionLimits, EndCause, Identity, Refused
from ..transport import Request, ServerConnection, StreamClosed, WebSocketStream
from ._auth import AuthError, PeerGuard
from ._config import ServiceConfig
from ._gate import Refusal, read_upgrade
from ._session import Session, SessionEnv
from ._throttle import AUTH_LOG_ADDRESSES, AUTH_LOG_INTERVAL, LogThrottle, log_throttled

log = logging.getLogger("scheduler.service")

#: The ``reason`` of a connection closed for not completing its handshake in time.
HANDSHAKE_TIMEOUT: Final = "handshake_timeout"

#: What a client over a limit reads (one line each).
_REFUSAL_TEXT: Final = {
    Refused.MAX_CONNECTIONS: "connection limit reached; retry later\n",
    Refused.ADDRESS_CONNECTIONS: "too many connections from your address; retry later\n",
    Refused.MAX_SESSIONS: "session limit reached; retry later\n",
    Refused.ADDRESS_SESSIONS: "too many sessions from your address; retry later\n",
}


def admission_limits(config: ServiceConfig) -> AdmissionLimits:
    return AdmissionLimits(
        max_connections=config.max_connections,
        max_connections_per_address=config.max_connections_per_address,
        max_sessions=config.max_sessions,
        max_sessions_per_address=config.max_sessions_per_address,
    )


#: Frames one message may span (a client's messages are one frame each; browsers and
#: libraries fragment only messages far larger than any of this protocol's).
MAX_FRAMES: Final = 1024


def peer_address(stream: trio.abc.Stream) -> str:
    """The client's IP address, or ``""`` for a stream without a socket (tests' memory streams)."""
    peer = _peer_name(stream)
    return str(peer[0]) if isinstance(peer, tuple) else str(peer or "")


def peer_endpoint(stream: trio.abc.Stream) -> str:
    """``address:port`` of the client (for logs), or ``""`` without a socket."""
    peer = _peer_name(stream)
    if isinstance(peer, tuple):
        return f"{peer[0]}:{peer[1]}"
    return str(peer or "")


def _peer_name(stream: trio.abc.Stream) -> object:
    inner: object = stream
    while (transport := getattr(inner, "transport_stream", None)) is not None:
        inner = transport  # TLS: the socket is under the SSL stream
    sock = getattr(inner, "socket", None)
    if sock is None:
        return ""
    try:
        peer = sock.getpeername()
    except OSError:
        return ""
    return peer


@final
class Connections:
    """The open sessions of one service, and the connections that may add to them."""

    def __init__(
        self, env: SessionEnv, sessions: set[Session], guard: PeerGuard | None = None
    ) -> None:
        self.env = env
        #: Checks each handshake's credentials; None: authentication is off.
        self.guard = guard
        #: Shared with the metrics' session gauge.
        self.sessions = sessions
        self.admission = Admission(admission_limits(env.config))
        #: Refused handshakes are logged once per address per interval, all counted.
        self.refusals = LogThrottle(AUTH_LOG_INTERVAL, AUTH_LOG_ADDRESSES)
        self._no_sessions = trio.Event()
        self._no_sessions.set()

    def end_all(self, cause: EndCause) -> None:
        for session in list(self.sessions):
            session.end(cause)

    async def wait_idle(self) -> None:
        """Return once no session is open."""
        await self._no_sessions.wait()

    async def handle_stream(self, stream: trio.abc.Stream) -> None:
        """One connection: admission, gate, handshake, session, close."""
        address = peer_address(stream)
        try:
            refused = self.admission.connect(address)
            if refused is not None:
                await self._refuse(stream, Refusal(503, _REFUSAL_TEXT[refused]), refused)
                return
            try:
                await self._handle_admitted(stream, address)
            finally:
                self.admission.disconnect(address)
        finally:
            with trio.CancelScope(shield=True), trio.move_on_after(self.env.config.close_timeout):
                await stream.aclose()

    async def _refuse(self, stream: trio.abc.Stream, refusal: Refusal, reason: str) -> None:
        """Answer one line of plain HTTP (bounded), and count why."""
        metrics = self.env.metrics
        metrics.connection_rejections.labels(reason).inc()
        metrics.handshake_rejections.labels(str(refusal.status)).inc()
        with trio.move_on_after(self.env.config.send_timeout):
            with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
                await stream.send_all(refusal.encode())

    async def _handle_admitted(self, stream: trio.abc.Stream, address: str) -> None:
        """Gate, handshake and session of an admitted connection.

        The connection's reader task runs in a nursery of this connection's own, so
        an error in it ends this session only, never the server.
        """
        config, metrics = self.env.config, self.env.metrics
        try:
            connection = ServerConnection(
                max_message_size=config.max_message_size, max_frames=MAX_FRAMES
            )
            upgrade: Request | Refusal | None = None
            identity: Identity | None = None
            with trio.move_on_after(config.handshake_timeout) as handshake:
                upgrade = await read_upgrade(
                    stream, connection, allowed_origins=config.allowed_origins
                )
                if isinstance(upgrade, Request):
                    identity_or_refusal = self.authenticate(upgrade, stream, address)
                    if isinstance(identity_or_refusal, Refusal):
                        upgrade = identity_or_refusal
                    else:
                        identity = identity_or_refusal
                if isinstance(upgrade, Refusal):
                    metrics.handshake_rejections.labels(str(upgrade.status)).inc()
                    with trio.move_on_after(config.send_timeout):
                        await stream.send_all(upgrade.encode())
            if handshake.cancelled_caught:
                if upgrade is None:  # still reading the head: say why we hang up
                    text = f"no complete request within {config.handshake_timeout:g}s\n"
                    await self._refuse(stream, Refusal(408, text), HANDSHAKE_TIMEOUT)
                else:
                    metrics.connection_rejections.labels(HANDSHAKE_TIMEOUT).inc()
                return
            if isinstance(upgrade, Request):
                # This frame lives as long as the session: keep nothing of the request.
                subprotocols = upgrade.subprotocols
                upgrade = identity_or_refusal = None
                await self.handle_request(stream, connection, subprotocols, address, identity)
        except* trio.Cancelled:
            raise
        except* trio.BrokenResourceError as group:
            if any(isinstance(exc.__cause__, ssl.SSLError) for exc in group.exceptions):
                # A failed TLS handshake: no certificate, an untrusted one, or not TLS.
                metrics.auth_failures.labels("peers", "tls").inc()
        except* (StreamClosed, trio.ClosedResourceError):
            pass
        except* Exception as group:
            for exc in group.exceptions:
                log.error("connection failed", exc_info=exc)  # noqa: TRY400 - not current
            metrics.session_ends.labels(EndCause.INTERNAL.value).inc()

    def authenticate(
        self, upgrade: Request, stream: trio.abc.Stream, address: str = ""
    ) -> Identity | Refusal | None:
        """The identity the request head proves (None: authentication off), or a 401.

        Every refusal is counted; it is logged once per address per interval.
        """
        if self.guard is None:
            return None
        peercert = stream.getpeercert() if isinstance(stream, trio.SSLStream) else None
        try:
            return self.guard.authenticate(upgrade.headers, peercert)
        except AuthError as exc:
            reason = exc.reason.value
            self.env.metrics.auth_failures.labels("peers", reason).inc()
            now = trio.current_time()
            log_throttled(
                log, self.refusals, "handshake refused", address, now, status=401, reason=reason
            )
            challenge = ("WWW-Authenticate", 'Bearer realm="scheduler"')
            return Refusal(401, f"{exc}\n", (challenge,))

    async def handle_request(
        self,
        stream: trio.abc.Stream,
        connection: ServerConnection,
        subprotocols: Sequence[str] = (),
        address: str = "",
        identity: Identity | None = None,
    ) -> None:
        """Handshake and run one session; every exception is contained here."""
        try:
            await self._accept_and_run(stream, connection, subprotocols, address, identity)
        except* trio.Cancelled:
            raise
        except* Exception as group:
            for exc in group.exceptions:
                log.error("session failed", exc_info=exc)  # noqa: TRY400 - not current
            self.env.metrics.session_ends.labels(EndCause.INTERNAL.value).inc()

    async def _accept_and_run(
        self,
        stream: trio.abc.Stream,
        connection: ServerConnection,
        subprotocols: Sequence[str],
        address: str,
        identity: Identity | None,
    ) -> None:
        config, metrics = self.env.config, self.env.metrics
        # Counted from here, handshakes in flight included: the caps hold under
        # concurrent connects.
        refused = self.admission.open_session(address)
        if refused is not None:
            metrics.connection_rejections.labels(refused).inc()
            metrics.handshake_rejections.labels("503").inc()
            with trio.move_on_after(config.send_timeout):
                await stream.send_all(connection.reject(503, _REFUSAL_TEXT[refused]))
            return
        try:
            if subprotocols and SUBPROTOCOL not in subprotocols:
                metrics.handshake_rejections.labels("400").inc()
                with trio.move_on_after(config.send_timeout):
                    body = f"unsupported subprotocols {list(subprotocols)}; offer {SUBPROTOCOL}\n"
                    await stream.send_all(connection.reject(400, body))
                return
            with trio.move_on_after(config.send_timeout) as accept_scope:
                await stream.send_all(
                    connection.accept(subprotocol=SUBPROTOCOL if subprotocols else None)
                )
            if accept_scope.cancelled_caught:
                return
            await self._run_session(stream, connection, identity)
        finally:
            self.admission.close_session(address)

    async def _run_session(
        self, stream: trio.abc.Stream, connection: ServerConnection, identity: Identity | None
    ) -> None:
        ws = WebSocketStream(stream, connection, self.env.reader)
        session = Session(self.env, ws, peer_endpoint(stream), identity)
        self.sessions.add(session)
        self._no_sessions = trio.Event()
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(ws.read)
                await session.run()
                nursery.cancel_scope.cancel()
        finally:
            self.sessions.discard(session)
            if not self.sessions:
                self._no_sessions.set()
