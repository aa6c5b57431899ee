"""The server's connection object alone (scheduler.transport.ServerConnection), sans-IO.

The conformance cases of ``test_transport_conformance`` run here on the connection
itself, whole and cut into every size of read; the handshake, the lifecycle table
and the frames it writes are checked as h11's and wsproto's own tests check theirs.
"""

from __future__ import annotations

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from scheduler.transport import (
    BadRequest,
    Closed,
    LocalProtocolError,
    Message,
    Ping,
    Pong,
    Request,
    ServerConnection,
    State,
    valid_close_code,
)
from scheduler.transport._codec import (
    ProtocolViolation,
    close_frame,
    message_frame,
    parse_close,
    read_header,
    unmask,
)
from scheduler.transport._codec import (
    frame as server_frame,
)
from scheduler.transport._connection import TRANSITIONS, Action, accept_key

from .service_support import upgrade_head
from .test_transport_conformance import (
    BINARY,
    CASES,
    CLOSE,
    CONTINUATION,
    MAX_FRAMES,
    MAX_MESSAGE,
    OPEN,
    PING,
    PONG,
    TEXT,
    frame,
)

HEAD = upgrade_head("/ws").encode()


def opened() -> ServerConnection:
    connection = ServerConnection(max_message_size=MAX_MESSAGE, max_frames=MAX_FRAMES)
    (request,) = connection.receive_data(HEAD)
    assert isinstance(request, Request)
    assert request.problem is None
    connection.accept()
    return connection


def server_frames(data: bytes) -> list[tuple[int, bytes]]:
    """The frames a server wrote (unmasked), parsed independently of the codec."""
    frames, pos = [], 0
    while pos < len(data):
        first, second = data[pos], data[pos + 1]
        assert first & 0xF0 == 0x80
        assert second & 0x80 == 0
        length, start = second, pos + 2
        if length == 126:
            length, start = struct.unpack_from("!H", data, pos + 2)[0], pos + 4
        elif length == 127:
            length, start = struct.unpack_from("!Q", data, pos + 2)[0], pos + 10
        frames.append((first & 0x0F, data[start : start + length]))
        pos = start + length
    assert pos == len(data)
    return frames


#: The cases whose answer is the connection's (a binary message's 1003 is the session's).
CONNECTION_CASES = [name for name, (_, expect) in CASES.items() if expect.close != 1003]


def check_case(name: str, events: list[object], owed: bytes, connection: ServerConnection) -> None:
    _, expect = CASES[name]
    messages = [e for e in events if isinstance(e, Message)]
    assert len(messages) == expect.replies
    written = server_frames(owed)
    assert [p for op, p in written if op == PONG] == list(expect.pongs)
    assert len([e for e in events if isinstance(e, Ping)]) == len(expect.pongs)
    closes = [p for op, p in written if op == CLOSE]
    if expect.close == OPEN:
        assert closes == []
        assert connection.state is State.OPEN
        assert not connection.closed
        return
    assert len(closes) == 1
    assert written[-1][0] == CLOSE  # the close frame is the last thing owed
    assert isinstance(events[-1], Closed)
    assert connection.closed
    if expect.close is None:
        assert closes == [b""]
    else:
        assert struct.unpack("!H", closes[0][:2])[0] == expect.close
    assert connection.receive_data(frame(PING, b"after")) == []  # nothing more is read
    assert connection.data_to_send() == b""


@pytest.mark.parametrize("name", CONNECTION_CASES)
def test_each_conformance_case_whole(name: str) -> None:
    connection = opened()
    events = connection.receive_data(CASES[name][0])
    check_case(name, events, connection.data_to_send(), connection)


