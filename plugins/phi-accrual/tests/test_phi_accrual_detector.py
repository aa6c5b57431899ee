"""The φ-accrual arithmetic and the bounded heartbeat window."""

from __future__ import annotations

import math
import statistics

import pytest
from hypothesis import given
from hypothesis import strategies as st
from scheduler_phi_accrual import (
    MAX_THRESHOLD,
    HeartbeatWindow,
    phi,
    suspicion_delay,
    suspicion_penalty,
    suspicion_quantile,
)

thresholds = st.floats(0.01, MAX_THRESHOLD)
means = st.floats(0.0, 3600.0)
stds = st.floats(0.001, 600.0)


def test_threshold_8_is_about_five_and_a_half_standard_deviations() -> None:
    assert suspicion_quantile(8.0) == pytest.approx(5.612, abs=1e-3)
    # 1 s heartbeats and the 500 ms floor: suspected 3.8 s after the last one.
    assert suspicion_delay(1.0, 0.5, 8.0) == pytest.approx(3.806, abs=1e-3)


@given(mean=means, std=stds, threshold=thresholds)
def test_phi_reaches_the_threshold_exactly_at_the_suspicion_delay(
    mean: float, std: float, threshold: float
) -> None:
    delay = mean + std * suspicion_quantile(threshold)
    assert suspicion_delay(mean, std, threshold) == max(0.0, delay)
    assert phi(delay, mean, std) == pytest.approx(threshold, rel=1e-6)


@given(mean=means, std=stds, a=st.floats(0.0, 1e5), b=st.floats(0.0, 1e5))
def test_phi_grows_with_silence(mean: float, std: float, a: float, b: float) -> None:
    early, late = sorted((a, b))
    assert phi(early, mean, std) <= phi(late, mean, std)


def test_thresholds_past_float_precision_of_one_minus_p_still_work() -> None:
    # 1 - 1e-20 == 1.0 in floats; the tail form does not go through it.
    assert math.isfinite(suspicion_quantile(20.0))
    assert suspicion_quantile(20.0) > suspicion_quantile(16.0) > suspicion_quantile(15.0)
    assert phi(1e9, 0.0, 1.0) == math.inf


@pytest.mark.parametrize("threshold", [0.0, -1.0, MAX_THRESHOLD * 2, math.nan])
def test_a_threshold_out_of_range_is_refused(threshold: float) -> None:
    with pytest.raises(ValueError, match="threshold"):
        suspicion_quantile(threshold)


@given(
    max_samples=st.integers(1, 12),
    values=st.lists(st.floats(0.001, 1000.0) | st.sampled_from([1.0, 1.1, 81.0]), max_size=60),
)
def test_the_window_keeps_the_last_max_samples_and_their_moments(
    max_samples: int, values: list[float]
) -> None:
    window = HeartbeatWindow(max_samples)
    for value in values:
        window.add(value)

    kept = values[-max_samples:] if values else []
    assert window.intervals() == tuple(kept)
    assert len(window) == len(kept)
    if kept:
        assert window.mean == pytest.approx(statistics.fmean(kept), rel=1e-12)
        assert window.std == pytest.approx(statistics.pstdev(kept), rel=1e-9, abs=1e-12)
    else:
        assert (window.mean, window.std) == (0.0, 0.0)


def test_the_window_needs_room_for_one_sample() -> None:
    with pytest.raises(ValueError, match="max_samples"):
        HeartbeatWindow(0)


def test_the_largest_threshold_is_accepted_and_anything_above_is_not() -> None:
    assert suspicion_quantile(MAX_THRESHOLD) > suspicion_quantile(MAX_THRESHOLD / 2) > 0
    with pytest.raises(ValueError, match="threshold must be in"):
        suspicion_quantile(math.nextafter(MAX_THRESHOLD, math.inf))


@pytest.mark.parametrize(
    ("level", "threshold", "weight", "expected"),
    [
        (0.0, 8.0, 1.0, 0.0),
        (-1.0, 8.0, 1.0, 0.0),
        (0.5, 8.0, 1.0, 0.0625),  # any positive level counts, even below 1
        (4.0, 8.0, 1.0, 0.5),
        (8.0, 8.0, 1.0, 1.0),
        (80.0, 8.0, 1.0, 1.0),  # capped at the weight
        (4.0, 8.0, 0.3, 0.15),
        (4.0, 8.0, 0.0, 0.0),  # off
    ],
)
def test_the_suspicion_penalty_is_proportional_and_capped(
    level: float, threshold: float, weight: float, expected: float
) -> None:
    assert suspicion_penalty(level, threshold, weight) == pytest.approx(expected)
