"""The common WebSocket frames, read and written without wsproto (sans-IO, no trio).

A client's frames are nearly all of one shape: final, no reserved bits, masked, a
text, binary, ping or pong opcode, and a payload under 64 KiB. wsproto parses each
of them through a buffer, a header tuple, a masker object, an incremental UTF-8
decoder and an event object: about 24 µs for a 200-byte announce, most of a frame's
transport cost. :func:`split_frames` reads a run of such frames straight from the
bytes received, and stops at the first byte it is not sure of: a partial frame, a
fragment, a close, a reserved bit or opcode, an unmasked frame, a non-minimal or
64-bit length, a control frame over 125 bytes, invalid UTF-8 in a text frame. The
caller hands everything from there on to wsproto, which buffers it or raises the
close code it always did. So the fast path only ever accepts what wsproto accepts,
and reads it the same way (``tests/test_wire.py`` checks both on the same bytes).

The caller may use it only where wsproto would read the same bytes as a fresh frame:
the connection open, no extension, nothing buffered and no fragmented message in
progress (:func:`at_frame_boundary`).

:func:`server_frame` writes a server's unfragmented message frame (unmasked, RFC
6455 §5.1), as wsproto's ``send`` does for an open connection without extensions.
"""

from __future__ import annotations

import struct
from typing import Final

from wsproto.connection import Connection, ConnectionState

TEXT: Final = 0x1
BINARY: Final = 0x2
PING: Final = 0x9
PONG: Final = 0xA

#: The first byte of the frames read here (FIN set, no reserved bit) and their opcode.
_OPCODE_OF: Final = {0x80 | op: op for op in (TEXT, BINARY, PING, PONG)}

#: A ping frame with no payload, as a server sends it.
PING_FRAME: Final = bytes((0x80 | PING, 0))

_U16: Final = struct.Struct("!BBH")
_U64: Final = struct.Struct("!BBQ")

#: One received frame: its opcode, its payload (``str`` for text), and the offset just
#: past it in the bytes it was read from.
Frame = tuple[int, str | bytes, int]


def split_frames(data: bytes | bytearray) -> tuple[list[Frame], int]:
    """The complete common frames at the start of ``data``, and where they end.

    ``data[end:]`` is what wsproto has to read: empty when every byte was a common,
    complete frame.
    """
    frames: list[Frame] = []
    pos, size = 0, len(data)
    opcode_of = _OPCODE_OF
    while size - pos >= 6:  # the shortest masked frame: 2 bytes of header, 4 of mask
        opcode = opcode_of.get(data[pos])
        second = data[pos + 1]
        if opcode is None or second < 0x80:  # not a common frame, or not masked
            break
        length = second & 0x7F
        key_at = pos + 2
        if length == 126:  # (the two length bytes are there: at least 6 bytes are)
            if opcode >= PING:  # a control frame over 125 bytes
                break
            length = (data[key_at] << 8) | data[key_at + 1]
            if length < 126:  # not the minimal encoding: wsproto refuses it
                break
            key_at += 2
        elif length == 127:
            break
        start = key_at + 4
        end = start + length
        if end > size:
            break
        payload = _unmask(data[key_at:start], data[start:end])
        if opcode == TEXT:
            try:
                frames.append((opcode, payload.decode(), end))
            except UnicodeDecodeError:
                break
        else:
            frames.append((opcode, payload, end))
        pos = end
    return frames, pos


def _unmask(key: bytes | bytearray, masked: bytes | bytearray) -> bytes:
    """RFC 6455 §5.3: each byte XOR the key's byte at its offset mod 4 (as one big int)."""
    length = len(masked)
    if not length:
        return b""
    mask = (key * ((length + 3) >> 2))[:length]
    value = int.from_bytes(masked, "little") ^ int.from_bytes(mask, "little")
    return value.to_bytes(length, "little")


def pong_frame(payload: bytes) -> bytes:
    """The server's answer to a ping with ``payload`` (at most 125 bytes)."""
    return bytes((0x80 | PONG, len(payload))) + payload


def server_frame(message: str | bytes) -> bytes:
    """One final, unmasked text (``str``) or binary frame holding ``message``."""
    if isinstance(message, str):
        payload, first = message.encode(), 0x80 | TEXT
    else:
        payload, first = message, 0x80 | BINARY
    length = len(payload)
    if length < 126:
        return bytes((first, length)) + payload
    if length < 0x10000:
        return _U16.pack(first, 126, length) + payload
    return _U64.pack(first, 127, length) + payload


def at_frame_boundary(connection: Connection | None) -> bool:
    """True when wsproto would read the next bytes as the start of a new frame.

    (Open, no extension, no partial frame buffered, no fragmented message in
    progress, no fragmented message being sent.) Reads wsproto's internals, so any
    doubt is a no: then wsproto reads everything, as it did without this module.
    """
    if connection is None or connection.state is not ConnectionState.OPEN:
        return False
    try:
        proto = connection._proto
        decoder = proto._frame_decoder
        idle = (
            not proto.extensions
            and decoder.header is None
            and not decoder.buffer.buffer
            and proto._message_decoder.opcode is None
            and proto._outbound_opcode is None
        )
    except AttributeError:  # another wsproto than the one this was written against
        return False
    return idle
