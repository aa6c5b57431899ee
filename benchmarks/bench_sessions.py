"""Benchmark WebSocket sessions against a real ``scheduler serve`` process (a script, not a test).

Starts ``python -m scheduler serve`` on 127.0.0.1 (ports picked by the kernel, long
ping interval) and measures two things from outside the process:

1. **RSS per idle session.** After ``--warmup`` sessions were opened and closed (so
   lazy imports and first-use caches are paid), reads the server's ``VmRSS``
   (``/proc/PID/status``), opens ``--sessions`` WebSocket sessions from this process (raw
   ``trio.open_tcp_stream`` + ``trio_websocket.wrap_client_stream``, at most
   ``--open-concurrency`` handshakes at a time), each announcing a unique host and
   waiting for ``host_accepted``, then leaves them idle. Once the server's
   ``scheduler_sessions`` gauge reports them all, it reads ``VmRSS`` again and
   prints (after - before) / N. The client's own memory is another process and is
   not counted; kernel socket buffers are not in any process's RSS.
2. **Announce throughput.** ``--concurrency`` sessions, spread over ``--clients``
   worker processes (this script in ``--worker`` mode), each send ``announce_host``
   in a loop, one request in flight per session, for ``--duration`` seconds. It
   counts the replies received in the window, and the server's CPU time in the same
   window (utime + stime from ``/proc/PID/stat``), and so reports messages per
   second, the server's CPU % of one core, and messages per server CPU-second. The
   load generator is Python too: when a worker's CPU is near 100 % of a core, the
   client is the bottleneck, and more ``--clients`` spread the load (on a 2-core
   machine they compete with the server for the cores).

Afterwards it checks that every session and host is gone from the server (a leak
check) and that the server counted as many announces as the clients got replies.
The server is always stopped (SIGTERM, then SIGKILL), also on error.

    python benchmarks/bench_sessions.py                            # full size, ~30 s
    python benchmarks/bench_sessions.py --sessions 500 --duration 3   # quick
    python benchmarks/bench_sessions.py --clients 2 --skip-idle       # throughput only
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import queue
import resource
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import IO, Any

import orjson
import trio
from trio_websocket import WebSocketConnection, wrap_client_stream

try:
    from rich.console import Console
    from rich.table import Table
except ImportError:  # plain text output without rich
    Console = Table = None  # type: ignore[assignment,misc]

from scheduler.protocol import SUBPROTOCOL, HostAccepted, decode_server

#: Anchors we did not measure here (see docs/benchmarks.md for the sources).
TRACKER_KB_PER_CONNECTION = 13  # bittorrent-tracker, DOMAIN.md
TRACKER_ANNOUNCES_PER_S = 32_300  # bittorrent-tracker 11.2.3, node `ws` load generator
NAIVE_ECHO_PER_S = 7_300  # naive trio-websocket JSON echo, node `ws` load generator
ANNOUNCE_INTERVAL = 3600  # seconds; the hosts' TTL is 2 h, so nothing expires during a run
CLK_TCK = os.sysconf("SC_CLK_TCK")


# --- the machine ---------------------------------------------------------------------------


def raise_fd_limit() -> tuple[int, int]:
    """Raise the soft RLIMIT_NOFILE to the hard limit (children inherit it)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard > soft:
        target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)


def proc_rss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for pid {pid}")


def proc_cpu_seconds(pid: int) -> float:
    """utime + stime of a process (all its threads), in seconds."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # fields 14 and 15 of stat


def machine_cpu() -> tuple[float, float]:
    """(busy, total) jiffies of all cores, from /proc/stat."""
    with open("/proc/stat", encoding="ascii") as stat:
        values = [int(v) for v in stat.readline().split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    return float(sum(values) - idle), float(sum(values))


def cpu_model() -> str:
    with contextlib.suppress(OSError), open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
        for line in cpuinfo:
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


# --- lines from child processes, with deadlines ----------------------------------------------


class Lines:
    """Read a child's stdout lines in a daemon thread; ``get`` waits with a deadline."""

    def __init__(self, pipe: IO[str], name: str) -> None:
        self._queue: queue.Queue[str | None] = queue.Queue()
        self.name = name
        threading.Thread(target=self._pump, args=(pipe,), daemon=True).start()

    def _pump(self, pipe: IO[str]) -> None:
        with contextlib.suppress(ValueError, OSError):
            for line in pipe:
                self._queue.put(line.rstrip("\n"))
        self._queue.put(None)

    def get(self, timeout: float, prefix: str) -> str:
        """The first line starting with ``prefix`` (others are skipped), within ``timeout``."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise TimeoutError(f"{self.name}: no {prefix!r} line within {timeout:g}s") from None
            if line is None:
                raise RuntimeError(f"{self.name}: exited before printing {prefix!r}")
            if line.startswith(prefix):
                return line[len(prefix) :].strip()


def stop_process(proc: subprocess.Popen[Any], grace: float) -> int:
    """SIGTERM, wait up to ``grace`` seconds, then SIGKILL. Returns the exit status."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
    return proc.returncode


