"""``scheduler registry migrate`` and ``scheduler registry check [--fix]``."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from ._check import exit_status
from ._model import RegistryError

_ENV = "SCHEDULER_CLUSTER_REGISTRY"
_NEEDS_EXTRA = "the registry needs psycopg 3: pip install 'trio-p2p-scheduler[cluster]'"


def add_registry_parser(commands: Any) -> None:
    """Add ``registry migrate|check`` to the ``scheduler`` command's subparsers."""
    registry = commands.add_parser(
        "registry",
        help="migrate or check the cluster registry (PostgreSQL)",
        description="Maintain the PostgreSQL registry of `scheduler serve --registry`. "
        "See docs/operations.md, 'Running a cluster'.",
    )
    actions = registry.add_subparsers(dest="registry_command", required=True, metavar="ACTION")
    migrate = actions.add_parser("migrate", help="apply the pending schema migrations")
    check = actions.add_parser(
        "check", help="report inconsistencies (exit 1 if any but notes remain)"
    )
    check.add_argument("--fix", action="store_true", help="repair what can be repaired")
    for action in (migrate, check):
        action.add_argument(
            "--registry",
            default=os.environ.get(_ENV),
            metavar="URL",
            help=f"postgresql://USER@HOST/DB (default: ${_ENV})",
        )
        action.add_argument(
            "--timeout",
            type=float,
            default=5.0,
            metavar="SECONDS",
            help="bound on connecting and on each statement (default 5)",
        )


def cmd_registry(args: argparse.Namespace) -> int:
    if not args.registry:
        print(f"scheduler: error: --registry URL (or ${_ENV}) is required", file=sys.stderr)
        return 2
    try:
        from ._store import RegistryStore  # noqa: PLC0415 (psycopg is optional)
    except ImportError:
        print(f"scheduler: error: {_NEEDS_EXTRA}", file=sys.stderr)
        return 2
    try:
        with RegistryStore(args.registry, timeout=args.timeout, max_connections=1) as store:
            if args.registry_command == "migrate":
                report = store.migrate()
                applied = ", ".join(map(str, report.applied)) or "none (up to date)"
                print(f"registry: migrations applied: {applied}")
                if report.plan_before.unknown:
                    print(f"registry: note: newer migrations present: {report.plan_before.unknown}")
                return 0
            result = store.check(fix=args.fix)
    except RegistryError as exc:
        print(f"scheduler: error: {exc}", file=sys.stderr)
        return 1
    for finding in result.before:
        print(finding.render())
    remaining = result.before if result.after is None else result.after
    if result.after is not None:
        fixed = len(result.before) - len(result.after)
        print(f"registry: fixed {fixed} of {len(result.before)} findings")
        for finding in result.after:
            print(f"remaining {finding.render()}")
    if not remaining:
        print("registry: consistent")
    return exit_status(remaining)
