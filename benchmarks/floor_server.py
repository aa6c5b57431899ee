"""The floor of our stack: a bare trio-websocket server that parses and answers, nothing else.

It accepts WebSocket sessions on ``/ws`` (selecting the ``scheduler.v1`` subprotocol when
offered), parses each text frame with orjson and sends a fixed reply of the shape the
scheduler sends: ``host_accepted`` with the request's ``id`` (a ``batch`` frame gets a
``batch`` reply with one ``ack`` per item, so batch loads have a floor too). No session
rules, no state, no pings: what ``scheduler serve`` costs above this is our own code.

    python benchmarks/floor_server.py --port 0
    floor listening: ws://127.0.0.1:PORT/ws        (the first line on stdout)

``nox -s bench-compare`` drives it side by side with ``scheduler serve`` and
bittorrent-tracker; ``scheduler loadgen --url ws://127.0.0.1:PORT/ws`` drives it alone.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import resource
import sys
from typing import Any

import orjson
import trio
from trio_websocket import ConnectionClosed, WebSocketRequest, serve_websocket

SUBPROTOCOL = "scheduler.v1"
_REPLY: dict[str, Any] = {
    "type": "host_accepted",
    "host_id": "127.0.0.1-floor",
    "ttl": 7200,
    "ping_interval": 5,
    "ping_timeout": 5,
    "reconnect_grace": 5,
}


def reply_to(frame: str | bytes) -> bytes:
    """The fixed reply to one frame (``invalid_message``-shaped error for non-JSON)."""
    try:
        message = orjson.loads(frame)
    except orjson.JSONDecodeError:
        return orjson.dumps({"type": "error", "code": "invalid_message", "message": "bad JSON"})
    request_id = message.get("id") if isinstance(message, dict) else None
    if isinstance(message, dict) and message.get("type") == "batch":
        items = message.get("messages")
        count = len(items) if isinstance(items, list) else 0
        replies = [{"type": "ack", "id": item.get("id")} for item in (items or [])[:count]]
        return orjson.dumps({"type": "batch", "id": request_id, "replies": replies})
    return orjson.dumps({**_REPLY, "id": request_id})


async def handler(request: WebSocketRequest) -> None:
    try:
        if request.path.split("?", 1)[0] != "/ws":
            await request.reject(404, body=b"the floor server serves /ws only\n")
            return
        offered = request.proposed_subprotocols
        ws = await request.accept(subprotocol=SUBPROTOCOL if SUBPROTOCOL in offered else None)
        while True:
            frame = await ws.get_message()
            await ws.send_message(reply_to(frame).decode())
    except* ConnectionClosed:
        pass  # the client left; one session's end never reaches the server's nursery
    except* Exception as group:  # pragma: no cover - a bug here must not stop the server
        print(f"floor server: session failed: {group!r}", file=sys.stderr)


async def serve(host: str, port: int) -> None:
    async with trio.open_nursery() as nursery:
        server = await nursery.start(
            functools.partial(serve_websocket, handler, host, port, None, connect_timeout=10)
        )
        print(f"floor listening: ws://{host}:{server.port}/ws", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0: the kernel picks (default)")
    args = parser.parse_args(argv)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C: a quiet stop
        trio.run(serve, args.host, args.port)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
