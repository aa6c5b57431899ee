"""Dragonfly's bad-node rule, and the per-peer window of piece costs it is judged on.

The rule: fewer than 2 samples is never bad; below 30 samples the last cost is
bad when it exceeds 20 x the mean of the earlier ones; from 30 samples on, when it
exceeds their mean + 3 sigma (population standard deviation).
"""

from __future__ import annotations

import pytest

from scheduler.core._badnode import is_bad_node
from scheduler.core._costs import COST_WINDOW, CostWindows

# --- is_bad_node ------------------------------------------------------------------------------


@pytest.mark.parametrize("costs", [[], [0.0], [1000.0]])
def test_fewer_than_two_samples_is_never_bad(costs: list[float]) -> None:
    assert not is_bad_node(costs)


def test_two_samples_use_the_twenty_times_rule_at_its_boundary() -> None:
    assert is_bad_node([1.0, 20.5])
    assert not is_bad_node([1.0, 20.0])  # exactly 20 x the mean is not more than it
    assert not is_bad_node([1.0, 19.0])


def test_the_mean_is_that_of_the_earlier_costs_and_the_last_is_the_newest() -> None:
    # earlier mean (1 + 3) / 2 = 2: the threshold is 40
    assert is_bad_node([1.0, 3.0, 40.5])
    assert not is_bad_node([1.0, 3.0, 40.0])
    assert not is_bad_node([1.0, 3.0, 39.0])
    # an outlier that is not the newest cost does not make the peer bad now
    assert not is_bad_node([1.0, 100.0, 1.0])
    assert not is_bad_node([100.0, 1.0])


def test_twenty_nine_samples_still_use_the_twenty_times_rule() -> None:
    steady = [1.0] * 28
    assert not is_bad_node([*steady, 1.5])  # 3 sigma of a steady series would call it bad
    assert not is_bad_node([*steady, 20.0])
    assert is_bad_node([*steady, 20.5])


def test_thirty_samples_switch_to_the_three_sigma_rule() -> None:
    steady = [1.0] * 29
    assert is_bad_node([*steady, 1.5])  # sigma 0: anything above the mean
    assert not is_bad_node([*steady, 1.0])  # equal to mean + 3 sigma: not above it
    assert not is_bad_node([*steady, 0.5])


def test_the_three_sigma_threshold_uses_the_population_deviation_of_the_earlier_costs() -> None:
    # 29 earlier costs: mean 58 / 29 = 2, population variance 28 / 29,
    # so the threshold is 2 + 3 * sqrt(28 / 29) = 4.9478...
    earlier = [2.0] + [1.0] * 14 + [3.0] * 14
    assert not is_bad_node([*earlier, 4.94])
    assert is_bad_node([*earlier, 4.96])
    # 63 earlier costs, mean 1, population variance 62 / 63: threshold 3.976...
    wide = [1.0] + [0.0] * 31 + [2.0] * 31
    assert not is_bad_node([*wide, 3.97])
    assert is_bad_node([*wide, 3.98])


# --- CostWindows --------------------------------------------------------------------------------


def test_a_report_adds_its_cost_per_piece() -> None:
    windows = CostWindows()
    windows.record("p", 2.0, 4)
    windows.record("p", 3.0, 1)
    assert windows.costs_of("p") == (0.5, 3.0)
    assert windows.costs_of("other") == ()


@pytest.mark.parametrize("pieces", [0, -1])
def test_a_report_of_no_piece_adds_no_sample(pieces: int) -> None:
    windows = CostWindows()
    windows.record("p", 2.0, pieces)
    assert windows.costs_of("p") == ()
    assert not windows.is_bad("p")


def test_the_window_keeps_the_last_sixty_four_costs() -> None:
    assert COST_WINDOW == 64
    windows = CostWindows()
    for i in range(COST_WINDOW + 2):
        windows.record("p", float(i), 1)
    assert windows.costs_of("p") == tuple(float(i) for i in range(2, COST_WINDOW + 2))
    small = CostWindows(size=3)
    for i in range(5):
        small.record("p", float(i), 1)
    assert small.costs_of("p") == (2.0, 3.0, 4.0)


def test_the_verdict_follows_the_newest_sample() -> None:
    windows = CostWindows()
    windows.record("p", 1.0, 1)
    assert not windows.is_bad("p")
    windows.record("p", 21.0, 1)
    assert windows.is_bad("p")
    assert not windows.is_bad("q")
    windows.record("p", 1.0, 1)  # mean of 1 and 21 is 11: a cost of 1 is fine again
    assert not windows.is_bad("p")
    windows.record("p", 300.0, 1)
    assert windows.is_bad("p")


def test_the_verdict_is_judged_on_the_window_only() -> None:
    windows = CostWindows(size=2)
    windows.record("p", 1000.0, 1)
    windows.record("p", 1.0, 1)
    windows.record("p", 21.0, 1)  # the 1000 has left the window: 21 > 20 x 1
    assert windows.costs_of("p") == (1.0, 21.0)
    assert windows.is_bad("p")


def test_forget_drops_the_costs_and_the_verdict() -> None:
    windows = CostWindows()
    windows.record("p", 1.0, 1)
    windows.record("p", 50.0, 1)
    windows.record("q", 1.0, 1)
    windows.forget("p")
    assert windows.costs_of("p") == ()
    assert not windows.is_bad("p")
    assert windows.costs_of("q") == (1.0,)
    windows.forget("never-seen")  # no error
    windows.record("p", 50.0, 1)  # a fresh window: one sample is never bad
    assert not windows.is_bad("p")
