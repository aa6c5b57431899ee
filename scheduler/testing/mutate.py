"""``python -m scheduler.testing.mutate [--project DIR] [PATH ...]``: mutation testing.

The runner and its configuration (``[tool.scheduler-mutate]`` in the project's
``pyproject.toml``) are described in :mod:`scheduler.testing._mutate` and in
docs/testing.md. It runs in a fresh interpreter, because this process has already
imported the scheduler and Hypothesis, and mutmut must import the mutated copies.
Requires the ``mutation`` extra (mutmut).
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

__all__ = ["main"]

_RUNNER = Path(__file__).with_name("_mutate.py")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the mutation runner on ``argv`` (default: this process's arguments)."""
    args = list(sys.argv[1:] if argv is None else argv)
    return subprocess.call([sys.executable, str(_RUNNER), *args])


if __name__ == "__main__":
    sys.exit(main())
