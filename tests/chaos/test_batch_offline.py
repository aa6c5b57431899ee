"""Scenario 1, batch offline (seed 000): SIGKILL 30 % of the hosts at once.

Hosts run in ``GROUPS`` ``scheduler peer --hosts N`` processes, each host holding a
peer of three of the ``TASKS`` tasks; the probe (a host in the test process) keeps
asking for parents throughout. We SIGKILL the three processes whose hosts were
handed out as parents most often (30 % of the hosts), and check: every killed host
is unschedulable within 0.1 s (the server's own ``disconnected_at``), evicted within
1 s of its deadline (disconnected_at + grace: the server's eviction lateness), the
survivors are untouched, and no parent handed out after the detection (a reply or
a push) belongs to a killed host, nor is any parent still held on one.
"""

from __future__ import annotations

import collections
import os
import time

import pytest
import trio

from .cluster import FULL, Cluster, get, histogram, hosts, metric, percentile, poll, scaled
from .conftest import Figures
from .probe import Probe

pytestmark = [pytest.mark.chaos, pytest.mark.e2e]

GROUPS = 10
KILLED_GROUPS = 3
TASKS = [f"https://example.invalid/batch-{n}.iso" for n in range(5)]
GRACE = 2.0
DETECTION_BOUND = 0.1


#: Below full scale (CI, a plain pytest run, on a shared machine): a fixed, generous
#: bound; the issue's 0.1 s is held by the full-scale run (``nox -s chaos``).
CI_DETECTION_BOUND = 5 * DETECTION_BOUND
#: How long the test waits for what the server's timestamps then measure.
WAIT = 30.0


def detection_bound() -> float:
    return DETECTION_BOUND if FULL else CI_DETECTION_BOUND


def group_tasks(group: int) -> list[str]:
    return [TASKS[(group + k) % len(TASKS)] for k in range(3)]


