"""The admin HTTP API: a small ASGI app served by hypercorn on its own port.

Routes::

    GET    /                     the web console (and its files under /console/; _console.py)
    GET    /healthz              liveness of the process
    GET    /readyz               200 once the listeners are up, 503 while shutting down
    GET    /metrics              Prometheus text exposition
    GET    /api/v1/hosts         ?state=connected|disconnected, paged
    GET    /api/v1/hosts/{id}
    DELETE /api/v1/hosts/{id}    evict with reason "admin" (closes its session with 4001)
    GET    /api/v1/tasks         paged
    GET    /api/v1/tasks/{id}    the task, a page of its peers and their parent edges
    GET    /api/v1/tasks/{id}/graph.svg   a page of those peers drawn as a DAG
    GET    /api/v1/peers         ?task=ID, paged
    GET    /api/v1/schedulers    the cluster's active members (this process alone without
                                 --registry): name, url, lease_expires_at, ...
    GET    /api/v1/plugins       the plugins loaded: hooks, settings in force, errors, vetoes
    GET    /api/v1/lease         ?nonce=HEX: whether and when this member last renewed its
                                 registry lease (404 without --registry); what other
                                 members ask while the registry fails
    GET    /api/v1/evictions     the recent evictions, newest first: ?kind=host|peer|task
    GET    /api/v1/summary       counters: records by state, sessions, decisions, evictions
    POST   /api/v1/jobs          submit a preheat job (JSON body): 202 and the job
    GET    /api/v1/jobs          the recent jobs, newest first (?limit=N)
    GET    /api/v1/jobs/{id}     one job: its state, hosts, each host's progress, failures
    WS     /api/v1/console/stream   the console's live stream (see _console.py)

**Paths.** An id is one path segment, percent-encoded as UTF-8 (RFC 3986): the
route splits ``raw_path`` on ``/`` and decodes each segment once, so an id may
hold ``/``, ``%``, ``?`` or any other character (``%2F``, ``%25``, ``%3F``).

**Pages.** A listing returns at most ``limit`` records (default and cap
:data:`MAX_PAGE`) in id order, from the first id after ``after``; when more
follow, a ``Link: <...>; rel="next"`` header gives the next page's URL (and the
task detail says ``truncated`` and ``next``). The graph draws at most
:data:`GRAPH_MAX` peers and says in the picture how it was cut.

**The event loop.** A view never holds the loop for long: it copies the ids it
needs at once (a C-level copy), picks its page in a worker thread (one at a
time, :data:`WORKERS`), reads the page's records from the live state on the
loop in slices of :data:`SLICE` with a checkpoint between them into plain
data, and encodes (or draws) that data in a worker thread. Worker threads never
touch the live state.

With ``auth.key_file`` set, every route but ``/healthz`` and ``/readyz`` (and
``/metrics`` unless ``auth.private_metrics``) needs ``Authorization: Bearer``
with an ``admin:read`` token (``admin:write`` for ``DELETE``): 401 without a
valid token, 403 without the scope. A ``Host`` header that is not a loopback
name, an IP literal, the bind address or in ``auth.allowed_hosts`` gets 403.
Every answer, refusals and errors included, carries ``X-Content-Type-Options:
nosniff`` and a ``Content-Security-Policy`` chosen per route (:data:`CSP`).

A WebSocket upgrade anywhere but the console's stream gets 400 and a body naming
the peers' URL. The app sees only an :class:`AdminBackend` (a read-only view and a
few actions), never the service object.
"""

from __future__ import annotations

import enum
import heapq
import logging
import re
import urllib.parse
from collections.abc import (
    Awaitable,
    Callable,
    Collection,
    Iterable,
    Mapping,
    MutableMapping,
    Sequence,
)
from typing import Any, Final, Protocol, TypeVar, final

import attrs
import h11
import orjson
import trio
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from ..core import Host, HostState, NotFound, Peer, Reason, RecordKind, Task
from ..jobs import JobRefused, JobRequestError
from ._auth import AdminGuard
from ._config import ServiceConfig
from ._console import ASSETS, STREAM_PATH, ConsoleStreams, serve_stream
from ._evictions import EvictionLog, eviction_json
from ._graph import task_graph_svg
from ._headers import security_headers
from ._logging import fields

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

log = logging.getLogger("scheduler.admin")

