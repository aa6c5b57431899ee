"""``scheduler registry migrate`` and ``check [--fix]`` against a real PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

psycopg = pytest.importorskip("psycopg", reason="the registry tests need the cluster extra")

from scheduler.cli import main  # noqa: E402
from scheduler.registry import Problem  # noqa: E402
from scheduler.registry._store import RegistryStore  # noqa: E402
from tests.registry.support import active_counts, expire, identity, query  # noqa: E402

LEASE = 15.0


@pytest.fixture
def store(registry_url: str) -> Iterator[RegistryStore]:
    with RegistryStore(registry_url) as store:
        store.migrate()
        yield store


def index_definition(url: str) -> str:
    [(definition,)] = query(
        url,
        "SELECT pg_get_indexdef('schedulers_one_active_per_name'::regclass)",
    )
    return str(definition)


def play_the_seed_bug(url: str) -> None:
    """Two active rows for one name: possible only once the index is gone."""
    query(url, "DROP INDEX schedulers_one_active_per_name")
    for boot in ("killed", "restarted"):
        query(
            url,
            "INSERT INTO schedulers (cluster_id, name, boot_id, url, address, port, "
            "lease_seconds, lease_expires_at) VALUES ('c1', 'alpha', %s, 'ws://a/ws', 'a', 1, "
            "15, now() + interval '10 seconds')",
            (boot,),
        )


def test_a_consistent_registry_passes(store: RegistryStore) -> None:
    store.register(identity(), LEASE)
    report = store.check()
    assert report.before == ()
    assert report.after is None


def test_fix_removes_duplicates_and_rebuilds_the_index(
    store: RegistryStore, registry_url: str
) -> None:
    definition = index_definition(registry_url)
    play_the_seed_bug(registry_url)
    report = store.check(fix=True)
    assert [f.problem for f in report.before] == [
        Problem.INDEX_BROKEN,
        Problem.DUPLICATE_ACTIVE,
    ]
    assert report.after == ()
    assert active_counts(registry_url) == {("c1", "alpha"): (1, 1)}
    assert index_definition(registry_url) == definition
    [member] = store.members("c1")
    assert member.boot_id == "restarted"  # the later of two equal leases: the higher id


def test_fix_marks_expired_rows_and_clamps_long_leases(
    store: RegistryStore, registry_url: str
) -> None:
    stale = store.register(identity("alpha"), LEASE)
    expire(registry_url, stale.registration_id)
    long = store.register(identity("beta"), LEASE)
    query(
        registry_url,
        "UPDATE schedulers SET lease_expires_at = now() + interval '1 day' WHERE id = %s",
        (long.registration_id,),
    )
    report = store.check(fix=True)
    assert [f.problem for f in report.before] == [Problem.LEASE_TOO_LONG, Problem.STALE_ACTIVE]
    assert report.after == ()
    [(state,)] = query(
        registry_url, "SELECT state FROM schedulers WHERE id = %s", (stale.registration_id,)
    )
    assert state == "expired"
    [member] = store.members("c1")
    assert (member.lease_expires_at - member.renewed_at).total_seconds() <= LEASE + 60


def test_an_edited_migration_is_reported_and_left_alone(
    store: RegistryStore, registry_url: str
) -> None:
    query(registry_url, "UPDATE schema_migrations SET checksum = 'edited'")
    report = store.check(fix=True)
    assert [f.problem for f in report.before] == [Problem.CHANGED_MIGRATIONS]
    assert report.after == report.before


def test_the_cli_migrates_and_checks(registry_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["registry", "check", "--registry", registry_url]) == 1
    assert "error: pending_migrations" in capsys.readouterr().out
    assert main(["registry", "migrate", "--registry", registry_url]) == 0
    assert "migrations applied: 1" in capsys.readouterr().out
    assert main(["registry", "migrate", "--registry", registry_url]) == 0
    assert "none (up to date)" in capsys.readouterr().out
    assert main(["registry", "check", "--registry", registry_url]) == 0
    assert "registry: consistent" in capsys.readouterr().out


def test_the_cli_reports_and_fixes_the_seed_bug(
    store: RegistryStore, registry_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    play_the_seed_bug(registry_url)
    assert main(["registry", "check", "--registry", registry_url]) == 1
    out = capsys.readouterr().out
    assert "error: index_broken" in out
    assert "error: duplicate_active: 2 rows flagged active for 'alpha'" in out
    assert main(["registry", "check", "--fix", "--registry", registry_url]) == 0
    out = capsys.readouterr().out
    assert "registry: fixed 2 of 2 findings" in out
    assert "registry: consistent" in out


def test_the_cli_says_what_is_missing(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["registry", "check", "--registry", ""]) == 2
    assert "--registry URL" in capsys.readouterr().err
