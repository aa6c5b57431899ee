"""Scenario 2, scheduler restart (seeds 000 and 003): SIGKILL the scheduler under load.

``scaled(1000)`` hosts in ten ``scheduler peer --hosts N`` processes, each host with a
running peer. We SIGKILL the scheduler and start it again on the same ports: within
10 s of its start-up at least 99.9 % of the hosts announce again with their peers
registered (the new scheduler's ``created_at`` of each host and peer). The hosts'
full-jitter backoff spreads the reconnects: we report how
they spread (from the new scheduler's ``created_at`` of each host) and the peak per
100 ms, and check it is no thundering herd.

The scheduler stays down for at least ``DOWN`` seconds, as under a supervisor's restart.
How spread the reconnects can be depends on that outage: the hosts' backoff windows
(0.1 s doubling) have grown to about the outage when it ends. Simulating the backoff
(base 0.1 s, cap 5 s) for 100 hosts and an outage of 1.3 s (``DOWN`` plus a start-up)
50,000 times, the busiest 100 ms window held 11 hosts at the median and 26 at the
worst; after a 0.5 s outage it holds 24 at the median and 42 at the worst, so a
shorter outage would make the bound below a coin toss. A herd without jitter puts
every host in one or two windows.
"""

from __future__ import annotations

import collections
import math
import time
from typing import Any

import pytest
import trio

from scheduler.client import open_scheduler_session
from scheduler.protocol import HostAccepted, HostPayload

from .cluster import Cluster, get, percentile, poll, scaled
from .conftest import Figures

pytestmark = [pytest.mark.chaos, pytest.mark.e2e]

GROUPS = 10
TASKS = [f"https://example.invalid/restart-{n}.iso" for n in range(GROUPS)]
BOUND = 10.0
SHARE = 0.999
#: How long the scheduler stays down, at least (its start-up adds to it).
DOWN = 1.0
#: The busiest 100 ms window may hold at most this share of the hosts.
PEAK_SHARE = 0.4
#: How long the test waits for what the new scheduler's timestamps then measure.
WAIT = 120.0


async def accepted_once(url: str) -> HostAccepted:
    """Announce a throwaway host, return its ``host_accepted``, and leave."""
    host = HostPayload(hostname="restart-probe", ip="127.0.0.2", port=1, download_port=2)
    with trio.fail_after(15):
        async with open_scheduler_session(url, host, interval=None) as session:
            accepted = session.accepted
            await session.leave(ack_timeout=5)
    return accepted


def ours(listed: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [h for h in listed if h["hostname"].startswith("r")]


async def test_seed000_seed003_scheduler_restart(cluster: Cluster, figures: Figures) -> None:
    per_group = scaled(1000, 100) // GROUPS
    total = per_group * GROUPS
    # Every host dials from 127.0.0.1 here, standing in for 1,000 machines: lift the
    # per-address caps (1,000 by default) above the hosts and the probes.
    one_address = (
        "--max-connections-per-address", "2000",
        "--max-sessions-per-address", "2000",
    )  # fmt: skip
    first = await cluster.start_scheduler(*one_address)
    for g in range(GROUPS):
        cluster.start_hosts(first.ws_url, f"r{g}", per_group, tasks=[TASKS[g]])

    def all_connected() -> list[dict[str, Any]] | None:
        listed = ours(get(f"{first.admin}/api/v1/hosts"))
        ready = [h for h in listed if h["state"] == "connected"]
        return listed if len(ready) == total else None

    await poll(all_connected, 180, f"{total} hosts connected", every=0.5)
    before = await accepted_once(first.ws_url)
    # A peer the evaluator gave up on (``fail``) has left: only running peers count.
    running = {h["hostname"] for h in ours(get(f"{first.admin}/api/v1/hosts")) if h["peers"]}

    killed_at = time.time()
    first.process.kill()
    first.process.wait(timeout=10)
    await trio.sleep(DOWN)  # the outage itself: the scenario's parameter, not a wait for state
    second = await cluster.start_scheduler(
        *one_address, port=first.port, admin_port=first.admin_port, name="scheduler-restarted"
    )
    ready_at = time.time()

    def back() -> list[dict[str, Any]] | None:
        listed = ours(get(f"{second.admin}/api/v1/hosts"))
        connected = {h["hostname"] for h in listed if h["state"] == "connected"}
        with_peers = {h["hostname"] for h in listed if h["peers"]} & running
        if len(connected) >= SHARE * total and len(with_peers) >= SHARE * len(running):
            return listed
        return None

    listed = await poll(back, WAIT, f"{SHARE:.1%} of {total} hosts back with their peers", 0.1)
    after = await accepted_once(second.ws_url)

    # When each host was back with its peer, by the new scheduler's own timestamps (its
    # records' created_at): the later of the host's announce and its first peer's.
    hostname_of = {h["id"]: h["hostname"] for h in listed}
    first_peer: dict[str, float] = {}
    for peer in get(f"{second.admin}/api/v1/peers?limit=100000"):
        name = hostname_of.get(peer["host_id"])
        if name is not None:
            first_peer[name] = min(first_peer.get(name, math.inf), peer["created_at"])
    back_times = sorted(
        max(h["created_at"], first_peer.get(h["hostname"], math.inf)) - ready_at
        for h in listed
        if h["hostname"] in running and h["state"] == "connected"
    )
    back_after = back_times[math.ceil(SHARE * len(running)) - 1]
    announced = sorted(h["created_at"] - ready_at for h in listed)
    buckets = collections.Counter(int(t // 0.1) for t in announced)
    peak = max(buckets.values())
    figures.add("hosts (10 processes) / with a running peer", f"{total} / {len(running)}")
    figures.add("scheduler down (SIGKILL to start-up line)", f"{ready_at - killed_at:.2f} s")
    figures.add(f"{SHARE:.1%} back with their peers after start-up", f"{back_after:.2f} s")
    figures.add("re-announce after start-up", f"first {announced[0]:.2f} s, "
                f"p50 {percentile(announced, 0.5):.2f} s, p99 {percentile(announced, 0.99):.2f} s, "
                f"last {announced[-1]:.2f} s")  # fmt: skip
    figures.add("peak re-announces per 100 ms", f"{peak} ({peak / total:.1%} of the hosts)")
    figures.add("100 ms windows with a re-announce", len(buckets))
    figures.add("boot_id in host_accepted before / after", f"{before.boot_id} / {after.boot_id}")

    assert back_after <= BOUND
    # No thundering herd: the backoff's jitter spreads the reconnects.
    assert peak <= PEAK_SHARE * total, sorted(buckets.items())
    # host_accepted carries the scheduler's boot_id: the restart is visible to clients.
    assert after.boot_id != before.boot_id
