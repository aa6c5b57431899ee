"""Outage or cut off: the verdict of the lease probes and the standing it moves (sans-IO).

Times are plain numbers on the member's own clock, as the trio shell passes them.
"""

from __future__ import annotations

import pytest

from scheduler.registry import IllegalTransition, OutageWatch, ProbeAnswer, Standing, Verdict
from scheduler.registry import verdict_of as _verdict_of
from scheduler.registry._outage import TRANSITIONS

LEASE = 15.0


def verdict_of(
    *answers: ProbeAnswer, ended_at: float = 100.0, believed_until: float | None = 105.0
) -> Verdict:
    # Our first failed call ended at 95.
    return _verdict_of(
        answers, ended_at=ended_at, failing_since=95.0, believed_until=believed_until
    )


def test_a_member_answered_by_the_registry_since_our_failures_renews() -> None:
    assert verdict_of(ProbeAnswer("s2", True, 1.0)) is Verdict.PEER_RENEWS
    failing = ProbeAnswer("s3", True, 30.0, 20.0)
    assert verdict_of(failing, ProbeAnswer("s2", True, 4.0)) is Verdict.PEER_RENEWS


def test_members_failing_since_before_our_lease_ran_out_mean_an_outage() -> None:
    assert verdict_of(ProbeAnswer("s2", True, 8.0, 6.0)) is Verdict.NOBODY_RENEWS
    # Their failures began after our lease ran out (at 105): too late.
    late = ProbeAnswer("s2", True, 20.0, 2.0)
    assert verdict_of(late, ended_at=110.0) is Verdict.NOBODY_RENEWS_LAPSED
    assert verdict_of(late, ended_at=110.0, believed_until=None) is Verdict.NOBODY_RENEWS_LAPSED


def test_silence_and_members_that_have_not_tried_since_say_nothing() -> None:
    assert verdict_of() is Verdict.NO_ANSWER
    assert verdict_of(ProbeAnswer("s2", False)) is Verdict.NO_ANSWER
    # Answered at 92, before our first failure ended, and not failing: not tried since.
    assert verdict_of(ProbeAnswer("s2", True, 8.0)) is Verdict.NO_ANSWER
    assert verdict_of(ProbeAnswer("s2", True, None)) is Verdict.NO_ANSWER


def test_an_outage_is_served_stale_until_the_registry_answers() -> None:
    watch = OutageWatch(LEASE)
    assert watch.apply(100.0, Verdict.NO_ANSWER) is None
    assert watch.apply(101.0, Verdict.NOBODY_RENEWS) is Standing.OUTAGE
    assert watch.serving_stale(101.0)
    # Confirmed again within a lease: it goes on, however long the outage lasts.
    for t in (110.0, 120.0, 130.0):
        assert watch.apply(t, Verdict.NOBODY_RENEWS_LAPSED) is None
        assert watch.apply(t + 1, Verdict.NO_ANSWER) is None
    assert watch.serving_stale(130.0 + LEASE)
    assert watch.apply(150.0, Verdict.REGISTRY_ANSWERED) is Standing.NORMAL
    assert not watch.serving_stale(150.0)


def test_an_outage_unconfirmed_for_a_lease_ends_and_cannot_come_back_late() -> None:
    watch = OutageWatch(LEASE)
    watch.apply(100.0, Verdict.NOBODY_RENEWS)
    assert watch.serving_stale(100.0 + LEASE)
    assert not watch.serving_stale(100.0 + LEASE + 0.001)
    assert watch.aged(100.0 + LEASE + 0.001)
    # A late verdict cannot revive it: it ages first, and a lapsed verdict starts nothing.
    assert watch.apply(116.0, Verdict.NOBODY_RENEWS_LAPSED) is Standing.NORMAL
    assert not watch.serving_stale(116.0)


def test_a_member_cut_off_stays_so_until_the_registry_answers() -> None:
    watch = OutageWatch(LEASE)
    assert watch.apply(100.0, Verdict.NOBODY_RENEWS) is Standing.OUTAGE
    assert watch.apply(101.0, Verdict.PEER_RENEWS) is Standing.CUT_OFF
    assert not watch.serving_stale(101.0)
    # Someone reached the registry while we could not: it may hold our name by now.
    assert watch.apply(102.0, Verdict.NOBODY_RENEWS) is None
    assert watch.standing is Standing.CUT_OFF
    assert watch.apply(103.0, Verdict.REGISTRY_ANSWERED) is Standing.NORMAL


@pytest.mark.parametrize("standing", [Standing.NORMAL, Standing.CUT_OFF])
def test_an_illegal_transition_raises_and_changes_nothing(standing: Standing) -> None:
    assert (standing, Verdict.AGED) not in TRANSITIONS
    watch = OutageWatch(LEASE)
    if standing is Standing.CUT_OFF:
        watch.apply(1.0, Verdict.PEER_RENEWS)
    before = (watch.standing, watch.since, watch.confirmed_at)
    with pytest.raises(IllegalTransition, match="aged"):
        watch.apply(2.0, Verdict.AGED)
    assert (watch.standing, watch.since, watch.confirmed_at) == before


def test_every_other_pair_is_a_transition() -> None:
    pairs = {(s, v) for s in Standing for v in Verdict if v is not Verdict.AGED}
    assert pairs <= set(TRANSITIONS)
