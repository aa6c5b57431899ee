"""End to end, with real processes on loopback: the seeds' exit scenario.

A ``scheduler serve`` subprocess with short intervals (announce 1 s, ping
0.5 s / 0.5 s, grace 1 s) and three ``scheduler peer`` subprocesses; the test
reads ``/api/v1/hosts`` and ``/metrics``. Every wait polls with a deadline;
every process started is killed at the end.
"""

from __future__ import annotations

import json
import logging
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterable, Sequence
from typing import IO, Any, TypeVar

import pytest
import trio

from scheduler.service._logging import JsonFormatter, TextFormatter

pytestmark = pytest.mark.e2e

ANNOUNCE = 1.0
PING_INTERVAL = 0.5
PING_TIMEOUT = 0.5
GRACE = 1.0
TASK_URL = "https://example.invalid/big.iso"
#: How long a poll waits for what the scheduler's log then times: generous, as the
#: machine may be loaded; the bounds checked are the scheduler's own timestamps.
WAIT = 30.0
T = TypeVar("T")


#: A log line that says the process failed: a traceback, or a record at ERROR or above
#: (the text format's level column, or the JSON format's ``level`` field).
FAILURE_LINE = re.compile(
    r"Traceback \(most recent call last\)"
    r"|^\S+Z (ERROR|CRITICAL) "
    r'|"level":"(error|critical)"'
)


def failure_lines(lines: Iterable[str], allowed: Sequence[re.Pattern[str]] = ()) -> list[str]:
    """The lines of a process's stderr that show a failure, less the ``allowed`` ones."""
    return [
        line.rstrip("\n")
        for line in lines
        if FAILURE_LINE.search(line) and not any(a.search(line) for a in allowed)
    ]


