"""``scheduler loadgen``: the flags, the progress bar and the summary tables."""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._mixes import BATCH_ITEMS, MIXES, MixSpec

if TYPE_CHECKING:
    from rich.table import Table

    from ._runner import LoadOptions

EXIT_FAILED = 1
EXIT_USAGE = 2


def _positive(kind: type[int] | type[float]) -> Any:
    def parse(value: str) -> int | float:
        try:
            number = kind(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {value!r}") from None
        if number < 0:
            raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
        return number

    return parse


def _fractions(value: str) -> tuple[float, ...]:
    """``50,90,100`` (percent) → (0.5, 0.9, 1.0)."""
    try:
        found = tuple(float(p.strip().removesuffix("%")) / 100 for p in value.split(",") if p)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected percentages like 50,90,100: {value}") from None
    if not found or any(not 0 < f <= 1 for f in found):
        raise argparse.ArgumentTypeError(f"each percentage must be in (0, 100]: {value}")
    return found


def add_loadgen_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``loadgen`` to the ``scheduler`` command's subparsers."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "loadgen",
        help="drive a scheduler with many WebSocket sessions and report rate, latency, CPU, RSS",
        description="Open many sessions from a few worker processes, send a message mix "
        "(one request in flight per session, or a fixed offered rate) and report the reply "
        "rate, p50/p99 latency, the server's CPU and its RSS per session. Without --url it "
        "starts `scheduler serve` on loopback itself. See docs/benchmarks.md.",
    )
    add = parser.add_argument
    add("--url", help="ws://HOST:PORT/ws of a running server (default: start one)")
    add("--server-pid", type=int, help="pid of that server, to read its CPU and RSS from /proc")
    add(
        "--serve-args",
        default="",
        metavar="ARGS",
        help='extra `scheduler serve` flags when this tool starts it, e.g. "--max-sessions 60000"',
    )
    add("--sessions", type=_positive(int), default=100, help="sessions in all (100)")
    add("--workers", type=_positive(int), default=1, help="worker processes (1)")
    add("--duration", type=_positive(float), default=10.0, help="seconds per window (10)")
    add("--warmup", type=_positive(float), default=1.0, help="unreported first window, s (1)")
    add("--mix", choices=MIXES, default="announce", help="what the sessions send (announce)")
    add("--batch-size", type=_positive(int), default=10, help="items per batch frame (10)")
    add("--batch-items", choices=BATCH_ITEMS, default="pieces", help="batch items (pieces)")
    add("--tasks", type=_positive(int), default=100, help="tasks of the register mix (100)")
    add(
        "--rate",
        type=_positive(float),
        default=0.0,
        help="offered requests/s over all sessions (default 0: back to back)",
    )
    add(
        "--sweep",
        type=_fractions,
        default=(),
        metavar="PCTS",
        help="after the main window, windows at these percentages of its rate: 50,90,100",
    )
    add(
        "--crash-rate",
        type=_positive(float),
        default=0.0,
        help="fraction of the sessions dropped abruptly per second (they reconnect)",
    )
    add("--open-concurrency", type=_positive(int), default=200, help="handshakes at once")
    add("--request-timeout", type=_positive(float), default=10.0, help="seconds (10)")
    add("--connect-timeout", type=_positive(float), default=30.0, help="seconds (30)")
    add("--json", metavar="FILE", help="also write the summary as JSON ('-': stdout only)")
    add("--no-progress", action="store_true", help="no progress bar")
    return parser


def options_from(args: argparse.Namespace) -> LoadOptions:
    # Imported here: building the `scheduler` parser must not import trio-websocket or rich.
    from ._runner import LoadOptions  # noqa: PLC0415

    mix = MixSpec(
        mix=args.mix, batch_size=args.batch_size, batch_items=args.batch_items, tasks=args.tasks
    )
    return LoadOptions(
        url=args.url,
        server_pid=args.server_pid,
        serve_args=tuple(shlex.split(args.serve_args)),
        sessions=args.sessions,
        workers=args.workers,
        duration=args.duration,
        warmup=args.warmup,
        rate=args.rate,
        sweep=args.sweep,
        mix=mix,
        crash_rate=args.crash_rate,
        connect_timeout=args.connect_timeout,
        request_timeout=args.request_timeout,
        open_concurrency=max(1, args.open_concurrency),
    )


def _ms(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}"


def _counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{k} x{v}" for k, v in sorted(counts.items())) or "none"


