"""Plot ``scheduler simulate --bandwidth ... --churn ... --json FILE`` (a script, not a test).

Three panels against the crash rate, one line per policy set: p99 download time,
``uplink_imbalance`` (the busiest host's uploaded bytes over the mean of the hosts
that uploaded) and scheduling success.

    scheduler simulate --bandwidth mixed --policy dragonfly-2.4 --policy default \\
        --seed 7 --churn 1%,5%,10%,20% --json sweep.json
    python benchmarks/plot_bandwidth.py sweep.json docs/simulate-bandwidth.png

Needs matplotlib (the ``plot`` extra).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any


def plot(rows: list[dict[str, Any]], path: Path) -> None:
    import matplotlib  # noqa: PLC0415 - optional dependency

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    fig, axes = plt.subplots(1, 3, figsize=(14, 4.2), layout="constrained")
    panels = (
        ("download_time_p99", "p99 download time (s)", 1.0),
        ("uplink_imbalance", "uplink imbalance (busiest / mean)", 1.0),
        ("success", "scheduling success (%)", 100.0),
    )
    styles = [("o", "-"), ("s", "--"), ("^", ":"), ("x", "-.")]
    for i, policy in enumerate(dict.fromkeys(r["policy"] for r in rows)):
        marker, dashes = styles[i % len(styles)]
        mine = sorted((r for r in rows if r["policy"] == policy), key=lambda r: r["churn"])
        churn = [100 * r["churn"] for r in mine]
        for ax, (key, _, scale) in zip(axes, panels, strict=True):
            values = [float("nan") if r[key] is None else scale * r[key] for r in mine]
            ax.plot(churn, values, marker=marker, linestyle=dashes, label=policy)
    for ax, (_, label, _) in zip(axes, panels, strict=True):
        ax.set_xlabel("crashes per host-hour (%)")
        ax.set_ylabel(label)
        ax.grid(visible=True, alpha=0.3)
    axes[0].set_ylim(bottom=0)
    axes[1].set_ylim(bottom=0)
    axes[0].legend()
    fig.suptitle("scheduler simulate --bandwidth mixed: download time, hot spots, success")
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("json", type=Path, help="rows written by scheduler simulate --json")
    parser.add_argument("png", type=Path, help="the plot to write")
    args = parser.parse_args()
    plot(json.loads(args.json.read_text()), args.png)
    print(f"wrote {args.png}")


if __name__ == "__main__":
    main()
