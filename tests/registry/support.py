"""Helpers of the registry tests that talk to the database directly."""

from __future__ import annotations

from typing import Any

from scheduler.registry import Identity


def identity(name: str = "alpha", boot: str = "boot-1", cluster: str = "c1") -> Identity:
    return Identity(
        cluster_id=cluster,
        name=name,
        boot_id=boot,
        url=f"ws://{name}.example:8002/ws",
        address=f"{name}.example",
        port=8002,
        admin_url=f"http://{name}.example:8000",
        admin_port=8000,
    )


def query(url: str, statement: str, params: Any = None) -> list[tuple[Any, ...]]:
    """One statement in its own transaction; the rows it returned, if any."""
    import psycopg  # noqa: PLC0415 (the registry tests import this only with the extra)

    with psycopg.connect(url, connect_timeout=10) as conn, conn.cursor() as cur:
        cur.execute(statement.encode() if params is None else statement, params)  # type: ignore[arg-type]
        return list(cur.fetchall()) if cur.description else []


def active_counts(url: str) -> dict[tuple[str, str], tuple[int, int]]:
    """Per (cluster, name): rows flagged active, and rows active by the database's clock."""
    rows = query(
        url,
        "SELECT cluster_id, name, count(*), count(*) FILTER (WHERE lease_expires_at > now()) "
        "FROM schedulers WHERE state = 'active' GROUP BY 1, 2",
    )
    return {(c, n): (flagged, live) for c, n, flagged, live in rows}


def expire(url: str, registration_id: int) -> None:
    """Play the passing of time: the row's lease ran out a second ago."""
    query(
        url,
        "UPDATE schedulers SET lease_expires_at = now() - interval '1 second', "
        "renewed_at = now() - interval '16 seconds', registered_at = now() - interval '1 minute' "
        "WHERE id = %s",
        (registration_id,),
    )
