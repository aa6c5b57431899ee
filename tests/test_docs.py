"""Every ```python example in README.md and docs/*.md runs.

Each block is executed on its own, in a fresh namespace, so every example must be
self-contained. Use a ``text``, ``toml`` or ``console`` fence for snippets that are
not meant to run. A block is compiled with the Markdown file as its file name and
its real line numbers, so a traceback points into the document.
"""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import attrs
import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]

#: Info strings that mark a block as Python to run (``pycon`` sessions are not run).
PYTHON_INFO = frozenset({"python", "py", "python3"})
_OPEN = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})[ \t]*(?P<info>[^`\s]*)[^`]*$")


@attrs.frozen
class Example:
    path: Path
    #: 1-based line of the opening fence.
    line: int
    #: 1-based line of the block's first line of code.
    first_code_line: int
    source: str
    problem: str | None = None

    @property
    def id(self) -> str:
        return f"{self.path.relative_to(ROOT).as_posix()}:L{self.line}"


def python_examples(path: Path) -> list[Example]:
    """The ```python blocks of one Markdown file, in order."""
    lines = path.read_text(encoding="utf-8").splitlines()
    examples: list[Example] = []
    index = 0
    while index < len(lines):
        opening = _OPEN.match(lines[index])
        index += 1
        if opening is None:
            continue
        fence = opening["fence"]
        start = index
        closing = re.compile(rf"^[ \t]*{re.escape(fence[0])}{{{len(fence)},}}[ \t]*$")
        while index < len(lines) and not closing.match(lines[index]):
            index += 1
        body = lines[start:index]
        terminated = index < len(lines)
        index += 1  # past the closing fence
        if opening["info"].lower() not in PYTHON_INFO:
            continue
        examples.append(
            Example(
                path=path,
                line=start,
                first_code_line=start + 1,
                source=textwrap.dedent("\n".join(body)),
                problem=None if terminated else "the code fence is never closed",
            )
        )
    return examples


EXAMPLES = [example for path in DOCUMENTS if path.exists() for example in python_examples(path)]


def test_readme_exists() -> None:
    assert (ROOT / "README.md").exists()


def test_the_examples_were_found() -> None:
    # Guards against a parser change that silently finds nothing to run.
    assert any(example.path.parent.name == "docs" for example in EXAMPLES)


@pytest.mark.parametrize("example", EXAMPLES, ids=[example.id for example in EXAMPLES])
def test_example_runs(example: Example) -> None:
    if example.problem is not None:
        pytest.fail(f"{example.id}: {example.problem}")
    # Leading blank lines keep the line numbers of the Markdown file in tracebacks.
    padded = "\n" * (example.first_code_line - 1) + example.source
    # dont_inherit: the example must not pick up this module's ``from __future__`` imports.
    code = compile(padded, str(example.path), "exec", dont_inherit=True)
    namespace = {"__name__": f"docs_example_{example.path.stem}_L{example.line}"}
    exec(code, namespace)


def test_parser_finds_fenced_python_blocks(tmp_path: Path) -> None:
    document = tmp_path / "sample.md"
    document.write_text(
        "# Title\n"
        "```python\n"
        "x = 1\n"
        "```\n"
        "```toml\n"
        "a = 1\n"
        "```\n"
        "1. A list item:\n"
        "\n"
        "   ````py\n"
        "   y = 2\n"
        "   ```\n"
        "   ````\n"
        "```python\n"
        "never closed\n",
        encoding="utf-8",
    )
    examples = python_examples(document)
    assert [(e.line, e.source, e.problem) for e in examples] == [
        (2, "x = 1", None),
        (10, "y = 2\n```", None),
        (14, "never closed", "the code fence is never closed"),
    ]


def test_a_raising_example_fails(tmp_path: Path) -> None:
    document = tmp_path / "broken.md"
    document.write_text("```python\nassert 1 + 1 == 3, 'arithmetic'\n```\n", encoding="utf-8")
    [example] = python_examples(document)
    with pytest.raises(AssertionError, match="arithmetic") as info:
        test_example_runs(example)
    # The traceback points at the Markdown file and line.
    assert (info.traceback[-1].path, info.traceback[-1].lineno + 1) == (document, 2)
