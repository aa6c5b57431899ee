"""The server side of one WebSocket connection, sans-IO: bytes in, events and bytes out.

:class:`ServerConnection` owns the whole protocol of a session, in the style of h11's
``Connection``: the opening handshake (the request head read by h11, the ``101`` or a
refusal written by h11), RFC 6455 framing (``receive_data(bytes) -> events``,
``send(message) -> bytes``), and the close handshake. It does no I/O and never
imports trio: the caller moves the bytes (see :mod:`._stream`).

What the peer is owed (a pong for each ping, the close frame answering the peer's or
naming its protocol error) collects in :meth:`ServerConnection.data_to_send`, which
the caller writes after it has handled the events of the same bytes: so a reply to a
message that came before a close frame leaves before the close frame's echo.

Lifecycle (:data:`TRANSITIONS`; anything else raises :class:`LocalProtocolError` and
changes nothing)::

    CONNECTING --accept--> OPEN --close (ours)--> CLOSING --peer's close--> CLOSED
        |                   |                        '---protocol error--> CLOSED
        '--reject--> REJECTED '--peer's close or protocol error--> CLOSED
"""

from __future__ import annotations

import base64
import codecs
import enum
import hashlib
import http
from collections.abc import Sequence
from typing import Final, final

import h11

from ._codec import (
    BINARY,
    CLOSE,
    CONTINUATION,
    INVALID_DATA,
    NORMAL,
    PING,
    PING_FRAME,
    PONG,
    PROTOCOL_ERROR,
    TEXT,
    TOO_BIG,
    ProtocolViolation,
    close_frame,
    message_frame,
    parse_close,
    pong_frame,
    read_header,
    unmask,
)
from ._events import BadRequest, Closed, Event, Message, Ping, Pong, Request

#: RFC 6455 §1.3: appended to the client's key before hashing.
_ACCEPT_GUID: Final = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
#: The one protocol version (``Sec-WebSocket-Version``) there is.
VERSION: Final = b"13"
#: A request head larger than this is refused (a WebSocket upgrade is well under 1 KiB).
MAX_HEAD: Final = 16 * 1024
#: Frames one message may span, by default (a message of many tiny fragments costs a
#: list entry each while it is assembled).
DEFAULT_MAX_FRAMES: Final = 1024


class LocalProtocolError(Exception):
    """This side asked for something its connection's state does not allow."""


class State(enum.Enum):
    CONNECTING = "connecting"
    REJECTED = "rejected"
    OPEN = "open"
    #: This side sent its close frame and waits for the peer's.
    CLOSING = "closing"
    CLOSED = "closed"


class Action(enum.Enum):
    ACCEPT = "accept"
    REJECT = "reject"
    #: This side sends a close frame first.
    CLOSE = "close"
    #: The peer's close frame arrived.
    PEER_CLOSE = "peer_close"
    #: The peer broke the protocol: this side closes with the reason.
    FAIL = "fail"


#: state -> action -> the new state.
TRANSITIONS: Final[dict[State, dict[Action, State]]] = {
    State.CONNECTING: {Action.ACCEPT: State.OPEN, Action.REJECT: State.REJECTED},
    State.REJECTED: {},
    State.OPEN: {
        Action.CLOSE: State.CLOSING,
        Action.PEER_CLOSE: State.CLOSED,
        Action.FAIL: State.CLOSED,
    },
    State.CLOSING: {Action.PEER_CLOSE: State.CLOSED, Action.FAIL: State.CLOSED},
    State.CLOSED: {},
}


def accept_key(key: bytes) -> bytes:
    """``Sec-WebSocket-Accept`` for the client's ``Sec-WebSocket-Key`` (§4.2.2)."""
    return base64.b64encode(hashlib.sha1(key + _ACCEPT_GUID).digest())


def _header_words(headers: Sequence[tuple[bytes, bytes]], name: bytes) -> list[str]:
    """The comma-separated, trimmed, lower-case values of every ``name`` header."""
    return [
        word.strip().lower()
        for key, value in headers
        if key == name
        for word in value.decode("latin-1").split(",")
        if word.strip()
    ]


