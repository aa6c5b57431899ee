"""The detector inside the scheduler: fast on silence, quiet on jitter, on a simulated clock."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scheduler_phi_accrual import PHI_SUSPECT, PhiAccrual, suspicion_delay

from scheduler.core import (
    ConfigError,
    ContactSource,
    Eviction,
    HostInfo,
    PolicySet,
    Reason,
    RecordKind,
    TaskInfo,
    plugin_name,
)
from scheduler.policies import builtin_plugins
from scheduler.testing import (
    Crash,
    Hang,
    HostProfile,
    Pong,
    Simulation,
    announce_schedules,
    check_plugin_settings,
)

ALPHA = HostInfo("alpha", "10.0.0.1")
#: The Go daemon announces every 30 s; the service's keepalive pings it every second.
GO_DAEMON = HostProfile(ALPHA, interval=30.0)
#: With every interval at 1 s the observed spread is 0, so the 500 ms floor applies.
ONE_SECOND_DELAY = suspicion_delay(1.0, 0.5, 8.0)


def simulation(
    profile: HostProfile = GO_DAEMON,
    *,
    plugins: Sequence[object] = (),
    config: Mapping[str, Mapping[str, Any]] | None = None,
) -> tuple[Simulation, PhiAccrual]:
    detector = PhiAccrual()
    policies = PolicySet.from_plugins([*builtin_plugins(), detector, *plugins], config=config)
    return Simulation(policies, [profile]), detector


def heartbeats(sim: Simulation, seconds: int) -> None:
    """One heartbeat a second: a pong, or the announce when one is due (every 30 s)."""
    for _ in range(seconds):
        sim.advance(1.0)
        due = sim.next_announce[0]
        if due is not None and due <= sim.now:
            sim.announce(0)
        else:
            sim.apply(Pong(0))


def host_evictions(sim: Simulation) -> list[Eviction]:
    return [e for e in sim.evictions if e.kind is RecordKind.HOST]


# --- detection ------------------------------------------------------------------------------


def test_a_silent_host_is_suspected_seconds_after_its_last_heartbeat() -> None:
    sim, _ = simulation()
    sim.announce(0)
    heartbeats(sim, 40)
    sim.apply(Hang(0))

    sim.advance(120.0)

    [eviction] = host_evictions(sim)
    assert eviction.reason == PHI_SUSPECT
    assert eviction.detection_latency == pytest.approx(ONE_SECOND_DELAY)
    assert eviction.detection_latency < 2 * GO_DAEMON.interval  # the announce TTL: 60 s


def test_without_the_detector_the_same_host_waits_for_the_announce_ttl() -> None:
    sim = Simulation(PolicySet.from_plugins(builtin_plugins()), [GO_DAEMON])
    sim.announce(0)
    heartbeats(sim, 40)
    sim.apply(Hang(0))

    sim.advance(120.0)

    [eviction] = host_evictions(sim)
    assert eviction.reason == Reason.TTL_EXPIRED
    assert eviction.detection_latency > 2 * ONE_SECOND_DELAY


def test_phi_is_at_the_threshold_when_the_deadline_passes() -> None:
    sim, detector = simulation()
    sim.announce(0)
    heartbeats(sim, 10)

    host = sim.state.host(ALPHA.id)
    deadline = sim.state.deadline_of(RecordKind.HOST, ALPHA.id)
    assert deadline is not None
    assert deadline.reason == PHI_SUSPECT
    assert detector.phi(host, deadline.at) == pytest.approx(detector.threshold)
    assert detector.phi(host, sim.now) == pytest.approx(0.0, abs=0.01)


def jittered(interval: float) -> st.SearchStrategy[tuple[HostProfile, list[float]]]:
    profile = HostProfile(ALPHA, interval=interval, jitter=0.1)
    return st.tuples(st.just(profile), announce_schedules(profile, count=150))


@given(host=st.floats(0.5, 5.0).flatmap(jittered))
@settings(deadline=None)
def test_announces_with_ten_percent_jitter_are_never_suspected(
    host: tuple[HostProfile, list[float]],
) -> None:
    profile, schedule = host
    sim, _ = simulation(profile)
    start = sim.now
    sim.announce(0)
    for offset in schedule:
        sim.advance(start + offset - sim.now)
        sim.announce(0)

    assert host_evictions(sim) == []


def test_no_opinion_before_min_samples() -> None:
    sim, detector = simulation()
    sim.announce(0)  # the first heartbeat: no interval yet
    for expected in (1, 2):
        sim.advance(1.0)
        sim.apply(Pong(0))
        host = sim.state.host(ALPHA.id)
        assert len(detector.intervals(ALPHA.id)) == expected
        assert detector.scheduler_host_expiry(host) is None
        assert detector.phi(host, sim.now + 100.0) is None
        held = sim.state.deadline_of(RecordKind.HOST, ALPHA.id)
        assert held is not None
        assert held.reason == Reason.TTL_EXPIRED

    sim.advance(1.0)
    sim.apply(Pong(0))
    held = sim.state.deadline_of(RecordKind.HOST, ALPHA.id)
    assert held is not None
    assert (held.reason, held.at) == (PHI_SUSPECT, pytest.approx(sim.now + ONE_SECOND_DELAY))


def test_the_window_is_bounded_by_max_samples() -> None:
    sim, detector = simulation(config={"phi_accrual": {"max_samples": 5}})
    sim.announce(0)
    heartbeats(sim, 40)

    assert detector.intervals(ALPHA.id) == (1.0,) * 5


def test_an_announce_and_a_pong_at_the_same_instant_are_one_heartbeat() -> None:
    sim, detector = simulation()
    sim.announce(0)
    sim.apply(Pong(0))
    heartbeats(sim, 5)

    assert detector.intervals(ALPHA.id) == (1.0,) * 5


def test_other_messages_prove_liveness_but_stay_out_of_the_window() -> None:
    sim, detector = simulation()
    sim.announce(0)
    heartbeats(sim, 5)
    sim.advance(0.25)
    sim.state.touch_host(ALPHA.id, sim.now, ContactSource.MESSAGE)

    assert detector.intervals(ALPHA.id) == (1.0,) * 5
    held = sim.state.deadline_of(RecordKind.HOST, ALPHA.id)
    assert held is not None
    assert held.at == pytest.approx(sim.now + ONE_SECOND_DELAY)


def test_expiry_is_pure() -> None:
    sim, detector = simulation()
    sim.announce(0)
    heartbeats(sim, 5)
    host = sim.state.host(ALPHA.id)
    before = (detector.tracked_hosts(), detector.intervals(ALPHA.id))

    answers = {detector.scheduler_host_expiry(host) for _ in range(5)}

    assert len(answers) == 1
    assert (detector.tracked_hosts(), detector.intervals(ALPHA.id)) == before


# --- disconnects, reconnects and evictions ----------------------------------------------------


def test_a_disconnected_host_is_left_to_the_session_policy() -> None:
    sim, detector = simulation()
    sim.announce(0)
    heartbeats(sim, 5)
    sim.apply(Crash(0))

    assert detector.scheduler_host_expiry(sim.state.host(ALPHA.id)) is None
    held = sim.state.deadline_of(RecordKind.HOST, ALPHA.id)
    assert held is not None
    assert held.reason == Reason.DISCONNECTED


def test_a_reconnect_does_not_put_the_gap_into_the_window() -> None:
    sim, detector = simulation()
    sim.announce(0)
    heartbeats(sim, 10)
    sim.advance(0.5)
    sim.apply(Crash(0))
    sim.advance(3.0)  # within the 5 s reconnect grace
    sim.announce(0)  # a new session: a reconnect
    heartbeats(sim, 3)

    assert detector.intervals(ALPHA.id) == (1.0,) * 13
    held = sim.state.deadline_of(RecordKind.HOST, ALPHA.id)
    assert held is not None
    assert (held.reason, held.at) == (PHI_SUSPECT, pytest.approx(sim.now + ONE_SECOND_DELAY))


def test_a_new_announce_interval_starts_a_new_window() -> None:
    sim, detector = simulation()
    sim.announce(0)
    heartbeats(sim, 5)
    sim.advance(1.0)
    sim.state.announce_host(ALPHA, sim.now, interval=300.0)  # the daemon restarted as Rust

    assert detector.intervals(ALPHA.id) == ()
    assert detector.tracked_hosts() == {ALPHA.id}


def test_state_is_dropped_when_the_host_is_evicted() -> None:
    sim, detector = simulation()
    sim.announce(0)
    heartbeats(sim, 5)
    assert detector.tracked_hosts() == {ALPHA.id}

    sim.apply(Hang(0))
    sim.advance(10.0)

    assert [e.reason for e in host_evictions(sim)] == [PHI_SUSPECT]
    assert detector.tracked_hosts() == frozenset()
    assert detector.intervals(ALPHA.id) == ()


def test_a_returning_host_starts_from_scratch() -> None:
    sim, detector = simulation()
    sim.announce(0)
    heartbeats(sim, 5)
    sim.state.leave_host(ALPHA.id, sim.now)
    assert detector.tracked_hosts() == frozenset()

    sim.advance(100.0)
    sim.announce(0)
    assert detector.intervals(ALPHA.id) == ()
    assert detector.scheduler_host_expiry(sim.state.host(ALPHA.id)) is None


# --- composition and configuration ----------------------------------------------------------


def test_it_is_additive() -> None:
    policies = PolicySet.from_plugins([*builtin_plugins(), PhiAccrual()])
    assert policies.names == [*map(plugin_name, builtin_plugins()), "phi_accrual"]


def test_config_values_are_read() -> None:
    detector = PhiAccrual()
    PolicySet.from_plugins(
        [detector],
        config={
            "phi_accrual": {
                "threshold": 12,
                "min_std_deviation": "250ms",
                "acceptable_heartbeat_pause": "3s",
                "max_samples": 1000,
                "min_samples": 10,
            }
        },
    )
    assert detector.threshold == 12.0
    assert detector.min_std_deviation == 0.25
    assert detector.acceptable_heartbeat_pause == 3.0
    assert (detector.max_samples, detector.min_samples) == (1000, 10)


def test_the_acceptable_pause_moves_the_deadline() -> None:
    sim, _ = simulation(config={"phi_accrual": {"acceptable_heartbeat_pause": "10s"}})
    sim.announce(0)
    heartbeats(sim, 5)

    held = sim.state.deadline_of(RecordKind.HOST, ALPHA.id)
    assert held is not None
    assert held.at == pytest.approx(sim.now + 10.0 + ONE_SECOND_DELAY)


@pytest.mark.parametrize(
    ("section", "key"),
    [
        ({"treshold": 8}, "treshold"),
        ({"threshold": "high"}, "threshold"),
        ({"threshold": True}, "threshold"),
        ({"threshold": 0}, "threshold"),
        ({"threshold": 1000}, "threshold"),
        ({"threshold": float("nan")}, "threshold"),
        ({"min_std_deviation": "0s"}, "min_std_deviation"),
        ({"min_std_deviation": "wide"}, "min_std_deviation"),
        ({"acceptable_heartbeat_pause": -1}, "acceptable_heartbeat_pause"),
        ({"max_samples": 0}, "max_samples"),
        ({"max_samples": 10.5}, "max_samples"),
        ({"min_samples": False}, "min_samples"),
        ({"max_samples": 5, "min_samples": 6}, "min_samples"),
    ],
)
def test_a_bad_setting_is_a_config_error_naming_the_key(
    section: dict[str, object], key: str
) -> None:
    detector = PhiAccrual()
    with pytest.raises(ConfigError) as excinfo:
        PolicySet.from_plugins([detector], config={"phi_accrual": section})

    assert excinfo.value.key == f"plugins.phi_accrual.{key}"
    assert (detector.threshold, detector.max_samples, detector.min_samples) == (8.0, 100, 3)


def test_every_declared_setting_rejects_bad_values_by_name() -> None:
    check_plugin_settings(PhiAccrual)


# --- the hooks' plain methods ---------------------------------------------------------------


def test_a_host_going_quiet_scores_lower_as_a_parent() -> None:
    sim, detector = simulation()
    sim.announce(0)
    heartbeats(sim, 5)
    sim.state.register_peer("p", ALPHA.id, TaskInfo("t"), sim.now)
    peer, view = sim.state.peer("p"), sim.state.view
    fresh = detector.candidate_score(peer, view, sim.now)
    assert fresh is not None
    assert fresh <= 0.0
    quiet = detector.candidate_score(peer, view, sim.now + ONE_SECOND_DELAY / 2 + 1.0)
    assert quiet is not None
    assert quiet < fresh  # a penalty, subtracted: the quieter, the lower
    assert detector.scheduler_candidate_score(peer, view, sim.now + 1.0) == (
        detector.candidate_score(peer, view, sim.now + 1.0)
    )


def test_a_host_with_no_rhythm_yet_gets_no_score() -> None:
    sim, detector = simulation()
    sim.announce(0)
    sim.state.register_peer("p", ALPHA.id, TaskInfo("t"), sim.now)
    assert detector.candidate_score(sim.state.peer("p"), sim.state.view, sim.now) is None


def test_min_samples_may_equal_max_samples_and_above_it_the_error_says_why() -> None:
    detector = PhiAccrual()
    detector.configure({"phi_accrual": {"max_samples": 5, "min_samples": 5}})
    assert (detector.min_samples, detector.max_samples) == (5, 5)
    with pytest.raises(ConfigError, match=r"must not exceed max_samples \(5\), got 6$"):
        detector.configure({"phi_accrual": {"max_samples": 5, "min_samples": 6}})


def test_evicting_a_host_it_never_heard_of_changes_nothing() -> None:
    detector = PhiAccrual()
    stranger = Eviction(
        kind=RecordKind.HOST, record_id="10.9.9.9-stranger", reason=Reason.LEAVE, at=1.0,
        last_contact=0.0, deadline=None,
    )  # fmt: skip
    detector.forget(stranger)
    assert detector.tracked_hosts() == frozenset()
