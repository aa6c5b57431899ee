"""How ``load_policies`` finds, names and rejects plugins, and what its errors say.

Installed plugins are faked by replacing ``installed_plugins`` with entry points of
our choosing, so these tests do not depend on what happens to be installed.
"""

from __future__ import annotations

from importlib.metadata import EntryPoint

import pytest

from scheduler import hookimpl
from scheduler.core import ConfigError, HostInfo, SchedulerState, TaskInfo
from scheduler.policies import (
    ENTRYPOINT_GROUP,
    Capacity,
    DisconnectGrace,
    TaskIdleTTL,
    _loader,
    import_object,
    load_policies,
)
from tests.support_plugins import FixedTTL

A = HostInfo("alpha", "10.0.0.1")

BUILTIN_NAMES = [
    "announce_ttl",
    "disconnect_grace",
    "peer_lifetime",
    "peer_start",
    "task_idle",
    "hostname_unique",
    "capacity",
    "evaluator",
]


def install(monkeypatch: pytest.MonkeyPatch, **specs: str) -> None:
    """Pretend that exactly these entry points (name -> ``module:object``) are installed."""
    entry_points = {name: EntryPoint(name, spec, ENTRYPOINT_GROUP) for name, spec in specs.items()}
    monkeypatch.setattr(_loader, "installed_plugins", lambda: dict(entry_points))


# --- import specs ------------------------------------------------------------------------


def test_an_import_spec_may_name_a_dotted_attribute_path() -> None:
    assert import_object("scheduler.policies:Capacity") is Capacity
    assert import_object("scheduler:policies.Capacity") is Capacity
    assert import_object("scheduler:policies.Capacity.name") == "capacity"


@pytest.mark.parametrize("spec", ["tests.support_plugins", "tests.support_plugins:", ":FixedTTL"])
def test_a_spec_without_a_module_and_an_object_is_rejected_with_the_expected_form(
    spec: str,
) -> None:
    with pytest.raises(ConfigError) as info:
        import_object(spec)
    assert info.value.key == "plugins.enable"
    assert str(info.value) == f"plugins.enable: expected 'module:object', got {spec!r}"


@pytest.mark.parametrize(
    ("spec", "cause"),
    [
        ("no_such_module_xyz:Thing", "No module named 'no_such_module_xyz'"),
        ("tests.support_plugins:NoSuchThing", "has no attribute 'NoSuchThing'"),
        ("tests.support_plugins:FixedTTL.nope", "has no attribute 'nope'"),
        # Everything after the first colon is the object path (module names hold no colon).
        ("tests.support_plugins:FixedTTL:x", "has no attribute 'FixedTTL:x'"),
    ],
)
def test_a_spec_that_does_not_import_names_the_key_the_spec_and_the_cause(
    spec: str, cause: str
) -> None:
    with pytest.raises(ConfigError) as info:
        load_policies(enable=[spec])
    assert info.value.key == "plugins.enable"
    message = str(info.value)
    assert message.startswith(f"plugins.enable: cannot import {spec!r}: ")
    assert cause in message
    assert isinstance(info.value.__cause__, ImportError | AttributeError)


# --- names and duplicates -----------------------------------------------------------------


def test_two_plugins_with_one_name_are_rejected_under_the_plugins_key() -> None:
    with pytest.raises(ConfigError) as info:
        load_policies(enable=["tests.support_plugins:FixedTTL"], plugins=[FixedTTL])
    assert info.value.key == "plugins"
    assert str(info.value) == "plugins: two plugins are named 'fixed_ttl'; disable one by name"


def test_a_plugin_named_like_a_builtin_is_a_duplicate() -> None:
    class Impostor:
        name = "capacity"

    with pytest.raises(ConfigError, match="two plugins are named 'capacity'"):
        load_policies(plugins=[Impostor])
    # Disabling the name blocks the built-in and the impostor alike.
    names = load_policies(disable=["capacity"], plugins=[Impostor]).names
    assert names == [n for n in BUILTIN_NAMES if n != "capacity"]


def test_a_disabled_name_is_never_registered_whatever_brings_it() -> None:
    policies = load_policies(
        disable=["fixed_ttl", "task_idle"],
        enable=["tests.support_plugins:FixedTTL"],
        plugins=[FixedTTL()],
    )
    assert policies.names == [n for n in BUILTIN_NAMES if n != "task_idle"]


# --- entry points -------------------------------------------------------------------------


