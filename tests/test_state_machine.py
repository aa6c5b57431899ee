"""The built-in policies under the plugin-author kit's state machine."""

from __future__ import annotations

from collections.abc import Sequence

import pytest
from hypothesis import Phase, given, settings
from hypothesis.stateful import run_state_machine_as_test

from scheduler import hookimpl
from scheduler.core import HostInfo, PolicySet
from scheduler.policies import builtin_plugins
from scheduler.testing import (
    Coverage,
    HostProfile,
    InvariantError,
    RunStats,
    SchedulerStateMachine,
    Simulation,
    Step,
    event_streams,
    measure_coverage,
)


class BuiltinPoliciesMachine(SchedulerStateMachine):
    """Default plugin list, default config."""


class ShortTimersMachine(SchedulerStateMachine):
    """Short TTLs so that every kind of deadline fires within a run."""

    config = {
        "announce_ttl": {"host_ttl": "30s"},
        "disconnect_grace": {"reconnect_grace": "1s"},
        "peer_lifetime": {"peer_ttl": "5m", "piece_timeout": "20s", "failed_peer_ttl": "2s"},
        "task_idle": {"task_idle_ttl": "0s"},
        "capacity": {"max_peers_per_task": 2},
    }
    sweep_interval = 5.0


TestBuiltinPolicies = BuiltinPoliciesMachine.TestCase
TestShortTimers = ShortTimersMachine.TestCase


# --- a plugin that raises fails the kit, unless the test expects it ------------------------


class AlwaysRaises:
    """A policy whose host expiry raises on every call (the core contains it)."""

    name = "always_raises"

    @hookimpl
    def scheduler_host_expiry(self) -> None:
        raise RuntimeError("no deadline today")


class RaisingPluginMachine(SchedulerStateMachine):
    @classmethod
    def make_plugins(cls) -> Sequence[object]:
        return [*builtin_plugins(), AlwaysRaises()]


class ExpectedErrorsMachine(RaisingPluginMachine):
    expected_plugin_errors = frozenset({("always_raises", "scheduler_host_expiry")})


#: A few short runs, no shrinking: the first failing example fails the test at once.
_BRIEF = settings(
    max_examples=5,
    stateful_step_count=5,
    deadline=None,
    database=None,
    phases=[Phase.generate],
)
_ALPHA = HostProfile(HostInfo(hostname="alpha", ip="10.0.0.1"), interval=30.0)


def test_a_plugin_that_raises_fails_the_machine_naming_plugin_hook_and_exception() -> None:
    error = r"plugin always_raises raised in scheduler_host_expiry: RuntimeError\('no deadline"
    with pytest.raises(InvariantError, match=error):
        run_state_machine_as_test(RaisingPluginMachine, settings=_BRIEF)


def test_a_machine_may_declare_the_plugin_errors_it_expects() -> None:
    run_state_machine_as_test(ExpectedErrorsMachine, settings=_BRIEF)


def test_a_plugin_that_raises_fails_the_simulation_at_the_step() -> None:
    sim = Simulation(PolicySet.from_plugins([*builtin_plugins(), AlwaysRaises()]), [_ALPHA])
    with pytest.raises(InvariantError, match="always_raises raised in scheduler_host_expiry"):
        sim.announce(0)


def test_a_simulation_keeps_the_errors_it_was_told_to_expect() -> None:
    sim = Simulation(
        PolicySet.from_plugins([*builtin_plugins(), AlwaysRaises()]),
        [_ALPHA],
        expected_plugin_errors={("always_raises", "scheduler_host_expiry")},
    )
    sim.announce(0)
    sim.advance(5.0)
    assert sim.plugin_errors
    assert {(plugin, hook) for plugin, hook, _ in sim.plugin_errors} == {
        ("always_raises", "scheduler_host_expiry")
    }
    assert all(isinstance(exc, RuntimeError) for _, _, exc in sim.plugin_errors)
    assert sim.state.is_schedulable(_ALPHA.info.id)  # the built-ins still decided


# --- what the kit reaches ------------------------------------------------------------------


@pytest.mark.parametrize("machine", [BuiltinPoliciesMachine, ShortTimersMachine])
def test_the_machine_hands_out_parents_pushes_and_evicts(
    machine: type[SchedulerStateMachine],
) -> None:
    """Over the profile's examples, most runs schedule: the decision checks check something."""
    coverage = measure_coverage(machine)
    coverage.check()
    assert coverage.share("evictions") > 0
    assert coverage.share("failed_parent_reports") > 0


def test_event_streams_hand_out_parents_and_pushes_in_a_simulation() -> None:
    runs: list[RunStats] = []

    @settings(database=None, phases=[Phase.generate])
    @given(event_streams())
    def run(stream: tuple[list[HostProfile], list[Step]]) -> None:
        profiles, steps = stream
        sim = Simulation(PolicySet.from_plugins(builtin_plugins()), profiles)
        sim.run(steps)
        runs.append(RunStats.of(sim))

    run()
    Coverage("event_streams", tuple(runs)).check()


def test_a_machine_that_never_schedules_fails_the_coverage_check() -> None:
    class LonelyHost(BuiltinPoliciesMachine):
        max_hosts = 1  # a parent must be on another host

    coverage = measure_coverage(LonelyHost, examples=_BRIEF)
    assert len(coverage.runs) == 5
    assert all(run.decisions > 0 and run.with_parents == 0 for run in coverage.runs)
    with pytest.raises(InvariantError, match="only 0 % of the runs hand out parents"):
        coverage.check()
