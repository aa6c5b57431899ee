"""Benchmark the deadline-driven GC engine at scale (a script, not a test).

Builds a :class:`SchedulerState` with the built-in policies at their default
configuration, 100,000 hosts, 1,000,000 peers over 10,000 tasks, and arranges
that exactly ``--due-fraction`` of each kind of record is due at the measured
``now``, each by the built-in policy that normally evicts it:

* due hosts announced with a 300 s interval, 2,000 s before ``now``
  (``announce_ttl``: 2 × 300 s, so due 1,400 s ago); the others announced a
  1,800 s interval at the same time (due 1,600 s after ``now``);
* due peers started downloading 1,900 s before ``now`` and never finished a
  piece (``peer_lifetime`` piece timeout 30 min, so due 100 s ago); the others
  are registered and waiting (24 h peer TTL);
* due tasks lost their only peer 1,900 s before ``now`` (``task_idle``, 10 min).

Due hosts carry no peers and every task keeps live peers, so nothing is
evicted by cascade: the evictions are exactly the due records.

Then it times the real ``SchedulerState.collect_expired(now)``; between runs
it restores the evicted records by replaying their setup through the public
API. It also times re-announces of existing hosts, a ``next_deadline`` query
and one peer sweep (the safety net over undecided records), and reports peak RSS.

    python benchmarks/bench_gc.py                         # full size: ~1.1 GiB, ~30 s
    python benchmarks/bench_gc.py --hosts 10000 --peers 100000 --repeat 3
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import resource
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from typing import TypeVar

try:
    from rich.console import Console
    from rich.table import Table
except ImportError:  # plain text output without rich
    Console = Table = None  # type: ignore[assignment,misc]

from scheduler.core import (
    Eviction,
    HostInfo,
    RecordKind,
    SchedulerState,
    TaskInfo,
)
from scheduler.policies import load_policies

T = TypeVar("T")

NOW = 1_000_000.0
ANNOUNCE_AT = NOW - 2_000.0
PEERS_AT = NOW - 1_900.0
DUE_INTERVAL = 300.0  # announce_ttl: due at ANNOUNCE_AT + 600 = NOW - 1,400
LIVE_INTERVAL = 1_800.0  # announce_ttl: due at ANNOUNCE_AT + 3,600 = NOW + 1,600


def host_info(index: int) -> HostInfo:
    a, b = divmod(index, 65_536)
    return HostInfo(hostname=f"host-{index:07d}", ip=f"10.{a}.{b // 256}.{b % 256}", port=8002)


def task_info(index: int) -> TaskInfo:
    return TaskInfo(id=f"task-{index:06d}", url=f"https://example.invalid/blob/{index}")


class Layout:
    """Which records exist and which are due: the same plan for setup and restore."""

    def __init__(self, hosts: int, peers: int, tasks: int, due_fraction: float) -> None:
        self.due_hosts = round(hosts * due_fraction)
        self.due_peers = round(peers * due_fraction)
        self.idle_tasks = round(tasks * due_fraction)
        self.live_hosts = hosts - self.due_hosts
        self.busy_tasks = tasks - self.idle_tasks
        self.peers = peers
        if self.live_hosts < 1 or self.busy_tasks < 1:
            raise SystemExit("need at least one live host and one busy task")
        if peers < 3 * self.busy_tasks or (self.due_peers > 0 and peers // self.due_peers < 3):
            raise SystemExit("need 3+ peers per task and --due-fraction <= 1/3")
        # Spread the due peers evenly: peer i is due when i % stride == 0.
        self.stride = peers // self.due_peers if self.due_peers else peers + 1
        self.host_infos = [host_info(i) for i in range(hosts)]

    def is_due_peer(self, index: int) -> bool:
        return index % self.stride == 0 and index // self.stride < self.due_peers

    def peer_id(self, index: int) -> str:
        return f"peer-{index:08d}"

    def peer_host(self, index: int) -> str:
        return self.host_infos[self.due_hosts + index % self.live_hosts].id

    def peer_task(self, index: int) -> TaskInfo:
        # Contiguous blocks of peers per task, so the evenly spread due peers are at most
        # a couple per task: no task loses its last peer (checked after each run).
        return task_info(self.idle_tasks + index * self.busy_tasks // self.peers)

    @property
    def due_total(self) -> int:
        return self.due_hosts + self.due_peers + self.idle_tasks

    # --- building the state through the public API -----------------------------------

    def announce_due_hosts(self, state: SchedulerState) -> None:
        for info in self.host_infos[: self.due_hosts]:
            state.announce_host(info, ANNOUNCE_AT, interval=DUE_INTERVAL)

    def announce_live_hosts(self, state: SchedulerState) -> None:
        for info in self.host_infos[self.due_hosts :]:
            state.announce_host(info, ANNOUNCE_AT, interval=LIVE_INTERVAL)

    def register_peers(self, state: SchedulerState, only_due: bool = False) -> None:
        indexes = (
            range(0, self.due_peers * self.stride, self.stride) if only_due else range(self.peers)
        )
        for i in indexes:
            peer_id = self.peer_id(i)
            state.register_peer(peer_id, self.peer_host(i), self.peer_task(i), PEERS_AT)
            if self.is_due_peer(i):
                state.start_download(peer_id, PEERS_AT)

    def make_idle_tasks(self, state: SchedulerState) -> None:
        # A task exists only while it has, or recently had, a peer: register one and leave.
        anchor = self.host_infos[self.due_hosts].id
        for t in range(self.idle_tasks):
            peer_id = f"idle-peer-{t:06d}"
            state.register_peer(peer_id, anchor, task_info(t), PEERS_AT)
            state.leave_peer(peer_id, PEERS_AT)

    def build(self, state: SchedulerState) -> None:
        self.announce_due_hosts(state)
        self.announce_live_hosts(state)
        self.register_peers(state)
        self.make_idle_tasks(state)

    def restore(self, state: SchedulerState) -> None:
        """Put back exactly what one collect_expired(NOW) evicted."""
        self.announce_due_hosts(state)
        self.register_peers(state, only_due=True)
        self.make_idle_tasks(state)


def heap_operations(state: SchedulerState) -> int:
    return sum(queue.operations for queue in state.queues.values())


def heap_entries(state: SchedulerState) -> int:
    return sum(queue.heap_size() for queue in state.queues.values())


def record_count(state: SchedulerState) -> int:
    return state.host_count() + state.peer_count() + state.task_count()


def peak_rss_bytes() -> int:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def timed(call: Callable[[], T]) -> tuple[float, T]:
    gc.collect()  # so that a pending collection does not land inside the timed call
    start = time.perf_counter()
    result = call()
    return time.perf_counter() - start, result


def fmt_seconds(seconds: float) -> str:
    if seconds >= 1:
        return f"{seconds:.2f} s"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.2f} ms"
    return f"{seconds * 1e6:.2f} µs"


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
    Console().print(table)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hosts", type=int, default=100_000)
    parser.add_argument("--peers", type=int, default=1_000_000)
    parser.add_argument("--tasks", type=int, default=10_000)
    parser.add_argument("--due-fraction", type=float, default=0.01)
    parser.add_argument("--repeat", type=int, default=5, help="collect_expired runs (median)")
    parser.add_argument("--announces", type=int, default=10_000, help="re-announces timed")
    args = parser.parse_args(argv)
    if not 0 < args.due_fraction < 1 or args.repeat < 1 or args.announces < 1:
        parser.error("need 0 < --due-fraction < 1, --repeat >= 1 and --announces >= 1")

    layout = Layout(args.hosts, args.peers, args.tasks, args.due_fraction)
    state = SchedulerState(load_policies(entrypoints=False), now=ANNOUNCE_AT)
    setup_seconds, _ = timed(lambda: layout.build(state))
    n = record_count(state)
    counts = (state.host_count(), state.peer_count(), state.task_count())
    n_heap = heap_entries(state)
    if state.next_deadline() is None or state.host_count() != args.hosts:
        raise SystemExit("setup did not produce the planned state")

    runs: list[float] = []
    operations: list[int] = []
    evicted = 0
    reasons: dict[str, int] = {}
    for run in range(args.repeat):
        if run:
            layout.restore(state)
        before = heap_operations(state)
        seconds, events = timed(lambda: state.collect_expired(NOW))
        operations.append(heap_operations(state) - before)
        runs.append(seconds)
        evictions = [e for e in events if isinstance(e, Eviction)]
        evicted = len(evictions)
        if evicted != layout.due_total or record_count(state) != n - evicted:
            raise SystemExit(f"run {run}: evicted {evicted}, planned {layout.due_total}")
        if len(state.queues[RecordKind.TASK]):
            raise SystemExit(f"run {run}: a task lost its last peer; the layout is wrong")
        reasons = {}
        for eviction in evictions:
            key = f"{eviction.kind.value}/{eviction.reason}"
            reasons[key] = reasons.get(key, 0) + 1

    # Re-announce existing live hosts at NOW: each moves one host deadline.
    announce_times: list[float] = []
    live = layout.host_infos[layout.due_hosts :]
    gc.collect()
    for i in range(args.announces):
        info = live[(i * 7919) % len(live)]
        start = time.perf_counter_ns()
        state.announce_host(info, NOW, interval=LIVE_INTERVAL)
        announce_times.append((time.perf_counter_ns() - start) / 1e9)

    # The re-announces left their old host deadlines stale in the heap; the next peek
    # pops those that reached the head (lazy deletion pays here, once).
    before = heap_operations(state)
    first_peek_seconds, _ = timed(state.next_deadline)
    stale_popped = heap_operations(state) - before
    peeks: list[float] = []
    for _ in range(1_000):
        start = time.perf_counter_ns()
        state.next_deadline()
        peeks.append((time.perf_counter_ns() - start) / 1e9)
    sweep_seconds, sweep_events = timed(lambda: state.sweep(NOW, RecordKind.PEER))
    assert not sweep_events, "nothing should be due after collect_expired"
    k = layout.due_total
    median_ops = statistics.median(operations)

    rows = [
        ("python", f"{platform.python_implementation()} {platform.python_version()}"),
        ("cpu", f"{cpu_model()} ({os.cpu_count()} cores)"),
        (
            "records n (hosts / peers / tasks)",
            f"{n:,} ({' / '.join(f'{c:,}' for c in counts)})",
        ),
        ("heap entries after setup (incl. stale)", f"{n_heap:,}"),
        ("setup (build through the public API)", fmt_seconds(setup_seconds)),
        (
            f"collect_expired(now), median of {len(runs)}",
            fmt_seconds(statistics.median(runs)),
        ),
        ("collect_expired runs", ", ".join(fmt_seconds(s) for s in runs)),
        ("  per eviction", fmt_seconds(statistics.median(runs) / max(1, evicted))),
        (
            "evictions k (each run)",
            f"{evicted:,} ({', '.join(f'{r} {c:,}' for r, c in sorted(reasons.items()))})",
        ),
        ("heap operations in the call", f"{median_ops:,.0f} (k = {k:,}, n = {n:,})"),
        ("heap operations / n", f"{median_ops / n:.4f}"),
        (
            f"announce_host (existing host), median of {len(announce_times):,}",
            fmt_seconds(statistics.median(announce_times)),
        ),
        (
            "announce_host p99",
            fmt_seconds(statistics.quantiles(announce_times, n=100)[98])
            if len(announce_times) >= 2
            else "n/a",
        ),
        (
            "next_deadline(), first after the re-announces",
            f"{fmt_seconds(first_peek_seconds)} ({stale_popped:,} stale heads popped)",
        ),
        ("next_deadline(), then (median of 1,000)", fmt_seconds(statistics.median(peeks))),
        ("sweep(now, peer), nothing due (safety net)", fmt_seconds(sweep_seconds)),
        ("peak RSS", f"{peak_rss_bytes() / 2**30:.2f} GiB"),
    ]
    render("GC engine benchmark: built-in policies, default config", rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