def _problem(request: h11.Request) -> tuple[int, str] | None:
    """Why ``request`` is not a WebSocket upgrade this server accepts (§4.2.1), or None."""
    headers = request.headers
    if request.method != b"GET":
        return 405, "a WebSocket handshake is a GET"
    if "websocket" not in _header_words(headers, b"upgrade"):
        return 426, "not a WebSocket upgrade (no Upgrade: websocket)"
    if "upgrade" not in _header_words(headers, b"connection"):
        return 400, "not a WebSocket upgrade (no Connection: Upgrade)"
    versions = [value for name, value in headers if name == b"sec-websocket-version"]
    if versions != [VERSION]:
        return 426, "unsupported WebSocket version; this server speaks 13"
    keys = [value for name, value in headers if name == b"sec-websocket-key"]
    if len(keys) != 1 or not _is_key(keys[0]):
        return 400, "missing or invalid Sec-WebSocket-Key"
    return None


def _is_key(value: bytes) -> bool:
    """A ``Sec-WebSocket-Key``: 16 bytes in base64 (§4.1)."""
    try:
        return len(base64.b64decode(value, validate=True)) == 16
    except ValueError:
        return False


def _sent(parser: h11.Connection, event: h11.Response | h11.Data | h11.EndOfMessage) -> bytes:
    """The bytes h11 writes for ``event`` (never None here: the connection is open)."""
    data = parser.send(event)
    assert data is not None
    return data