@pytest.mark.parametrize("name", [n for n in CONNECTION_CASES if len(CASES[n][0]) < 3000])
def test_each_conformance_case_a_byte_at_a_time(name: str) -> None:
    connection = opened()
    events: list[object] = []
    for byte in CASES[name][0]:
        events += connection.receive_data(bytes((byte,)))
    check_case(name, events, connection.data_to_send(), connection)
    whole = opened()
    assert events == whole.receive_data(CASES[name][0])


@given(st.sampled_from(CONNECTION_CASES), st.lists(st.integers(1, 70_000), max_size=8))
def test_each_conformance_case_in_any_reads(name: str, cuts: list[int]) -> None:
    data, connection = CASES[name][0], opened()
    events: list[object] = []
    pos = 0
    for size in [*cuts, len(data)]:
        events += connection.receive_data(data[pos : pos + size])
        pos += size
    check_case(name, events, connection.data_to_send(), connection)


def test_messages_are_text_or_bytes_by_their_opcode() -> None:
    connection = opened()
    data = frame(TEXT, "héllo".encode()) + frame(BINARY, b"\x00\xff")
    assert connection.receive_data(data) == [Message("héllo"), Message(b"\x00\xff")]
    fragmented = frame(BINARY, b"ab", fin=False) + frame(CONTINUATION, b"cd")
    assert connection.receive_data(fragmented) == [Message(b"abcd")]
    assert connection.receive_data(frame(PONG, b"p")) == [Pong(b"p")]


def test_a_ping_while_closing_is_not_answered() -> None:
    connection = opened()
    assert connection.close(1001, "going away") == close_frame(1001, "going away")
    assert connection.state is State.CLOSING
    assert connection.receive_data(frame(PING, b"x")) == [Ping(b"x")]
    assert connection.data_to_send() == b""
    assert connection.close() == b""  # already closing
    events = connection.receive_data(frame(CLOSE, struct.pack("!H", 1001)))
    assert events == [Closed(1001, "", by_peer=True)]
    assert connection.data_to_send() == b""  # its close answered ours: nothing owed
    assert connection.state is State.CLOSED


def test_a_protocol_error_while_closing_owes_nothing() -> None:
    connection = opened()
    connection.close()
    events = connection.receive_data(frame(TEXT, b"x", rsv=1))
    assert events == [Closed(1002, "reserved bits set (no extension was agreed)", by_peer=False)]
    assert connection.data_to_send() == b""


def test_sending() -> None:
    connection = opened()
    assert connection.send("hi") == b"\x81\x02hi"
    assert connection.send(b"\x01") == b"\x82\x01\x01"
    assert connection.ping() == b"\x89\x00"
    assert connection.can_send
    connection.receive_data(frame(CLOSE, struct.pack("!H", 1000)))
    assert connection.can_send  # a reply to a message before the close may still leave
    assert connection.send("last") == b"\x81\x04last"
    with pytest.raises(LocalProtocolError):
        connection.ping()
    assert connection.data_to_send() == close_frame(1000)
    assert not connection.can_send
    with pytest.raises(LocalProtocolError):
        connection.send("too late")


def test_the_frame_lengths_a_server_writes() -> None:
    for size, head in (
        (125, b"\x81\x7d"),
        (126, b"\x81\x7e\x00\x7e"),
        (65535, b"\x81\x7e\xff\xff"),
    ):
        assert message_frame("x" * size) == head + b"x" * size
    big = message_frame(b"y" * 65536)
    assert big[:10] == b"\x82\x7f" + struct.pack("!Q", 65536)
    assert server_frame(PONG, b"") == b"\x8a\x00"


def test_a_close_reason_is_cut_to_fit_a_control_frame_at_a_character() -> None:
    encoded = close_frame(4000, "é" * 100)
    assert len(encoded) == 2 + 2 + 122  # 61 two-byte characters: 123 bytes would cut one
    assert parse_close(encoded[2:]) == (4000, "é" * 61)
    assert close_frame(None) == b"\x88\x00"


