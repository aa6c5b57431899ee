"""The service's registrar (trio, worker threads) against a real PostgreSQL, on the real clock.

Intervals are short (0.2 s, so a 0.6 s lease); every wait is for a registry step, under
``trio.fail_after``.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import trio

psycopg = pytest.importorskip("psycopg", reason="the registry tests need the cluster extra")

from scheduler.registry import Step  # noqa: E402
from scheduler.registry._store import RegistryStore  # noqa: E402
from scheduler.service._registrar import Registrar  # noqa: E402
from tests.registry.postgres import PostgresServer  # noqa: E402
from tests.registry.support import active_counts, identity  # noqa: E402

INTERVAL = 0.2
TIMEOUT = 2.0


@pytest.fixture
def store(registry_url: str) -> Iterator[RegistryStore]:
    with RegistryStore(registry_url, timeout=TIMEOUT) as store:
        yield store


def registrar(store: RegistryStore) -> Registrar:
    return Registrar(store, interval=INTERVAL, timeout=TIMEOUT)


async def test_registers_renews_and_leaves(store: RegistryStore, registry_url: str) -> None:
    member = registrar(store)
    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            await nursery.start(member.run, identity())
            await member.wait_progress(member.holds_lease)
            first = member.keeper.last_lease
            assert first is not None
            await member.wait_progress(lambda: member.keeper.last_lease is not first)
            assert member.keeper.registration_id == first.registration_id
            assert member.up
            [listed] = member.members()
            assert listed.registration_id == first.registration_id
            await member.leave()
            assert not member.holds_lease()
            nursery.cancel_scope.cancel()
    assert store.members("c1") == []


async def test_a_cancelled_registrar_still_offlines(store: RegistryStore) -> None:
    member = registrar(store)
    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            await nursery.start(member.run, identity())
            await member.wait_progress(member.holds_lease)
            nursery.cancel_scope.cancel()
    assert store.members("c1") == []


async def test_a_restarted_process_takes_over_and_the_old_one_steps_down(
    store: RegistryStore, registry_url: str
) -> None:
    old, new = registrar(store), registrar(store)
    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            await nursery.start(old.run, identity(boot="old"))
            await old.wait_progress(old.holds_lease)
            await nursery.start(new.run, identity(boot="new"))
            await new.wait_progress(new.holds_lease)
            # The old one's next renewal finds its row superseded; it rejoins without
            # taking the name back, and believes no lease.
            await old.wait_progress(lambda: old.keeper.failures > 0)
            assert old.keeper.step is Step.REJOIN
            assert not old.holds_lease()
            assert new.holds_lease()
            assert active_counts(registry_url) == {("c1", "alpha"): (1, 1)}
            assert [m.boot_id for m in store.members("c1")] == ["new"]
            nursery.cancel_scope.cancel()


async def test_an_unreachable_database_drops_the_lease_and_it_comes_back(
    private_postgres: PostgresServer,
) -> None:
    with RegistryStore(private_postgres.url(), timeout=TIMEOUT) as store:
        member = registrar(store)
        with trio.fail_after(60):
            async with trio.open_nursery() as nursery:
                await nursery.start(member.run, identity())
                await member.wait_progress(member.holds_lease)
                first = member.keeper.registration_id
                await trio.to_thread.run_sync(private_postgres.stop)
                await member.wait_progress(lambda: not member.up)
                # Serving on, retrying, and never believing what it could not renew.
                await member.wait_progress(lambda: not member.holds_lease())
                assert not member.up
                await trio.to_thread.run_sync(private_postgres.start)
                await member.wait_progress(member.holds_lease)
                assert member.up
                # The old lease had run out: never revived, a new registration instead.
                assert member.keeper.registration_id != first
                [listed] = store.members("c1")
                assert listed.registration_id == member.keeper.registration_id
                nursery.cancel_scope.cancel()


async def test_a_shutdown_without_the_database_is_bounded(
    private_postgres: PostgresServer,
) -> None:
    with RegistryStore(private_postgres.url(), timeout=TIMEOUT) as store:
        member = registrar(store)
        with trio.fail_after(60):
            async with trio.open_nursery() as nursery:
                await nursery.start(member.run, identity(boot="dying"))
                await member.wait_progress(member.holds_lease)
                await trio.to_thread.run_sync(private_postgres.stop)
                with trio.fail_after(TIMEOUT + 1):
                    await member.leave()
                assert not member.up
                nursery.cancel_scope.cancel()
            await trio.to_thread.run_sync(private_postgres.start)
            # The row stayed flagged active, so the restarted process takes it over at once.
            restarted = registrar(store)
            async with trio.open_nursery() as nursery:
                await nursery.start(restarted.run, identity(boot="restarted"))
                await restarted.wait_progress(restarted.holds_lease)
                assert [m.boot_id for m in store.members("c1")] == ["restarted"]
                assert active_counts(private_postgres.url()) == {("c1", "alpha"): (1, 1)}
                nursery.cancel_scope.cancel()