# --- the server --------------------------------------------------------------------------------


class Server:
    """A ``scheduler serve`` subprocess on 127.0.0.1."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.command = [
            sys.executable,
            # -P: not the working directory first on sys.path, so that a PYTHONPATH in
            # ``args.env`` (bench_frames' --baseline-src) picks the package that runs.
            "-P",
            "-m",
            "scheduler",
            "serve",
            "--port",
            "0",
            "--admin-port",
            "0",
            "--max-sessions",
            str(args.max_sessions),
            "--log-level",
            "warning",
            "--ping-interval",
            args.ping_interval,
            "--ping-timeout",
            "30s",
            "--reconnect-grace",
            args.reconnect_grace,
            *getattr(args, "extra_flags", ()),
        ]
        self._stderr = tempfile.TemporaryFile(mode="w+", encoding="utf-8")  # noqa: SIM115
        self.proc = subprocess.Popen(
            self.command,
            env=getattr(args, "env", None),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            text=True,
        )
        self.pid = self.proc.pid
        self.exit_status: int | None = None
        assert self.proc.stdout is not None
        try:
            line = Lines(self.proc.stdout, "scheduler serve").get(30, "scheduler listening:")
        except BaseException:
            stderr = self.stop()
            print(f"scheduler serve did not start; its stderr:\n{stderr}", file=sys.stderr)
            raise
        # "peers ws://127.0.0.1:PORT/ws admin http://127.0.0.1:PORT"
        words = line.split()
        self.ws_url = words[words.index("peers") + 1]
        self.admin_url = words[words.index("admin") + 1].rstrip("/")
        host_port = self.ws_url.removeprefix("ws://").split("/", 1)[0]
        self.host, port = host_port.rsplit(":", 1)
        self.port = int(port)

    def rss_kb(self) -> int:
        return proc_rss_kb(self.pid)

    def cpu_seconds(self) -> float:
        return proc_cpu_seconds(self.pid)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def get(self, path: str, timeout: float = 10.0) -> bytes:
        with urllib.request.urlopen(self.admin_url + path, timeout=timeout) as response:
            body: bytes = response.read()
            return body

    def metrics(self) -> dict[str, float]:
        """The /metrics samples, keyed by ``name{labels}``."""
        samples: dict[str, float] = {}
        for line in self.get("/metrics").decode().splitlines():
            if line and not line.startswith("#"):
                key, _, value = line.rpartition(" ")
                samples[key] = float(value)
        return samples

    def stop(self) -> str:
        """Stop the server; returns what it wrote to stderr."""
        self.exit_status = stop_process(self.proc, grace=15)
        self._stderr.seek(0)
        text = self._stderr.read()
        self._stderr.close()
        return text


def metric_sum(samples: dict[str, float], name: str, **labels: str) -> float:
    """Sum of the samples of ``name`` whose labels include ``labels``."""
    total = 0.0
    for key, value in samples.items():
        base, _, rest = key.partition("{")
        if base != name:
            continue
        if all(f'{k}="{v}"' in rest for k, v in labels.items()):
            total += value
    return total


def poll_server(
    server: Server, predicate: Callable[[dict[str, float]], bool], within: float
) -> float | None:
    """Poll /metrics until ``predicate`` holds; the seconds it took, or None after ``within``."""
    start = time.monotonic()
    while time.monotonic() - start < within:
        if predicate(server.metrics()):
            return time.monotonic() - start
        time.sleep(0.2)
    return None


def server_checks(samples: dict[str, float]) -> list[tuple[str, str]]:
    """What the server's own metrics say at the end of the run."""

    def by_label(name: str, label: str) -> str:
        found = []
        for key, value in sorted(samples.items()):
            base, _, rest = key.partition("{")
            if base == name and value:
                found.append(f"{rest.split(label + '=', 1)[1].split(chr(34))[1]} {value:,.0f}")
        return ", ".join(found) or "none"

    return [
        ("open sessions (scheduler_sessions)", f"{metric_sum(samples, 'scheduler_sessions'):,.0f}"),
        ("hosts (scheduler_hosts)", f"{metric_sum(samples, 'scheduler_hosts'):,.0f}"),
        ("messages handled, by type", by_label("scheduler_messages_total", "type")),
        ("error replies, by code", by_label("scheduler_message_errors_total", "code")),
        ("sessions ended, by cause", by_label("scheduler_session_ends_total", "cause")),
        ("handshakes rejected", by_label("scheduler_handshake_rejections_total", "status")),
        ("hosts evicted, by reason", by_label("scheduler_host_evictions_total", "reason")),
    ]


