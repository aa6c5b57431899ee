"""Per-frame cost and idle memory of ``scheduler serve`` against the bare trio-websocket floor.

A script that prints numbers, never a timed test. Both servers run on 127.0.0.1 and are
driven by the same load generator (``ws_load.js``, node + the ``ws`` package, so that the
generator is not the bottleneck), in alternating rounds of one run:

* **throughput**: ``--connections`` connections (default 100), one announce in flight
  each, for ``--duration`` seconds per round; the median of ``--rounds`` rounds per
  server and the ratio ``serve / floor``;
* **idle memory** (``--idle N``): N connections, each announced once, then idle; the
  server's ``VmRSS`` before and after, per connection.

    npm install --prefix /tmp/wsload ws            # once
    NODE_PATH=/tmp/wsload/node_modules python benchmarks/bench_frames.py --rounds 5 --idle 2000
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from bench_pings import idle_clients  # noqa: E402
from bench_sessions import (  # noqa: E402
    Lines,
    Server,
    proc_cpu_seconds,
    proc_rss_kb,
    raise_fd_limit,
    stop_process,
)


class Floor:
    """``floor_server.py`` in a subprocess."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(HERE / "floor_server.py"), "--port", "0"],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        self.pid = self.proc.pid
        self.ws_url = Lines(self.proc.stdout, "floor").get(30, "floor listening:")

    def stop(self) -> None:
        stop_process(self.proc, grace=5)


def load_round(url: str, pid: int, args: argparse.Namespace, prefix: str) -> dict[str, Any]:
    cpu0 = proc_cpu_seconds(pid)
    out = subprocess.run(
        [
            "node",
            str(HERE / "ws_load.js"),
            "load",
            url,
            str(args.connections),
            str(args.duration),
            prefix,
        ],
        capture_output=True,
        text=True,
        timeout=args.duration + 120,
        check=True,
    ).stdout
    result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    result["server_cpu_s"] = proc_cpu_seconds(pid) - cpu0
    result["rate"] = result["replies"] / result["seconds"]
    return result


def idle_rss(url: str, pid: int, n: int, settle: float, prefix: str) -> tuple[int, int, int]:
    """(RSS before, RSS after, connections held) for ``n`` idle announced connections."""
    before = proc_rss_kb(pid)
    proc, held = idle_clients(url, n, prefix)
    try:
        time.sleep(settle)
        after = proc_rss_kb(pid)
    finally:
        assert proc.stdin is not None
        proc.stdin.close()
        proc.wait(timeout=60)
    return before, after, held


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--connections", type=int, default=100)
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per round")
    parser.add_argument("--rounds", type=int, default=3, help="rounds per server")
    parser.add_argument("--idle", type=int, default=0, help="idle connections (0: skip)")
    parser.add_argument("--settle", type=float, default=2.0)
    parser.add_argument("--skip-floor", action="store_true")
    parser.add_argument(
        "--baseline-src",
        help="a directory holding another `scheduler` package (e.g. `git archive OLD scheduler "
        "| tar -x -C DIR`): also run it, as `before`, in the same alternation",
    )
    args = parser.parse_args()
    raise_fd_limit()
    server_args = argparse.Namespace(
        max_sessions=max(19_000, args.idle + 1000),
        ping_interval="1h",
        reconnect_grace="2s",
        # Every client is on 127.0.0.1: lift the per-address caps above the load.
        extra_flags=[
            "--max-connections-per-address",
            str(args.idle + args.connections + 1000),
            "--max-sessions-per-address",
            str(args.idle + args.connections + 1000),
        ],
    )
    serve, floor = Server(server_args), None if args.skip_floor else Floor()
    targets = {"serve": (serve.ws_url, serve.pid)}
    before = None
    if args.baseline_src:
        env = {**os.environ, "PYTHONPATH": args.baseline_src}
        source = subprocess.run(
            [sys.executable, "-P", "-c", "import scheduler; print(scheduler.__file__)"],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        print(f"before: the scheduler package in {source}", flush=True)
        before = Server(argparse.Namespace(**vars(server_args), env=env))
        targets["before"] = (before.ws_url, before.pid)
    if floor is not None:
        targets["floor"] = (floor.ws_url, floor.pid)
    rates: dict[str, list[dict[str, Any]]] = {name: [] for name in targets}
    try:
        # Warm both (imports, first-use caches), then alternate.
        for name, (url, pid) in targets.items():
            load_round(
                url,
                pid,
                argparse.Namespace(connections=args.connections, duration=1),
                f"warm-{name}",
            )
        for r in range(args.rounds):
            for name, (url, pid) in targets.items():
                result = load_round(url, pid, args, f"{name}-{r}")
                rates[name].append(result)
                print(
                    f"round {r} {name:5} {result['rate']:9,.0f} frames/s  p50 "
                    f"{result['p50_ms']:.2f} ms p99 {result['p99_ms']:.2f} ms  server CPU "
                    f"{100 * result['server_cpu_s'] / result['seconds']:.0f} %  client CPU "
                    f"{100 * result['client_cpu_s'] / result['seconds']:.0f} %",
                    flush=True,
                )
        idle: dict[str, tuple[int, int, int]] = {}
        if args.idle:
            for name, (url, pid) in targets.items():
                idle[name] = idle_rss(url, pid, args.idle, args.settle, f"idle-{name}")
    finally:
        serve.stop()
        if before is not None:
            before.stop()
        if floor is not None:
            floor.stop()
    median = {
        name: statistics.median(r["rate"] for r in results) for name, results in rates.items()
    }
    print(
        f"load avg {os.getloadavg()[0]:.2f}; {args.connections} connections, one request in "
        f"flight each, {args.rounds} x {args.duration:g} s rounds per server, alternating"
    )
    for name, value in median.items():
        per_cpu = statistics.median(r["replies"] / r["server_cpu_s"] for r in rates[name])
        print(
            f"SUMMARY {name:5} median {value:9,.0f} frames/s; {per_cpu:,.0f} frames per server "
            f"CPU-second"
        )
    if "floor" in median:
        for name in ("serve", "before"):
            if name in median:
                per_cpu = {
                    n: statistics.median(r["replies"] / r["server_cpu_s"] for r in rates[n])
                    for n in (name, "floor")
                }
                print(
                    f"SUMMARY ratio {name}/floor: {median[name] / median['floor']:.2f} "
                    f"in frames/s, "
                    f"{per_cpu[name] / per_cpu['floor']:.2f} in frames per server CPU-second"
                )
    for name, (before, after, held) in idle.items():
        print(
            f"SUMMARY idle {name:5} {held} connections: RSS {before / 1024:.1f} -> "
            f"{after / 1024:.1f} MiB, {(after - before) / held:.1f} KB per connection"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