@pytest.mark.parametrize(
    ("code", "valid"),
    [
        (999, False),
        (1000, True),
        (1003, True),
        (1004, False),
        (1005, False),
        (1006, False),
        (1007, True),
        (1014, True),
        (1015, False),
        (2999, False),
        (3000, True),
        (4999, True),
        (5000, False),
    ],
)
def test_close_codes_a_peer_may_send(code: int, valid: bool) -> None:
    assert valid_close_code(code) is valid


def test_headers_and_masks() -> None:
    assert read_header(b"\x81", 0) is None
    assert read_header(b"\x81\xfe\x00", 0) is None  # 16-bit length not all there
    assert read_header(b"\x82\xff" + b"\x00" * 7, 0) is None
    assert read_header(b"\x81\x85abc", 0) is None  # the mask not all there
    assert read_header(b"\x81\x85abcd", 0) == (TEXT, True, 2, 5)
    assert read_header(b"\x01\xfe\x00\x7e" + b"k" * 4, 0) == (TEXT, False, 4, 126)
    assert read_header(b"\x02\xff" + struct.pack("!Q", 65536) + b"k" * 4, 0) == (
        BINARY,
        False,
        10,
        65536,
    )
    assert unmask(b"\x01\x02\x03\x04\x01\x02\x03\x05\x00", 0, 5) == b"\x00\x00\x00\x01\x01"
    assert unmask(b"abcd", 0, 0) == b""


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (b"\x81\xfe\x00\x05abcd", 1002),  # a 16-bit length under 126
        (b"\x82\xff" + struct.pack("!Q", 100) + b"abcd", 1002),  # a 64-bit length under 64 KiB
        (b"\x82\xff" + struct.pack("!Q", 1 << 63) + b"abcd", 1002),  # the top bit set
        (b"\x82\xff" + struct.pack("!Q", MAX_MESSAGE + 1) + b"abcd", 1009),  # before it arrives
    ],
)
def test_lengths_no_client_may_send(data: bytes, code: int) -> None:
    connection = opened()
    (event,) = connection.receive_data(data)
    assert isinstance(event, Closed)
    assert event.code == code


# --- the handshake --------------------------------------------------------------------------


def test_the_handshake_answers_with_the_accept_key_and_the_subprotocol() -> None:
    connection = ServerConnection()
    head = HEAD.replace(b"\r\n\r\n", b"\r\nSec-WebSocket-Protocol: a, scheduler.v1\r\n\r\n")
    (request,) = connection.receive_data(head[:20]) + connection.receive_data(head[20:])
    assert isinstance(request, Request)
    assert (request.method, request.target, request.subprotocols) == (
        "GET",
        "/ws",
        ("a", "scheduler.v1"),
    )
    response = connection.accept("scheduler.v1")
    assert response.startswith(b"HTTP/1.1 101 Switching Protocols\r\n")
    assert b"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n" in response  # RFC 6455 §1.3
    assert b"Sec-WebSocket-Protocol: scheduler.v1\r\n" in response
    assert connection.state is State.OPEN
    assert connection.subprotocol == "scheduler.v1"
    assert accept_key(b"dGhlIHNhbXBsZSBub25jZQ==") == b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


def test_frames_right_behind_the_head_are_read_after_accept() -> None:
    connection = ServerConnection()
    (request,) = connection.receive_data(HEAD + frame(TEXT, b"early"))
    assert isinstance(request, Request)
    assert connection.receive_data(frame(TEXT, b"later")) == []  # still connecting
    connection.accept()
    assert connection.receive_data(b"") == [Message("early"), Message("later")]


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ((b"GET /ws", b"POST /ws"), 405),
        ((b"Upgrade: websocket", b"Upgrade: h2c"), 426),
        ((b"Connection: Upgrade", b"Connection: keep-alive"), 400),
        ((b"Version: 13", b"Version: 8"), 426),
        ((b"dGhlIHNhbXBsZSBub25jZQ==", b"c2hvcnQ="), 400),
        ((b"dGhlIHNhbXBsZSBub25jZQ==", b"not base64!"), 400),
    ],
)
def test_a_request_that_is_not_an_upgrade_names_its_problem(
    change: tuple[bytes, bytes], problem: int
) -> None:
    connection = ServerConnection()
    (request,) = connection.receive_data(HEAD.replace(*change))
    assert isinstance(request, Request)
    assert request.problem is not None
    assert request.problem[0] == problem
    with pytest.raises(LocalProtocolError):
        connection.accept()
    assert connection.state is State.CONNECTING


