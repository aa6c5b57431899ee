"""The client library: sessions, the peer daemon, backoff and the hosts table.

Sessions are tested against a fake scheduler that speaks just enough of protocol
v1, served on loopback (port 0) or, where time matters, over in-memory streams
under the autojump clock.
"""

from __future__ import annotations

import functools
import http.server
import io
import json
import logging
import random
import socket
import threading
from collections.abc import Callable, Iterator
from typing import Any

import attrs
import pytest
import trio
import trio.testing
from rich.console import Console
from trio_websocket import (
    ConnectionClosed,
    WebSocketConnection,
    WebSocketRequest,
    serve_websocket,
    wrap_client_stream,
    wrap_server_stream,
)
from wsproto import ConnectionType, WSConnection
from wsproto.events import AcceptConnection, CloseConnection, Request

from scheduler.client import (
    Backoff,
    Batching,
    ConnectError,
    HostsFetchError,
    PeerConfig,
    RequestError,
    RequestTimeout,
    SchedulerSession,
    SessionLost,
    fetch_hosts,
    format_age,
    open_scheduler_session,
    print_hosts,
    render_hosts_table,
    run_peer,
)
from scheduler.client._connection import _session_on, _Target
from scheduler.client._connection import wrap_client_stream as connection_wrap_client_stream
from scheduler.protocol import (
    SUBPROTOCOL,
    Ack,
    AnnounceHost,
    Batch,
    BatchReply,
    ClientMessage,
    DownloadStarted,
    ErrorReply,
    Evicted,
    HostAccepted,
    HostPayload,
    LeaveHost,
    ProtocolError,
    ServerMessage,
    TaskPayload,
    decode_client,
    encode,
)

HOST = HostPayload(hostname="node-1", ip="127.0.0.1", port=8002, download_port=8001)
TASK = TaskPayload(url="https://example.com/base.tar")

# --- a fake scheduler -------------------------------------------------------------------


@attrs.define(eq=False)
class Changes:
    """Wakes whoever waits for a condition each time something changed."""

    _event: trio.Event = attrs.Factory(trio.Event)

    def notify(self) -> None:
        self._event.set()
        self._event = trio.Event()

    async def wait_until(self, predicate: Callable[[], bool]) -> None:
        while not predicate():
            await self._event.wait()


