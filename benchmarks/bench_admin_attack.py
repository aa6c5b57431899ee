"""Admin views under attack: do large task views stall the sessions? (a script, not a test)

It starts ``scheduler serve`` in a subprocess and, over ordinary WebSocket
messages, builds one task of about 30,000 peers:

* a parent chain of ``--chain`` peers (300), one per host, whose ids *descend*
  along the chain (the deepest peer has the smallest id). Each chain host
  announces ``concurrent_upload_limit = 1``, so once a peer is handed out as a
  parent its host has no free slot, and the next peer registered gets the
  newest chain peer alone as its parent;
* ``--idle`` idle peers (29,500) on ``--idle-hosts`` hosts, registered after the
  chain, that never report anything.

Then a second process opens a **canary** session that re-announces its host
every ``--canary-period`` (20 ms) and times each round trip, and
``--references`` (10) announced, idle sessions that only answer pings; while
they run, this process GETs ``graph.svg``, the task detail and the task's peer
listing ``--rounds`` times. Printed: each GET's duration, the canary's worst and
p99 round trip, and how many sessions the server dropped.

    python benchmarks/bench_admin_attack.py
    python benchmarks/bench_admin_attack.py --chain 300 --idle 29500 --rounds 10

The reference sessions are the client library's (``open_scheduler_session``):
like ``scheduler peer``, each pings the scheduler and gives a session up when no
pong comes within ``ping_interval + ping_timeout`` (5.4 s). The server is
whatever ``python -m scheduler`` imports: run the script from outside the
checkout with ``PYTHONPATH=DIR`` to measure another tree.
"""

from __future__ import annotations

import argparse
import math
import os
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from collections.abc import Sequence
from typing import Any

import orjson
import trio
from trio_websocket import ConnectionClosed, WebSocketConnection, open_websocket_url

from scheduler.client import SessionLost, open_scheduler_session
from scheduler.protocol import HostPayload

SUBPROTOCOL = "scheduler.v1"
TASK_ID = "attack"
TASK = {"id": TASK_ID, "total_piece_count": 4}


class Client:
    """One session: requests by id, everything else (pushes) drained and dropped."""

    def __init__(self, ws: WebSocketConnection) -> None:
        self.ws = ws
        self.waiting: dict[object, trio.MemorySendChannel[dict[str, Any]]] = {}
        self.next_id = 1
        self.closed = False

    async def drain(self) -> None:
        try:
            while True:
                message = orjson.loads(await self.ws.get_message())
                channel = self.waiting.pop(message.get("id"), None)
                if channel is not None:
                    channel.send_nowait(message)
        except ConnectionClosed:
            self.closed = True

    async def request(self, message: dict[str, Any]) -> dict[str, Any]:
        request_id = self.next_id
        self.next_id += 1
        send, receive = trio.open_memory_channel[dict[str, Any]](1)
        self.waiting[request_id] = send
        await self.ws.send_message(orjson.dumps({**message, "id": request_id}).decode())
        with trio.fail_after(120):
            return await receive.receive()


async def open_client(
    nursery: trio.Nursery, url: str, hostname: str, ip: str, upload_limit: int = 50
) -> Client:
    ws = await nursery.start(_hold, url)
    client = Client(ws)
    nursery.start_soon(client.drain)
    host = {
        "hostname": hostname,
        "ip": ip,
        "port": 8002,
        "download_port": 8001,
        "concurrent_upload_limit": upload_limit,
    }
    reply = await client.request({"type": "announce_host", "host": host, "interval": 3600.0})
    assert reply["type"] == "host_accepted", reply
    return client


async def _hold(url: str, task_status: trio.TaskStatus[WebSocketConnection]) -> None:
    async with open_websocket_url(url, subprotocols=[SUBPROTOCOL], connect_timeout=30) as ws:
        task_status.started(ws)
        await trio.sleep_forever()


def address(n: int, base: int) -> str:
    return f"10.{base}.{n // 250}.{n % 250 + 1}"