async def wait_for_server(
    server: Server, what: str, predicate: Callable[[dict[str, float]], bool], within: float
) -> float:
    """Poll /metrics until ``predicate`` holds; returns the seconds it took."""
    start = time.monotonic()
    with trio.fail_after(within):
        while True:
            samples = await trio.to_thread.run_sync(server.metrics)
            if predicate(samples):
                return time.monotonic() - start
            await trio.sleep(0.2)
    raise AssertionError(what)  # pragma: no cover - fail_after raises first


# --- the client side -----------------------------------------------------------------------------


def host_payload(prefix: str, index: int) -> dict[str, Any]:
    a, b = divmod(index, 65_536)
    return {
        "hostname": f"{prefix}-{index:06d}",
        "ip": f"10.{a}.{b // 256}.{b % 256}",
        "port": 8002,
        "download_port": 8001,
    }


def announce_frame(host: dict[str, Any], request_id: int) -> str:
    message = {"type": "announce_host", "id": request_id, "host": host}
    message["interval"] = ANNOUNCE_INTERVAL
    return orjson.dumps(message).decode()


def check_accepted(frame: str | bytes, request_id: int) -> None:
    """Strict check of a reply with the project's codec."""
    reply = decode_server(frame)
    if not isinstance(reply, HostAccepted) or reply.id != request_id:
        raise RuntimeError(f"expected host_accepted id={request_id}, got {frame!r}")


async def connect(
    nursery: trio.Nursery, host: str, port: int
) -> tuple[trio.SocketStream, WebSocketConnection]:
    """TCP + WebSocket handshake; the caller owns (and must close) the stream."""
    stream = await trio.open_tcp_stream(host, port)
    try:
        ws = await wrap_client_stream(
            nursery,
            stream,
            f"{host}:{port}",
            "/ws",
            subprotocols=[SUBPROTOCOL],
            message_queue_size=1,
        )
    except BaseException:
        await trio.aclose_forcefully(stream)
        raise
    return stream, ws


def error_name(group: BaseException) -> str:
    while isinstance(group, BaseExceptionGroup):
        group = group.exceptions[0]
    return type(group).__name__ + (f": {group}" if str(group) else "")


@dataclass
class IdlePool:
    """``n`` idle announced sessions, held until ``release`` is set."""

    n: int
    opened: int = 0
    failed: Counter[str] = field(default_factory=Counter)
    lost: Counter[str] = field(default_factory=Counter)  # failed after they were open
    closed: int = 0
    close_timeouts: int = 0
    all_settled: trio.Event = field(default_factory=trio.Event)
    all_closed: trio.Event = field(default_factory=trio.Event)
    release: trio.Event = field(default_factory=trio.Event)

    def _settle(self) -> None:
        if self.opened + sum(self.failed.values()) == self.n:
            self.all_settled.set()

    def _finish(self) -> None:
        self.closed += 1
        if self.closed == self.n:
            self.all_closed.set()

    async def session(
        self,
        server: Server,
        prefix: str,
        index: int,
        limiter: trio.CapacityLimiter,
        args: argparse.Namespace,
    ) -> None:
        host = host_payload(prefix, index)
        opened = False
        try:
            async with trio.open_nursery() as nursery:  # the connection's reader task
                stream: trio.SocketStream | None = None
                try:
                    async with limiter:
                        with trio.fail_after(args.connect_timeout):
                            stream, ws = await connect(nursery, server.host, server.port)
                            await ws.send_message(announce_frame(host, 1))
                            check_accepted(await ws.get_message(), 1)
                    opened = True
                    self.opened += 1
                    self._settle()
                    await self.release.wait()
                    with trio.move_on_after(args.close_timeout) as close:
                        await ws.aclose()
                    self.close_timeouts += close.cancelled_caught
                finally:
                    if stream is not None:  # also ends the reader task
                        await trio.aclose_forcefully(stream)
        except Exception as exc:
            if not opened:
                self.failed[error_name(exc)] += 1
                self._settle()
            else:
                self.lost[error_name(exc)] += 1
        finally:
            self._finish()


@dataclass
class IdleResult:
    sessions: int
    opened: int
    failed: Counter[str]
    lost: Counter[str]
    open_seconds: float
    report_seconds: float
    rss_before_kb: int
    rss_after_kb: int
    client_rss_before_kb: int
    client_rss_after_kb: int
    connected_hosts: int
    close_timeouts: int
    sessions_gone_seconds: float | None
    hosts_gone_seconds: float | None

    @property
    def kb_per_session(self) -> float:
        return (self.rss_after_kb - self.rss_before_kb) / max(1, self.opened)


