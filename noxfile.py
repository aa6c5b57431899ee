"""Developer sessions: ``nox -s tests lint typecheck docs bench bench-compare mutate chaos``."""

from __future__ import annotations

import os
from pathlib import Path

import nox

nox.options.sessions = ["tests", "lint", "typecheck", "docs"]
nox.options.reuse_existing_virtualenvs = True

ROOT = Path(__file__).parent
PLUGINS = sorted(str(p) for p in (ROOT / "plugins").iterdir() if (p / "pyproject.toml").exists())


def install_project(session: nox.Session, *extras: str) -> None:
    extra = f"[{','.join(extras)}]" if extras else ""
    session.install("-e", f".{extra}", *[arg for p in PLUGINS for arg in ("-e", p)])


@nox.session
def tests(session: nox.Session) -> None:
    """Install the core and every plugin distribution, then run pytest."""
    # postgres: PostgreSQL binaries for the registry tests where the machine has none.
    install_project(session, "testing", "plot", "cluster", "postgres", "mutation")
    session.run("pytest", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    session.install("ruff>=0.5")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session
def typecheck(session: nox.Session) -> None:
    # Every optional extra: the kit's mutation runner and the simulator's plot are typed too.
    install_project(session, "testing", "plot", "mutation", "cluster")
    session.install("mypy>=1.10")
    session.run("mypy", "--strict", "scheduler", "tools/mutate.py", *[f"{p}/src" for p in PLUGINS])


@nox.session
def docs(session: nox.Session) -> None:
    """Check the docs: every ```python example runs, every relative link and anchor resolves."""
    install_project(session, "testing")
    session.run(
        "pytest", "-p", "no:cacheprovider", "tests/test_docs.py", "tests/test_docs_links.py",
        *session.posargs,
    )  # fmt: skip


@nox.session
def bench(session: nox.Session) -> None:
    """Print the benchmark numbers recorded in docs/benchmarks.md (not a timed test).

    Positional arguments go to bench_gc.py; bench_sessions.py runs at full size.
    """
    install_project(session, "testing")
    session.run("python", "benchmarks/bench_gc.py", *session.posargs)
    session.run("python", "benchmarks/bench_sessions.py")
    session.run("python", "benchmarks/bench_decision.py")
    session.run("python", "benchmarks/bench_loop_lag.py")


@nox.session(name="bench-compare")
def bench_compare(session: nox.Session) -> None:
    """bittorrent-tracker, the bare floor server and `scheduler serve` under the same load.

    Needs node and npm on PATH (the tracker is npm-installed into a temporary directory).
    Arguments go to benchmarks/bench_compare.py: ``nox -s bench-compare -- --plot out.png``.
    """
    install_project(session, "plot")
    session.run("python", "benchmarks/bench_compare.py", *session.posargs)


@nox.session
def chaos(session: nox.Session) -> None:
    """The chaos suite at full scale (tests/chaos; about 15 minutes, ten of them real-time jitter).

    Real ``scheduler serve`` and ``scheduler peer --hosts N`` processes on loopback, a
    fault-injecting proxy; each scenario prints its figures (docs/benchmarks.md records
    them). ``nox -s tests`` runs the same scenarios at ``CHAOS_SCALE=0.1``; pass
    ``CHAOS_SCALE`` to choose another scale, and pytest arguments after ``--``.
    """
    install_project(session, "testing")
    scale = os.environ.get("CHAOS_SCALE", "1")
    session.run(
        "pytest", "-p", "no:cacheprovider", "-m", "chaos", "tests/chaos", *session.posargs,
        env={"CHAOS_SCALE": scale},
    )  # fmt: skip


@nox.session
def mutate(session: nox.Session) -> None:
    """Mutation testing; fails when over 5 % of any module's mutants survive.

    ``nox -s mutate`` covers the core, the codec and the built-in policies;
    ``nox -s mutate -- PATH ...`` only the given modules. See docs/testing.md.
    """
    install_project(session, "mutation")
    session.run("python", "tools/mutate.py", *session.posargs)


@nox.session(name="mutate-plugins")
def mutate_plugins(session: nox.Session) -> None:
    """Mutation testing of each distribution under plugins/, with the kit's runner.

    Each plugin configures it in its own pyproject.toml ([tool.scheduler-mutate]),
    exactly as an outside plugin author would.
    """
    install_project(session, "mutation")
    for plugin in PLUGINS:
        session.run("python", "-m", "scheduler.testing.mutate", "--project", plugin)
