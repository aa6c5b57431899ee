"""A cluster of real ``scheduler serve`` processes on one real PostgreSQL, on loopback.

Forced kills, a restart under the same name, and the database going away (also during
a shutdown): an observer reads the table all along and never sees two active rows for
one name; the restarted process is a member again within one lease. Every wait polls
with a deadline; every process is killed at the end.
"""

from __future__ import annotations

import re
import signal
import subprocess
import threading
from collections.abc import Iterator
from typing import Any

import pytest
import trio

psycopg = pytest.importorskip("psycopg", reason="the registry tests need the cluster extra")

from tests.registry.postgres import PostgresServer  # noqa: E402
from tests.registry.support import active_counts  # noqa: E402
from tests.test_e2e import Processes, get, metric, poll  # noqa: E402

pytestmark = pytest.mark.e2e

INTERVAL = 0.5
LEASE = 3 * INTERVAL
TIMEOUT = 0.5


class Observer:
    """Reads the table over and over on its own thread; remembers the worst it saw."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.worst = 0
        self.reads = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                counts = active_counts(self.url)
            except (psycopg.OperationalError, psycopg.errors.UndefinedTable):
                # The database is down on purpose, or not migrated yet.
                self._stop.wait(0.05)
                continue
            self.worst = max([self.worst, *(flagged for flagged, _ in counts.values())])
            self.reads += 1

    def __enter__(self) -> Observer:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)


@pytest.fixture
def observer(registry_url: str) -> Iterator[Observer]:
    with Observer(registry_url) as watching:
        yield watching


async def start(
    processes: Processes, registry: str, name: str, *flags: str
) -> tuple[subprocess.Popen[str], str]:
    """A cluster member on free ports (``flags``: more ``serve`` flags); its admin URL."""
    server = processes.start(
        "serve",
        "--port", "0",
        "--admin-port", "0",
        "--registry", registry,
        "--name", name,
        "--cluster", "e2e",
        "--lease-interval", f"{INTERVAL}s",
        "--registry-timeout", f"{TIMEOUT}s",
        "--shutdown-timeout", "2s",
        "--log-format", "json",
        *flags,
    )  # fmt: skip
    assert server.stdout is not None
    with trio.fail_after(30):
        line = await trio.to_thread.run_sync(server.stdout.readline, abandon_on_cancel=True)
    match = re.search(r"(ws://\S+).*(http://\S+)", line)
    assert match, line
    return server, match.group(2)


def members(admin: str) -> dict[str, dict[str, Any]]:
    return {m["name"]: m for m in get(f"{admin}/api/v1/schedulers")}


def ready(admin: str) -> bool:
    try:
        get(f"{admin}/readyz")
    except OSError:  # HTTPError 503 is an OSError
        return False
    return True


async def test_kill_and_restart_never_make_two_active_rows(
    processes: Processes, registry_url: str, observer: Observer
) -> None:
    names = ("s0", "s1", "s2")
    admins = {}
    servers = {}
    for name in names:
        servers[name], admins[name] = await start(processes, registry_url, name)
    for name in names:
        await poll(lambda n=name: set(members(admins[n])) == set(names), 10, f"{name}: 3 members")
        assert ready(admins[name])
    for member in members(admins["s0"]).values():
        assert member["url"].startswith("ws://127.0.0.1:")
        assert member["url"].endswith("/ws")
        assert member["lease_expires_at"]

    # SIGKILL s1: no offline; its lease runs out and the survivors drop it.
    servers["s1"].kill()
    await poll(
        lambda: all("s1" not in members(admins[n]) for n in ("s0", "s2")),
        LEASE + INTERVAL + 3.0,
        "the survivors to drop s1",
    )

    # SIGKILL s2 and restart it at once: the new process takes the name over.
    old_boot = members(admins["s0"])["s2"]["boot_id"]
    servers["s2"].kill()
    servers["s2"], admins["s2"] = await start(processes, registry_url, "s2")
    await poll(
        lambda: members(admins["s0"]).get("s2", {}).get("boot_id") not in (None, old_boot),
        LEASE + 3.0,
        "s0 to list the restarted s2",
    )
    assert ready(admins["s2"])
    assert observer.reads > 0
    assert observer.worst == 1


async def test_the_database_going_away(
    processes: Processes, private_postgres: PostgresServer
) -> None:
    url = private_postgres.url()
    server, admin = await start(processes, url, "solo")
    await poll(lambda: "solo" in members(admin), 10, "solo to register")
    assert metric(admin, "registry_up") == 1.0

    await trio.to_thread.run_sync(private_postgres.stop)
    await poll(lambda: metric(admin, "registry_up") == 0.0, 10, "registry_up 0")
    # It never believes a lease it could not renew: unready once the lease ran out.
    await poll(lambda: not ready(admin), LEASE + 3.0, "/readyz 503")
    assert get(f"{admin}/healthz") == "ok\n"

    # Shut down while the database is away: bounded, and the row is left to expire.
    server.send_signal(signal.SIGTERM)
    assert await trio.to_thread.run_sync(lambda: server.wait(timeout=15)) == 0
    await trio.to_thread.run_sync(private_postgres.start)
    # No offline happened: the row is still flagged active (inactive once its lease ran out).
    assert active_counts(url)[("e2e", "solo")][0] == 1

    # The restarted process takes the name over.
    server, admin = await start(processes, url, "solo")
    await poll(lambda: "solo" in members(admin), 10, "the restarted solo to register")
    assert active_counts(url) == {("e2e", "solo"): (1, 1)}
    assert ready(admin)
