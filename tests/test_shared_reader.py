"""The shared reader (scheduler.transport._reader) and the one frame path, on real sockets.

Every byte a session receives goes through ``WebSocketStream.feed``, whoever read it:
the shared reader for plain TCP, the connection's reader task for TLS. These tests
drive both through the same real service.
"""

from __future__ import annotations

import contextlib
import os
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import attrs
import orjson
import pytest
import trio
import trio.testing
from hypothesis import given, settings
from hypothesis import strategies as st

from scheduler.transport import ServerConnection, SharedReader, WebSocketStream
from scheduler.transport import _reader as reader_module
from scheduler.transport import _stream as stream_module
from scheduler.transport._codec import PING, PING_FRAME, PONG, TEXT

from .service_support import (
    LOOPBACK,
    Live,
    ServerFrames,
    announce_frame,
    client_frame,
    raw_websocket,
    serving,
    upgrade_head,
)


class Recorder:
    """A session stand-in: what the connection tells it, recorded."""

    def __init__(self) -> None:
        self.heard: list[object] = []

    def on_message(self, message: str | bytes) -> None:
        self.heard.append(message)

    def on_ping(self) -> None:
        self.heard.append("ping")

    def on_pong(self) -> None:
        self.heard.append("pong")

    def on_unsent(self) -> None:
        self.heard.append("unsent")

    def on_closed(self) -> None:
        self.heard.append("closed")


def open_connection() -> ServerConnection:
    """A sans-IO server connection past its handshake."""
    connection = ServerConnection(max_message_size=1000)
    connection.receive_data(upgrade_head("/ws").encode())
    connection.accept()
    return connection


#: A connection, what its session heard, and the client's end of the socket.
Pair = tuple[WebSocketStream, Recorder, trio.socket.SocketType]


@asynccontextmanager
async def socket_pairs(
    count: int,
) -> AsyncIterator[
    tuple[SharedReader, list[tuple[WebSocketStream, Recorder, trio.socket.SocketType]]]
]:
    """``count`` connections over socket pairs, their reader tasks and one shared reader."""
    reader = SharedReader()
    with contextlib.ExitStack() as sockets:
        pairs: list[Pair] = []
        for _ in range(count):
            ours, theirs = trio.socket.socketpair()
            sockets.enter_context(ours)
            sockets.enter_context(theirs)
            ws = WebSocketStream(trio.SocketStream(ours), open_connection(), reader)
            recorder = Recorder()
            ws.listener = recorder
            pairs.append((ws, recorder, theirs))
        async with trio.open_nursery() as nursery:
            await nursery.start(reader.run)
            for ws, _, _ in pairs:
                nursery.start_soon(ws.read)
            yield reader, pairs
            nursery.cancel_scope.cancel()


async def settle(reader: SharedReader, waiting: int) -> None:
    while reader.waiting != waiting:
        await trio.testing.wait_all_tasks_blocked()


async def test_pings_pongs_and_messages_are_fed_in_the_shared_reader() -> None:
    with trio.fail_after(5):
        async with socket_pairs(1) as (reader, [(_, heard, peer)]):
            await settle(reader, 1)
            data = client_frame(PONG, b"") + client_frame(PING, b"hi") + client_frame(TEXT, b"x")
            await peer.send(data)
            while reader.handled < 1:
                await trio.testing.wait_all_tasks_blocked()
            assert heard.heard == ["pong", "ping", "x"]
            assert await peer.recv(10) == bytes((0x80 | PONG, 2)) + b"hi"
            assert (reader.handed_back, reader.waiting) == (0, 1)


async def test_a_partial_frame_waits_in_the_connection_not_the_reader_task() -> None:
    with trio.fail_after(5):
        async with socket_pairs(1) as (reader, [(_, heard, peer)]):
            await settle(reader, 1)
            message = client_frame(TEXT, b'{"type": "y"}')
            await peer.send(message[:3])
            while reader.handled < 1:
                await trio.testing.wait_all_tasks_blocked()
            await peer.send(message[3:])
            while reader.handled < 2:
                await trio.testing.wait_all_tasks_blocked()
            assert heard.heard == ['{"type": "y"}']
            assert reader.handed_back == 0