@attrs.define(eq=False)
class FakeScheduler:
    """Replies as docs/protocol.md says, with knobs for the failures under test."""

    url: str = ""
    ping_interval: float = 60.0
    ping_timeout: float = 60.0
    #: Message type -> (code, message) of the ``error`` reply it gets.
    errors: dict[str, tuple[str, str]] = attrs.Factory(dict)
    #: Message types that get no reply at all.
    silent: set[str] = attrs.Factory(set)
    #: Message type -> eviction reason: instead of a reply, ``evicted`` and close 4001.
    evict_on: dict[str, str] = attrs.Factory(dict)
    #: Message type -> close code the server closes with right after its reply.
    close_on: dict[str, int] = attrs.Factory(dict)
    #: The first this many sessions are dropped (1011) right after their first announce.
    drop_sessions: int = 0
    #: Reject every handshake with this HTTP status.
    reject_status: int | None = None

    received: list[ClientMessage] = attrs.Factory(list)
    #: Every frame as it came: a message, or a ``batch`` of them (whose messages are
    #: also in ``received``, and answered as if each came alone, in one ``batch``
    #: reply; the knobs that close the session do not apply inside a batch).
    frames: list[ClientMessage | Batch] = attrs.Factory(list)
    #: When each frame arrived (trio time), parallel to ``frames``.
    frames_at: list[float] = attrs.Factory(list)
    #: When each message arrived (trio time), parallel to ``received``.
    received_at: list[float] = attrs.Factory(list)
    handshakes: int = 0
    sessions: int = 0
    changes: Changes = attrs.Factory(Changes)

    def count(self, tag: str) -> int:
        return sum(1 for message in self.received if message.tag == tag)

    async def wait_until(self, predicate: Callable[[], bool]) -> None:
        await self.changes.wait_until(predicate)

    async def handle(self, request: WebSocketRequest) -> None:
        # A handler's exception would kill serve_websocket: contain it.
        try:
            await self._serve(request)
        except* ConnectionClosed:
            pass

    async def _serve(self, request: WebSocketRequest) -> None:
        self.handshakes += 1
        self.changes.notify()
        if self.reject_status is not None:
            await request.reject(self.reject_status)
            return
        ws = await request.accept(subprotocol=SUBPROTOCOL)
        self.sessions += 1
        session_number = self.sessions
        announced = False
        while True:
            message = decode_client(await ws.get_message())
            self.frames.append(message)
            self.frames_at.append(trio.current_time())
            if isinstance(message, Batch):
                await ws.send_message(encode(self._reply_to_batch(message)))
                continue
            self.received.append(message)
            self.received_at.append(trio.current_time())
            self.changes.notify()
            tag = message.tag
            if tag in self.silent:
                continue
            if tag in self.evict_on:
                await ws.send_message(encode(Evicted(reason=self.evict_on[tag])))
                await ws.aclose(4001)
                return
            await ws.send_message(encode(self._reply_to(message)))
            if isinstance(message, LeaveHost):
                await ws.aclose(1000)
                return
            if tag in self.close_on:
                await ws.aclose(self.close_on[tag])
                return
            if isinstance(message, AnnounceHost) and not announced:
                announced = True
                if session_number <= self.drop_sessions:
                    await ws.aclose(1011)
                    return

    def _reply_to_batch(self, batch: Batch) -> BatchReply | ErrorReply:
        if "batch" in self.errors:  # a server that refuses the batch frame whole
            code, text = self.errors["batch"]
            return ErrorReply(id=batch.id, code=code, message=text)
        replies: list[ServerMessage] = []
        for message in batch.messages:
            assert not isinstance(message, ProtocolError)
            self.received.append(message)
            self.received_at.append(trio.current_time())
            if message.tag not in self.silent:
                replies.append(self._reply_to(message))
        self.changes.notify()
        return BatchReply(id=batch.id, replies=replies)

    def _reply_to(self, message: ClientMessage) -> HostAccepted | Ack | ErrorReply:
        if message.tag in self.errors:
            code, text = self.errors[message.tag]
            return ErrorReply(id=message.id, code=code, message=text)
        if isinstance(message, AnnounceHost):
            return HostAccepted(
                id=message.id,
                host_id=f"{message.host.ip}-{message.host.hostname}",
                ttl=None if message.interval is None else 2 * message.interval,
                ping_interval=self.ping_interval,
                ping_timeout=self.ping_timeout,
                reconnect_grace=5.0,
            )
        return Ack(id=message.id)


@pytest.fixture
async def fake(nursery: trio.Nursery) -> FakeScheduler:
    """A fake scheduler on 127.0.0.1, port 0."""
    scheduler = FakeScheduler()
    server = await nursery.start(serve_websocket, scheduler.handle, "127.0.0.1", 0, None)
    scheduler.url = f"ws://127.0.0.1:{server.port}/"
    return scheduler


async def connect_in_memory(nursery: trio.Nursery, fake: FakeScheduler) -> WebSocketConnection:
    """A client WebSocket to ``fake`` over in-memory streams (deterministic under autojump)."""
    client_stream, server_stream = trio.testing.memory_stream_pair()

    async def serve() -> None:
        await fake.handle(await wrap_server_stream(nursery, server_stream))

    # The server side must run first: wrap_client_stream waits for the accept.
    nursery.start_soon(serve)
    return await wrap_client_stream(
        nursery,
        client_stream,  # type: ignore[arg-type]  # the hint is narrower than what works
        "scheduler.test",
        "/",
        subprotocols=[SUBPROTOCOL],
    )


def session_over(
    ws: WebSocketConnection, *, interval: float | None, batching: Batching | None = None
) -> Any:
    return _session_on(
        ws,
        HOST,
        interval=interval,
        request_timeout=5.0,
        send_timeout=5.0,
        close_timeout=1.0,
        batching=batching,
    )


