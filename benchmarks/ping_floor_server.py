"""The kernel's cost of pinging idle sessions, in the scheduler's own workload.

A script that prints numbers, never a timed test. A bare event loop on ``select.epoll``
with the scheduler's liveness schedule and nothing else: it accepts WebSocket sessions,
answers each one's first text frame with a fixed ``host_accepted``, then pings every
session ``--ping-interval`` after the last frame it read from it (timer ticks every
50 ms, as ``scheduler serve``'s) and reads the pongs when epoll says they are there. No
frame is parsed beyond the handshake: a read counts as the pong.

What it costs the kernel (its **system** CPU time) is the floor of ``scheduler serve``'s
ping CPU: the same ``write`` of each ping, the same wake-ups from ``epoll_wait`` and the
same ``read`` of each pong, with the clients (node's ``ws``) waiting in their own event
loops as they do against the scheduler. Its user time is this script's Python, which the
floor leaves out. ``bench_pings.py --floor`` runs it side by side with the scheduler.

    python benchmarks/ping_floor_server.py --port 0
    floor listening: ws://127.0.0.1:PORT/ws        (the first line on stdout)

On SIGUSR1 it prints one line: ``pongs N utime U stime S`` (seconds since start).
"""

from __future__ import annotations

import argparse
import base64
import collections
import hashlib
import os
import resource
import select
import signal
import socket
import time

_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
PING = b"\x89\x00"
REPLY = b'{"type":"host_accepted","id":1,"host_id":"floor","ttl":7200}'
TEXT_REPLY = b"\x81" + bytes([len(REPLY)]) + REPLY
TICK = 0.05


def handshake_reply(request: bytes) -> bytes:
    key = b""
    for line in request.split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"sec-websocket-key":
            key = value.strip()
    accept = base64.b64encode(hashlib.sha1(key + _GUID).digest())
    return (
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Accept: " + accept + b"\r\n\r\n"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--ping-interval", type=float, default=2.5)
    args = parser.parse_args()
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    listener = socket.create_server(("127.0.0.1", args.port), backlog=4096)
    listener.setblocking(False)
    epoll = select.epoll()
    epoll.register(listener.fileno(), select.EPOLLIN)
    sockets: dict[int, socket.socket] = {}
    stage: dict[int, int] = {}  # 0 handshake, 1 waiting for announce, 2 idle
    pending: dict[int, bytes] = {}
    # Every session has the same interval: a FIFO of (due, fd) is ordered by due.
    due: collections.deque[tuple[float, int]] = collections.deque()
    heard: dict[int, float] = {}
    pinged: set[int] = set()
    pongs = 0
    start = os.times()

    def report(*_: object) -> None:
        now = os.times()
        user, system = now.user - start.user, now.system - start.system
        print(f"pongs {pongs} utime {user:.3f} stime {system:.3f}", flush=True)

    signal.signal(signal.SIGUSR1, report)
    print(f"floor listening: ws://127.0.0.1:{listener.getsockname()[1]}/ws", flush=True)
    next_tick = time.monotonic() + TICK
    while True:
        timeout = max(0.0, next_tick - time.monotonic())
        try:
            events = epoll.poll(timeout)
        except InterruptedError:
            continue
        now = time.monotonic()
        for fd, _ in events:
            if fd == listener.fileno():
                while True:
                    try:
                        conn, _ = listener.accept()
                    except BlockingIOError:
                        break
                    conn.setblocking(False)
                    sockets[conn.fileno()] = conn
                    stage[conn.fileno()] = 0
                    epoll.register(conn.fileno(), select.EPOLLIN)
                continue
            try:
                data = os.read(fd, 65536)
            except OSError:
                data = b""
            if not data:
                epoll.unregister(fd)
                sockets.pop(fd).close()
                stage.pop(fd, None)
                heard.pop(fd, None)
                pinged.discard(fd)
                continue
            step = stage[fd]
            if step == 2:
                pongs += fd in pinged
                pinged.discard(fd)
                heard[fd] = now
                due.append((now + args.ping_interval, fd))
            elif step == 0:
                buffer = pending.pop(fd, b"") + data
                if b"\r\n\r\n" not in buffer:
                    pending[fd] = buffer
                    continue
                os.write(fd, handshake_reply(buffer))
                stage[fd] = 1
            else:
                os.write(fd, TEXT_REPLY)
                stage[fd] = 2
                heard[fd] = now
                due.append((now + args.ping_interval, fd))
        if now >= next_tick:
            next_tick = now + TICK
            while due and due[0][0] <= now:
                when, fd = due.popleft()
                # A stale entry: the session was heard from after this one was queued.
                if fd not in heard or heard[fd] + args.ping_interval != when:
                    continue
                os.write(fd, PING)
                pinged.add(fd)


if __name__ == "__main__":
    main()
