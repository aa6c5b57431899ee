"""The scheduler stands on trio-websocket's and wsproto's public faces only.

No class of the project subclasses one of theirs, no module imports their private
modules or names, and no code reads or writes an attribute that is private to them
(a name starting with one underscore, defined on their modules or classes, or set on
``self`` anywhere in their source). ``self._x`` inside the project's own classes is
the project's own attribute: the subclass check makes sure of that.
"""

from __future__ import annotations

import ast
import collections
import importlib
import inspect
import pkgutil
from pathlib import Path
from types import ModuleType

import pytest

import scheduler

LIBRARIES = ("trio_websocket", "wsproto")
ROOT = Path(scheduler.__file__).resolve().parent


def library_modules() -> list[ModuleType]:
    modules = []
    for name in LIBRARIES:
        package = importlib.import_module(name)
        modules.append(package)
        for info in pkgutil.walk_packages(package.__path__, prefix=f"{name}."):
            modules.append(importlib.import_module(info.name))
    return modules


def _private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def private_names() -> frozenset[str]:
    """Every private name the two libraries define (module globals, class attributes and
    the ``self._x`` attributes their methods set)."""
    names: set[str] = set()
    for module in library_modules():
        names.update(name for name in vars(module) if _private(name))
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if cls.__module__.split(".")[0] in LIBRARIES:
                names.update(name for name in vars(cls) if _private(name))
        source = inspect.getsource(module)
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.Attribute) and _private(node.attr):
                names.add(node.attr)
    # What the standard library makes public under an underscore (a namedtuple's
    # ``_replace``, ``_fields``...) is no library's insides.
    return frozenset(names - set(dir(collections.namedtuple("Sample", "field"))))


def project_sources() -> list[Path]:
    return sorted(path for path in ROOT.rglob("*.py") if "mutants" not in path.parts)


def uses_of_private_names(path: Path, private: frozenset[str]) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            top, *rest = node.module.split(".")
            if top in LIBRARIES:
                if any(_private(part) for part in rest):
                    found.append(f"{path.name}:{node.lineno} imports {node.module}")
                found.extend(
                    f"{path.name}:{node.lineno} imports {alias.name}"
                    for alias in node.names
                    if _private(alias.name)
                )
        elif isinstance(node, ast.Attribute) and node.attr in private:
            owner = node.value
            if isinstance(owner, ast.Name) and owner.id in ("self", "cls"):
                continue  # the project's own attribute (no class of it subclasses theirs)
            found.append(f"{path.name}:{node.lineno} uses .{node.attr}")
    return found


def test_the_private_names_are_collected() -> None:
    private = private_names()
    # A few that the server once used: the check would have caught them.
    assert {"_wsproto", "_stream", "_close_reason", "_reader_task", "_proto"} <= private


def test_no_code_reads_or_writes_a_private_name_of_theirs() -> None:
    private = private_names()
    found = [use for path in project_sources() for use in uses_of_private_names(path, private)]
    assert found == []


def test_a_private_use_is_found() -> None:
    """The check itself: a module that reads one of their private attributes fails it."""
    sample = ROOT.parent / "tests" / "_private_use_sample.py"
    sample.write_text("def f(ws):\n    return ws._wsproto.state\n", encoding="utf-8")
    try:
        assert uses_of_private_names(sample, private_names()) == [
            "_private_use_sample.py:2 uses ._wsproto"
        ]
    finally:
        sample.unlink()


#: The project's modules (``__main__`` runs the command line when imported).
MODULES = sorted(
    info.name
    for info in pkgutil.walk_packages(scheduler.__path__, prefix="scheduler.")
    if not info.name.endswith("__main__")
)


@pytest.mark.parametrize("name", MODULES)
def test_no_class_subclasses_one_of_theirs(name: str) -> None:
    try:
        module = importlib.import_module(name)
    except ImportError as exc:  # an optional dependency (the cluster extra) is missing
        pytest.skip(str(exc))
    for _, cls in inspect.getmembers(module, inspect.isclass):
        if cls.__module__ != name:
            continue
        theirs = [base for base in cls.__mro__ if base.__module__.split(".")[0] in LIBRARIES]
        assert theirs == [], f"{cls.__qualname__} subclasses {theirs}"
