"""The idle sessions' reader (scheduler.service._reader) on real sockets.

A connection whose last read held only pings and pongs waits in the idle reader;
pings and pongs are then handled there, and anything else goes back to the
connection's own reader, in order, as if it had read it itself.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import attrs
import orjson
import pytest
import trio
import trio.testing
from hypothesis import find, given, settings
from hypothesis import strategies as st
from wsproto import ConnectionType, WSConnection
from wsproto.events import AcceptConnection, Request

from scheduler.service import _reader as reader_module
from scheduler.service._framing import ServerConnection
from scheduler.service._framing import _read as read_frames
from scheduler.service._framing import os as framing_os
from scheduler.service._reader import SharedReader
from scheduler.service._session import Session
from scheduler.service._wire import PING, PING_FRAME, PONG, TEXT

from .service_support import (
    LOOPBACK,
    Live,
    ServerFrames,
    announce_frame,
    client_frame,
    raw_websocket,
    serving,
)


def open_server_side() -> WSConnection:
    """A server-side wsproto connection past its handshake."""
    client, server = WSConnection(ConnectionType.CLIENT), WSConnection(ConnectionType.SERVER)
    server.receive_data(client.send(Request(host="scheduler.test", target="/ws")))
    list(server.events())
    client.receive_data(server.send(AcceptConnection()))
    list(client.events())
    return server


class Listener:
    """What the connection tells its session, recorded."""

    def __init__(self) -> None:
        self.heard: list[object] = []
        self.message_arrived = trio.Event()
        #: What ``on_message_now`` takes (the others wait for the reader's ``on_message``).
        self.takes_now: Callable[[str | bytes], bool] = lambda _: True

    async def on_message(self, message: str | bytes) -> None:
        self.heard.append(message)
        self.message_arrived.set()

    def on_message_now(self, message: str | bytes) -> bool:
        if not self.takes_now(message):
            return False
        self.heard.append(("now", message))
        self.message_arrived.set()
        return True

    def on_ping(self) -> None:
        self.heard.append("ping")

    def on_pong(self) -> None:
        self.heard.append("pong")

    def on_unsent(self) -> None:
        self.heard.append("unsent")

    def on_closed(self) -> None:
        self.heard.append("closed")


class Pair:
    def __init__(self, connection: ServerConnection, peer: trio.socket.SocketType) -> None:
        self.connection = connection
        self.peer = peer
        self.listener = Listener()
        connection.listener = self.listener

    async def read_from_server(self, size: int) -> bytes:
        data = b""
        while len(data) < size:
            chunk = await self.peer.recv(size - len(data))
            assert chunk, "the server side closed"
            data += chunk
        return data


@asynccontextmanager
async def shared_pair() -> AsyncIterator[tuple[SharedReader, Pair, trio.Nursery]]:
    """A server connection over a socket pair, its reader running, a shared reader running."""
    async with shared_pairs(1) as (reader, pairs, nursery):
        yield reader, pairs[0], nursery


@asynccontextmanager
async def shared_pairs(
    count: int,
) -> AsyncIterator[tuple[SharedReader, list[Pair], trio.Nursery]]:
    """``count`` server connections over socket pairs, their readers and one shared reader."""
    reader = SharedReader()
    with contextlib.ExitStack() as sockets:
        pairs: list[Pair] = []
        for _ in range(count):
            ours, theirs = trio.socket.socketpair()
            sockets.enter_context(ours)
            sockets.enter_context(theirs)
            connection = ServerConnection(
                trio.SocketStream(ours),
                open_server_side(),
                message_queue_size=1,
                max_message_size=1000,
            )
            connection.shared_reader = reader
            pairs.append(Pair(connection, theirs))
        async with trio.open_nursery() as nursery:
            await nursery.start(reader.run)
            for pair in pairs:
                nursery.start_soon(read_frames, pair.connection)
            yield reader, pairs, nursery
            nursery.cancel_scope.cancel()


async def wait_in_reader(idle: SharedReader, pair: Pair) -> None:
    """A pong: the reader reads it itself, then waits in the shared reader."""
    await pair.peer.send(client_frame(PONG, b""))
    while idle.waiting == 0:
        await trio.testing.wait_all_tasks_blocked()
    assert pair.listener.heard == ["pong"]


async def test_a_connection_that_read_only_a_pong_waits_in_the_shared_reader() -> None:
    with trio.fail_after(5):
        async with shared_pair() as (idle, pair, _):
            await wait_in_reader(idle, pair)
            assert idle.waiting == 1
            assert (idle.handled, idle.handed_back) == (0, 0)


async def test_pongs_and_pings_of_an_idle_connection_are_handled_there() -> None:
    with trio.fail_after(5):
        async with shared_pair() as (idle, pair, _):
            await wait_in_reader(idle, pair)
            await pair.peer.send(
                client_frame(PONG, b"") + client_frame(PING, b"hi") + client_frame(PONG, b"")
            )
            assert await pair.read_from_server(4) == bytes((0x80 | PONG, 2)) + b"hi"
            await trio.testing.wait_all_tasks_blocked()
            assert pair.listener.heard == ["pong", "pong", "ping", "pong"]
            assert (idle.handled, idle.handed_back, idle.waiting) == (1, 0, 1)


async def test_a_message_the_session_takes_now_is_handled_there() -> None:
    with trio.fail_after(5):
        async with shared_pair() as (idle, pair, _):
            await wait_in_reader(idle, pair)
            await pair.peer.send(client_frame(TEXT, b'{"type": "x"}') + client_frame(PONG, b""))
            await pair.listener.message_arrived.wait()
            await trio.testing.wait_all_tasks_blocked()
            assert pair.listener.heard == ["pong", ("now", '{"type": "x"}'), "pong"]
            assert (idle.handled, idle.handed_back, idle.waiting) == (1, 0, 1)


async def test_a_message_goes_back_to_the_reader_in_order_with_what_came_with_it() -> None:
    with trio.fail_after(5):
        async with shared_pair() as (idle, pair, _):
            await wait_in_reader(idle, pair)
            pair.listener.takes_now = lambda message: message != '{"type": "y"}'
            await pair.peer.send(
                client_frame(PONG, b"")
                + client_frame(TEXT, b'{"type": "x"}')
                + client_frame(TEXT, b'{"type": "y"}')
                + client_frame(PONG, b"")
            )
            while len(pair.listener.heard) < 5:
                await trio.testing.wait_all_tasks_blocked()
            heard = ["pong", "pong", ("now", '{"type": "x"}'), '{"type": "y"}', "pong"]
            assert pair.listener.heard == heard
            assert (idle.handled, idle.handed_back) == (0, 1)
            while idle.waiting == 0:  # back in the shared reader after the handed-back frames
                await trio.testing.wait_all_tasks_blocked()


async def test_a_wake_up_past_its_slice_leaves_the_other_ready_sockets_for_the_next(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Every wake-up stops after one socket here: each socket is still served, in turn."""
    monkeypatch.setattr(reader_module, "SLICE", -1.0)
    with trio.fail_after(5):
        async with shared_pairs(3) as (reader, pairs, _):
            for pair in pairs:
                await pair.peer.send(client_frame(PONG, b""))
            while reader.waiting < 3:
                await trio.testing.wait_all_tasks_blocked()
            for pair in pairs:
                await pair.peer.send(client_frame(TEXT, b'{"type": "x"}'))
            while reader.handled < 3:
                await trio.testing.wait_all_tasks_blocked()
            assert [pair.listener.heard for pair in pairs] == [
                ["pong", ("now", '{"type": "x"}')]
            ] * 3
            assert (reader.handed_back, reader.waiting) == (0, 3)