def test_a_rejection_is_a_plain_http_answer() -> None:
    connection = ServerConnection()
    connection.receive_data(HEAD)
    answer = connection.reject(503, "full\n")
    assert answer.startswith(b"HTTP/1.1 503 ")
    assert answer.endswith(b"\r\n\r\nfull\n")
    assert b"Content-Length: 5\r\n" in answer
    assert connection.state is State.REJECTED
    assert connection.closed
    assert connection.receive_data(frame(TEXT, b"x")) == []
    with pytest.raises(LocalProtocolError):
        connection.reject(503, "again")


def test_bytes_that_are_not_http_are_a_bad_request() -> None:
    (event,) = ServerConnection().receive_data(b"\x16\x03\x01 not http\r\n\r\n")
    assert isinstance(event, BadRequest)


def test_a_head_over_the_limit_is_a_bad_request() -> None:
    connection = ServerConnection()
    events = connection.receive_data(b"GET /ws HTTP/1.1\r\nX: " + b"a" * 20_000)
    assert len(events) == 1
    assert isinstance(events[0], BadRequest)


# --- the lifecycle table ----------------------------------------------------------------------


@pytest.mark.parametrize("state", list(State))
@pytest.mark.parametrize("action", list(Action))
def test_an_illegal_transition_raises_and_changes_nothing(state: State, action: Action) -> None:
    connection = ServerConnection()
    connection.state = state
    allowed = TRANSITIONS[state].get(action)
    if allowed is not None:
        connection._move(action)
        assert connection.state is allowed
        return
    with pytest.raises(LocalProtocolError):
        connection._move(action)
    assert connection.state is state


def test_a_peer_that_connects_and_leaves_is_not_a_request() -> None:
    connection = ServerConnection()
    assert connection.receive_data(b"GET /ws HTTP/1.1\r\n") == []
    assert connection.state is State.CONNECTING


@pytest.mark.parametrize("module", ["_codec.py", "_connection.py", "_events.py"])
def test_the_connection_and_its_codec_never_import_trio(module: str) -> None:
    """The sans-IO rule, read from the source (the package's ``__init__`` also exports
    the trio adapter, so importing the module would load trio anyway)."""
    import ast  # noqa: PLC0415
    from pathlib import Path  # noqa: PLC0415

    import scheduler.transport  # noqa: PLC0415

    source = Path(scheduler.transport.__file__).with_name(module).read_text(encoding="utf-8")
    imported = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            imported.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            imported.add(node.module.split(".")[0])
    assert "trio" not in imported


# --- exact words and bytes (what a peer or a log reads) --------------------------------------


