"""Loading and composing policies; containment of plugins that raise."""

from __future__ import annotations

import logging
import subprocess
import sys

import pytest
from pluggy import PluginValidationError

from scheduler import hookimpl
from scheduler.core import (
    ConfigError,
    Eviction,
    Expiry,
    Host,
    HostInfo,
    PolicySet,
    RecordKind,
    SchedulerState,
    TaskInfo,
    Verdict,
    parse_duration,
)
from scheduler.policies import builtin_plugins, load_policies
from tests.support_plugins import FixedTTL

A = HostInfo("alpha", "10.0.0.1")


class Exploding:
    name = "exploding"

    @hookimpl
    def scheduler_host_expiry(self, host: Host) -> Expiry:
        raise RuntimeError("boom")

    @hookimpl
    def scheduler_sweep(self) -> list[Verdict]:
        raise RuntimeError("boom")

    @hookimpl
    def scheduler_evicted(self, eviction: Eviction) -> None:
        raise RuntimeError("boom")


class WrongType:
    name = "wrong_type"

    @hookimpl
    def scheduler_host_expiry(self) -> object:
        return 42.0


def test_builtins_are_ordinary_plugins_in_a_default_list() -> None:
    policies = load_policies(entrypoints=False)
    assert policies.names == [
        "announce_ttl",
        "disconnect_grace",
        "peer_lifetime",
        "peer_start",
        "task_idle",
        "hostname_unique",
        "capacity",
        "evaluator",
    ]


def test_a_builtin_can_be_disabled_and_replaced_by_config_alone() -> None:
    policies = load_policies(
        entrypoints=False,
        disable=["announce_ttl"],
        enable=["tests.support_plugins:FixedTTL"],
    )
    assert "announce_ttl" not in policies.names
    assert "fixed_ttl" in policies.names
    state = SchedulerState(policies, now=0.0)
    state.announce_host(A, 0.0, interval=30)
    assert state.deadline_of(RecordKind.HOST, A.id) == Expiry(7.0, "fixed")


def test_replaces_hook_blocks_the_named_builtins() -> None:
    policies = load_policies(entrypoints=False, enable=["tests.support_plugins:Replacer"])
    assert "task_idle" not in policies.names
    assert "replacer" in policies.names


def test_misspelled_hook_fails_check_pending() -> None:
    with pytest.raises(PluginValidationError):
        load_policies(entrypoints=False, enable=["tests.support_plugins:Misspelled"])


def test_bad_module_spec_names_the_key() -> None:
    with pytest.raises(ConfigError, match=r"plugins\.enable"):
        load_policies(entrypoints=False, enable=["no_such_module_xyz:Thing"])
    with pytest.raises(ConfigError, match="no plugin named 'not-installed'"):
        load_policies(enable=["not-installed"])


def test_installed_plugins_are_opt_in_by_name() -> None:
    assert "phi_accrual" not in load_policies().names
    assert "phi_accrual" in load_policies(enable=["phi_accrual"]).names
    everything = load_policies(entrypoints=True)
    assert {"phi_accrual", "dragonfly_compat"} <= set(everything.names)


def test_two_plugins_with_one_name_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="two plugins are named 'fixed_ttl'"):
        load_policies(plugins=[FixedTTL(), FixedTTL()])


def test_settings_for_a_disabled_plugin_are_reported(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="scheduler.plugins"):
        load_policies(disable=["task_idle"], config={"task_idle": {"task_idle_ttl": "1m"}})
    assert "[plugins.task_idle] have no effect" in caplog.text


