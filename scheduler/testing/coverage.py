"""``python -m scheduler.testing.coverage TARGET ...``: what a kit state machine reaches.

Each ``TARGET`` is ``path/to/test_file.py:MachineClass`` (or ``package.module:MachineClass``).
The machine runs over the examples of the Hypothesis profile in ``$HYPOTHESIS_PROFILE``
(default ``dev``), as :func:`scheduler.testing.measure_coverage` does, and one block per
machine says in what share of the runs it handed out parents, pushed, saw failed-parent
reports and evicted, and how many of each a run had on average. It exits non-zero when
a machine fails :meth:`scheduler.testing.Coverage.check` (``--no-pushes`` for machines
whose policies disable pushes).
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ._coverage import measure_coverage as _measure_coverage
from ._decisions import InvariantError as _InvariantError
from ._profiles import load_profile_from_env as _load_profile_from_env

__all__ = ["main"]


def _load(target: str) -> Any:
    where, _, name = target.rpartition(":")
    if not where or not name:
        raise SystemExit(f"coverage: {target}: expected FILE.py:CLASS or MODULE:CLASS")
    if where.endswith(".py"):
        path = Path(where).resolve()
        spec = importlib.util.spec_from_file_location(path.stem, path)
        if spec is None or spec.loader is None:
            raise SystemExit(f"coverage: {where}: not a Python file")
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module
        spec.loader.exec_module(module)
    else:
        module = importlib.import_module(where)
    try:
        return getattr(module, name)
    except AttributeError:
        raise SystemExit(f"coverage: {where} has no {name}") from None


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m scheduler.testing.coverage", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("targets", nargs="+", metavar="FILE.py:CLASS")
    parser.add_argument(
        "--no-pushes", action="store_true", help="the policies disable pushes: none may happen"
    )
    args = parser.parse_args(argv)
    sys.path.insert(0, str(Path.cwd()))  # ``tests.x`` modules of the project in the cwd
    profile = _load_profile_from_env()
    failed = 0
    for target in args.targets:
        started = time.monotonic()
        coverage = _measure_coverage(_load(target))
        print(coverage.summary())
        print(f"  (profile {profile}, {time.monotonic() - started:.1f} s)")
        try:
            coverage.check(pushes=not args.no_pushes)
        except _InvariantError as exc:
            print(f"  FAIL: {str(exc).splitlines()[0]}")
            failed += 1
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
