"""How long ``scheduler serve`` takes to exit after SIGTERM: no session, a peer, a frozen peer.

Each case starts a real ``scheduler serve`` (and a reference ``scheduler peer``
process when it needs one), waits until the peer is announced, sends SIGTERM to the
server and times it until the process has exited (the interpreter's own exit
included). A frozen peer is stopped with SIGSTOP first, so it never answers the
close: the server waits ``close_timeout`` for it.

    python benchmarks/bench_shutdown.py --rounds 5
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import time
import urllib.request


def _start(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "scheduler", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


def _wait_for_host(admin: str, within: float = 20.0) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        with urllib.request.urlopen(f"{admin}/api/v1/hosts", timeout=5) as response:
            if json.loads(response.read()):
                return
        time.sleep(0.05)
    raise RuntimeError("the peer did not announce")


def one_round(case: str) -> float:
    server = _start("serve", "--port", "0", "--admin-port", "0", "--log-level", "warning")
    peer = None
    try:
        assert server.stdout is not None
        words = server.stdout.readline().split()
        ws_url, admin = words[words.index("peers") + 1], words[words.index("admin") + 1]
        if case != "no session":
            peer = _start("peer", "--scheduler", ws_url, "--hostname", "h1", "--log-level", "error")
            _wait_for_host(admin)
            if case == "frozen peer":
                peer.send_signal(signal.SIGSTOP)
        started = time.perf_counter()
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)
        return time.perf_counter() - started
    finally:
        for process in (peer, server):
            if process is not None and process.poll() is None:
                process.send_signal(signal.SIGCONT)
                process.kill()
                process.wait()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    for case in ("no session", "one peer", "frozen peer"):
        times = [one_round(case) for _ in range(args.rounds)]
        print(
            f"{case:12s} exit after SIGTERM: median {statistics.median(times):.2f} s "
            f"(min {min(times):.2f}, max {max(times):.2f}, {args.rounds} rounds)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
