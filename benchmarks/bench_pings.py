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
   (unschedulable); prints each time from the freeze;
3. with ``--floor``, the same clients against ``ping_floor_server.py`` (a bare epoll
   loop with the same ping schedule, nothing else) in the same run: its system CPU per
   ping and pong is the kernel's cost of the workload, the floor the scheduler's CPU is
   compared to; the user and system CPU of both are printed apart.

    NODE_PATH=/tmp/wsload/node_modules python benchmarks/bench_pings.py --sessions 15000 --clients 3
    NODE_PATH=/tmp/wsload/node_modules python benchmarks/bench_pings.py --sessions 2000 \
        --clients 2 --window 15 --settle 6 --trials 0 --floor
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

from scheduler.loadgen._procfs import proc_cpu_split

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from bench_sessions import Lines, Server, metric_sum, raise_fd_limit  # noqa: E402


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


def floor_run(args: argparse.Namespace, per_client: int) -> tuple[float, float, float]:
    """``ping_floor_server.py`` under the same clients: (pongs/s, user, system µs per pair)."""
    proc = subprocess.Popen(
        [sys.executable, str(HERE / "ping_floor_server.py"), "--ping-interval", "2.5"],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    url = proc.stdout.readline().split()[-1]
    clients: list[subprocess.Popen[str]] = []

    def sample() -> tuple[int, float, float]:
        assert proc.stdout is not None
        os.kill(proc.pid, signal.SIGUSR1)
        words = proc.stdout.readline().split()
        return int(words[1]), float(words[3]), float(words[5])

    try:
        for c in range(args.clients):
            clients.append(idle_clients(url, per_client, f"floor{c}")[0])
        time.sleep(args.settle)
        pongs0, user0, system0 = sample()
        t0 = time.monotonic()
        time.sleep(args.window)
        pongs1, user1, system1 = sample()
        seconds = time.monotonic() - t0
    finally:
        for client in clients:
            close(client)
        proc.kill()
        proc.wait()
    pongs = max(pongs1 - pongs0, 1)
    return pongs / seconds, 1e6 * (user1 - user0) / pongs, 1e6 * (system1 - system0) / pongs


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
    parser.add_argument(
        "--floor", action="store_true", help="also run ping_floor_server.py, side by side"
    )
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
        (user0, system0), t0 = proc_cpu_split(server.pid), time.monotonic()
        time.sleep(args.window)
        seconds = time.monotonic() - t0
        user1, system1 = proc_cpu_split(server.pid)
        cpu = (user1 - user0 + system1 - system0) / seconds
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
        pairs = max(reads, 1) * seconds
        ours = (1e6 * (user1 - user0) / pairs, 1e6 * (system1 - system0) / pairs)
        print(f"scheduler per ping and pong: user {ours[0]:.1f} µs, system {ours[1]:.1f} µs")
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
    if args.floor:
        rate, user, system = floor_run(args, per_client)
        total = sum(ours)
        print(
            f"SUMMARY floor (bare epoll loop, same clients): {rate:,.0f} pongs per second, "
            f"user {user:.1f} µs, system {system:.1f} µs per ping and pong"
        )
        if system <= 0 or user + system <= 0:
            # CPU time comes in 10 ms ticks: too few pairs left the floor's share at zero.
            print("the floor's CPU was below one clock tick: raise --window or --sessions")
            return 1
        print(
            f"SUMMARY ping CPU against the kernel: scheduler {total:.1f} µs per pair = "
            f"{total / system:.1f} x the kernel's {system:.1f} µs "
            f"({total / (user + system):.1f} x the bare loop's {user + system:.1f} µs)"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
