"""The candidate engines of the server's connection, in process: one frame in, one out.

A script that prints numbers, never a timed test. For each engine, the time to read one
masked 160-byte text frame (an ``announce_host``) and write one text frame, over the
public API of each: our own :class:`scheduler.transport.ServerConnection`, wsproto's
``WSConnection`` (the engine under trio-websocket) and the ``websockets`` library's
sans-IO ``ServerProtocol`` (with its C-accelerated masking). Alternating rounds, the
best of each; the ratios are what to compare.

    python benchmarks/bench_codec.py
"""

from __future__ import annotations

import argparse
import os
import statistics
import timeit
from collections.abc import Callable

from websockets.server import ServerProtocol
from wsproto import ConnectionType, WSConnection
from wsproto.events import AcceptConnection, TextMessage

from scheduler.transport import Message, ServerConnection

PAYLOAD = (
    '{"type":"announce_host","id":1,"host":{"hostname":"h1","ip":"10.0.0.1",'
    '"port":8002,"download_port":8001},"interval":30,"pad":"' + "x" * 40 + '"}'
)
HEAD = (
    b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
)


def client_frame(text: str) -> bytes:
    data, key = text.encode(), os.urandom(4)
    assert 126 <= len(data) < 0x10000
    masked = bytes(b ^ key[i % 4] for i, b in enumerate(data))
    return bytes((0x81, 0x80 | 126)) + len(data).to_bytes(2, "big") + key + masked


def engines(frame: bytes) -> dict[str, Callable[[], object]]:
    own = ServerConnection()
    own.receive_data(HEAD)
    own.accept()
    assert own.receive_data(frame) == [Message(PAYLOAD)]

    def run_own() -> None:
        for event in own.receive_data(frame):
            assert type(event) is Message
        own.send(PAYLOAD)

    ws = WSConnection(ConnectionType.SERVER)
    ws.receive_data(HEAD)
    list(ws.events())
    ws.send(AcceptConnection())

    def run_wsproto() -> None:
        ws.receive_data(frame)
        for event in ws.events():
            assert type(event) is TextMessage
        ws.send(TextMessage(data=PAYLOAD))

    protocol = ServerProtocol()
    protocol.receive_data(HEAD)
    (request,) = protocol.events_received()
    protocol.send_response(protocol.accept(request))
    protocol.data_to_send()

    def run_websockets() -> None:
        protocol.receive_data(frame)
        for event in protocol.events_received():
            event.data.decode()
        protocol.send_text(PAYLOAD.encode())
        protocol.data_to_send()

    return {"own codec": run_own, "wsproto": run_wsproto, "websockets": run_websockets}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--number", type=int, default=20000)
    args = parser.parse_args()
    runs = engines(client_frame(PAYLOAD))
    best: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(args.rounds):
        for name, run in runs.items():
            times = timeit.repeat(run, number=args.number, repeat=3)
            best[name].append(min(times) / args.number * 1e6)
    own = statistics.median(best["own codec"])
    for name, samples in best.items():
        median = statistics.median(samples)
        print(
            f"{name:11s} {median:6.2f} µs per frame in and out (median of {args.rounds} rounds)"
            f", {median / own:4.2f} x the own codec"
        )


if __name__ == "__main__":
    main()
