"""The orchestrator of a load run: the server, the worker processes, the windows, the figures.

The run, in order:

1. the target: the given ``url`` (and ``server_pid`` to measure, if given), or a
   ``scheduler serve`` this run starts on loopback (and stops at the end);
2. the server's ``VmRSS`` before; ``workers`` worker processes open ``sessions``
   sessions between them (each announces a unique host); ``VmRSS`` again once all
   are open and idle: RSS per session is the difference over the sessions opened;
3. windows of ``duration`` seconds, every worker in the same machine-wide window:
   an optional warm-up (not reported), the main window (back to back, or at the
   offered ``rate``), then one window per ``sweep`` fraction of the main window's
   rate (latency at 50/90/100 % of the maximum). During each one the server's CPU
   (``/proc/PID/stat``) and the workers' own CPU are measured, so a saturated
   generator shows;
4. the workers close their sessions and exit; every process started is stopped.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field, replace
from typing import Any, final

import trio

from ._histogram import LatencyHistogram
from ._lines import LineReader, command, render
from ._mixes import MixSpec
from ._procfs import load_average, machine_busy, proc_cpu_seconds, proc_rss_kb, raise_fd_limit
from ._server import ServerProcess, start_scheduler, stop_process
from ._worker import WorkerSpec

ProgressHook = Callable[[str, float, dict[str, float]], None]


@dataclass(frozen=True)
class LoadOptions:
    url: str | None = None  # None: start a ``scheduler serve`` on loopback
    server_pid: int | None = None  # the process to measure (CPU, RSS) when ``url`` is given
    serve_args: tuple[str, ...] = ()
    sessions: int = 100
    workers: int = 1
    duration: float = 10.0
    warmup: float = 1.0
    rate: float = 0.0  # offered requests/s over all sessions; 0 = back to back
    sweep: tuple[float, ...] = ()  # fractions of the main window's rate, e.g. (0.5, 0.9, 1.0)
    mix: MixSpec = field(default_factory=MixSpec)
    crash_rate: float = 0.0  # fraction of the sessions dropped per second
    connect_timeout: float = 30.0
    request_timeout: float = 10.0
    open_concurrency: int = 200
    open_timeout: float = 120.0
    settle: float = 1.0  # idle seconds before the second RSS reading
    seed: int = 0

    def __post_init__(self) -> None:
        if self.sessions < 1 or self.workers < 1:
            raise ValueError("sessions and workers must be >= 1")
        if self.workers > self.sessions:
            raise ValueError(f"{self.workers} workers for {self.sessions} sessions: too many")
        if self.duration <= 0 or self.warmup < 0 or self.rate < 0 or self.crash_rate < 0:
            raise ValueError("duration must be > 0; warmup, rate and crash rate >= 0")
        if any(not 0 < f <= 1 for f in self.sweep):
            raise ValueError("sweep fractions must be in (0, 1]")


@final
class WorkerHandle:
    """One worker process and what it has said so far."""

    def __init__(self, process: trio.Process, share: int) -> None:
        self.process = process
        self.share = share
        self.ready: dict[str, Any] | None = None
        self.progress: dict[str, Any] = {}
        self.got_ready = trio.Event()
        self.closed = trio.Event()
        send, receive = trio.open_memory_channel[dict[str, Any]](4)
        self._send, self.results = send, receive

    async def pump(self) -> None:
        assert self.process.stdout is not None
        lines = LineReader(self.process.stdout)
        try:
            while (line := await _line_or_none(lines)) is not None:
                word, payload = command(line)
                if word == "ready":
                    self.ready = payload
                    self.got_ready.set()
                elif word == "progress":
                    self.progress = payload
                elif word == "result":
                    await self._send.send(payload)
                elif word == "closed":
                    self.closed.set()
        finally:
            self.got_ready.set()  # a worker that died is "ready" with nothing opened
            self.closed.set()
            await self._send.aclose()

    async def tell(self, word: str, payload: dict[str, Any] | None = None) -> None:
        assert self.process.stdin is not None
        await self.process.stdin.send_all(render(word, payload))


async def _line_or_none(lines: LineReader) -> str | None:
    """The next line; None at EOF or once the pipe was closed (the worker was stopped)."""
    try:
        return await lines.line()
    except (trio.ClosedResourceError, trio.BrokenResourceError):
        return None


def _shares(total: int, parts: int) -> list[int]:
    return [total // parts + (k < total % parts) for k in range(parts)]


@contextlib.asynccontextmanager
async def _workers(options: LoadOptions, url: str) -> AsyncIterator[list[WorkerHandle]]:
    """Start the worker processes; at the end tell them to quit, then stop them for good."""
    run_tag = f"lg{os.getpid() % 100_000}x{int(time.time()) % 100_000}"
    handles: list[WorkerHandle] = []
    try:
        async with trio.open_nursery() as nursery:
            for k, share in enumerate(_shares(options.sessions, options.workers)):
                spec = WorkerSpec(
                    url=url,
                    sessions=share,
                    mix=replace(options.mix, prefix=f"{options.mix.prefix}-{run_tag}w{k}"),
                    connect_timeout=options.connect_timeout,
                    request_timeout=options.request_timeout,
                    open_concurrency=max(1, options.open_concurrency // options.workers),
                    crash_rate=options.crash_rate,
                    seed=options.seed * 1000 + k,
                )
                process = await trio.lowlevel.open_process(
                    [sys.executable, "-m", "scheduler.loadgen", "worker", spec.to_json()],
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                )
                handle = WorkerHandle(process, share)
                handles.append(handle)
                nursery.start_soon(handle.pump)
            try:
                yield handles
                for handle in handles:
                    with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
                        await handle.tell("quit")
                with trio.move_on_after(options.request_timeout + 15):
                    for handle in handles:
                        await handle.closed.wait()
            finally:
                nursery.cancel_scope.cancel()  # the pumps; the processes are stopped below
    finally:
        for handle in handles:
            await stop_process(handle.process, 5)


@dataclass
class WindowResult:
    label: str
    offered_rate: float  # requests/s asked for; 0 = back to back
    seconds: float = 0.0
    replies: int = 0
    updates: int = 0
    sent: int = 0
    late: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    failures: Counter[str] = field(default_factory=Counter)
    unexpected: Counter[str] = field(default_factory=Counter)
    unsupported: str = ""
    crashes: int = 0
    reconnects: int = 0
    histogram: LatencyHistogram = field(default_factory=LatencyHistogram)
    server_cpu_seconds: float | None = None
    worker_cpu_percent: list[float] = field(default_factory=list)
    load_average: float = 0.0
    machine_percent: float = 0.0  # all cores' busy time, in % of one core

    @property
    def rate(self) -> float:
        return self.replies / self.seconds if self.seconds else 0.0

    def to_json(self) -> dict[str, Any]:
        def ms(fraction: float) -> float | None:
            value = self.histogram.percentile(fraction)
            return None if value is None else round(value, 3)

        cpu = self.server_cpu_seconds
        return {
            "label": self.label,
            "offered_rate": round(self.offered_rate, 1),
            "seconds": round(self.seconds, 3),
            "rate": round(self.rate, 1),
            "updates_rate": round(self.updates / self.seconds, 1) if self.seconds else 0.0,
            "replies": self.replies,
            "sent": self.sent,
            "late": self.late,
            "p50_ms": ms(0.50),
            "p90_ms": ms(0.90),
            "p99_ms": ms(0.99),
            "max_ms": round(self.histogram.max_us / 1000, 3),
            "errors": dict(self.errors),
            "failures": dict(self.failures),
            "unexpected": dict(self.unexpected),
            "batch_unsupported": self.unsupported or None,
            "crashes": self.crashes,
            "reconnects": self.reconnects,
            "server_cpu_percent": None if cpu is None else round(100 * cpu / self.seconds, 1),
            "generator_cpu_percent": [round(c, 1) for c in self.worker_cpu_percent],
            "load_average": round(self.load_average, 2),
            "other_cpu_percent": round(
                max(
                    0.0,
                    self.machine_percent
                    - (cpu or 0.0) * 100 / max(self.seconds, 1e-9)
                    - sum(self.worker_cpu_percent),
                ),
                1,
            ),
        }


async def _window(
    handles: list[WorkerHandle],
    *,
    label: str,
    rate: float,
    options: LoadOptions,
    pid: int | None,
    progress: ProgressHook | None,
) -> WindowResult:
    live = [h for h in handles if h.ready and h.ready.get("opened")]
    opened = sum(int(h.ready["opened"]) for h in live if h.ready)
    per_session = rate / opened if rate and opened else 0.0
    start = time.monotonic() + 0.3
    for handle in live:
        await handle.tell(
            "window", {"start": start, "duration": options.duration, "rate": per_session}
        )
    result = WindowResult(label, rate)
    await trio.sleep(max(0.0, start - time.monotonic()))
    cpu0 = proc_cpu_seconds(pid) if pid else None
    busy0, wall0 = machine_busy(), time.monotonic()
    end = start + options.duration
    while (now := time.monotonic()) < end:
        await trio.sleep(min(0.25, end - now))
        if progress is not None:
            totals: Counter[str] = Counter()
            for handle in live:
                totals.update({k: float(v) for k, v in handle.progress.items()})
            progress(label, (time.monotonic() - wall0) / options.duration, dict(totals))
    result.seconds = time.monotonic() - wall0
    busy1 = machine_busy()
    result.machine_percent = (
        100 * (os.cpu_count() or 1) * (busy1[0] - busy0[0]) / max(1.0, busy1[1] - busy0[1])
    )
    if cpu0 is not None and pid:
        result.server_cpu_seconds = proc_cpu_seconds(pid) - cpu0
    result.load_average = load_average()
    with trio.fail_after(options.request_timeout + 15):
        for handle in live:
            try:
                data = await handle.results.receive()
            except trio.EndOfChannel:  # the worker died: say so, keep the others' figures
                result.failures["worker exited"] += 1
                continue
            result.replies += data["replies"]
            result.updates += data["updates"]
            result.sent += data["sent"]
            result.late += data["late"]
            result.errors.update(data["errors"])
            result.failures.update(data["failures"])
            result.unexpected.update(data["unexpected"])
            result.unsupported = result.unsupported or data["unsupported"]
            result.crashes += data["crashes"]
            result.reconnects += data["reconnects"]
            result.histogram.merge(LatencyHistogram.from_json(data["histogram"]))
            wall = data["wall_seconds"] or result.seconds
            result.worker_cpu_percent.append(100 * data["cpu_seconds"] / wall)
    return result


async def run_load(
    options: LoadOptions,
    progress: ProgressHook | None = None,
    note: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Run the load and return the summary (a JSON-able dict; see docs/benchmarks.md)."""
    say = note or (lambda _text: None)
    raise_fd_limit()
    server: ServerProcess | None = None
    pid: int | None
    summary: dict[str, Any] = {"load_average_before": round(load_average(), 2)}
    try:
        if options.url is None:
            server = await start_scheduler(options.serve_args)
            url, pid = server.url, server.pid
            say(f"started {' '.join(server.command[1:])} (pid {pid}) at {url}")
        else:
            url, pid = options.url, options.server_pid
        summary |= {
            "url": url,
            "server_pid": pid,
            "server_started": server is not None,
            "mix": options.mix.mix,
            "batch_size": options.mix.batch_size if options.mix.mix == "batch" else None,
            "sessions": options.sessions,
            "workers": options.workers,
            "duration": options.duration,
            "crash_rate": options.crash_rate,
        }
        summary |= await _measured_run(options, url, pid, progress, say)
    finally:
        if server is not None:
            stderr = await server.stop()
            summary["server_exit_status"] = server.process.returncode
            summary["server_stderr"] = stderr[-4000:]
    summary["load_average_after"] = round(load_average(), 2)
    return summary


