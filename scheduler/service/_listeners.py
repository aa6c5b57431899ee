"""The two listening sockets: the peers' WebSocket port and the admin HTTP port.

Each runs under ``nursery.start`` and reports what it bound. A bind failure is a
:class:`ListenError` whose message names the listener and the address.
"""

from __future__ import annotations

import logging
import socket
import ssl
from collections.abc import Awaitable, Callable
from typing import Final, final

import hypercorn.config
import hypercorn.trio
import trio

from ._console import MAX_MESSAGE


@final
class ListenError(OSError):
    """A listener could not bind. ``str()`` is the whole message, e.g.
    ``peers listener 127.0.0.1:8002: address already in use``."""

    def __init__(self, listener: str, address: str, reason: str) -> None:
        super().__init__(f"{listener} listener {address}: {reason}")
        self.listener = listener
        self.address = address

    @classmethod
    def of(cls, listener: str, host: str, port: int, error: BaseException) -> ListenError:
        reason = (error.strerror if isinstance(error, OSError) else None) or str(error)
        return cls(listener, f"{url_host(host)}:{port}", reason[:1].lower() + reason[1:])


def url_host(host: str) -> str:
    """``host`` as it appears in a URL (IPv6 literals in brackets)."""
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


async def serve_peers(
    handler: Callable[[trio.SocketStream], Awaitable[object]],
    host: str,
    port: int,
    handler_nursery: trio.Nursery,
    task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED,
    *,
    ssl_context: ssl.SSLContext | None = None,
) -> None:
    """Accept TCP connections on the peers' port; each runs ``handler`` in ``handler_nursery``.

    With ``ssl_context`` each connection is a :class:`trio.SSLStream`; its TLS
    handshake runs on the handler's first read, so the handler's deadline bounds
    it. Reports the bound port; runs until cancelled.
    """
    try:
        sockets = await trio.open_tcp_listeners(port, host=host)
    except OSError as exc:
        raise ListenError.of("peers", host, port, exc) from exc
    task_status.started(sockets[0].socket.getsockname()[1])
    listeners: list[trio.abc.Listener[trio.abc.Stream]] = list(sockets)
    if ssl_context is not None:
        listeners = [
            trio.SSLListener(listener, ssl_context, https_compatible=True) for listener in sockets
        ]
    await trio.serve_listeners(handler, listeners, handler_nursery=handler_nursery)


async def serve_admin(
    app: Callable[..., Awaitable[None]],
    host: str,
    port: int,
    *,
    stop: trio.Event,
    done: trio.Event,
    ssl_context: ssl.SSLContext | None = None,
    on_restart: Callable[[BaseException], None] | None = None,
    task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve the admin ASGI app with hypercorn until ``stop`` is set; then set ``done``.

    With ``ssl_context`` it serves HTTPS. Reports the bound URLs.

    One connection's error ends hypercorn's whole server: hypercorn 0.18 answers a
    WebSocket frame that arrives before the upgrade is answered with a 400 of its own,
    and when the app answers the upgrade at the same moment, its HTTP state machine
    raises in the connection's task. So hypercorn is started again on the same
    listening socket (``on_restart`` hears the error): the admin connections open at
    that moment are dropped, nothing else is, and no connection attempt is refused
    meanwhile (the socket keeps listening; hypercorn is handed a duplicate of it).
    """
    try:
        # We bind, not hypercorn: its bind error names no address and leaks the socket.
        with _bind(host, port, "admin") as sock:
            sock.listen(_BACKLOG)
            status = task_status
            while True:
                try:
                    await hypercorn.trio.serve(
                        app,
                        _HypercornConfig(sock.dup(), ssl_context),
                        shutdown_trigger=stop.wait,
                        task_status=status,
                    )
                except Exception as exc:
                    if stop.is_set():
                        raise
                    if on_restart is not None:
                        on_restart(exc)
                else:
                    return
                status = trio.TASK_STATUS_IGNORED
    finally:
        done.set()


def _bind(host: str, port: int, listener: str) -> socket.socket:
    """A bound (not yet listening) TCP socket, or a ListenError."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host.strip("[]"), port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
    except OSError as exc:
        raise ListenError.of(listener, host, port, exc) from exc
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.setblocking(False)
    except OSError as exc:
        sock.close()
        raise ListenError.of(listener, host, port, exc) from exc
    return sock


#: hypercorn's default backlog.
_BACKLOG: Final = 100


@final
class _HypercornConfig(hypercorn.config.Config):
    """Hypercorn's settings for the admin API, serving on a socket we bound."""

    def __init__(self, sock: socket.socket, ssl_context: ssl.SSLContext | None = None) -> None:
        super().__init__()
        secure, insecure = ([sock], []) if ssl_context is not None else ([], [sock])
        self._sockets = hypercorn.config.Sockets(secure, insecure, [])
        self._ssl_context = ssl_context
        self.accesslog = None
        self.errorlog = logging.getLogger("scheduler.admin")
        self.graceful_timeout = 1.0
        self.keep_alive_timeout = 5.0
        # The only WebSocket here is the console's stream: a hello and acks.
        self.websocket_max_message_size = MAX_MESSAGE

    def create_sockets(self) -> hypercorn.config.Sockets:
        return self._sockets

    def create_ssl_context(self) -> ssl.SSLContext | None:
        # Ours, built from the [tls] settings (hypercorn's would need its own fields).
        return self._ssl_context
