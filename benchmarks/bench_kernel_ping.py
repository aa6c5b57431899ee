"""The kernel's own cost of one ping and pong on this machine: the floor of ping CPU.

A script that prints numbers, never a timed test. Opens ``--sessions`` TCP connections
on loopback and, per round, writes a server's 2-byte ping on each server socket and
reads each client's 6-byte masked pong back, as ``scheduler serve`` does for an idle
session. Only the server side's ``write`` and ``read`` calls are timed (this thread's
CPU time, ``time.thread_time``); the client's side is not. Prints the CPU per ping and
pong, the figure ``bench_pings.py``'s "µs of server CPU each" is compared to.

    python benchmarks/bench_kernel_ping.py --sessions 2000 --rounds 20
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import time

PING = b"\x89\x00"
PONG = b"\x8a\x80\x01\x02\x03\x04"  # a client's empty pong: masked, so 6 bytes


def pairs(count: int) -> list[tuple[socket.socket, socket.socket]]:
    listener = socket.create_server(("127.0.0.1", 0), backlog=count)
    port = listener.getsockname()[1]
    made = []
    for _ in range(count):
        client = socket.create_connection(("127.0.0.1", port))
        server, _ = listener.accept()
        server.setblocking(False)
        made.append((server, client))
    listener.close()
    return made


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args()
    connections = pairs(args.sessions)
    servers = [server.fileno() for server, _ in connections]
    clients = [client.fileno() for _, client in connections]
    per_pair = []
    for _ in range(args.rounds):
        start = time.thread_time()
        for fd in servers:
            os.write(fd, PING)
        writes = time.thread_time() - start
        for fd in clients:  # not timed: the client's side
            os.read(fd, 2)
            os.write(fd, PONG)
        start = time.thread_time()
        for fd in servers:
            os.read(fd, 64)
        reads = time.thread_time() - start
        per_pair.append((writes + reads) / args.sessions * 1e6)
    for server, client in connections:
        server.close()
        client.close()
    print(
        f"SUMMARY kernel ping+pong: {statistics.median(per_pair):.1f} µs of CPU per pair "
        f"(median of {args.rounds} rounds over {args.sessions} connections; "
        f"min {min(per_pair):.1f}, max {max(per_pair):.1f})"
    )


if __name__ == "__main__":
    main()