class PeerLog(logging.Handler):
    """The ``scheduler.peer`` log lines, to wait for a state change."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.lines: list[str] = []
        self.changes = Changes()

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())
        self.changes.notify()

    def count(self, prefix: str) -> int:
        return sum(1 for line in self.lines if line.startswith(prefix))


@pytest.fixture
def peer_log() -> Iterator[PeerLog]:
    logger = logging.getLogger("scheduler.peer")
    handler, level = PeerLog(), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


def peer_config(url: str, **changes: Any) -> PeerConfig:
    fast = {"backoff_base": 0.01, "backoff_cap": 0.02, "connect_timeout": 2.0}
    return PeerConfig(
        scheduler_url=url, hostname="node-1", port=8002, download_port=8001, **(fast | changes)
    )


# --- sessions -------------------------------------------------------------------------------


async def test_announce_is_accepted_and_the_session_ends_cleanly(fake: FakeScheduler) -> None:
    with trio.fail_after(2):
        async with open_scheduler_session(fake.url, HOST, interval=30.0) as session:
            assert session.host_id == "127.0.0.1-node-1"
            assert session.accepted.ttl == 60.0
            assert session.accepted.ping_interval == fake.ping_interval
        (announce,) = fake.received
        assert isinstance(announce, AnnounceHost)
        assert announce.host == HOST
        assert announce.interval == 30.0
        assert isinstance(announce.id, int)
        assert session.lost is None


async def test_requests_get_their_replies_by_id_and_errors_are_mapped(
    fake: FakeScheduler,
) -> None:
    fake.errors["register_peer"] = ("conflict", "peer id p1 is in use")
    with trio.fail_after(2):
        async with open_scheduler_session(fake.url, HOST, interval=None) as session:
            reply = await session.request(DownloadStarted(id="ignored", peer_id="p1"))
            assert reply == Ack(id=fake.received[-1].id)
            with pytest.raises(RequestError) as error:
                await session.register_peer("p1", TASK)
            assert error.value.code == "conflict"
            assert error.value.message == "peer id p1 is in use"
            # The session carries on after an error reply.
            await session.download_started("p1")
            await session.pieces_finished("p1", [0, 1], parent_id="p0", cost=0.5)
            await session.download_finished("p1")
            await session.leave_peer("p1")
    ids = [message.id for message in fake.received]
    assert len(set(ids)) == len(ids)
    assert [message.tag for message in fake.received[1:]] == [
        "download_started",
        "register_peer",
        "download_started",
        "pieces_finished",
        "download_finished",
        "leave_peer",
    ]


async def test_a_request_without_reply_times_out_and_the_session_carries_on(
    autojump_clock: trio.testing.MockClock, fake: FakeScheduler
) -> None:
    fake.silent.add("back_to_source")
    with trio.fail_after(2):
        async with open_scheduler_session(
            fake.url, HOST, interval=None, request_timeout=0.2
        ) as session:
            with pytest.raises(RequestTimeout, match="back_to_source"):
                await session.back_to_source("p1")
            await session.download_failed("p1", "disk full")


async def test_a_rejected_announce_raises_request_error(fake: FakeScheduler) -> None:
    fake.errors["announce_host"] = ("invalid_message", "must not be empty @ $.host.idc")
    with trio.fail_after(2), pytest.raises(RequestError) as error:
        async with open_scheduler_session(fake.url, HOST, interval=None):
            pytest.fail("the session should not open")
    assert error.value.code == "invalid_message"


async def test_an_unanswered_announce_times_out(
    autojump_clock: trio.testing.MockClock, fake: FakeScheduler
) -> None:
    fake.silent.add("announce_host")
    with trio.fail_after(2), pytest.raises(RequestTimeout, match="announce_host"):
        async with open_scheduler_session(fake.url, HOST, interval=None, request_timeout=0.2):
            pytest.fail("the session should not open")


async def test_a_rejected_handshake_raises_connect_error_with_the_status(
    fake: FakeScheduler,
) -> None:
    fake.reject_status = 503
    with trio.fail_after(2), pytest.raises(ConnectError) as error:
        async with open_scheduler_session(fake.url, HOST, interval=None):
            pytest.fail("the session should not open")
    assert error.value.status_code == 503


async def test_an_unreachable_scheduler_raises_connect_error() -> None:
    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    port = listeners[0].socket.getsockname()[1]
    await listeners[0].aclose()
    with trio.fail_after(2), pytest.raises(ConnectError) as error:
        async with open_scheduler_session(f"ws://127.0.0.1:{port}/", HOST, interval=None):
            pytest.fail("the session should not open")
    assert error.value.status_code is None


async def test_a_handshake_that_never_completes_is_bounded(
    autojump_clock: trio.testing.MockClock, nursery: trio.Nursery
) -> None:
    async def mute(stream: trio.SocketStream) -> None:
        await trio.sleep_forever()

    (listener,) = await nursery.start(functools.partial(trio.serve_tcp, mute, 0, host="127.0.0.1"))
    url = f"ws://127.0.0.1:{listener.socket.getsockname()[1]}/"
    with trio.fail_after(2), pytest.raises(ConnectError, match=r"no handshake within 0\.2 s"):
        async with open_scheduler_session(url, HOST, interval=None, connect_timeout=0.2):
            pytest.fail("the session should not open")


@pytest.mark.parametrize(
    ("url", "target"),
    [
        ("ws://127.0.0.1:8002", _Target("127.0.0.1", 8002, "127.0.0.1:8002", "/", False)),
        ("wss://scheduler/ws?v=1", _Target("scheduler", 443, "scheduler", "/ws?v=1", True)),
        ("ws://u@[::1]:9000/x", _Target("::1", 9000, "[::1]:9000", "/x", False)),
    ],
)
def test_scheduler_urls_are_parsed(url: str, target: _Target) -> None:
    assert _Target.parse(url) == target


@pytest.mark.parametrize("url", ["http://scheduler/", "ws:///path"])
def test_bad_scheduler_urls_are_rejected(url: str) -> None:
    with pytest.raises(ValueError, match="scheduler URL"):
        _Target.parse(url)


async def test_the_session_is_closed_after_the_block(fake: FakeScheduler) -> None:
    with trio.fail_after(2):
        async with open_scheduler_session(fake.url, HOST, interval=None) as session:
            pass
        with pytest.raises(trio.ClosedResourceError):
            await session.download_started("p1")
        # The scheduler saw the connection end without leave_host: a drop.
        assert fake.count("leave_host") == 0


async def test_the_session_reannounces_every_interval(
    autojump_clock: trio.testing.MockClock, nursery: trio.Nursery
) -> None:
    fake = FakeScheduler()
    ws = await connect_in_memory(nursery, fake)
    with trio.fail_after(100):
        async with session_over(ws, interval=30.0) as session:
            start = trio.current_time()
            await fake.wait_until(lambda: fake.count("announce_host") == 4)
            assert session.accepted.host_id == "127.0.0.1-node-1"
    offsets = [at - start for at in fake.received_at]
    assert offsets == pytest.approx([0.0, 30.0, 60.0, 90.0], abs=0.1)
    assert all(
        message == AnnounceHost(id=message.id, host=HOST, interval=30.0)
        for message in fake.received
    )


async def test_a_failed_reannounce_ends_the_session(
    autojump_clock: trio.testing.MockClock, nursery: trio.Nursery
) -> None:
    fake = FakeScheduler()
    ws = await connect_in_memory(nursery, fake)

    async def hold_until_a_reannounce_is_rejected() -> None:
        async with session_over(ws, interval=30.0):
            fake.errors["announce_host"] = ("forbidden", "another host")
            await trio.sleep_forever()

    with trio.fail_after(100), pytest.raises(SessionLost, match="re-announce failed: forbidden"):
        await hold_until_a_reannounce_is_rejected()


async def test_the_heartbeat_detects_a_frozen_scheduler(
    autojump_clock: trio.testing.MockClock, nursery: trio.Nursery
) -> None:
    client_stream, server_stream = trio.testing.memory_stream_pair()

    async def freezing_scheduler() -> None:
        async with trio.open_nursery() as server_side:
            request = await wrap_server_stream(server_side, server_stream)
            ws = await request.accept(subprotocol=SUBPROTOCOL)
            announce = decode_client(await ws.get_message())
            accepted = HostAccepted(
                id=announce.id,
                host_id="127.0.0.1-node-1",
                ping_interval=5.0,
                ping_timeout=3.0,
                reconnect_grace=5.0,
            )
            await ws.send_message(encode(accepted))
            # Freeze, as SIGSTOP would: nothing on the server side reads any more
            # (no pongs), while the connection stays open.
            server_side.cancel_scope.cancel()

    nursery.start_soon(freezing_scheduler)
    ws = await wrap_client_stream(
        nursery,
        client_stream,  # type: ignore[arg-type]  # the hint is narrower than what works
        "scheduler.test",
        "/",
        subprotocols=[SUBPROTOCOL],
    )
    times: dict[str, float] = {}

    async def hold_session() -> None:
        async with session_over(ws, interval=None):
            times["accepted"] = trio.current_time()
            try:
                await trio.sleep_forever()
            finally:
                times["lost"] = trio.current_time()

    with trio.fail_after(100), pytest.raises(SessionLost) as lost:
        await hold_session()
    # Detected one ping interval after the announce plus the pong wait, which is the
    # silence the scheduler tolerates (interval 5 + timeout 3); the close handshake
    # that the frozen server never answers is cut off after close_timeout.
    assert times["lost"] - times["accepted"] == pytest.approx(13.0, abs=0.1)
    assert trio.current_time() - times["lost"] == pytest.approx(1.0, abs=0.1)
    assert lost.value.reason == "no pong from the scheduler within 8 s"
    assert lost.value.close_code is None


async def test_the_heartbeat_keeps_a_live_session(
    autojump_clock: trio.testing.MockClock, nursery: trio.Nursery
) -> None:
    fake = FakeScheduler(ping_interval=1.0, ping_timeout=1.0)
    ws = await connect_in_memory(nursery, fake)
    with trio.fail_after(100):
        async with session_over(ws, interval=None) as session:
            await trio.sleep(30)  # thirty pings, each answered in time
            assert session.lost is None


async def test_an_evicted_message_ends_the_session_with_its_reason(fake: FakeScheduler) -> None:
    fake.evict_on["download_started"] = "admin"
    sessions: list[SchedulerSession] = []

    async def hold_session() -> None:
        async with open_scheduler_session(fake.url, HOST, interval=None) as session:
            sessions.append(session)
            await session.download_started("p1")
            pytest.fail("the request should have been cancelled by the eviction")

    with trio.fail_after(2), pytest.raises(SessionLost) as lost:
        await hold_session()
    assert lost.value.evicted_reason == "admin"
    (session,) = sessions
    assert session.evicted_reason == "admin"
    assert session.lost is not None
    assert session.lost.evicted_reason == "admin"


async def test_a_scheduler_shutdown_ends_the_session_with_its_close_code(
    fake: FakeScheduler,
) -> None:
    fake.close_on["download_started"] = 1001
    sessions: list[SchedulerSession] = []

    async def hold_session() -> None:
        async with open_scheduler_session(fake.url, HOST, interval=None) as session:
            sessions.append(session)
            await session.download_started("p1")
            await trio.sleep_forever()

    with trio.fail_after(2), pytest.raises(SessionLost, match="shutting down") as lost:
        await hold_session()
    assert lost.value.close_code == 1001
    (session,) = sessions
    assert lost.value.evicted_reason is None
    # Once lost, requests raise the loss again.
    with pytest.raises(SessionLost, match="shutting down"):
        await session.download_finished("p1")


async def test_leave_waits_for_the_ack_and_exits_cleanly(fake: FakeScheduler) -> None:
    with trio.fail_after(2):
        async with open_scheduler_session(fake.url, HOST, interval=None) as session:
            assert await session.leave() is True
            with pytest.raises(trio.ClosedResourceError):
                await session.download_started("p1")
    assert isinstance(fake.received[-1], LeaveHost)
    assert session.lost is None


async def test_leave_without_ack_is_bounded(
    autojump_clock: trio.testing.MockClock, fake: FakeScheduler
) -> None:
    fake.silent.add("leave_host")
    with trio.fail_after(2):
        async with open_scheduler_session(fake.url, HOST, interval=None) as session:
            start = trio.current_time()
            assert await session.leave(ack_timeout=0.2) is False
            assert trio.current_time() - start == pytest.approx(0.2)


# --- the peer daemon --------------------------------------------------------------------------


async def test_run_peer_announces_and_leaves_on_shutdown(fake: FakeScheduler) -> None:
    shutdown = trio.Event()
    with trio.fail_after(2):
        async with trio.open_nursery() as nursery:
            # Returns once the first host_accepted arrived.
            await nursery.start(
                functools.partial(run_peer, peer_config(fake.url), shutdown=shutdown)
            )
            assert fake.count("announce_host") == 1
            shutdown.set()
    assert [message.tag for message in fake.received] == ["announce_host", "leave_host"]


async def test_run_peer_reconnects_and_reannounces_after_drops(
    fake: FakeScheduler, peer_log: PeerLog
) -> None:
    fake.drop_sessions = 2
    shutdown = trio.Event()
    with trio.fail_after(2):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(
                functools.partial(run_peer, peer_config(fake.url), shutdown=shutdown)
            )
            await peer_log.changes.wait_until(lambda: peer_log.count("announced as") == 3)
            shutdown.set()
    assert (fake.sessions, fake.count("announce_host"), fake.count("leave_host")) == (3, 3, 1)
    lost = [line for line in peer_log.lines if line.startswith("session lost")]
    assert len(lost) == 2
    assert all("1011" in line for line in lost)
    assert peer_log.count("reconnecting in") == 2
    assert peer_log.lines[-2:] == ["left the scheduler", "stopped"]


async def test_run_peer_leave_without_ack_is_bounded_by_leave_timeout(
    autojump_clock: trio.testing.MockClock, fake: FakeScheduler
) -> None:
    fake.silent.add("leave_host")
    shutdown = trio.Event()
    config = peer_config(fake.url, leave_timeout=0.2)
    with trio.fail_after(2):
        async with trio.open_nursery() as nursery:
            await nursery.start(functools.partial(run_peer, config, shutdown=shutdown))
            shutdown.set()
            start = trio.current_time()
        assert trio.current_time() - start == pytest.approx(0.2)
    assert fake.count("leave_host") == 1


async def test_run_peer_backs_off_while_rejected_and_stops_on_shutdown(
    fake: FakeScheduler,
) -> None:
    fake.reject_status = 503
    shutdown = trio.Event()
    with trio.fail_after(2):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(
                functools.partial(run_peer, peer_config(fake.url), shutdown=shutdown)
            )
            await fake.wait_until(lambda: fake.handshakes >= 3)
            shutdown.set()
    assert fake.received == []


async def test_run_peer_abandons_a_connect_in_progress_on_shutdown(nursery: trio.Nursery) -> None:
    # A TCP server that accepts and never answers the WebSocket handshake.
    accepted = trio.Event()

    async def mute(stream: trio.SocketStream) -> None:
        accepted.set()
        await trio.sleep_forever()

    (listener,) = await nursery.start(functools.partial(trio.serve_tcp, mute, 0, host="127.0.0.1"))
    port = listener.socket.getsockname()[1]
    shutdown = trio.Event()
    config = peer_config(f"ws://127.0.0.1:{port}/", connect_timeout=30.0)
    with trio.fail_after(2):
        async with trio.open_nursery() as peer:
            peer.start_soon(functools.partial(run_peer, config, shutdown=shutdown))
            await accepted.wait()
            shutdown.set()


def test_peer_config_builds_the_announced_host() -> None:
    config = PeerConfig(
        scheduler_url="ws://scheduler:8002/", port=8002, download_port=8001, idc="a", location="eu"
    )
    assert config.hostname == socket.gethostname()
    assert config.host_payload() == HostPayload(
        hostname=socket.gethostname(),
        ip="127.0.0.1",
        port=8002,
        download_port=8001,
        idc="a",
        location="eu",
    )
    assert (config.announce_interval, config.leave_timeout) == (30.0, 3.0)
    assert (config.backoff_base, config.backoff_cap) == (0.1, 5.0)
    assert not config.cluster
    with pytest.raises(ValueError, match="ws://"):
        PeerConfig(scheduler_url="ftp://scheduler:8002/", port=8002, download_port=8001)
    # An admin URL (http[s]://) is a cluster member's: the daemon finds the others there.
    cluster = PeerConfig(scheduler_url="http://scheduler:8000", port=8002, download_port=8001)
    assert cluster.cluster
    assert cluster.cluster_refresh == 10.0


# --- backoff --------------------------------------------------------------------------------


def test_backoff_draws_full_jitter_below_a_doubling_capped_ceiling() -> None:
    bounds: list[tuple[float, float]] = []

    def uniform(low: float, high: float) -> float:
        bounds.append((low, high))
        return high / 2

    backoff = Backoff(base=0.1, cap=1.0, uniform=uniform)
    delays = [backoff.next_delay() for _ in range(6)]
    assert all(low == 0.0 for low, _ in bounds)
    assert [high for _, high in bounds] == pytest.approx([0.1, 0.2, 0.4, 0.8, 1.0, 1.0])
    assert delays == pytest.approx([0.05, 0.1, 0.2, 0.4, 0.5, 0.5])
    assert backoff.attempt == 6


def test_backoff_delays_stay_within_zero_and_the_cap() -> None:
    backoff = Backoff(base=0.1, cap=5.0, uniform=random.Random(7).uniform)
    delays = [backoff.next_delay() for _ in range(2000)]  # far past 2 ** 1023: no overflow
    assert all(0.0 <= delay <= 5.0 for delay in delays)
    assert max(delays[10:]) > 4.0  # jitter spans the whole window at the cap
    assert backoff.ceiling() == 5.0


def test_backoff_resets_only_after_a_long_enough_session() -> None:
    backoff = Backoff(base=0.1, cap=5.0, reset_after=10.0, uniform=lambda low, high: high)
    for _ in range(4):
        backoff.next_delay()
    backoff.session_ended(lasted=2.0)  # accepted, then dropped soon: keep growing
    assert backoff.next_delay() == pytest.approx(1.6)
    backoff.session_ended(lasted=10.0)
    assert backoff.attempt == 0
    assert backoff.next_delay() == pytest.approx(0.1)


def test_backoff_rejects_a_cap_below_the_base() -> None:
    with pytest.raises(ValueError, match="base <= cap"):
        Backoff(base=1.0, cap=0.5)
    with pytest.raises(ValueError, match="0 < base"):
        Backoff(base=0.0, cap=0.5)


# --- hosts ------------------------------------------------------------------------------------

NOW = 1_700_000_000.0
HOSTS: list[dict[str, Any]] = [
    {
        "id": "10.0.0.1-node-1",
        "hostname": "node-1",
        "ip": "10.0.0.1",
        "port": 8002,
        "state": "connected",
        "last_announce_at": NOW - 3.2,
        "announce_interval": 30,
        "peers": ["p1", "p2"],
    },
    {
        "id": "10.0.0.2-node-2",
        "hostname": "node-2",
        "ip": "10.0.0.2",
        "port": 8003,
        "state": "disconnected",
        "last_announce_at": NOW - 245,
    },
]


def render(hosts: list[dict[str, Any]]) -> str:
    console = Console(file=io.StringIO(), width=200, color_system=None)
    console.print(render_hosts_table(hosts, now=NOW))
    output = console.file.getvalue()  # type: ignore[attr-defined]
    assert isinstance(output, str)
    return output


def test_the_hosts_table_has_one_row_per_host() -> None:
    output = render(HOSTS)
    for header in ("host id", "hostname", "address", "state", "last announce", "interval"):
        assert header in output
    first = next(line for line in output.splitlines() if "node-1" in line)
    for cell in ("10.0.0.1-node-1", "10.0.0.1:8002", "connected", "3.2s ago", "30s", "2"):
        assert cell in first
    second = next(line for line in output.splitlines() if "node-2" in line)
    for cell in ("10.0.0.2:8003", "disconnected", "4m 05s ago"):
        assert cell in second
    assert "2 hosts" in output


def test_the_hosts_table_tolerates_missing_fields() -> None:
    output = render([{"id": "h", "hostname": "x", "ip": "1.2.3.4", "port": 1, "state": "left"}])
    row = next(line for line in output.splitlines() if "1.2.3.4:1" in line)
    assert "never" in row
    assert "1 host" in output


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (-1.0, "0.0s ago"),
        (3.24, "3.2s ago"),
        (59.9, "59.9s ago"),
        (245, "4m 05s ago"),
        (7800, "2h 10m ago"),
        (3 * 86400 + 4 * 3600 + 5, "3d 4h ago"),
    ],
)
def test_format_age(seconds: float, text: str) -> None:
    assert format_age(seconds) == text


@attrs.define
class AdminApi:
    url: str
    status: int = 200
    body: bytes = json.dumps(HOSTS).encode()
    paths: list[str] = attrs.Factory(list)


@pytest.fixture
def admin_api() -> Iterator[AdminApi]:
    """A tiny admin HTTP API in a thread, on 127.0.0.1 port 0."""
    api = AdminApi(url="")

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            api.paths.append(self.path)
            self.send_response(api.status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(api.body)))
            self.end_headers()
            self.wfile.write(api.body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.01,), daemon=True)
    thread.start()
    api.url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield api
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_fetch_hosts_gets_the_hosts_and_filters_by_state(admin_api: AdminApi) -> None:
    assert fetch_hosts(admin_api.url + "/", timeout=2.0) == HOSTS
    fetch_hosts(admin_api.url, state="connected", timeout=2.0)
    assert admin_api.paths == ["/api/v1/hosts", "/api/v1/hosts?state=connected"]


def test_fetch_hosts_raises_on_an_http_error(admin_api: AdminApi) -> None:
    admin_api.status = 500
    with pytest.raises(HostsFetchError, match="HTTP 500"):
        fetch_hosts(admin_api.url, timeout=2.0)


def test_fetch_hosts_raises_on_a_body_that_is_not_hosts(admin_api: AdminApi) -> None:
    admin_api.body = b'{"hosts": []}'
    with pytest.raises(HostsFetchError, match="JSON array"):
        fetch_hosts(admin_api.url, timeout=2.0)
    admin_api.body = b"<html>"
    with pytest.raises(HostsFetchError, match="not JSON"):
        fetch_hosts(admin_api.url, timeout=2.0)


def test_fetch_hosts_raises_when_unreachable_or_not_http() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(HostsFetchError, match=r"GET http://127\.0\.0\.1"):
        fetch_hosts(f"http://127.0.0.1:{port}", timeout=2.0)
    with pytest.raises(HostsFetchError, match="http:// or https://"):
        fetch_hosts("file:///etc", timeout=2.0)


def test_print_hosts_prints_the_fetched_hosts(admin_api: AdminApi) -> None:
    console = Console(file=io.StringIO(), width=200, color_system=None)
    print_hosts(fetch_hosts(admin_api.url, timeout=2.0), now=NOW, console=console)
    output = console.file.getvalue()  # type: ignore[attr-defined]
    assert "10.0.0.2-node-2" in output
    assert "4m 05s ago" in output


async def test_a_ping_that_arrives_while_the_client_closes_is_left_unanswered() -> None:
    # trio-websocket 0.12 answers it with a pong that wsproto refuses in LOCAL_CLOSING
    # (python-trio/trio-websocket#184): LocalProtocolError out of the reader task.
    client_stream, server_stream = trio.testing.memory_stream_pair()
    server = WSConnection(ConnectionType.SERVER)
    sent_ping = trio.Event()

    async def raw_server() -> None:
        """Accept the handshake; on the client's Close, ping first, then answer the Close."""
        while True:
            server.receive_data(await server_stream.receive_some())
            for event in server.events():
                if isinstance(event, Request):
                    await server_stream.send_all(server.send(AcceptConnection()))
                elif isinstance(event, CloseConnection):
                    # As a server that pinged just before reading the Close does (wsproto
                    # itself refuses to ping now): an unmasked ping frame, payload "late".
                    await server_stream.send_all(b"\x89\x04late")
                    sent_ping.set()
                    await server_stream.send_all(server.send(event.response()))
                    return

    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(raw_server)
            ws = await connection_wrap_client_stream(nursery, client_stream, "scheduler.test", "/")
            with trio.move_on_after(1):  # as the client bounds every close
                await ws.aclose()
            assert sent_ping.is_set()
            assert ws.closed is not None  # closed, and nothing escaped into the nursery
