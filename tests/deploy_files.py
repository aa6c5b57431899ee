"""The files under deploy/, read the way their tests need them: every PromQL expression of
the Grafana dashboard and of the Prometheus rules, each with where it comes from."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Final

import attrs
import yaml

ROOT: Final = Path(__file__).resolve().parent.parent
DEPLOY: Final = ROOT / "deploy"
DASHBOARD: Final = DEPLOY / "grafana" / "scheduler.json"
ALERTS: Final = DEPLOY / "prometheus" / "alerts.yml"
ALERT_TESTS: Final = DEPLOY / "prometheus" / "alerts.test.yml"
PROMETHEUS_CONFIG: Final = DEPLOY / "prometheus" / "prometheus.yml"
UNIT: Final = DEPLOY / "systemd" / "scheduler.service"
EXAMPLE_CONFIG: Final = DEPLOY / "systemd" / "scheduler.toml"
DOCKERFILE: Final = DEPLOY / "docker" / "Dockerfile"
COMPOSE: Final = DEPLOY / "docker" / "compose.yml"
OPERATIONS: Final = ROOT / "docs" / "operations.md"

#: The dashboard row whose panels read the metrics only ``serve --registry`` exports.
REGISTRY_ROW: Final = "Cluster registry (serve --registry)"
#: The rule group of those metrics.
REGISTRY_GROUP: Final = "scheduler-registry"

#: Grafana's variables, replaced by values Prometheus accepts where a test needs plain PromQL.
GRAFANA_VARIABLES: Final = {"$__rate_interval": "5m", "$job": ".*", "$instance": ".*"}

_LABEL_VALUES: Final = re.compile(r"label_values\((?:(?P<selector>.+),\s*)?(?P<label>\w+)\)")


@attrs.frozen
class Query:
    """One PromQL expression of a deploy file."""

    #: Where it is, for a failure message: ``dashboard panel 'Sessions' B``.
    where: str
    expr: str
    #: True when it reads metrics that only a scheduler with ``--registry`` exports.
    registry: bool


def dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    return loaded


def dashboard_queries() -> list[Query]:
    """Every panel target, and the selectors of the ``label_values`` variable queries."""
    queries: list[Query] = []
    row = ""
    for panel in dashboard()["panels"]:
        if panel["type"] == "row":
            row = panel["title"]
            continue
        for target in panel.get("targets", []):
            queries.append(
                Query(
                    f"dashboard panel {panel['title']!r} {target['refId']}",
                    target["expr"],
                    row == REGISTRY_ROW,
                )
            )
    for variable in dashboard()["templating"]["list"]:
        if variable["type"] != "query":
            continue
        match = _LABEL_VALUES.fullmatch(variable["definition"])
        assert match is not None, f"variable {variable['name']}: not a label_values() query"
        assert match["selector"], f"variable {variable['name']}: label_values() of no metric"
        queries.append(Query(f"dashboard variable {variable['name']!r}", match["selector"], False))
    return queries


def alert_groups() -> list[dict[str, Any]]:
    groups: list[dict[str, Any]] = yaml.safe_load(ALERTS.read_text(encoding="utf-8"))["groups"]
    return groups


def rule_queries() -> list[Query]:
    return [
        Query(f"rule {rule['alert']}", rule["expr"], group["name"] == REGISTRY_GROUP)
        for group in alert_groups()
        for rule in group["rules"]
    ]


def plain_promql(expr: str) -> str:
    """``expr`` with Grafana's variables replaced by values PromQL accepts."""
    for variable, value in GRAFANA_VARIABLES.items():
        expr = expr.replace(variable, value)
    assert "$" not in expr, f"a Grafana variable this test does not know in {expr!r}"
    return expr
