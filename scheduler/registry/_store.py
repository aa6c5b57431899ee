"""The registry on PostgreSQL: blocking calls, each one transaction with a deadline.

psycopg 3 with a psycopg_pool ``ConnectionPool``. Every call is bounded three ways:
``connect_timeout`` (libpq, whole seconds), the pool's wait for a connection, and the
server's ``statement_timeout``, ``lock_timeout`` and ``idle_in_transaction_session_timeout``;
the trio shell adds its own deadline on top (``scheduler/service/_registrar.py``). A call
that fails for want of the database raises `RegistryUnavailable`, and the transaction it
was in is rolled back: a registry call either happened whole or not at all.
"""

from __future__ import annotations

import contextlib
import datetime
import math
import threading
from collections.abc import Iterator
from typing import Any, Final, final

import attrs
import psycopg
import psycopg.errors
import psycopg_pool

from . import _sql
from ._check import ActiveRow, Finding, IndexStatus, Problem, Snapshot, findings
from ._migrations import (
    CREATE_MIGRATIONS_TABLE,
    MIGRATION_LOCK_KEY,
    MIGRATIONS,
    Migration,
    MigrationPlan,
    plan,
)
from ._model import (
    Identity,
    Lease,
    LeaseLost,
    Member,
    NameTaken,
    RegistryUnavailable,
    Roster,
    RowState,
    SchemaError,
)
from ._trust import ClusterKeys, HolderDecision, judge_holder

#: The default bound on one call (connecting, waiting for a connection, each statement).
DEFAULT_TIMEOUT: Final = 5.0
APPLICATION_NAME: Final = "trio-p2p-scheduler"

#: Errors that mean "the database is not there (or not answering) right now".
_UNAVAILABLE = (
    psycopg.OperationalError,  # connection refused or lost; QueryCanceled (timeouts) too
    psycopg_pool.PoolTimeout,
    psycopg_pool.PoolClosed,
)


@final
@attrs.frozen
class MigrationReport:
    applied: tuple[int, ...]
    plan_before: MigrationPlan


@final
@attrs.frozen
class CheckReport:
    before: tuple[Finding, ...]
    #: After ``--fix`` (None without it).
    after: tuple[Finding, ...] | None = None


def connection_options(timeout: float) -> dict[str, Any]:
    """libpq keywords that bound every wait of a connection by ``timeout`` seconds."""
    millis = max(1, math.ceil(timeout * 1000))
    return {
        # libpq takes whole seconds and treats less than 2 as 2.
        "connect_timeout": max(2, math.ceil(timeout)),
        "options": (
            f"-c statement_timeout={millis} -c lock_timeout={millis} "
            f"-c idle_in_transaction_session_timeout={2 * millis} -c TimeZone=UTC"
        ),
        "application_name": APPLICATION_NAME,
    }


def _aware(value: datetime.datetime) -> datetime.datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=datetime.UTC)


def _member(row: tuple[Any, ...]) -> Member:
    return Member(
        registration_id=row[0],
        cluster_id=row[1],
        name=row[2],
        boot_id=row[3],
        url=row[4],
        admin_url=row[5],
        address=row[6],
        port=row[7],
        admin_port=row[8],
        registered_at=_aware(row[9]),
        renewed_at=_aware(row[10]),
        lease_expires_at=_aware(row[11]),
        signature=row[12],
    )


