"""Connections on the peers' port: the gate, the handshake, and the open sessions.

Every exception of one connection is contained here: one peer's failure never
reaches the listener or another session.
"""

from __future__ import annotations

import logging
import ssl
from typing import final

import trio
from trio_websocket import ConnectionClosed, WebSocketRequest, wrap_server_stream

from ..protocol import SUBPROTOCOL
from ..session import EndCause, Identity
from ._auth import AuthError, PeerGuard
from ._gate import Refusal, Replay, read_upgrade
from ._logging import fields
from ._session import Session, SessionEnv

log = logging.getLogger("scheduler.service")


@final
class Connections:
    """The open sessions of one service, and the handshakes that may add to them."""

    def __init__(
        self, env: SessionEnv, sessions: set[Session], guard: PeerGuard | None = None
    ) -> None:
        self.env = env
        #: Checks each handshake's credentials; None: authentication is off.
        self.guard = guard
        #: Shared with the metrics' session gauge.
        self.sessions = sessions
        self._handshakes = 0
        self._no_sessions = trio.Event()
        self._no_sessions.set()

    def end_all(self, cause: EndCause) -> None:
        for session in list(self.sessions):
            session.end(cause)

    async def wait_idle(self) -> None:
        """Return once no session is open."""
        await self._no_sessions.wait()

    async def handle_stream(self, stream: trio.abc.Stream) -> None:
        """One connection: gate, handshake, session, close.

        The connection's nursery is ours rather than trio-websocket's, so an
        error in its background reader (e.g. wsproto refusing a pong while we
        close) ends this session only, never the server.
        """
        config, metrics = self.env.config, self.env.metrics
        try:
            async with trio.open_nursery() as nursery:
                request: WebSocketRequest | None = None
                identity: Identity | None = None
                with trio.move_on_after(config.announce_timeout):
                    upgrade = await read_upgrade(stream)
                    if isinstance(upgrade, Replay):
                        identity_or_refusal = self.authenticate(upgrade, stream)
                        if isinstance(identity_or_refusal, Refusal):
                            upgrade = identity_or_refusal
                        else:
                            identity = identity_or_refusal
                    if isinstance(upgrade, Refusal):
                        metrics.handshake_rejections.labels(str(upgrade.status)).inc()
                        with trio.move_on_after(config.send_timeout):
                            await stream.send_all(upgrade.encode())
                    elif upgrade is not None:
                        request = await wrap_server_stream(
                            nursery,
                            upgrade,
                            message_queue_size=4,
                            max_message_size=config.max_message_size,
                        )
                if request is not None:
                    await self.handle_request(request, identity)
                nursery.cancel_scope.cancel()
        except* trio.Cancelled:
            raise
        except* trio.BrokenResourceError as group:
            if any(isinstance(exc.__cause__, ssl.SSLError) for exc in group.exceptions):
                # A failed TLS handshake: no certificate, an untrusted one, or not TLS.
                metrics.auth_failures.labels("peers", "tls").inc()
        except* (ConnectionClosed, trio.ClosedResourceError):
            pass
        except* Exception as group:
            for exc in group.exceptions:
                log.error("connection failed", exc_info=exc)  # noqa: TRY400 - not current
            metrics.session_ends.labels(EndCause.INTERNAL.value).inc()
        finally:
            with trio.CancelScope(shield=True), trio.move_on_after(config.close_timeout):
                await stream.aclose()

    def authenticate(self, upgrade: Replay, stream: trio.abc.Stream) -> Identity | Refusal | None:
        """The identity the request head proves (None: authentication off), or a 401."""
        if self.guard is None:
            return None
        peercert = stream.getpeercert() if isinstance(stream, trio.SSLStream) else None
        try:
            return self.guard.authenticate(upgrade.headers, peercert)
        except AuthError as exc:
            self.env.metrics.auth_failures.labels("peers", exc.reason.value).inc()
            log.info("handshake refused", extra=fields(status=401, reason=exc.reason.value))
            challenge = ("WWW-Authenticate", 'Bearer realm="scheduler"')
            return Refusal(401, f"{exc}\n", (challenge,))

    async def handle_request(
        self, request: WebSocketRequest, identity: Identity | None = None
    ) -> None:
        """Handshake and run one session; every exception is contained here."""
        try:
            await self._accept_and_run(request, identity)
        except* trio.Cancelled:
            raise
        except* Exception as group:
            for exc in group.exceptions:
                log.error("session failed", exc_info=exc)  # noqa: TRY400 - not current
            self.env.metrics.session_ends.labels(EndCause.INTERNAL.value).inc()

    async def _accept_and_run(self, request: WebSocketRequest, identity: Identity | None) -> None:
        config, metrics = self.env.config, self.env.metrics
        # Count handshakes in flight too: the cap must hold under concurrent connects.
        if len(self.sessions) + self._handshakes >= config.max_sessions:
            metrics.handshake_rejections.labels("503").inc()
            with trio.move_on_after(config.send_timeout):
                await request.reject(503, body=b"session limit reached; retry later\n")
            return
        proposed = request.proposed_subprotocols
        if proposed and SUBPROTOCOL not in proposed:
            metrics.handshake_rejections.labels("400").inc()
            with trio.move_on_after(config.send_timeout):
                body = f"unsupported subprotocols {list(proposed)}; offer {SUBPROTOCOL}\n"
                await request.reject(400, body=body.encode())
            return
        self._handshakes += 1
        try:
            with trio.move_on_after(config.send_timeout) as accept_scope:
                ws = await request.accept(subprotocol=SUBPROTOCOL if proposed else None)
        finally:
            self._handshakes -= 1
        if accept_scope.cancelled_caught:
            return
        session = Session(self.env, ws, str(request.remote), identity)
        self.sessions.add(session)
        self._no_sessions = trio.Event()
        try:
            await session.run()
        finally:
            self.sessions.discard(session)
            if not self.sessions:
                self._no_sessions.set()
