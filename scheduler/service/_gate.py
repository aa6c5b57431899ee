"""The peers' port speaks WebSocket on ``/ws`` only: the gate before the handshake.

The connection (:class:`~scheduler.transport.ServerConnection`) reads the request
head (h11, bounded in size); the gate answers what is not an upgrade on
:data:`WS_PATH` with one clear line, and lets an upgrade on to the handshake:

* another path: ``404``;
* ``/ws`` with a method other than GET: ``405``;
* a GET on ``/ws`` without ``Upgrade: websocket``: ``426`` with a hint;
* an upgrade carrying an ``Origin`` header not in ``limits.allowed_origins``:
  ``403``. Browsers send ``Origin`` with every WebSocket handshake and daemons
  do not, so without this any web page a user opens could open sessions;
* a request head that does not parse, or an upgrade without a valid
  ``Sec-WebSocket-Key``: ``400``; another ``Sec-WebSocket-Version`` than 13: ``426``.

The caller checks the credentials in :attr:`Request.headers` before the
handshake (``401`` when authentication is on and they fail).
"""

from __future__ import annotations

import http
import urllib.parse
from collections.abc import Collection, Sequence
from typing import Final, final

import attrs
import trio

from ..transport import READ_SIZE, BadRequest, Request, ServerConnection

WS_PATH: Final = "/ws"
#: In ``limits.allowed_origins``: any ``Origin`` may open a session.
ANY_ORIGIN: Final = "*"


@final
@attrs.frozen
class Refusal:
    """A plain HTTP answer instead of an upgrade."""

    status: int
    body: str
    headers: tuple[tuple[str, str], ...] = ()

    def encode(self) -> bytes:
        body = self.body.encode()
        head = [f"HTTP/1.1 {self.status} {http.HTTPStatus(self.status).phrase}"]
        head += [f"{name}: {value}" for name, value in self.headers]
        head += [
            "Content-Type: text/plain; charset=utf-8",
            f"Content-Length: {len(body)}",
            "Connection: close",
        ]
        return ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body


def check_request(
    method: str,
    target: str,
    headers: Sequence[tuple[bytes, bytes]],
    *,
    allowed_origins: Collection[str] = (),
) -> Refusal | None:
    """Decide about one request head: None lets it through to the WebSocket handshake."""
    values = {name.lower(): value.decode("latin-1") for name, value in headers}
    path = urllib.parse.urlsplit(target).path
    url = f"ws://{values.get(b'host', 'HOST:PORT')}{WS_PATH}"
    if path != WS_PATH:
        return Refusal(404, f"no endpoint at {path}; peers connect to {url}\n")
    if method != "GET":
        return Refusal(
            405, f"{method} not allowed; open a WebSocket to {url}\n", (("Allow", "GET"),)
        )
    if values.get(b"upgrade", "").lower() != "websocket":
        return Refusal(
            426,
            f"this is the peers' WebSocket endpoint; connect with a WebSocket client to {url}\n",
            (("Upgrade", "websocket"),),
        )
    return check_origin(headers, allowed_origins)


def check_origin(
    headers: Sequence[tuple[bytes, bytes]], allowed_origins: Collection[str]
) -> Refusal | None:
    """``403`` for a handshake whose ``Origin`` headers are not all allowed; None without one."""
    origins = [value.decode("latin-1") for name, value in headers if name.lower() == b"origin"]
    if not origins or ANY_ORIGIN in allowed_origins:
        return None
    if all(origin in allowed_origins for origin in origins):
        return None
    # The origin is not echoed: the body stays one clean line whatever the header holds.
    return Refusal(
        403,
        "cross-origin WebSocket handshakes are refused; "
        "allow the origin with limits.allowed_origins\n",
    )


async def read_upgrade(
    stream: trio.abc.Stream,
    connection: ServerConnection,
    *,
    allowed_origins: Collection[str] = (),
) -> Request | Refusal | None:
    """Read one request head from ``stream`` into ``connection`` and judge it.

    Returns the WebSocket upgrade on ``/ws`` (``connection`` then waits for ``accept``),
    the :class:`Refusal` to send otherwise, or None if the peer closed first. The head
    is parsed once, by the connection. The caller bounds the time.
    """
    while True:
        data = await stream.receive_some(READ_SIZE)
        if not data:
            return None
        for event in connection.receive_data(bytes(data)):
            if isinstance(event, BadRequest):
                return Refusal(400, "bad HTTP request head\n")
            if isinstance(event, Request):
                return _judge(event, allowed_origins)


def _judge(request: Request, allowed_origins: Collection[str]) -> Request | Refusal:
    refusal = check_request(
        request.method, request.target, request.headers, allowed_origins=allowed_origins
    )
    if refusal is not None:
        return refusal
    if request.problem is not None:
        status, text = request.problem
        extra = (("Sec-WebSocket-Version", "13"),) if status == 426 else ()
        return Refusal(status, f"{text}\n", extra)
    return request
