"""``scheduler simulate``: the flags, and the command that runs and reports."""

from __future__ import annotations

import argparse
import time
import tomllib
from pathlib import Path
from typing import Any, Final

from rich.console import Console

from ..core import ConfigError, parse_duration
from ..policies import installed_plugins
from ._bandwidth import BandwidthSpec, parse_bandwidth, parse_bits
from ._metrics import SetResult
from ._report import results_table, write_json, write_plot
from ._runner import simulate
from ._scenario import POLICY_SETS, PolicySetSpec, Scenario, policy_set

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


def _bandwidth(value: str) -> BandwidthSpec:
    try:
        return parse_bandwidth(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _bits(value: str) -> float:
    try:
        return parse_bits(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


_SIZES: Final = {"": 1, "kib": 2**10, "mib": 2**20, "gib": 2**30}


def _piece_size(value: str) -> int:
    """Bytes: ``4194304``, ``4MiB``, ``512KiB`` (1 byte to 1 GiB)."""
    text = value.strip().lower()
    number, unit = text, ""
    for suffix in ("kib", "mib", "gib"):
        if text.endswith(suffix):
            number, unit = text.removesuffix(suffix).strip(), suffix
    try:
        size = int(number) * _SIZES[unit]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected bytes like 4MiB, got {value!r}") from None
    if not 1 <= size <= 2**30:
        raise argparse.ArgumentTypeError(f"piece size must be 1 byte to 1 GiB, got {value!r}")
    return size


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
        help="a built-in policy set to run (repeatable; default: every one whose plugins are "
        "installed, and the sets of --policy-set and --config)",
    )
    add(
        "--policy-set",
        action="append",
        type=parse_policy_set,
        metavar="NAME=PLUGIN[,PLUGIN...]",
        help="a policy set of your own: the built-ins plus these plugins (installed names or "
        "MODULE:OBJECT), under the service's session rules (repeatable)",
    )
    add(
        "--config",
        type=Path,
        metavar="FILE",
        help="a TOML file of policy sets: [policy_sets.NAME] enable = [...], disable = [...], "
        "and their plugins' settings in [policy_sets.NAME.plugins.PLUGIN]",
    )
    add(
        "--churn",
        type=parse_rates,
        metavar="LIST",
        help="sweep crash rates, e.g. 1%%,5%%,10%%,20%% (crashes per host-hour)",
    )
    add(
        "--bandwidth",
        type=_bandwidth,
        metavar="SPEC",
        help="model links: each batch of pieces is a flow sharing the parent's uplink and "
        "the child's downlink max-min fair. SPEC: mixed (1 Gbit/s, one host in five "
        "10 Gbit/s, seeds 25 Gbit/s), uniform (1 Gbit/s) or "
        "uplink=1G,downlink=1G[,seed-uplink=25G][,seed-downlink=25G]",
    )
    add(
        "--origin-bandwidth",
        type=_bits,
        default=d.origin_bandwidth,
        metavar="BITS/S",
        help="the origin's capacity, shared by every download from it (with --bandwidth; "
        f"default {d.origin_bandwidth / 1e9:g}G)",
    )
    add(
        "--piece-size",
        type=_piece_size,
        default=d.piece_length,
        metavar="BYTES",
        help=f"bytes per piece, e.g. 4MiB ({d.piece_length // 2**20} MiB)",
    )
    add("--plot", type=Path, metavar="FILE.png", help="plot success and p99 against churn")
    add("--json", type=Path, metavar="FILE", help="write the raw figures as JSON")
    return parser


def parse_policy_set(value: str) -> PolicySetSpec:
    """``NAME=PLUGIN[,PLUGIN...]``: the built-ins plus those plugins."""
    name, sep, plugins = value.partition("=")
    try:
        if not sep:
            raise ValueError(f"expected NAME=PLUGIN[,PLUGIN...], got {value!r}")
        return policy_set(name.strip(), [p.strip() for p in plugins.split(",") if p.strip()])
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def policy_sets_from_file(path: Path) -> list[PolicySetSpec]:
    """The ``[policy_sets.NAME]`` tables of a TOML file, in the file's order."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ValueError(f"{path}: {exc}") from None
    unknown = set(data) - {"policy_sets"}
    if unknown:
        raise ValueError(f"{path}: unknown table(s) {sorted(unknown)}; expected [policy_sets.NAME]")
    specs = []
    for name, table in data.get("policy_sets", {}).items():
        where = f"{path}: [policy_sets.{name}]"
        if not isinstance(table, dict):
            raise ValueError(f"{where} must be a table")  # noqa: TRY004 - a user's file, one error kind
        extra = set(table) - {"enable", "disable", "description", "plugins"}
        if extra:
            raise ValueError(f"{where}: unknown key(s) {sorted(extra)}")
        enable, disable = table.get("enable", []), table.get("disable", [])
        plugins = table.get("plugins", {})
        if not _strings(enable) or not _strings(disable) or not isinstance(plugins, dict):
            raise ValueError(f"{where}: enable and disable are lists of names, plugins a table")
        try:
            specs.append(
                policy_set(
                    name,
                    enable,
                    disable=tuple(disable),
                    config=plugins,
                    description=table.get("description"),
                )
            )
        except ValueError as exc:
            raise ValueError(f"{where}: {exc}") from None
    return specs


def _strings(value: object) -> bool:
    return isinstance(value, list) and all(isinstance(item, str) for item in value)


def left_out_sets() -> dict[str, list[str]]:
    """The built-in policy sets whose plugins are not installed, with what each lacks."""
    installed = installed_plugins()
    return {
        name: missing
        for name, spec in POLICY_SETS.items()
        if (missing := [p for p in spec.enable if ":" not in p and p not in installed])
    }


#: Where each plugin of the built-in sets comes from, for the hint.
PLUGIN_SOURCES: Final = {
    "dragonfly_compat": "./plugins/dragonfly-compat",
    "dragonfly_evaluator": "./plugins/dragonfly-compat",
    "phi_accrual": "./plugins/phi-accrual",
}


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
        bandwidth=args.bandwidth,
        origin_bandwidth=args.origin_bandwidth,
        piece_length=args.piece_size,
    )


def cmd_simulate(args: argparse.Namespace) -> int:
    console = Console()
    try:
        scenario = scenario_from_args(args)
    except ValueError as exc:
        console.print(f"[red]error:[/red] {exc}")
        return EXIT_USAGE
    try:
        own = [
            *(args.policy_set or ()),
            *(policy_sets_from_file(args.config) if args.config else ()),
        ]
    except ValueError as exc:
        console.print(f"[red]error:[/red] {exc}", highlight=False)
        return EXIT_USAGE
    missing = left_out_sets()
    policies: list[str | PolicySetSpec]
    if args.policy or own:
        policies = [*(args.policy or ()), *own]
    else:
        policies = [name for name in POLICY_SETS if name not in missing]
        if missing:
            lacking = sorted({plugin for names in missing.values() for plugin in names})
            sources = " ".join(dict.fromkeys(PLUGIN_SOURCES.get(p, p) for p in lacking))
            console.print(
                f"left out: {', '.join(missing)} (they need the {', '.join(lacking)} plugin"
                f"{'s' if len(lacking) > 1 else ''}: from a checkout, pip install {sources})",
                highlight=False,
            )

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
    except ValueError as exc:
        console.print(f"[red]error:[/red] {exc}", highlight=False)
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
        + (
            ""
            if scenario.bandwidth is None
            else f", bandwidth {scenario.bandwidth.name}, "
            f"origin {scenario.origin_bandwidth / 1e9:g} Gbit/s"
        )
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
                "[red]error:[/red] --plot needs matplotlib: pip install matplotlib "
                "(or, from a checkout, pip install '.[plot]')"
            )
            return EXIT_USAGE
        console.print(f"wrote {args.plot}")
    return 0