async def hold_idle(
    server: Server,
    n: int,
    prefix: str,
    args: argparse.Namespace,
    while_open: Callable[[IdlePool], Any],
) -> IdlePool:
    """Open ``n`` idle sessions, await ``while_open(pool)``, then close them all."""
    pool = IdlePool(n)
    limiter = trio.CapacityLimiter(args.open_concurrency)
    async with trio.open_nursery() as nursery:
        for i in range(n):
            nursery.start_soon(pool.session, server, prefix, i, limiter, args)
        try:
            with trio.fail_after(args.open_timeout):
                await pool.all_settled.wait()
            await while_open(pool)
        finally:
            pool.release.set()
            with trio.move_on_after(args.close_timeout + 5):
                await pool.all_closed.wait()
            nursery.cancel_scope.cancel()
    return pool


async def idle_phase(server: Server, args: argparse.Namespace) -> IdleResult:
    def sessions_are(count: int) -> Callable[[dict[str, float]], bool]:
        return lambda s: metric_sum(s, "scheduler_sessions") == count

    def hosts_are(count: int) -> Callable[[dict[str, float]], bool]:
        return lambda s: metric_sum(s, "scheduler_hosts") == count

    # Warm up: the first sessions import and allocate what every later one reuses.
    async def nothing(pool: IdlePool) -> None:
        await trio.lowlevel.checkpoint()

    warm = await hold_idle(server, args.warmup, "warm", args, nothing)
    if warm.failed:
        raise RuntimeError(f"warm-up sessions failed: {dict(warm.failed)}")
    await wait_for_server(server, "warm-up sessions closed", sessions_are(0), args.settle_timeout)
    await wait_for_server(server, "warm-up hosts evicted", hosts_are(0), args.settle_timeout)
    await trio.sleep(1)
    rss_before = server.rss_kb()
    client_before = proc_rss_kb(os.getpid())
    measured: dict[str, Any] = {}
    started = time.monotonic()

    async def measure(pool: IdlePool) -> None:
        measured["open_seconds"] = time.monotonic() - started
        measured["report_seconds"] = await wait_for_server(
            server, "idle sessions reported", sessions_are(pool.opened), args.settle_timeout
        )
        await trio.sleep(args.settle)
        measured["rss_after"] = server.rss_kb()
        measured["client_after"] = proc_rss_kb(os.getpid())
        # After the RSS reading: a 5,000-host JSON answer allocates in the server.
        body = await trio.to_thread.run_sync(server.get, "/api/v1/hosts?state=connected")
        measured["connected"] = sum(
            1 for h in orjson.loads(body) if str(h["hostname"]).startswith("idle-")
        )

    pool = await hold_idle(server, args.sessions, "idle", args, measure)
    gone: dict[str, float | None] = {"sessions": None, "hosts": None}
    with contextlib.suppress(trio.TooSlowError):
        gone["sessions"] = await wait_for_server(
            server, "sessions closed", sessions_are(0), args.settle_timeout
        )
        gone["hosts"] = await wait_for_server(
            server, "hosts evicted", hosts_are(0), args.settle_timeout
        )
    return IdleResult(
        sessions=args.sessions,
        opened=pool.opened,
        failed=pool.failed,
        lost=pool.lost,
        open_seconds=measured["open_seconds"],
        report_seconds=measured["report_seconds"],
        rss_before_kb=rss_before,
        rss_after_kb=measured["rss_after"],
        client_rss_before_kb=client_before,
        client_rss_after_kb=measured["client_after"],
        connected_hosts=measured["connected"],
        close_timeouts=pool.close_timeouts,
        sessions_gone_seconds=gone["sessions"],
        hosts_gone_seconds=gone["hosts"],
    )


# --- throughput: the worker (a subprocess of this script) -------------------------------------


@dataclass
class WorkerStats:
    sessions: int = 0
    replies_in_window: int = 0
    replies_total: int = 0
    bad_replies: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    latencies_us: list[int] = field(default_factory=list)
    cpu_seconds: float = 0.0
    window_seconds: float = 0.0


