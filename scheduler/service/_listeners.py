"""The two listening sockets: the peers' WebSocket port and the admin HTTP port.

Each runs under ``nursery.start`` and reports what it bound. A bind failure is a
:class:`ListenError` whose message names the listener and the address.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable
from typing import final

import hypercorn.config
import hypercorn.trio
import trio


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
) -> None:
    """Accept TCP connections on the peers' port; each runs ``handler`` in ``handler_nursery``.

    Reports the bound port; runs until cancelled.
    """
    try:
        listeners = await trio.open_tcp_listeners(port, host=host)
    except OSError as exc:
        raise ListenError.of("peers", host, port, exc) from exc
    task_status.started(listeners[0].socket.getsockname()[1])
    await trio.serve_listeners(handler, listeners, handler_nursery=handler_nursery)


async def serve_admin(
    app: Callable[..., Awaitable[None]],
    host: str,
    port: int,
    *,
    stop: trio.Event,
    done: trio.Event,
    task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve the admin ASGI app with hypercorn until ``stop`` is set; then set ``done``.

    Reports the bound URLs.
    """
    try:
        async with trio.open_nursery() as nursery:
            serve = functools.partial(
                hypercorn.trio.serve,
                app,
                _hypercorn_config(host, port),
                shutdown_trigger=stop.wait,
            )
            try:
                binds: list[str] = await nursery.start(serve)
            except (OSError, BaseExceptionGroup) as exc:
                # Before it reports, hypercorn only binds: an OSError is a bind failure.
                bind_error = _only_os_error(exc)
                if bind_error is None:
                    raise
                raise ListenError.of("admin", host, port, bind_error) from exc
            task_status.started(binds)
    finally:
        done.set()


def _only_os_error(error: BaseException) -> OSError | None:
    """The first OSError if ``error`` is one or a group of nothing else; else None."""
    if isinstance(error, BaseExceptionGroup):
        matched, rest = error.split(OSError)
        if matched is None or rest is not None:
            return None
        leaf: BaseException = matched
        while isinstance(leaf, BaseExceptionGroup):
            leaf = leaf.exceptions[0]
        error = leaf
    return error if isinstance(error, OSError) else None


def _hypercorn_config(host: str, port: int) -> hypercorn.config.Config:
    hc = hypercorn.config.Config()
    hc.bind = [f"{url_host(host)}:{port}"]
    hc.accesslog = None
    hc.errorlog = logging.getLogger("scheduler.admin")
    hc.graceful_timeout = 1.0
    hc.keep_alive_timeout = 5.0
    return hc
