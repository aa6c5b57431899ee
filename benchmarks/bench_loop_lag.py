"""Event-loop lag during a mass expiry of 100,000 hosts (a script, not a test).

A real :class:`SchedulerService` runs in-process (its GC loops and its ``apply``:
metrics, pushes, session ends, log lines; no listeners), and ``--hosts`` hosts are
announced straight into its state, with intervals chosen so that their
deadlines (``announce_ttl``: twice the interval) are spread evenly over
``--window`` seconds, starting ``--lead`` seconds after the announces: a mass
expiry of ``hosts / window`` evictions per second.

While the hosts expire, three things are measured:

* **loop lag**: a probe task sleeps 1 ms again and again; how late each wake-up
  comes (the overshoot past 1 ms) is how long something else held the loop;
* **eviction lateness**: for every host eviction, the time the service applied
  it (``trio.current_time()`` in ``apply``) minus the deadline that caused it;
* **slice CPU**: the CPU time (``time.thread_time``) of each GC slice, its
  ``run_gc`` and its ``apply``: how long the GC itself held the loop, whatever
  else the machine was doing (the lag includes the time the OS ran other
  processes, which on a shared machine can dominate);
* **load**: ``--busy-tasks`` tasks each do a small piece of session work
  (a contact of a live host) every ``--busy-period`` (10 ms), so the loop is not idle.

Each run is repeated with the GC collecting in slices of ``--slice`` records
(the default, ``gc.evictions_per_slice``) and with no bound (one pass collects
all that is due, as before slicing), so the two are compared in one run.

    python benchmarks/bench_loop_lag.py                   # 100,000 hosts over 5 s
    python benchmarks/bench_loop_lag.py --hosts 20000 --window 2
"""

from __future__ import annotations

import argparse
import gc
import logging
import os
import platform
import resource
import sys
import time
from collections.abc import Sequence
from typing import Any

import trio

from scheduler.core import ContactSource, Event, Eviction, HostInfo, RecordKind, SchedulerState
from scheduler.policies import load_policies
from scheduler.service import SchedulerService, ServiceConfig
from scheduler.service._logging import TextFormatter

UNBOUNDED = 10**9


def quantile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def calibrated_lead(hosts: int) -> float:
    """Seconds to leave for announcing ``hosts``: twice what 2,000 announces take, scaled."""
    scratch = SchedulerState(load_policies(entrypoints=False))
    started = time.perf_counter()
    for index in range(2_000):
        scratch.announce_host(HostInfo(f"c{index}", f"10.2.{index // 250}.{index % 250}"), 0.0)
    return 1.0 + 2.0 * (time.perf_counter() - started) * hosts / 2_000


def ms(seconds: float) -> str:
    return f"{seconds * 1e3:.2f} ms"


async def one_run(args: argparse.Namespace, slice_size: int) -> dict[str, object]:
    config = ServiceConfig(port=0, admin_port=0, entrypoints=False, evictions_per_slice=slice_size)
    service = SchedulerService(config)
    state = service.state
    lateness: list[float] = []
    applied_at: list[float] = []
    apply = service.apply
    run_gc = state.run_gc
    slice_cpu: list[float] = []
    slice_started = [0.0]

    def timed_run_gc(*args: Any) -> list[Event]:
        slice_started[0] = time.thread_time()
        return run_gc(*args)

    def apply_and_measure(events: Sequence[Event]) -> None:
        apply(events)
        slice_cpu.append(time.thread_time() - slice_started[0])
        at = trio.current_time()
        for event in events:
            if (
                isinstance(event, Eviction)
                and event.kind is RecordKind.HOST
                and event.deadline is not None
            ):
                lateness.append(at - event.deadline)
                applied_at.append(at)

    # The loops' two calls, measured: a slice is one run_gc and one apply.
    state.run_gc = timed_run_gc  # type: ignore[method-assign]
    service.gc._apply = apply_and_measure

    start = trio.current_time()
    first_deadline = start + (args.lead or calibrated_lead(args.hosts + args.busy_tasks))
    # Live hosts for the busy tasks to touch; they outlive the run.
    live = [HostInfo(f"live-{i}", f"10.1.{i // 250}.{i % 250}") for i in range(args.busy_tasks)]
    for info in live:
        state.announce_host(info, start, interval=3600.0)
    for index in range(args.hosts):
        deadline = first_deadline + args.window * index / args.hosts
        info = HostInfo(f"h{index}", f"10.0.{index // 250 % 250}.{index % 250}")
        state.announce_host(info, start, interval=(deadline - start) / 2)
    setup = trio.current_time() - start
    if start + setup >= first_deadline:
        raise SystemExit(f"setup took {setup:.1f} s, past the first deadline: raise --lead")
    gc.collect()

    lags: list[float] = []
    end = first_deadline + args.window + 0.5

    async def probe() -> None:
        await trio.sleep_until(first_deadline)
        while trio.current_time() < end:
            before = time.perf_counter()
            await trio.sleep(0.001)
            lags.append(time.perf_counter() - before - 0.001)

    async def busy(info: HostInfo) -> None:
        while trio.current_time() < end:
            state.touch_host(info.id, trio.current_time(), ContactSource.MESSAGE)
            await trio.sleep(args.busy_period)

    cpu_before = time.process_time()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(service.run_gc_loops)
        nursery.start_soon(probe)
        for info in live:
            nursery.start_soon(busy, info)
        await trio.sleep_until(end)
        nursery.cancel_scope.cancel()
    cpu = time.process_time() - cpu_before
    left = sum(1 for h in state.view.hosts() if h.id.startswith("10.0."))
    registry = service.metrics.registry
    slices = registry.get_sample_value("scheduler_gc_runs_total", {"manager": "host"}) or 0.0
    return {
        "slice": "unbounded" if slice_size >= UNBOUNDED else f"{slice_size}",
        "setup": setup,
        "lags": lags,
        "lateness": lateness,
        "slice_cpu": slice_cpu,
        "evicted": len(lateness),
        "left": left,
        "slices": int(slices),
        "cpu": cpu,
    }


