"""The peers' port speaks WebSocket on ``/ws`` only: a gate in front of trio-websocket.

trio-websocket upgrades on any path and answers plain HTTP with an empty 400
(then keeps the connection until the handshake deadline). The gate reads the
request head itself (h11, bounded in size), answers what is not an upgrade on
:data:`WS_PATH` with one clear line, and hands an upgrade on, replaying the
bytes it read:

* another path: ``404``;
* ``/ws`` with a method other than GET: ``405``;
* a GET on ``/ws`` without ``Upgrade: websocket``: ``426`` with a hint;
* an upgrade carrying an ``Origin`` header not in ``limits.allowed_origins``:
  ``403``. Browsers send ``Origin`` with every WebSocket handshake and daemons
  do not, so without this any web page a user opens could open sessions;
* a request head that does not parse: ``400``.

The caller checks the credentials in :attr:`Replay.headers` before the
handshake (``401`` when authentication is on and they fail).
"""

from __future__ import annotations

import http
import urllib.parse
from collections.abc import Collection, Sequence
from typing import Final, final

import attrs
import h11
import trio

WS_PATH: Final = "/ws"
#: A request head larger than this is refused (a WebSocket upgrade is well under 1 KiB).
MAX_HEAD: Final = 16 * 1024
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
    stream: trio.abc.Stream, *, allowed_origins: Collection[str] = ()
) -> Replay | Refusal | None:
    """Read one request head from ``stream`` and judge it.

    Returns a stream that replays the head for a WebSocket upgrade on ``/ws``,
    the :class:`Refusal` to send otherwise, or None if the peer closed first.
    The caller bounds the time.
    """
    parser = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEAD)
    seen = bytearray()
    while True:
        try:
            event = parser.next_event()
        except h11.RemoteProtocolError:
            return Refusal(400, "bad HTTP request head\n")
        if event is not h11.NEED_DATA:
            break
        data = await stream.receive_some()
        if not data:
            return None
        seen += data
        parser.receive_data(bytes(data))
    if not isinstance(event, h11.Request):
        return None
    method, target = event.method.decode("latin-1"), event.target.decode("latin-1")
    refusal = check_request(method, target, event.headers, allowed_origins=allowed_origins)
    if refusal is not None:
        return refusal
    return Replay(stream, bytes(seen), tuple((name, value) for name, value in event.headers))


@final
class Replay(trio.abc.Stream):
    """A stream that first returns bytes already read from it."""

    def __init__(
        self,
        inner: trio.abc.Stream,
        prefix: bytes,
        headers: tuple[tuple[bytes, bytes], ...] = (),
    ) -> None:
        self.inner = inner
        self._prefix = prefix
        #: The request head's headers (names in lower case), for the credential check.
        self.headers = headers

    @staticmethod
    def unwrap(stream: trio.abc.Stream) -> trio.abc.Stream:
        """The stream under a replay whose bytes were all read (one call less per read and
        write); any other stream as it is."""
        if isinstance(stream, Replay) and not stream._prefix:
            return stream.inner
        return stream

    async def receive_some(self, max_bytes: int | None = None) -> bytes | bytearray:
        if not self._prefix:
            return await self.inner.receive_some(max_bytes)
        cut = len(self._prefix) if max_bytes is None else max_bytes
        data, self._prefix = self._prefix[:cut], self._prefix[cut:]
        await trio.lowlevel.checkpoint()
        return data

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        await self.inner.send_all(data)

    async def wait_send_all_might_not_block(self) -> None:
        await self.inner.wait_send_all_might_not_block()

    async def aclose(self) -> None:
        await self.inner.aclose()
