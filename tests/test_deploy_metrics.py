"""Every metric the shipped dashboard and alert rules name is one the server exports.

The exported names come from a real scrape: ``SchedulerService.run`` in-process with its
real listeners on port 0, then ``GET /metrics``. A series is exported when the scrape
declares its family (``# TYPE``), which it does before the first event too (a labelled
counter has no sample until then); ``_total``, ``_bucket``, ``_sum`` and ``_count`` are
read from the family's type.

The registry's metrics exist only with ``--registry``. So two scrapes:

* a scheduler without a registry answers for every expression outside the dashboard's
  registry row and the rules' ``scheduler-registry`` group;
* a cluster member, its registry a real PostgreSQL started for this module by the
  registry tests' own fixture code (``tests/registry/postgres.py``), answers for all of
  them. Without PostgreSQL or psycopg this test skips with the reason, except under
  ``CI=true``, where it fails.

The expressions are read with :mod:`tests.promql`, which finds the vector selectors and
skips functions, keywords, label matchers and ranges.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from typing import Final

import attrs
import pytest
import trio

from tests.deploy_files import Query, dashboard_queries, rule_queries
from tests.promql import metric_names
from tests.registry.postgres import Unavailable, running_postgres
from tests.service_support import LOOPBACK, serving
from tests.test_admin import call

pytestmark = pytest.mark.e2e

#: Series Prometheus makes itself for every target: no server exports them.
PROMETHEUS_SERIES: Final = frozenset({"up"})

#: The series a family of each type adds to the exposition.
_SUFFIXES: Final = {
    "counter": ("",),
    "gauge": ("",),
    "untyped": ("",),
    "histogram": ("_bucket", "_sum", "_count"),
    "summary": ("", "_sum", "_count"),
}
_SAMPLE: Final = re.compile(r"[A-Za-z_:][A-Za-z0-9_:]*")


def exported_series(exposition: str) -> frozenset[str]:
    """The series names a Prometheus text exposition declares or carries."""
    names: set[str] = set()
    for line in exposition.splitlines():
        if line.startswith("# TYPE "):
            _, _, family, kind = line.split(" ", 3)
            if kind == "counter" and not family.endswith("_total"):
                family += "_total"  # the OpenMetrics spelling of a counter's family
            names.update(family + suffix for suffix in _SUFFIXES[kind])
        elif line and not line.startswith("#"):
            match = _SAMPLE.match(line)
            assert match is not None, f"not a sample line: {line!r}"
            names.add(match.group())
    return frozenset(names)


def unexported(queries: Iterable[Query], exported: frozenset[str]) -> list[str]:
    """``where: name`` for every name a query selects that is not exported."""
    return [
        f"{query.where}: {name}"
        for query in queries
        for name in metric_names(query.expr)
        if name not in exported and name not in PROMETHEUS_SERIES
    ]


def all_queries() -> list[Query]:
    return [*dashboard_queries(), *rule_queries()]


async def scrape(admin_url: str) -> str:
    status, body = await call("GET", f"{admin_url}/metrics")
    assert status == 200
    assert isinstance(body, str)
    return body


def test_every_query_selects_a_metric() -> None:
    """Each expression names at least one series (else the checks below prove nothing)."""
    queries = all_queries()
    assert len(queries) > 40
    assert [query.where for query in queries if not metric_names(query.expr)] == []
    assert any(query.registry for query in queries)
    assert any(not query.registry for query in queries)


async def test_a_scheduler_exports_every_metric_outside_the_registry_sections() -> None:
    with trio.fail_after(30):
        async with serving() as live:
            assert live.service.registrar is None
            exported = exported_series(await scrape(live.admin_url))
    assert "scheduler_hosts" in exported
    assert "scheduler_gc_duration_seconds_bucket" in exported
    # The check itself: a misspelled name or a suffix of the wrong type is reported.
    wrong = [
        Query("a", "rate(scheduler_sessions_total[5m])", False),
        Query("b", "histogram_quantile(0.9, rate(scheduler_hosts_bucket[5m]))", False),
        Query("c", 'sum by (le) (scheduler_gc_duration_seconds{manager="host"})', False),
        Query("d", "scheduler_host_evictions", False),
        Query("e", "registry_up", False),
    ]
    assert unexported(wrong, exported) == [
        "a: scheduler_sessions_total",
        "b: scheduler_hosts_bucket",
        "c: scheduler_gc_duration_seconds",
        "d: scheduler_host_evictions",
        "e: registry_up",
    ]
    assert unexported((q for q in all_queries() if not q.registry), exported) == []


@pytest.fixture(scope="module")
def registry_database() -> Iterator[str]:
    """The URL of a database on a PostgreSQL of this module's own."""
    reason = ""
    try:
        import psycopg_pool  # noqa: F401, PLC0415 (the cluster extra)
    except ImportError:
        reason = "a cluster member needs pip install -e '.[cluster]' (psycopg 3)"
    if not reason:
        try:
            with running_postgres() as server:
                yield server.url()
                return
        except Unavailable as exc:
            reason = str(exc)
    pytest.skip(reason)  # a failure under CI=true (tests/conftest.py)


@pytest.mark.postgres
async def test_a_cluster_member_exports_every_metric_of_the_dashboard_and_rules(
    registry_database: str,
) -> None:
    config = attrs.evolve(
        LOOPBACK,
        registry=registry_database,
        scheduler_name="deploy-check",
        lease_interval=0.2,
        registry_timeout=0.2,
    )
    with trio.fail_after(60):
        async with serving(config) as live:
            registrar = live.service.registrar
            assert registrar is not None
            await registrar.wait_progress(lambda: bool(registrar.members()))
            exported = exported_series(await scrape(live.admin_url))
    assert {"registry_up", "scheduler_registry_errors_total"} <= exported
    assert unexported(all_queries(), exported) == []
