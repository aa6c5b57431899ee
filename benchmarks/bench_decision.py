"""Benchmark one scheduling decision (a script, not a test).

Builds a :class:`SchedulerState` with the built-in policies at their default
configuration and one task whose ``--peers`` peers (1,000 and 10,000 by
default) each sit on their own connected host and can feed (half went to the
origin, half hold pieces). Then one child asks again and again
(``reschedule_peer``): each decision samples ``filter_parent_limit`` (15)
candidates, filters them, scores them with the evaluator and hands out the
top 4, releasing the previous four. The cost must not grow with the number of
peers (O(sample)); the goal is p99 <= 200 µs at 10,000 peers on one core.

It prints p50 and p99 of one decision on the wall clock and on the thread's
CPU clock (which leaves out the time another process held the core), with the
load average. On a shared virtual machine the CPU clock still counts the time
the core ran slower because a neighbour shared it, so the decisions are timed
in bursts of :data:`BURST`, each bracketed by a fixed reference workload (pure
arithmetic, the same every time). A burst is *quiet* when both its references
ran within 25 % of the fastest reference of the run: the core was not shared
then. The quiet bursts' p50 and p99 are the "on one core" figures the goal is
judged on; the reference's own p50 and p99 are printed too, to show how noisy
the machine was (a fixed workload whose p99 is far above its p50 is the
machine, not the code).

    python benchmarks/bench_decision.py
    python benchmarks/bench_decision.py --peers 1000 10000 100000 --decisions 20000
"""

from __future__ import annotations

import argparse
import gc
import math
import os
import platform
import random
import statistics
import sys
import time
from collections.abc import Sequence

import attrs

from scheduler.core import HostInfo, SchedulerState, TaskInfo
from scheduler.policies import load_policies

TASK = TaskInfo("task", url="https://example.invalid/blob", total_piece_count=64)
GOAL_P99_US = 200.0


def build(peers: int, seed: int, dense: bool = False) -> SchedulerState:
    """The task; ``dense``: every downloading peer also holds parents (deep ancestries)."""
    state = SchedulerState(load_policies(entrypoints=False), now=0.0, rng=random.Random(seed))
    for i in range(peers):
        info = HostInfo(
            f"host-{i}",
            f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}",
            idc=f"idc-{i % 4}",
            location=f"cn|zone-{i % 3}|rack-{i % 7}",
            concurrent_upload_limit=1_000,
        )
        state.announce_host(info, 0.0, interval=300.0)
        peer_id = f"peer-{i}"
        state.register_peer(peer_id, info.id, TASK, 0.0, back_to_source_limit=peers)
        if i % 2:
            state.back_to_source(peer_id, 0.0)
        else:
            state.start_download(peer_id, 0.0)
            state.finish_pieces(peer_id, range(1 + i % 63), 0.0, cost=0.1)
    if dense:
        for i in range(0, peers, 2):
            state.reschedule_peer(f"peer-{i}", (), 0.5)
    child = HostInfo("child", "192.168.0.1", idc="idc-1", location="cn|zone-1")
    state.announce_host(child, 0.0, interval=300.0)
    state.register_peer("child", child.id, TASK, 0.0)
    state.schedule_peer("child", 0.0)
    return state


