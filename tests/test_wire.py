"""The frames read and written without wsproto (scheduler.service._wire) are wsproto's.

The reader hands wsproto whatever ``split_frames`` leaves; so, for any bytes cut into
any chunks, reading them that way must give exactly the messages, pings, pongs and
close codes that wsproto alone gives.
"""

from __future__ import annotations

import itertools
import os
import struct

import pytest
import trio
from hypothesis import given, settings
from hypothesis import strategies as st
from wsproto import WSConnection
from wsproto.connection import Connection, ConnectionState, ConnectionType
from wsproto.events import (
    BytesMessage,
    CloseConnection,
    Event,
    Message,
    Ping,
    Pong,
    TextMessage,
)

from scheduler.service._framing import ServerConnection
from scheduler.service._wire import (
    BINARY,
    PING,
    PING_FRAME,
    PONG,
    TEXT,
    at_frame_boundary,
    pong_frame,
    server_frame,
    split_frames,
)

#: What a reader makes of the bytes: ("text", str), ("binary", bytes), ("ping", bytes),
#: ("pong", bytes) or ("close", code), in order, up to the first close.
Read = list[tuple[str, object]]


def frame(
    opcode: int,
    payload: bytes,
    *,
    fin: bool = True,
    rsv: int = 0,
    masked: bool = True,
    wide: int = 0,
) -> bytes:
    """Any frame a client might send; ``wide`` forces a 2- (16) or 8-byte (64) length."""
    length = len(payload)
    first = (0x80 if fin else 0) | rsv << 4 | opcode
    mask_bit = 0x80 if masked else 0
    if wide == 64 or length >= 0x10000:
        head = struct.pack("!BBQ", first, mask_bit | 127, length)
    elif wide == 16 or length >= 126:
        head = struct.pack("!BBH", first, mask_bit | 126, length)
    else:
        head = bytes((first, mask_bit | length))
    if not masked:
        return head + payload
    key = os.urandom(4)
    return head + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))


def server_connection() -> Connection:
    return Connection(ConnectionType.SERVER)


def read_by_wsproto(chunks: list[bytes]) -> Read:
    """wsproto alone, as trio-websocket reads (message parts joined)."""
    connection, out = server_connection(), Reader()
    for chunk in chunks:
        connection.receive_data(chunk)
        if out.take(connection.events()):
            break
    return out.read


def read_with_split(chunks: list[bytes]) -> Read:
    """The service's reader: the common frames here, the rest (from the first other) by wsproto."""
    connection, out = server_connection(), Reader()
    for chunk in chunks:
        rest = chunk
        if at_frame_boundary(connection):
            frames, end = split_frames(chunk)
            for opcode, payload, _ in frames:
                out.common(opcode, payload)
            rest = chunk[end:]
        if rest:
            connection.receive_data(rest)
            if out.take(connection.events()):
                break
    return out.read


class Reader:
    def __init__(self) -> None:
        self.read: Read = []
        self.parts: list[str | bytes] = []

    def common(self, opcode: int, payload: str | bytes) -> None:
        kind = {TEXT: "text", BINARY: "binary", PING: "ping", PONG: "pong"}[opcode]
        self.read.append((kind, payload))

    def take(self, events: object) -> bool:
        """Record wsproto's events; True once the connection is closing."""
        for event in events:  # type: ignore[attr-defined]
            assert isinstance(event, Event)
            if isinstance(event, Message):
                self.parts.append(
                    bytes(event.data) if isinstance(event, BytesMessage) else event.data
                )
                if event.message_finished:
                    kind = "text" if isinstance(event, TextMessage) else "binary"
                    joined = "".join(self.parts) if kind == "text" else b"".join(self.parts)  # type: ignore[arg-type]
                    self.read.append((kind, joined))
                    self.parts = []
            elif isinstance(event, Ping):
                self.read.append(("ping", bytes(event.payload)))
            elif isinstance(event, Pong):
                self.read.append(("pong", bytes(event.payload)))
            elif isinstance(event, CloseConnection):
                self.read.append(("close", event.code))
                return True
        return False


_TEXTS = st.text(max_size=40).map(str.encode)
_PAYLOADS = st.one_of(
    _TEXTS,
    st.binary(max_size=40),
    st.sampled_from([b"\xff", b"\xc3", b"ok\xe2\x82", "é".encode()]),
    st.integers(120, 300).map(lambda n: b"x" * n),
)