@final
class RegistryStore:
    """The ``schedulers`` table behind a small pool; thread-safe, blocking.

    ``url`` is a libpq URI or key/value string (``postgresql://user@host/db``).
    ``max_connections`` bounds the pool; the trio shell bounds its threads to the same.
    """

    def __init__(
        self,
        url: str,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        max_connections: int = 2,
        name: str = "registry",
        keys: ClusterKeys | None = None,
    ) -> None:
        if not timeout > 0:
            raise ValueError(f"registry timeout must be positive, got {timeout!r}")
        self.timeout = timeout
        #: The cluster key: signs what this store registers, judges the name's holder.
        self.keys = keys
        self._pool = psycopg_pool.ConnectionPool(
            url,
            kwargs=connection_options(timeout),
            min_size=1,
            max_size=max_connections,
            open=False,
            timeout=timeout,
            # A connection that died with the server is replaced, not handed out.
            check=psycopg_pool.ConnectionPool.check_connection,
            reconnect_timeout=max(60.0, 10 * timeout),
            num_workers=1,
            name=name,
        )
        self._lock = threading.Lock()
        self._state = "new"

    def _open(self) -> None:
        # Opened on first use, without waiting: the workers connect in the background,
        # and a call made while the database is down fails after `timeout` instead of
        # blocking start-up. A closed store stays closed (calls raise RegistryUnavailable).
        with self._lock:
            if self._state == "new":
                self._pool.open(wait=False)
                self._state = "open"

    def close(self) -> None:
        with self._lock:
            opened, self._state = self._state == "open", "closed"
        if opened:
            self._pool.close(timeout=self.timeout)

    def __enter__(self) -> RegistryStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @contextlib.contextmanager
    def transaction(self) -> Iterator[psycopg.Cursor[Any]]:
        """One transaction on a pooled connection; its failures mapped to registry errors."""
        self._open()
        try:
            with self._pool.connection(timeout=self.timeout) as conn, conn.cursor() as cur:
                # The pool's context commits on success and rolls back on an exception.
                yield cur
        except psycopg.errors.UndefinedTable as exc:
            raise SchemaError(
                "the registry schema is missing: run `scheduler registry migrate --registry URL` "
                f"or start a scheduler with --registry ({exc})"
            ) from exc
        except _UNAVAILABLE as exc:
            raise RegistryUnavailable(f"registry unavailable: {exc}") from exc

    # --- schema ---------------------------------------------------------------------

    def migrate(self, migrations: tuple[Migration, ...] = MIGRATIONS) -> MigrationReport:
        """Apply the pending migrations, all in one transaction; idempotent."""
        with self.transaction() as cur:
            cur.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK_KEY,))
            cur.execute(CREATE_MIGRATIONS_TABLE)
            todo = plan(self._applied(cur), migrations)
            if todo.changed:
                raise SchemaError(
                    f"migrations {list(todo.changed)} were edited after they were applied; "
                    "refusing to migrate (see `scheduler registry check`)"
                )
            for migration in todo.pending:
                # No parameters: psycopg sends the file as one simple query, many statements.
                cur.execute(migration.sql.encode())
                cur.execute(
                    "INSERT INTO schema_migrations (version, name, checksum) VALUES (%s, %s, %s)",
                    (migration.version, migration.name, migration.checksum),
                )
        return MigrationReport(tuple(m.version for m in todo.pending), todo)

    @staticmethod
    def _applied(cur: psycopg.Cursor[Any]) -> dict[int, str]:
        cur.execute("SELECT to_regclass('schema_migrations') IS NOT NULL")
        row = cur.fetchone()
        if row is None or not row[0]:
            return {}
        cur.execute("SELECT version, checksum FROM schema_migrations")
        return {version: checksum for version, checksum in cur.fetchall()}

    # --- membership -----------------------------------------------------------------

    def register(
        self,
        identity: Identity,
        lease: float,
        *,
        takeover: bool = True,
        rejoining_since: datetime.datetime | None = None,
    ) -> Lease:
        """Make ``identity`` the active row of its name, in one transaction.

        The name's holder, if any, is ended: ``superseded`` if its lease was live,
        ``expired`` if not. Whether a live holder may be ended is `judge_holder`'s
        (``_trust.py``): with ``takeover=False`` (a rejoin) or without the key a
        genuine holder wins and `NameTaken` is raised; a holder that proves nothing
        under the key is ended whatever ``takeover`` says, and listed in
        ``Lease.forged``. With a key the new row is signed in the same transaction.
        """
        _check_lease(lease)
        params = attrs.asdict(identity) | {"lease": float(lease)}
        forged: tuple[int, ...] = ()
        with self.transaction() as cur:
            cur.execute(_sql.LOCK_NAME, params)
            cur.execute(_sql.HOLDER, params)
            found = cur.fetchone()
            # Our own row, live, can only be a registration whose answer was lost.
            if found is not None and found[-1] and found[3] != identity.boot_id:
                holder = _member(found[:-1])
                decision = judge_holder(
                    holder, self.keys, takeover=takeover, rejoining_since=rejoining_since
                )
                if decision is HolderDecision.REFUSE:
                    raise NameTaken(identity.cluster_id, identity.name, holder)
                if decision is HolderDecision.IGNORE_FORGED:
                    forged = (holder.registration_id,)
            cur.execute(_sql.END_HOLDER, params)
            ended = tuple(rid for rid, state in cur.fetchall() if state == RowState.SUPERSEDED)
            cur.execute(_sql.REGISTER_INSERT, params)
            registration_id, db_now, expires, registered_at = _one(cur)
            if self.keys is not None:
                signature = self.keys.sign_row(identity, registration_id, _aware(registered_at))
                cur.execute(_sql.SIGN, {"id": registration_id, "signature": signature})
            if ended:
                cur.execute(_sql.LINK_SUPERSEDED, {"id": registration_id, "ended": list(ended)})
        return Lease(registration_id, _aware(db_now), _aware(expires), ended, forged)

    def renew(self, registration_id: int, lease: float) -> Lease:
        """Extend a live lease by ``lease`` seconds from the database's now.

        Raises `LeaseLost` if the registration ended or its lease already ran out: an
        expired lease is never revived, its process registers again.
        """
        _check_lease(lease)
        with self.transaction() as cur:
            cur.execute(_sql.RENEW, {"id": registration_id, "lease": float(lease)})
            row = cur.fetchone()
            if row is None:
                cur.execute(_sql.ROW_STATE, {"id": registration_id})
                state = cur.fetchone()
                raise LeaseLost(registration_id, None if state is None else RowState(state[0]))
        return Lease(row[0], _aware(row[1]), _aware(row[2]))

    def offline(self, registration_id: int) -> bool:
        """End a registration gracefully; False if it had already ended."""
        with self.transaction() as cur:
            cur.execute(_sql.OFFLINE, {"id": registration_id})
            return cur.fetchone() is not None

    def members(self, cluster_id: str) -> list[Member]:
        """The cluster's active members (live leases by the database's clock), by name."""
        return list(self.roster(cluster_id).members)

    def roster(self, cluster_id: str) -> Roster:
        """The active members and the database's clock, read in one transaction."""
        with self.transaction() as cur:
            cur.execute("SELECT now()")
            (db_now,) = _one(cur)
            cur.execute(_sql.MEMBERS, {"cluster_id": cluster_id})
            return Roster(_aware(db_now), tuple(_member(row) for row in cur.fetchall()))

    # --- registry check -------------------------------------------------------------

    def snapshot(self) -> Snapshot:
        with self.transaction() as cur:
            return self._snapshot(cur)

    def _snapshot(self, cur: psycopg.Cursor[Any]) -> Snapshot:
        cur.execute("SELECT now()")
        (db_now,) = _one(cur)
        migrations = plan(self._applied(cur))
        cur.execute(_sql.TABLE_EXISTS)
        if not _one(cur)[0]:
            return Snapshot(_aware(db_now), migrations, None)
        cur.execute(_sql.CHECK_INDEX, {"index": _sql.UNIQUE_INDEX})
        found = cur.fetchone()
        index = IndexStatus(False) if found is None else IndexStatus(True, *found)
        cur.execute(_sql.CHECK_ROWS)
        rows = tuple(
            ActiveRow(r[0], r[1], r[2], r[3], _aware(r[4]), _aware(r[5])) for r in cur.fetchall()
        )
        return Snapshot(_aware(db_now), migrations, index, rows)

    def check(self, *, fix: bool = False) -> CheckReport:
        """Report what is inconsistent; with ``fix``, repair it in one transaction and recheck."""
        before = tuple(findings(self.snapshot()))
        if not fix:
            return CheckReport(before)
        if not any(f.fixable for f in before):
            return CheckReport(before, before)
        if any(f.problem is Problem.PENDING_MIGRATIONS for f in before):
            self.migrate()
        with self.transaction() as cur:
            cur.execute(_sql.LOCK_TABLE)
            # Order matters: expired rows first (they are not duplicates of anything
            # live), then duplicates, so the index can be built, then the leases.
            cur.execute(_sql.FIX_STALE)
            cur.execute(_sql.FIX_DUPLICATES)
            index = self._snapshot(cur).index
            if index is not None and not index.sound:
                cur.execute(_sql.DROP_INDEX)
                cur.execute(_sql.CREATE_INDEX)
            cur.execute(_sql.FIX_LEASE_TOO_LONG)
        return CheckReport(before, tuple(findings(self.snapshot())))


def _one(cur: psycopg.Cursor[Any]) -> tuple[Any, ...]:
    row = cur.fetchone()
    if row is None:  # pragma: no cover - every caller's statement returns a row
        raise RuntimeError("the statement returned no row")
    return tuple(row)


def _check_lease(lease: float) -> None:
    if not (lease > 0 and math.isfinite(lease)):
        raise ValueError(f"lease must be a positive number of seconds, got {lease!r}")