async def build(nursery: trio.Nursery, url: str, chain: int, idle: int, idle_hosts: int) -> None:
    started = time.perf_counter()
    for k in range(chain):
        client = await open_client(nursery, url, f"chain-{k}", address(k, 1), upload_limit=1)
        peer_id = f"chain-{chain - 1 - k:05d}"  # descending along the chain
        reply = await client.request({"type": "register_peer", "peer_id": peer_id, "task": TASK})
        if k == 0:
            assert reply["action"] == "back_to_source", reply
            await client.request({"type": "back_to_source", "peer_id": peer_id})
            parent = None
        else:
            # A decision samples 15 of the task's feeders; only the newest chain peer
            # has a free upload slot, so ask again until the sample holds it.
            # After a few tries the scheduler says back_to_source: leave, register again.
            register = {"type": "register_peer", "peer_id": peer_id, "task": TASK}
            while reply["action"] != "parents":
                if reply["action"] == "wait":
                    reply = await client.request({"type": "reschedule", "peer_id": peer_id})
                else:
                    await client.request({"type": "leave_peer", "peer_id": peer_id})
                    reply = await client.request(register)
            assert reply["action"] == "parents", reply
            (parent,) = [p["peer_id"] for p in reply["parents"]]
            await client.request({"type": "download_started", "peer_id": peer_id})
        pieces = {"type": "pieces_finished", "peer_id": peer_id, "pieces": [0]}
        if parent is not None:
            pieces["parent_id"] = parent
        assert (await client.request(pieces))["type"] == "ack"
    per_host = math.ceil(idle / idle_hosts)
    for h in range(idle_hosts):
        client = await open_client(nursery, url, f"idle-{h}", address(h, 2))
        count = min(per_host, idle - h * per_host)
        for first in range(0, count, 400):  # a frame stays under 64 KiB
            messages = [
                {"type": "register_peer", "id": i, "peer_id": f"idle-{h}-{i:05d}", "task": TASK}
                for i in range(first, min(count, first + 400))
            ]
            reply = await client.request({"type": "batch", "messages": messages})
            errors = [r for r in reply["replies"] if r["type"] == "error"]
            assert not errors, errors[:3]
            await trio.sleep(len(messages) / 900)  # stay under the default message rate
    print(f"built: {chain} chain + {idle} idle peers in {time.perf_counter() - started:.1f} s")


def get(url: str) -> tuple[int, int, float]:
    """(status, body bytes, seconds) of one GET."""
    started = time.perf_counter()
    with urllib.request.urlopen(url, timeout=600) as response:
        body = response.read()
        status = response.status
    return status, len(body), time.perf_counter() - started


def start_canary(args: argparse.Namespace, ws_url: str) -> subprocess.Popen[str]:
    """The canary and reference sessions, in a process of their own."""
    return subprocess.Popen(
        [
            sys.executable,
            __file__,
            "--canary",
            ws_url,
            "--references",
            str(args.references),
            "--canary-period",
            str(args.canary_period),
        ],
        stdout=subprocess.PIPE,
        stdin=subprocess.PIPE,
        text=True,
    )


async def attack(args: argparse.Namespace, admin: str, ws_url: str) -> None:
    task = urllib.parse.quote(TASK_ID, safe="")
    views = {
        "graph.svg": f"{admin}/api/v1/tasks/{task}/graph.svg",
        "task detail": f"{admin}/api/v1/tasks/{task}",
        "peer listing": f"{admin}/api/v1/peers?task={task}",
    }
    canary = start_canary(args, ws_url)
    assert canary.stdout is not None
    assert canary.stdin is not None
    assert canary.stdout.readline().strip() == "ready"
    await trio.sleep(1.0)  # a quiet second: the canary's baseline
    durations: dict[str, list[float]] = {name: [] for name in views}
    for _ in range(args.rounds):
        for name, url in views.items():
            status, size, seconds = await trio.to_thread.run_sync(get, url)
            assert status == 200, (name, status)
            durations[name].append(seconds)
            print(f"GET {name}: {seconds * 1000:.0f} ms, {size} bytes")
    await trio.sleep(1.0)
    canary.stdin.close()
    result = orjson.loads(canary.stdout.read())
    canary.wait()
    print()
    for name, values in durations.items():
        print(
            f"{name:12} GET: worst {max(values) * 1000:.0f} ms, median "
            f"{sorted(values)[len(values) // 2] * 1000:.0f} ms over {len(values)}"
        )
    print(
        f"canary round trips: {result['count']}, worst {result['worst_ms']:.1f} ms, "
        f"p99 {result['p99_ms']:.1f} ms, median {result['p50_ms']:.1f} ms"
    )
    print(f"sessions dropped: {result['dropped']} of {result['sessions']} (canary + references)")
    for reason in result["lost"]:
        print(f"  lost: {reason}")


