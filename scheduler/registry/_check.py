"""``scheduler registry check``: what is inconsistent in a registry, decided from a snapshot.

Sans-IO: the store reads a `Snapshot` (the rows flagged active, the unique index, the
migrations) and `findings` judges it; ``--fix`` runs the fixes the findings name, in one
transaction under a table lock, and checks again. None of these is needed for the
registry's correctness (an expired lease is inactive whatever its row says, and the index
forbids duplicates); they repair what a hand edit, a dropped index or an interrupted
migration left behind, and tidy rows for the humans who read the table.
"""

from __future__ import annotations

import datetime
import enum
from collections import Counter
from collections.abc import Sequence
from typing import final

import attrs

from ._migrations import MigrationPlan


class Problem(enum.StrEnum):
    #: The schema is older than this scheduler's migrations (fix: migrate).
    PENDING_MIGRATIONS = "pending_migrations"
    #: The database holds migrations this scheduler does not know (report only).
    UNKNOWN_MIGRATIONS = "unknown_migrations"
    #: A recorded migration's checksum differs from the file (report only).
    CHANGED_MIGRATIONS = "changed_migrations"
    #: The partial unique index is missing, invalid or not what the schema says (fix: rebuild).
    INDEX_BROKEN = "index_broken"
    #: Several rows flagged active for one (cluster, name) (fix: keep the latest lease).
    DUPLICATE_ACTIVE = "duplicate_active"
    #: A lease reaching further than its own length from now (fix: clamp it).
    LEASE_TOO_LONG = "lease_too_long"
    #: Rows still flagged active whose lease ran out: already inactive (fix: mark expired).
    STALE_ACTIVE = "stale_active"


#: Problems that break no guarantee: reported, and fixed with --fix, but exit status 0.
COSMETIC = frozenset({Problem.STALE_ACTIVE, Problem.UNKNOWN_MIGRATIONS})
#: Problems ``--fix`` cannot repair.
UNFIXABLE = frozenset({Problem.UNKNOWN_MIGRATIONS, Problem.CHANGED_MIGRATIONS})


@final
@attrs.frozen
class ActiveRow:
    """A row with ``state = 'active'``, live or not."""

    registration_id: int
    cluster_id: str
    name: str
    lease_seconds: float
    renewed_at: datetime.datetime
    lease_expires_at: datetime.datetime


@final
@attrs.frozen
class IndexStatus:
    present: bool
    valid: bool = False
    unique: bool = False
    predicate: str | None = None

    @property
    def sound(self) -> bool:
        return (
            self.present
            and self.valid
            and self.unique
            and (self.predicate or "").replace(" ", "") == "(state='active'::text)"
        )


@final
@attrs.frozen
class Snapshot:
    db_now: datetime.datetime
    migrations: MigrationPlan
    #: None when the ``schedulers`` table does not exist yet.
    index: IndexStatus | None
    rows: tuple[ActiveRow, ...] = ()


@final
@attrs.frozen
class Finding:
    problem: Problem
    message: str
    #: The registrations concerned, if any.
    registrations: tuple[int, ...] = ()

    @property
    def fixable(self) -> bool:
        return self.problem not in UNFIXABLE

    @property
    def cosmetic(self) -> bool:
        return self.problem in COSMETIC

    def render(self) -> str:
        tag = "note" if self.cosmetic else "error"
        fix = "" if self.fixable else " (not fixable by --fix)"
        return f"{tag}: {self.problem.value}: {self.message}{fix}"


def findings(snapshot: Snapshot) -> list[Finding]:
    """Everything inconsistent in ``snapshot``, most serious first."""
    found: list[Finding] = []
    plan = snapshot.migrations
    if plan.changed:
        found.append(
            Finding(
                Problem.CHANGED_MIGRATIONS,
                f"migrations {list(plan.changed)} differ from the ones applied: "
                "a migration file was edited after it ran",
            )
        )
    if plan.pending:
        found.append(
            Finding(
                Problem.PENDING_MIGRATIONS,
                f"migrations not applied: {[m.version for m in plan.pending]}",
            )
        )
    if plan.unknown:
        found.append(
            Finding(
                Problem.UNKNOWN_MIGRATIONS,
                f"the database holds migrations {list(plan.unknown)} that this scheduler "
                "does not know (a newer scheduler migrated it)",
            )
        )
    if snapshot.index is None:
        return found
    if not snapshot.index.sound:
        found.append(
            Finding(
                Problem.INDEX_BROKEN,
                f"the unique index on active (cluster_id, name) is "
                f"{'invalid or altered' if snapshot.index.present else 'missing'}: "
                "nothing stops two active rows for one name",
            )
        )
    found.extend(_row_findings(snapshot.rows, snapshot.db_now))
    return found


def _row_findings(rows: Sequence[ActiveRow], now: datetime.datetime) -> list[Finding]:
    found = []
    live = [row for row in rows if row.lease_expires_at > now]
    per_name = Counter((row.cluster_id, row.name) for row in rows)
    for (cluster_id, name), count in sorted(per_name.items()):
        if count > 1:
            ids = tuple(
                r.registration_id for r in rows if (r.cluster_id, r.name) == (cluster_id, name)
            )
            found.append(
                Finding(
                    Problem.DUPLICATE_ACTIVE,
                    f"{count} rows flagged active for {name!r} in cluster {cluster_id!r}: "
                    f"registrations {list(ids)}",
                    ids,
                )
            )
    too_long = tuple(
        row.registration_id
        for row in live
        if row.lease_expires_at > now + datetime.timedelta(seconds=row.lease_seconds)
    )
    if too_long:
        found.append(
            Finding(
                Problem.LEASE_TOO_LONG,
                "leases reaching further than their own lease_seconds from now: "
                f"registrations {list(too_long)}",
                too_long,
            )
        )
    stale = tuple(row.registration_id for row in rows if row.lease_expires_at <= now)
    if stale:
        found.append(
            Finding(
                Problem.STALE_ACTIVE,
                f"{len(stale)} rows flagged active whose lease ran out (already inactive)",
                stale,
            )
        )
    return found


def exit_status(found: Sequence[Finding]) -> int:
    """0 when nothing but cosmetic notes remain, 1 otherwise."""
    return 0 if all(f.cosmetic for f in found) else 1