_STATES: Final = {s.value for s in (HostState.CONNECTED, HostState.DISCONNECTED)}
_KINDS: Final = {k.value for k in RecordKind}
#: The most records one page of a listing holds (and its default size).
MAX_PAGE: Final = 1000
#: The peers graph.svg draws by default (Dragonfly's task graph holds 300) and at most.
GRAPH_DEFAULT: Final = 300
GRAPH_MAX: Final = 1000
#: Records read from the live state between two checkpoints (about 1 ms of work).
SLICE: Final = 200
#: Records whose id is copied between two checkpoints (plain attribute reads).
ID_SLICE: Final = 5000
#: Work on fewer items than this is done on the event loop: it costs less than the
#: round trip to a worker thread (about 0.1 ms), and well under a millisecond.
INLINE: Final = 200
#: Worker threads rendering admin answers at once: one, so that the event loop's
#: thread competes for the GIL with one other thread at most.
WORKERS: Final = 1
#: Views being prepared at once (each holds a copy of the ids it pages through);
#: more requests wait their turn without holding anything.
VIEWS_IN_FLIGHT: Final = 4
#: The longest request body read (a job); a longer one is answered 413 unread.
MAX_BODY: Final = 64 * 1024
#: Jobs ``GET /api/v1/jobs`` lists by default and at most.
JOBS_DEFAULT: Final = 100

R = TypeVar("R")
_NONCE: Final = re.compile(r"[0-9a-f]{16,64}")


class AdminView(Protocol):
    """The reads the admin API makes (the core's read-only view provides them)."""

    def hosts(self) -> Iterable[Host]: ...
    def host(self, host_id: str) -> Host: ...
    def task(self, task_id: str) -> Task: ...
    def tasks(self) -> Iterable[Task]: ...
    def peer(self, peer_id: str) -> Peer: ...
    def peers(self) -> Iterable[Peer]: ...
    def peer_ids_of_task(self, task_id: str) -> frozenset[str]: ...
    def has_task(self, task_id: str) -> bool: ...
    def peer_count_of_host(self, host_id: str) -> int: ...
    def peer_count_of_task(self, task_id: str) -> int: ...
    def parents_of(self, peer_id: str) -> tuple[str, ...]: ...


class AdminBackend(Protocol):
    """Everything the admin API reads or does; the service provides it."""

    @property
    def view(self) -> AdminView: ...
    @property
    def ready(self) -> bool:
        """True while the listeners are up and the service is not shutting down."""

    @property
    def ws_url(self) -> str:
        """The peers' WebSocket URL (named in the answer to a misdirected upgrade)."""

    @property
    def metrics_registry(self) -> CollectorRegistry: ...
    def wall_time(self, t: float) -> float:
        """A core timestamp as Unix time."""

    def has_session(self, host_id: str) -> bool: ...
    def schedulers(self) -> list[dict[str, Any]]:
        """The cluster's active members, as ``GET /api/v1/schedulers`` lists them."""

    def plugins(self) -> dict[str, Any]:
        """``GET /api/v1/plugins``: the plugins loaded, their settings and counts."""

    def lease_report(self, nonce: str | None) -> dict[str, Any] | None:
        """``GET /api/v1/lease``: this member's registry lease (None without a registry)."""

    def evict_host(self, host_id: str, reason: str) -> object:
        """Evict a host now; raises NotFound."""

    @property
    def evictions(self) -> EvictionLog:
        """The recent evictions (``GET /api/v1/evictions``)."""

    def summary(self) -> dict[str, Any]:
        """``GET /api/v1/summary``: counters of records, sessions, decisions and evictions."""

    def submit_job(self, body: object) -> dict[str, Any]:
        """``POST /api/v1/jobs``: the new job; JobRequestError (400) or JobRefused (its
        status) when it cannot be taken, and then nothing changes."""

    def job(self, job_id: str) -> dict[str, Any] | None:
        """``GET /api/v1/jobs/{id}`` (None: no such job, or forgotten)."""

    def recent_jobs(self, limit: int) -> list[dict[str, Any]]:
        """``GET /api/v1/jobs``: the last ``limit`` jobs, newest first."""


def host_info_json(host: Host) -> dict[str, Any]:
    """What the host said about itself (every field of ``HostInfo``, so none is copied by hand)."""
    return attrs.asdict(host.info, value_serializer=_jsonable)


