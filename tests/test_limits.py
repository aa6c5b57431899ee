"""The limits through the real service on loopback: raw sockets and real clients.

Each resource finding this covers gets its regression test here:

* one address holding many idle TCP connections, or many sessions, cannot lock
  the others out (per-address caps, a total connection cap counted from the
  accept, a handshake deadline, the announce deadline freeing slots);
* a session over its message rate gets ``rate_limited`` and, past a burst of
  those, close 1008;
* a handshake with a foreign ``Origin`` gets 403 before the upgrade;
* framing errors get a close code (1002, 1007) before the TCP close, a binary
  frame gets 1003;
* ``host_accepted`` carries the process's ``boot_id``.
"""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import attrs
import orjson
import pytest
import trio
import trio.testing
from trio_websocket import (
    ConnectionClosed,
    ConnectionRejected,
    WebSocketConnection,
    wrap_client_stream,
)

from scheduler.protocol import SUBPROTOCOL, CloseCode
from scheduler.service import SchedulerService, ServiceConfig
from scheduler.service._gate import check_request
from tests.service_support import (
    LOOPBACK,
    Live,
    ServerFrames,
    announce,
    announce_frame,
    client_frame,
    open_client,
    raw_http,
    raw_websocket,
    request,
    serving,
    upgrade_head,
)

UPGRADE = ((b"Host", b"h:1"), (b"Upgrade", b"websocket"), (b"Connection", b"Upgrade"))


def sample(live: Live, name: str, **labels: str) -> float:
    value = live.service.metrics.registry.get_sample_value(name, labels)
    return 0.0 if value is None else value


def rejected_by(live: Live, reason: str) -> float:
    return sample(live, "scheduler_connection_rejections_total", reason=reason)


@asynccontextmanager
async def idle_connection(live: Live) -> AsyncIterator[trio.SocketStream]:
    stream = await trio.open_tcp_stream(*live.ws_address)
    async with stream:
        yield stream


async def read_to_eof(stream: trio.abc.ReceiveStream) -> bytes:
    data = bytearray()
    try:
        while chunk := await stream.receive_some():
            data += chunk
    except trio.BrokenResourceError:  # a reset after the reply
        pass
    return bytes(data)


async def settle() -> None:
    """Let the server handle what the kernel already delivered on loopback (accepts, EOFs).

    Returns once every task has been blocked, with no I/O ready, for a short cushion.
    """
    await trio.testing.wait_all_tasks_blocked(cushion=0.01)


async def reject_status(url: str) -> int | None:
    status: int | None = None
    try:
        async with open_client(url):
            pass
    except* ConnectionRejected as group:
        leaf: BaseException = group
        while isinstance(leaf, BaseExceptionGroup):
            leaf = leaf.exceptions[0]
        assert isinstance(leaf, ConnectionRejected)
        status = leaf.status_code
    return status


# --- connections and sessions per address --------------------------------------------


async def test_idle_connections_from_one_address_are_capped_before_any_handshake() -> None:
    config = attrs.evolve(LOOPBACK, max_connections_per_address=2, handshake_timeout=30.0)
    with trio.fail_after(10):
        async with serving(config) as live:
            admission = live.service.connections.admission
            async with idle_connection(live), idle_connection(live):
                await settle()
                assert admission.connections_from("127.0.0.1") == 2
                async with idle_connection(live) as third:
                    reply = await read_to_eof(third)
                assert reply.startswith(b"HTTP/1.1 503 ")
                assert reply.endswith(b"too many connections from your address; retry later\n")
                assert rejected_by(live, "address_connections") == 1
                assert admission.connections == 2
            # Closing them frees the address's slots.
            await settle()
            assert admission.connections_from("127.0.0.1") == 0
            async with open_client(live.ws_url) as ws:
                assert (await announce(ws))["type"] == "host_accepted"


