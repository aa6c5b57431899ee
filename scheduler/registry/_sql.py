"""The registry's statements, one place. Rules they keep:

* "now" is always the database's ``now()``; no statement takes a time from the client.
* A row is active when ``state = 'active' AND lease_expires_at > now()``
  (``ACTIVE``). A row whose lease ran out is inactive without anyone updating it.
* Only ``REGISTER_INSERT`` writes ``'active'``, and only after ``END_HOLDER`` ended the
  name's previous holder in the same transaction, under the name's advisory lock; the
  partial unique index ``schedulers_one_active_per_name`` makes a second active row for
  one (cluster, name) impossible whatever the clients do.
* ``RENEW`` extends only a live lease: a lease that expired stays expired, and its process
  registers again (a new row).
"""

from __future__ import annotations

from typing import Final

UNIQUE_INDEX: Final = "schedulers_one_active_per_name"

#: The condition "this row is an active member", for ``WHERE`` clauses.
ACTIVE: Final = "state = 'active' AND lease_expires_at > now()"

MEMBER_COLUMNS: Final = (
    "id, cluster_id, name, boot_id, url, admin_url, address, port, admin_port, "
    "registered_at, renewed_at, lease_expires_at, signature"
)

#: Serialises registrations of one (cluster, name); released at commit or rollback.
LOCK_NAME: Final = "SELECT pg_advisory_xact_lock(hashtext(%(cluster_id)s), hashtext(%(name)s))"

#: The row holding the name, if any, locked, and whether its lease is still live.
HOLDER: Final = f"""
SELECT {MEMBER_COLUMNS}, lease_expires_at > now() AS live
  FROM schedulers
 WHERE cluster_id = %(cluster_id)s AND name = %(name)s AND state = 'active'
   FOR UPDATE
"""

#: End the name's holder: superseded if its lease was live, expired if not.
END_HOLDER: Final = """
UPDATE schedulers
   SET state = CASE WHEN lease_expires_at > now() THEN 'superseded' ELSE 'expired' END,
       ended_at = least(now(), lease_expires_at)
 WHERE cluster_id = %(cluster_id)s AND name = %(name)s AND state = 'active'
RETURNING id, state
"""

REGISTER_INSERT: Final = """
INSERT INTO schedulers (cluster_id, name, boot_id, url, admin_url, address, port, admin_port,
                        lease_seconds, lease_expires_at)
VALUES (%(cluster_id)s, %(name)s, %(boot_id)s, %(url)s, %(admin_url)s, %(address)s, %(port)s,
        %(admin_port)s, %(lease)s, now() + make_interval(secs => %(lease)s))
RETURNING id, now(), lease_expires_at, registered_at
"""

#: The signature of a row just inserted (it covers the id and time the insert assigned).
SIGN: Final = "UPDATE schedulers SET signature = %(signature)s WHERE id = %(id)s"

LINK_SUPERSEDED: Final = """
UPDATE schedulers SET superseded_by = %(id)s
 WHERE id = ANY(%(ended)s) AND state = 'superseded'
"""

RENEW: Final = f"""
UPDATE schedulers
   SET lease_expires_at = now() + make_interval(secs => %(lease)s),
       lease_seconds = %(lease)s,
       renewed_at = now()
 WHERE id = %(id)s AND {ACTIVE}
RETURNING id, now(), lease_expires_at
"""

#: After a renewal matched nothing: what became of the row (for the error).
ROW_STATE: Final = """
SELECT CASE WHEN state = 'active' THEN 'expired' ELSE state END FROM schedulers WHERE id = %(id)s
"""

OFFLINE: Final = """
UPDATE schedulers
   SET state = 'offline', ended_at = now(), lease_expires_at = least(lease_expires_at, now())
 WHERE id = %(id)s AND state = 'active'
RETURNING id
"""

#: The most rows one roster read takes: whoever can write the table could add millions.
MAX_ROSTER_ROWS: Final = 1000

MEMBERS: Final = f"""
SELECT {MEMBER_COLUMNS}
  FROM schedulers
 WHERE cluster_id = %(cluster_id)s AND {ACTIVE}
 ORDER BY name, id
 LIMIT {MAX_ROSTER_ROWS}
"""

# --- registry check -------------------------------------------------------------------

#: Every row flagged active, live or not, with the database's clock.
CHECK_ROWS: Final = """
SELECT id, cluster_id, name, lease_seconds, renewed_at, lease_expires_at, now()
  FROM schedulers
 WHERE state = 'active'
"""

#: The unique index, if present: (valid, unique, its predicate).
CHECK_INDEX: Final = """
SELECT i.indisvalid, i.indisunique, pg_get_expr(i.indpred, i.indrelid)
  FROM pg_index i
  JOIN pg_class c ON c.oid = i.indexrelid
 WHERE c.relname = %(index)s AND c.relnamespace = to_regnamespace(current_schema())
"""

TABLE_EXISTS: Final = "SELECT to_regclass('schedulers') IS NOT NULL"

#: Fixes, run in one transaction under ``LOCK_TABLE``, in this order.
LOCK_TABLE: Final = "LOCK TABLE schedulers IN SHARE ROW EXCLUSIVE MODE"

FIX_STALE: Final = """
UPDATE schedulers SET state = 'expired', ended_at = lease_expires_at
 WHERE state = 'active' AND lease_expires_at <= now()
"""

FIX_LEASE_TOO_LONG: Final = """
UPDATE schedulers SET lease_expires_at = now() + make_interval(secs => lease_seconds)
 WHERE state = 'active' AND lease_expires_at > now() + make_interval(secs => lease_seconds)
"""

#: Of several active rows for one name (possible only without the index), keep the one
#: renewed last and supersede the others.
FIX_DUPLICATES: Final = """
WITH ranked AS (
    SELECT id, first_value(id) OVER w AS keeper, row_number() OVER w AS rank
      FROM schedulers
     WHERE state = 'active'
    WINDOW w AS (PARTITION BY cluster_id, name
                 ORDER BY lease_expires_at DESC, renewed_at DESC, id DESC)
)
UPDATE schedulers s
   SET state = 'superseded', ended_at = now(), superseded_by = ranked.keeper
  FROM ranked
 WHERE s.id = ranked.id AND ranked.rank > 1
"""

DROP_INDEX: Final = f"DROP INDEX IF EXISTS {UNIQUE_INDEX}"
CREATE_INDEX: Final = (
    f"CREATE UNIQUE INDEX {UNIQUE_INDEX} ON schedulers (cluster_id, name) WHERE state = 'active'"
)