def _jsonable(_instance: object, _field: object, value: Any) -> Any:
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, Mapping):
        return dict(value)
    return value


def host_json(backend: AdminBackend, host: Host) -> dict[str, Any]:
    wall_time = backend.wall_time
    return {
        "id": host.id,
        **host_info_json(host),
        "state": host.state.value,
        "announce_interval": host.announce_interval,
        "created_at": wall_time(host.created_at),
        "last_announce_at": wall_time(host.last_announce_at),
        "last_contact_at": wall_time(host.last_contact_at),
        "disconnected_at": (
            None if host.disconnected_at is None else wall_time(host.disconnected_at)
        ),
        # Uploads in progress now, of ``concurrent_upload_limit``.
        "concurrent_upload_count": host.concurrent_upload_count,
        "upload_count": host.upload_count,
        "peers": backend.view.peer_count_of_host(host.id),
        "session": backend.has_session(host.id),
    }


def task_json(backend: AdminBackend, task: Task) -> dict[str, Any]:
    return {
        "id": task.id,
        "url": task.url,
        "state": task.state.value,
        "piece_length": task.piece_length,
        "content_length": task.content_length,
        "total_piece_count": task.total_piece_count,
        "peers": backend.view.peer_count_of_task(task.id),
        "back_to_source_count": task.back_to_source_count,
        "created_at": backend.wall_time(task.created_at),
        "updated_at": backend.wall_time(task.updated_at),
    }


def peer_json(backend: AdminBackend, peer: Peer) -> dict[str, Any]:
    return {
        "id": peer.id,
        "task_id": peer.task_id,
        "host_id": peer.host_id,
        "state": peer.state.value,
        "finished_pieces": len(peer.finished_pieces),
        # The parents the scheduler handed out and still stands by, best first.
        "parents": list(backend.view.parents_of(peer.id)),
        # The peers that pieces came from (``pieces_finished``'s ``parent_id``).
        "piece_parents": sorted(peer.parents),
        "created_at": backend.wall_time(peer.created_at),
        "updated_at": backend.wall_time(peer.updated_at),
    }


@final
@attrs.frozen
class Answer:
    """One HTTP answer: status, body, content type, extra headers and its CSP (a key of
    :data:`CSP`)."""

    status: int
    body: bytes
    content_type: str
    headers: tuple[tuple[bytes, bytes], ...] = ()
    csp: str = "default"


def _json(status: int, payload: Any, headers: tuple[tuple[bytes, bytes], ...] = ()) -> Answer:
    return Answer(status, orjson.dumps(payload), "application/json", headers)


def _problem(status: int, message: str) -> Answer:
    return _json(status, {"error": message})


@final
@attrs.frozen
class PageQuery:
    """``limit`` records with ids after ``after`` (None: from the first)."""

    limit: int
    after: str | None = None


@final
@attrs.frozen
class Page:
    """The ids of one page, in order, and the cursor of the next page (None: the last)."""

    ids: tuple[str, ...]
    next_after: str | None


def page_of(ids: Iterable[str], query: PageQuery) -> Page:
    """The ``query.limit`` smallest ids after ``query.after``: O(n log limit).

    Runs in a worker thread on a copy of the ids: a Python loop over them (not
    one C call holding the GIL, as sorting them all would be), so the event
    loop's thread gets the GIL back every few milliseconds.
    """
    after = query.after
    candidates = ids if after is None else (i for i in ids if i > after)
    chosen = heapq.nsmallest(query.limit + 1, candidates)
    page = tuple(chosen[: query.limit])
    return Page(page, page[-1] if len(chosen) > query.limit else None)


def parse_page(
    query: Mapping[str, list[str]], default: int = MAX_PAGE, maximum: int = MAX_PAGE
) -> PageQuery | Answer:
    """``limit`` (1 or more; above ``maximum`` it is ``maximum``) and ``after``, or a 400."""
    try:
        limit = int(query.get("limit", [str(default)])[0])
    except ValueError:
        return _problem(400, "limit must be an integer")
    if limit < 1:
        return _problem(400, f"limit must be at least 1, got {limit}")
    return PageQuery(min(limit, maximum), query.get("after", [None])[0])


