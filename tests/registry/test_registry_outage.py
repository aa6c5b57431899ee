"""A PostgreSQL outage is not a partition: members ride out the first, and the member
cut off by the second goes not-ready. Real PostgreSQL, the members in-process with real
listeners; they ask each other over their admin APIs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import attrs
import pytest
import trio

from scheduler.client import ClusterView
from scheduler.registry import Standing
from scheduler.service import SchedulerService
from tests.chaos.proxy import FaultProxy
from tests.registry.postgres import PostgresServer
from tests.registry.test_cluster_trust import member_config, running
from tests.test_admin import call
from tests.test_e2e import metric

pytest.importorskip("psycopg", reason="the registry tests need the cluster extra")

INTERVAL = 1.0
TIMEOUT = 0.25
LEASE = 3 * INTERVAL


def config(registry: str, name: str, key_file: str | None = None) -> Any:
    return member_config(
        registry,
        name,
        lease_interval=INTERVAL,
        registry_timeout=TIMEOUT,
        cluster_key_file=key_file,
    )


async def ready(admin: str) -> bool:
    return await call("GET", f"{admin}/readyz") == (200, "ready\n")


async def schedulers(admin: str) -> list[dict[str, Any]]:
    status, members = await call("GET", f"{admin}/api/v1/schedulers")
    assert status == 200
    return list(members)


async def until(check: Callable[[], bool]) -> None:
    """Poll ``check`` (bounded by the test's ``fail_after``)."""
    while True:
        if check():
            return
        await trio.sleep(0.02)


def registrar_of(service: SchedulerService) -> Any:
    assert service.registrar is not None
    return service.registrar


async def test_a_database_outage_for_everyone_keeps_members_ready_on_a_stale_list(
    private_postgres: PostgresServer, tmp_path: Any
) -> None:
    key = tmp_path / "cluster.key"
    key.write_text("k" * 40)
    url = private_postgres.url()
    with trio.fail_after(120):
        async with (
            running(config(url, "s1", str(key))) as (s1, admin1),
            running(config(url, "s2", str(key))) as (s2, admin2),
            trio.open_nursery() as nursery,
        ):
            r1, r2 = registrar_of(s1), registrar_of(s2)
            await until(lambda: len(r1.members()) == len(r2.members()) == 2)
            view = ClusterView(admin1, refresh_interval=0.2)
            await nursery.start(view.run)
            await until(lambda: len(view.members) == 2)
            generation = view.routes.generation

            await trio.to_thread.run_sync(private_postgres.stop)
            # Past the end of both leases, and one more lease on the stale list: ready
            # at every poll, serving the list they had.
            while True:
                assert await ready(admin1)
                assert await ready(admin2)
                done = [
                    not r.holds_lease() and r.stale and r.roster_age() > 2 * LEASE for r in (r1, r2)
                ]
                if all(done):
                    break
                await trio.sleep(0.05)
            for admin in (admin1, admin2):
                listed = await schedulers(admin)
                assert [m["name"] for m in listed] == ["s1", "s2"]
                assert all(m["stale"] and m["roster_age"] > 2 * LEASE for m in listed)
                outage = await trio.to_thread.run_sync(metric, admin, "scheduler_registry_outage")
                assert outage == 1.0
            # The client read the stale list: it routes and holds its sessions as before.
            await until(lambda: view.stale)
            assert [m.name for m in view.members] == ["s1", "s2"]
            assert view.routes.generation == generation

            await trio.to_thread.run_sync(private_postgres.start)
            await until(lambda: r1.holds_lease() and r2.holds_lease())
            fresh = [("s1", False), ("s2", False)]
            await until(
                lambda: all(
                    [(m.name, stale) for m, stale in r.listing()] == fresh for r in (r1, r2)
                )
            )
            for admin in (admin1, admin2):
                listed = await schedulers(admin)
                assert [(m["name"], m["stale"]) for m in listed] == fresh
                assert await ready(admin)
            await until(lambda: not view.stale)
            assert view.routes.generation == generation
            assert r1.watch.standing is r2.watch.standing is Standing.NORMAL
            nursery.cancel_scope.cancel()


async def test_the_member_cut_off_from_the_database_goes_not_ready_the_other_stays(
    private_postgres: PostgresServer,
) -> None:
    url = private_postgres.url()
    with trio.fail_after(120):
        async with trio.open_nursery() as proxies:
            proxy = FaultProxy(("127.0.0.1", private_postgres.port))
            cut = trio.CancelScope()

            async def run_proxy(task_status: trio.TaskStatus[int]) -> None:
                with cut:
                    await proxy.run(task_status=task_status)

            port = await proxies.start(run_proxy)
            proxied = url.replace(f":{private_postgres.port}/", f":{port}/")
            async with (
                running(config(proxied, "s1")) as (s1, admin1),
                running(config(url, "s2")) as (s2, admin2),
            ):
                r1, r2 = registrar_of(s1), registrar_of(s2)
                await until(lambda: len(r1.members()) == len(r2.members()) == 2)

                cut.cancel()  # s1's connections to the database close, new ones are refused
                await until(lambda: r1.watch.standing is Standing.CUT_OFF)
                await until(lambda: not r1.serving())
                assert not await ready(admin1)
                assert await ready(admin2)
                assert r2.watch.standing is Standing.NORMAL
                cut_off = await trio.to_thread.run_sync(
                    metric, admin1, "scheduler_registry_cut_off"
                )
                assert cut_off == 1.0
                # It stops claiming its name: the other lists it no more once its lease ran
                # out, and it never serves a stale list.
                await until(lambda: [m.name for m in r2.members()] == ["s2"])
                assert not r1.stale
                assert all(not m["stale"] for m in await schedulers(admin1))
                assert await ready(admin2)
            proxies.cancel_scope.cancel()


async def test_the_lease_route_answers_members_with_a_proof(
    registry_url: str, tmp_path: Any
) -> None:
    from scheduler.registry import ClusterKeys  # noqa: PLC0415
    from scheduler.service._registrar import _canonical, probe_member  # noqa: PLC0415

    key = tmp_path / "cluster.key"
    key.write_text("k" * 40)
    with trio.fail_after(60):
        async with running(config(registry_url, "s1", str(key))) as (s1, admin):
            registrar = registrar_of(s1)
            await registrar.wait_progress(registrar.holds_lease)
            nonce = "ab" * 16
            report = await trio.to_thread.run_sync(probe_member, admin, None, nonce, 5.0)
            assert report["name"] == "s1"
            assert report["lease_held"] is True
            assert report["standing"] == "normal"
            assert report["registry_failing_for"] is None
            assert 0 <= report["registry_answered_ago"] <= LEASE
            body = {k: v for k, v in report.items() if k != "proof"}
            assert ClusterKeys(b"k" * 40).proven(nonce, _canonical(body), report["proof"])
            assert not ClusterKeys(b"o" * 40).proven(nonce, _canonical(body), report["proof"])
            status, problem = await call("GET", f"{admin}/api/v1/lease?nonce=xyz")
            assert status == 400
            assert "nonce" in problem["error"]
    without = attrs.evolve(member_config(registry_url, "solo"), registry=None)
    async with running(without) as (_, admin):
        assert (await call("GET", f"{admin}/api/v1/lease"))[0] == 404


def test_a_host_token_may_read_a_member_s_lease() -> None:
    from scheduler.service._auth import AdminGuard, TokenVerifier, issue_token  # noqa: PLC0415

    key = b"k" * 32
    guard = AdminGuard(TokenVerifier((key,)))
    headers = [
        (b"host", b"127.0.0.1"),
        (b"authorization", f"Bearer {issue_token(key, hostname='node-1')}".encode()),
    ]
    assert guard.check("GET", "/api/v1/lease", headers) is None
    assert guard.check("GET", "/api/v1/lease", headers[:1]) is not None
