"""The README's layout table and the package tree stay in step.

Every package and module directly under ``scheduler/`` has a row, and every row names
a path that exists (``__init__.py``, ``__main__.py`` and ``py.typed`` belong to the
package itself).
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OWN = {"__init__.py", "__main__.py", "py.typed", "__pycache__"}


def table_paths() -> set[str]:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Layout", 1)[1].split("\n## ", 1)[0]
    return set(re.findall(r"^\| `([^`]+)` \|", section, re.MULTILINE))


def tree_paths() -> set[str]:
    package = ROOT / "scheduler"
    return {
        f"scheduler/{entry.name}/" if entry.is_dir() else f"scheduler/{entry.name}"
        for entry in package.iterdir()
        if entry.name not in OWN and not entry.name.startswith(".")
    }


def test_every_package_and_module_has_a_row() -> None:
    assert tree_paths() - table_paths() == set()


def test_every_row_names_a_path_that_exists() -> None:
    missing = {path for path in table_paths() if not (ROOT / path).exists()}
    assert missing == set()
