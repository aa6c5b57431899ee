"""End to end, with real processes on loopback: the seeds' exit scenario.

A ``scheduler serve`` subprocess with short intervals (announce 1 s, ping
0.5 s / 0.5 s, grace 1 s) and three ``scheduler peer`` subprocesses; the test
reads ``/api/v1/hosts`` and ``/metrics``. Every wait polls with a deadline;
every process started is killed at the end.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import urllib.request
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import pytest
import trio

pytestmark = pytest.mark.e2e

ANNOUNCE = 1.0
PING_INTERVAL = 0.5
PING_TIMEOUT = 0.5
GRACE = 1.0
TASK_URL = "https://example.invalid/big.iso"
T = TypeVar("T")


class Processes:
    """Every process a test starts, killed (and reaped) at the end."""

    def __init__(self) -> None:
        self.started: list[subprocess.Popen[str]] = []

    def start(self, *args: str) -> subprocess.Popen[str]:
        process = subprocess.Popen(
            [sys.executable, "-m", "scheduler", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        self.started.append(process)
        # Drain stderr so a chatty process can never block on a full pipe.
        threading.Thread(target=process.stderr.read, daemon=True).start()  # type: ignore[union-attr]
        return process

    def stop_all(self) -> None:
        kill_and_reap(self.started)


def kill_and_reap(processes: Sequence[subprocess.Popen[str]]) -> None:
    """SIGKILL every process still running (resumed first, if a test froze it), reap them
    all, and close their pipes."""
    for process in processes:
        if process.poll() is None:
            process.send_signal(signal.SIGCONT)
            process.kill()
    for process in processes:
        process.wait(timeout=10)
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
    procs: Processes, ws_url: str, name: str, announce: float = ANNOUNCE, *extra: str
) -> subprocess.Popen[str]:
    return procs.start(
        "peer",
        "--scheduler", ws_url,
        "--hostname", name,
        "--announce-interval", f"{announce}s",
        "--task", TASK_URL,
        *extra,
    )  # fmt: skip


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
    # p-stop also announces its upload capacity, as a daemon that knows its NIC would.
    extra = {"p-stop": ("--upload-bandwidth", "10G")}
    peers = {
        name: start_peer(processes, ws_url, name, every, *extra.get(name, ()))
        for name, every in intervals.items()
    }

    def all_three_with_their_peer() -> dict[str, dict[str, Any]] | None:
        now = hosts(admin)
        return now if len(now) == 3 and all(h["peers"] == 1 for h in now.values()) else None

    listed = await poll(all_three_with_their_peer, 20, "3 hosts, each with its peer")
    assert {h["state"] for h in listed.values()} == {"connected"}
    assert {name: h["upload_bandwidth"] for name, h in listed.items()} == {
        "p-term": 0,
        "p-kill": 0,
        "p-stop": 10**10,
    }
    assert listed["p-stop"]["upload"]["window_bytes"] == 0  # nobody reported an upload
    tasks = get(f"{admin}/api/v1/tasks")
    assert [t["peers"] for t in tasks] == [3]

    # (a) SIGTERM: the peer leaves; gone within 2 s; the others untouched.
    peers["p-term"].send_signal(signal.SIGTERM)
    await poll(lambda: "p-term" not in hosts(admin), 2.0, "p-term to leave")
    assert peers["p-term"].wait(timeout=5) == 0
    now = hosts(admin)
    for name in ("p-kill", "p-stop"):
        assert now[name]["state"] == "connected"
        assert now[name]["created_at"] == listed[name]["created_at"]

    # (b) SIGKILL: disconnected within 1 s, evicted within grace + 1 s.
    peers["p-kill"].kill()
    killed = trio.current_time()
    await poll(lambda: hosts(admin).get("p-kill", {}).get("state") != "connected", 1.0,
         "p-kill to be disconnected")  # fmt: skip
    await poll(lambda: "p-kill" not in hosts(admin), GRACE + 1.0, "p-kill to be evicted")
    assert trio.current_time() - killed <= GRACE + 1.0 + 0.1

    # (c) SIGSTOP: evicted within ping interval + ping timeout + grace + 1 s;
    #     after SIGCONT it reconnects and is listed again.
    peers["p-stop"].send_signal(signal.SIGSTOP)
    bound = PING_INTERVAL + PING_TIMEOUT + GRACE + 1.0
    await poll(lambda: "p-stop" not in hosts(admin), bound, "p-stop to be evicted")
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
    stopped = trio.current_time()
    server.send_signal(signal.SIGTERM)
    assert server.wait(timeout=10) == 0
    assert trio.current_time() - stopped < 5.0
    assert peer.poll() is None  # the peer survives and keeps trying to reconnect


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