@st.composite
def frames(draw: st.DrawFn) -> bytes:
    """A frame: mostly common ones, and every kind wsproto reads or refuses."""
    payload = draw(_PAYLOADS)
    kind = draw(st.integers(0, 9))
    if kind <= 4:  # common: text, binary, ping, pong (a control frame under 126 bytes)
        opcode = draw(st.sampled_from([TEXT, BINARY, PING, PONG]))
        if opcode >= PING:
            payload = payload[:125]
        return frame(opcode, payload)
    if kind == 5:  # a fragmented message: a first frame and a continuation
        opcode = draw(st.sampled_from([TEXT, BINARY]))
        cut = draw(st.integers(0, len(payload)))
        return frame(opcode, payload[:cut], fin=False) + frame(0x0, payload[cut:])
    if kind == 6:  # a close, with or without a code
        body = draw(
            st.sampled_from([b"", struct.pack("!H", 1000), struct.pack("!H", 1001) + b"bye"])
        )
        return frame(0x8, body)
    if kind == 7:  # a length not in its shortest form
        return frame(
            draw(st.sampled_from([TEXT, BINARY, PING])),
            payload[:100],
            wide=draw(st.sampled_from([16, 64])),
        )
    if kind == 8:  # reserved bits or opcodes, unmasked, a stray continuation, a fragmented ping
        return draw(
            st.sampled_from(
                [
                    frame(TEXT, payload, rsv=draw(st.integers(1, 7))),
                    frame(draw(st.sampled_from([0x3, 0x7, 0xB, 0xF])), payload[:100]),
                    frame(TEXT, payload, masked=False),
                    frame(0x0, payload),
                    frame(PING, payload[:100], fin=False),
                ]
            )
        )
    return frame(draw(st.sampled_from([PING, PONG])), b"p" * draw(st.integers(126, 200)))


@st.composite
def chunked(draw: st.DrawFn) -> list[bytes]:
    """Frames, concatenated and cut at any points (as TCP may deliver them)."""
    data = b"".join(draw(st.lists(frames(), min_size=1, max_size=8)))
    cuts = sorted(draw(st.lists(st.integers(0, len(data)), max_size=6)))
    bounds = [0, *cuts, len(data)]
    return [data[a:b] for a, b in itertools.pairwise(bounds) if b > a]


@settings(max_examples=400)
@given(chunked())
def test_reading_the_common_frames_first_reads_what_wsproto_reads(chunks: list[bytes]) -> None:
    assert read_with_split(chunks) == read_by_wsproto(chunks)


@given(st.lists(frames(), min_size=1, max_size=5))
def test_common_frames_whole_are_read_without_wsproto(parts: list[bytes]) -> None:
    data = b"".join(parts)
    found, end = split_frames(data)
    if end == len(data):  # all common: nothing at all is left for wsproto
        assert read_with_split([data]) == read_by_wsproto([data])
        assert len(found) == len(parts)
    assert all(0 < e <= end for _, _, e in found)


def test_split_stops_at_a_partial_frame_and_leaves_it() -> None:
    whole = frame(TEXT, b'{"type": "announce_host"}')
    data = whole + whole[:7]
    found, end = split_frames(data)
    assert found == [(TEXT, '{"type": "announce_host"}', len(whole))]
    assert data[end:] == whole[:7]


def test_split_reads_empty_frames_the_shortest_there_are() -> None:
    for opcode in (TEXT, BINARY, PING, PONG):
        data = frame(opcode, b"")
        assert len(data) == 6
        empty: str | bytes = "" if opcode == TEXT else b""
        assert split_frames(data) == ([(opcode, empty, 6)], 6)
        assert split_frames(data[:5]) == ([], 0)


def test_split_leaves_a_16_bit_length_without_its_payload() -> None:
    data = frame(BINARY, b"z" * 200)
    assert split_frames(data[:7]) == ([], 0)
    assert split_frames(data[:8]) == ([], 0)


def test_split_reads_a_16_bit_length_at_both_bounds() -> None:
    for size in (126, 0xFFFF):
        data = frame(BINARY, b"z" * size)
        assert split_frames(data) == ([(BINARY, b"z" * size, len(data))], len(data))
    assert split_frames(frame(BINARY, b"z" * 0x10000)) == ([], 0)  # 64-bit: wsproto's


