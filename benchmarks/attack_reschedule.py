"""The ``reschedule`` memory attack against a real ``scheduler serve``: RSS before and after.

One authenticated-looking host (no authentication on loopback) registers a peer and
sends ``--frames`` ``reschedule`` frames, each naming ``--ids`` made-up parent ids of
``--id-length`` characters, then ``leave_peer``. The server's RSS is read from
``/proc/PID/status`` before the attack, after it, and after the ``leave_peer``.

    python benchmarks/attack_reschedule.py                       # 1,500 x 100 x 611
    PYTHONPATH=/tmp/before python benchmarks/attack_reschedule.py  # another tree
"""

from __future__ import annotations

import argparse
import sys
import time

import orjson
import trio
from trio_websocket import open_websocket_url

from scheduler.loadgen._procfs import proc_rss_kb
from scheduler.loadgen._server import start_scheduler
from scheduler.protocol import SUBPROTOCOL


async def attack(frames: int, ids: int, id_length: int) -> dict[str, float]:
    server = await start_scheduler(["--message-rate", "100000", "--message-burst", "100000"])
    try:
        async with open_websocket_url(server.url, subprotocols=[SUBPROTOCOL]) as ws:

            async def call(message: dict[str, object]) -> dict[str, object]:
                await ws.send_message(orjson.dumps(message).decode())
                while True:
                    reply = orjson.loads(await ws.get_message())
                    if reply.get("id") == message.get("id"):
                        return dict(reply)

            host = {"hostname": "attacker", "ip": "127.0.0.1", "port": 8002, "download_port": 8001}
            await call({"type": "announce_host", "id": 0, "host": host, "interval": 3600})
            task = {"id": "t", "url": "https://example.invalid/t"}
            await call({"type": "register_peer", "id": 1, "peer_id": "p", "task": task})
            before = proc_rss_kb(server.pid)
            started = time.perf_counter()
            for n in range(frames):
                names = [f"{n:06d}{i:04d}".ljust(id_length, "x") for i in range(ids)]
                reply = await call(
                    {"type": "reschedule", "id": 2 + n, "peer_id": "p", "failed_parents": names}
                )
                if reply.get("type") == "error":
                    raise RuntimeError(f"frame {n} refused: {reply}")
            seconds = time.perf_counter() - started
            await trio.sleep(0.5)
            after = proc_rss_kb(server.pid)
            await call({"type": "leave_peer", "id": frames + 2, "peer_id": "p"})
            await trio.sleep(0.5)
            after_leave = proc_rss_kb(server.pid)
        return {
            "rss_before_mb": before / 1024,
            "rss_after_mb": after / 1024,
            "rss_after_leave_mb": after_leave / 1024,
            "growth_mb": (after - before) / 1024,
            "seconds": seconds,
        }
    finally:
        await server.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=1_500)
    parser.add_argument("--ids", type=int, default=100)
    parser.add_argument("--id-length", type=int, default=611)
    args = parser.parse_args()
    result = trio.run(attack, args.frames, args.ids, args.id_length)
    print(
        f"{args.frames} reschedule frames x {args.ids} made-up ids of {args.id_length} characters"
        f" in {result['seconds']:.1f} s"
    )
    print(
        f"server RSS {result['rss_before_mb']:.1f} MB before, {result['rss_after_mb']:.1f} MB "
        f"after (+{result['growth_mb']:.1f} MB), {result['rss_after_leave_mb']:.1f} MB after "
        "leave_peer"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