async def test_the_total_connection_cap_counts_connections_that_never_handshake() -> None:
    config = attrs.evolve(LOOPBACK, max_connections=2, handshake_timeout=30.0)
    with trio.fail_after(10):
        async with serving(config) as live:
            async with idle_connection(live), idle_connection(live):
                await settle()
                assert live.service.connections.admission.connections == 2
                assert await reject_status(live.ws_url) == 503
                assert rejected_by(live, "max_connections") == 1
            # Once the idle ones are gone, a real client gets in.
            await settle()
            assert live.service.connections.admission.connections == 0
            async with open_client(live.ws_url) as ws:
                assert (await announce(ws))["type"] == "host_accepted"


async def test_a_connection_that_never_sends_its_request_is_closed_at_the_handshake_deadline() -> (
    None
):
    config = attrs.evolve(LOOPBACK, handshake_timeout=0.2)
    with trio.fail_after(10):
        async with serving(config) as live:
            async with idle_connection(live) as idle:
                reply = await read_to_eof(idle)
            assert reply.startswith(b"HTTP/1.1 408 ")
            async with idle_connection(live) as slow:  # slowloris: half a head
                await slow.send_all(upgrade_head("/ws")[:40].encode())
                reply = await read_to_eof(slow)
            assert reply.startswith(b"HTTP/1.1 408 ")
            assert rejected_by(live, "handshake_timeout") == 2
            await settle()
            assert live.service.connections.admission.connections == 0


async def test_sessions_from_one_address_are_capped() -> None:
    config = attrs.evolve(LOOPBACK, max_sessions_per_address=2)
    with trio.fail_after(10):
        async with serving(config) as live:
            async with open_client(live.ws_url) as a, open_client(live.ws_url) as b:
                assert (await announce(a, "a"))["type"] == "host_accepted"
                assert (await announce(b, "b"))["type"] == "host_accepted"
                assert await reject_status(live.ws_url) == 503
                assert rejected_by(live, "address_sessions") == 1
                assert sample(live, "scheduler_handshake_rejections_total", status="503") == 1
            await settle()
            assert live.service.connections.admission.sessions == 0
            async with open_client(live.ws_url) as c:
                assert (await announce(c, "c"))["type"] == "host_accepted"


async def test_sessions_that_never_announce_time_out_and_free_their_slots() -> None:
    config = attrs.evolve(LOOPBACK, max_sessions_per_address=2, announce_timeout=0.3)
    with trio.fail_after(10):
        async with serving(config) as live:
            async with open_client(live.ws_url) as a, open_client(live.ws_url) as b:
                for silent in (a, b):
                    with pytest.raises(ConnectionClosed) as closed:
                        await silent.get_message()
                    assert closed.value.reason.code == CloseCode.POLICY_VIOLATION
            assert sample(live, "scheduler_session_ends_total", cause="announce_timeout") == 2
            await settle()
            assert live.service.connections.admission.sessions == 0
            async with open_client(live.ws_url) as c:
                assert (await announce(c))["type"] == "host_accepted"


@asynccontextmanager
async def client_from(live: Live, source: str) -> AsyncIterator[WebSocketConnection]:
    """A WebSocket client whose TCP connection comes from ``source`` (any 127.x on Linux)."""
    stream = await trio.open_tcp_stream(*live.ws_address, local_address=source)
    try:
        async with trio.open_nursery() as nursery:
            ws = await wrap_client_stream(
                nursery, stream, "scheduler.test", "/ws", subprotocols=[SUBPROTOCOL]
            )
            try:
                yield ws
            finally:
                with trio.move_on_after(2):
                    await ws.aclose()
    finally:
        await stream.aclose()


