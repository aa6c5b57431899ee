"""``scheduler simulate``: the flags, and the command that runs and reports."""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from rich.console import Console

from ..core import ConfigError, parse_duration
from ._metrics import SetResult
from ._report import results_table, write_json, write_plot
from ._runner import simulate
from ._scenario import POLICY_SETS, Scenario

EXIT_USAGE = 2


def parse_rate(value: str) -> float:
    """A rate per host-hour: ``5%``, ``5%/h`` or ``0.05``."""
    text = value.strip().removesuffix("/h").strip()
    try:
        rate = float(text[:-1]) / 100 if text.endswith("%") else float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a rate like 5% or 0.05, got {value!r}"
        ) from None
    if rate < 0:
        raise argparse.ArgumentTypeError(f"rate must be >= 0, got {value!r}")
    return rate


def parse_rates(value: str) -> list[float]:
    """A comma-separated list of rates: ``1%,5%,10%``."""
    return [parse_rate(part) for part in value.split(",") if part.strip()]


def _duration(value: str) -> float:
    try:
        return parse_duration(value, "duration")
    except ConfigError as exc:
        raise argparse.ArgumentTypeError(str(exc).removeprefix("duration: ")) from None


def _count(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {value!r}") from None
    if number < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {number}")
    return number


def add_simulate_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``simulate`` to the ``scheduler`` command's subparsers."""
    d = Scenario()
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "simulate",
        help="run the churn simulator: policy sets side by side in virtual time",
        description="Drive the real core, policies and evaluator through a deterministic "
        "churn workload in virtual time and compare policy sets. See docs/benchmarks.md.",
    )
    add = parser.add_argument
    add("--seed", type=int, default=d.seed, help=f"workload and scheduler seed (default {d.seed})")
    add("--hosts", type=_count, default=d.hosts, help=f"hosts, seeds included ({d.hosts})")
    add("--seeds", type=_count, default=d.seeds, help=f"seed hosts ({d.seeds})")
    add("--tasks", type=_count, default=d.tasks, help=f"tasks, Zipf popularity ({d.tasks})")
    add("--pieces", type=_count, default=d.pieces, help=f"pieces per task ({d.pieces})")
    add(
        "--announce-interval",
        type=_duration,
        default=d.announce_interval,
        help="hosts' announce interval (300s)",
    )
    add("--crash-rate", type=parse_rate, default=d.crash_rate, help="crashes per host-hour (5%%)")
    add("--hang-rate", type=parse_rate, default=d.hang_rate, help="hangs per host-hour (2%%)")
    add("--leave-rate", type=parse_rate, default=d.leave_rate, help="leaves per host-hour (10%%)")
    add(
        "--stop-rate",
        type=parse_rate,
        default=d.stop_rate,
        help="hosts per hour that stop announcing but keep their session (0%%)",
    )
    add("--duration", type=_duration, default=d.duration, help="simulated time (2h)")
    add(
        "--policy",
        action="append",
        choices=list(POLICY_SETS),
        help="a policy set to run (repeatable; default: all four)",
    )
    add(
        "--churn",
        type=parse_rates,
        metavar="LIST",
        help="sweep crash rates, e.g. 1%%,5%%,10%%,20%% (crashes per host-hour)",
    )
    add("--plot", type=Path, metavar="FILE.png", help="plot success and p99 against churn")
    add("--json", type=Path, metavar="FILE", help="write the raw figures as JSON")
    return parser


def scenario_from_args(args: argparse.Namespace) -> Scenario:
    return Scenario(
        seed=args.seed,
        hosts=args.hosts,
        seeds=args.seeds,
        tasks=args.tasks,
        pieces=args.pieces,
        announce_interval=args.announce_interval,
        crash_rate=args.crash_rate,
        hang_rate=args.hang_rate,
        leave_rate=args.leave_rate,
        stop_rate=args.stop_rate,
        duration=args.duration,
    )


def cmd_simulate(args: argparse.Namespace) -> int:
    console = Console()
    try:
        scenario = scenario_from_args(args)
    except ValueError as exc:
        console.print(f"[red]error:[/red] {exc}")
        return EXIT_USAGE
    policies = args.policy or list(POLICY_SETS)

    def progress(result: SetResult) -> None:
        console.print(
            f"  {result.policy} at {100 * result.churn:g} % crashes/h: "
            f"{result.elapsed:.1f} s wall, {result.cpu:.1f} s CPU, "
            f"peak records {result.peak_records:,}",
            highlight=False,
        )

    started, cpu_started = time.perf_counter(), time.process_time()
    try:
        results = simulate(scenario, policies, args.churn or (), progress=progress)
    except ConfigError as exc:
        console.print(f"[red]error:[/red] {exc} (are the plugin distributions installed?)")
        return EXIT_USAGE
    elapsed = time.perf_counter() - started
    cpu = time.process_time() - cpu_started
    title = (
        f"seed {scenario.seed}: {scenario.hosts:,} hosts ({scenario.seeds} seeds), "
        f"{scenario.tasks} tasks × {scenario.pieces} pieces, "
        f"{scenario.duration / 3600:g} h, announce {scenario.announce_interval:g} s, "
        f"hang {100 * scenario.hang_rate:g} %/h, leave {100 * scenario.leave_rate:g} %/h, "
        f"stop {100 * scenario.stop_rate:g} %/h"
        + ("" if args.churn else f", crash {100 * scenario.crash_rate:g} %/h")
    )
    console.print(results_table(results, title=title))
    peak = max(r.peak_records for r in results)
    console.print(
        f"elapsed {elapsed:.1f} s wall clock, {cpu:.1f} s CPU (one core); "
        f"peak records held {peak:,}",
        highlight=False,
    )
    if args.json is not None:
        write_json(results, args.json)
        console.print(f"wrote {args.json}")
    if args.plot is not None:
        try:
            write_plot(results, args.plot)
        except ImportError:
            console.print(
                "[red]error:[/red] --plot needs matplotlib: pip install 'trio-p2p-scheduler[plot]'"
            )
            return EXIT_USAGE
        console.print(f"wrote {args.plot}")
    return 0
