"""Real processes on loopback for the chaos suite: a scheduler, hosts, and polling.

Every process is started through :class:`Cluster`, which kills (SIGKILL, after a
SIGCONT) and reaps all of them when the fixture ends. Waiting for a condition
polls the admin API under a deadline (:func:`poll`); nothing sleeps to synchronise.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import attrs
import trio

from tests.test_e2e import failure_lines, kill_and_reap

T = TypeVar("T")

#: ``CHAOS_SCALE`` sizes every scenario: 1 is the issue's full scale (``nox -s chaos``);
#: the default, 0.1, is what CI and a plain ``pytest`` run (a tenth of the hosts, frames
#: and time). Each scenario keeps a floor so that its checks still mean something.
SCALE = float(os.environ.get("CHAOS_SCALE", "0.1"))
FULL = SCALE >= 1.0


def scaled(full: int, floor: int) -> int:
    """``full`` at full scale, else ``full * CHAOS_SCALE`` but at least ``floor``."""
    return max(floor, round(full * SCALE))


@attrs.define
class Scheduler:
    process: subprocess.Popen[str]
    ws_url: str
    admin: str
    port: int
    admin_port: int
    log: Path


@attrs.define
class Cluster:
    """Every process a scenario starts; :meth:`stop_all` kills and reaps them, then fails
    on a traceback in any process's log, or an ERROR line in a scheduler's log, unless
    a pattern of ``allowed`` (set by the scenario) matches it."""

    workdir: Path
    started: list[subprocess.Popen[str]] = attrs.Factory(list)
    #: Every log written: (path, whether a scheduler wrote it).
    logs: list[tuple[Path, bool]] = attrs.Factory(list)
    allowed: list[re.Pattern[str]] = attrs.Factory(list)

    def _start(self, args: Sequence[str], log: Path, *, stdout: bool) -> subprocess.Popen[str]:
        self.logs.append((log, args[0] == "serve"))
        with log.open("w") as err:
            process = subprocess.Popen(
                [sys.executable, "-m", "scheduler", *args],
                stdout=subprocess.PIPE if stdout else subprocess.DEVNULL,
                stderr=err,
                stdin=subprocess.DEVNULL,
                text=True,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )
        self.started.append(process)
        return process

    async def start_scheduler(
        self, *flags: str, port: int = 0, admin_port: int = 0, name: str = "scheduler"
    ) -> Scheduler:
        """``scheduler serve`` on 127.0.0.1; returns once it printed its URLs."""
        log = self.workdir / f"{name}.log"
        process = self._start(
            [
                "serve",
                "--bind", "127.0.0.1",
                "--port", str(port),
                "--admin-port", str(admin_port),
                "--log-level", "warning",
                *flags,
            ],
            log,
            stdout=True,
        )  # fmt: skip
        assert process.stdout is not None
        try:
            with trio.fail_after(30):
                line = await trio.to_thread.run_sync(
                    process.stdout.readline, abandon_on_cancel=True
                )
        except trio.TooSlowError:
            raise AssertionError(
                f"the scheduler printed no start-up line within 30 s; {log}"
            ) from None
        match = re.search(r"(ws://127\.0\.0\.1:(\d+)\S*).*(http://127\.0\.0\.1:(\d+)\S*)", line)
        assert match, f"start-up line {line!r}; log: {log.read_text()[-2000:]}"
        return Scheduler(process, match[1], match[3].rstrip("/"), int(match[2]), int(match[4]), log)

    def start_hosts(
        self,
        scheduler_url: str,
        prefix: str,
        count: int,
        *,
        tasks: Sequence[str] = (),
        announce_interval: str = "30s",
        seed: bool = False,
    ) -> subprocess.Popen[str]:
        """One ``scheduler peer --hosts count`` process: ``prefix-0`` ... ``prefix-<count-1>``."""
        args = [
            "peer",
            "--scheduler", scheduler_url,
            "--hostname", prefix,
            "--hosts", str(count),
            "--announce-interval", announce_interval,
            "--log-level", os.environ.get("CHAOS_PEER_LOG_LEVEL", "error"),
        ]  # fmt: skip
        for task in tasks:
            args += ["--task", task]
        if seed:
            args.append("--seed")
        if count == 1:
            raise ValueError("use count >= 2: one host keeps the plain hostname")
        return self._start(args, self.workdir / f"{prefix}.log", stdout=False)

    def kill(self, processes: Sequence[subprocess.Popen[str]]) -> list[float]:
        """SIGKILL all of them at once, then reap them; return when each was reaped
        (``time.time()``): a process's sockets are closed, and its peers can see the
        end, only once the kernel has torn the process down."""
        for process in processes:
            process.kill()
        reaped: list[float] = []
        for process in processes:
            process.wait(timeout=10)
            reaped.append(time.time())
        return reaped

    def stop_all(self) -> None:
        kill_and_reap(self.started)
        failed = [f"{log.name}: {line}" for log, _ in self.logs for line in self.failures(log)]
        if failed:
            shown = "\n".join(failed[:40])
            raise AssertionError(f"{len(failed)} failure line(s) in the logs:\n{shown}")

    def failures(self, log: Path) -> list[str]:
        """A log's failure lines: any traceback; in a scheduler's log, ERROR lines too.
        (The hosts log at ERROR when their scheduler goes, which some scenarios do.)"""
        scheduler = dict(self.logs)[log]
        lines = log.read_text(errors="replace").splitlines() if log.exists() else []
        found = failure_lines(lines, self.allowed)
        return found if scheduler else [line for line in found if "Traceback" in line]


def new_workdir() -> Path:
    return Path(tempfile.mkdtemp(prefix="chaos-"))


async def poll(check: Callable[[], T | None], within: float, what: str, every: float = 0.02) -> T:
    """Run the blocking ``check`` (admin HTTP calls) until it returns something truthy.

    ``within`` is the bound the scenario promises, enforced with ``fail_after``; the
    check runs in a worker thread so the deadline holds even if the server hangs.
    """
    try:
        with trio.fail_after(within):
            while True:
                value = await trio.to_thread.run_sync(check, abandon_on_cancel=True)
                if value is not None and value is not False:
                    return value
                await trio.sleep(every)
    except trio.TooSlowError:
        raise AssertionError(f"not within {within:.1f}s: {what}") from None


def get(url: str, timeout: float = 10.0) -> Any:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        body = response.read().decode()
        if response.headers.get("content-type", "").startswith("application/json"):
            return json.loads(body)
        return body


def hosts(admin: str) -> dict[str, dict[str, Any]]:
    return {h["hostname"]: h for h in get(f"{admin}/api/v1/hosts")}


def metric(admin: str, name: str, **labels: str) -> float:
    """One sample of ``/metrics`` (0 when absent)."""
    wanted = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    pattern = re.compile(rf"^{re.escape(name)}(\{{{re.escape(wanted)}\}})? (\S+)$", re.M)
    match = pattern.search(get(f"{admin}/metrics"))
    return float(match.group(2)) if match else 0.0


def log_records(log: Path, message: str) -> list[dict[str, Any]]:
    """The records of a JSON-format log (``--log-format json``) with ``message``."""
    records = []
    for line in log.read_text().splitlines():
        if line.startswith("{"):
            record = json.loads(line)
            if record.get("msg") == message:
                records.append(record)
    return records


def rss_bytes(pid: int) -> int:
    """The resident set size of a process, from /proc (Linux)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmRSS for pid {pid}")


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q`` quantile (0..1) of ``values``, nearest rank; 0 for none."""
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))]


@attrs.frozen
class Histogram:
    """A Prometheus histogram read from ``/metrics``, summed over its other labels."""

    buckets: dict[float, float]  # cumulative count per upper bound ``le``
    total: float  # _sum
    count: float  # _count

    def since(self, earlier: Histogram) -> Histogram:
        return Histogram(
            {le: n - earlier.buckets.get(le, 0.0) for le, n in self.buckets.items()},
            self.total - earlier.total,
            self.count - earlier.count,
        )

    def upper_bound(self) -> float:
        """The smallest ``le`` that holds every observation (``inf`` past the last bucket)."""
        for le in sorted(self.buckets):
            if self.buckets[le] >= self.count:
                return le
        return float("inf")

    def mean(self) -> float:
        return self.total / self.count if self.count else 0.0


def histogram(admin: str, name: str) -> Histogram:
    text = get(f"{admin}/metrics")
    buckets: dict[float, float] = {}
    total = count = 0.0
    for line in text.splitlines():
        if line.startswith(f"{name}_bucket{{"):
            le = float(re.search(r'le="([^"]+)"', line)[1])  # type: ignore[index]
            buckets[le] = buckets.get(le, 0.0) + float(line.rsplit(" ", 1)[1])
        elif line.startswith((f"{name}_sum", f"{name}_count")):
            value = float(line.rsplit(" ", 1)[1])
            if line.startswith(f"{name}_sum"):
                total += value
            else:
                count += value
    return Histogram(buckets, total, count)