def test_an_entry_point_plugin_is_known_by_its_entry_point_name(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    install(monkeypatch, short_ttl="tests.support_plugins:FixedTTL")
    assert load_policies(enable=["short_ttl"]).names == [*BUILTIN_NAMES, "short_ttl"]
    assert load_policies(entrypoints=True).names == [*BUILTIN_NAMES, "short_ttl"]
    assert "short_ttl" not in load_policies(entrypoints=True, disable=["short_ttl"]).names


def test_a_disabled_entry_point_is_not_even_imported(monkeypatch: pytest.MonkeyPatch) -> None:
    # A broken plugin can be switched off by name; the scheduler still starts.
    install(
        monkeypatch, broken="no_such_module_xyz:Thing", short_ttl="tests.support_plugins:FixedTTL"
    )
    with pytest.raises(ModuleNotFoundError):
        load_policies(entrypoints=True)
    policies = load_policies(entrypoints=True, enable=["broken"], disable=["broken"])
    assert policies.names == [*BUILTIN_NAMES, "short_ttl"]


def test_an_entry_point_already_loaded_by_spec_under_its_name_is_not_loaded_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    install(monkeypatch, fixed_ttl="tests.support_plugins:FixedTTL")
    for entrypoints in (False, True):
        policies = load_policies(
            entrypoints=entrypoints, enable=["tests.support_plugins:FixedTTL", "fixed_ttl"]
        )
        assert policies.names == [*BUILTIN_NAMES, "fixed_ttl"]


def test_an_entry_point_named_twice_is_loaded_once(monkeypatch: pytest.MonkeyPatch) -> None:
    install(monkeypatch, short_ttl="tests.support_plugins:FixedTTL")
    policies = load_policies(entrypoints=True, enable=["short_ttl", "short_ttl"])
    assert policies.names == [*BUILTIN_NAMES, "short_ttl"]


def test_an_unknown_plugin_name_lists_the_installed_ones_sorted(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    install(
        monkeypatch, zeta="tests.support_plugins:FixedTTL", alpha="tests.support_plugins:Replacer"
    )
    with pytest.raises(ConfigError) as info:
        load_policies(enable=["nope"])
    assert info.value.key == "plugins.enable"
    assert str(info.value) == "plugins.enable: no plugin named 'nope' (installed: alpha, zeta)"


def test_an_unknown_plugin_name_says_when_none_is_installed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    install(monkeypatch)
    with pytest.raises(ConfigError) as info:
        load_policies(enable=["phi_accrual"])
    assert (
        str(info.value)
        == "plugins.enable: no plugin named 'phi_accrual' (installed: none installed)"
    )


# --- what load_policies hands on to the policy set ----------------------------------------


class RaisesOnExpiry:
    name = "raises_on_expiry"

    @hookimpl
    def scheduler_task_expiry(self) -> None:
        raise RuntimeError("boom")


def test_a_raising_plugin_is_reported_to_on_error() -> None:
    seen: list[tuple[str, str, str]] = []
    policies = load_policies(
        plugins=[RaisesOnExpiry],
        on_error=lambda plugin, hook, exc: seen.append((plugin, hook, str(exc))),
    )
    state = SchedulerState(policies, now=0.0)
    state.announce_host(A, 0.0)
    state.register_peer("p", A.id, TaskInfo("t"), 0.0)
    assert seen == [("raises_on_expiry", "scheduler_task_expiry", "boom")]


def test_host_defaults_apply_under_the_config_and_only_to_loaded_plugins() -> None:
    defaults = {
        "disconnect_grace": {"reconnect_grace": 9},
        "task_idle": {"task_idle_ttl": 1},
        "not_loaded": {"anything": 1},
    }
    policies = load_policies(
        defaults=defaults, config={"task_idle": {"task_idle_ttl": 120}}, disable=["capacity"]
    )
    grace = policies.pm.get_plugin("disconnect_grace")
    idle = policies.pm.get_plugin("task_idle")
    assert isinstance(grace, DisconnectGrace)
    assert isinstance(idle, TaskIdleTTL)
    assert (grace.reconnect_grace, idle.task_idle_ttl) == (9.0, 120.0)
    assert load_policies(defaults={"capacity": {"max_peers_per_task": 0}}, disable=["capacity"])
    with pytest.raises(ConfigError) as info:
        load_policies(defaults={"capacity": {"max_peers_per_task": 0}})
    assert info.value.key == "plugins.capacity.max_peers_per_task"
