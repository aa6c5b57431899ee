"""The installed distribution is found through the ``scheduler.plugins`` entry point."""

from __future__ import annotations

import importlib.metadata

from scheduler_dragonfly_compat import REPLACED_PLUGINS, DragonflyCompat

from scheduler.policies import ENTRYPOINT_GROUP, load_policies


def test_the_entry_point_names_the_plugin_class() -> None:
    [ep] = importlib.metadata.entry_points(group=ENTRYPOINT_GROUP, name="dragonfly_compat")
    assert ep.load() is DragonflyCompat
    assert ep.dist is not None
    assert ep.dist.name == "scheduler-dragonfly-compat"


def test_enabling_it_by_name_registers_it_and_installing_it_does_not() -> None:
    enabled = load_policies(enable=["dragonfly_compat"])

    assert "dragonfly_compat" in enabled.names
    assert isinstance(enabled.pm.get_plugin("dragonfly_compat"), DragonflyCompat)
    assert not set(REPLACED_PLUGINS) & set(enabled.names)

    # Installed but not named: the built-ins decide alone.
    default = load_policies()

    assert "dragonfly_compat" not in default.names
    assert set(REPLACED_PLUGINS) <= set(default.names)


def test_all_installed_plugins_include_it_and_it_replaces_the_builtins() -> None:
    policies = load_policies(entrypoints=True)

    assert "dragonfly_compat" in policies.names
    assert not set(REPLACED_PLUGINS) & set(policies.names)
    assert {"hostname_unique", "capacity"} <= set(policies.names)


def test_its_section_reaches_the_entry_point_instance() -> None:
    policies = load_policies(
        enable=["dragonfly_compat"], config={"dragonfly_compat": {"host_sweep_interval": "1m"}}
    )

    plugin = policies.pm.get_plugin("dragonfly_compat")
    assert isinstance(plugin, DragonflyCompat)
    assert plugin.host_sweep_interval == 60.0


def test_disabling_it_by_name_keeps_the_builtins() -> None:
    policies = load_policies(entrypoints=True, disable=["dragonfly_compat"])

    assert "dragonfly_compat" not in policies.names
    assert set(REPLACED_PLUGINS) <= set(policies.names)
