"""The φ-accrual arithmetic (Hayashibara et al., 2004), and one host's heartbeat window.

The suspicion level after ``elapsed`` seconds of silence is

    φ(elapsed) = -log10(1 - F(elapsed)),

with F the CDF of the normal distribution N(μ + pause, σ) fitted to the
observed inter-arrival times. φ = 8 means "a heartbeat this late happens once
in 10⁸ intervals". Solving φ(Δ) = threshold gives the closed form

    Δ = μ + pause + σ · z,   z = Φ⁻¹(1 - 10^-threshold) = -Φ⁻¹(10^-threshold).

The right-hand form keeps full precision: ``1 - 10**-threshold`` rounds to 1
for thresholds past ~16, while ``10**-threshold`` is exact down to ~1e-308.
"""

from __future__ import annotations

import math
from collections import deque
from statistics import NormalDist
from typing import Final, final

#: Thresholds above this make 10**-threshold underflow.
MAX_THRESHOLD: Final = 300.0

_STANDARD_NORMAL: Final = NormalDist()


def suspicion_quantile(threshold: float) -> float:
    """How many standard deviations past the mean φ reaches ``threshold``."""
    if not (0 < threshold <= MAX_THRESHOLD):
        raise ValueError(f"threshold must be in (0, {MAX_THRESHOLD}], got {threshold!r}")
    return -_STANDARD_NORMAL.inv_cdf(10.0**-threshold)


def suspicion_delay(mean: float, std: float, threshold: float) -> float:
    """Seconds of silence after which φ reaches ``threshold`` (never negative).

    ``mean`` already includes the acceptable pause; ``std`` must be positive.
    """
    return max(0.0, mean + std * suspicion_quantile(threshold))


def phi(elapsed: float, mean: float, std: float) -> float:
    """The suspicion level after ``elapsed`` seconds of silence (``inf`` past float range).

    ``mean`` already includes the acceptable pause; ``std`` must be positive.
    The upper tail is computed with ``erfc``, which stays accurate where
    ``1 - cdf`` would cancel to zero.
    """
    tail = 0.5 * math.erfc((elapsed - mean) / (std * math.sqrt(2.0)))
    return math.inf if tail <= 0.0 else -math.log10(tail)


@final
class HeartbeatWindow:
    """The last ``max_samples`` inter-arrival intervals of one host, with their moments.

    The mean and standard deviation are recomputed exactly (two passes with
    ``math.fsum``) on every heartbeat: O(max_samples), about 8 µs for 100
    samples. Incremental updates are cheaper but not exact where it matters:
    a running sum of squares cancels catastrophically for long, regular
    intervals, and a sliding Welford update keeps the rounding error of large
    intervals that have already left the window.
    """

    __slots__ = ("_intervals", "_mean", "_std")

    def __init__(self, max_samples: int) -> None:
        if max_samples < 1:
            raise ValueError(f"max_samples must be at least 1, got {max_samples!r}")
        self._intervals: deque[float] = deque(maxlen=max_samples)
        self._mean = 0.0
        self._std = 0.0

    def __len__(self) -> int:
        return len(self._intervals)

    def intervals(self) -> tuple[float, ...]:
        """The kept intervals, oldest first."""
        return tuple(self._intervals)

    def add(self, interval: float) -> None:
        """Record one inter-arrival interval, dropping the oldest when full."""
        window = self._intervals
        window.append(interval)
        n = len(window)
        mean = math.fsum(window) / n
        self._mean = mean
        self._std = math.sqrt(math.fsum([(x - mean) * (x - mean) for x in window]) / n)

    @property
    def mean(self) -> float:
        """Mean interval (0 for an empty window)."""
        return self._mean

    @property
    def std(self) -> float:
        """Population standard deviation of the intervals (0 for fewer than two)."""
        return self._std


def suspicion_penalty(level: float, threshold: float, weight: float) -> float:
    """``weight × φ / threshold``, capped at ``weight`` (0 for φ <= 0)."""
    if level <= 0 or weight <= 0:
        return 0.0
    return weight * min(1.0, level / threshold)