class Processes:
    """Every process a test starts, killed (and reaped) at the end.

    Each process's stderr is kept (drained line by line, so a chatty process never
    blocks on a full pipe); :meth:`stop_all` fails if any of them logged a traceback
    or an ERROR line that ``allowed`` (the test's ``server_errors`` marker) does not
    match.
    """

    def __init__(self, allowed: Sequence[str] = ()) -> None:
        self.started: list[subprocess.Popen[str]] = []
        self.allowed = [re.compile(pattern) for pattern in allowed]
        self._stderr: dict[int, list[str]] = {}
        self._readers: list[threading.Thread] = []

    def start(self, *args: str) -> subprocess.Popen[str]:
        process = subprocess.Popen(
            [sys.executable, "-m", "scheduler", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        self.started.append(process)
        lines = self._stderr[process.pid] = []
        assert process.stderr is not None
        reader = threading.Thread(target=_drain, args=(process.stderr, lines), daemon=True)
        reader.start()
        self._readers.append(reader)
        return process

    def stderr(self, process: subprocess.Popen[str]) -> list[str]:
        """What ``process`` wrote to stderr so far, line by line."""
        return list(self._stderr[process.pid])

    def stop_all(self) -> None:
        """Kill and reap every process, then fail on any failure line they logged."""
        kill_and_reap(self.started, before_closing=self._join_readers)
        failed = [
            f"{' '.join(map(str, process.args[2:4]))} (pid {process.pid}): {line}"
            for process in self.started
            for line in failure_lines(self._stderr[process.pid], self.allowed)
        ]
        if failed:
            shown = "\n".join(failed[:40])
            raise AssertionError(f"{len(failed)} failure line(s) in stderr:\n{shown}")

    def _join_readers(self) -> None:
        for reader in self._readers:
            reader.join(timeout=10)


def _drain(pipe: IO[str], into: list[str]) -> None:
    for line in pipe:
        into.append(line)


def kill_and_reap(
    processes: Sequence[subprocess.Popen[str]], before_closing: Callable[[], None] = lambda: None
) -> None:
    """SIGKILL every process still running (resumed first, if a test froze it), reap them
    all, and close their pipes (after ``before_closing``: the readers' last lines)."""
    for process in processes:
        if process.poll() is None:
            process.send_signal(signal.SIGCONT)
            process.kill()
    for process in processes:
        process.wait(timeout=10)
    before_closing()
    for process in processes:
        for pipe in (process.stdout, process.stderr):
            if pipe is not None:
                pipe.close()


async def poll(check: Callable[[], T | None], within: float, what: str) -> T:
    """Run the blocking ``check`` (an HTTP call) until it returns a truthy value.

    ``within`` is the bound the scenario promises, enforced with ``fail_after``; the
    check runs in a worker thread so the deadline holds even if the server hangs.
    """
    try:
        with trio.fail_after(within):
            while True:
                value = await trio.to_thread.run_sync(check, abandon_on_cancel=True)
                if value is not None and value is not False:
                    return value
                await trio.sleep(0.02)
    except trio.TooSlowError:
        raise AssertionError(f"not within {within:.1f}s: {what}") from None


def get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as response:
        body = response.read().decode()
        if response.headers.get("content-type", "").startswith("application/json"):
            return json.loads(body)
        return body


def hosts(admin: str) -> dict[str, dict[str, Any]]:
    return {h["hostname"]: h for h in get(f"{admin}/api/v1/hosts")}


async def start_scheduler(procs: Processes) -> tuple[str, str]:
    server = procs.start(
        "serve",
        "--bind", "127.0.0.1",
        "--port", "0",
        "--admin-port", "0",
        "--ping-interval", f"{PING_INTERVAL}s",
        "--ping-timeout", f"{PING_TIMEOUT}s",
        "--reconnect-grace", f"{GRACE}s",
        "--task-idle-ttl", "0s",
        "--log-format", "json",
    )  # fmt: skip
    assert server.stdout is not None
    try:
        with trio.fail_after(20):
            line = await trio.to_thread.run_sync(server.stdout.readline, abandon_on_cancel=True)
    except trio.TooSlowError:
        raise AssertionError("the scheduler printed no start-up line within 20 s") from None
    match = re.search(r"(ws://\S+).*(http://\S+)", line)
    assert match, line
    return match.group(1), match.group(2)


def start_peer(
    procs: Processes, ws_url: str, name: str, announce: float = ANNOUNCE
) -> subprocess.Popen[str]:
    return procs.start(
        "peer",
        "--scheduler", ws_url,
        "--hostname", name,
        "--announce-interval", f"{announce}s",
        "--task", TASK_URL,
    )  # fmt: skip


def logged(
    processes: Processes, server: subprocess.Popen[str], message: str, **fields: object
) -> dict[str, Any] | None:
    """The first line of ``server``'s JSON log with ``message`` and ``fields``, if any."""
    for line in processes.stderr(server):
        if not line.startswith("{"):
            continue
        record = json.loads(line)
        if record["msg"] == message and all(record.get(k) == v for k, v in fields.items()):
            return record
    return None


def metric(admin: str, name: str, **labels: str) -> float:
    wanted = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    pattern = re.compile(rf"^{re.escape(name)}(\{{{re.escape(wanted)}\}})? (\S+)$", re.M)
    match = pattern.search(get(f"{admin}/metrics"))
    return float(match.group(2)) if match else 0.0


async def test_exit_scenario(processes: Processes) -> None:
    ws_url, admin = await start_scheduler(processes)
    # p-kill announces every 3 s: its TTL (6 s) cannot beat the grace (1 s) after the
    # kill, however loaded the machine, so its eviction is `disconnected` for sure.
    intervals = {"p-term": ANNOUNCE, "p-kill": 3.0, "p-stop": ANNOUNCE}
    peers = {name: start_peer(processes, ws_url, name, every) for name, every in intervals.items()}

    def all_three_with_their_peer() -> dict[str, dict[str, Any]] | None:
        now = hosts(admin)
        return now if len(now) == 3 and all(h["peers"] == 1 for h in now.values()) else None

    listed = await poll(all_three_with_their_peer, 20, "3 hosts, each with its peer")
    assert {h["state"] for h in listed.values()} == {"connected"}
    tasks = get(f"{admin}/api/v1/tasks")
    assert [t["peers"] for t in tasks] == [3]

    # The bounds are read from the scheduler's own timestamps (its JSON log's `ts`, the
    # wall clock this process reads too), not from how soon polling saw them: the
    # polls' own bounds are generous, as a loaded machine makes them late.
    server = processes.started[0]

    # (a) SIGTERM: the peer leaves; gone within 2 s; the others untouched.
    peers["p-term"].send_signal(signal.SIGTERM)
    termed = time.time()
    left = await poll(lambda: logged(processes, server, "evicted host", hostname="p-term"),
                      WAIT, "p-term to leave")  # fmt: skip
    assert left["reason"] == "leave"
    assert left["ts"] - termed <= 2.0
    assert "p-term" not in hosts(admin)
    assert peers["p-term"].wait(timeout=WAIT) == 0
    now = hosts(admin)
    for name in ("p-kill", "p-stop"):
        assert now[name]["state"] == "connected"
        assert now[name]["created_at"] == listed[name]["created_at"]

    # (b) SIGKILL: disconnected within 1 s, evicted within grace + 1 s of that.
    kill_id = listed["p-kill"]["id"]
    peers["p-kill"].kill()
    killed = time.time()
    dropped = await poll(lambda: logged(processes, server, "HostDisconnected", host_id=kill_id),
                         WAIT, "p-kill to be disconnected")  # fmt: skip
    assert dropped["ts"] - killed <= 1.0
    evicted = await poll(lambda: logged(processes, server, "evicted host", hostname="p-kill"),
                         WAIT, "p-kill to be evicted")  # fmt: skip
    assert evicted["reason"] == "disconnected"
    assert evicted["ts"] - dropped["ts"] <= GRACE + 1.0
    assert 0 <= evicted["lateness"] <= 1.0  # after the deadline the grace set, never before
    assert "p-kill" not in hosts(admin)

    # (c) SIGSTOP: evicted within ping interval + ping timeout + grace + 1 s;
    #     after SIGCONT it reconnects and is listed again.
    peers["p-stop"].send_signal(signal.SIGSTOP)
    stopped = time.time()
    bound = PING_INTERVAL + PING_TIMEOUT + GRACE + 1.0
    gone = await poll(lambda: logged(processes, server, "evicted host", hostname="p-stop"),
                      WAIT, "p-stop to be evicted")  # fmt: skip
    assert gone["ts"] - stopped <= bound
    assert "p-stop" not in hosts(admin)
    peers["p-stop"].send_signal(signal.SIGCONT)
    back = await poll(lambda: hosts(admin).get("p-stop"), 15, "p-stop to reconnect")
    assert back["state"] == "connected"

    # (d) every reason counted; the evicted hosts' peers and the idle task reclaimed.
    assert metric(admin, "scheduler_host_evictions_total", reason="leave") == 1
    disconnected = metric(admin, "scheduler_host_evictions_total", reason="disconnected")
    # The stopped host goes by whichever comes first: the dropped session's grace or
    # its announce TTL (2 × 1 s); both are the documented reasons.
    expired = metric(admin, "scheduler_host_evictions_total", reason="ttl_expired")
    assert disconnected >= 1
    assert disconnected + expired >= 2
    assert metric(admin, "scheduler_peer_evictions_total", reason="host_evicted") >= 3
    await poll(lambda: hosts(admin)["p-stop"]["peers"] == 1, 5, "p-stop's peer to be back")
    peers_now = get(f"{admin}/api/v1/peers")
    assert [p["host_id"] for p in peers_now] == [hosts(admin)["p-stop"]["id"]]
    # Stop the last peer: the task loses its last peer and is reclaimed (idle TTL 0).
    peers["p-stop"].send_signal(signal.SIGTERM)
    assert peers["p-stop"].wait(timeout=5) == 0
    await poll(lambda: get(f"{admin}/api/v1/tasks") == [], 5, "the idle task to be reclaimed")
    assert metric(admin, "scheduler_task_evictions_total", reason="idle") >= 1
    assert hosts(admin) == {}


async def test_sigterm_stops_the_scheduler_gracefully(processes: Processes) -> None:
    ws_url, admin = await start_scheduler(processes)
    peer = start_peer(processes, ws_url, "p1")
    await poll(lambda: "p1" in hosts(admin), 20, "p1 to announce")
    server = processes.started[0]
    server.send_signal(signal.SIGTERM)
    assert server.wait(timeout=WAIT) == 0  # it shut down (0), not killed on a timeout
    shutting = logged(processes, server, "shutting down")
    assert shutting is not None
    assert shutting["sessions"] == 1
    assert peer.poll() is None  # the peer survives and keeps trying to reconnect


def _logged(formatter: logging.Formatter, level: int, *, exc: bool = False) -> list[str]:
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        exc_info = sys.exc_info() if exc else None
    record = logging.LogRecord("scheduler.x", level, __file__, 1, "a line", (), exc_info)
    return [line + "\n" for line in formatter.format(record).split("\n")]


@pytest.mark.parametrize("formatter", [TextFormatter(), JsonFormatter()])
def test_a_failure_line_is_an_error_record_or_a_traceback(formatter: logging.Formatter) -> None:
    """What the ``processes`` fixture fails on, in both log formats: ERROR and CRITICAL
    records and any traceback (even under a WARNING); nothing else, nothing allowed."""
    for level in (logging.ERROR, logging.CRITICAL):
        assert len(failure_lines(_logged(formatter, level))) == 1
    assert failure_lines(_logged(formatter, logging.WARNING)) == []
    assert failure_lines(_logged(formatter, logging.INFO)) == []
    assert len(failure_lines(_logged(formatter, logging.WARNING, exc=True))) == 1
    assert failure_lines(["Traceback (most recent call last):\n"]) == [
        "Traceback (most recent call last):"
    ]
    assert failure_lines(_logged(formatter, logging.ERROR), [re.compile("a line")]) == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--ping-interval", "soon"], "argument --ping-interval"),
        (["--port", "99999"], "port must be 0-65535"),
        (["--plugin", "no_such_plugin"], "plugins.enable: no plugin named 'no_such_plugin'"),
        (["--disable-plugin", "x", "--config", "/nonexistent.toml"], "--config: cannot read"),
    ],
)
def test_bad_flags_exit_2_with_a_clear_message(args: list[str], message: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "scheduler", "serve", *args],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 2
    assert message in result.stderr