async def test_seed000_batch_offline(cluster: Cluster, figures: Figures) -> None:
    per_group = scaled(300, 40) // GROUPS
    total = per_group * GROUPS
    scheduler = await cluster.start_scheduler(
        "--reconnect-grace", f"{GRACE:g}s"
    )  # fmt: skip
    admin = scheduler.admin
    groups = [
        cluster.start_hosts(scheduler.ws_url, f"g{g}", per_group, tasks=group_tasks(g))
        for g in range(GROUPS)
    ]

    def everyone_with_peers() -> bool:
        listed = hosts(admin)
        # A peer may fail after the evaluator's retries and leave (a download that
        # gave up): the hosts registered their peers once most hold some.
        connected = [h for h in listed.values() if h["state"] == "connected"]
        return len(connected) == total and sum(h["peers"] >= 1 for h in connected) >= 0.9 * total

    await poll(everyone_with_peers, 180, f"{total} hosts with their peers", every=0.5)
    probe = Probe(scheduler.ws_url, TASKS)
    async with trio.open_nursery() as nursery:
        with trio.fail_after(30):
            await nursery.start(probe.run)

        # Kill the groups that fed the probe most: their hosts are parents in use.
        def enough_parents() -> bool:
            return sum(len(h.hosts) for h in probe.handed) >= 50

        await poll(enough_parents, 30, "the probe to be handed 50 parents")
        fed = collections.Counter(name.split("-")[1] for h in probe.handed for name in h.hosts)
        ranked = sorted(range(GROUPS), key=lambda g: -fed.get(f"g{g}", 0))
        killed_groups = set(ranked[:KILLED_GROUPS])
        before = {n: h for n, h in hosts(admin).items() if n != probe.hostname}
        killed = {n for n in before if int(n.split("-")[0][1:]) in killed_groups}
        survivors = set(before) - killed
        assert len(killed) == total * KILLED_GROUPS // GROUPS

        lateness_before = histogram(admin, "scheduler_eviction_lateness_seconds")
        killed_at = time.time()
        reaped = cluster.kill([groups[g] for g in sorted(killed_groups)])
        began = trio.current_time()

        def all_unschedulable() -> dict[str, dict[str, object]] | None:
            now = hosts(admin)
            down = {n: now[n] for n in killed if n in now}
            gone = killed - set(now)
            if gone or all(h["state"] != "connected" for h in down.values()):
                return down
            return None

        # Every 50 ms: the figure is the server's own timestamps, and a listing of every host
        # costs the scheduler a few ms of the CPU it needs for the 90 ends.
        down = await poll(all_unschedulable, 5, "every killed host to be disconnected", 0.05)
        seen_down_at = time.time()
        detection = [float(h["disconnected_at"]) - killed_at for h in down.values()]  # type: ignore[arg-type]
        await poll(lambda: not killed & set(hosts(admin)), WAIT, "every killed host evicted")
        evicted_after = trio.current_time() - began
        lateness = histogram(admin, "scheduler_eviction_lateness_seconds").since(lateness_before)
        after = hosts(admin)
        nursery.cancel_scope.cancel()

    # Untouched: still connected, the same record (not a new announce), the same peers.
    fields = ("state", "created_at", "peers")
    touched = sorted(
        name
        for name in survivors
        if [after.get(name, {}).get(f) for f in fields] != [before[name][f] for f in fields]
    )
    assert all(before[name]["state"] == "connected" for name in survivors)
    killed_ids = {f"127.0.0.1-{n}" for n in killed}
    # Replies to requests sent after the detection was seen: decided after it. Pushes
    # arriving after it were decided once the server had marked every killed host (a
    # dropped session defers its pushes until the ends read in that turn are marked):
    # none may name a killed host either.
    late = [
        h
        for h in probe.parents_since(seen_down_at)
        if h.latency is not None and killed_ids & set(h.hosts)
    ]
    late_pushes = [
        h
        for h in probe.parents_since(seen_down_at)
        if h.latency is None and killed_ids & set(h.hosts)
    ]
    held = [
        parent
        for peer in get(f"{admin}/api/v1/peers?limit=100000")
        for parent in peer["parents"]
        if parent.split("/")[0] in killed_ids
    ]
    in_window = [h for h in probe.handed if killed_at <= h.at < seen_down_at]
    window_killed = [h for h in in_window if killed_ids & set(h.hosts)]
    fed_by_killed = sum(1 for h in probe.handed if h.at < killed_at and killed_ids & set(h.hosts))
    decisions_after = [h for h in probe.parents_since(seen_down_at) if h.latency is not None]
    latencies = [h.latency for h in decisions_after if h.latency is not None]

    figures.add("hosts / killed (3 of 10 processes)", f"{total} / {len(killed)}")
    figures.add("detection, server disconnected_at - kill", f"max {max(detection) * 1000:.1f} ms, "
                f"p50 {percentile(detection, 0.5) * 1000:.1f} ms")  # fmt: skip
    figures.add("killed processes reaped after the kill (their sockets closed)",
                f"{(max(reaped) - killed_at) * 1000:.1f} ms")  # fmt: skip
    bound = detection_bound()
    figures.add("detection bound applied", f"{bound * 1000:.0f} ms (load {os.getloadavg()[0]:.1f})")
    figures.add("all killed hosts evicted after", f"{evicted_after:.2f} s (grace {GRACE:g} s)")
    figures.add("evictions after their deadline (server)", f"{lateness.count:.0f}, all <= "
                f"{lateness.upper_bound() * 1000:g} ms")  # fmt: skip
    figures.add("decisions before the kill naming a killed host", fed_by_killed)
    figures.add("decisions between kill and detection seen", f"{len(in_window)} "
                f"({len(window_killed)} naming a killed host)")  # fmt: skip
    p99 = percentile(latencies, 0.99) * 1000
    figures.add("decisions after detection", f"{len(decisions_after)}, p99 {p99:.1f} ms; "
                f"naming a killed host: {len(late)}")  # fmt: skip
    figures.add("pushes arriving after detection naming a killed host", len(late_pushes))
    figures.add("parents held after eviction on a killed host", len(held))
    figures.add("survivors untouched", f"{len(survivors) - len(touched)}/{len(survivors)}")
    disconnected = metric(admin, "scheduler_host_evictions_total", reason="disconnected")
    figures.add("evictions counted (reason disconnected)", int(disconnected))

    assert max(detection) <= bound, sorted(detection)[-5:]
    assert lateness.count >= len(killed)
    assert lateness.upper_bound() <= 1.0
    assert late == [], [(h.at - seen_down_at, h.latency, h.hosts) for h in late[:8]]
    assert late_pushes == [], [(h.at - seen_down_at, h.hosts) for h in late_pushes[:8]]
    assert held == [], held[:8]
    assert touched == [], [(before[n], after.get(n)) for n in touched[:5]]
    assert fed_by_killed > 0, "the killed hosts were never parents: the check would be vacuous"
    assert disconnected >= len(killed)