def percentile(samples: Sequence[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


#: Decisions timed between two reference runs.
BURST = 20
#: A burst is quiet when both its references ran within this factor of the fastest.
QUIET = 1.25
#: Decisions in quiet bursts wanted before the quiet figures are printed: on a busy
#: machine, ``--decisions`` more are timed, up to :data:`MAX_ROUNDS` times as many.
MIN_QUIET = 2_000
MAX_ROUNDS = 10


def reference_work() -> int:
    """The fixed workload the machine's speed is read from (about 40 µs on a quiet core)."""
    total = 0
    for i in range(900):
        total += i * i
    return total


@attrs.frozen
class Figures:
    """One run's percentiles in µs, and how much of it the core was quiet."""

    wall_p50: float
    wall_p99: float
    cpu_p50: float
    cpu_p99: float
    quiet_p50: float
    quiet_p99: float
    quiet_share: float
    quiet_count: int
    reference_p50: float
    reference_p99: float


def measure(peers: int, decisions: int, seed: int, dense: bool = False) -> Figures:
    state = build(peers, seed, dense)
    wall, cpu = time.perf_counter_ns, time.thread_time_ns

    def reference() -> float:
        start = cpu()
        reference_work()
        return (cpu() - start) / 1_000.0

    for _ in range(200):  # warm up
        state.reschedule_peer("child", (), 1.0)
    walls: list[float] = []
    bursts: list[tuple[float, list[float]]] = []
    references: list[float] = []

    def quiet_count() -> int:
        fastest = min(references)
        return BURST * sum(1 for slowest, _ in bursts if slowest <= QUIET * fastest)

    rounds = 0
    while rounds == 0 or (quiet_count() < MIN_QUIET and rounds < MAX_ROUNDS):
        rounds += 1
        gc.collect()
        gc.disable()
        try:
            for _ in range(max(1, decisions // BURST)):
                before = reference()
                cpus: list[float] = []
                for _ in range(BURST):
                    start_wall, start_cpu = wall(), cpu()
                    state.reschedule_peer("child", (), 1.0)
                    cpus.append((cpu() - start_cpu) / 1_000.0)
                    walls.append((wall() - start_wall) / 1_000.0)
                after = reference()
                references += [before, after]
                bursts.append((max(before, after), cpus))
        finally:
            gc.enable()
    if state.invariant_violations():
        raise AssertionError(state.invariant_violations()[:3])
    fastest = min(references)
    every = [figure for _, cpus in bursts for figure in cpus]
    quiet = [figure for slowest, cpus in bursts if slowest <= QUIET * fastest for figure in cpus]
    return Figures(
        statistics.median(walls),
        percentile(walls, 0.99),
        statistics.median(every),
        percentile(every, 0.99),
        # No quiet burst at all (a busy machine): no figure, rather than a crash.
        statistics.median(quiet) if quiet else math.nan,
        percentile(quiet, 0.99) if quiet else math.nan,
        len(quiet) / len(every),
        len(quiet),
        statistics.median(references),
        percentile(references, 0.99),
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--peers", type=int, nargs="+", default=[1_000, 10_000])
    parser.add_argument("--decisions", type=int, default=20_000)
    parser.add_argument(
        "--dense",
        type=int,
        nargs="*",
        default=[10_000],
        help="task sizes also measured with every downloading peer holding parents",
    )
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    load = ", ".join(f"{figure:.2f}" for figure in os.getloadavg())
    python = platform.python_version()
    print(f"one decision (reschedule_peer), Python {python}, load average {load}")
    header = ("peers in task", "wall p50", "wall p99", "cpu p50", "cpu p99")
    header += ("quiet p50", "quiet p99", "quiet n", "ref p50", "ref p99")
    print("  ".join(f"{h:>13}" for h in header) + "   (µs; d: dense)")
    worst: Figures | None = None
    runs = [(peers, False) for peers in args.peers] + [(peers, True) for peers in args.dense]
    for peers, dense in runs:
        figures = measure(peers, args.decisions, args.seed, dense)
        if peers >= 10_000 and (worst is None or figures.quiet_p99 > worst.quiet_p99):
            worst = figures
        row = [f"{peers:>12,}" + ("d" if dense else " ")]
        row += [f"{f:>13.1f}" for f in attrs.astuple(figures)[:6]]
        row.append(f"{figures.quiet_count:>7,} {figures.quiet_share:>4.0%}")
        row += [f"{figures.reference_p50:>13.1f}", f"{figures.reference_p99:>13.1f}"]
        print("  ".join(row))
    if worst is not None:
        verdict = "met" if worst.quiet_p99 <= GOAL_P99_US else "MISSED"
        if worst.quiet_count < MIN_QUIET:
            verdict = f"not judged (fewer than {MIN_QUIET:,} quiet decisions: a busy machine)"
        every = "met" if worst.cpu_p99 <= GOAL_P99_US else "missed"
        print(
            f"goal: p99 <= {GOAL_P99_US:.0f} µs at >= 10,000 peers on one (quiet) core: "
            f"{verdict} ({worst.quiet_p99:.0f} µs); over every burst, quiet or not: "
            f"{every} ({worst.cpu_p99:.0f} µs)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