async def test_one_address_holding_silent_sessions_does_not_lock_out_another() -> None:
    """The finding: 100 sessions that never announce used to fill ``max_sessions``."""
    config = attrs.evolve(
        LOOPBACK, max_sessions=100, max_sessions_per_address=50, announce_timeout=60.0
    )
    statuses: list[int | None] = []
    with trio.fail_after(20):
        async with serving(config) as live, trio.open_nursery() as nursery:
            held = trio.Event()

            async def silent_session() -> None:
                try:
                    async with open_client(live.ws_url):
                        statuses.append(None)
                        await held.wait()
                except* ConnectionRejected as group:
                    statuses.extend(e.status_code for e in _leaves(group))

            for _ in range(100):
                nursery.start_soon(silent_session)
            await settle()
            assert statuses.count(None) == 50
            assert statuses.count(503) == 50
            assert rejected_by(live, "address_sessions") == 50
            async with client_from(live, "127.0.0.2") as other:
                assert (await announce(other))["type"] == "host_accepted"
            held.set()


def _leaves(group: BaseExceptionGroup[ConnectionRejected]) -> list[ConnectionRejected]:
    leaves: list[ConnectionRejected] = []
    for exc in group.exceptions:
        if isinstance(exc, BaseExceptionGroup):
            leaves += _leaves(exc)
        else:
            leaves.append(exc)
    return leaves


# --- message rate ---------------------------------------------------------------------


async def test_a_flooding_session_gets_rate_limited_then_closed_1008() -> None:
    config = attrs.evolve(LOOPBACK, message_rate=0.001, message_burst=2, rate_violation_limit=2)
    with trio.fail_after(10):
        async with serving(config) as live, open_client(live.ws_url) as ws:
            replies = [await announce(ws, interval=60.0) for _ in range(2)]
            assert [r["type"] for r in replies] == ["host_accepted"] * 2
            register = {"type": "register_peer", "id": 9, "peer_id": "p", "task": {"url": "u"}}
            limited = [await request(ws, register) for _ in range(3)]
            assert [r["code"] for r in limited] == ["rate_limited"] * 3
            assert all(r["id"] == 9 for r in limited)
            with pytest.raises(ConnectionClosed) as closed:
                await ws.get_message()
            assert closed.value.reason.code == CloseCode.POLICY_VIOLATION
            assert not live.service.state.has_peer("p")  # nothing was applied
            assert sample(live, "scheduler_rate_limited_total") == 3
            assert sample(live, "scheduler_session_ends_total", cause="rate_limited") == 1


# --- Origin -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("origins", "allowed", "status"),
    [
        ((), (), None),  # a daemon sends no Origin
        ((b"https://evil.example",), (), 403),
        ((b"null",), (), 403),
        ((b"https://console.example",), ("https://console.example",), None),
        ((b"https://console.example",), ("https://other.example",), 403),
        ((b"https://console.example", b"https://evil.example"), ("https://console.example",), 403),
        ((b"https://evil.example",), ("*",), None),
    ],
)
def test_the_gate_refuses_a_foreign_origin(
    origins: tuple[bytes, ...], allowed: tuple[str, ...], status: int | None
) -> None:
    headers = UPGRADE + tuple((b"Origin", origin) for origin in origins)
    refusal = check_request("GET", "/ws", headers, allowed_origins=allowed)
    assert (None if refusal is None else refusal.status) == status
    if refusal is not None:
        assert refusal.body.count("\n") == 1
        assert "evil" not in refusal.body  # the header is not echoed


async def test_a_browser_handshake_gets_403_before_the_upgrade() -> None:
    config = attrs.evolve(LOOPBACK, allowed_origins=("https://console.example",))
    with trio.fail_after(10):
        async with serving(config) as live:
            head = upgrade_head("/ws").replace(
                "\r\n\r\n", "\r\nOrigin: https://evil.example\r\n\r\n"
            )
            reply = await raw_http(live.ws_address, head)
            assert reply.status == 403
            assert sample(live, "scheduler_handshake_rejections_total", status="403") == 1
            assert not live.service.sessions
            allowed = head.replace("https://evil.example", "https://console.example")
            async with idle_connection(live) as stream:
                await stream.send_all(allowed.encode())
                status_line = (await stream.receive_some()).split(b"\r\n")[0]
            assert b" 101 " in status_line


# --- framing errors, raw ------------------------------------------------------------------


