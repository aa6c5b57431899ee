"""End to end, with real processes on loopback: preheat.

A ``scheduler serve`` subprocess, reference peers (``scheduler peer``, seeds and
normal hosts) and ``scheduler preheat`` itself, as an operator runs them. Every
wait polls with a deadline; every process started is killed at the end.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from typing import Any

import pytest
import trio

from tests.conftest import Processes
from tests.test_e2e import get, poll

pytestmark = pytest.mark.e2e

MIB = 1024 * 1024
URL = "https://origin.example/images/app-v2.tar"


async def start_scheduler(procs: Processes, *flags: str) -> tuple[str, str]:
    server = procs.start(
        "serve", "--bind", "127.0.0.1", "--port", "0", "--admin-port", "0", *flags
    )  # fmt: skip
    assert server.stdout is not None
    with trio.fail_after(20):
        line = await trio.to_thread.run_sync(server.stdout.readline, abandon_on_cancel=True)
    match = re.search(r"(ws://\S+).*(http://\S+)", line)
    assert match, line
    return match.group(1), match.group(2)


def connected(admin: str) -> int:
    return sum(1 for h in get(f"{admin}/api/v1/hosts") if h["state"] == "connected")


async def preheat(*args: str, within: float = 60.0) -> subprocess.CompletedProcess[str]:
    """``scheduler preheat ARGS`` as a script runs it: its exit status and its output."""
    command = [sys.executable, "-m", "scheduler", "preheat", *args]
    with trio.fail_after(within):
        return await trio.to_thread.run_sync(
            lambda: subprocess.run(
                command, capture_output=True, text=True, timeout=within, check=False
            )
        )


async def test_a_preheat_of_64_mib_on_the_seed_succeeds(processes: Processes) -> None:
    ws_url, admin = await start_scheduler(processes)
    processes.start("peer", "--scheduler", ws_url, "--hostname", "seed-1", "--seed")
    await poll(lambda: connected(admin) == 1, 20, "the seed to announce")

    done = await preheat(URL, "--admin", admin, "--content-length", str(64 * MIB), "--json")
    assert done.returncode == 0, done.stderr
    job = json.loads(done.stdout)
    assert (job["state"], job["scope"], job["reasons"]) == ("succeeded", "single_seed", [])
    (host,) = job["hosts"]
    assert (host["hostname"], host["seed"], host["state"]) == ("seed-1", True, "succeeded")
    assert host["finished_pieces"] == host["total_pieces"] == 16  # 64 MiB in 4 MiB pieces
    assert f"job {job['id']} succeeded: 1 of 1 hosts hold {URL}" in done.stderr
    (task,) = get(f"{admin}/api/v1/tasks")
    assert (task["id"], task["content_length"]) == (job["task_id"], 64 * MIB)
    listed = get(f"{admin}/api/v1/jobs")
    assert [j["id"] for j in listed] == [job["id"]]

    # The progress bar's run, and what scripts can tell apart by the exit status.
    again = await preheat(URL + "?v=2", "--admin", admin, "--content-length", str(MIB))
    assert again.returncode == 0, again.stderr
    assert "succeeded: 1 of 1 hosts" in again.stderr
    nobody = await preheat(URL, "--admin", admin, "--scope", "all_seeds", "--ip", "10.9.9.9")
    assert nobody.returncode == 3
    assert "HTTP 409" in nobody.stderr
    assert "no connected host matches scope all_seeds" in nobody.stderr
    invalid = await preheat("u", "--admin", admin, "--piece-length", "0")
    assert invalid.returncode == 2
    assert "--piece-length" in invalid.stderr
    unreachable = await preheat(URL, "--admin", "http://127.0.0.1:9", within=30)
    assert unreachable.returncode == 3
    assert "scheduler: error:" in unreachable.stderr
    assert len(get(f"{admin}/api/v1/jobs")) == 2


async def test_all_peers_over_20_hosts_respects_the_back_to_source_limit(
    processes: Processes,
) -> None:
    origin_fetches = 2
    ws_url, admin = await start_scheduler(processes, "--jobs-origin-fetches", str(origin_fetches))
    processes.start("peer", "--scheduler", ws_url, "--hostname", "node", "--hosts", "20")
    await poll(lambda: connected(admin) == 20, 30, "20 hosts to announce")

    submitted = await preheat(
        URL, "--admin", admin, "--scope", "all_peers", "--content-length", str(16 * MIB),
        "--no-wait",
    )  # fmt: skip
    assert submitted.returncode == 0, submitted.stderr
    job_id = submitted.stdout.strip()
    url = f"{admin}/api/v1/jobs/{job_id}"
    task_id = get(url)["task_id"]
    most_at_origin = 0

    def finished() -> dict[str, Any] | None:
        nonlocal most_at_origin
        peers = get(f"{admin}/api/v1/peers?task={task_id}")
        at_origin = sum(1 for p in peers if p["state"] == "back_to_source")
        most_at_origin = max(most_at_origin, at_origin)
        job: dict[str, Any] = get(url)
        return job if job["state"] in ("succeeded", "failed") else None

    job = await poll(finished, 60, "the preheat to finish")
    assert (job["state"], job["reasons"]) == ("succeeded", [])
    assert job["hosts_by_state"]["succeeded"] == 20
    # Never more than origin_fetches at the origin at once, as sampled ...
    assert most_at_origin <= origin_fetches
    # ... and by construction: until the first host held the whole task, at most
    # origin_fetches hosts had been asked.
    first_done = min(h["finished_at"] for h in job["hosts"])
    asked_before = [h for h in job["hosts"] if h["dispatched_at"] < first_done]
    assert 1 <= len(asked_before) <= origin_fetches
    # Whoever fetched from the origin named no parent for its pieces: at most those.
    peers = get(f"{admin}/api/v1/peers?task={task_id}")
    assert len(peers) == 20
    assert all(p["state"] == "succeeded" for p in peers)
    from_origin = [p for p in peers if not p["piece_parents"]]
    assert 1 <= len(from_origin) <= origin_fetches
