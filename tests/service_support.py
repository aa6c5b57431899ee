"""An in-process service harness on memory streams, for deterministic tests under MockClock."""

from __future__ import annotations

import ssl
import urllib.parse
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import attrs
import orjson
import trio
import trio.testing
from trio_websocket import (
    ConnectionClosed,
    ConnectionRejected,
    WebSocketConnection,
    wrap_client_stream,
)
from wsproto.utilities import LocalProtocolError

from scheduler.core import PolicySet
from scheduler.protocol import SUBPROTOCOL
from scheduler.service import SchedulerService, ServiceConfig

FAST = ServiceConfig(
    ping_interval=1.0,
    ping_timeout=1.0,
    send_timeout=1.0,
    close_timeout=0.5,
    reconnect_grace=2.0,
    announce_timeout=3.0,
    entrypoints=False,
)


class Freezable(trio.abc.Stream):
    """A stream that can be frozen like a SIGSTOPped process: no reads, no writes."""

    def __init__(self, inner: trio.abc.Stream) -> None:
        self.inner = inner
        self._thawed = trio.Event()
        self._thawed.set()

    def freeze(self) -> None:
        self._thawed = trio.Event()

    def thaw(self) -> None:
        self._thawed.set()

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        await self._thawed.wait()
        await self.inner.send_all(data)

    async def wait_send_all_might_not_block(self) -> None:
        await self._thawed.wait()
        await self.inner.wait_send_all_might_not_block()

    async def receive_some(self, max_bytes: int | None = None) -> bytes | bytearray:
        await self._thawed.wait()
        return await self.inner.receive_some(max_bytes)

    async def aclose(self) -> None:
        await self.inner.aclose()