@pytest.mark.parametrize(
    ("data", "code", "reason"),
    [
        (b"\x81\x00", 1002, "a client frame must be masked"),  # 2 bytes are enough to tell
        (b"\x81\x01x", 1002, "a client frame must be masked"),  # an odd length, unmasked
        (b"\x91\x80", 1002, "reserved bits set (no extension was agreed)"),
        (b"\x83\x80", 1002, "reserved opcode 0x3"),
        (b"\x09\x80", 1002, "a control frame must not be fragmented"),
        (b"\x89\xfe", 1002, "a control frame's payload is over 125 bytes"),
        (b"\x81\xfe\x00\x7d", 1002, "a frame length not in its shortest form"),  # 4 bytes
        (b"\x82\xff" + struct.pack("!Q", 0xFFFF), 1002, "a frame length not in its shortest form"),
        (b"\x88\x81abcd" + bytes((ord("x") ^ ord("a"),)), 1002, "a close frame's body of 1 byte"),
        (b"\x80\x80abcd", 1002, "a continuation frame with no message"),
        (b"\x01\x80abcd\x01\x80abcd", 1002, "a new message inside a fragmented message"),
        (b"\x81\x81" + b"\x00" * 4 + b"\xff", 1007, "a text message that is not UTF-8"),
        (b"\x01\x81" + b"\x00" * 4 + b"\xff", 1007, "a text message that is not UTF-8"),
        (
            b"\x88\x84" + b"\x00" * 4 + b"\x03\xe8\xff\xfe",
            1007,
            "a close reason that is not UTF-8",
        ),
        (
            b"\x88\x82" + b"\x00" * 4 + b"\x03\xed",
            1002,
            "close code 1005 is not one a peer may send",
        ),
    ],
)
def test_each_violation_is_named(data: bytes, code: int, reason: str) -> None:
    connection = opened()
    assert connection.receive_data(data) == [Closed(code, reason, by_peer=False)]
    assert connection.data_to_send() == close_frame(code, reason)


def test_a_message_at_the_size_limit_is_read_and_one_byte_more_is_not() -> None:
    connection = opened()
    (message,) = connection.receive_data(frame(BINARY, b"m" * MAX_MESSAGE))
    assert message == Message(b"m" * MAX_MESSAGE)
    fragmented = frame(TEXT, b"a" * 10, fin=False) + frame(CONTINUATION, b"b" * (MAX_MESSAGE - 10))
    assert connection.receive_data(fragmented) == [Message("a" * 10 + "b" * (MAX_MESSAGE - 10))]
    # The counts start again after a fragmented message: the same again fits.
    assert len(connection.receive_data(fragmented)) == 1
    (closed,) = connection.receive_data(frame(BINARY, b"m" * (MAX_MESSAGE + 1)))
    assert closed == Closed(1009, f"a message over {MAX_MESSAGE} bytes", by_peer=False)


def test_a_message_of_max_frames_then_another() -> None:
    connection = ServerConnection(max_frames=3)
    connection.receive_data(HEAD)
    connection.accept()
    three = frame(TEXT, b"a", fin=False) + frame(CONTINUATION, b"b", fin=False)
    three += frame(CONTINUATION, b"c")
    assert connection.receive_data(three + three) == [Message("abc"), Message("abc")]
    four = frame(TEXT, b"a", fin=False) + frame(CONTINUATION, b"b", fin=False) * 3
    assert connection.receive_data(four) == [
        Closed(1009, "a message of more than 3 frames", by_peer=False)
    ]


def test_a_fragmented_text_message_ending_inside_a_code_point_closes_1007() -> None:
    connection = opened()
    data = frame(TEXT, b'"caf', fin=False) + frame(CONTINUATION, b"\xc3")
    assert connection.receive_data(data) == [
        Closed(1007, "a text message that is not UTF-8", by_peer=False)
    ]


def test_a_frame_cut_after_another_is_read_once_the_rest_arrives() -> None:
    connection = opened()
    second = frame(TEXT, b"x" * 300)
    assert connection.receive_data(frame(PING, b"p") + second[:1]) == [Ping(b"p")]
    assert connection.receive_data(second[1:5]) == []
    assert connection.receive_data(second[5:-1]) == []
    assert connection.receive_data(second[-1:]) == [Message("x" * 300)]
    assert connection.receive_data(frame(PING, b"q") + second[:9]) == [Ping(b"q")]
    assert connection.receive_data(second[9:]) == [Message("x" * 300)]


