"""The documents' relative links resolve, and the documents speak of the product only.

Every relative link and image in README.md, docs/*.md and plugins/*/README.md must name
a file or directory of the checkout, and its ``#anchor`` a heading of the target (or of
the same document), slugged as GitHub slugs them: lower case, every character that is
not a letter, a mark, a digit, a connector (``_``), a space or a hyphen dropped, spaces
made hyphens, and ``-1``, ``-2``... added to repeated slugs. Links inside code (fenced
blocks and inline spans) are not links.

The same documents must not read as a development diary: no session numbers, no issue
numbers, no "this session", no path of the machine the project is developed on (history
belongs in CHANGELOG.md and git). An upstream reference names its project
(``Dragonfly's issue #3566``, ``owner/repo#184``).
"""

from __future__ import annotations

import re
import unicodedata
from pathlib import Path
from urllib.parse import unquote

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCUMENTS = sorted(
    [ROOT / "README.md", *(ROOT / "docs").glob("*.md"), *(ROOT / "plugins").glob("*/README.md")]
)

_FENCE = re.compile(r"^[ \t]*(`{3,}|~{3,})")
_HEADING = re.compile(r"^ {0,3}(#{1,6})[ \t]+(.*?)[ \t]*#*[ \t]*$")
_CODE_SPAN = re.compile(r"(`+)(.+?)\1")
#: ``[text](target)`` and ``![alt](target)``; the target up to a space (a title) or ``)``.
_INLINE_LINK = re.compile(
    r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]*)>?(?:\s+\"[^\"]*\")?\s*\)"
)
_REFERENCE = re.compile(r"^ {0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s.*)?$")
_HTML_ANCHOR = re.compile(r"<a\s+(?:name|id)=\"([^\"]+)\"")
_SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")

#: Phrases of a development diary, not of a product's documentation.
DIARY = re.compile(
    r"(?<![-\w])session \d+\b"
    r"|\bthis session\b"
    r"|\b(?:first|second|third|fourth|fifth|sixth|seventh|eighth|ninth|tenth)"
    r" (?:development |work )?session's\b"
    r"|\b(?:fourth|fifth|sixth|seventh|eighth|ninth|tenth) session\b"
    r"|\bissues? \d+"
    r"|\b(?:this|the) issue\b(?!s)"
    r"|/work/(?:shared|main|wt-)",  # a path of the machine the project is developed on
    re.IGNORECASE,
)


def slug(heading: str) -> str:
    """GitHub's anchor for a heading's Markdown text."""
    text = _CODE_SPAN.sub(lambda m: m[2], heading)
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", text)  # a link: its text
    text = re.sub(r"<[^>]+>", "", text)  # inline HTML
    text = re.sub(r"(\*{1,3})(.+?)\1", r"\2", text)  # emphasis with asterisks
    kept = (
        c
        for c in text.strip().lower()
        if c in " -" or unicodedata.category(c)[0] in "LMN" or unicodedata.category(c) == "Pc"
    )
    return "".join(kept).replace(" ", "-")


def prose_lines(text: str) -> list[tuple[int, str]]:
    """(1-based line, text) of the lines outside fenced code blocks."""
    lines: list[tuple[int, str]] = []
    fence: str | None = None
    for number, line in enumerate(text.splitlines(), start=1):
        marker = _FENCE.match(line)
        if fence is None and marker:
            fence = marker[1]
        elif fence is not None:
            if marker and marker[1][0] == fence[0] and len(marker[1]) >= len(fence):
                fence = None  # a closing fence: the same character, at least as long
        else:
            lines.append((number, line))
    return lines


def anchors(path: Path) -> set[str]:
    """Every anchor a link may name in one Markdown file."""
    found: set[str] = set()
    counts: dict[str, int] = {}
    for _, line in prose_lines(path.read_text(encoding="utf-8")):
        found.update(_HTML_ANCHOR.findall(line))
        heading = _HEADING.match(line)
        if heading is None:
            continue
        base = slug(heading[2])
        seen = counts.get(base, 0)
        counts[base] = seen + 1
        found.add(base if seen == 0 else f"{base}-{seen}")
    return found


