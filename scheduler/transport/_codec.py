"""RFC 6455 frames: the bytes of a server's frames, and a client's frames read (sans-IO).

Everything here is a pure function of bytes; :class:`~._connection.ServerConnection`
keeps the state between frames (a partial frame, a fragmented message, the close).
A client's frame is nearly always of one shape: final, no reserved bits, masked, a
text, binary, ping or pong opcode, a payload under 64 KiB; :func:`read_header` reads
every shape, and its caller reads the common one without a copy of the buffer.
"""

from __future__ import annotations

import struct
from typing import Final

CONTINUATION: Final = 0x0
TEXT: Final = 0x1
BINARY: Final = 0x2
CLOSE: Final = 0x8
PING: Final = 0x9
PONG: Final = 0xA

#: The opcodes RFC 6455 defines (the others are reserved: 1002).
KNOWN_OPCODES: Final = frozenset((CONTINUATION, TEXT, BINARY, CLOSE, PING, PONG))

#: A control frame's payload is at most this long (RFC 6455 §5.5).
MAX_CONTROL_PAYLOAD: Final = 125
#: A close reason must fit a control frame with its 2-byte code.
MAX_CLOSE_REASON: Final = MAX_CONTROL_PAYLOAD - 2

#: Close codes (RFC 6455 §7.4.1).
NORMAL: Final = 1000
PROTOCOL_ERROR: Final = 1002
NO_STATUS: Final = 1005
INVALID_DATA: Final = 1007
TOO_BIG: Final = 1009

#: The codes a peer may put in a close frame: the registered ones that are not reserved
#: for local use (1004, 1005, 1006, 1015 never go on the wire), and 3000-4999 (libraries,
#: frameworks and applications). Anything else is a protocol error (1002).
_VALID_CLOSE_CODES: Final = frozenset((1000, 1001, 1002, 1003, *range(1007, 1015)))

#: A ping frame with no payload, as a server sends it.
PING_FRAME: Final = bytes((0x80 | PING, 0))

_U16: Final = struct.Struct("!H")
_U16_HEADER: Final = struct.Struct("!BBH")
_U64_HEADER: Final = struct.Struct("!BBQ")
_U64: Final = struct.Struct("!Q")


class ProtocolViolation(Exception):
    """A client's frame breaks RFC 6455: the connection closes with ``code``."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


def valid_close_code(code: int) -> bool:
    """Whether a peer may send ``code`` in a close frame (RFC 6455 §7.4)."""
    return code in _VALID_CLOSE_CODES or 3000 <= code <= 4999


def read_header(data: bytes, pos: int) -> tuple[int, bool, int, int] | None:
    """The frame header at ``data[pos:]``: (opcode, final, payload start, payload length).

    None: the header is not all there yet. Raises :class:`ProtocolViolation` for a
    header no client may send: a reserved bit or opcode, no mask, a fragmented or
    over-long control frame, a length not in its shortest form or over 2**63.
    """
    size = len(data)
    if size - pos < 2:
        return None
    first, second = data[pos], data[pos + 1]
    if first & 0x70:
        raise ProtocolViolation(PROTOCOL_ERROR, "reserved bits set (no extension was agreed)")
    opcode = first & 0x0F
    if opcode not in KNOWN_OPCODES:
        raise ProtocolViolation(PROTOCOL_ERROR, f"reserved opcode {opcode:#x}")
    if not second & 0x80:
        raise ProtocolViolation(PROTOCOL_ERROR, "a client frame must be masked")
    final = bool(first & 0x80)
    length = second & 0x7F
    if opcode >= CLOSE:
        if not final:
            raise ProtocolViolation(PROTOCOL_ERROR, "a control frame must not be fragmented")
        if length > MAX_CONTROL_PAYLOAD:
            raise ProtocolViolation(PROTOCOL_ERROR, "a control frame's payload is over 125 bytes")
    key_at = pos + 2
    if length == 126:
        if size - pos < 4:
            return None
        (length,) = _U16.unpack_from(data, key_at)
        if length < 126:
            raise ProtocolViolation(PROTOCOL_ERROR, "a frame length not in its shortest form")
        key_at += 2
    elif length == 127:
        if size - pos < 10:
            return None
        (length,) = _U64.unpack_from(data, key_at)
        if length < 0x10000 or length >> 63:
            raise ProtocolViolation(PROTOCOL_ERROR, "a frame length not in its shortest form")
        key_at += 8
    if size - key_at < 4:
        return None
    return opcode, final, key_at, length


def unmask(data: bytes, key_at: int, length: int) -> bytes:
    """The payload of ``length`` bytes after the mask key at ``data[key_at:]`` (§5.3).

    Each byte XOR the key's byte at its offset mod 4, computed as one big integer.
    """
    if not length:
        return b""
    start = key_at + 4
    key = data[key_at:start]
    mask = (key * ((length + 3) >> 2))[:length]
    value = int.from_bytes(data[start : start + length], "little") ^ int.from_bytes(mask, "little")
    return value.to_bytes(length, "little")


def frame(opcode: int, payload: bytes) -> bytes:
    """One final, unmasked frame, as a server writes it (§5.1)."""
    first = 0x80 | opcode
    length = len(payload)
    if length < 126:
        return bytes((first, length)) + payload
    if length < 0x10000:
        return _U16_HEADER.pack(first, 126, length) + payload
    return _U64_HEADER.pack(first, 127, length) + payload


def message_frame(message: str | bytes) -> bytes:
    """One final text (``str``) or binary frame holding ``message``."""
    if isinstance(message, str):
        return frame(TEXT, message.encode())
    return frame(BINARY, message)


def pong_frame(payload: bytes) -> bytes:
    """The answer to a ping with ``payload`` (at most 125 bytes)."""
    return bytes((0x80 | PONG, len(payload))) + payload


def close_frame(code: int | None, reason: str = "") -> bytes:
    """A close frame: no body when ``code`` is None, else the code and the reason (cut to fit)."""
    if code is None:
        return bytes((0x80 | CLOSE, 0))
    body = reason.encode()[:MAX_CLOSE_REASON].decode(errors="ignore").encode()
    return frame(CLOSE, _U16.pack(code) + body)


def parse_close(payload: bytes) -> tuple[int, str]:
    """The code and reason of a peer's close frame (1005 and "" for an empty body).

    Raises :class:`ProtocolViolation`: a 1-byte body or a code no peer may send (1002),
    a reason that is not UTF-8 (1007).
    """
    if not payload:
        return NO_STATUS, ""
    if len(payload) == 1:
        raise ProtocolViolation(PROTOCOL_ERROR, "a close frame's body of 1 byte")
    (code,) = _U16.unpack_from(payload)
    if not valid_close_code(code):
        raise ProtocolViolation(PROTOCOL_ERROR, f"close code {code} is not one a peer may send")
    try:
        reason = payload[2:].decode()
    except UnicodeDecodeError:
        raise ProtocolViolation(INVALID_DATA, "a close reason that is not UTF-8") from None
    return code, reason