def next_link(
    raw_path: bytes, query: Mapping[str, list[str]], after: str | None
) -> tuple[tuple[bytes, bytes], ...]:
    """``Link: <path?...&after=ID>; rel="next"``, or nothing on the last page."""
    if after is None:
        return ()
    params = [(k, v) for k, values in query.items() if k != "after" for v in values]
    params.append(("after", after))
    quote = urllib.parse.quote
    encoded = "&".join(f"{quote(k, safe='')}={quote(v, safe='')}" for k, v in params)
    target = f"{raw_path.decode('ascii')}?{encoded}"
    return ((b"link", f'<{target}>; rel="next"'.encode("ascii")),)


def path_segments(raw_path: bytes) -> tuple[str, ...] | None:
    """The segments of a request path, each percent-decoded once as UTF-8 (None: not UTF-8).

    ``/api/v1/hosts/a%2Fb`` is ``("api", "v1", "hosts", "a/b")``: a segment's
    ``%2F`` is part of the id, never a separator, and ``%25`` is a ``%``.
    """
    try:
        return tuple(
            urllib.parse.unquote_to_bytes(segment).decode("utf-8")
            for segment in raw_path.split(b"/")[1:]
        )
    except UnicodeDecodeError:
        return None


def parse_query(query_string: bytes) -> dict[str, list[str]] | None:
    """The query's parameters, percent-decoded once as UTF-8 (None: not UTF-8)."""
    try:
        return urllib.parse.parse_qs(query_string.decode("ascii"), errors="strict")
    except (UnicodeDecodeError, UnicodeEncodeError):
        return None