def broken_links(path: Path) -> list[str]:
    """One line per relative link of ``path`` that names no file or no anchor."""
    problems: list[str] = []
    for number, line in prose_lines(path.read_text(encoding="utf-8")):
        bare = _CODE_SPAN.sub("", line)
        targets = [m[1] for m in _INLINE_LINK.finditer(bare)]
        reference = _REFERENCE.match(bare)
        if reference:
            targets.append(reference[1])
        for target in targets:
            if not target or _SCHEME.match(target) or target.startswith("//"):
                continue
            file_part, _, anchor = target.partition("#")
            where = f"{path.relative_to(ROOT).as_posix()}:{number}: {target}"
            resolved = (path.parent / unquote(file_part)).resolve() if file_part else path
            if not resolved.exists():
                problems.append(f"{where}: no file {file_part}")
            elif anchor and resolved.suffix == ".md" and unquote(anchor) not in anchors(resolved):
                problems.append(f"{where}: no heading #{anchor} in {resolved.name}")
    return problems


def diary_lines(path: Path) -> list[str]:
    """One line per diary phrase of ``path``."""
    return [
        f"{path.relative_to(ROOT).as_posix()}:{number}: {match[0]!r} in {line.strip()!r}"
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1)
        for match in DIARY.finditer(line)
    ]


def _id(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def test_the_documents_were_found() -> None:
    names = {_id(p) for p in DOCUMENTS}
    assert {"README.md", "docs/operations.md", "docs/benchmarks.md"} <= names
    assert any(name.startswith("plugins/") for name in names)


@pytest.mark.parametrize("path", DOCUMENTS, ids=_id)
def test_relative_links_and_anchors_resolve(path: Path) -> None:
    assert broken_links(path) == []


@pytest.mark.parametrize("path", DOCUMENTS, ids=_id)
def test_no_development_diary(path: Path) -> None:
    assert diary_lines(path) == []


@pytest.mark.parametrize(
    ("heading", "expected"),
    [
        ("Running under systemd", "running-under-systemd"),
        ("Churn simulator (`scheduler simulate`)", "churn-simulator-scheduler-simulate"),
        ("Liveness: detection time and ping CPU", "liveness-detection-time-and-ping-cpu"),
        ("`server.inbox_size` and **bold** text", "serverinbox_size-and-bold-text"),
        ("See [the API](api.md) — now", "see-the-api--now"),
        ("Größe 2.5 s + 2.9 s", "größe-25-s--29-s"),
    ],
)
def test_slugs_follow_github(heading: str, expected: str) -> None:
    assert slug(heading) == expected


def test_a_broken_link_or_anchor_is_reported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(f"{__name__}.ROOT", tmp_path)
    (tmp_path / "other.md").write_text("# Other\n\n## Known limits\n\n## Known limits\n")
    doc = tmp_path / "doc.md"
    doc.write_text(
        "# Doc\n\n## Running under systemd\n\n"
        "[ok](#running-under-systemd) [ok](other.md#known-limits-1) [ok](other.md)\n"
        "[bad](#running-it-as-a-service) [bad](missing.md) [bad](other.md#nowhere)\n"
        "![bad image](gone.png) [web](https://example.com/#x) `[code](nowhere.md)`\n"
        "```text\n[in a block](nowhere.md)\n```\n"
        "[ref]: missing-too.md\n"
    )
    assert broken_links(doc) == [
        "doc.md:6: #running-it-as-a-service: no heading #running-it-as-a-service in doc.md",
        "doc.md:6: missing.md: no file missing.md",
        "doc.md:6: other.md#nowhere: no heading #nowhere in other.md",
        "doc.md:7: gone.png: no file gone.png",
        "doc.md:11: missing-too.md: no file missing-too.md",
    ]


def test_diary_phrases_are_reported_and_product_phrases_are_not(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(f"{__name__}.ROOT", tmp_path)
    doc = tmp_path / "doc.md"
    doc.write_text(
        "Measured in the fourth session.\n"
        "As issue 10 asked.\n"
        "Before this session's work.\n"
        "The issue gives no rate.\n"
        "Session 3 found it.\n"
        "Dragonfly's issue #3566 and python-trio/trio-websocket#184 are upstream.\n"
        "`scheduler token issue` issues a token; a second session takes over the host.\n"
        "The session owns its host; issues of the past are in CHANGELOG.md.\n"
        "Run python3 /work/shared/tools/import_cycles.py scheduler.\n"
    )
    assert [line.split(":")[1] for line in diary_lines(doc)] == ["1", "2", "3", "4", "5", "9"]
