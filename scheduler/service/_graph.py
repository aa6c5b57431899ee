"""A task's parent edges drawn as a small SVG, with no dependency but the standard library.

Layout: a peer's column is its depth (the longest chain of parents above it;
peers with no parent in the task are in column 0), rows in id order. Every id
and state is escaped: ids come from clients.
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape
from typing import Final

_COLUMN: Final = 260
_ROW: Final = 56
_BOX_W: Final = 220
_BOX_H: Final = 40
_MARGIN: Final = 20
_LABEL_CHARS: Final = 30


def depths(nodes: Sequence[str], edges: Sequence[tuple[str, str]]) -> dict[str, int]:
    """Each node's depth: 0 without a parent among ``nodes``, else 1 + its deepest parent's.

    ``edges`` are ``(parent, child)``. The scheduler never closes a cycle; should
    one appear anyway, its nodes stop at ``len(nodes)`` rather than loop.
    """
    known = set(nodes)
    parents: dict[str, list[str]] = {n: [] for n in nodes}
    for parent, child in edges:
        if parent in known and child in known:
            parents[child].append(parent)
    depth = dict.fromkeys(nodes, 0)
    for _ in range(len(nodes)):  # Bellman-Ford style: at most n rounds
        changed = False
        for child, above in parents.items():
            best = max((depth[p] + 1 for p in above), default=0)
            best = min(best, len(nodes))
            if best != depth[child]:
                depth[child], changed = best, True
        if not changed:
            break
    return depth


def _label(text: str) -> str:
    short = text if len(text) <= _LABEL_CHARS else text[: _LABEL_CHARS - 1] + "…"
    return escape(short, quote=True)


def task_graph_svg(
    task_id: str, peers: Sequence[tuple[str, str]], edges: Sequence[tuple[str, str]]
) -> str:
    """The SVG of one task: ``peers`` are ``(id, state)``, ``edges`` ``(parent, child)``."""
    ids = [peer_id for peer_id, _ in peers]
    depth = depths(ids, edges)
    rows: dict[int, int] = {}
    where: dict[str, tuple[int, int]] = {}
    for peer_id in ids:
        column = depth[peer_id]
        row = rows.get(column, 0)
        rows[column] = row + 1
        where[peer_id] = (_MARGIN + column * _COLUMN, _MARGIN + 30 + row * _ROW)
    width = _MARGIN * 2 + (max(depth.values(), default=0) + 1) * _COLUMN
    height = _MARGIN * 2 + 30 + max(rows.values(), default=0) * _ROW
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="monospace" font-size="12">',
        f"<title>task {escape(task_id, quote=True)}</title>",
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="6" '
        'markerHeight="6" orient="auto"><path d="M0,0 L10,5 L0,10 z"/></marker></defs>',
        f'<text x="{_MARGIN}" y="{_MARGIN + 12}">task {_label(task_id)}</text>',
    ]
    for parent, child in edges:
        if parent not in where or child not in where:
            continue
        (px, py), (cx, cy) = where[parent], where[child]
        out.append(
            f'<line class="edge" x1="{px + _BOX_W}" y1="{py + _BOX_H // 2}" x2="{cx}" '
            f'y2="{cy + _BOX_H // 2}" stroke="#555" marker-end="url(#arrow)">'
            f"<title>{escape(parent, quote=True)} → {escape(child, quote=True)}</title></line>"
        )
    for peer_id, state in peers:
        x, y = where[peer_id]
        out.append(
            f'<g class="peer"><title>{escape(peer_id, quote=True)} ({escape(state, quote=True)})'
            f'</title><rect x="{x}" y="{y}" width="{_BOX_W}" height="{_BOX_H}" rx="6" '
            'fill="#eef4ff" stroke="#336"/>'
            f'<text x="{x + 8}" y="{y + 16}">{_label(peer_id)}</text>'
            f'<text x="{x + 8}" y="{y + 32}" fill="#666">{_label(state)}</text></g>'
        )
    out.append("</svg>")
    return "\n".join(out) + "\n"
