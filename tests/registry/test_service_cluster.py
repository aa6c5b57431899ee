"""``scheduler serve`` with and without ``--registry``: the service in-process, real listeners."""

from __future__ import annotations

import re

import attrs
import pytest
import trio

from scheduler.client import fetch_schedulers
from scheduler.core import ConfigError
from scheduler.service import SchedulerService, ServiceConfig
from tests.registry.postgres import PostgresServer
from tests.test_admin import call
from tests.test_e2e import metric

CONFIG = ServiceConfig(port=0, admin_port=0, entrypoints=False, ping_interval=30.0)
INTERVAL = 1.0  # generous: a renewal must not time out on a loaded 2-core machine


async def test_without_a_registry_the_list_is_this_process_alone() -> None:
    with trio.fail_after(30):
        service = SchedulerService(attrs.evolve(CONFIG, scheduler_name="solo"))
        assert service.registrar is None
        async with trio.open_nursery() as nursery:
            ws_url, admin = await nursery.start(
                lambda task_status: service.run(task_status=task_status)
            )
            status, listed = await call("GET", f"{admin}/api/v1/schedulers")
            assert status == 200
            assert listed == [
                {
                    "name": "solo",
                    "url": ws_url,
                    "admin_url": admin,
                    "cluster_id": "default",
                    "boot_id": service.boot_id,
                    "lease_expires_at": None,
                }
            ]
            assert await call("GET", f"{admin}/readyz") == (200, "ready\n")
            [member] = await trio.to_thread.run_sync(fetch_schedulers, admin)
            assert (member.name, member.url, member.lease_expires_at) == ("solo", ws_url, None)
            text = (await call("GET", f"{admin}/metrics"))[1]
            assert "registry_up" not in text
            nursery.cancel_scope.cancel()


async def test_with_a_registry_it_joins_lists_and_leaves(
    postgres: PostgresServer, registry_url: str
) -> None:
    config = attrs.evolve(
        CONFIG,
        registry=registry_url,
        scheduler_name="s1",
        cluster_id="c9",
        lease_interval=INTERVAL,
        registry_timeout=INTERVAL,
    )
    with trio.fail_after(60):
        service = SchedulerService(config)
        registrar = service.registrar
        assert registrar is not None
        shutdown = trio.Event()
        async with trio.open_nursery() as nursery:
            ws_url, admin = await nursery.start(
                lambda task_status: service.run(shutdown=shutdown, task_status=task_status)
            )
            await registrar.wait_progress(lambda: bool(registrar.members()))
            status, [member] = await call("GET", f"{admin}/api/v1/schedulers")
            assert status == 200
            assert (member["name"], member["url"], member["cluster_id"]) == ("s1", ws_url, "c9")
            assert member["admin_url"] == admin
            assert member["boot_id"] == service.boot_id
            assert member["lease_expires_at"]
            assert await call("GET", f"{admin}/readyz") == (200, "ready\n")
            assert await trio.to_thread.run_sync(metric, admin, "registry_up") == 1.0
            lease_held = "scheduler_registry_lease_held"
            assert await trio.to_thread.run_sync(metric, admin, lease_held) == 1.0
            shutdown.set()
        # It left in one transaction at shutdown: no member remains.
        assert not registrar.holds_lease()


async def test_a_lost_lease_makes_it_unready_while_it_serves_on(
    private_postgres: PostgresServer,
) -> None:
    config = attrs.evolve(
        CONFIG,
        registry=private_postgres.url(),
        scheduler_name="s1",
        lease_interval=INTERVAL,
        registry_timeout=INTERVAL,
    )
    with trio.fail_after(60):
        service = SchedulerService(config)
        registrar = service.registrar
        assert registrar is not None
        async with trio.open_nursery() as nursery:
            _, admin = await nursery.start(lambda task_status: service.run(task_status=task_status))
            await registrar.wait_progress(registrar.holds_lease)
            assert await call("GET", f"{admin}/readyz") == (200, "ready\n")
            await trio.to_thread.run_sync(private_postgres.stop)
            await registrar.wait_progress(lambda: not registrar.holds_lease())
            assert await call("GET", f"{admin}/readyz") == (503, "not ready\n")
            assert await call("GET", f"{admin}/healthz") == (200, "ok\n")
            assert await trio.to_thread.run_sync(metric, admin, "registry_up") == 0.0
            errors = await trio.to_thread.run_sync(
                lambda: metric(
                    admin, "scheduler_registry_errors_total", op="renew", reason="unavailable"
                )
            )
            assert errors >= 1
            await trio.to_thread.run_sync(private_postgres.start)
            await registrar.wait_progress(registrar.holds_lease)
            assert await call("GET", f"{admin}/readyz") == (200, "ready\n")
            nursery.cancel_scope.cancel()


async def test_a_bad_cluster_setting_stops_start_up() -> None:
    pytest.importorskip("psycopg", reason="the registry needs the cluster extra")
    with pytest.raises(ConfigError, match=r"cluster\.timeout"):
        SchedulerService(
            attrs.evolve(
                CONFIG, registry="postgresql://db/x", lease_interval=1.0, registry_timeout=2.0
            )
        )


def test_serve_refuses_a_registry_timeout_longer_than_the_interval(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from scheduler.cli import main  # noqa: PLC0415 (the CLI imports lazily too)

    argv = ["serve", "--registry", "postgresql://db/x", "--lease-interval", "1s"]
    with pytest.raises(SystemExit) as stopped:
        main([*argv, "--registry-timeout", "2s"])
    assert stopped.value.code == 2
    assert "cluster.timeout: must be at most cluster.lease_interval" in capsys.readouterr().err
    assert main([*argv[:3], "--name", "s1", "--print-config"]) == 0
    printed = capsys.readouterr().out
    assert re.search(r'^registry = "postgresql://db/x" +# flag \(--registry\)$', printed, re.M)
    assert re.search(r'^name = "s1" +# flag \(--name\)$', printed, re.M)
    assert re.search(r'^lease_interval = "5s" +# default$', printed, re.M)


def test_a_host_token_may_read_the_members_and_nothing_else() -> None:
    from scheduler.service._auth import (  # noqa: PLC0415
        AdminGuard,
        Scope,
        TokenVerifier,
        issue_token,
    )

    key = b"k" * 32
    guard = AdminGuard(TokenVerifier((key,)))

    def status(path: str, token: str) -> int | None:
        headers = [(b"host", b"127.0.0.1"), (b"authorization", f"Bearer {token}".encode())]
        refusal = guard.check("GET", path, headers)
        return None if refusal is None else refusal.status

    host = issue_token(key, hostname="node-1")
    admin = issue_token(key, scopes=[Scope.ADMIN_READ])
    assert status("/api/v1/schedulers", host) is None
    assert status("/api/v1/schedulers", admin) is None
    assert status("/api/v1/hosts", host) == 403
    assert status("/api/v1/schedulers", issue_token(b"x" * 32)) == 401