class Worker:
    """``--worker`` mode: ``--concurrency`` sessions announcing in a loop in a shared window."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        host, port = args.url.removeprefix("ws://").split("/", 1)[0].rsplit(":", 1)
        self.host, self.port = host, int(port)
        self.stats = WorkerStats()
        self.settled = 0
        self.all_ready = trio.Event()
        self.go = trio.Event()
        self.start = self.end = 0.0  # the window, in trio.current_time()

    def _ready(self) -> None:
        self.settled += 1
        if self.settled == self.args.concurrency:
            self.all_ready.set()

    async def session(self, index: int) -> None:
        args, stats = self.args, self.stats
        payload = host_payload(args.prefix, index)
        stream: trio.SocketStream | None = None
        ready = False
        try:
            async with trio.open_nursery() as nursery:
                try:
                    with trio.fail_after(args.connect_timeout):
                        stream, ws = await connect(nursery, self.host, self.port)
                        await ws.send_message(announce_frame(payload, 0))
                        check_accepted(await ws.get_message(), 0)
                    stats.sessions += 1
                    ready = True
                    self._ready()
                    await self.go.wait()
                    await trio.sleep_until(self.start)
                    end = self.end
                    request_id = 0
                    while True:
                        request_id += 1
                        sent = trio.current_time()
                        if sent >= end:
                            break
                        with trio.fail_after(args.request_timeout):
                            await ws.send_message(announce_frame(payload, request_id))
                            frame = await ws.get_message()
                        received = trio.current_time()
                        stats.replies_total += 1
                        reply = orjson.loads(frame)
                        if reply.get("type") != "host_accepted" or reply.get("id") != request_id:
                            stats.bad_replies += 1
                        elif received <= end:
                            stats.replies_in_window += 1
                            stats.latencies_us.append(round((received - sent) * 1e6))
                    with trio.move_on_after(args.close_timeout):
                        await ws.aclose()
                finally:
                    if stream is not None:
                        await trio.aclose_forcefully(stream)
        except Exception as exc:
            stats.errors[error_name(exc)] += 1
            if not ready:
                self._ready()

    async def run(self) -> WorkerStats:
        """Connect, print ``ready N``, wait for ``go T0`` on stdin, run the window."""
        args, stats = self.args, self.stats
        async with trio.open_nursery() as nursery:
            for i in range(args.concurrency):
                nursery.start_soon(self.session, i)
            with trio.fail_after(args.open_timeout):
                await self.all_ready.wait()
            print(f"ready {stats.sessions}", flush=True)
            with trio.fail_after(args.open_timeout):
                line = await trio.to_thread.run_sync(sys.stdin.readline, abandon_on_cancel=True)
            if not line.startswith("go "):
                nursery.cancel_scope.cancel()
                raise RuntimeError(f"worker: expected 'go T0', got {line!r}")
            t0 = float(line.split()[1])  # time.monotonic() of the window start, machine-wide
            offset = trio.current_time() - time.monotonic()
            self.start, self.end = t0 + offset, t0 + args.duration + offset
            self.go.set()
            await trio.sleep_until(self.start)
            cpu0, wall0 = time.process_time(), time.monotonic()
            await trio.sleep_until(self.end)
            stats.cpu_seconds = time.process_time() - cpu0
            stats.window_seconds = time.monotonic() - wall0
        return stats


def worker(args: argparse.Namespace) -> int:
    raise_fd_limit()
    stats = trio.run(Worker(args).run)
    result = {
        "sessions": stats.sessions,
        "replies_in_window": stats.replies_in_window,
        "replies_total": stats.replies_total,
        "bad_replies": stats.bad_replies,
        "errors": dict(stats.errors),
        "latencies_us": stats.latencies_us,
        "cpu_seconds": stats.cpu_seconds,
        "window_seconds": stats.window_seconds,
    }
    print("result " + json.dumps(result), flush=True)
    return 0


# --- throughput: the orchestrator ----------------------------------------------------------------


@dataclass
class LoadResult:
    clients: int
    concurrency: int
    sessions: int
    window_seconds: float
    replies: int
    replies_total: int
    bad_replies: int
    errors: dict[str, int]
    server_cpu_seconds: float
    machine_busy: float
    client_cpu: list[float]
    latencies_us: list[int]
    server_announces: float
    sessions_gone_seconds: float | None
    hosts_gone_seconds: float | None

    @property
    def rate(self) -> float:
        return self.replies / self.window_seconds

    @property
    def server_cpu_percent(self) -> float:
        return 100 * self.server_cpu_seconds / self.window_seconds

    @property
    def other_cpu_percent(self) -> float:
        """CPU the machine spent outside the server and the load generator."""
        total = 100 * self.machine_busy * (os.cpu_count() or 1)
        return max(0.0, total - self.server_cpu_percent - sum(self.client_cpu))

    @property
    def per_cpu_second(self) -> float:
        return self.replies / self.server_cpu_seconds if self.server_cpu_seconds else 0.0


def throughput_phase(server: Server, args: argparse.Namespace) -> LoadResult:
    shares = [
        args.concurrency // args.clients + (k < args.concurrency % args.clients)
        for k in range(args.clients)
    ]
    before = server.metrics()
    procs: list[subprocess.Popen[str]] = []
    lines: list[Lines] = []
    try:
        for k, share in enumerate(shares):
            proc = subprocess.Popen(
                [
                    *(sys.executable, os.path.abspath(__file__), "--worker"),
                    *("--url", server.ws_url, "--concurrency", str(share)),
                    *("--prefix", f"load{k}", "--duration", str(args.duration)),
                    *("--connect-timeout", str(args.connect_timeout)),
                    *("--request-timeout", str(args.request_timeout)),
                    *("--close-timeout", str(args.close_timeout)),
                    *("--open-timeout", str(args.open_timeout)),
                ],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
            )
            procs.append(proc)
            assert proc.stdout is not None
            lines.append(Lines(proc.stdout, f"worker {k}"))
        opened = [int(line.get(args.open_timeout + 10, "ready ")) for line in lines]
        if sum(opened) != args.concurrency:
            raise RuntimeError(f"only {sum(opened)} of {args.concurrency} load sessions opened")
        t0 = time.monotonic() + 0.5
        for proc in procs:
            assert proc.stdin is not None
            proc.stdin.write(f"go {t0!r}\n")
            proc.stdin.flush()
        time.sleep(max(0.0, t0 - time.monotonic()))
        cpu0, busy0, wall0 = server.cpu_seconds(), machine_cpu(), time.monotonic()
        time.sleep(max(0.0, t0 + args.duration - time.monotonic()))
        cpu1, busy1, wall1 = server.cpu_seconds(), machine_cpu(), time.monotonic()
        wait = args.request_timeout + args.close_timeout + 10
        results = [json.loads(line.get(wait, "result ")) for line in lines]
        for proc in procs:
            proc.wait(timeout=wait)
    finally:
        for proc in procs:
            stop_process(proc, grace=5)
    after = server.metrics()
    sessions_gone = poll_server(
        server, lambda m: metric_sum(m, "scheduler_sessions") == 0, args.settle_timeout
    )
    hosts_gone = poll_server(
        server, lambda m: metric_sum(m, "scheduler_hosts") == 0, args.settle_timeout
    )
    errors: Counter[str] = Counter()
    for result in results:
        errors.update(result["errors"])
    return LoadResult(
        clients=args.clients,
        concurrency=args.concurrency,
        sessions=sum(opened),
        window_seconds=wall1 - wall0,
        replies=sum(r["replies_in_window"] for r in results),
        replies_total=sum(r["replies_total"] for r in results),
        bad_replies=sum(r["bad_replies"] for r in results),
        errors=dict(errors),
        server_cpu_seconds=cpu1 - cpu0,
        machine_busy=(busy1[0] - busy0[0]) / max(1.0, busy1[1] - busy0[1]),
        client_cpu=[100 * r["cpu_seconds"] / max(1e-9, r["window_seconds"]) for r in results],
        latencies_us=sorted(lat for r in results for lat in r["latencies_us"]),
        server_announces=metric_sum(after, "scheduler_messages_total", type="announce_host")
        - metric_sum(before, "scheduler_messages_total", type="announce_host"),
        sessions_gone_seconds=sessions_gone,
        hosts_gone_seconds=hosts_gone,
    )


# --- output --------------------------------------------------------------------------------------


def render(title: str, rows: Sequence[tuple[str, str]]) -> None:
    if Console is None or Table is None:
        width = max(len(name) for name, _ in rows)
        print(title)
        for name, value in rows:
            print(f"  {name:<{width}}  {value}")
        return
    table = Table(title=title)
    table.add_column("measure")
    table.add_column("value", justify="right")
    for name, value in rows:
        table.add_row(name, value)
    Console(width=110).print(table)


def fmt_gone(seconds: float | None, what: str, after: str = "the clients closed") -> str:
    return f"yes, {seconds:.1f} s after {after}" if seconds is not None else f"NO: {what} leaked"


def idle_rows(r: IdleResult) -> list[tuple[str, str]]:
    failed = ", ".join(f"{k} x{v}" for k, v in r.failed.items()) or "none"
    return [
        ("sessions opened / asked", f"{r.opened:,} / {r.sessions:,} (failures: {failed})"),
        ("time to open (connect + handshake + announce)", f"{r.open_seconds:.2f} s"),
        ("time until the server reported them", f"{r.report_seconds:.2f} s"),
        ("connected hosts in /api/v1/hosts", f"{r.connected_hosts:,}"),
        ("server RSS before (after warm-up)", f"{r.rss_before_kb / 1024:.1f} MiB"),
        ("server RSS with the sessions open", f"{r.rss_after_kb / 1024:.1f} MiB"),
        ("server RSS per idle session", f"{r.kb_per_session:.1f} KB"),
        (
            "  bittorrent-tracker, per connection (cited, not measured)",
            f"~{TRACKER_KB_PER_CONNECTION} KB",
        ),
        ("  bare trio-websocket, per idle connection (LIBRARY-NOTES)", "~19 KB"),
        (
            "client process RSS per session (not in the figure above)",
            f"{(r.client_rss_after_kb - r.client_rss_before_kb) / max(1, r.opened):.1f} KB",
        ),
        ("client closes that timed out", f"{r.close_timeouts:,}"),
        (
            "sessions that failed while idle",
            ", ".join(f"{k} x{v}" for k, v in r.lost.items()) or "none",
        ),
        ("sessions gone from the server", fmt_gone(r.sessions_gone_seconds, "sessions")),
        (
            "hosts evicted after reconnect_grace",
            fmt_gone(r.hosts_gone_seconds, "hosts", "the sessions were gone"),
        ),
    ]


def percentile(sorted_values: Sequence[int], q: float) -> float:
    if not sorted_values:
        return float("nan")
    return sorted_values[min(len(sorted_values) - 1, int(q * len(sorted_values)))] / 1000


def load_rows(r: LoadResult) -> list[tuple[str, str]]:
    cores = os.cpu_count() or 1
    errors = ", ".join(f"{k} x{v}" for k, v in r.errors.items()) or "none"
    return [
        ("client processes x sessions", f"{r.clients} x {r.concurrency / r.clients:g}"),
        ("sessions open", f"{r.sessions:,}"),
        ("window", f"{r.window_seconds:.2f} s"),
        ("replies in the window", f"{r.replies:,}"),
        ("announces/s (host_accepted received)", f"{r.rate:,.0f}"),
        (
            "latency p50 / p99 (request -> reply)",
            f"{percentile(r.latencies_us, 0.5):.2f} ms / {percentile(r.latencies_us, 0.99):.2f} ms",
        ),
        ("server CPU (% of one core)", f"{r.server_cpu_percent:.0f} %"),
        ("announces per server CPU-second", f"{r.per_cpu_second:,.0f}"),
        (
            "client CPU (% of one core, per process)",
            ", ".join(f"{c:.0f} %" for c in r.client_cpu),
        ),
        (f"machine busy (all {cores} cores)", f"{100 * r.machine_busy:.0f} %"),
        ("other processes (% of one core)", f"{r.other_cpu_percent:.0f} %"),
        ("bad replies / errors", f"{r.bad_replies:,} / {errors}"),
        (
            "server counted announces (whole phase) / clients got replies",
            f"{r.server_announces:,.0f} / {r.replies_total + r.sessions:,}",
        ),
        ("sessions gone from the server", fmt_gone(r.sessions_gone_seconds, "sessions")),
        (
            "hosts evicted after reconnect_grace",
            fmt_gone(r.hosts_gone_seconds, "hosts", "the sessions were gone"),
        ),
        (
            "  bittorrent-tracker (cited, node `ws` generator)",
            f"{TRACKER_ANNOUNCES_PER_S:,}/s",
        ),
        (
            "  naive trio-websocket JSON echo (cited, same)",
            f"{NAIVE_ECHO_PER_S:,}/s",
        ),
    ]


# --- main ----------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sessions", type=int, default=5000, help="idle sessions (RSS)")
    parser.add_argument("--warmup", type=int, default=20, help="sessions opened+closed first")
    parser.add_argument("--open-concurrency", type=int, default=200, help="handshakes at once")
    parser.add_argument("--concurrency", type=int, default=100, help="throughput sessions")
    parser.add_argument("--duration", type=float, default=10.0, help="throughput window, s")
    parser.add_argument("--clients", type=int, default=1, help="load-generator processes")
    parser.add_argument("--skip-idle", action="store_true", help="only measure throughput")
    parser.add_argument("--skip-throughput", action="store_true", help="only measure RSS")
    parser.add_argument("--settle", type=float, default=2.0, help="wait before reading RSS, s")
    parser.add_argument("--max-sessions", type=int, default=19_000, help="server session cap")
    parser.add_argument("--ping-interval", default="1h", help="server --ping-interval")
    parser.add_argument("--reconnect-grace", default="2s", help="server --reconnect-grace")
    deadlines = parser.add_argument_group("deadlines (seconds)")
    deadlines.add_argument("--connect-timeout", type=float, default=30.0)
    deadlines.add_argument("--request-timeout", type=float, default=10.0)
    deadlines.add_argument("--close-timeout", type=float, default=5.0)
    deadlines.add_argument("--open-timeout", type=float, default=120.0, help="all sessions open")
    deadlines.add_argument("--settle-timeout", type=float, default=60.0, help="server catches up")
    worker_mode = parser.add_argument_group("worker mode (internal)")
    worker_mode.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    worker_mode.add_argument("--url", help=argparse.SUPPRESS)
    worker_mode.add_argument("--prefix", default="load", help=argparse.SUPPRESS)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.worker:
        return worker(args)
    if min(args.sessions, args.concurrency, args.clients, args.open_concurrency) < 1:
        parser.error("--sessions, --concurrency, --clients and --open-concurrency must be >= 1")
    if args.clients > args.concurrency or args.duration <= 0 or args.warmup < 1:
        parser.error("need --clients <= --concurrency, --duration > 0 and --warmup >= 1")
    soft, hard = raise_fd_limit()
    if soft < args.sessions + 200:
        parser.error(f"RLIMIT_NOFILE is {soft} (hard {hard}); too low for {args.sessions} sessions")

    load_before = os.getloadavg()
    # Every client is on 127.0.0.1: lift the per-address caps (1,000 by default) to the
    # session cap, or the server refuses every session past the thousandth.
    args.extra_flags = [
        *("--max-connections-per-address", str(args.max_sessions)),
        *("--max-sessions-per-address", str(args.max_sessions)),
    ]
    server = Server(args)
    print(f"started: python {' '.join(server.command[1:])}  (pid {server.pid})")
    print(f"server: {server.ws_url}  admin {server.admin_url}", flush=True)
    idle: IdleResult | None = None
    load: LoadResult | None = None
    stderr = ""
    try:
        if not args.skip_idle:
            idle = trio.run(idle_phase, server, args)
        if not args.skip_throughput:
            load = throughput_phase(server, args)
        alive = server.alive()
        final = server_checks(server.metrics()) if alive else []
    except BaseException:
        stderr = server.stop()
        print(f"server exit status {server.exit_status}; its stderr:\n{stderr[-4000:]}")
        raise
    else:
        stderr = server.stop()

    render(
        "Machine",
        [
            ("python", f"{platform.python_implementation()} {platform.python_version()}"),
            ("cpu", f"{cpu_model()} ({os.cpu_count()} cores)"),
            ("RLIMIT_NOFILE (soft / hard)", f"{soft} / {hard}"),
            (
                "load average (1 min) before / after",
                f"{load_before[0]:.2f} / {os.getloadavg()[0]:.2f}",
            ),
            ("server", " ".join(["python", *server.command[1:]])),
        ],
    )
    if idle is not None:
        render(f"Idle sessions: server RSS ({idle.opened:,} sessions)", idle_rows(idle))
    if load is not None:
        render(f"Announce throughput ({load.concurrency} sessions)", load_rows(load))

    if final:
        render("Server metrics at the end of the run", final)
    if idle is not None:
        print(
            f"SUMMARY idle: {idle.opened} sessions, server RSS "
            f"{idle.rss_before_kb / 1024:.1f} -> {idle.rss_after_kb / 1024:.1f} MiB, "
            f"{idle.kb_per_session:.1f} KB/session "
            f"(bittorrent-tracker ~{TRACKER_KB_PER_CONNECTION} KB/connection, cited)"
        )
    if load is not None:
        print(
            f"SUMMARY throughput: {load.rate:,.0f} announces/s with {load.concurrency} sessions "
            f"over {load.clients} client process(es); server CPU {load.server_cpu_percent:.0f} % "
            f"of one core; {load.per_cpu_second:,.0f} announces per server CPU-second; "
            f"client CPU {', '.join(f'{c:.0f} %' for c in load.client_cpu)}"
        )
        if load.other_cpu_percent >= 20:
            print(
                f"NOTE other processes used {load.other_cpu_percent:.0f} % of a core during the "
                "window: the machine was not quiet, so the rates are low; run again."
            )
        if max(load.client_cpu) >= 90:
            print(
                "NOTE the load generator saturated its core (client-bound): the server could "
                "do more; try --clients 2 (on 2 cores the clients then compete with the server)."
            )
    problems: list[str] = []
    if idle is not None:
        if idle.failed or idle.lost:
            problems.append(f"idle sessions failed: {dict(idle.failed)}, {dict(idle.lost)}")
        if idle.opened > args.max_sessions:
            problems.append(
                f"the server accepted {idle.opened} sessions with --max-sessions "
                f"{args.max_sessions}: the cap was exceeded"
            )
        if idle.sessions_gone_seconds is None or idle.hosts_gone_seconds is None:
            problems.append("sessions or hosts were still on the server after the clients closed")
    if load is not None and (load.errors or load.bad_replies):
        problems.append(f"throughput errors: {load.errors}, bad replies {load.bad_replies}")
    if load is not None and None in (load.sessions_gone_seconds, load.hosts_gone_seconds):
        problems.append("load sessions were still on the server after the clients closed")
    if load is not None and load.server_announces != load.replies_total + load.sessions:
        problems.append(
            f"the server counted {load.server_announces:,.0f} announces, the clients got "
            f"{load.replies_total + load.sessions:,} replies"
        )
    if not alive:
        problems.append(f"the server died during the run (exit status {server.exit_status})")
    if server.exit_status not in (0, None):
        problems.append(f"the server exited with status {server.exit_status} on SIGTERM")
    if stderr.strip():
        problems.append("the server wrote to stderr (warnings and errors):\n" + stderr[-4000:])
    for problem in problems:
        print(f"PROBLEM {problem}")
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