@final
class ServerConnection:
    """One server-side WebSocket connection (sans-IO)."""

    __slots__ = (
        "_h11",
        "_head_read",
        "_key",
        "_max_frames",
        "_max_message_size",
        "_message_frames",
        "_message_opcode",
        "_message_parts",
        "_message_size",
        "_needed",
        "_owed",
        "_received",
        "_text_decoder",
        "state",
        "subprotocol",
    )

    def __init__(
        self, *, max_message_size: int = 1 << 20, max_frames: int = DEFAULT_MAX_FRAMES
    ) -> None:
        self.state = State.CONNECTING
        #: The subprotocol :meth:`accept` agreed on (None: none).
        self.subprotocol: str | None = None
        self._max_message_size = max_message_size
        self._max_frames = max_frames
        #: The handshake's parser; dropped once the handshake is done.
        self._h11: h11.Connection | None = h11.Connection(
            h11.SERVER, max_incomplete_event_size=MAX_HEAD
        )
        self._key = b""
        self._head_read = False
        #: Bytes received that do not make a whole frame yet, and how many the frame
        #: they start needs in all (0: its header is not whole yet).
        self._received: bytes | bytearray = b""
        self._needed = 0
        #: What the peer is owed (pongs, the close frame), see :meth:`data_to_send`.
        self._owed = b""
        #: The fragmented message being assembled (opcode None: none).
        self._message_opcode: int | None = None
        self._message_parts: list[bytes] = []
        self._message_size = 0
        self._message_frames = 0
        self._text_decoder: codecs.IncrementalDecoder | None = None

    # --- the lifecycle ---------------------------------------------------------------

    def _move(self, action: Action) -> None:
        """Apply ``action`` (see :data:`TRANSITIONS`); an illegal one raises, changing nothing."""
        new = TRANSITIONS[self.state].get(action)
        if new is None:
            raise LocalProtocolError(
                f"cannot {action.value} a connection that is {self.state.value}"
            )
        self.state = new

    # --- the opening handshake ------------------------------------------------------

    def _receive_head(self, data: bytes) -> list[Event]:
        parser = self._h11
        assert parser is not None
        if self._head_read:
            # The head is read: anything more waits for accept() (or is dropped by reject()).
            self._received = bytes(self._received) + data
            return []
        parser.receive_data(data)
        try:
            event = parser.next_event()
        except h11.RemoteProtocolError as exc:
            return [BadRequest(str(exc))]
        if event is h11.NEED_DATA:
            return []
        if not isinstance(event, h11.Request):  # the peer closed, or no more data
            return [BadRequest("the connection closed before a request head")]
        self._head_read = True
        problem = _problem(event)
        if problem is None:
            keys = [value for name, value in event.headers if name == b"sec-websocket-key"]
            self._key = keys[0]
        offered = tuple(_header_words(event.headers, b"sec-websocket-protocol"))
        return [
            Request(
                method=event.method.decode("latin-1"),
                target=event.target.decode("latin-1"),
                headers=tuple((name, value) for name, value in event.headers),
                subprotocols=offered,
                problem=problem,
            )
        ]

    def accept(self, subprotocol: str | None = None) -> bytes:
        """The ``101`` answering the request; the connection is then open.

        Frames the client sent right behind its head are read by the next
        :meth:`receive_data` (call it with ``b""``).
        """
        parser = self._h11
        if parser is None or not self._key:
            raise LocalProtocolError("accept() needs a valid WebSocket request head")
        headers = [
            (b"Upgrade", b"websocket"),
            (b"Connection", b"Upgrade"),
            (b"Sec-WebSocket-Accept", accept_key(self._key)),
        ]
        if subprotocol is not None:
            headers.append((b"Sec-WebSocket-Protocol", subprotocol.encode()))
        response = h11.InformationalResponse(
            status_code=101, headers=headers, reason=b"Switching Protocols"
        )
        data = parser.send(response)
        assert data is not None
        self._move(Action.ACCEPT)
        self.subprotocol = subprotocol
        # What the client sent after its head: the first frames.
        self._received = parser.trailing_data[0] + bytes(self._received)
        self._h11 = None  # an idle session keeps nothing of its handshake
        return data

    def reject(self, status: int, body: str) -> bytes:
        """A plain HTTP answer instead of the upgrade; the caller then closes the stream."""
        parser = self._h11
        if parser is None:
            raise LocalProtocolError("reject() only before the handshake is done")
        encoded = body.encode()
        headers = [
            (b"Content-Type", b"text/plain; charset=utf-8"),
            (b"Content-Length", str(len(encoded)).encode()),
            (b"Connection", b"close"),
        ]
        phrase = http.HTTPStatus(status).phrase.encode()
        self._move(Action.REJECT)
        self._h11 = None
        return (
            _sent(parser, h11.Response(status_code=status, headers=headers, reason=phrase))
            + _sent(parser, h11.Data(data=encoded))
            + _sent(parser, h11.EndOfMessage())
        )

    # --- frames ----------------------------------------------------------------------

    def receive_data(self, data: bytes) -> list[Event]:
        """Read ``data`` (``b""`` reads what is buffered); the events it completes, in order.

        After :class:`Closed` nothing more is read: later bytes are dropped.
        """
        state = self.state
        if state is State.CONNECTING:
            return self._receive_head(data)
        if state is State.CLOSED or state is State.REJECTED:
            return []
        received = self._received
        if received:
            if isinstance(received, bytearray) and len(received) + len(data) < self._needed:
                # The frame is not whole yet: keep the bytes (linear in the frame's size,
                # however finely the peer cuts it).
                received += data
                return []
            data = bytes(received) + data
        events: list[Event] = []
        pos, size = 0, len(data)
        try:
            while pos < size:
                header = read_header(data, pos)
                if header is None:
                    self._needed = 0  # not even the header yet: read again with the next bytes
                    break
                opcode, final, key_at, length = header
                if opcode <= BINARY and self._message_size + length > self._max_message_size:
                    raise ProtocolViolation(
                        TOO_BIG, f"a message over {self._max_message_size} bytes"
                    )
                end = key_at + 4 + length
                if end > size:
                    self._needed = end - pos
                    break
                payload = unmask(data, key_at, length)
                pos = end
                if opcode >= CLOSE:
                    if opcode == PING:
                        if self.state is State.OPEN:
                            self._owed += pong_frame(payload)
                        events.append(Ping(payload))
                    elif opcode == PONG:
                        events.append(Pong(payload))
                    else:
                        code, reason = parse_close(payload)
                        if self.state is State.OPEN:
                            self._owed += close_frame(None if code == 1005 else code, reason)
                        self._move(Action.PEER_CLOSE)
                        events.append(Closed(code, reason, by_peer=True))
                        return events
                elif final and opcode != CONTINUATION and self._message_opcode is None:
                    if opcode == TEXT:
                        try:
                            events.append(Message(payload.decode()))
                        except UnicodeDecodeError:
                            raise ProtocolViolation(
                                INVALID_DATA, "a text message that is not UTF-8"
                            ) from None
                    else:
                        events.append(Message(payload))
                else:
                    message = self._fragment(opcode, final, payload)
                    if message is not None:
                        events.append(message)
        except ProtocolViolation as violation:
            self._fail(violation)
            events.append(Closed(violation.code, violation.reason, by_peer=False))
            return events
        self._received = bytearray(data[pos:]) if pos < size else b""
        return events

    def _fragment(self, opcode: int, final: bool, payload: bytes) -> Message | None:
        """One frame of a fragmented message; the message once its last frame is here."""
        if opcode == CONTINUATION:
            if self._message_opcode is None:
                raise ProtocolViolation(PROTOCOL_ERROR, "a continuation frame with no message")
            self._message_frames += 1
            if self._message_frames > self._max_frames:
                raise ProtocolViolation(
                    TOO_BIG, f"a message of more than {self._max_frames} frames"
                )
        else:
            if self._message_opcode is not None:
                raise ProtocolViolation(PROTOCOL_ERROR, "a new message inside a fragmented message")
            self._message_opcode = opcode
            self._message_frames = 1
            if opcode == TEXT:
                self._text_decoder = codecs.getincrementaldecoder("utf-8")()
        self._message_size += len(payload)
        decoder = self._text_decoder
        if decoder is not None:
            try:  # invalid UTF-8 fails at its first byte, not at the message's end
                decoder.decode(payload, final)
            except UnicodeDecodeError:
                raise ProtocolViolation(INVALID_DATA, "a text message that is not UTF-8") from None
        self._message_parts.append(payload)
        if not final:
            return None
        data = b"".join(self._message_parts)
        text = self._message_opcode == TEXT
        self._message_opcode, self._message_parts, self._text_decoder = None, [], None
        self._message_size = self._message_frames = 0
        return Message(data.decode() if text else data)

    def _fail(self, violation: ProtocolViolation) -> None:
        if self.state is State.OPEN:
            self._owed += close_frame(violation.code, violation.reason)
        self._move(Action.FAIL)
        self._message_opcode, self._message_parts, self._text_decoder = None, [], None

    def data_to_send(self) -> bytes:
        """What the peer is owed since the last call (pongs, a close frame); ``b""``: nothing."""
        owed, self._owed = self._owed, b""
        return owed

    @property
    def can_send(self) -> bool:
        """Whether :meth:`send` may be called (open, or the peer's close not answered yet)."""
        return self.state is State.OPEN or (self.state is State.CLOSED and bool(self._owed))

    def send(self, message: str | bytes) -> bytes:
        """The frame of one message (text for ``str``, binary for ``bytes``).

        Allowed while open, and after the peer's close until its answer is taken with
        :meth:`data_to_send` (a reply to a message that came before the close).
        """
        if not self.can_send:
            raise LocalProtocolError(f"cannot send on a connection that is {self.state.value}")
        return message_frame(message)

    def ping(self) -> bytes:
        """A ping with no payload (open connections only)."""
        if self.state is not State.OPEN:
            raise LocalProtocolError(f"cannot ping a connection that is {self.state.value}")
        return PING_FRAME

    def close(self, code: int = NORMAL, reason: str = "") -> bytes:
        """This side's close frame (the reason cut to fit); then wait for the peer's.

        ``b""`` when the close handshake is already under way or done.
        """
        if self.state is not State.OPEN:
            return b""
        self._move(Action.CLOSE)
        return close_frame(code, reason)

    @property
    def closed(self) -> bool:
        """Nothing more will be read (the peer closed, broke the protocol, or was rejected)."""
        return self.state is State.CLOSED or self.state is State.REJECTED