def test_what_is_owed_keeps_its_order_and_words() -> None:
    connection = opened()
    connection.receive_data(frame(PING, b"1") + frame(CLOSE, struct.pack("!H", 4000) + b"bye"))
    assert connection.data_to_send() == b"\x8a\x011" + close_frame(4000, "bye")
    failing = opened()
    failing.receive_data(frame(PING, b"2") + frame(TEXT, b"x", rsv=4))
    reason = "reserved bits set (no extension was agreed)"
    assert failing.data_to_send() == b"\x8a\x012" + close_frame(1002, reason)
    closing = opened()
    assert closing.close() == b"\x88\x02\x03\xe8"


def test_the_exact_handshake_answers() -> None:
    connection = ServerConnection()
    assert connection.subprotocol is None
    connection.receive_data(HEAD)
    assert connection.accept() == (
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n"
    )
    assert connection.subprotocol is None
    with pytest.raises(LocalProtocolError, match=r"^reject\(\) only before the handshake is done$"):
        connection.reject(400, "no")
    with pytest.raises(
        LocalProtocolError, match=r"^accept\(\) needs a valid WebSocket request head$"
    ):
        connection.accept()
    refused = ServerConnection()
    refused.receive_data(HEAD)
    assert refused.reject(400, "no\n") == (
        b"HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\n"
        b"Content-Length: 3\r\nConnection: close\r\n\r\nno\n"
    )
    with pytest.raises(LocalProtocolError, match="accept"):
        refused.accept()


def test_the_request_as_read() -> None:
    (request,) = ServerConnection().receive_data(HEAD)
    assert request == Request(
        method="GET",
        target="/ws",
        headers=(
            (b"host", b"scheduler.test:8002"),
            (b"upgrade", b"websocket"),
            (b"connection", b"Upgrade"),
            (b"sec-websocket-key", b"dGhlIHNhbXBsZSBub25jZQ=="),
            (b"sec-websocket-version", b"13"),
        ),
        subprotocols=(),
    )


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ((b"GET /ws", b"POST /ws"), (405, "a WebSocket handshake is a GET")),
        (
            (b"Upgrade: websocket", b"Upgrade: h2c"),
            (426, "not a WebSocket upgrade (no Upgrade: websocket)"),
        ),
        (
            (b"Connection: Upgrade", b"Connection: close"),
            (400, "not a WebSocket upgrade (no Connection: Upgrade)"),
        ),
        (
            (b"Version: 13", b"Version: 7"),
            (426, "unsupported WebSocket version; this server speaks 13"),
        ),
        ((b"dGhlIHNhbXBsZSBub25jZQ==", b"!!"), (400, "missing or invalid Sec-WebSocket-Key")),
    ],
)
def test_each_problem_is_named(change: tuple[bytes, bytes], problem: tuple[int, str]) -> None:
    (request,) = ServerConnection().receive_data(HEAD.replace(*change))
    assert isinstance(request, Request)
    assert request.problem == problem


def test_bad_heads_are_named() -> None:
    assert ServerConnection().receive_data(b"\x16\x03\x01 not http\r\n\r\n") == [
        BadRequest("illegal request line: bytearray(b'\\x16\\x03\\x01 not http')")
    ]
    assert ServerConnection().receive_data(b"") == [
        BadRequest("the connection closed before a request head")
    ]


def test_each_refusal_of_this_side_is_named() -> None:
    connection = opened()
    connection.receive_data(frame(CLOSE))
    connection.data_to_send()
    with pytest.raises(LocalProtocolError, match=r"^cannot close a connection that is closed$"):
        connection._move(Action.CLOSE)
    with pytest.raises(LocalProtocolError, match=r"^cannot ping a connection that is closed$"):
        connection.ping()
    with pytest.raises(LocalProtocolError, match=r"^cannot send on a connection that is closed$"):
        connection.send("x")
    violation = ProtocolViolation(1002, "why")
    assert (str(violation), violation.code, violation.reason) == ("why", 1002, "why")
