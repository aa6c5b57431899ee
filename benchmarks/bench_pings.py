"""Liveness at scale: the CPU that pinging idle sessions costs, and how fast a hung host is found.

A script that prints numbers, never a timed test. Starts ``scheduler serve`` with the
default ``liveness`` settings on 127.0.0.1 and:

1. **ping CPU**: opens ``--sessions`` idle, announced sessions from ``--clients`` node
   processes (``ws_load.js idle``; node's ``ws`` answers pings by itself), lets them
   settle, then reads the server's CPU time over ``--window`` seconds: only the timer
   task's pings and the pongs run then. Prints the % of one core, the pings sent, and the
   figure scaled linearly to 50,000 sessions;
2. **detection**: ``--trials`` times, opens one more session, freezes its node process
   (SIGSTOP) and polls the admin API until the host is no longer ``connected``
   (unschedulable); prints each time from the freeze.

    NODE_PATH=/tmp/wsload/node_modules python benchmarks/bench_pings.py --sessions 15000 --clients 3
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from bench_sessions import Lines, Server, metric_sum, proc_cpu_seconds, raise_fd_limit  # noqa: E402


def idle_clients(url: str, n: int, prefix: str) -> tuple[subprocess.Popen[str], int]:
    proc = subprocess.Popen(
        ["node", str(HERE / "ws_load.js"), "idle", url, str(n), "0", prefix],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    words = Lines(proc.stdout, prefix).get(600, "ready").split()
    return proc, int(words[0])


def close(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGCONT)
        assert proc.stdin is not None
        proc.stdin.close()
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def host_id(server: Server, hostname: str) -> str:
    """The id of the host named ``hostname`` (one listing of every host)."""
    for host in json.loads(server.get("/api/v1/hosts")):
        if host["hostname"] == hostname:
            return str(host["id"])
    raise LookupError(f"no host named {hostname!r}")


def host_state(server: Server, host: str) -> str:
    """``host``'s state: one small request, so that polling adds little to the figure
    (listing 15,000 hosts takes longer than the detection itself)."""
    return str(json.loads(server.get(f"/api/v1/hosts/{host}"))["state"])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sessions", type=int, default=15_000)
    parser.add_argument("--clients", type=int, default=3, help="node processes")
    parser.add_argument("--window", type=float, default=15.0)
    parser.add_argument("--settle", type=float, default=10.0)
    parser.add_argument("--trials", type=int, default=5)
    args = parser.parse_args()
    raise_fd_limit()
    per_client = -(-args.sessions // args.clients)
    server = Server(
        argparse.Namespace(
            max_sessions=args.sessions + 100,
            ping_interval="2500ms",
            reconnect_grace="60s",
            extra_flags=[
                "--ping-timeout",
                "2900ms",
                "--max-connections-per-address",
                str(args.sessions + 100),
                "--max-sessions-per-address",
                str(args.sessions + 100),
                "--max-connections",
                str(args.sessions + 100),
            ],
        )
    )
    # bench_sessions.Server passes --ping-timeout 30s first; ours comes later and wins.
    clients: list[subprocess.Popen[str]] = []
    try:
        held = 0
        for c in range(args.clients):
            proc, n = idle_clients(server.ws_url, per_client, f"idle{c}")
            clients.append(proc)
            held += n
            print(f"client {c}: {n} sessions open", flush=True)
        time.sleep(args.settle)
        first = server.metrics()
        before = metric_sum(first, "scheduler_sessions")
        reads0 = metric_sum(first, "scheduler_reader_reads_total")
        cpu0, t0 = proc_cpu_seconds(server.pid), time.monotonic()
        time.sleep(args.window)
        seconds = time.monotonic() - t0
        cpu = (proc_cpu_seconds(server.pid) - cpu0) / seconds
        after = server.metrics()
        sessions = metric_sum(after, "scheduler_sessions")
        reads = (metric_sum(after, "scheduler_reader_reads_total") - reads0) / seconds
        print(
            f"SUMMARY ping CPU: {sessions:,.0f} idle sessions (was {before:,.0f}), server CPU "
            f"{100 * cpu:.1f} % of one core over {args.window:g} s; scaled to 50,000 "
            f"sessions: {100 * cpu * 50_000 / max(sessions, 1):.1f} %; {reads:,.0f} pongs "
            f"read by the shared reader per second, {1e6 * cpu / max(reads, 1):.1f} µs of "
            "server CPU each"
        )
        ends = {k: v for k, v in after.items() if k.startswith("scheduler_session_ends_total")}
        print(f"session ends during the run: {ends}")
        for trial in range(args.trials):
            proc, _ = idle_clients(server.ws_url, 1, f"frozen{trial}")
            target = host_id(server, f"frozen{trial}-0")
            time.sleep(1.0 + 0.7 * trial)  # freeze at different points of the ping cycle
            os.kill(proc.pid, signal.SIGSTOP)
            frozen = time.monotonic()
            while host_state(server, target) == "connected":
                time.sleep(0.05)
            print(
                f"SUMMARY detection trial {trial}: unschedulable {time.monotonic() - frozen:.2f} s "
                "after SIGSTOP (bound: ping_interval + ping_timeout = 5.4 s after its last frame)",
                flush=True,
            )
            close(proc)
    finally:
        for proc in clients:
            close(proc)
        server.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
