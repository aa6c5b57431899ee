"""``python -m scheduler.loadgen worker SPEC_JSON``: the worker process (internal).

Its own entry point, so that ``runpy`` never runs a module the package already imported.
"""

from __future__ import annotations

import sys

from ._worker import main

if __name__ == "__main__":
    if sys.argv[1:2] != ["worker"]:
        print("usage: python -m scheduler.loadgen worker SPEC_JSON (use `scheduler loadgen`)")
        raise SystemExit(2)
    raise SystemExit(main(sys.argv[2:]))
