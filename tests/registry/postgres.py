"""A real PostgreSQL for the registry tests: initdb + pg_ctl in a temporary directory.

Binaries, first found wins: ``$SCHEDULER_TEST_PG_BINDIR``, ``pg_config --bindir``,
``initdb`` on ``PATH``, ``/usr/lib/postgresql/<newest>/bin``, then the ``pgserver`` wheel
(``pip install -e '.[postgres]'``) for machines without PostgreSQL. PostgreSQL refuses to
run as root: as root, the server runs as the ``postgres`` user (or ``nobody``) through
``runuser`` or ``setpriv``, and owns the temporary directory. When any of this is
missing, `Unavailable` says in one line what is needed, and the tests skip with it.
"""

from __future__ import annotations

import contextlib
import glob
import importlib.util
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Final, final

#: Speed over durability: the data directory is thrown away.
FAST_SETTINGS: Final = (
    "-c fsync=off -c synchronous_commit=off -c full_page_writes=off "
    "-c max_connections=200 -c shared_buffers=16MB"
)
_UNPRIVILEGED: Final = ("postgres", "nobody")


class Unavailable(Exception):
    """PostgreSQL cannot run here; the message is the one-line reason."""


def _version_key(path: str) -> tuple[int, ...]:
    return tuple(int(p) for p in Path(path).parent.name.split(".") if p.isdigit())


def find_bindir() -> Path:
    """The directory holding ``initdb``, ``pg_ctl`` and ``postgres``."""
    candidates: list[str] = []
    if env := os.environ.get("SCHEDULER_TEST_PG_BINDIR"):
        candidates.append(env)
    if pg_config := shutil.which("pg_config"):
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            out = subprocess.run(
                [pg_config, "--bindir"], capture_output=True, text=True, timeout=10, check=True
            )
            candidates.append(out.stdout.strip())
    if initdb := shutil.which("initdb"):
        candidates.append(str(Path(initdb).parent))
    candidates.extend(
        sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=_version_key, reverse=True)
    )
    # Found, not imported: importing pgserver warns about XDG_RUNTIME_DIR.
    wheel = importlib.util.find_spec("pgserver")
    if wheel is not None and wheel.origin:
        candidates.append(str(Path(wheel.origin).parent / "pginstall" / "bin"))
    for candidate in candidates:
        bindir = Path(candidate)
        if all(os.access(bindir / tool, os.X_OK) for tool in ("initdb", "pg_ctl", "postgres")):
            return bindir
    raise Unavailable(
        "PostgreSQL tests need initdb/pg_ctl/postgres: install PostgreSQL (apt install "
        "postgresql) or the wheel (pip install -e '.[postgres]'), or set SCHEDULER_TEST_PG_BINDIR"
    )


def _run_as() -> tuple[list[str], int, int]:
    """The command prefix that drops root, and the uid/gid it runs as ([] when not root)."""
    if os.geteuid() != 0:
        return [], os.getuid(), os.getgid()
    for user in _UNPRIVILEGED:
        try:
            entry = pwd.getpwnam(user)
        except KeyError:
            continue
        if shutil.which("runuser"):
            return ["runuser", "-u", user, "--"], entry.pw_uid, entry.pw_gid
        if shutil.which("setpriv"):
            return (
                [
                    "setpriv",
                    f"--reuid={entry.pw_uid}",
                    f"--regid={entry.pw_gid}",
                    "--clear-groups",
                    "--",
                ],
                entry.pw_uid,
                entry.pw_gid,
            )
    raise Unavailable(
        "PostgreSQL refuses to run as root: the tests need a 'postgres' or 'nobody' user "
        "and runuser or setpriv to run it (or run the tests as an unprivileged user)"
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@final
class PostgresServer:
    """One throw-away cluster; `start`/`stop` may be called again (to play an outage).

    ``template`` is the data directory of a cluster that is not running, copied instead
    of running ``initdb`` again (the private servers of a session share one).
    """

    def __init__(self, template: Path | None = None) -> None:
        self.bindir = find_bindir()
        self._prefix, self._uid, self._gid = _run_as()
        self.root = Path(tempfile.mkdtemp(prefix="scheduler-pg-"))
        self.data = self.root / "data"
        self.sockets = self.root / "sockets"
        self.log = self.root / "postgres.log"
        self.port = 0
        self.running = False
        try:
            self.sockets.mkdir()
            if self._prefix:
                for path in (self.root, self.sockets):
                    os.chown(path, self._uid, self._gid)
            if template is None:
                self._tool(
                    "initdb",
                    "-D",
                    str(self.data),
                    "-U",
                    "postgres",
                    "--auth=trust",
                    "--encoding=UTF8",
                    "--no-sync",
                )
            else:
                shutil.copytree(template, self.data, symlinks=True)
                if self._prefix:
                    for path in (self.data, *self.data.rglob("*")):
                        os.chown(path, self._uid, self._gid, follow_symlinks=False)
        except BaseException:
            shutil.rmtree(self.root, ignore_errors=True)
            raise

    def _tool(self, tool: str, *args: str, timeout: float = 120) -> None:
        command = [*self._prefix, str(self.bindir / tool), *args]
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)
        if done.returncode != 0:
            log = self.log.read_text(errors="replace")[-3000:] if self.log.exists() else ""
            raise RuntimeError(
                f"{tool} failed ({done.returncode}): {done.stderr.strip()}\n{log}".rstrip()
            )

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def start(self) -> None:
        """Start on a free port (the same port again after a `stop`)."""
        for attempt in range(3):
            port = self.port or free_port()
            options = f"-p {port} -k {self.sockets} -c listen_addresses=127.0.0.1 {FAST_SETTINGS}"
            try:
                self._tool(
                    "pg_ctl",
                    "start",
                    "-w",
                    "-t",
                    "60",
                    "-D",
                    str(self.data),
                    "-l",
                    str(self.log),
                    "-o",
                    options,
                )
            except RuntimeError:
                if attempt == 2 or self.port:
                    raise
                continue  # someone took the port between probing and binding
            self.port = port
            self.running = True
            return

    def stop(self, mode: str = "fast") -> None:
        if self.running:
            self._tool("pg_ctl", "stop", "-w", "-t", "60", "-m", mode, "-D", str(self.data))
            self.running = False

    def remove(self) -> None:
        try:
            self.stop("immediate")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)


@contextlib.contextmanager
def running_postgres(template: Path | None = None) -> Iterator[PostgresServer]:
    server = PostgresServer(template)
    try:
        server.start()
        yield server
    finally:
        server.remove()


def psql_like(url: str, statements: Sequence[str]) -> None:
    """Run statements in autocommit (CREATE/DROP DATABASE cannot run in a transaction)."""
    import psycopg  # noqa: PLC0415 (conftest imports this module without the extra)

    with psycopg.connect(url, autocommit=True, connect_timeout=10) as conn:
        for statement in statements:
            conn.execute(statement.encode())