class AdminViews:
    """Answers admin requests without holding the event loop for long (see the module doc)."""

    def __init__(self, backend: AdminBackend) -> None:
        self.backend = backend
        self._workers = trio.CapacityLimiter(WORKERS)
        self._in_flight = trio.Semaphore(VIEWS_IN_FLIGHT)

    async def answer(
        self, method: str, raw_path: bytes, query_string: bytes, body: bytes | None = None
    ) -> Answer:
        """Answer one request that passed the guard (``body``: a POST's, None if too long)."""
        segments = path_segments(raw_path)
        query = parse_query(query_string)
        if segments is None or query is None:
            return _problem(400, "the path and query must be UTF-8, percent-encoded")
        backend = self.backend
        path = "/" + "/".join(segments)
        match segments:
            case ("healthz",):
                return Answer(200, b"ok\n", "text/plain")
            case ("readyz",):
                if backend.ready:
                    return Answer(200, b"ready\n", "text/plain")
                return Answer(503, b"not ready\n", "text/plain")
            case ("metrics",):
                # The collectors read counters the core keeps: O(1) in the records.
                return Answer(200, generate_latest(backend.metrics_registry), CONTENT_TYPE_LATEST)
            case ("api", "v1", "hosts", host_id):
                return self._host(method, host_id)
            case ("api", "v1", "jobs") if method == "POST":
                return self._submit_job(body)
        if method != "GET":
            return _problem(405, f"{method} not allowed on {path}")
        asset = ASSETS.get(path)
        if asset is not None:
            return Answer(200, asset.body, asset.content_type, csp=asset.csp)
        match segments:
            case ("api", "v1", "hosts"):
                return await self._listing(self._hosts, self._host_json, raw_path, query)
            case ("api", "v1", "tasks"):
                return await self._listing(self._tasks, self._task_json, raw_path, query)
            case ("api", "v1", "peers"):
                return await self._listing(self._peers, self._peer_json, raw_path, query)
            case ("api", "v1", "tasks", task_id):
                return await self._task_detail(task_id, raw_path, query)
            case ("api", "v1", "tasks", task_id, "graph.svg"):
                return await self._task_graph(task_id, raw_path, query)
            case ("api", "v1", "schedulers"):
                return _json(200, backend.schedulers())
            case ("api", "v1", "lease"):
                return self._lease(query)
            case ("api", "v1", "plugins"):
                return _json(200, backend.plugins())
            case ("api", "v1", "evictions"):
                return self._evictions(query)
            case ("api", "v1", "summary"):
                return _json(200, backend.summary())
            case ("api", "v1", "jobs"):
                page_query = parse_page(query, default=JOBS_DEFAULT, maximum=JOBS_DEFAULT)
                if isinstance(page_query, Answer):
                    return page_query
                return _json(200, backend.recent_jobs(page_query.limit))
            case ("api", "v1", "jobs", job_id):
                job = backend.job(job_id)
                if job is None:
                    return _problem(404, f"job {job_id!r} not found")
                return _json(200, job)
        return _problem(404, f"no route for {path}")

    def _submit_job(self, body: bytes | None) -> Answer:
        """``POST /api/v1/jobs``: 202 and the job, or a 4xx that names the problem."""
        if body is None:
            return _problem(413, f"the body must be at most {MAX_BODY} bytes")
        try:
            decoded = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            return _problem(400, f"the body must be JSON: {exc}")
        try:
            job = self.backend.submit_job(decoded)
        except JobRequestError as exc:
            return _problem(400, str(exc))
        except JobRefused as exc:
            return _problem(exc.status, str(exc))
        return _json(202, job, ((b"location", f"/api/v1/jobs/{job['id']}".encode()),))

    def _evictions(self, query: Mapping[str, list[str]]) -> Answer:
        """The recent evictions, newest first: ``?kind=host|peer|task``, ``limit``."""
        log = self.backend.evictions
        most = log.size * len(RecordKind)
        page_query = parse_page(query, default=most, maximum=most)
        if isinstance(page_query, Answer):
            return page_query
        kind = query.get("kind", [None])[0]
        if kind is not None and kind not in _KINDS:
            return _problem(400, f"kind must be one of {sorted(_KINDS)}, got {kind!r}")
        recent = log.recent(None if kind is None else RecordKind(kind), page_query.limit)
        wall_time = self.backend.wall_time
        return _json(200, [eviction_json(event, wall_time) for event in recent])

    def _lease(self, query: Mapping[str, list[str]]) -> Answer:
        nonce = query.get("nonce", [None])[0]
        if nonce is not None and not _NONCE.fullmatch(nonce):
            return _problem(400, "nonce must be 16 to 64 hexadecimal digits")
        report = self.backend.lease_report(nonce)
        if report is None:
            return _problem(404, "no registry: this scheduler is not in a cluster")
        return _json(200, report)

    def _host(self, method: str, host_id: str) -> Answer:
        backend = self.backend
        try:
            if method == "GET":
                return _json(200, host_json(backend, backend.view.host(host_id)))
            if method == "DELETE":
                backend.evict_host(host_id, Reason.ADMIN)
                return _json(200, {"evicted": host_id, "reason": Reason.ADMIN.value})
        except NotFound as exc:
            return _problem(404, str(exc))
        return _problem(405, f"{method} not allowed on /api/v1/hosts/{{id}}")

    # --- listings ---------------------------------------------------------------------

    async def _listing(
        self,
        ids_of: Callable[[Mapping[str, list[str]]], Awaitable[Collection[str] | Answer]],
        read: Callable[[str], dict[str, Any]],
        raw_path: bytes,
        query: Mapping[str, list[str]],
    ) -> Answer:
        """One page of a listing, as a JSON array; a ``Link`` header names the next page."""
        page_query = parse_page(query)
        if isinstance(page_query, Answer):
            return page_query
        async with self._in_flight:
            ids = await ids_of(query)
            if isinstance(ids, Answer):
                return ids
            page = await self._in_worker(len(ids), page_of, ids, page_query)
            del ids
            records = await self._read(page.ids, read)
            body = await self._in_worker(len(records), orjson.dumps, records)
        return Answer(200, body, "application/json", next_link(raw_path, query, page.next_after))

    def _host_json(self, host_id: str) -> dict[str, Any]:
        return host_json(self.backend, self.backend.view.host(host_id))

    def _task_json(self, task_id: str) -> dict[str, Any]:
        return task_json(self.backend, self.backend.view.task(task_id))

    def _peer_json(self, peer_id: str) -> dict[str, Any]:
        return peer_json(self.backend, self.backend.view.peer(peer_id))

    async def _hosts(self, query: Mapping[str, list[str]]) -> list[str] | Answer:
        wanted = query.get("state", [None])[0]
        if wanted is not None and wanted not in _STATES:
            return _problem(400, f"state must be one of {sorted(_STATES)}, got {wanted!r}")
        records = list(self.backend.view.hosts())
        if wanted is None:
            return await _in_slices(records, lambda chunk: [h.id for h in chunk])
        return await _in_slices(
            records, lambda chunk: [h.id for h in chunk if h.state.value == wanted]
        )

    async def _tasks(self, _query: Mapping[str, list[str]]) -> list[str]:
        records = list(self.backend.view.tasks())
        return await _in_slices(records, lambda chunk: [t.id for t in chunk])

    async def _peers(self, query: Mapping[str, list[str]]) -> Collection[str]:
        task_id = query.get("task", [None])[0]
        if task_id is not None:
            return self.backend.view.peer_ids_of_task(task_id)  # a copy, made in C
        records = list(self.backend.view.peers())
        return await _in_slices(records, lambda chunk: [p.id for p in chunk])

    # --- one task ---------------------------------------------------------------------

    async def _task_detail(
        self, task_id: str, raw_path: bytes, query: Mapping[str, list[str]]
    ) -> Answer:
        """The task, a page of its peers (each with its ``parents``) and their parent edges."""
        page_query = parse_page(query)
        if isinstance(page_query, Answer):
            return page_query
        backend = self.backend
        try:
            task = backend.view.task(task_id)
        except NotFound as exc:
            return _problem(404, str(exc))
        async with self._in_flight:
            detail = task_json(backend, task)
            ids = backend.view.peer_ids_of_task(task_id)
            page = await self._in_worker(len(ids), page_of, ids, page_query)
            del ids
            peers = await self._read(page.ids, self._peer_json)
            detail |= {
                "peers": peers,
                "edges": [
                    {"parent": parent, "child": p["id"]} for p in peers for parent in p["parents"]
                ],
                "peer_count": detail["peers"],
                "truncated": page.next_after is not None,
                "next": page.next_after,
            }
            body = await self._in_worker(len(peers), orjson.dumps, detail)
        return Answer(200, body, "application/json", next_link(raw_path, query, page.next_after))

    async def _task_graph(
        self, task_id: str, raw_path: bytes, query: Mapping[str, list[str]]
    ) -> Answer:
        """A page of the task's peers and the edges between them, drawn as an SVG."""
        page_query = parse_page(query, GRAPH_DEFAULT, GRAPH_MAX)
        if isinstance(page_query, Answer):
            return page_query
        view = self.backend.view
        if not view.has_task(task_id):
            return _problem(404, f"task {task_id!r} not found")
        async with self._in_flight:
            ids = view.peer_ids_of_task(task_id)
            total = len(ids)
            page = await self._in_worker(total, page_of, ids, page_query)
            del ids

            def node(peer_id: str) -> tuple[str, str, tuple[str, ...]]:
                return peer_id, view.peer(peer_id).state.value, view.parents_of(peer_id)

            nodes = await self._read(page.ids, node)
            note = _graph_note(len(nodes), total, page_query, page.next_after)
            svg = await self._in_worker(len(nodes), _draw, task_id, nodes, note)
        link = next_link(raw_path, query, page.next_after)
        return Answer(200, svg, "image/svg+xml", link, csp="svg")

    # --- the two halves of every view -------------------------------------------------

    async def _read(self, ids: Sequence[str], read: Callable[[str], R]) -> list[R]:
        """``read(id)`` for each id, on the event loop, a slice at a time; an id whose
        record went away meanwhile is left out."""
        out: list[R] = []
        for start in range(0, len(ids), SLICE):
            if start:
                await trio.lowlevel.checkpoint()
            for record_id in ids[start : start + SLICE]:
                try:
                    out.append(read(record_id))
                except NotFound:
                    continue
        return out

    async def _in_worker(self, size: int, fn: Callable[..., R], *args: Any) -> R:
        """``fn(*args)`` in a worker thread (on the loop for fewer than :data:`INLINE`
        items): ``args`` are plain data, never live records."""
        if size < INLINE:
            return fn(*args)
        return await trio.to_thread.run_sync(fn, *args, limiter=self._workers)