async def run_canary(url: str, references: int, period: float) -> None:
    """The canary's process: round trips until stdin closes, then a JSON summary."""
    trips: list[float] = []
    async with trio.open_nursery() as nursery:
        canary = await open_client(nursery, url, "canary", "10.9.0.1")
        done = trio.Event()
        lost: list[str] = []
        opened = 0

        async def reference(i: int, task_status: trio.TaskStatus[None]) -> None:
            """A reference client's session: it pings the scheduler and gives up on
            the session when no pong comes within the silence the scheduler tolerates."""
            nonlocal opened
            host = HostPayload(
                hostname=f"reference-{i}", ip=f"10.9.1.{i + 1}", port=1, download_port=2
            )
            try:
                async with open_scheduler_session(url, host, interval=30.0):
                    opened += 1
                    task_status.started()
                    await done.wait()
            except SessionLost as exc:
                lost.append(str(exc))

        for i in range(references):
            await nursery.start(reference, i)
        print("ready", flush=True)

        async def wait_stdin() -> None:
            await trio.to_thread.run_sync(sys.stdin.read)
            done.set()

        nursery.start_soon(wait_stdin)
        host = {"hostname": "canary", "ip": "10.9.0.1", "port": 8002, "download_port": 8001}
        announce = {"type": "announce_host", "host": host, "interval": 3600.0}
        while not done.is_set() and not canary.closed:
            started = time.perf_counter()
            try:
                await canary.request(announce)
            except (ConnectionClosed, trio.TooSlowError):
                break
            trips.append(time.perf_counter() - started)
            await trio.sleep(period)
        await trio.sleep(0.5)
        dropped = int(canary.closed) + len(lost)
        ordered = sorted(trips)
        summary = {
            "count": len(trips),
            "worst_ms": ordered[-1] * 1000,
            "p99_ms": ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))] * 1000,
            "p50_ms": ordered[len(ordered) // 2] * 1000,
            "dropped": dropped,
            "sessions": 1 + opened,
            "lost": lost[:3],
        }
        sys.stdout.write(orjson.dumps(summary).decode())
        sys.stdout.flush()
        nursery.cancel_scope.cancel()


def start_server() -> tuple[subprocess.Popen[str], str, str]:
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "scheduler",
            "serve",
            "--port",
            "0",
            "--admin-port",
            "0",
            "--log-level",
            "warning",
            "--max-connections-per-address",
            "2000",
            "--max-sessions-per-address",
            "2000",
        ],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        cwd=tempfile.gettempdir(),  # not the checkout: PYTHONPATH decides which tree runs
    )
    assert server.stdout is not None
    line = server.stdout.readline().split()
    # scheduler listening: peers ws://... admin http://...
    return server, line[3], line[5]


async def main_async(args: argparse.Namespace) -> None:
    server, ws_url, admin = start_server()
    try:
        async with trio.open_nursery() as nursery:
            await build(nursery, ws_url, args.chain, args.idle, args.idle_hosts)
            await attack(args, admin, ws_url)
            nursery.cancel_scope.cancel()
    finally:
        server.terminate()
        server.wait(timeout=30)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--chain", type=int, default=300)
    parser.add_argument("--idle", type=int, default=29_500)
    parser.add_argument("--idle-hosts", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--references", type=int, default=10)
    parser.add_argument("--canary-period", type=float, default=0.02)
    parser.add_argument("--canary", metavar="WS_URL", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.canary:
        trio.run(run_canary, args.canary, args.references, args.canary_period)
        return 0
    trio.run(main_async, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