async def _measured_run(
    options: LoadOptions,
    url: str,
    pid: int | None,
    progress: ProgressHook | None,
    say: Callable[[str], None],
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    rss_before = proc_rss_kb(pid) if pid else None
    async with _workers(options, url) as handles:
        with trio.fail_after(options.open_timeout):
            for handle in handles:
                await handle.got_ready.wait()
        opened = sum(int((h.ready or {}).get("opened", 0)) for h in handles)
        open_failures: Counter[str] = Counter()
        for handle in handles:
            open_failures.update((handle.ready or {}).get("failed", {}))
        say(f"{opened:,} of {options.sessions:,} sessions open over {len(handles)} worker(s)")
        out |= {"sessions_opened": opened, "open_failures": dict(open_failures)}
        if rss_before is not None and pid:
            await trio.sleep(options.settle)
            rss_after = proc_rss_kb(pid)
            out |= {
                "rss_before_kb": rss_before,
                "rss_after_kb": rss_after,
                "rss_per_session_kb": round((rss_after - rss_before) / opened, 2)
                if opened
                else None,
            }
        if not opened:
            return out
        windows: list[WindowResult] = []
        if options.warmup:
            warm = replace(options, duration=options.warmup)
            await _window(
                handles,
                label="warm-up",
                rate=options.rate,
                options=warm,
                pid=pid,
                progress=progress,
            )
        main = await _window(
            handles,
            label="main",
            rate=options.rate,
            options=options,
            pid=pid,
            progress=progress,
        )
        windows.append(main)
        for fraction in options.sweep:
            if main.unsupported or not main.rate:
                break
            label = f"{fraction:.0%} of max"
            windows.append(
                await _window(
                    handles,
                    label=label,
                    rate=fraction * main.rate,
                    options=options,
                    pid=pid,
                    progress=progress,
                )
            )
    first = windows[0].to_json()
    out |= {
        "rate": first["rate"],
        "updates_rate": first["updates_rate"],
        "p50_ms": first["p50_ms"],
        "p99_ms": first["p99_ms"],
        "server_cpu_percent": first["server_cpu_percent"],
        "generator_cpu_percent": first["generator_cpu_percent"],
        "batch_unsupported": first["batch_unsupported"],
        "windows": [w.to_json() for w in windows],
    }
    if out["rate"] and first["server_cpu_percent"]:
        out["replies_per_server_cpu_second"] = round(
            100 * out["rate"] / first["server_cpu_percent"], 1
        )
    return out
