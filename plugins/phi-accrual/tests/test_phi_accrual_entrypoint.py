"""The installed distribution is found through the ``scheduler.plugins`` entry point."""

from __future__ import annotations

import importlib.metadata

from scheduler_phi_accrual import PhiAccrual

from scheduler.policies import ENTRYPOINT_GROUP, load_policies


def test_the_entry_point_names_the_plugin_class() -> None:
    [ep] = importlib.metadata.entry_points(group=ENTRYPOINT_GROUP, name="phi_accrual")
    assert ep.load() is PhiAccrual
    assert ep.dist is not None
    assert ep.dist.name == "scheduler-phi-accrual"


def test_enabling_it_by_name_registers_it_and_installing_it_does_not() -> None:
    enabled = load_policies(enable=["phi_accrual"])

    assert "phi_accrual" in enabled.names
    assert isinstance(enabled.pm.get_plugin("phi_accrual"), PhiAccrual)
    # Additive: the announce_ttl backstop stays.
    assert "announce_ttl" in enabled.names

    # Installed but not named: not loaded.
    assert "phi_accrual" not in load_policies().names


def test_all_installed_plugins_include_it() -> None:
    policies = load_policies(entrypoints=True)

    assert "phi_accrual" in policies.names


def test_it_runs_next_to_the_announce_ttl_backstop() -> None:
    # Other installed plugins (dragonfly_compat) may replace the built-ins; set them aside.
    policies = load_policies(entrypoints=True, disable=["dragonfly_compat"])

    assert {"announce_ttl", "phi_accrual"} <= set(policies.names)


def test_its_section_reaches_the_entry_point_instance() -> None:
    policies = load_policies(enable=["phi_accrual"], config={"phi_accrual": {"threshold": 12}})

    plugin = policies.pm.get_plugin("phi_accrual")
    assert isinstance(plugin, PhiAccrual)
    assert plugin.threshold == 12.0


def test_disabling_it_by_name() -> None:
    policies = load_policies(entrypoints=True, disable=["phi_accrual"])

    assert "phi_accrual" not in policies.names