class Harness:
    def __init__(self, service: SchedulerService, nursery: trio.Nursery) -> None:
        self.service = service
        self.nursery = nursery

    async def announced(self, hostname: str = "alpha", ip: str = "10.0.0.1") -> WebSocketConnection:
        """A session, opened and announced (``host_accepted``): most tests start here."""
        ws, _ = await self.connect()
        reply = await announce(ws, hostname, ip)
        assert reply["type"] == "host_accepted", reply
        return ws

    async def rejection_status(self, subprotocols: Sequence[str] = (SUBPROTOCOL,)) -> int | None:
        """Try a handshake; return the HTTP status it was rejected with (None: accepted)."""
        status: int | None = None
        try:
            ws, _ = await self.connect(subprotocols)
            await ws.aclose()
        except* ConnectionRejected as group:
            leaf: BaseException = group
            while isinstance(leaf, BaseExceptionGroup):
                leaf = leaf.exceptions[0]
            assert isinstance(leaf, ConnectionRejected)
            status = leaf.status_code
        return status

    async def connect(
        self, subprotocols: Sequence[str] = (SUBPROTOCOL,), *, lockstep: bool = False
    ) -> tuple[WebSocketConnection, Freezable]:
        """Open a session over an in-memory stream pair, through the server's real
        stream handler; return the client and its (freezable) stream."""
        if lockstep:
            client_raw, server_stream = trio.testing.lockstep_stream_pair()
        else:
            client_raw, server_stream = trio.testing.memory_stream_pair()
        client_stream = Freezable(client_raw)
        self.nursery.start_soon(self.service.handle_stream, server_stream)
        ws: WebSocketConnection = await self.nursery.start(
            self._hold_client, client_stream, list(subprotocols)
        )
        return ws, client_stream

    @staticmethod
    async def _hold_client(
        stream: trio.abc.Stream,
        subprotocols: list[str],
        task_status: trio.TaskStatus[WebSocketConnection] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Keep a test client alive; its background errors after a close are expected.

        trio-websocket's reader raises wsproto's LocalProtocolError when a ping
        arrives while the client is closing; a test client that "crashes" hits it.
        """
        try:
            async with trio.open_nursery() as nursery:
                ws = await wrap_client_stream(
                    nursery, stream, "scheduler.test", "/ws", subprotocols=subprotocols
                )
                task_status.started(ws)
        except* (LocalProtocolError, ConnectionClosed, trio.BrokenResourceError):
            pass


@asynccontextmanager
async def open_client(url: str) -> AsyncIterator[WebSocketConnection]:
    """A real-socket client that always closes its TCP stream.

    trio-websocket 0.12's ``open_websocket_url`` leaves the socket open when
    the *server* closes first (a ResourceWarning); owning the stream avoids it.
    """
    parsed = urllib.parse.urlsplit(url)
    assert parsed.hostname is not None
    assert parsed.port is not None
    stream = await trio.open_tcp_stream(parsed.hostname, parsed.port)
    try:
        async with trio.open_nursery() as nursery:
            ws = await wrap_client_stream(
                nursery, stream, parsed.hostname, parsed.path or "/", subprotocols=[SUBPROTOCOL]
            )
            try:
                yield ws
            finally:
                with trio.move_on_after(2):
                    await ws.aclose()
    finally:
        await stream.aclose()


@asynccontextmanager
async def running_service(
    config: ServiceConfig = FAST, policies: PolicySet | None = None
) -> AsyncIterator[Harness]:
    service = SchedulerService(config, policies)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(service.run_gc_loops)
        yield Harness(service, nursery)
        nursery.cancel_scope.cancel()


def host_payload(hostname: str = "alpha", ip: str = "10.0.0.1", **extra: Any) -> dict[str, Any]:
    return {"hostname": hostname, "ip": ip, "port": 8002, "download_port": 8001, **extra}


def is_unsolicited(message: dict[str, Any]) -> bool:
    """A message the server sent unasked: a pushed ``schedule`` (no id) or ``fetch_task``."""
    return message["type"] == "fetch_task" or (
        message["type"] == "schedule" and "id" not in message
    )


async def request(ws: WebSocketConnection, message: dict[str, Any]) -> dict[str, Any]:
    """Send one JSON message and return the decoded reply.

    With an ``id`` on the request, unsolicited messages that arrive first are
    skipped; without one, a reply has no id either, so the next message is it.
    """
    await ws.send_message(orjson.dumps(message).decode())
    while True:
        reply: dict[str, Any] = orjson.loads(await ws.get_message())
        if "id" not in message or not is_unsolicited(reply):
            return reply


async def announce(
    ws: WebSocketConnection, hostname: str = "alpha", ip: str = "10.0.0.1", interval: float = 10.0
) -> dict[str, Any]:
    message = {"type": "announce_host", "id": 1, "host": host_payload(hostname, ip)}
    message["interval"] = interval
    return await request(ws, message)


LOOPBACK = ServiceConfig(port=0, admin_port=0, entrypoints=False, ping_interval=30.0)


@attrs.frozen
class Live:
    """A service running on loopback sockets."""

    service: SchedulerService
    ws_url: str
    admin_url: str

    @property
    def ws_address(self) -> tuple[str, int]:
        return _address(self.ws_url)

    @property
    def admin_address(self) -> tuple[str, int]:
        return _address(self.admin_url)


def _address(url: str) -> tuple[str, int]:
    parsed = urllib.parse.urlsplit(url)
    assert parsed.hostname is not None
    assert parsed.port is not None
    return parsed.hostname, parsed.port


@asynccontextmanager
async def serving(
    config: ServiceConfig = LOOPBACK, policies: PolicySet | None = None
) -> AsyncIterator[Live]:
    """Run ``SchedulerService.run`` with real listeners (port 0) until the block ends."""
    service = SchedulerService(config, policies)
    async with trio.open_nursery() as nursery:
        ws_url, admin_url = await nursery.start(
            lambda task_status: service.run(task_status=task_status)
        )
        yield Live(service, ws_url, admin_url)
        nursery.cancel_scope.cancel()


@attrs.frozen
class HttpReply:
    status: int
    headers: dict[str, str]
    body: str


async def raw_http(address: tuple[str, int], head: str) -> HttpReply:
    """Send one raw request head and read the reply until the server closes."""
    stream = await trio.open_tcp_stream(*address)
    async with stream:
        await stream.send_all(head.encode("latin-1"))
        data = bytearray()
        while chunk := await stream.receive_some():
            data += chunk
    raw_head, _, body = bytes(data).partition(b"\r\n\r\n")
    status_line, *header_lines = raw_head.decode("latin-1").split("\r\n")
    headers = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return HttpReply(int(status_line.split()[1]), headers, body.decode())


def upgrade_head(path: str, host: str = "scheduler.test:8002") -> str:
    """A WebSocket upgrade request head for ``path``."""
    return (
        f"GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )


# --- raw frames: a client written by hand, for what a library would not send -------------

MASK = b"\x37\xfa\x21\x3d"


def client_frame(opcode: int, payload: bytes, *, masked: bool = True, rsv: int = 0) -> bytes:
    """One final frame as a client sends it (payloads under 64 KiB)."""
    length = len(payload)
    assert length < 0x10000
    mask_bit = 0x80 if masked else 0
    head = bytes([0x80 | rsv << 4 | opcode, mask_bit | min(length, 126)])
    if length >= 126:
        head += length.to_bytes(2, "big")
    if not masked:
        return head + payload
    return head + MASK + bytes(b ^ MASK[i % 4] for i, b in enumerate(payload))


@asynccontextmanager
async def raw_websocket(
    live: Live, ssl_context: ssl.SSLContext | None = None
) -> AsyncIterator[trio.abc.Stream]:
    """A TCP (or, with ``ssl_context``, TLS) stream past a real upgrade handshake, for
    handcrafted frames."""
    stream: trio.abc.Stream
    if ssl_context is None:
        stream = await trio.open_tcp_stream(*live.ws_address)
    else:
        host, port = live.ws_address
        stream = await trio.open_ssl_over_tcp_stream(host, port, ssl_context=ssl_context)
    async with stream:
        await stream.send_all(upgrade_head("/ws").encode())
        head = bytearray()
        while b"\r\n\r\n" not in head:
            head += await stream.receive_some()
        assert head.startswith(b"HTTP/1.1 101 ")
        assert head.endswith(b"\r\n\r\n")  # the server says nothing before we do
        yield stream


def announce_frame(request_id: int) -> bytes:
    message = {"type": "announce_host", "id": request_id, "host": host_payload()}
    return client_frame(0x1, orjson.dumps(message))


class ServerFrames:
    """Reads the server's (unmasked) frames off a raw stream: (opcode, payload)."""

    def __init__(self, stream: trio.abc.Stream) -> None:
        self.stream = stream
        self.data = bytearray()

    async def next(self) -> tuple[int, bytes]:
        while True:
            frame = self._split()
            if frame is not None:
                return frame
            chunk = await self.stream.receive_some()
            assert chunk, "the server closed the connection"
            self.data += chunk

    def _split(self) -> tuple[int, bytes] | None:
        data = self.data
        if len(data) < 2:
            return None
        length, start = data[1] & 0x7F, 2
        if length == 126:
            if len(data) < 4:
                return None
            length, start = int.from_bytes(data[2:4], "big"), 4
        if len(data) < start + length:
            return None
        frame = (data[0] & 0x0F, bytes(data[start : start + length]))
        del data[: start + length]
        return frame

    async def reply_id(self) -> object:
        opcode, payload = await self.next()
        assert opcode == 0x1
        reply = orjson.loads(payload)
        assert reply["type"] == "host_accepted", reply
        return reply["id"]