def report(args: argparse.Namespace, runs: list[dict[str, object]]) -> None:
    print(
        f"python {platform.python_implementation()} {platform.python_version()}, "
        f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f}"
    )
    print(
        f"{args.hosts:,} hosts expiring over {args.window:g} s "
        f"({args.hosts / args.window:,.0f} evictions/s), {args.busy_tasks} busy tasks "
        f"every {args.busy_period * 1e3:g} ms, "
        f"log level {args.log_level}"
    )
    header = (
        f"{'slice':>10} {'lag p50':>10} {'lag p99':>10} {'lag max':>10} "
        f"{'late p50':>10} {'late p99':>10} {'late max':>10} {'evicted':>9} {'slices':>7} "
        f"{'slice CPU p99':>14} {'max':>10}"
    )
    print(header)
    for run in runs:
        lags = run["lags"]
        late = run["lateness"]
        cpu = run["slice_cpu"]
        assert isinstance(cpu, list)
        assert isinstance(lags, list)
        assert isinstance(late, list)
        print(
            f"{run['slice']:>10} {ms(quantile(lags, 0.5)):>10} {ms(quantile(lags, 0.99)):>10} "
            f"{ms(max(lags)):>10} {ms(quantile(late, 0.5)):>10} {ms(quantile(late, 0.99)):>10} "
            f"{ms(max(late)):>10} {run['evicted']:>9,} {run['slices']:>7,} "
            f"{ms(quantile(cpu, 0.99)):>14} {ms(max(cpu)):>10}"
        )
        if run["left"]:
            print(f"  !! {run['left']} hosts were not evicted by the end of the run")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS {peak:,.0f} MiB; setup {runs[0]['setup']:.1f} s per run")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hosts", type=int, default=100_000)
    parser.add_argument("--window", type=float, default=5.0, help="seconds the expiry spans")
    parser.add_argument(
        "--lead",
        type=float,
        default=None,
        help="seconds from the first announce to the first deadline (default: calibrated)",
    )
    parser.add_argument("--busy-tasks", type=int, default=100)
    parser.add_argument(
        "--busy-period", type=float, default=0.01, help="seconds between two contacts of a task"
    )
    parser.add_argument(
        "--slice", type=int, default=ServiceConfig().evictions_per_slice, help="GC slice size"
    )
    parser.add_argument(
        "--no-compare", action="store_true", help="skip the run with no bound on a GC pass"
    )
    parser.add_argument(
        "--log-level",
        default="info",
        choices=["debug", "info", "warning"],
        help="the service's log level; lines go to /dev/null (default info, as `serve`)",
    )
    args = parser.parse_args(argv)
    handler = logging.StreamHandler(open(os.devnull, "w"))  # noqa: SIM115 - lives as long as the run
    handler.setFormatter(TextFormatter())
    root = logging.getLogger("scheduler")
    root.handlers[:] = [handler]
    root.setLevel(args.log_level.upper())
    root.propagate = False

    runs = [trio.run(one_run, args, args.slice)]
    if not args.no_compare:
        runs.append(trio.run(one_run, args, UNBOUNDED))
    report(args, runs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