def test_invalid_utf8_is_left_to_wsproto_which_closes_1007() -> None:
    bad = frame(TEXT, b'{"a": "\xff"}')
    good = frame(TEXT, b"{}")
    assert split_frames(good + bad) == ([(TEXT, "{}", len(good))], len(good))
    assert read_with_split([good + bad]) == [("text", "{}"), ("close", 1007)]


# --- writing ---------------------------------------------------------------------------


def open_server() -> Connection:
    return server_connection()


@given(st.one_of(st.text(max_size=300), st.binary(max_size=300)))
def test_a_server_frame_is_the_frame_wsproto_writes(message: str | bytes) -> None:
    event = TextMessage(data=message) if isinstance(message, str) else BytesMessage(data=message)
    assert server_frame(message) == open_server().send(event)


def test_a_server_frame_at_the_length_bounds_is_wsproto_s() -> None:
    for size in (125, 126, 0xFFFF, 0x10000):
        for message in ("a" * size, b"b" * size):
            event = (
                TextMessage(data=message)
                if isinstance(message, str)
                else BytesMessage(data=message)
            )
            assert server_frame(message) == open_server().send(event)


def test_the_ping_frame_is_wsproto_s() -> None:
    assert open_server().send(Ping(payload=b"")) == PING_FRAME


@given(st.binary(max_size=125))
def test_a_pong_frame_is_the_answer_wsproto_writes(payload: bytes) -> None:
    assert pong_frame(payload) == open_server().send(Pong(payload=payload))


# --- when the fast path may be used ------------------------------------------------------


def test_at_a_frame_boundary_only_between_whole_frames_and_messages() -> None:
    connection = open_server()
    assert at_frame_boundary(connection)
    whole = frame(TEXT, b"hello")
    connection.receive_data(whole[:3])  # part of a header
    list(connection.events())
    assert not at_frame_boundary(connection)
    connection.receive_data(whole[3:])
    list(connection.events())
    assert at_frame_boundary(connection)
    connection.receive_data(frame(TEXT, b"he", fin=False))  # a message begun
    list(connection.events())
    assert not at_frame_boundary(connection)
    connection.receive_data(frame(0x0, b"llo"))
    list(connection.events())
    assert at_frame_boundary(connection)
    connection.receive_data(frame(0x8, struct.pack("!H", 1000)))
    list(connection.events())
    assert not at_frame_boundary(connection)  # closing: wsproto reads the rest
    assert not at_frame_boundary(None)


def test_not_at_a_boundary_with_a_wsproto_whose_insides_differ() -> None:
    class Other:  # open, but not the wsproto this module reads
        state = ConnectionState.OPEN

    assert not at_frame_boundary(Other())  # type: ignore[arg-type]


def test_not_at_a_boundary_while_a_fragmented_message_is_being_sent() -> None:
    connection = open_server()
    connection.send(TextMessage(data="part", message_finished=False))
    assert not at_frame_boundary(connection)


# --- the reader on a real socket ---------------------------------------------------------


async def test_a_reader_never_waits_for_a_socket_closed_under_it() -> None:
    """A socket another task closed reads as closed: trio is never asked to wait for fd -1."""
    with trio.fail_after(5):
        ours, theirs = trio.socket.socketpair()
        stream = trio.SocketStream(ours)
        connection = ServerConnection(
            stream,
            WSConnection(ConnectionType.SERVER),
            message_queue_size=1,
            max_message_size=100,
        )
        await stream.aclose()
        for _ in range(2):  # and again: nothing was left registered
            with pytest.raises(trio.ClosedResourceError):
                await connection._receive_some()
        theirs.close()


async def test_a_reader_reads_what_arrived_on_its_socket() -> None:
    with trio.fail_after(5):
        ours, theirs = trio.socket.socketpair()
        connection = ServerConnection(
            trio.SocketStream(ours),
            WSConnection(ConnectionType.SERVER),
            message_queue_size=1,
            max_message_size=100,
        )
        await theirs.send(b"abc")
        assert await connection._receive_some() == b"abc"
        theirs.close()
        assert await connection._receive_some() == b""  # EOF
        ours.close()
