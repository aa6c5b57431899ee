"""Versioned schema migrations: the SQL files in ``migrations/``, applied in order.

A migration is ``migrations/NNNN_name.sql``; its version is ``NNNN``. Applied versions are
recorded in ``schema_migrations`` with the SHA-256 of their text, so an edited migration is
reported rather than silently skipped. Migrations only ever add: a scheduler that knows
fewer versions than the database holds still runs (a rolling upgrade), and `plan` says so.

Sans-IO: this module reads the package's files and decides what to apply; the store runs it.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping
from importlib import resources
from typing import Final, final

import attrs

_NAME: Final = re.compile(r"^(?P<version>\d{4})_(?P<name>[a-z0-9_]+)\.sql$")

#: Serialises migrators (several schedulers starting at once): a constant advisory lock key.
MIGRATION_LOCK_KEY: Final = 0x5C4ED_0001

CREATE_MIGRATIONS_TABLE: Final = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version    integer PRIMARY KEY,
    name       text        NOT NULL,
    checksum   text        NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)
"""


@final
@attrs.frozen
class Migration:
    version: int
    name: str
    sql: str = attrs.field(repr=False)

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


@final
@attrs.frozen
class MigrationPlan:
    """What to do with a database whose ``schema_migrations`` holds ``applied``."""

    #: Known migrations not applied yet, in order.
    pending: tuple[Migration, ...]
    #: Versions the database holds and this code does not know (a newer scheduler migrated).
    unknown: tuple[int, ...]
    #: Versions whose recorded checksum differs from the file's (someone edited a migration).
    changed: tuple[int, ...]

    @property
    def up_to_date(self) -> bool:
        return not self.pending


def load_migrations() -> tuple[Migration, ...]:
    """The package's migrations, by version; a gap or a duplicate version is a bug."""
    found = []
    for entry in resources.files(__package__).joinpath("migrations").iterdir():
        match = _NAME.match(entry.name)
        if match is None:
            continue
        found.append(
            Migration(int(match["version"]), match["name"], entry.read_text(encoding="utf-8"))
        )
    found.sort(key=lambda m: m.version)
    versions = [m.version for m in found]
    if versions != list(range(1, len(found) + 1)):
        raise RuntimeError(f"migrations must be numbered 1, 2, ... without gaps: {versions}")
    return tuple(found)


MIGRATIONS: Final = load_migrations()


def plan(applied: Mapping[int, str], migrations: Iterable[Migration] = MIGRATIONS) -> MigrationPlan:
    """Given ``{version: checksum}`` read from ``schema_migrations``, what is left to do."""
    known = {m.version: m for m in migrations}
    return MigrationPlan(
        pending=tuple(m for v, m in sorted(known.items()) if v not in applied),
        unknown=tuple(sorted(v for v in applied if v not in known)),
        changed=tuple(
            sorted(v for v, sha in applied.items() if v in known and known[v].checksum != sha)
        ),
    )