async def test_a_message_over_the_size_limit_goes_back_to_the_reader_which_closes() -> None:
    with trio.fail_after(5):
        async with shared_pair() as (idle, pair, _):
            await wait_in_reader(idle, pair)
            await pair.peer.send(client_frame(TEXT, b'"' + b"x" * 1000 + b'"'))
            while "closed" not in pair.listener.heard:
                await trio.testing.wait_all_tasks_blocked()
            assert pair.listener.heard == ["pong", "closed"]
            assert idle.handed_back == 1
            assert pair.connection.closed is not None
            assert pair.connection.closed.code == 1009


async def test_a_partial_frame_goes_back_to_the_reader() -> None:
    with trio.fail_after(5):
        async with shared_pair() as (idle, pair, _):
            await wait_in_reader(idle, pair)
            message = client_frame(TEXT, b'{"type": "y"}')
            await pair.peer.send(message[:3])
            while idle.handed_back == 0:
                await trio.testing.wait_all_tasks_blocked()
            await pair.peer.send(message[3:])
            await pair.listener.message_arrived.wait()
            assert pair.listener.heard == ["pong", '{"type": "y"}']


async def test_the_end_of_the_stream_goes_back_to_the_reader() -> None:
    with trio.fail_after(5):
        async with shared_pair() as (idle, pair, _):
            await wait_in_reader(idle, pair)
            pair.peer.shutdown(trio.socket.SHUT_WR)
            while "closed" not in pair.listener.heard:
                await trio.testing.wait_all_tasks_blocked()
            assert (idle.handed_back, idle.waiting) == (1, 0)


