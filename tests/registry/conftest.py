"""Fixtures of the registry tests: one real PostgreSQL per session, a fresh database per test.

Run them with ``pytest -p no:cacheprovider tests/registry``. They skip, with one line
saying what is missing, where psycopg (the ``cluster`` extra) or PostgreSQL is not there.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import pytest

from tests.registry.postgres import PostgresServer, Unavailable, psql_like, running_postgres

_databases = itertools.count()
_SERVERS = frozenset({"postgres", "private_postgres", "_template"})


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark the tests that start PostgreSQL (``-m "not postgres"`` leaves them out)."""
    for item in items:
        if _SERVERS & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.postgres)


def _need_psycopg() -> None:
    pytest.importorskip(
        "psycopg_pool", reason="the registry tests need pip install -e '.[cluster]' (psycopg 3)"
    )


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """A PostgreSQL server for the whole session, removed at its end."""
    _need_psycopg()
    try:
        with running_postgres() as server:
            yield server
    except Unavailable as exc:
        pytest.skip(str(exc))


@pytest.fixture(scope="session")
def _template() -> Iterator[PostgresServer]:
    """A cluster made by initdb and never started: the private servers copy its data."""
    _need_psycopg()
    try:
        template = PostgresServer()
    except Unavailable as exc:
        pytest.skip(str(exc))
    try:
        yield template
    finally:
        template.remove()


@pytest.fixture
def private_postgres(_template: PostgresServer) -> Iterator[PostgresServer]:
    """A server of its own, for a test that stops and starts it."""
    with running_postgres(_template.data) as server:
        yield server


@pytest.fixture
def registry_url(postgres: PostgresServer) -> Iterator[str]:
    """The URL of a fresh, empty database on the session's server, dropped afterwards."""
    name = f"registry_{next(_databases)}"
    psql_like(postgres.url(), [f"CREATE DATABASE {name}"])
    try:
        yield postgres.url(name)
    finally:
        psql_like(postgres.url(), [f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"])