async def test_a_wake_up_past_its_slice_leaves_the_other_ready_sockets_for_the_next(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Every wake-up stops after one socket here: each socket is still served, in turn."""
    monkeypatch.setattr(reader_module, "SLICE", -1.0)
    with trio.fail_after(5):
        async with socket_pairs(3) as (reader, pairs):
            await settle(reader, 3)
            for _, _, peer in pairs:
                await peer.send(client_frame(TEXT, b'{"type": "x"}'))
            while reader.handled < 3:
                await trio.testing.wait_all_tasks_blocked()
            assert [heard.heard for _, heard, _ in pairs] == [['{"type": "x"}']] * 3
            assert (reader.handed_back, reader.waiting) == (0, 3)


async def test_sockets_a_spent_slice_left_unserved_go_first_at_the_next_wake_up(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """One byte per read and one socket per wake-up: the three sockets take turns.

    Level-triggered epoll lists ready sockets in the same order at every wake-up; served
    in that order, the first socket would be drained before the second got a byte, and
    its frame done a whole frame's length of wake-ups before the others'.
    """
    monkeypatch.setattr(reader_module, "SLICE", -1.0)
    monkeypatch.setattr(reader_module, "READ_SIZE", 1)
    frame = client_frame(TEXT, b'{"type": "x"}')
    with trio.fail_after(10):
        async with socket_pairs(3) as (reader, pairs):
            await settle(reader, 3)
            served: list[int] = []
            done: dict[int, int] = {}
            serve = reader._serve

            def recording(fd: int) -> None:
                serve(fd)
                served.append(fd)
                for index, (_, heard, _) in enumerate(pairs):
                    if heard.heard and index not in done:
                        done[index] = len(served)

            monkeypatch.setattr(reader, "_serve", recording)
            for _, _, peer in pairs:
                await peer.send(frame)
            while len(done) < 3:
                await trio.testing.wait_all_tasks_blocked()
            assert [heard.heard for _, heard, _ in pairs] == [['{"type": "x"}']] * 3
            assert len(served) == 3 * len(frame)
            # Each frame completes within a few wake-ups of the others (the first socket
            # may be a byte or two ahead, read before the others' bytes arrived).
            assert max(done.values()) - min(done.values()) <= 5


async def test_a_protocol_error_wakes_the_reader_task_after_the_close_frame() -> None:
    with trio.fail_after(5):
        async with socket_pairs(1) as (reader, [(ws, heard, peer)]):
            await settle(reader, 1)
            await peer.send(client_frame(TEXT, b'"' + b"x" * 1000 + b'"'))
            while "closed" not in heard.heard:
                await trio.testing.wait_all_tasks_blocked()
            head = await peer.recv(4)
            assert (head[0], int.from_bytes(head[2:4], "big")) == (0x88, 1009)
            assert ws.connection.closed
            assert (reader.handed_back, reader.waiting) == (1, 0)


async def test_the_end_of_the_stream_wakes_the_reader_task() -> None:
    with trio.fail_after(5):
        async with socket_pairs(1) as (reader, [(_, heard, peer)]):
            await settle(reader, 1)
            peer.shutdown(trio.socket.SHUT_WR)
            while "closed" not in heard.heard:
                await trio.testing.wait_all_tasks_blocked()
            assert (reader.handed_back, reader.waiting) == (1, 0)


async def test_a_close_under_a_waiting_reader_wakes_it() -> None:
    with trio.fail_after(5):
        async with socket_pairs(1) as (reader, [(ws, heard, _)]):
            await settle(reader, 1)
            with trio.move_on_after(0):  # no close handshake: straight to the stream's close
                await ws.aclose(1000, "")
            await trio.testing.wait_all_tasks_blocked()
            assert reader.waiting == 0
            assert heard.heard[-1] == "closed"


async def test_a_cancelled_wait_leaves_the_set() -> None:
    with trio.fail_after(5):
        idle = SharedReader()
        ours, theirs = trio.socket.socketpair()
        with ours, theirs:
            async with trio.open_nursery() as nursery:
                await nursery.start(idle.run)
                ws = WebSocketStream(trio.SocketStream(ours), open_connection(), idle)
                ws.listener = Recorder()
                with trio.CancelScope() as scope:
                    nursery.start_soon(cancel_when_waiting, idle, scope)
                    await idle.wait(ws, ours.fileno())
                assert scope.cancelled_caught
                assert idle.waiting == 0
                await theirs.send(b"x")  # nothing is registered: nothing is read
                await trio.testing.wait_all_tasks_blocked()
                assert await ours.recv(1) == b"x"
                nursery.cancel_scope.cancel()


async def cancel_when_waiting(idle: SharedReader, scope: trio.CancelScope) -> None:
    while idle.waiting == 0:
        await trio.testing.wait_all_tasks_blocked()
    scope.cancel()


async def test_readers_waiting_when_the_shared_reader_stops_hear_it_closed() -> None:
    with trio.fail_after(5):
        idle = SharedReader()
        ours, theirs = trio.socket.socketpair()
        with ours, theirs:
            async with trio.open_nursery() as outer:
                inner_scope = trio.CancelScope()

                async def run_idle() -> None:
                    with inner_scope:
                        await idle.run()

                outer.start_soon(run_idle)
                while not idle.running:
                    await trio.testing.wait_all_tasks_blocked()
                ws = WebSocketStream(trio.SocketStream(ours), open_connection(), idle)
                ws.listener = Recorder()
                outer.start_soon(cancel_when_waiting, idle, inner_scope)
                with pytest.raises(trio.ClosedResourceError):
                    await idle.wait(ws, ours.fileno())
                assert not idle.running


async def test_a_failure_in_one_sessions_feed_goes_to_its_reader_task_alone() -> None:
    with trio.fail_after(5):
        async with socket_pairs(1) as (reader, [(_, other, other_peer)]):
            ours, theirs = trio.socket.socketpair()
            with ours, theirs:
                ws = WebSocketStream(trio.SocketStream(ours), open_connection(), reader)
                broken = Recorder()
                ws.listener = broken

                def fail() -> None:
                    raise RuntimeError("a bug in one session")

                broken.on_pong = fail  # type: ignore[method-assign]
                failed: list[BaseException] = []
                try:
                    async with trio.open_nursery() as inner:
                        inner.start_soon(ws.read)
                        await settle(reader, 2)
                        await theirs.send(client_frame(PONG, b""))
                except* RuntimeError as group:
                    failed.extend(group.exceptions)
                assert [str(exc) for exc in failed] == ["a bug in one session"]
                await other_peer.send(client_frame(TEXT, b"still here"))
                while "still here" not in other.heard:
                    await trio.testing.wait_all_tasks_blocked()
                assert reader.running
                assert reader.handed_back == 1


# --- writing: at once when the socket takes it, else by the session's task ----------------


def cut_writes(monkeypatch: pytest.MonkeyPatch, size: int) -> None:
    """Every write without waiting takes at most ``size`` bytes (a nearly full socket)."""
    real_write = os.write
    monkeypatch.setattr(stream_module.os, "write", lambda fd, data: real_write(fd, data[:size]))


async def test_a_frame_written_in_part_waits_for_flush_and_holds_back_reading(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with trio.fail_after(5):
        async with socket_pairs(1) as (reader, [(ws, heard, peer)]):
            await settle(reader, 1)
            cut_writes(monkeypatch, 1)
            assert ws.ping()  # one byte of two went out
            assert ws.unsent
            assert heard.heard == ["unsent"]
            await ws.flush()
            assert await peer.recv(2) == PING_FRAME


async def test_a_reply_the_socket_takes_in_part_reaches_the_client_whole(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cut_writes(monkeypatch, 10)
    with trio.fail_after(10):
        async with serving() as live, raw_websocket(live) as stream:
            frames = ServerFrames(stream)
            for request_id in (1, 2, 3):
                await stream.send_all(announce_frame(request_id))
                assert await frames.reply_id() == request_id


async def test_the_messages_of_a_session_are_handled_in_the_shared_reader() -> None:
    """A session's messages and their replies are the shared reader's: its reader task is
    never woken, and each reply leaves before the next message is read."""
    with trio.fail_after(10):
        async with serving() as live, raw_websocket(live) as stream:
            reader, frames = live.service.reader, ServerFrames(stream)
            assert reader is not None
            for request_id in range(1, 6):
                await stream.send_all(announce_frame(request_id))
                assert await frames.reply_id() == request_id
            assert (reader.handled, reader.handed_back) == (5, 0)
            assert sample(live, "scheduler_reader_reads_total") == 5
            assert sample(live, "scheduler_messages_total", type="announce_host") == 5


async def test_a_leave_whose_ack_the_socket_takes_in_part_is_acked_whole_then_closed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The session's own task finishes the ack; the close waits for it, and nothing the
    client sent after the leave is applied."""
    with trio.fail_after(10):
        async with serving() as live, raw_websocket(live) as stream:
            frames = ServerFrames(stream)
            await stream.send_all(announce_frame(1))
            assert await frames.reply_id() == 1
            cut_writes(monkeypatch, 3)
            leave = {"type": "leave_host", "id": 2}
            await stream.send_all(client_frame(TEXT, orjson.dumps(leave)) + announce_frame(3))
            opcode, payload = await frames.next()
            assert (opcode, orjson.loads(payload)) == (TEXT, {"type": "ack", "id": 2})
            opcode, payload = await frames.next()
            assert (opcode, int.from_bytes(payload[:2], "big")) == (0x8, 1000)
            assert live.service.state.host_count() == 0  # left, and not announced again


async def test_an_idle_session_answers_the_servers_pings_through_the_shared_reader() -> None:
    """A real session, announced, then silent but for its pongs: the shared reader reads
    them; the session stays, and its next message is answered as ever."""
    config = attrs.evolve(LOOPBACK, ping_interval=0.05, ping_timeout=5.0)
    with trio.fail_after(10):
        async with serving(config) as live, raw_websocket(live) as stream:
            idle, frames = live.service.reader, ServerFrames(stream)
            assert idle is not None
            await stream.send_all(announce_frame(1))
            assert await frames.reply_id() == 1
            while idle.handled < 4:  # the server pings; the shared reader reads the pongs
                assert (await frames.next())[0] == PING
                await stream.send_all(client_frame(PONG, b""))
            assert idle.waiting == 1
            assert sample(live, "scheduler_reader_sessions") == 1
            await stream.send_all(announce_frame(2))
            while (frame := await frames.next())[0] == PING:
                await stream.send_all(client_frame(PONG, b""))
            assert orjson.loads(frame[1])["id"] == 2
            assert [s.cause for s in live.service.sessions] == [None]


def sample(live: Live, name: str, **labels: str) -> float:
    value = live.service.metrics.registry.get_sample_value(name, labels)
    return 0.0 if value is None else value


# --- any frames, any cuts, plain TCP and TLS -----------------------------------------------


#: What a step may send: a message the session answers, one it refuses, a ping.
_KINDS = ("announce", "unknown_peer", "bad_json", "ping")


def _frame(kind: str, request_id: int) -> bytes:
    if kind == "announce":
        return announce_frame(request_id)
    if kind == "unknown_peer":
        message = {"type": "download_started", "id": request_id, "peer_id": "nobody"}
        return client_frame(TEXT, orjson.dumps(message))
    if kind == "bad_json":
        return client_frame(TEXT, b'{"id": ' + str(request_id).encode() + b", oops")
    return client_frame(PING, str(request_id).encode())


def _cuts(data: bytes, sizes: list[int]) -> list[bytes]:
    """``data`` in writes of the given sizes (the last one takes the rest)."""
    parts, pos = [], 0
    for size in sizes:
        if pos >= len(data):
            break
        parts.append(data[pos : pos + size])
        pos += size
    if pos < len(data):
        parts.append(data[pos:])
    return parts


#: The kinds whose reply is an ``error``: the session counts them against ``error_limit``.
_REFUSED = ("unknown_peer", "bad_json")


def _errors_sent(steps: list[tuple[list[str], int | None, list[int]]]) -> int:
    return sum(kind in _REFUSED for kinds, _, _ in steps for kind in kinds)


def _within_error_limit(steps: list[tuple[list[str], int | None, list[int]]]) -> bool:
    return _errors_sent(steps) <= LOOPBACK.error_limit


#: The steps of one example: never more refused messages than the server tolerates
#: (``error_limit``, read from the configuration the test serves), so that every
#: example states the ordering and none of them the error limit.
_STEPS = st.lists(
    st.tuples(
        st.lists(st.sampled_from(_KINDS), min_size=1, max_size=6),
        st.sampled_from([None, 1, 5, 40]),
        st.lists(st.integers(1, 300), max_size=4),
    ),
    min_size=1,
    max_size=4,
).filter(_within_error_limit)


def test_the_steps_send_at_most_error_limit_refused_messages() -> None:
    """Unbounded, the steps could cross the limit; the bound keeps the limit itself."""
    limit = LOOPBACK.error_limit
    assert _errors_sent([(["bad_json"] * 6, None, [])] * 4) > limit
    at_limit = [(["unknown_peer"] * limit, None, []), (["announce", "ping"], 1, [])]
    assert _within_error_limit(at_limit)
    assert not _within_error_limit([*at_limit, (["bad_json"], None, [])])


@settings(max_examples=20, deadline=None)
@given(tls=st.booleans(), steps=_STEPS)
def test_replies_keep_the_order_of_the_messages_whatever_the_socket_takes(
    tls_files: tuple[str, str, ssl.SSLContext],
    tls: bool,
    steps: list[tuple[list[str], int | None, list[int]]],
) -> None:
    """Each step sends some frames cut into writes of any sizes, while every write of the
    server takes at most ``cut`` bytes (a nearly full socket; None: any), over plain TCP
    (the shared reader feeds) or TLS (the reader task feeds): every message gets its
    reply, in the order sent, and every ping its pong."""
    cert, key, client_context = tls_files
    config = attrs.evolve(LOOPBACK, tls_cert_file=cert, tls_key_file=key) if tls else LOOPBACK

    async def main() -> None:
        with trio.fail_after(30):
            context = client_context if tls else None
            async with serving(config) as live, raw_websocket(live, context) as stream:
                frames = ServerFrames(stream)
                await stream.send_all(announce_frame(0))
                assert await frames.reply_id() == 0
                request_id = 0
                for kinds, cut, writes in steps:
                    sent: list[tuple[str, int]] = []
                    for kind in kinds:
                        request_id += 1
                        sent.append((kind, request_id))
                    with pytest.MonkeyPatch.context() as patch:
                        if cut is not None:
                            cut_writes(patch, cut)
                        data = b"".join(_frame(k, i) for k, i in sent)
                        for part in _cuts(data, writes):
                            await stream.send_all(part)
                        replies: list[object] = []
                        pongs: list[bytes] = []
                        expected = [i for k, i in sent if k not in ("ping", "bad_json")]
                        while len(replies) < len(sent) - kinds.count("ping") or len(
                            pongs
                        ) < kinds.count("ping"):
                            opcode, payload = await frames.next()
                            if opcode == PONG:
                                pongs.append(payload)
                            elif opcode == TEXT:
                                replies.append(orjson.loads(payload).get("id"))
                    assert [r for r in replies if r is not None] == expected
                    pings = [str(i).encode() for k, i in sent if k == "ping"]
                    assert pongs == pings
                assert [s.cause for s in live.service.sessions] == [None]

    trio.run(main)
