"""The registry against a real PostgreSQL: migrations, registration, renewal, offlining."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

psycopg = pytest.importorskip("psycopg", reason="the registry tests need the cluster extra")

from scheduler.registry import (  # noqa: E402
    MIGRATIONS,
    LeaseLost,
    NameTaken,
    RegistryUnavailable,
    RowState,
    SchemaError,
)
from scheduler.registry._store import RegistryStore  # noqa: E402
from tests.registry.postgres import PostgresServer, free_port  # noqa: E402
from tests.registry.support import active_counts, expire, identity, query  # noqa: E402

LEASE = 15.0


@pytest.fixture
def store(registry_url: str) -> Iterator[RegistryStore]:
    with RegistryStore(registry_url, max_connections=4) as store:
        store.migrate()
        yield store


def test_migrations_are_idempotent(registry_url: str) -> None:
    with RegistryStore(registry_url) as store:
        first = store.migrate()
        again = store.migrate()
    assert first.applied == tuple(m.version for m in MIGRATIONS)
    assert again.applied == ()
    assert again.plan_before.up_to_date
    versions = query(registry_url, "SELECT version FROM schema_migrations ORDER BY 1")
    assert [v for (v,) in versions] == [m.version for m in MIGRATIONS]


def test_concurrent_migrators_apply_each_migration_once(registry_url: str) -> None:
    errors: list[BaseException] = []
    applied: list[tuple[int, ...]] = []
    barrier = threading.Barrier(4)

    def migrate() -> None:
        try:
            with RegistryStore(registry_url) as store:
                barrier.wait(timeout=30)
                applied.append(store.migrate().applied)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=migrate) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    assert sorted(applied) == [(), (), (), tuple(m.version for m in MIGRATIONS)]


def test_an_edited_migration_stops_migrate(store: RegistryStore, registry_url: str) -> None:
    query(registry_url, "UPDATE schema_migrations SET checksum = 'edited' WHERE version = 1")
    with pytest.raises(SchemaError, match="edited"):
        store.migrate()


def test_without_the_schema_calls_say_to_migrate(registry_url: str) -> None:
    with RegistryStore(registry_url) as store, pytest.raises(SchemaError, match="migrate"):
        store.members("c1")


def test_register_renew_offline(store: RegistryStore) -> None:
    me = identity()
    lease = store.register(me, LEASE)
    assert lease.superseded == ()
    assert (lease.lease_expires_at - lease.db_now).total_seconds() == LEASE
    [member] = store.members("c1")
    assert (member.name, member.url, member.registration_id) == (
        "alpha",
        me.url,
        lease.registration_id,
    )
    assert member.to_json()["lease_expires_at"] == lease.lease_expires_at.isoformat()
    renewed = store.renew(lease.registration_id, LEASE)
    assert renewed.lease_expires_at >= lease.lease_expires_at
    assert store.offline(lease.registration_id) is True
    assert store.members("c1") == []
    assert store.offline(lease.registration_id) is False
    with pytest.raises(LeaseLost) as lost:
        store.renew(lease.registration_id, LEASE)
    assert lost.value.state is RowState.OFFLINE


def test_clusters_are_separate(store: RegistryStore) -> None:
    store.register(identity(cluster="c1"), LEASE)
    store.register(identity(cluster="c2"), LEASE)
    assert [m.cluster_id for m in store.members("c1")] == ["c1"]
    assert [m.cluster_id for m in store.members("c2")] == ["c2"]


def test_a_restarted_process_takes_over_within_its_lease(
    store: RegistryStore, registry_url: str
) -> None:
    old = store.register(identity(boot="before-kill"), LEASE)
    # SIGKILL: no offline. The restarted process registers with the same name at once.
    new = store.register(identity(boot="after-restart"), LEASE)
    assert new.superseded == (old.registration_id,)
    [member] = store.members("c1")
    assert (member.boot_id, member.registration_id) == ("after-restart", new.registration_id)
    assert active_counts(registry_url) == {("c1", "alpha"): (1, 1)}
    [(state, successor)] = query(
        registry_url,
        "SELECT state, superseded_by FROM schedulers WHERE id = %s",
        (old.registration_id,),
    )
    assert (state, successor) == ("superseded", new.registration_id)
    # The old process, if it was only frozen, finds out at its next renewal.
    with pytest.raises(LeaseLost) as lost:
        store.renew(old.registration_id, LEASE)
    assert lost.value.state is RowState.SUPERSEDED


def test_a_process_that_lost_its_name_does_not_take_it_back(store: RegistryStore) -> None:
    store.register(identity(boot="old"), LEASE)
    newer = store.register(identity(boot="new"), LEASE)
    with pytest.raises(NameTaken) as taken:
        store.register(identity(boot="old"), LEASE, takeover=False)
    assert taken.value.holder.registration_id == newer.registration_id
    assert [m.boot_id for m in store.members("c1")] == ["new"]


def test_a_rejoin_adopts_its_own_registration_whose_answer_was_lost(
    store: RegistryStore,
) -> None:
    first = store.register(identity(boot="b"), LEASE)
    again = store.register(identity(boot="b"), LEASE, takeover=False)
    assert again.superseded == (first.registration_id,)
    assert [m.registration_id for m in store.members("c1")] == [again.registration_id]


def test_an_expired_lease_is_inactive_and_never_revived(
    store: RegistryStore, registry_url: str
) -> None:
    lease = store.register(identity(boot="frozen"), LEASE)
    expire(registry_url, lease.registration_id)
    # Nobody cleaned anything up: the row still says 'active', yet it is no member.
    assert active_counts(registry_url) == {("c1", "alpha"): (1, 0)}
    assert store.members("c1") == []
    with pytest.raises(LeaseLost) as lost:
        store.renew(lease.registration_id, LEASE)
    assert lost.value.state is RowState.EXPIRED
    # Anyone may take the name, even without takeover; the old row ends as expired.
    other = store.register(identity(boot="other"), LEASE, takeover=False)
    assert other.superseded == ()
    [(state,)] = query(
        registry_url, "SELECT state FROM schedulers WHERE id = %s", (lease.registration_id,)
    )
    assert state == "expired"


def test_the_index_forbids_a_second_active_row_whatever_the_client_does(
    store: RegistryStore, registry_url: str
) -> None:
    store.register(identity(), LEASE)
    with pytest.raises(psycopg.errors.UniqueViolation):
        query(
            registry_url,
            "INSERT INTO schedulers (cluster_id, name, boot_id, url, address, port, "
            "lease_seconds, lease_expires_at) "
            "VALUES ('c1', 'alpha', 'rogue', 'ws://x/ws', 'x', 1, 15, now() + interval '15 s')",
        )


@pytest.mark.parametrize("lease", [0.0, -1.0, float("nan"), float("inf")])
def test_a_bad_lease_is_refused_before_any_query(store: RegistryStore, lease: float) -> None:
    with pytest.raises(ValueError, match="lease"):
        store.register(identity(), lease)
    assert store.members("c1") == []


def test_an_unreachable_database_fails_within_the_timeout() -> None:
    url = f"postgresql://postgres@127.0.0.1:{free_port()}/nothing"
    with RegistryStore(url, timeout=0.5) as store, pytest.raises(RegistryUnavailable):
        store.members("c1")


def test_a_restarted_database_is_used_again(private_postgres: PostgresServer) -> None:
    with RegistryStore(private_postgres.url(), timeout=2.0) as store:
        store.migrate()
        lease = store.register(identity(), LEASE)
        # (A fast stop: the fixture's server trades durability for speed, and an
        # immediate one may lose the last commits.)
        private_postgres.stop()
        with pytest.raises(RegistryUnavailable):
            store.renew(lease.registration_id, LEASE)
        private_postgres.start()
        # The pool drops the dead connection and makes a new one.
        assert store.renew(lease.registration_id, LEASE).registration_id == lease.registration_id


def test_a_connection_killed_by_the_server_is_replaced(
    store: RegistryStore, registry_url: str
) -> None:
    lease = store.register(identity(), LEASE)
    # An administrator (or a failover) ends every connection of the scheduler.
    query(
        registry_url,
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
        "WHERE application_name = 'trio-p2p-scheduler' AND pid <> pg_backend_pid()",
    )
    assert store.renew(lease.registration_id, LEASE).registration_id == lease.registration_id
