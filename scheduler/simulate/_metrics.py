"""What a run measures, and the figures one policy set reports."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any, Final, final

import attrs

#: The causes a dead-parent handout is attributed to (the dead host's, from the ground truth).
CAUSES: Final = ("crash", "hang", "leave", "stale")


def percentile(values: Sequence[float], q: float) -> float | None:
    """The ``q``-th percentile (0..100) by linear interpolation; None for no values."""
    if not 0 <= q <= 100:
        raise ValueError(f"q must be in [0, 100], got {q!r}")
    if not values:
        return None
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100.0
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


@final
class Metrics:
    """Counters one run accumulates; every decision is recorded exactly once."""

    def __init__(self) -> None:
        self.decisions = 0
        self.decisions_by_action: Counter[str] = Counter()
        self.decisions_by_cause: Counter[str] = Counter()
        self.parent_decisions = 0
        self.clean_parent_decisions = 0
        self.dead_handouts: Counter[str] = Counter()
        self.downloads_started = 0
        self.downloads_completed = 0
        self.downloads_failed = 0
        self.downloads_abandoned = 0
        self.download_times: list[float] = []
        self.completed_with_origin = 0
        self.reschedules = 0
        self.parent_failures = 0
        self.cache_hits = 0
        self.peak_records = 0
        self.deaths: Counter[str] = Counter()
        self.false_evictions = 0
        self.errors: Counter[str] = Counter()
        self.origin_bytes = 0
        #: Bytes each host uploaded to children (by host id).
        self.uploaded: Counter[str] = Counter()

    def record_decision(self, action: str, cause: str, dead_causes: Sequence[str | None]) -> None:
        """One decision; ``dead_causes`` holds, per parent handed out, None (alive) or a cause."""
        self.decisions += 1
        self.decisions_by_action[action] += 1
        self.decisions_by_cause[cause] += 1
        if not dead_causes:
            return
        self.parent_decisions += 1
        dead = [c for c in dead_causes if c is not None]
        if not dead:
            self.clean_parent_decisions += 1
        self.dead_handouts.update(dead)

    def record_download(self, seconds: float, used_origin: bool) -> None:
        self.downloads_completed += 1
        self.download_times.append(seconds)
        self.completed_with_origin += used_origin

    def record_bytes(self, source_host: str | None, nbytes: int) -> None:
        """``nbytes`` reached a peer from ``source_host`` (None: the origin)."""
        if source_host is None:
            self.origin_bytes += nbytes
        else:
            self.uploaded[source_host] += nbytes

    def uplink_imbalance(self) -> float | None:
        """The busiest host's uploaded bytes over the mean of the hosts that uploaded."""
        loads = [n for n in self.uploaded.values() if n > 0]
        if not loads:
            return None
        return max(loads) / (sum(loads) / len(loads))

    def observe_records(self, count: int) -> None:
        self.peak_records = max(self.peak_records, count)


@final
@attrs.frozen(kw_only=True)
class SetResult:
    """The figures of one policy set at one churn rate."""

    policy: str
    churn: float
    """Crashes per host-hour."""
    success: float | None
    """Decisions whose parents were all alive / decisions that handed out parents."""
    dead_handouts_per_1000: float | None
    """Dead parents handed out per 1000 decisions that handed out parents."""
    dead_handouts_by_cause: Mapping[str, int]
    decisions: int
    parent_decisions: int
    pushes: int
    downloads_started: int
    downloads_completed: int
    downloads_failed: int
    download_time_p50: float | None
    download_time_p99: float | None
    back_to_source_share: float | None
    reschedules_per_download: float | None
    peak_records: int
    origin_bytes: int = 0
    """Bytes the origin served (to peers that went back to source, seeds included)."""
    uplink_imbalance: float | None = None
    """The busiest host's uploaded bytes over the mean of the hosts that uploaded (>= 1)."""
    false_evictions: int
    errors: Mapping[str, int]
    elapsed: float
    """Wall-clock seconds the run took (not part of the determinism)."""
    cpu: float = 0.0
    """CPU seconds the run took (the one-core figure on a shared machine)."""

    @classmethod
    def from_metrics(
        cls, policy: str, churn: float, metrics: Metrics, elapsed: float, cpu: float = 0.0
    ) -> SetResult:
        m = metrics
        by_cause = {cause: m.dead_handouts.get(cause, 0) for cause in CAUSES}
        by_cause.update({c: n for c, n in m.dead_handouts.items() if c not in by_cause})
        parent = m.parent_decisions
        dead = sum(m.dead_handouts.values())
        done = m.downloads_completed
        return cls(
            policy=policy,
            churn=churn,
            success=m.clean_parent_decisions / parent if parent else None,
            dead_handouts_per_1000=1000 * dead / parent if parent else None,
            dead_handouts_by_cause=by_cause,
            decisions=m.decisions,
            parent_decisions=parent,
            pushes=m.decisions_by_cause.get("parent_lost", 0),
            downloads_started=m.downloads_started,
            downloads_completed=done,
            downloads_failed=m.downloads_failed,
            download_time_p50=percentile(m.download_times, 50),
            download_time_p99=percentile(m.download_times, 99),
            back_to_source_share=m.completed_with_origin / done if done else None,
            reschedules_per_download=(
                m.reschedules / m.downloads_started if m.downloads_started else None
            ),
            peak_records=m.peak_records,
            origin_bytes=m.origin_bytes,
            uplink_imbalance=m.uplink_imbalance(),
            false_evictions=m.false_evictions,
            errors=dict(sorted(m.errors.items())),
            elapsed=elapsed,
            cpu=cpu,
        )

    def to_json(self) -> dict[str, Any]:
        """The JSON object of ``--json`` (every field; ``elapsed`` is wall-clock)."""
        return attrs.asdict(self)

    def figures(self) -> dict[str, Any]:
        """Everything but the run times: equal for equal seeds."""
        out = self.to_json()
        del out["elapsed"], out["cpu"]
        return out
