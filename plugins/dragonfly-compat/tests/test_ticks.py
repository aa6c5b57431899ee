"""Sweep ticks: the first multiple of the period strictly after a deadline, even where
``due / period`` rounds the wrong way."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st
from scheduler_dragonfly_compat._ticks import next_sweep_tick


def first_tick_after(due: float, period: float) -> float:
    """An independent statement: the smallest k with k * period > due, by search."""
    base = math.floor(due / period)
    return min(k * period for k in range(base - 3, base + 5) if k * period > due)


# Found by search: here floor(due / period) + 1 lands one tick early (the product
# rounds down onto or below due) or one tick late (the quotient rounds up).
ROUNDED_UP = [(142777.19999999998, 0.6), (270065.39999999997, 0.3)]
ROUNDED_DOWN = [(55853.6, 0.2), (5791.799999999999, 0.6), (4099333.6999999997, 7.7)]


@pytest.mark.parametrize(("due", "period"), [*ROUNDED_UP, *ROUNDED_DOWN])
def test_a_rounded_quotient_still_gives_the_first_tick_after_the_deadline(
    due: float, period: float
) -> None:
    tick = next_sweep_tick(due, period)
    assert tick == first_tick_after(due, period)
    assert tick > due


def test_a_tick_on_the_deadline_does_not_evict_yet() -> None:
    assert next_sweep_tick(1200.0, 300.0) == 1500.0
    assert next_sweep_tick(1060.0, 300.0) == 1200.0
    assert next_sweep_tick(0.0, 5.0) == 5.0


@given(
    st.floats(0.0, 1e7, allow_nan=False),
    st.sampled_from([0.1, 0.2, 0.3, 0.6, 1.0, 7.7, 300.0, 1800.0]),
)
def test_the_tick_is_the_first_multiple_strictly_after(due: float, period: float) -> None:
    assert next_sweep_tick(due, period) == first_tick_after(due, period)


@pytest.mark.parametrize("period", [0.0, -1.0, math.inf, math.nan])
def test_a_period_must_be_positive_and_finite(period: float) -> None:
    with pytest.raises(ValueError, match="period must be a positive finite number"):
        next_sweep_tick(10.0, period)
