"""The registry is no trust anchor: a row proves what the cluster key signed, no more.

Real PostgreSQL, the services in-process with real listeners. A process without the key
cannot take a live name over, a row written by SQL is never listed nor holds a name, and
names or URLs that must not reach clients are refused at start-up and ignored when read.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import attrs
import pytest
import trio

from scheduler.core import ConfigError
from scheduler.service import SchedulerService, ServiceConfig
from tests.registry.support import query
from tests.test_admin import call
from tests.test_e2e import metric

pytest.importorskip("psycopg", reason="the registry tests need the cluster extra")

CONFIG = ServiceConfig(port=0, admin_port=0, entrypoints=False, ping_interval=30.0)
INTERVAL = 1.0  # generous: a renewal must not time out on a loaded 2-core machine
EVIL = "ws://evil.example:9/ws"


@pytest.fixture
def key_file(tmp_path: Path) -> str:
    path = tmp_path / "cluster.key"
    path.write_text("cluster-key-" + "k" * 40 + "\n")
    return str(path)


def member_config(registry: str, name: str, **changes: Any) -> ServiceConfig:
    settings: dict[str, Any] = {"lease_interval": INTERVAL, "registry_timeout": INTERVAL}
    settings |= changes
    return attrs.evolve(CONFIG, registry=registry, scheduler_name=name, cluster_id="c1", **settings)


@asynccontextmanager
async def running(config: ServiceConfig) -> AsyncIterator[tuple[SchedulerService, str]]:
    """A service on free ports until the block ends; its admin URL."""
    service = SchedulerService(config)
    async with trio.open_nursery() as nursery:
        _, admin = await nursery.start(lambda task_status: service.run(task_status=task_status))
        yield service, admin
        nursery.cancel_scope.cancel()


async def listed(admin: str) -> dict[str, str]:
    status, members = await call("GET", f"{admin}/api/v1/schedulers")
    assert status == 200
    return {m["name"]: m["url"] for m in members}


async def until(check: Callable[[], Any], *, while_true: Callable[[], Any] | None = None) -> None:
    """Poll the async ``check`` until it holds; ``while_true`` must hold at every poll."""
    while True:
        if while_true is not None:
            assert await while_true()
        if await check():
            return
        await trio.sleep(0.02)


async def test_a_process_without_the_key_cannot_take_a_live_name_over(
    registry_url: str, key_file: str
) -> None:
    with trio.fail_after(60):
        async with running(member_config(registry_url, "s1", cluster_key_file=key_file)) as (
            real,
            real_admin,
        ):
            assert real.registrar is not None
            await real.registrar.wait_progress(real.registrar.holds_lease)
            real_url = (await listed(real_admin))["s1"]
            intruder_config = member_config(registry_url, "s1", advertise=EVIL)
            async with running(intruder_config) as (intruder, intruder_admin):
                registrar = intruder.registrar
                assert registrar is not None

                async def real_ready() -> bool:
                    return await call("GET", f"{real_admin}/readyz") == (200, "ready\n")

                async def refused_twice() -> bool:
                    return registrar.keeper.failures >= 2 and registrar.up

                await until(refused_twice, while_true=real_ready)
                assert await call("GET", f"{intruder_admin}/readyz") == (503, "not ready\n")
                refused = await trio.to_thread.run_sync(
                    lambda: metric(
                        intruder_admin,
                        "scheduler_registry_errors_total",
                        op="register",
                        reason="name_taken",
                    )
                )
                assert refused >= 2
            assert await listed(real_admin) == {"s1": real_url}
            rows = query(registry_url, "SELECT boot_id, url FROM schedulers WHERE state = 'active'")
            assert rows == [(real.boot_id, real_url)]


async def test_a_row_forged_by_sql_is_not_listed_and_takes_no_name(
    registry_url: str, key_file: str
) -> None:
    with trio.fail_after(60):
        async with (
            running(member_config(registry_url, "s1", cluster_key_file=key_file)) as (s1, admin1),
            running(member_config(registry_url, "s2", cluster_key_file=key_file)) as (s2, admin2),
        ):
            assert s1.registrar is not None
            registrars = [s1.registrar, s2.registrar]

            async def both_listed() -> bool:
                return set(await listed(admin2)) == {"s1", "s2"}

            await until(both_listed)
            real = await listed(admin2)
            # Someone with write access to the database: a new member, and s1 taken over.
            query(
                registry_url,
                "INSERT INTO schedulers (cluster_id, name, boot_id, url, address, port, "
                "lease_seconds, lease_expires_at) VALUES ('c1', 's3', 'forged', %s, "
                "'evil.example', 9, 3600, now() + interval '1 hour')",
                (EVIL,),
            )
            [(forged_id,)] = query(
                registry_url,
                "WITH ended AS (UPDATE schedulers SET state = 'superseded', ended_at = now() "
                "WHERE name = 's1' AND state = 'active' RETURNING signature) "
                "INSERT INTO schedulers (cluster_id, name, boot_id, url, address, port, "
                "lease_seconds, lease_expires_at, signature) SELECT 'c1', 's1', 'forged', %s, "
                "'evil.example', 9, 3600, now() + interval '1 hour', signature FROM ended "
                "RETURNING id",
                (EVIL,),
            )

            async def s1_ready() -> bool:
                return await call("GET", f"{admin1}/readyz") == (200, "ready\n")

            async def forged_row_ended() -> bool:
                [(state,)] = query(
                    registry_url, "SELECT state FROM schedulers WHERE id = %s", (forged_id,)
                )
                return state == "superseded"

            # s1 finds its row ended, sees a holder that proves nothing, and takes its
            # name back, ready all along.
            await until(forged_row_ended, while_true=s1_ready)

            async def real_again() -> bool:
                # Each member reads the rows at its own renewal: s1, just back under its
                # name, may list itself alone until its next read.
                return await listed(admin2) == real and await listed(admin1) == real

            await until(real_again)

            async def both_read_it() -> bool:
                return all(r is not None and r.ignored_rows >= 1 for r in registrars)

            await until(both_read_it)
            for admin in (admin1, admin2):
                ignored = await trio.to_thread.run_sync(
                    lambda a=admin: metric(
                        a, "scheduler_registry_rows_ignored_total", reason="unsigned"
                    )
                )
                assert ignored >= 1
            assert (
                await trio.to_thread.run_sync(
                    lambda: metric(
                        admin1, "scheduler_registry_rows_ignored_total", reason="bad_signature"
                    )
                )
                + await trio.to_thread.run_sync(
                    lambda: metric(
                        admin1,
                        "scheduler_registry_rows_ignored_total",
                        reason="name_held_by_unproven_row",
                    )
                )
                >= 1
            )


async def test_rows_with_unsafe_names_or_urls_are_not_listed_even_without_a_key(
    registry_url: str,
) -> None:
    with trio.fail_after(60):
        async with running(member_config(registry_url, "s1")) as (service, admin):
            assert service.registrar is not None
            await service.registrar.wait_progress(service.registrar.holds_lease)
            for name, url in [
                ("s2\x1b[2J", "ws://s2.example:1/ws"),
                ("s3", "ws://user:secret@s3.example:1/ws"),
                ("s4", "ws://s4.example:1/ws\r\nSet-Cookie: x"),
            ]:
                query(
                    registry_url,
                    "INSERT INTO schedulers (cluster_id, name, boot_id, url, address, port, "
                    "lease_seconds, lease_expires_at) VALUES ('c1', %s, 'b', %s, 'h', 1, "
                    "3600, now() + interval '1 hour')",
                    (name, url),
                )

            async def screened() -> bool:
                return service.registrar is not None and service.registrar.ignored_rows == 3

            await until(screened)
            assert set(await listed(admin)) == {"s1"}


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"advertise": "ws://user:pass@s1.example:8002/ws"}, "cluster.advertise: must not carry"),
        ({"advertise_admin": "http://admin@s1.example:8000"}, "cluster.advertise_admin: must not"),
        ({"scheduler_name": "s1\x1b[31m"}, "cluster.name: must hold no control characters"),
        ({"scheduler_name": "s 1"}, "cluster.name: must hold no control"),
        ({"cluster_id": "c1\n"}, "cluster.id: must hold no control characters"),
    ],
)
async def test_unsafe_names_and_userinfo_are_refused_at_start_up(
    changes: dict[str, str], message: str
) -> None:
    config = attrs.evolve(CONFIG, registry="postgresql://db.invalid/x", **changes)
    with pytest.raises(ConfigError, match=message):
        SchedulerService(config)


def test_serve_refuses_userinfo_in_advertise_with_one_line(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from scheduler.cli import main  # noqa: PLC0415 (the CLI imports lazily too)

    argv = ["serve", "--registry", "postgresql://db.invalid/x"]
    with pytest.raises(SystemExit) as stopped:
        # --print-config: checked as for serving, but nothing is started.
        main([*argv, "--advertise", "ws://user:pass@s1.example:8002/ws", "--print-config"])
    assert stopped.value.code == 2
    err = capsys.readouterr().err
    assert "cluster.advertise: must not carry user:password@" in err
    assert len(err.strip().splitlines()) == 1
    assert "pass" not in err.replace("user:password@", "")


async def test_a_registry_off_loopback_without_a_key_is_trusted_with_a_warning(
    caplog: pytest.LogCaptureFixture, key_file: str
) -> None:
    remote = attrs.evolve(CONFIG, registry="postgresql://db.example/x")
    with caplog.at_level("WARNING", logger="scheduler.registry"):
        SchedulerService(remote)
        SchedulerService(attrs.evolve(remote, registry="postgresql://127.0.0.1/x"))
        SchedulerService(attrs.evolve(remote, cluster_key_file=key_file))
    warned = [r for r in caplog.records if "no cluster.key_file" in r.getMessage()]
    assert len(warned) == 1
