"""A flood of bad-token handshakes: what it costs the server, and how much it logs.

It starts ``scheduler serve`` with authentication on (a throwaway key) in a
subprocess, its log on a file, and runs ``--clients`` processes that each open
connection after connection to the peers' port for ``--seconds``, send a
WebSocket upgrade with a token the key did not sign, and read the 401. Printed:
the handshakes refused, their rate, the server's CPU seconds over the flood
(user + system, from /proc via psutil), and the log lines the flood wrote.

    python benchmarks/bench_auth_flood.py
    python benchmarks/bench_auth_flood.py --clients 3 --seconds 15
    python benchmarks/bench_auth_flood.py --count 9000 --seconds 15   # a fixed rate

The server is whatever ``python -m scheduler`` imports: run the script from
outside the checkout with ``PYTHONPATH=DIR`` to measure another tree.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
from collections.abc import Sequence
from pathlib import Path

import psutil

HEAD = (
    "GET /ws HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
    "Sec-WebSocket-Protocol: scheduler.v1\r\n"
    "Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.eyJzY29wZSI6Imhvc3QifQ.bm90LXNpZ25lZA\r\n\r\n"
)


def flood(
    address: tuple[str, int], seconds: float, count: int, results: multiprocessing.Queue[int]
) -> None:
    """One client process: ``count`` refused handshakes evenly over ``seconds`` (0: as
    many as it can, one after the other)."""
    head = HEAD.format(host=f"{address[0]}:{address[1]}").encode()
    refused = 0
    started = time.monotonic()
    deadline = started + seconds
    sent = 0
    while time.monotonic() < deadline and (count == 0 or sent < count):
        if count:
            time.sleep(max(0.0, started + sent * seconds / count - time.monotonic()))
        sent += 1
        with socket.create_connection(address, timeout=10) as sock:
            sock.sendall(head)
            reply = b""
            while chunk := sock.recv(4096):
                reply += chunk
        if reply.startswith(b"HTTP/1.1 401"):
            refused += 1
    results.put(refused)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--clients", type=int, default=3, help="client processes")
    parser.add_argument("--seconds", type=float, default=15.0, help="how long the flood lasts")
    parser.add_argument(
        "--count", type=int, default=0, help="handshakes in all, spread evenly (0: flat out)"
    )
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        key = Path(tmp) / "token.key"
        key.write_bytes(os.urandom(32).hex().encode())
        log_path = Path(tmp) / "server.log"
        with log_path.open("w") as log_file:
            server = subprocess.Popen(
                [sys.executable, "-m", "scheduler", "serve", "--port", "0", "--admin-port", "0",
                 "--auth-key-file", str(key), "--max-connections-per-address", "100000"],
                stdout=subprocess.PIPE,
                stderr=log_file,
                text=True,
                cwd=tmp,  # not the checkout: PYTHONPATH decides which tree runs
            )  # fmt: skip
            try:
                assert server.stdout is not None
                ws_url = server.stdout.readline().split()[3]
                parsed = urllib.parse.urlsplit(ws_url)
                assert parsed.hostname is not None
                assert parsed.port is not None
                address = (parsed.hostname, parsed.port)
                process = psutil.Process(server.pid)
                lines_before = log_path.read_text().count("\n")
                cpu_before = sum(process.cpu_times()[:2])
                results: multiprocessing.Queue[int] = multiprocessing.Queue()
                clients = [
                    multiprocessing.Process(
                        target=flood,
                        args=(address, args.seconds, args.count // args.clients, results),
                    )
                    for _ in range(args.clients)
                ]
                started = time.monotonic()
                for client in clients:
                    client.start()
                refused = sum(results.get() for _ in clients)
                elapsed = time.monotonic() - started
                for client in clients:
                    client.join()
                time.sleep(0.5)  # the last lines reach the file
                cpu = sum(process.cpu_times()[:2]) - cpu_before
                lines = log_path.read_text().count("\n") - lines_before
            finally:
                server.terminate()
                server.wait(timeout=30)
    pace = f"{args.count} handshakes" if args.count else "flat out"
    print(f"clients: {args.clients} processes for {args.seconds:g} s, {pace}")
    print(f"handshakes refused: {refused} ({refused / elapsed:.0f}/s)")
    print(f"server CPU: {cpu:.2f} s over {elapsed:.1f} s ({100 * cpu / elapsed:.0f} % of a core)")
    print(f"log lines written: {lines}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