async def test_a_socket_closed_under_a_waiting_reader_wakes_it() -> None:
    with trio.fail_after(5):
        async with shared_pair() as (idle, pair, _):
            await wait_in_reader(idle, pair)
            await pair.connection._close_stream()
            await trio.testing.wait_all_tasks_blocked()
            assert idle.waiting == 0
            assert pair.listener.heard == ["pong", "closed"]  # the reader ended


async def test_a_cancelled_wait_leaves_the_set() -> None:
    with trio.fail_after(5):
        idle = SharedReader()
        ours, theirs = trio.socket.socketpair()
        with ours, theirs:
            async with trio.open_nursery() as nursery:
                await nursery.start(idle.run)
                with trio.CancelScope() as scope:
                    nursery.start_soon(cancel_when_waiting, idle, scope)
                    await idle.wait(Listener(), ours.fileno())  # type: ignore[arg-type]
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
                outer.start_soon(cancel_when_waiting, idle, inner_scope)
                with pytest.raises(trio.ClosedResourceError):
                    await idle.wait(Listener(), ours.fileno())  # type: ignore[arg-type]
                assert not idle.running


# --- writing now, from any task ------------------------------------------------------------


def cut_writes(monkeypatch: pytest.MonkeyPatch, size: int) -> None:
    """Every write without waiting takes at most ``size`` bytes (a nearly full socket)."""
    real_write = os.write
    monkeypatch.setattr(framing_os, "write", lambda fd, data: real_write(fd, data[:size]))


async def test_ping_now_writes_a_ping_frame() -> None:
    with trio.fail_after(5):
        async with shared_pair() as (_, pair, _):
            assert pair.connection.ping_now()
            assert await pair.read_from_server(2) == PING_FRAME