async def close_code_after(live: Live, frame: bytes) -> int | None:
    """Send ``frame`` on a fresh session; the close code the server sends (None: none)."""
    async with raw_websocket(live) as stream:
        await stream.send_all(frame)
        data = await read_to_eof(stream)
    while data:
        opcode, length = data[0] & 0x0F, data[1] & 0x7F
        assert length < 126
        payload, data = data[2 : 2 + length], data[2 + length :]
        if opcode == 0x8:
            return int.from_bytes(payload[:2], "big")
    return None


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        pytest.param(client_frame(0x1, b"{}", masked=False), 1002, id="unmasked"),
        pytest.param(client_frame(0x3, b""), 1002, id="reserved-opcode"),
        pytest.param(client_frame(0xB, b""), 1002, id="reserved-control-opcode"),
        pytest.param(client_frame(0x1, b"{}", rsv=0b100), 1002, id="reserved-bit"),
        pytest.param(client_frame(0x1, b'{"type": "\xff"}'), 1007, id="invalid-utf8"),
        pytest.param(client_frame(0x2, b'{"type": "leave_host"}'), 1003, id="binary"),
    ],
)
async def test_a_framing_error_gets_its_close_code_before_the_tcp_close(
    frame: bytes, code: int
) -> None:
    with trio.fail_after(10):
        async with serving() as live:
            assert await close_code_after(live, frame) == code
            await settle()
            assert not live.service.sessions


async def test_frames_in_one_write_and_a_frame_cut_across_writes_are_each_answered() -> None:
    """What TCP may do to a session's frames, on a real socket, once the session listens."""
    with trio.fail_after(10):
        async with serving() as live, raw_websocket(live) as stream:
            replies = ServerFrames(stream)
            await stream.send_all(announce_frame(1))
            assert await replies.reply_id() == 1
            third = announce_frame(3)
            await stream.send_all(announce_frame(2) + third[:5])  # one and a header's start
            assert await replies.reply_id() == 2
            await stream.send_all(third[5:40])  # into the payload
            await settle()
            await stream.send_all(third[40:] + announce_frame(4))
            assert [await replies.reply_id(), await replies.reply_id()] == [3, 4]


async def test_a_framing_error_behind_a_good_frame_closes_after_its_reply() -> None:
    with trio.fail_after(10):
        async with serving() as live, raw_websocket(live) as stream:
            replies = ServerFrames(stream)
            await stream.send_all(announce_frame(1))
            assert await replies.reply_id() == 1
            await stream.send_all(announce_frame(2) + client_frame(0x1, b'{"type": "\xff"}'))
            assert await replies.reply_id() == 2
            opcode, payload = await replies.next()
            assert (opcode, int.from_bytes(payload[:2], "big")) == (0x8, 1007)


async def test_the_server_survives_random_frames() -> None:
    with trio.fail_after(20):
        async with serving() as live:
            rng = random.Random(4)
            for _ in range(30):
                garbage = rng.randbytes(rng.randrange(2, 42))
                async with raw_websocket(live) as stream:
                    await stream.send_all(garbage)
                    with trio.move_on_after(0.05):
                        await read_to_eof(stream)
            async with open_client(live.ws_url) as ws:
                assert (await announce(ws))["type"] == "host_accepted"


# --- boot_id ----------------------------------------------------------------------------


async def test_host_accepted_carries_the_process_boot_id() -> None:
    with trio.fail_after(10):
        async with serving() as live, open_client(live.ws_url) as ws:
            first = await announce(ws)
            again = await announce(ws)
            assert first["boot_id"] == again["boot_id"] == live.service.boot_id
            assert len(first["boot_id"]) == 16
    assert SchedulerService(LOOPBACK).boot_id != live.service.boot_id


def test_a_service_config_has_the_limits_defaults() -> None:
    config = ServiceConfig()
    assert config.max_connections > config.max_sessions
    assert config.handshake_timeout < config.announce_timeout
    assert config.allowed_origins == ()
    assert orjson.dumps(config.allowed_origins) == b"[]"
