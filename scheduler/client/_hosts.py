"""Read the scheduler's hosts, peers and tasks from its admin HTTP API; show them as tables.

Synchronous on purpose: it serves a one-shot command line call.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final, Literal, final

import attrs
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.tree import Tree

from ._credentials import client_ssl_context
from ._errors import SchedulerClientError

__all__ = [
    "HostsFetchError",
    "fetch_hosts",
    "fetch_peers",
    "fetch_task",
    "fetch_tasks",
    "format_age",
    "print_hosts",
    "print_table",
    "quote_id",
    "render_hosts_table",
    "render_peers_table",
    "render_task_tree",
    "render_tasks_table",
]

_STATE_STYLES: Mapping[str, str] = {"connected": "green", "disconnected": "yellow", "left": "dim"}


@final
class HostsFetchError(SchedulerClientError):
    """The admin API could not be reached, failed, or answered something else than records.

    ``status`` is the HTTP status of an error answer (None: no answer, or not JSON).
    """

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


def fetch_hosts(
    admin_url: str,
    *,
    state: str | None = None,
    timeout: float = 5.0,
    token: str | None = None,
    ca_file: str | None = None,
) -> list[dict[str, Any]]:
    """``GET {admin_url}/api/v1/hosts[?state=...]``: the scheduler's hosts, as JSON objects.

    Each host has at least ``id``, ``hostname``, ``ip``, ``port``, ``state`` and
    ``last_announce_at`` (unix seconds). Every host, read a page at a time (the
    server sends at most 1,000 per answer). Raises :class:`HostsFetchError` on a
    connection failure, an HTTP error status, or a body that is not a JSON array
    of objects. ``token`` is sent as ``Authorization: Bearer`` (an ``admin:read``
    token, for a scheduler with authentication on); ``ca_file`` is the CA to
    trust for an ``https://`` URL (default: the system's).
    """
    return _fetch_list(admin_url, "hosts", {"state": state}, timeout, token=token, ca_file=ca_file)


def fetch_peers(
    admin_url: str,
    *,
    task: str | None = None,
    limit: int | None = None,
    timeout: float = 5.0,
    token: str | None = None,
    ca_file: str | None = None,
) -> list[dict[str, Any]]:
    """``GET {admin_url}/api/v1/peers[?task=...&limit=...]``: peers, as JSON objects.

    Each peer has ``id``, ``task_id``, ``host_id``, ``state``, ``finished_pieces``,
    ``parents`` (the parents the scheduler handed it, best first) and
    ``updated_at`` (unix seconds). At most ``limit`` peers, in id order, read a
    page at a time; without ``limit``, the server's first page (1,000 peers).
    Errors as for :func:`fetch_hosts`.
    """
    query = {"task": task, "limit": limit}
    return _fetch_list(
        admin_url, "peers", query, timeout, token=token, ca_file=ca_file, most=limit or 0
    )


def fetch_tasks(
    admin_url: str, *, timeout: float = 5.0, token: str | None = None, ca_file: str | None = None
) -> list[dict[str, Any]]:
    """``GET {admin_url}/api/v1/tasks``: tasks, as JSON objects (``id``, ``url``, ``state``, ...).

    Every task, read a page at a time. Errors as for :func:`fetch_hosts`.
    """
    return _fetch_list(admin_url, "tasks", {}, timeout, token=token, ca_file=ca_file)


def fetch_task(
    admin_url: str,
    task_id: str,
    *,
    timeout: float = 5.0,
    token: str | None = None,
    ca_file: str | None = None,
) -> dict[str, Any]:
    """``GET {admin_url}/api/v1/tasks/{id}``: the task, its ``peers`` and parent ``edges``.

    Every peer of the task, read a page at a time (the answer's ``next``); the
    task's fields are those of the first page. ``task_id`` may hold any
    character: it is percent-encoded as one path segment. Errors as for
    :func:`fetch_hosts` (an unknown task is HTTP 404).
    """
    what = f"tasks/{quote_id(task_id)}"
    record: dict[str, Any] | None = None
    after: str | None = None
    while True:
        url, body, _ = _get(
            admin_url, what, {"after": after}, timeout, token=token, ca_file=ca_file
        )
        try:
            page = json.loads(body)
        except ValueError as exc:
            raise HostsFetchError(f"GET {url}: the body is not JSON: {exc}") from exc
        if not isinstance(page, dict) or not isinstance(page.get("peers"), list):
            raise HostsFetchError(f"GET {url}: expected a task object with its peers")
        if record is None:
            record = page
        else:
            record["peers"].extend(page["peers"])
            record["edges"].extend(page.get("edges") or [])
        following = page.get("next")
        if not isinstance(following, str) or following == after:
            record["truncated"], record["next"] = False, None
            return record
        after = following


def quote_id(record_id: str) -> str:
    """An id as one path segment of the admin API: UTF-8, every reserved byte
    percent-encoded (``a/b%?é`` is ``a%2Fb%25%3F%C3%A9``)."""
    return urllib.parse.quote(record_id, safe="")


def _fetch_list(
    admin_url: str,
    what: str,
    query: Mapping[str, object],
    timeout: float,
    *,
    token: str | None = None,
    ca_file: str | None = None,
    most: int | None = None,
) -> list[dict[str, Any]]:
    """Every record of a listing, following its ``Link: rel="next"`` pages; ``most``
    stops after that many, ``0`` after the first page."""
    records: list[dict[str, Any]] = []
    after: object = None
    while True:
        url, body, following = _get(
            admin_url, what, {**query, "after": after}, timeout, token=token, ca_file=ca_file
        )
        try:
            page = json.loads(body)
        except ValueError as exc:
            raise HostsFetchError(f"GET {url}: the body is not JSON: {exc}") from exc
        if not isinstance(page, list) or not all(isinstance(r, dict) for r in page):
            raise HostsFetchError(f"GET {url}: expected a JSON array of {what[:-1]} objects")
        records.extend(page)
        if most is not None and (most == 0 or len(records) >= most):
            return records if most == 0 else records[:most]
        if following is None or following == after or not page:
            return records
        after = following


def _next_after(link: str | None) -> str | None:
    """The ``after`` of a ``Link: <...>; rel="next"`` header (None: the last page)."""
    if not link:
        return None
    for part in link.split(","):
        target, _, params = part.partition(";")
        if 'rel="next"' not in params.replace(" ", ""):
            continue
        query = urllib.parse.urlsplit(target.strip().strip("<>")).query
        values = urllib.parse.parse_qs(query).get("after")
        return values[0] if values else None
    return None


def _get(
    admin_url: str,
    what: str,
    query: Mapping[str, object],
    timeout: float,
    *,
    token: str | None = None,
    ca_file: str | None = None,
    method: str = "GET",
    data: bytes | None = None,
) -> tuple[str, bytes, str | None]:
    """``(url, body, the next page's after)`` of one GET (or ``method`` with ``data``)."""
    scheme = urllib.parse.urlsplit(admin_url).scheme
    if scheme not in ("http", "https"):
        raise HostsFetchError(f"the admin URL must be http:// or https://, got {admin_url!r}")
    url = f"{admin_url.rstrip('/')}/api/v1/{what}"
    given = {key: value for key, value in query.items() if value is not None}
    if given:
        url += "?" + urllib.parse.urlencode(given, quote_via=urllib.parse.quote)
    request = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        request.add_header("Content-Type", "application/json")
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        context = client_ssl_context(ca_file) if scheme == "https" else None
    except ValueError as exc:
        raise HostsFetchError(str(exc)) from exc
    try:
        with urllib.request.urlopen(request, timeout=timeout, context=context) as response:
            body = response.read()
            link = response.headers.get("link")
    except urllib.error.HTTPError as exc:
        reason = f" {exc.reason}" if exc.reason else ""
        said = _error_body(exc)
        advice = " (pass --token or --token-file)" if exc.code in (401, 403) and not token else ""
        raise HostsFetchError(
            f"{method} {url}: HTTP {exc.code}{reason}{': ' + said if said else ''}{advice}",
            status=exc.code,
        ) from exc
    except urllib.error.URLError as exc:
        hint = ""
        if isinstance(exc.reason, ConnectionRefusedError):
            hint = (
                f"; is `scheduler serve` running with its admin API at {admin_url}? "
                "Start it, or pass --admin URL"
            )
        raise HostsFetchError(f"{method} {url}: {exc.reason}{hint}") from exc
    except OSError as exc:  # e.g. a timeout while reading the body
        raise HostsFetchError(f"{method} {url}: {exc}") from exc
    return url, body, _next_after(link)


def _error_body(error: urllib.error.HTTPError) -> str:
    """What the admin API said: its JSON ``error``, one line (empty if none)."""
    with error:
        try:
            said = json.loads(error.read(4096)).get("error", "")
        except (ValueError, AttributeError, OSError):
            said = ""
    text = str(said)[:300]
    return "".join(c if c.isprintable() else " " for c in text)


def format_age(seconds: float) -> str:
    """How long ago, for people: ``3.2s ago``, ``4m 05s ago``, ``2h 10m ago``, ``3d 4h ago``."""
    seconds = max(seconds, 0.0)  # a clock a little ahead of ours is "just now"
    if seconds < 60:
        return f"{seconds:.1f}s ago"
    whole = int(seconds)
    if whole < 3600:
        return f"{whole // 60}m {whole % 60:02d}s ago"
    if whole < 86400:
        return f"{whole // 3600}h {whole % 3600 // 60:02d}m ago"
    return f"{whole // 86400}d {whole % 86400 // 3600}h ago"


def _cell(value: object) -> str:
    return "-" if value is None else str(value)


#: An id longer than this is shown as its head, "…" and its tail (``--wide``: whole).
ID_WIDTH: Final = 16


def shorten_id(text: str, width: int = ID_WIDTH) -> str:
    """``text`` cut in the middle to ``width`` characters (ids differ at both ends)."""
    if len(text) <= width:
        return text
    head = (width - 1) // 2
    return text[:head] + "…" + text[len(text) - (width - 1 - head) :]


def _count_cell(value: object) -> str:
    """A count the server may not know (-1): ``?``."""
    if isinstance(value, int) and not isinstance(value, bool) and value < 0:
        return "?"
    return _cell(value)


def _peers_cell(peers: object) -> str:
    if isinstance(peers, Sequence) and not isinstance(peers, str):
        return str(len(peers))
    return _cell(peers)


def _parents_cell(parents: object, wide: bool) -> str:
    if isinstance(parents, list) and parents:
        return ", ".join(escape(str(p) if wide else shorten_id(str(p))) for p in parents)
    return "-"


def render_task_tree(task: Mapping[str, Any], *, wide: bool = False) -> Tree:
    """The task's peers as a tree: each peer under the parents it was handed out.

    A peer with no parent in the task is a root; a peer with several parents
    appears under each (the scheduler's edges form a DAG, never a cycle).
    """
    peers = {str(p.get("id")): p for p in task.get("peers", []) if isinstance(p, Mapping)}
    children: dict[str, list[str]] = {peer_id: [] for peer_id in peers}
    roots = []
    for peer_id, peer in sorted(peers.items()):
        parents = [str(p) for p in peer.get("parents") or [] if str(p) in peers]
        for parent in parents:
            children[parent].append(peer_id)
        if not parents:
            roots.append(peer_id)
    tree = Tree(f"task {escape(_cell(task.get('id')))} ({escape(_cell(task.get('state')))})")

    def label(peer_id: str) -> str:
        peer = peers[peer_id]
        state, pieces = _cell(peer.get("state")), _count_cell(peer.get("finished_pieces"))
        shown = peer_id if wide else shorten_id(peer_id)
        return f"{escape(shown)} [dim]{escape(state)}, {escape(pieces)} pieces[/dim]"

    def grow(node: Tree, peer_id: str, path: frozenset[str]) -> None:
        for child in children[peer_id]:
            if child not in path:  # a cycle cannot happen; never loop if it did
                grow(node.add(label(child)), child, path | {child})

    for root in roots:
        grow(tree.add(label(root)), root, frozenset({root}))
    return tree


def _interval_cell(interval: object) -> str:
    if isinstance(interval, int | float) and not isinstance(interval, bool):
        return f"{interval:g}s"
    return _cell(interval)


def _last_announce_cell(last_announce_at: object, now: float) -> str:
    if isinstance(last_announce_at, int | float) and not isinstance(last_announce_at, bool):
        return format_age(now - last_announce_at)
    return "never"


def _caption(records: Sequence[object], noun: str) -> str:
    return f"{len(records)} {noun}{'' if len(records) == 1 else 's'}"


@attrs.frozen
class _Column:
    """One column of a table: its header and how a record becomes its cell.

    ``cell(record, now, wide)``: ``wide`` shows ids whole, else cut to :data:`ID_WIDTH`.
    """

    header: str
    cell: Callable[[Mapping[str, Any], float, bool], str]
    justify: Literal["left", "right"] = "left"
    no_wrap: bool = False
    #: Shown with ``--wide`` only (the table must fit 100 columns without it).
    wide_only: bool = False


def _field(key: str) -> Callable[[Mapping[str, Any], float, bool], str]:
    return lambda record, _now, _wide: _cell(record.get(key))


def _id(key: str) -> Callable[[Mapping[str, Any], float, bool], str]:
    def cell(record: Mapping[str, Any], _now: float, wide: bool) -> str:
        text = _cell(record.get(key))
        return text if wide else shorten_id(text)

    return cell


def _count(key: str) -> Callable[[Mapping[str, Any], float, bool], str]:
    return lambda record, _now, _wide: _count_cell(record.get(key))


def _age(key: str) -> Callable[[Mapping[str, Any], float, bool], str]:
    return lambda record, now, _wide: _last_announce_cell(record.get(key), now)


def _render(
    title: str,
    columns: Sequence[_Column],
    records: Sequence[Mapping[str, Any]],
    now: float,
    style: Callable[[Mapping[str, Any]], str | None] = lambda _record: None,
    *,
    wide: bool = False,
) -> Table:
    table = Table(title=title, caption=_caption(records, title.lower().removesuffix("s")))
    columns = [column for column in columns if wide or not column.wide_only]
    for column in columns:
        table.add_column(column.header, justify=column.justify, no_wrap=column.no_wrap)
    for record in records:
        cells = (column.cell(record, now, wide) for column in columns)
        table.add_row(*cells, style=style(record))
    return table


_HOST_COLUMNS: Final = (
    _Column("host id", _id("id"), no_wrap=True),
    _Column("hostname", _field("hostname")),
    _Column(
        "address",
        lambda host, _now, _wide: f"{_cell(host.get('ip'))}:{_cell(host.get('port'))}",
        no_wrap=True,
    ),
    _Column("state", _field("state")),
    _Column("last announce", _age("last_announce_at"), justify="right"),
    _Column(
        "interval", lambda host, _now, _wide: _interval_cell(host.get("announce_interval")), "right"
    ),
    _Column("peers", lambda host, _now, _wide: _peers_cell(host.get("peers")), "right"),
)
_PEER_COLUMNS: Final = (
    _Column("peer id", _id("id"), no_wrap=True),
    _Column("task id", _id("task_id"), no_wrap=True),
    _Column("host id", _id("host_id"), no_wrap=True, wide_only=True),
    _Column("state", _field("state")),
    _Column("pieces", _count("finished_pieces"), justify="right"),
    _Column("parents", lambda peer, _now, wide: _parents_cell(peer.get("parents"), wide)),
    _Column("updated", _age("updated_at"), justify="right"),
)
_TASK_COLUMNS: Final = (
    _Column("task id", _id("id"), no_wrap=True),
    _Column("url", _field("url")),
    _Column("state", _field("state")),
    _Column("peers", lambda task, _now, _wide: _peers_cell(task.get("peers")), "right"),
    _Column("pieces", _count("total_piece_count"), justify="right"),
    _Column("updated", _age("updated_at"), justify="right"),
)


def render_hosts_table(
    hosts: Sequence[Mapping[str, Any]], now: float, *, wide: bool = False
) -> Table:
    """A table of ``hosts`` as :func:`fetch_hosts` returns them; ``now`` is unix seconds.

    Columns: host id, hostname, address (``ip:port``), state, last announce (its
    age at ``now``), announce interval, and peers (a count; ``-`` when unknown).
    """
    return _render(
        "Hosts",
        _HOST_COLUMNS,
        hosts,
        now,
        lambda host: _STATE_STYLES.get(_cell(host.get("state"))),
        wide=wide,
    )


def render_peers_table(
    peers: Sequence[Mapping[str, Any]], now: float, *, wide: bool = False
) -> Table:
    """A table of ``peers`` as :func:`fetch_peers` returns them; ``now`` is unix seconds.

    Columns: peer id, task id, state, pieces, parents (the parents the scheduler
    handed out, best first), and the age of the last update; ``wide`` adds the
    host id and shows every id whole.
    """
    return _render("Peers", _PEER_COLUMNS, peers, now, wide=wide)


def render_tasks_table(
    tasks: Sequence[Mapping[str, Any]], now: float, *, wide: bool = False
) -> Table:
    """A table of ``tasks`` as :func:`fetch_tasks` returns them; ``now`` is unix seconds.

    Columns: task id, URL, state, peers (a count), pieces, and the age of the
    last update.
    """
    return _render("Tasks", _TASK_COLUMNS, tasks, now, wide=wide)


def print_table(
    render: Callable[..., Table],
    records: Sequence[Mapping[str, Any]],
    *,
    now: float | None = None,
    console: Console | None = None,
    wide: bool = False,
) -> None:
    """Print ``render(records, now, wide=wide)``; ``now`` defaults to the wall clock,
    ``console`` to stdout; ``wide`` shows ids whole instead of cut in the middle."""
    table = render(records, time.time() if now is None else now, wide=wide)
    (console or Console()).print(table)


def print_hosts(
    hosts: Sequence[Mapping[str, Any]],
    *,
    now: float | None = None,
    console: Console | None = None,
) -> None:
    """Print the table of ``hosts`` (from :func:`fetch_hosts`), ages taken at ``now``.

    ``now`` defaults to the wall clock (``time.time()``), ``console`` to a new
    :class:`rich.console.Console` on stdout.
    """
    print_table(render_hosts_table, hosts, now=now, console=console)