async def _in_slices(records: Sequence[R], take: Callable[[Sequence[R]], list[str]]) -> list[str]:
    """``take`` over ``records`` (a snapshot list) :data:`ID_SLICE` at a time, yielding between."""
    out: list[str] = []
    for start in range(0, len(records), ID_SLICE):
        if start:
            await trio.lowlevel.checkpoint()
        out.extend(take(records[start : start + ID_SLICE]))
    return out


def _graph_note(shown: int, total: int, query: PageQuery, next_after: str | None) -> str:
    """What the picture leaves out, in words; empty when it shows every peer."""
    if query.after is None and next_after is None:
        return ""
    where = "from the first id" if query.after is None else f"after {query.after}"
    more = f"; next page: ?after={next_after}" if next_after is not None else ""
    return f"showing {shown} of {total} peers by id, {where}{more}; edges to other peers not drawn"


def _draw(task_id: str, nodes: Sequence[tuple[str, str, tuple[str, ...]]], note: str) -> bytes:
    peers = [(peer_id, state) for peer_id, state, _ in nodes]
    edges = [(parent, peer_id) for peer_id, _, parents in nodes for parent in parents]
    return task_graph_svg(task_id, peers, edges, note=note).encode()


def make_admin_app(
    backend: AdminBackend,
    guard: AdminGuard | None = None,
    on_refusal: Callable[[str, str], None] | None = None,
    console: ConsoleStreams | None = None,
) -> ASGIApp:
    """The ASGI app; ``guard`` checks ``Host`` and tokens (``on_refusal(reason, address)``
    counts and logs refusals); ``console`` runs the console's live streams (by default,
    streams with the default limits)."""
    views = AdminViews(backend)
    if console is None:
        console = ConsoleStreams.from_config(ServiceConfig(), backend.summary)

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] == "websocket":
            try:
                if scope.get("path") == STREAM_PATH:
                    await serve_stream(
                        scope, receive, send, streams=console, guard=guard, on_refusal=on_refusal
                    )
                else:
                    await _refuse_upgrade(backend, scope, receive, send)
            except* h11.LocalProtocolError:
                # The client sent a frame before the upgrade was answered, and hypercorn
                # answered it on its own meanwhile; see serve_admin.
                log.debug("WebSocket upgrade answered by the server itself")
            return
        if scope["type"] != "http":  # pragma: no cover - hypercorn only sends these
            return
        try:
            answer = await _answer(views, guard, on_refusal, scope, receive)
        except Exception:
            log.exception(
                "admin request failed", extra=fields(method=scope["method"], path=scope["path"])
            )
            answer = _problem(500, "internal error; see the scheduler's log")
        await send(
            {
                "type": "http.response.start",
                "status": answer.status,
                "headers": [
                    (b"content-type", answer.content_type.encode()),
                    (b"content-length", str(len(answer.body)).encode()),
                    *answer.headers,
                    *security_headers(answer.csp),
                ],
            }
        )
        await send({"type": "http.response.body", "body": answer.body})

    return app


