"""Concurrent registrations, renewals, restarts and offlinings against a real PostgreSQL.

Hypothesis writes a program per simulated scheduler process; the processes run at once on
their own threads and connections, while an observer reads the table over and over. Never,
at any moment the observer sees, do two rows hold one (cluster, name); afterwards, each
name's latest registration is the only one that may be active.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Literal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

psycopg = pytest.importorskip("psycopg", reason="the registry tests need the cluster extra")

from scheduler.registry import Lease, LeaseLost, NameTaken  # noqa: E402
from scheduler.registry._store import RegistryStore  # noqa: E402
from tests.registry.support import active_counts, expire, identity, query  # noqa: E402

Op = Literal["register", "rejoin", "renew", "offline", "restart", "freeze"]
OPS: tuple[Op, ...] = ("register", "rejoin", "renew", "offline", "restart", "freeze")
LEASE = 15.0

programs = st.lists(
    st.tuples(st.sampled_from(["alpha", "beta"]), st.lists(st.sampled_from(OPS), max_size=12)),
    min_size=2,
    max_size=5,
)


@pytest.fixture
def shared_store(registry_url: str) -> Iterator[tuple[str, RegistryStore]]:
    with RegistryStore(registry_url, max_connections=6, timeout=10.0) as store:
        store.migrate()
        yield registry_url, store


class Process:
    """One scheduler process: a name, a boot id, and the registration it believes it holds."""

    def __init__(self, number: int, name: str, url: str, store: RegistryStore) -> None:
        self.number = number
        self.name = name
        self.url = url
        self.store = store
        self.boots = 0
        self.held: int | None = None
        self.registered: list[int] = []

    def _register(self, takeover: bool) -> None:
        me = identity(self.name, f"p{self.number}-boot{self.boots}")
        try:
            lease: Lease = self.store.register(me, LEASE, takeover=takeover)
        except NameTaken:
            return
        self.held = lease.registration_id
        self.registered.append(lease.registration_id)

    def run(self, op: Op) -> None:
        if op == "register":
            self._register(takeover=True)
        elif op == "rejoin":
            self._register(takeover=False)
        elif op == "restart":  # SIGKILL and start again: a new boot, no offline
            self.boots += 1
            self.held = None
            self._register(takeover=True)
        elif self.held is None:
            return
        elif op == "renew":
            try:
                self.store.renew(self.held, LEASE)
            except LeaseLost:
                self.held = None
        elif op == "offline":
            self.store.offline(self.held)
            self.held = None
        elif op == "freeze":  # the process stops long enough for its lease to run out
            expire(self.url, self.held)


def _observe(url: str, stop: threading.Event, seen: list[dict[tuple[str, str], int]]) -> None:
    while not stop.is_set():
        seen.append({key: flagged for key, (flagged, _) in active_counts(url).items()})


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(programs=programs)
def test_never_two_active_rows_for_one_name(
    shared_store: tuple[str, RegistryStore], programs: list[tuple[str, list[Op]]]
) -> None:
    url, store = shared_store
    query(url, "TRUNCATE schedulers RESTART IDENTITY")
    processes = [Process(i, name, url, store) for i, (name, _) in enumerate(programs)]
    errors: list[BaseException] = []
    start = threading.Barrier(len(processes))

    def run(process: Process, ops: list[Op]) -> None:
        try:
            start.wait(timeout=30)
            for op in ops:
                process.run(op)
        except BaseException as exc:
            errors.append(exc)

    stop = threading.Event()
    seen: list[dict[tuple[str, str], int]] = []
    observer = threading.Thread(target=_observe, args=(url, stop, seen))
    observer.start()
    threads = [
        threading.Thread(target=run, args=(p, ops))
        for p, (_, ops) in zip(processes, programs, strict=True)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    stop.set()
    observer.join(timeout=30)

    assert errors == []
    seen.append({key: flagged for key, (flagged, _) in active_counts(url).items()})
    assert all(count <= 1 for snapshot in seen for count in snapshot.values())
    # Each name's rows: only its latest registration may still be flagged active, every
    # superseded row names a later registration of the same name, and the members list
    # shows each name at most once.
    rows = query(url, "SELECT id, name, state, superseded_by FROM schedulers ORDER BY id")
    latest = {name: rid for rid, name, _, _ in rows}
    names = {rid: name for rid, name, _, _ in rows}
    for rid, name, state, successor in rows:
        if state == "active":
            assert rid == latest[name]
        if state == "superseded":
            assert successor is not None
            assert successor > rid
            assert names[successor] == name
    members = [m.name for m in store.members("c1")]
    assert len(members) == len(set(members))
    # A process that believes it holds a live lease holds the name's active row.
    active = {rid for rid, _, state, _ in rows if state == "active"}
    for process in processes:
        if process.held is not None and process.held in active:
            assert latest[process.name] == process.held