@pytest.mark.parametrize(
    ("config", "key"),
    [
        ({"announce_ttl": {"host_ttl": "soon"}}, "plugins.announce_ttl.host_ttl"),
        ({"announce_ttl": {"hots_ttl": "1h"}}, "plugins.announce_ttl.hots_ttl"),
        ({"disconnect_grace": {"reconnect_grace": -1}}, "plugins.disconnect_grace"),
        ({"capacity": {"max_peers_per_task": "3"}}, "plugins.capacity.max_peers_per_task"),
        ({"no_such_plugin": {}}, "plugins.no_such_plugin"),
    ],
)
def test_bad_config_names_the_key(config: dict, key: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_policies(entrypoints=False, config=config)
    assert key in str(info.value)


def test_parse_duration() -> None:
    assert parse_duration("500ms") == 0.5
    assert parse_duration("5s") == 5.0
    assert parse_duration("5m") == 300.0
    assert parse_duration("1h") == 3600.0
    assert parse_duration(3) == 3.0
    for bad in ("5 parsecs", True, None, -1, "nan"):
        with pytest.raises(ConfigError):
            parse_duration(bad, "gc.sweep_interval")


def test_a_raising_plugin_is_contained_logged_and_counted(
    caplog: pytest.LogCaptureFixture,
) -> None:
    seen: list[tuple[str, str]] = []
    policies = PolicySet.from_plugins(
        [*builtin_plugins(), Exploding(), WrongType()],
        on_error=lambda plugin, hook, exc: seen.append((plugin, hook)),
    )
    state = SchedulerState(policies, now=0.0)
    with caplog.at_level(logging.ERROR, logger="scheduler.plugins"):
        state.announce_host(A, 0.0, interval=30)
        # The others still decide: the announce TTL is in force.
        assert state.deadline_of(RecordKind.HOST, A.id) == Expiry(60.0, "ttl_expired")
        # GC goes on: the sweep and the eviction notification raise, eviction happens.
        events = state.run_gc(61.0)
    assert [e.record_id for e in events if isinstance(e, Eviction)] == [A.id]
    assert policies.errors[("exploding", "scheduler_host_expiry")] >= 1
    assert policies.errors[("wrong_type", "scheduler_host_expiry")] >= 1
    assert policies.errors[("exploding", "scheduler_sweep")] >= 1
    assert policies.errors[("exploding", "scheduler_evicted")] == 1
    assert ("exploding", "scheduler_evicted") in seen
    assert any("exploding raised in scheduler_host_expiry" in r.message for r in caplog.records)


def test_earliest_deadline_across_plugins_wins() -> None:
    policies = PolicySet.from_plugins([*builtin_plugins(), FixedTTL()])
    state = SchedulerState(policies, now=0.0)
    state.announce_host(A, 0.0, interval=30)
    assert state.deadline_of(RecordKind.HOST, A.id) == Expiry(7.0, "fixed")


@pytest.mark.parametrize(
    "module", ["scheduler.core", "scheduler.jobs", "scheduler.policies", "scheduler.protocol"]
)
def test_sans_io_layers_do_not_import_trio(module: str) -> None:
    code = f"import {module}, sys; assert 'trio' not in sys.modules, sorted(sys.modules)"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


class FlakyOnce:
    """Raises on its first call, then answers: its first verdict is lost."""

    name = "flaky_once"

    def __init__(self) -> None:
        self.calls = 0

    @hookimpl
    def scheduler_task_expiry(self, now: float) -> Expiry:
        self.calls += 1
        if self.calls == 1:
            raise RuntimeError("transient")
        return Expiry(now + 1.0, "flaky")


def test_the_sweep_asks_again_about_records_left_without_a_deadline() -> None:
    flaky = FlakyOnce()
    policies = PolicySet.from_plugins([flaky])
    state = SchedulerState(policies, now=0.0, sweep_interval=10.0)
    state.announce_host(A, 0.0)
    state.register_peer("p", A.id, TaskInfo("t"), 0.0)  # the task's first answer is lost
    assert state.deadline_of(RecordKind.TASK, "t") is None
    state.run_gc(10.0)  # the sweep re-evaluates the undecided task
    assert state.deadline_of(RecordKind.TASK, "t") == Expiry(11.0, "flaky")
    assert state.invariant_violations() == []
