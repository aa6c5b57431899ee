"""The registry's rules without a database: migration plans, check findings, the lease keeper."""

from __future__ import annotations

import datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from scheduler.registry import (
    MIGRATIONS,
    Identity,
    Lease,
    LeaseKeeper,
    Migration,
    Problem,
    Snapshot,
    Step,
    findings,
    plan,
)
from scheduler.registry._check import ActiveRow, IndexStatus, exit_status

T0 = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)
SOUND = IndexStatus(True, True, True, "(state = 'active'::text)")


def at(seconds: float) -> datetime.datetime:
    return T0 + datetime.timedelta(seconds=seconds)


def row(rid: int, name: str = "a", *, expires: float = 10.0, lease: float = 15.0) -> ActiveRow:
    return ActiveRow(rid, "c", name, lease, at(0), at(expires))


def lease(rid: int = 1) -> Lease:
    return Lease(rid, at(0), at(15))


# --- migrations -----------------------------------------------------------------------


def test_the_package_migrations_are_numbered_from_one() -> None:
    assert [m.version for m in MIGRATIONS] == list(range(1, len(MIGRATIONS) + 1))
    assert "CREATE UNIQUE INDEX schedulers_one_active_per_name" in MIGRATIONS[0].sql


def test_a_fresh_database_needs_every_migration() -> None:
    todo = plan({})
    assert todo.pending == MIGRATIONS
    assert not todo.up_to_date
    assert (todo.unknown, todo.changed) == ((), ())


def test_an_applied_database_needs_nothing_and_a_newer_one_is_reported() -> None:
    applied = {m.version: m.checksum for m in MIGRATIONS} | {99: "x"}
    todo = plan(applied)
    assert todo.up_to_date
    assert todo.unknown == (99,)
    assert todo.changed == ()


def test_an_edited_migration_is_reported() -> None:
    edited = Migration(1, "schedulers", "CREATE TABLE other ()")
    todo = plan({1: MIGRATIONS[0].checksum}, [edited])
    assert todo.changed == (1,)
    assert todo.pending == ()


# --- registry check -------------------------------------------------------------------


def snapshot(*rows: ActiveRow, index: IndexStatus | None = SOUND, now: float = 0.0) -> Snapshot:
    applied = {m.version: m.checksum for m in MIGRATIONS}
    return Snapshot(at(now), plan(applied), index, rows)


def test_a_consistent_registry_has_no_findings() -> None:
    assert findings(snapshot(row(1, "a"), row(2, "b"))) == []


def test_a_missing_index_and_duplicates_are_errors() -> None:
    found = findings(snapshot(row(1), row(2), index=IndexStatus(False)))
    assert [f.problem for f in found] == [Problem.INDEX_BROKEN, Problem.DUPLICATE_ACTIVE]
    assert found[1].registrations == (1, 2)
    assert exit_status(found) == 1


def test_an_index_without_its_predicate_is_broken() -> None:
    altered = IndexStatus(True, True, True, None)
    assert [f.problem for f in findings(snapshot(index=altered))] == [Problem.INDEX_BROKEN]


def test_expired_rows_still_flagged_active_are_only_a_note() -> None:
    found = findings(snapshot(row(1, expires=5.0), now=5.0))
    assert [f.problem for f in found] == [Problem.STALE_ACTIVE]
    assert found[0].cosmetic
    assert exit_status(found) == 0
    assert found[0].render().startswith("note: stale_active:")


def test_a_lease_longer_than_its_length_is_an_error() -> None:
    found = findings(snapshot(row(1, expires=100.0, lease=15.0)))
    assert [f.problem for f in found] == [Problem.LEASE_TOO_LONG]


def test_without_the_table_only_the_migrations_are_judged() -> None:
    found = findings(Snapshot(at(0), plan({}), None))
    assert [f.problem for f in found] == [Problem.PENDING_MIGRATIONS]
    assert found[0].fixable


def test_an_edited_migration_is_not_fixable() -> None:
    changed = {m.version: m.checksum for m in MIGRATIONS} | {1: "not the checksum"}
    found = findings(Snapshot(at(0), plan(changed), SOUND))
    assert [f.problem for f in found] == [Problem.CHANGED_MIGRATIONS]
    assert not found[0].fixable
    assert "not fixable" in found[0].render()


# --- identity -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value"), [("name", ""), ("cluster_id", ""), ("port", 70000), ("admin_port", -1)]
)
def test_a_bad_identity_is_refused(field: str, value: object) -> None:
    fields: dict[str, object] = {
        "cluster_id": "c",
        "name": "a",
        "boot_id": "b",
        "url": "ws://a:1/ws",
        "address": "a",
        "port": 1,
    }
    with pytest.raises(ValueError, match=field):
        Identity(**(fields | {field: value}))  # type: ignore[arg-type]


# --- the lease keeper -----------------------------------------------------------------


def test_a_lease_is_believed_from_the_time_the_request_was_sent() -> None:
    keeper = LeaseKeeper(5.0, 15.0)
    assert keeper.step is Step.REGISTER
    assert not keeper.holds(0.0)
    # Sent at 100, answered much later: the belief still counts from 100.
    assert keeper.succeeded(100.0, lease(7)) == 105.0
    assert keeper.registration_id == 7
    assert keeper.step is Step.RENEW
    assert keeper.holds(114.999)
    assert not keeper.holds(115.0)


def test_failures_extend_nothing_and_back_off_within_the_interval() -> None:
    keeper = LeaseKeeper(5.0, 15.0, uniform=lambda low, high: high)
    keeper.succeeded(0.0, lease())
    retries = [keeper.failed(t) - t for t in (5.0, 6.0, 7.0, 8.0, 9.0)]
    assert retries == [0.5, 1.0, 2.0, 4.0, 5.0]
    assert keeper.holds(14.9)
    assert not keeper.holds(15.0)
    keeper.succeeded(12.0, lease())
    assert keeper.failures == 0
    assert keeper.holds(26.9)


@given(st.lists(st.floats(0.0, 1.0), min_size=1, max_size=40))
def test_a_retry_never_waits_longer_than_the_interval(draws: list[float]) -> None:
    values = iter(draws)
    keeper = LeaseKeeper(5.0, 15.0, uniform=lambda low, high: low + (high - low) * next(values))
    for _ in draws:
        delay = keeper.failed(0.0)
        assert 0.25 <= delay <= 5.0


def test_a_lost_lease_is_dropped_at_once_and_rejoined_without_takeover() -> None:
    keeper = LeaseKeeper(5.0, 15.0)
    keeper.succeeded(0.0, lease())
    assert keeper.lost(3.0) == 3.0
    assert not keeper.holds(3.0)
    assert keeper.step is Step.REJOIN
    assert keeper.registration_id is None
    assert keeper.refused(3.0) == 8.0


def test_the_lease_must_outlast_the_interval() -> None:
    with pytest.raises(ValueError, match="lease_interval"):
        LeaseKeeper(5.0, 5.0)
