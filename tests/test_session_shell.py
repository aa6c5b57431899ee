"""The trio session shell: frames are handled in the connection's reader task, in order."""

from __future__ import annotations

import os
import struct

import orjson
import trio
import trio.testing
from trio.testing import MockClock
from wsproto import ConnectionType, WSConnection
from wsproto.events import AcceptConnection, Request, TextMessage

from scheduler.protocol import SUBPROTOCOL
from tests.service_support import Harness, host_payload


def masked_text_frame(text: str) -> bytes:
    """One client text frame (masked, as RFC 6455 requires of clients)."""
    payload, mask = text.encode(), os.urandom(4)
    size = len(payload)
    head = (
        bytes([0x81, 0x80 | size]) if size < 126 else bytes([0x81, 0xFE]) + struct.pack("!H", size)
    )
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


async def test_frames_in_one_read_are_answered_in_order(
    autojump_clock: MockClock, harness: Harness
) -> None:
    client, server_stream = trio.testing.memory_stream_pair()
    harness.nursery.start_soon(harness.service.handle_stream, server_stream)
    ws = WSConnection(ConnectionType.CLIENT)
    await client.send_all(
        ws.send(Request(host="scheduler.test", target="/ws", subprotocols=[SUBPROTOCOL]))
    )
    frames = [
        {"type": "announce_host", "id": n, "host": host_payload(), "interval": 60}
        for n in range(1, 6)
    ]
    replies: list[dict[str, object]] = []
    with trio.fail_after(10):
        while len(replies) < len(frames):
            ws.receive_data(await client.receive_some())
            for event in ws.events():
                if isinstance(event, AcceptConnection):
                    # Every frame in one write, sent the moment the handshake is done.
                    data = b"".join(masked_text_frame(orjson.dumps(f).decode()) for f in frames)
                    await client.send_all(data)
                    continue
                assert isinstance(event, TextMessage), event
                replies.append(orjson.loads(event.data))
    assert [(r["type"], r["id"]) for r in replies] == [("host_accepted", n) for n in range(1, 6)]
    await client.aclose()
