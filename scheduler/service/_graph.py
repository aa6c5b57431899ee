"""A task's parent edges drawn as a small SVG, with no dependency but the standard library.

Layout: a peer's column is its depth (the longest chain of parents above it
among the peers drawn; a peer with none of its parents drawn is in column 0),
rows in id order. Depths come from one topological pass (Kahn's algorithm), so
the layout costs O(peers + edges). The functions here take plain data (ids,
states, edges): the admin API copies them out of the live state first and may
run this in a worker thread.

Every id and state is client text: it is escaped for XML and its unsafe
characters (:mod:`._text`: controls, bidi controls, noncharacters) are written
as visible escapes, so the document always parses as XML and reads in order.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from html import escape as xml_escape
from typing import Final

from ._text import escape as escape_unsafe

_COLUMN: Final = 260
_ROW: Final = 56
_BOX_W: Final = 220
_BOX_H: Final = 40
_MARGIN: Final = 20
_HEADER: Final = 48
_LABEL_CHARS: Final = 30


def depths(nodes: Sequence[str], edges: Sequence[tuple[str, str]]) -> dict[str, int]:
    """Each node's depth: 0 without a parent among ``nodes``, else 1 + its deepest parent's.

    ``edges`` are ``(parent, child)``; edges to or from a node not in ``nodes``
    are ignored. One pass over the nodes and edges in topological order. The
    scheduler never closes a cycle; should one appear anyway, its nodes (and
    those below them) go one column past the deepest other node.
    """
    children: dict[str, list[str]] = {n: [] for n in nodes}
    waiting = dict.fromkeys(nodes, 0)  # parents not yet placed, per node
    for parent, child in edges:
        if parent in children and child in waiting:
            children[parent].append(child)
            waiting[child] += 1
    depth = dict.fromkeys(nodes, 0)
    ready = deque(n for n, count in waiting.items() if count == 0)
    while ready:
        node = ready.popleft()
        below = depth[node] + 1
        for child in children[node]:
            depth[child] = max(depth[child], below)
            waiting[child] -= 1
            if waiting[child] == 0:
                ready.append(child)
    stuck = [n for n, count in waiting.items() if count > 0]
    if stuck:
        beyond = max((depth[n] for n, count in waiting.items() if count == 0), default=-1) + 1
        for node in stuck:
            depth[node] = beyond
    return depth


def _text(text: str) -> str:
    return xml_escape(escape_unsafe(text), quote=True)


def _label(text: str) -> str:
    shown = escape_unsafe(text)
    short = shown if len(shown) <= _LABEL_CHARS else shown[: _LABEL_CHARS - 1] + "…"
    return xml_escape(short, quote=True)


def task_graph_svg(
    task_id: str,
    peers: Sequence[tuple[str, str]],
    edges: Sequence[tuple[str, str]],
    *,
    note: str = "",
) -> str:
    """The SVG of one task: ``peers`` are ``(id, state)``, ``edges`` ``(parent, child)``.

    Only edges between two of ``peers`` are drawn. ``note`` is shown under the
    title (the admin API says there how the view was cut).
    """
    ids = [peer_id for peer_id, _ in peers]
    depth = depths(ids, edges)
    rows: dict[int, int] = {}
    where: dict[str, tuple[int, int]] = {}
    for peer_id in ids:
        column = depth[peer_id]
        row = rows.get(column, 0)
        rows[column] = row + 1
        where[peer_id] = (_MARGIN + column * _COLUMN, _MARGIN + _HEADER + row * _ROW)
    width = _MARGIN * 2 + (max(depth.values(), default=0) + 1) * _COLUMN
    height = _MARGIN * 2 + _HEADER + max(rows.values(), default=0) * _ROW
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="monospace" font-size="12">',
        f"<title>task {_text(task_id)}</title>",
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="6" '
        'markerHeight="6" orient="auto"><path d="M0,0 L10,5 L0,10 z"/></marker></defs>',
        f'<text x="{_MARGIN}" y="{_MARGIN + 12}">task {_label(task_id)}</text>',
    ]
    if note:
        out.append(
            f'<text class="note" x="{_MARGIN}" y="{_MARGIN + 30}" fill="#a40">{_text(note)}</text>'
        )
    for parent, child in edges:
        if parent not in where or child not in where:
            continue
        (px, py), (cx, cy) = where[parent], where[child]
        out.append(
            f'<line class="edge" x1="{px + _BOX_W}" y1="{py + _BOX_H // 2}" x2="{cx}" '
            f'y2="{cy + _BOX_H // 2}" stroke="#555" marker-end="url(#arrow)">'
            f"<title>{_text(parent)} → {_text(child)}</title></line>"
        )
    for peer_id, state in peers:
        x, y = where[peer_id]
        out.append(
            f'<g class="peer"><title>{_text(peer_id)} ({_text(state)})'
            f'</title><rect x="{x}" y="{y}" width="{_BOX_W}" height="{_BOX_H}" rx="6" '
            'fill="#eef4ff" stroke="#336"/>'
            f'<text x="{x + 8}" y="{y + 16}">{_label(peer_id)}</text>'
            f'<text x="{x + 8}" y="{y + 32}" fill="#666">{_label(state)}</text></g>'
        )
    out.append("</svg>")
    return "\n".join(out) + "\n"
