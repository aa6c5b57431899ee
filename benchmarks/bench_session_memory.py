"""RSS per idle announced session when sessions arrive one after another (a script).

``bench_frames.py --idle`` opens every connection at once, so the RSS it reads keeps the
high-water mark of all the handshakes in flight together. This one opens ``--sessions``
sessions one after another through the service's real stream handler, over in-memory
streams (the client in the same process), each announced once, and prints the RSS per
session after a warm-up: what an idle session holds for good (server and client together).

    python benchmarks/bench_session_memory.py --sessions 3000
    PYTHONPATH=/tmp/before python benchmarks/bench_session_memory.py   # another tree
"""

from __future__ import annotations

import argparse
import gc
import sys

import orjson
import trio
import trio.testing
from trio_websocket import wrap_client_stream

import scheduler
from scheduler.protocol import SUBPROTOCOL
from scheduler.service import SchedulerService, ServiceConfig


def rss_kb() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS in /proc/self/status")


async def measure(sessions: int, warmup: int) -> float:
    limit = 2 * (sessions + warmup)
    config = ServiceConfig(
        entrypoints=False,
        max_sessions=limit,
        max_connections=limit,
        max_connections_per_address=limit,
        max_sessions_per_address=limit,
        ping_interval=3600.0,
    )
    service = SchedulerService(config)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(service.run_gc_loops)

        async def open_one(n: int) -> None:
            client_stream, server_stream = trio.testing.memory_stream_pair()
            nursery.start_soon(service.handle_stream, server_stream)
            ws = await wrap_client_stream(
                nursery, client_stream, "scheduler.test", "/ws", subprotocols=[SUBPROTOCOL]
            )
            host = {"hostname": f"h{n}", "ip": f"10.{n >> 16 & 255}.{n >> 8 & 255}.{n & 255}"}
            host |= {"port": 8002, "download_port": 8001}
            announce = {"type": "announce_host", "id": 1, "host": host, "interval": 3600}
            await ws.send_message(orjson.dumps(announce).decode())
            await ws.get_message()

        for n in range(warmup):
            await open_one(n)
        gc.collect()
        before = rss_kb()
        for n in range(warmup, warmup + sessions):
            await open_one(n)
        await trio.sleep(1.0)
        gc.collect()
        after = rss_kb()
        nursery.cancel_scope.cancel()
    return (after - before) / sessions


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=3_000)
    parser.add_argument("--warmup", type=int, default=200)
    args = parser.parse_args()
    per_session = trio.run(measure, args.sessions, args.warmup)
    print(f"scheduler from {scheduler.__file__}")
    print(f"SUMMARY {args.sessions} sessions one after another: {per_session:.2f} KB each")
    return 0


if __name__ == "__main__":
    sys.exit(main())