async def _answer(
    views: AdminViews,
    guard: AdminGuard | None,
    on_refusal: Callable[[str, str], None] | None,
    scope: Scope,
    receive: Receive,
) -> Answer:
    method, path = scope["method"], scope["path"]
    refusal = None if guard is None else guard.check(method, path, scope.get("headers", ()))
    if refusal is not None:
        if on_refusal is not None:
            client = scope.get("client")
            on_refusal(refusal.reason, str(client[0]) if client else "")
        return attrs.evolve(_problem(refusal.status, refusal.message), headers=refusal.headers)
    raw_path = scope.get("raw_path") or path.encode()
    body = await _read_body(receive) if method == "POST" else b""
    return await views.answer(method, raw_path, scope.get("query_string", b""), body)


async def _read_body(receive: Receive) -> bytes | None:
    """The request's body, or None once it passes :data:`MAX_BODY` (the rest is not read)."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return b"".join(chunks)  # the client went away
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


async def _refuse_upgrade(
    backend: AdminBackend, scope: Scope, receive: Receive, send: Send
) -> None:
    """A WebSocket upgrade on the admin port: 400 with a body naming the peers' URL."""
    await receive()  # websocket.connect
    if "websocket.http.response" not in scope.get("extensions", {}):  # pragma: no cover
        await send({"type": "websocket.close"})  # the server answers 403 without a body
        return
    body = (
        f"this is the admin HTTP API, not a WebSocket endpoint; peers connect to {backend.ws_url}\n"
    )
    encoded = body.encode()
    await send(
        {
            "type": "websocket.http.response.start",
            "status": 400,
            "headers": [
                (b"content-type", b"text/plain; charset=utf-8"),
                (b"content-length", str(len(encoded)).encode()),
                *security_headers(),
            ],
        }
    )
    await send({"type": "websocket.http.response.body", "body": encoded})
