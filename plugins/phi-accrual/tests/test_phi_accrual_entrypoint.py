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


def test_installing_the_distribution_enables_it() -> None:
    policies = load_policies(entrypoints=True)

    assert "phi_accrual" in policies.names


def test_it_runs_next_to_the_announce_ttl_backstop() -> None:
    # Other installed plugins (dragonfly_compat) may replace the built-ins; set them aside.
    policies = load_policies(entrypoints=True, disable=["dragonfly_compat"])

    assert {"announce_ttl", "phi_accrual"} <= set(policies.names)


def test_its_section_reaches_the_entry_point_instance() -> None:
    policies = load_policies(config={"phi_accrual": {"threshold": 12}})

    plugin = policies.pm.get_plugin("phi_accrual")
    assert isinstance(plugin, PhiAccrual)
    assert plugin.threshold == 12.0


def test_disabling_it_by_name() -> None:
    policies = load_policies(entrypoints=True, disable=["phi_accrual"])

    assert "phi_accrual" not in policies.names
