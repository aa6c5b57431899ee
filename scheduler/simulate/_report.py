"""The figures as a rich table, a JSON file and a plot."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from rich.table import Table

from ._metrics import CAUSES, SetResult


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f} %"


def _num(value: float | None, digits: int = 1, unit: str = "") -> str:
    return "-" if value is None else f"{value:,.{digits}f}{unit}"


def results_table(results: Sequence[SetResult], *, title: str = "") -> Table:
    """One row per policy set and churn rate."""
    table = Table(title=title or None)
    sweep = len({r.churn for r in results}) > 1
    if sweep:
        table.add_column("crash/h", justify="right")
    table.add_column("policy set")
    table.add_column("success", justify="right")
    table.add_column("dead /1000", justify="right")
    table.add_column("dead: " + " / ".join(CAUSES), justify="right")
    table.add_column("downloads", justify="right")
    table.add_column("p50", justify="right")
    table.add_column("p99", justify="right")
    table.add_column("to origin", justify="right")
    table.add_column("origin GiB", justify="right")
    table.add_column("imbalance", justify="right")
    table.add_column("resched /dl", justify="right")
    table.add_column("pushes", justify="right")
    table.add_column("peak records", justify="right")
    table.add_column("CPU", justify="right")
    for r in results:
        causes = " / ".join(str(r.dead_handouts_by_cause.get(c, 0)) for c in CAUSES)
        row = [
            r.policy,
            _pct(r.success),
            _num(r.dead_handouts_per_1000),
            causes,
            f"{r.downloads_completed:,}",
            _num(r.download_time_p50, 1, " s"),
            _num(r.download_time_p99, 1, " s"),
            _pct(r.back_to_source_share),
            _num(r.origin_bytes / 2**30, 1),
            _num(r.uplink_imbalance, 1),
            _num(r.reschedules_per_download, 2),
            f"{r.pushes:,}",
            f"{r.peak_records:,}",
            _num(r.cpu, 1, " s"),
        ]
        table.add_row(*([_pct(r.churn)] if sweep else []), *row)
    return table


def write_json(results: Sequence[SetResult], path: Path) -> None:
    """A list of objects: ``policy``, ``churn``, ``success``, ``dead_handouts_per_1000``, ..."""
    path.write_text(json.dumps([r.to_json() for r in results], indent=2) + "\n")


def write_plot(results: Sequence[SetResult], path: Path) -> None:
    """Success and p99 download time against the crash rate, one line per policy set.

    Needs matplotlib (the ``plot`` extra); raises ImportError without it.
    """
    import matplotlib  # noqa: PLC0415 - optional dependency, only for --plot

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2), layout="constrained")
    # Distinct markers and dashes: sets with equal figures would hide each other.
    styles = [("o", "-"), ("s", "-"), ("^", "-"), ("x", "--"), ("D", ":")]
    for i, policy in enumerate(dict.fromkeys(r.policy for r in results)):
        marker, dashes = styles[i % len(styles)]
        rows = sorted((r for r in results if r.policy == policy), key=lambda r: r.churn)
        churn = [100 * r.churn for r in rows]
        success = [float("nan") if r.success is None else 100 * r.success for r in rows]
        p99 = [float("nan") if r.download_time_p99 is None else r.download_time_p99 for r in rows]
        left.plot(churn, success, marker=marker, linestyle=dashes, label=policy)
        right.plot(churn, p99, marker=marker, linestyle=dashes, label=policy)
    left.set_xlabel("crashes per host-hour (%)")
    left.set_ylabel("scheduling success (%)")
    left.set_title("decisions whose parents were all alive")
    right.set_xlabel("crashes per host-hour (%)")
    right.set_ylabel("p99 download time (s)")
    right.set_title("p99 download time")
    for axes in (left, right):
        axes.grid(visible=True, alpha=0.3)
    left.legend()
    fig.savefig(path, dpi=110)
    plt.close(fig)
