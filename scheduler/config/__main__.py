"""``python -m scheduler.config --markdown``: the docs' settings tables, from the declaration.

``--markdown`` prints every ``serve`` section's table; ``--update FILE``
rewrites the tables between ``<!-- settings:NAME -->`` and
``<!-- /settings:NAME -->`` markers in ``FILE`` (docs/operations.md), which a
test keeps equal to the declaration.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Sequence
from pathlib import Path

from . import _serve as serve

_BLOCK = re.compile(
    r"(<!-- settings:(?P<name>[\w.]+) -->\n)(?P<body>.*?)(<!-- /settings:(?P=name) -->)", re.S
)


def tables() -> dict[str, str]:
    """``{section name: markdown table}`` for every ``serve`` section."""
    return {section.name: serve.markdown_table(section) for section in serve.SECTIONS}


def update(text: str) -> str:
    """``text`` with every marked block replaced by the generated table."""
    generated = tables()

    def replace(match: re.Match[str]) -> str:
        return f"{match[1]}{generated[match['name']]}\n{match[4]}"

    return _BLOCK.sub(replace, text)


def blocks(text: str) -> dict[str, str]:
    """The marked blocks of ``text``: ``{section name: table as written}``."""
    return {match["name"]: match["body"].rstrip("\n") for match in _BLOCK.finditer(text)}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m scheduler.config", description=__doc__)
    parser.add_argument("--markdown", action="store_true", help="print every table")
    parser.add_argument("--update", metavar="FILE", type=Path, help="rewrite FILE's tables")
    args = parser.parse_args(argv)
    if args.update:
        args.update.write_text(update(args.update.read_text(encoding="utf-8")), encoding="utf-8")
    if args.markdown or not args.update:
        for name, table in tables().items():
            print(f"### `[{name}]`\n\n{table}\n")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
