"""Dragonfly's GC semantics, deadline by deadline, on a simulated clock."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scheduler_dragonfly_compat import REPLACED_PLUGINS, DragonflyCompat, next_sweep_tick

from scheduler.core import (
    ConfigError,
    Eviction,
    HostInfo,
    PolicySet,
    Reason,
    RecordKind,
    SchedulerState,
)
from scheduler.policies import builtin_plugins, load_policies
from scheduler.testing import (
    Crash,
    Hang,
    HostProfile,
    NextAnnounce,
    PeerStep,
    Pong,
    RegisterPeer,
    Simulation,
    check_plugin_settings,
    register_task,
)

ALPHA = HostInfo("alpha", "10.0.0.1")
GO_DAEMON = HostProfile(ALPHA, interval=30.0)  # the Go daemon announces every 30 s
NO_INTERVAL = HostProfile(ALPHA, interval=None)  # falls back to host_ttl (1 h)


def simulation(
    profile: HostProfile,
    *,
    start: float = 1000.0,
    config: Mapping[str, Mapping[str, Any]] | None = None,
) -> Simulation:
    policies = PolicySet.from_plugins([*builtin_plugins(), DragonflyCompat()], config=config)
    return Simulation(policies, [profile], start=start)


def evictions(sim: Simulation, kind: RecordKind) -> list[Eviction]:
    return [e for e in sim.evictions if e.kind is kind]


# --- the sweep tick -------------------------------------------------------------------------


def test_a_deadline_is_the_first_tick_strictly_after_the_ttl() -> None:
    assert next_sweep_tick(1060.0, 300.0) == 1200.0
    assert next_sweep_tick(1199.9, 300.0) == 1200.0
    # Dragonfly evicts when elapsed > ttl: a tick landing exactly on the TTL is too early.
    assert next_sweep_tick(1200.0, 300.0) == 1500.0
    assert next_sweep_tick(0.0, 10.0) == 10.0


@given(
    due=st.floats(0.0, 1e9, allow_nan=False),
    period=st.sampled_from([0.1, 0.3, 7.3, 10.0, 300.0, 1800.0]) | st.floats(0.01, 1e4),
)
def test_the_tick_is_a_multiple_of_the_period_within_one_period(due: float, period: float) -> None:
    tick = next_sweep_tick(due, period)
    k = round(tick / period)
    assert tick == k * period
    assert (k - 1) * period <= due < tick


def test_the_tick_needs_a_positive_period() -> None:
    with pytest.raises(ValueError, match="period"):
        next_sweep_tick(1.0, 0.0)


# --- hosts ----------------------------------------------------------------------------------


@given(start=st.integers(0, 4_000_000).map(lambda n: n / 4))
@settings(deadline=None)
def test_a_silent_host_goes_at_the_first_host_sweep_after_twice_its_interval(
    start: float,
) -> None:
    sim = simulation(GO_DAEMON, start=start)
    sim.announce(0)
    for _ in range(3):
        sim.apply(NextAnnounce())
    last_announce = start + 90.0
    sim.apply(Hang(0))

    sim.advance(400.0)

    [eviction] = evictions(sim, RecordKind.HOST)
    assert eviction.reason == Reason.TTL_EXPIRED
    assert eviction.at == (math.floor((last_announce + 60.0) / 300.0) + 1) * 300.0
    assert eviction.at % 300.0 == 0.0
    assert 60.0 < eviction.detection_latency <= 360.0


def test_pongs_do_not_keep_a_host_alive_because_dragonfly_has_no_keepalive() -> None:
    sim = simulation(GO_DAEMON)
    sim.announce(0)  # at 1000: due 1060, next host sweep 1200
    for _ in range(30):
        sim.advance(10.0)
        sim.apply(Pong(0))

    [eviction] = evictions(sim, RecordKind.HOST)
    assert (eviction.reason, eviction.at) == (Reason.TTL_EXPIRED, 1200.0)


def test_a_host_without_an_interval_lives_host_ttl() -> None:
    sim = simulation(NO_INTERVAL)
    sim.announce(0)  # at 1000: due 4600, next host sweep 4800
    sim.advance(4000.0)

    [eviction] = evictions(sim, RecordKind.HOST)
    assert (eviction.reason, eviction.at) == (Reason.TTL_EXPIRED, 4800.0)


def test_a_disconnected_host_is_unschedulable_but_waits_for_its_ttl_tick() -> None:
    sim = simulation(GO_DAEMON)
    sim.announce(0)
    sim.advance(1.0)
    sim.apply(Crash(0))

    # The built-in disconnect_grace would have evicted it after 5 s.
    sim.advance(60.0)
    assert sim.state.has_host(ALPHA.id)
    assert not sim.state.is_schedulable(ALPHA.id)

    sim.advance(200.0)
    [eviction] = evictions(sim, RecordKind.HOST)
    assert (eviction.reason, eviction.at) == (Reason.TTL_EXPIRED, 1200.0)


def test_reconnect_grace_reports_the_ttl_tick_not_the_builtin_grace() -> None:
    # The built-in disconnect_grace is replaced: its 5 s setting does not apply.
    policies = load_policies(
        plugins=[DragonflyCompat()], defaults={"disconnect_grace": {"reconnect_grace": 5.0}}
    )
    state = SchedulerState(policies, now=1000.0)
    state.announce_host(ALPHA, 1000.0, interval=30.0)  # due 1060, host sweep tick 1200
    assert state.reconnect_grace(ALPHA.id, 1001.0) == 199.0
    state.disconnect_host(ALPHA.id, 1001.0)
    assert state.deadline_of(RecordKind.HOST, ALPHA.id).at == 1001.0 + 199.0


def test_a_reconnect_before_the_tick_keeps_the_host() -> None:
    sim = simulation(GO_DAEMON)
    sim.announce(0)
    sim.apply(Crash(0))
    sim.advance(100.0)
    sim.announce(0)  # a new session at 1100 refreshes the TTL: due 1160, tick 1200

    sim.advance(150.0)
    [eviction] = evictions(sim, RecordKind.HOST)
    assert eviction.at == 1200.0
    assert eviction.detection_latency == 100.0


# --- peers and tasks ------------------------------------------------------------------------


def test_a_failed_peer_leaves_at_the_next_peer_sweep() -> None:
    sim = simulation(NO_INTERVAL)
    sim.announce(0)
    sim.apply(RegisterPeer(0, register_task(1)))
    sim.advance(2.5)
    sim.apply(PeerStep(0, "start"))
    sim.advance(1.0)
    sim.apply(PeerStep(0, "fail"))  # at 1003.5

    sim.advance(20.0)
    [peer] = evictions(sim, RecordKind.PEER)
    assert (peer.record_id, peer.reason, peer.at) == ("peer-1", Reason.FAILED, 1010.0)


def test_a_task_with_no_peers_goes_at_the_next_task_sweep() -> None:
    sim = simulation(NO_INTERVAL)
    sim.announce(0)
    sim.apply(RegisterPeer(0, register_task(1)))
    sim.advance(5.0)
    sim.apply(PeerStep(0, "leave"))  # at 1005: the task is idle from now on

    sim.advance(700.0)
    assert sim.state.has_task("task-1")
    sim.advance(200.0)
    [task] = evictions(sim, RecordKind.TASK)
    assert (task.record_id, task.reason, task.at) == ("task-1", Reason.IDLE, 1800.0)


def test_a_running_peer_with_no_piece_progress_times_out() -> None:
    sim = simulation(NO_INTERVAL)
    sim.announce(0)
    sim.apply(RegisterPeer(0, register_task(1)))  # piece clock starts at 1000
    sim.advance(2.0)
    sim.apply(PeerStep(0, "start"))

    sim.advance(1700.0)
    assert sim.state.has_peer("peer-1")
    sim.advance(1000.0)
    [peer, task] = [e for e in sim.evictions if e.kind is not RecordKind.HOST]
    # due 2800 lands on a tick, so the next one (2810) evicts.
    assert (peer.reason, peer.at) == (Reason.PIECE_TIMEOUT, 2810.0)
    assert (task.reason, task.at) == (Reason.IDLE, 3600.0)


def test_piece_progress_postpones_the_piece_timeout() -> None:
    sim = simulation(NO_INTERVAL)
    sim.announce(0)
    sim.apply(RegisterPeer(0, register_task(1)))
    sim.apply(PeerStep(0, "start"))
    sim.advance(1000.0)
    sim.apply(PeerStep(0, "pieces"))  # at 2000: due 3800, tick 3810

    peer = sim.state.deadline_of(RecordKind.PEER, "peer-1")
    assert peer is not None
    assert (peer.reason, peer.at) == (Reason.PIECE_TIMEOUT, 3810.0)


def test_a_finished_peer_lives_peer_ttl_after_its_last_update() -> None:
    sim = simulation(NO_INTERVAL, config={"dragonfly_compat": {"peer_ttl": "10m"}})
    sim.announce(0)
    sim.apply(RegisterPeer(0, register_task(1)))
    sim.apply(PeerStep(0, "start"))
    sim.advance(5.0)
    sim.apply(PeerStep(0, "finish"))  # at 1005: due 1605, tick 1610

    sim.advance(1000.0)
    [peer] = evictions(sim, RecordKind.PEER)
    assert (peer.reason, peer.at) == (Reason.TTL_EXPIRED, 1610.0)


# --- composition and configuration ----------------------------------------------------------


def test_it_replaces_the_four_builtin_ttl_policies_and_keeps_the_others() -> None:
    policies = PolicySet.from_plugins([*builtin_plugins(), DragonflyCompat()])

    assert policies.names == [
        "peer_start",
        "hostname_unique",
        "capacity",
        "evaluator",
        "dragonfly_compat",
    ]
    assert all(policies.pm.is_blocked(name) for name in REPLACED_PLUGINS)


def test_sections_of_the_replaced_plugins_are_still_accepted() -> None:
    # A config written for the built-ins keeps working while comparing the two.
    config = {"announce_ttl": {"host_ttl": "2h"}, "dragonfly_compat": {"host_ttl": "3h"}}
    policies = PolicySet.from_plugins([*builtin_plugins(), DragonflyCompat()], config=config)

    plugin = policies.pm.get_plugin("dragonfly_compat")
    assert isinstance(plugin, DragonflyCompat)
    assert plugin.host_ttl == 3 * 3600.0


def test_config_values_are_parsed_as_durations() -> None:
    plugin = DragonflyCompat()
    plugin.scheduler_configure(
        {
            "dragonfly_compat": {
                "host_sweep_interval": "1m",
                "host_ttl": "30m",
                "peer_sweep_interval": 5,
                "peer_ttl": "12h",
                "piece_timeout": "500ms",
                "task_sweep_interval": "1h",
            }
        }
    )
    assert (plugin.host_sweep_interval, plugin.host_ttl) == (60.0, 1800.0)
    assert (plugin.peer_sweep_interval, plugin.peer_ttl) == (5.0, 12 * 3600.0)
    assert (plugin.piece_timeout, plugin.task_sweep_interval) == (0.5, 3600.0)


@pytest.mark.parametrize(
    ("section", "key"),
    [
        ({"host_tll": "1h"}, "host_tll"),
        ({"host_ttl": "an hour"}, "host_ttl"),
        ({"peer_ttl": -1}, "peer_ttl"),
        ({"piece_timeout": True}, "piece_timeout"),
        ({"host_sweep_interval": "0s"}, "host_sweep_interval"),
        ({"peer_sweep_interval": 0}, "peer_sweep_interval"),
        ({"task_sweep_interval": "0ms"}, "task_sweep_interval"),
    ],
)
def test_a_bad_setting_is_a_config_error_naming_the_key(
    section: dict[str, object], key: str
) -> None:
    plugin = DragonflyCompat()
    with pytest.raises(ConfigError) as excinfo:
        PolicySet.from_plugins([plugin], config={"dragonfly_compat": section})

    assert excinfo.value.key == f"plugins.dragonfly_compat.{key}"
    assert str(excinfo.value).startswith(f"plugins.dragonfly_compat.{key}: ")
    assert plugin.host_ttl == 3600.0  # nothing changed


def test_a_bad_setting_changes_nothing() -> None:
    plugin = DragonflyCompat()
    with pytest.raises(ConfigError):
        plugin.scheduler_configure(
            {"dragonfly_compat": {"host_ttl": "2h", "task_sweep_interval": "soon"}}
        )
    assert plugin.host_ttl == 3600.0


def test_every_declared_setting_rejects_bad_values_by_name() -> None:
    check_plugin_settings(DragonflyCompat)


def test_it_disables_proactive_pushes_and_adds_no_score() -> None:
    plugin = DragonflyCompat()
    assert plugin.scheduler_proactive_push() is False
    assert not hasattr(plugin, "scheduler_candidate_score")
    assert not hasattr(plugin, "scheduler_candidate_scores")