def summary_tables(summary: dict[str, Any]) -> list[Table]:
    from rich.table import Table  # noqa: PLC0415 - see options_from

    overview = Table(title=f"scheduler loadgen: {summary.get('mix')} mix at {summary.get('url')}")
    overview.add_column("measure")
    overview.add_column("value", justify="right")
    rss = summary.get("rss_per_session_kb")
    rows = [
        (
            "sessions open / asked",
            f"{summary.get('sessions_opened', 0):,} / {summary['sessions']:,}",
        ),
        ("open failures", _counts(summary.get("open_failures", {}))),
        ("worker processes", str(summary["workers"])),
        ("server pid", str(summary.get("server_pid") or "n/a (give --server-pid)")),
        (
            "server RSS before → with sessions",
            f"{summary['rss_before_kb'] / 1024:.1f} → {summary['rss_after_kb'] / 1024:.1f} MiB"
            if "rss_after_kb" in summary
            else "n/a",
        ),
        ("server RSS per session", "n/a" if rss is None else f"{rss:.1f} KB"),
        (
            "load average before / after",
            f"{summary['load_average_before']} / {summary.get('load_average_after', '?')}",
        ),
    ]
    for name, value in rows:
        overview.add_row(name, value)
    windows = Table(title="windows")
    for column in ("window", "offered/s", "replies/s", "updates/s", "p50 / p90 / p99 / max ms"):
        windows.add_column(column, justify="right")
    for column in ("server CPU", "generator CPU", "errors", "crashes"):
        windows.add_column(column, justify="right")
    for w in summary.get("windows", []):
        cpu = w["server_cpu_percent"]
        windows.add_row(
            w["label"],
            f"{w['offered_rate']:,.0f}" if w["offered_rate"] else "max",
            f"{w['rate']:,.0f}",
            f"{w['updates_rate']:,.0f}",
            " / ".join(_ms(w[k]) for k in ("p50_ms", "p90_ms", "p99_ms", "max_ms")),
            "n/a" if cpu is None else f"{cpu:.0f} %",
            " ".join(f"{c:.0f}%" for c in w["generator_cpu_percent"]),
            _counts({**w["errors"], **w["failures"], **w["unexpected"]}),
            f"{w['crashes']} ({w['reconnects']} reconnects)",
        )
    return [overview, windows]


def warnings_for(summary: dict[str, Any]) -> list[str]:
    """What makes the figures doubtful or the run a failure, in plain words."""
    found = []
    if summary.get("batch_unsupported"):
        found.append(
            "the server does not support batch frames: it answered "
            f"{summary['batch_unsupported']!r}. Batch frames are specified in "
            "docs/protocol.md (`batch`); every session stopped sending after that reply."
        )
    if not summary.get("sessions_opened"):
        found.append("no session could be opened: nothing was measured")
    for w in summary.get("windows", []):
        if any(c >= 90 for c in w["generator_cpu_percent"]):
            found.append(
                f"window {w['label']}: a generator worker used ≥ 90 % of a core, so the "
                "generator may be the bottleneck; add --workers"
            )
    for w in summary.get("windows", []):
        if w.get("other_cpu_percent", 0) >= 20:
            found.append(
                f"window {w['label']}: other processes used {w['other_cpu_percent']:.0f} % of a "
                "core: the machine was not quiet, so the rates are low"
            )
    if summary.get("load_average_before", 0) >= 1.5:
        found.append(
            f"the machine was busy (load average {summary['load_average_before']}): "
            "treat the rates as lower bounds"
        )
    if summary.get("server_exit_status") not in (None, 0, -15):
        found.append(f"the server exited with status {summary['server_exit_status']}")
    return found


def cmd_loadgen(args: argparse.Namespace) -> int:
    import trio  # noqa: PLC0415 - see options_from
    from rich.console import Console  # noqa: PLC0415
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn  # noqa: PLC0415

    from ._runner import run_load  # noqa: PLC0415

    try:
        options = options_from(args)
    except ValueError as exc:
        print(f"scheduler loadgen: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    console = Console(stderr=True)
    bar = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TimeRemainingColumn(),
        console=console,
        disable=args.no_progress,
    )
    tasks: dict[str, Any] = {}

    def progress(label: str, done: float, totals: dict[str, float]) -> None:
        if label not in tasks:
            tasks[label] = bar.add_task(label, total=1.0)
        elapsed = max(1e-9, done * options.duration)
        bar.update(
            tasks[label],
            completed=min(done, 1.0),
            description=f"{label:>12}: {totals.get('replies', 0) / elapsed:>9,.0f} replies/s "
            f"{int(totals.get('errors', 0))} errors {int(totals.get('crashes', 0))} crashes",
        )

    with bar:
        summary = trio.run(run_load, options, progress, console.print)
    out = Console(width=None if sys.stdout.isatty() else 160)
    if args.json != "-":
        for table in summary_tables(summary):
            out.print(table)
    problems = warnings_for(summary)
    for problem in problems:
        console.print(f"[bold yellow]NOTE[/] {problem}")
    if args.json:
        text = json.dumps(summary, indent=2)
        if args.json == "-":
            print(text)
        else:
            Path(args.json).write_text(text + "\n", encoding="utf-8")
    failed = summary.get("batch_unsupported") or not summary.get("sessions_opened")
    return EXIT_FAILED if failed else 0
