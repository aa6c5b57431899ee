"""RFC 6455 conformance of the peers' port, in the spirit of the Autobahn testsuite.

Autobahn's own runner needs Python 2; its sections 1-7 and 9 are written here as
cases against the real server (``scheduler serve``'s service on loopback), each over
both ways bytes reach the connection: plain TCP (the shared reader feeds it) and TLS
(the session's reader task feeds it). A handwritten client sends exactly the bytes of
the case and reads everything the server sends until it closes the TCP connection.
"""

from __future__ import annotations

import ssl
import struct
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import attrs
import orjson
import pytest
import trio

from scheduler.service import ServiceConfig

from .service_support import LOOPBACK, MASK, host_payload, serving, upgrade_head

CONTINUATION, TEXT, BINARY, CLOSE, PING, PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
#: The server's limit in these tests: 65,536-byte messages fit, larger ones do not.
MAX_MESSAGE = 70_000
CONFIG = attrs.evolve(LOOPBACK, max_message_size=MAX_MESSAGE)
#: Frames one message may span (scheduler.service._connections.MAX_FRAMES).
MAX_FRAMES = 1024


def frame(
    opcode: int, payload: bytes = b"", *, fin: bool = True, rsv: int = 0, masked: bool = True
) -> bytes:
    """One client frame, any length (7-bit, 16-bit or 64-bit), masked unless told."""
    first = (0x80 if fin else 0) | rsv << 4 | opcode
    mask_bit = 0x80 if masked else 0
    length = len(payload)
    if length < 126:
        head = bytes((first, mask_bit | length))
    elif length < 0x10000:
        head = bytes((first, mask_bit | 126)) + struct.pack("!H", length)
    else:
        head = bytes((first, mask_bit | 127)) + struct.pack("!Q", length)
    if not masked:
        return head + payload
    key = (MASK * (length // 4 + 1))[:length]
    masked_payload = (int.from_bytes(payload, "big") ^ int.from_bytes(key, "big")).to_bytes(
        length, "big"
    )
    return head + MASK + masked_payload


def announce(size: int | None = None, *, text: str = "alpha") -> bytes:
    """An ``announce_host`` (which gets a reply), padded with JSON whitespace to ``size``."""
    body = orjson.dumps({"type": "announce_host", "id": 1, "host": host_payload(text)})
    if size is not None:
        assert size >= len(body)
        body += b" " * (size - len(body))
    return body


def close_body(code: int, reason: bytes = b"") -> bytes:
    return struct.pack("!H", code) + reason


def fragments(message: bytes, size: int, opcode: int = TEXT) -> bytes:
    """``message`` as frames of ``size`` bytes: the first ``opcode``, then continuations."""
    parts = [message[i : i + size] for i in range(0, len(message), size)]
    return b"".join(
        frame(opcode if n == 0 else CONTINUATION, part, fin=n == len(parts) - 1)
        for n, part in enumerate(parts)
    )


@attrs.frozen
class Expect:
    """What the server sends back: ``replies`` text messages and ``pongs`` (in any
    order), then, if ``close`` is set, a close frame with that code (None: an empty
    body) and the TCP close; without ``close`` the connection stays open (the test then
    closes it with 1000, which the server echoes)."""

    replies: int = 0
    pongs: tuple[bytes, ...] = ()
    close: int | str | None = "open"


OPEN = "open"

#: name -> (bytes the client sends after the handshake, what the server answers).
CASES: dict[str, tuple[bytes, Expect]] = {
    # 1. Framing: text and binary messages at the length encodings' edges.
    **{
        f"1 text message of {size} bytes": (frame(TEXT, announce(size)), Expect(replies=1))
        for size in (125, 126, 127, 65535, 65536)
    },
    "1 a binary message ends the session (the protocol is JSON text): 1003": (
        frame(BINARY, b"\x00\x01"),
        Expect(close=1003),
    ),
    # 2. Pings and pongs.
    "2 a ping's payload is echoed": (frame(PING, b"hello"), Expect(pongs=(b"hello",))),
    "2 an empty ping gets an empty pong": (frame(PING), Expect(pongs=(b"",))),
    "2 a ping of 125 bytes is answered": (frame(PING, b"x" * 125), Expect(pongs=(b"x" * 125,))),
    "2 a ping of 126 bytes is a protocol error": (frame(PING, b"x" * 126), Expect(close=1002)),
    "2 an unsolicited pong is ignored": (
        frame(PONG, b"unasked") + frame(TEXT, announce()),
        Expect(replies=1),
    ),
    "2 ten pings in one write get ten pongs in order": (
        b"".join(frame(PING, str(n).encode()) for n in range(10)),
        Expect(pongs=tuple(str(n).encode() for n in range(10))),
    ),
    # 3. Reserved bits.
    **{
        f"3 reserved bits {rsv} close 1002": (frame(TEXT, announce(), rsv=rsv), Expect(close=1002))
        for rsv in range(1, 8)
    },
    "3 reserved bits behind a good message: its reply, then 1002": (
        frame(TEXT, announce()) + frame(PING, rsv=2),
        Expect(replies=1, close=1002),
    ),
    # 4. Opcodes.
    **{
        f"4 reserved opcode {opcode:#x} closes 1002": (frame(opcode, b"x"), Expect(close=1002))
        for opcode in (3, 4, 5, 6, 7, 0xB, 0xC, 0xD, 0xE, 0xF)
    },
    "4 an unmasked client frame closes 1002": (
        frame(TEXT, announce(), masked=False),
        Expect(close=1002),
    ),
    # 5. Fragmentation.
    "5 a message in 1-byte fragments": (fragments(announce(), 1), Expect(replies=1)),
    "5 a message in two fragments": (fragments(announce(), 100), Expect(replies=1)),
    "5 a ping between fragments is answered first": (
        frame(TEXT, announce()[:10], fin=False)
        + frame(PING, b"between")
        + frame(CONTINUATION, announce()[10:]),
        Expect(replies=1, pongs=(b"between",)),
    ),
    "5 a pong between fragments is ignored": (
        frame(TEXT, announce()[:10], fin=False)
        + frame(PONG, b"between")
        + frame(CONTINUATION, announce()[10:]),
        Expect(replies=1),
    ),
    "5 a continuation with no message closes 1002": (
        frame(CONTINUATION, announce()),
        Expect(close=1002),
    ),
    "5 a new text frame inside a fragmented message closes 1002": (
        frame(TEXT, announce()[:10], fin=False) + frame(TEXT, announce()),
        Expect(close=1002),
    ),
    "5 a fragmented ping closes 1002": (frame(PING, b"x", fin=False), Expect(close=1002)),
    "5 a fragmented close closes 1002": (
        frame(CLOSE, close_body(1000), fin=False),
        Expect(close=1002),
    ),
    # 6. UTF-8.
    "6 invalid UTF-8 in one frame closes 1007": (
        frame(TEXT, b'{"type": "\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80"}'),
        Expect(close=1007),
    ),
    "6 invalid UTF-8 across fragments closes 1007": (
        frame(TEXT, b'{"type": "\xce\xba', fin=False) + frame(CONTINUATION, b"\xed\xa0\x80"),
        Expect(close=1007),
    ),
    "6 invalid UTF-8 closes at its first fragment, before the message ends": (
        frame(TEXT, b'{"type": "\xff', fin=False),
        Expect(close=1007),
    ),
    "6 a code point split across fragments is read whole": (
        fragments(announce(text="alpha-\u00e9\u20ac"), 1),
        Expect(replies=1),
    ),
    # 7. Close handling.
    "7 an empty close is answered with an empty close": (frame(CLOSE), Expect(close=None)),
    "7 a close body of one byte closes 1002": (frame(CLOSE, b"\x03"), Expect(close=1002)),
    "7 a close reason that is not UTF-8 closes 1007": (
        frame(CLOSE, close_body(1000, b"\xff\xfe")),
        Expect(close=1007),
    ),
    **{
        f"7 an invalid close code {code} gets 1002": (
            frame(CLOSE, close_body(code)),
            Expect(close=1002),
        )
        for code in (0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535)
    },
    **{
        f"7 close code {code} is echoed": (
            frame(CLOSE, close_body(code, b"bye")),
            Expect(close=code),
        )
        for code in (1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 3000, 3999, 4000, 4999)
    },
    "7 data after a close is ignored": (
        frame(CLOSE, close_body(1000)) + frame(TEXT, announce()) + frame(PING, b"late"),
        Expect(close=1000),
    ),
    "7 a message before a close is answered before the echo": (
        frame(TEXT, announce()) + frame(CLOSE, close_body(1000)),
        Expect(replies=1, close=1000),
    ),
    # 9. Limits.
    "9 a message over max_message_size closes 1009": (
        frame(TEXT, announce(MAX_MESSAGE + 1)),
        Expect(close=1009),
    ),
    "9 fragments over max_message_size together close 1009": (
        fragments(announce(MAX_MESSAGE + 1), 10_000),
        Expect(close=1009),
    ),
    "9 a message of max frames is read": (
        fragments(announce(MAX_FRAMES), 1),
        Expect(replies=1),
    ),
    "9 a message over max frames closes 1009": (
        fragments(announce(MAX_FRAMES + 1), 1),
        Expect(close=1009),
    ),
}


@asynccontextmanager
async def connected(
    config: ServiceConfig, context: ssl.SSLContext | None
) -> AsyncIterator[trio.abc.Stream]:
    async with serving(config) as live:
        host, port = live.ws_address
        stream: trio.abc.Stream
        if context is None:
            stream = await trio.open_tcp_stream(host, port)
        else:
            stream = await trio.open_ssl_over_tcp_stream(host, port, ssl_context=context)
        async with stream:
            await stream.send_all(upgrade_head("/ws").encode())
            head = bytearray()
            while b"\r\n\r\n" not in head:
                head += await stream.receive_some()
            assert head.startswith(b"HTTP/1.1 101 ")
            yield stream


class Frames:
    """The server's frames off a raw stream, until its TCP close."""

    def __init__(self, stream: trio.abc.Stream) -> None:
        self.stream = stream
        self.data = bytearray()
        self.ended = False

    def _split(self) -> tuple[int, bytes] | None:
        data = self.data
        if len(data) < 2:
            return None
        assert data[1] & 0x80 == 0, "a server frame must not be masked"
        assert data[0] & 0xF0 == 0x80, "a server frame is final, with no reserved bit"
        length, start = data[1] & 0x7F, 2
        if length == 126:
            length, start = int.from_bytes(data[2:4], "big"), 4
        elif length == 127:
            length, start = int.from_bytes(data[2:10], "big"), 10
        if len(data) < start or len(data) < start + length:
            return None
        got = (data[0] & 0x0F, bytes(data[start : start + length]))
        del data[: start + length]
        return got

    async def next(self) -> tuple[int, bytes] | None:
        """The next frame (opcode, payload), or None at the TCP close."""
        while True:
            data = self.data
            got = self._split()
            if got is not None:
                return got
            if self.ended:
                assert not data, f"bytes after the last frame: {bytes(data)!r}"
                return None
            try:
                chunk = await self.stream.receive_some()
            except trio.BrokenResourceError:  # TLS without close_notify, or a reset
                chunk = b""
            if not chunk:
                self.ended = True
            data += chunk


@pytest.fixture(params=["tcp", "tls"])
def transport(
    request: pytest.FixtureRequest, tls_files: tuple[str, str, ssl.SSLContext]
) -> tuple[ServiceConfig, ssl.SSLContext | None]:
    if request.param == "tcp":
        return CONFIG, None
    cert, key, context = tls_files
    return attrs.evolve(CONFIG, tls_cert_file=cert, tls_key_file=key), context


@pytest.mark.parametrize("case", list(CASES))
async def test_rfc6455(case: str, transport: tuple[ServiceConfig, ssl.SSLContext | None]) -> None:
    data, expect = CASES[case]
    config, context = transport
    with trio.fail_after(30):
        async with connected(config, context) as stream:
            await stream.send_all(data)
            frames = Frames(stream)
            replies, pongs = 0, []
            closing: tuple[int, bytes] | None = None
            while expect.close == OPEN and (
                replies < expect.replies or len(pongs) < len(expect.pongs)
            ):
                got = await frames.next()
                assert got is not None, "the server closed"
                if got[0] == TEXT:
                    replies += 1
                elif got[0] == PONG:
                    pongs.append(got[1])
                else:
                    raise AssertionError(f"unexpected frame {got}")
            if expect.close == OPEN:
                await stream.send_all(frame(CLOSE, close_body(1000)))
            while (got := await frames.next()) is not None:
                assert closing is None, f"a frame after the close frame: {got}"
                if got[0] == TEXT:
                    replies += 1
                elif got[0] == PONG:
                    pongs.append(got[1])
                elif got[0] == CLOSE:
                    closing = got
                else:
                    raise AssertionError(f"unexpected frame {got}")
            assert closing is not None, "the TCP connection closed without a close frame"
            assert (replies, pongs) == (expect.replies, list(expect.pongs))
            payload = closing[1]
            if expect.close is None:
                assert payload == b""
            else:
                code = 1000 if expect.close == OPEN else expect.close
                assert struct.unpack("!H", payload[:2])[0] == code
