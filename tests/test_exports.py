"""The public names of every public package, checked mechanically (as trio's test_exports does).

* every name in ``__all__`` exists;
* every public attribute of the package's own that is not a submodule is in ``__all__``
  (nothing leaks);
* ``__all__`` equals the pin in ``tests/public_api.json``, so a change to the public
  surface is a deliberate, reviewed change of that file. After an intended change,
  rewrite the pin with ``python tests/test_exports.py --update`` and review the diff.
"""

from __future__ import annotations

import importlib
import json
import sys
import types
from pathlib import Path

import pytest

PIN = Path(__file__).with_name("public_api.json")

#: Every public package and module of the distribution.
PUBLIC = (
    "scheduler",
    "scheduler.client",
    "scheduler.config",
    "scheduler.core",
    "scheduler.hookspecs",
    "scheduler.jobs",
    "scheduler.loadgen",
    "scheduler.policies",
    "scheduler.protocol",
    "scheduler.registry",
    "scheduler.service",
    "scheduler.session",
    "scheduler.settings",
    "scheduler.simulate",
    "scheduler.testing",
    "scheduler.testing.coverage",
    "scheduler.testing.mutate",
    "scheduler.transport",
)


def exported(module_name: str) -> list[str]:
    return sorted(importlib.import_module(module_name).__all__)


def test_every_public_module_is_pinned() -> None:
    assert sorted(json.loads(PIN.read_text())) == sorted(PUBLIC)


@pytest.mark.parametrize("module_name", PUBLIC)
def test_exports_match_the_pin(module_name: str) -> None:
    pinned = json.loads(PIN.read_text())[module_name]
    assert exported(module_name) == pinned, (
        f"{module_name}.__all__ changed; if intended, run `python tests/test_exports.py --update`"
    )


@pytest.mark.parametrize("module_name", PUBLIC)
def test_all_names_exist_and_nothing_else_is_public(module_name: str) -> None:
    module = importlib.import_module(module_name)
    names = set(module.__all__)
    missing = [name for name in names if not hasattr(module, name)]
    assert missing == []
    # Classes and functions of the package's own, and constants; imported helpers
    # (typing, pluggy, ...) and submodules are not part of the surface.
    leaked = [
        name
        for name, value in vars(module).items()
        if not name.startswith("_")
        and name not in names
        and name != "TYPE_CHECKING"
        and not isinstance(value, types.ModuleType)
        and (
            str(getattr(value, "__module__", "")).startswith("scheduler")
            if isinstance(value, type | types.FunctionType)
            else name.isupper()
        )
    ]
    assert leaked == [], f"public in {module_name} but not in __all__: {leaked}"


if __name__ == "__main__":  # pragma: no cover - the pin's regeneration
    if sys.argv[1:] != ["--update"]:
        raise SystemExit("usage: python tests/test_exports.py --update")
    PIN.write_text(json.dumps({name: exported(name) for name in PUBLIC}, indent=2) + "\n")
    print(f"wrote {PIN}")
