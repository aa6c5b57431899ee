"""The floor of our stack: a bare trio-websocket server (a script, not a test).

Each text frame is parsed with ``orjson`` and answered with one fixed reply; there
is no session, no state, no metrics. ``scheduler serve`` on the same load is
compared against it (``bench_frames.py``, ``nox -s bench-compare``).

    python benchmarks/floor_server.py --port 0     # prints "floor listening: ws://127.0.0.1:PORT/ws"
"""

from __future__ import annotations

import argparse
import functools
import resource

import orjson
import trio
from trio_websocket import ConnectionClosed, WebSocketRequest, serve_websocket

#: What every frame gets back: a ``host_accepted`` of fixed content.
REPLY = orjson.dumps(
    {"type": "host_accepted", "id": 0, "host_id": "floor", "ping_interval": 5, "ping_timeout": 5}
).decode()


async def handler(request: WebSocketRequest) -> None:
    ws = await request.accept()
    try:
        while True:
            orjson.loads(await ws.get_message())
            await ws.send_message(REPLY)
    except ConnectionClosed:
        pass


async def main(host: str, port: int) -> None:
    async with trio.open_nursery() as nursery:
        serve = functools.partial(
            serve_websocket, handler, host, port, None, handler_nursery=nursery
        )
        server = await nursery.start(serve)
        print(f"floor listening: ws://{host}:{server.port}/ws", flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    trio.run(main, args.host, args.port)