async def test_a_frame_written_in_part_is_finished_before_the_next(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with trio.fail_after(5):
        async with shared_pair() as (_, pair, _):
            cut_writes(monkeypatch, 1)
            assert pair.connection.ping_now()  # one byte of two went out
            assert pair.connection._unsent == PING_FRAME[1:]
            assert not pair.connection.ping_now()  # nothing now: the rest goes first
            monkeypatch.undo()
            await pair.connection.send_message("ok")
            assert await pair.read_from_server(6) == PING_FRAME + bytes((0x81, 2)) + b"ok"
            assert pair.connection._unsent == b""


async def test_a_message_written_in_part_is_finished_by_flush(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with trio.fail_after(5):
        async with shared_pair() as (_, pair, _):
            cut_writes(monkeypatch, 3)
            assert pair.connection.send_now("hello")  # three bytes of seven went out
            assert pair.connection.unsent
            assert not pair.connection.send_now("next")  # nothing before the rest
            monkeypatch.undo()
            await pair.connection.flush()
            assert not pair.connection.unsent
            assert await pair.read_from_server(7) == bytes((0x81, 5)) + b"hello"


# --- in the service ------------------------------------------------------------------------


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


async def test_the_messages_of_a_busy_session_are_handled_in_the_shared_reader() -> None:
    """After its first read, a session's messages and their replies are the shared
    reader's: no hand-back, and each reply before the next message is read."""
    with trio.fail_after(10):
        async with serving() as live, raw_websocket(live) as stream:
            reader, frames = live.service.reader, ServerFrames(stream)
            for request_id in range(1, 6):
                await stream.send_all(announce_frame(request_id))
                assert await frames.reply_id() == request_id
            assert (reader.handled, reader.handed_back) == (4, 0)
            assert sample(live, "scheduler_reader_reads_total") == 4
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
            taken_now = spy_on_message_now(monkeypatch)
            cut_writes(monkeypatch, 3)
            leave = {"type": "leave_host", "id": 2}
            await stream.send_all(client_frame(TEXT, orjson.dumps(leave)) + announce_frame(3))
            opcode, payload = await frames.next()
            assert (opcode, orjson.loads(payload)) == (TEXT, {"type": "ack", "id": 2})
            opcode, payload = await frames.next()
            assert (opcode, int.from_bytes(payload[:2], "big")) == (0x8, 1000)
            assert "leave_host" in taken_now  # handled in the shared reader
            assert live.service.state.host_count() == 0  # left, and not announced again


def spy_on_message_now(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The types of the messages sessions take in the shared reader, from now on."""
    taken: list[str] = []
    real = Session.on_message_now

    def spy(session: Session, message: str | bytes) -> bool:
        took = real(session, message)
        if took:
            taken.append(orjson.loads(message)["type"])
        return took

    monkeypatch.setattr(Session, "on_message_now", spy)
    return taken


async def test_an_idle_session_answers_the_servers_pings_through_the_shared_reader() -> None:
    """A real session, announced, then silent but for its pongs: the shared reader reads
    them; the session stays, and its next message is answered as ever."""
    config = attrs.evolve(LOOPBACK, ping_interval=0.05, ping_timeout=5.0)
    with trio.fail_after(10):
        async with serving(config) as live, raw_websocket(live) as stream:
            idle, frames = live.service.reader, ServerFrames(stream)
            await stream.send_all(announce_frame(1))
            assert await frames.reply_id() == 1
            while idle.handled < 3:  # the server pings; the shared reader reads the pongs
                assert (await frames.next())[0] == PING
                await stream.send_all(client_frame(PONG, b""))
            assert idle.waiting == 1
            assert sample(live, "scheduler_reader_sessions") == 1
            assert sample(live, "scheduler_reader_reads_total") >= 3
            await stream.send_all(announce_frame(2))
            while (frame := await frames.next())[0] == PING:
                await stream.send_all(client_frame(PONG, b""))
            assert orjson.loads(frame[1])["id"] == 2
            assert [s.cause for s in live.service.sessions] == [None]


def sample(live: Live, name: str, **labels: str) -> float:
    value = live.service.metrics.registry.get_sample_value(name, labels)
    return 0.0 if value is None else value


async def test_a_failure_handling_one_sessions_pong_goes_to_its_reader_alone() -> None:
    with trio.fail_after(5):
        idle = SharedReader()
        ours, theirs = trio.socket.socketpair()
        connection = ServerConnection(
            trio.SocketStream(ours), open_server_side(), message_queue_size=1, max_message_size=100
        )
        connection.shared_reader = idle
        pair = Pair(connection, theirs)
        with ours, theirs:
            async with trio.open_nursery() as outer:
                await outer.start(idle.run)
                failed: list[BaseException] = []
                try:
                    async with trio.open_nursery() as inner:
                        inner.start_soon(read_frames, connection)
                        await wait_in_reader(idle, pair)

                        def broken() -> None:
                            raise RuntimeError("a bug in one session")

                        pair.listener.on_pong = broken  # type: ignore[method-assign]
                        await theirs.send(client_frame(PONG, b""))
                except* RuntimeError as group:
                    failed.extend(group.exceptions)
                assert [str(exc) for exc in failed] == ["a bug in one session"]
                assert idle.running  # the shared reader goes on for everyone else
                assert (idle.waiting, idle.handed_back) == (0, 1)
                outer.cancel_scope.cancel()


# --- any frames, any cuts ------------------------------------------------------------------


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


#: The kinds whose reply is an ``error``: the session counts them against ``error_limit``.
_REFUSED = ("unknown_peer", "bad_json")


def _errors_sent(steps: list[tuple[list[str], int | None]]) -> int:
    return sum(kind in _REFUSED for kinds, _ in steps for kind in kinds)


#: The steps of one example: never more refused messages than the server tolerates
#: (``error_limit``, read from the configuration the test serves), so that every
#: example states the ordering and none of them the error limit.
_STEPS = st.lists(
    st.tuples(
        st.lists(st.sampled_from(_KINDS), min_size=1, max_size=6),
        st.sampled_from([None, 1, 5, 40]),
    ),
    min_size=1,
    max_size=5,
).filter(lambda steps: _errors_sent(steps) <= LOOPBACK.error_limit)


def test_the_steps_reach_the_error_limit_and_stop_there() -> None:
    """Unbounded, the steps could cross the limit; bounded, they still reach it exactly."""
    assert _errors_sent([(["bad_json"] * 6, None)] * 5) > LOOPBACK.error_limit
    at_limit = find(_STEPS, lambda steps: _errors_sent(steps) >= LOOPBACK.error_limit)
    assert _errors_sent(at_limit) == LOOPBACK.error_limit


@settings(max_examples=25, deadline=None)
@given(_STEPS)
def test_replies_keep_the_order_of_the_messages_whatever_the_socket_takes(
    steps: list[tuple[list[str], int | None]],
) -> None:
    """Each step sends some frames in one write, while every write of the server takes at
    most ``cut`` bytes (a nearly full socket; None: any). Whether a frame is handled in
    the shared reader, handed back, or its reply finished by the session's task: every
    message gets its reply, in the order sent, and every ping its pong."""

    async def main() -> None:
        with trio.fail_after(20):
            async with serving() as live, raw_websocket(live) as stream:
                frames = ServerFrames(stream)
                await stream.send_all(announce_frame(0))
                assert await frames.reply_id() == 0
                request_id = 0
                for kinds, cut in steps:
                    sent: list[tuple[str, int]] = []
                    for kind in kinds:
                        request_id += 1
                        sent.append((kind, request_id))
                    with pytest.MonkeyPatch.context() as patch:
                        if cut is not None:
                            cut_writes(patch, cut)
                        await stream.send_all(b"".join(_frame(k, i) for k, i in sent))
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
