"""The admin HTTP API: a small ASGI app served by hypercorn on its own port.

Routes::

    GET    /healthz              liveness of the process
    GET    /readyz               200 once the listeners are up, 503 while shutting down
    GET    /metrics              Prometheus text exposition
    GET    /api/v1/hosts         ?state=connected|disconnected
    GET    /api/v1/hosts/{id}
    DELETE /api/v1/hosts/{id}    evict with reason "admin" (closes its session with 4001)
    GET    /api/v1/tasks
    GET    /api/v1/tasks/{id}    the task, its peers and their parent edges
    GET    /api/v1/tasks/{id}/graph.svg   the same edges drawn as a DAG
    GET    /api/v1/peers         ?task=ID&limit=N
    GET    /api/v1/schedulers    the cluster's active members (this process alone without
                                 --registry): name, url, lease_expires_at, ...
    GET    /api/v1/lease         ?nonce=HEX: whether and when this member last renewed its
                                 registry lease (404 without --registry); what other
                                 members ask while the registry fails

With ``auth.key_file`` set, every route but ``/healthz`` and ``/readyz`` (and
``/metrics`` unless ``auth.private_metrics``) needs ``Authorization: Bearer``
with an ``admin:read`` token (``admin:write`` for ``DELETE``): 401 without a
valid token, 403 without the scope. A ``Host`` header that is not a loopback
name, an IP literal, the bind address or in ``auth.allowed_hosts`` gets 403.

A WebSocket upgrade gets 400 and a body naming the peers' URL. The app sees
only an :class:`AdminBackend` (a read-only view and a few actions), never the
service object.
"""

from __future__ import annotations

import enum
import re
import urllib.parse
from collections.abc import Awaitable, Callable, Iterable, Mapping, MutableMapping
from typing import Any, Final, Protocol

import attrs
import orjson
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from ..core import Host, HostState, NotFound, Peer, Reason, Task
from ._auth import AdminGuard
from ._graph import task_graph_svg

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

_HOSTS: Final = "/api/v1/hosts"
_TASKS: Final = "/api/v1/tasks"
_GRAPH_SUFFIX: Final = "/graph.svg"
_STATES: Final = {s.value for s in (HostState.CONNECTED, HostState.DISCONNECTED)}
_DEFAULT_PEER_LIMIT: Final = 1000
_LEASE: Final = "/api/v1/lease"
_NONCE: Final = re.compile(r"[0-9a-f]{16,64}")


class AdminView(Protocol):
    """The reads the admin API makes (the core's read-only view provides them)."""

    def hosts(self) -> Iterable[Host]: ...
    def host(self, host_id: str) -> Host: ...
    def task(self, task_id: str) -> Task: ...
    def tasks(self) -> Iterable[Task]: ...
    def peers(self) -> Iterable[Peer]: ...
    def peers_of_task(self, task_id: str) -> Iterable[Peer]: ...
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

    def lease_report(self, nonce: str | None) -> dict[str, Any] | None:
        """``GET /api/v1/lease``: this member's registry lease (None without a registry)."""

    def evict_host(self, host_id: str, reason: str) -> object:
        """Evict a host now; raises NotFound."""


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


def task_detail_json(backend: AdminBackend, task: Task) -> dict[str, Any]:
    """The task, its peers (each with its ``parents``), and the parent edges."""
    peers = sorted(backend.view.peers_of_task(task.id), key=lambda p: p.id)
    return {
        **task_json(backend, task),
        "peers": [peer_json(backend, p) for p in peers],
        "edges": [
            {"parent": parent, "child": p.id}
            for p in peers
            for parent in backend.view.parents_of(p.id)
        ],
    }


def make_admin_app(
    backend: AdminBackend,
    guard: AdminGuard | None = None,
    on_refusal: Callable[[str], None] | None = None,
) -> ASGIApp:
    """The ASGI app; ``guard`` checks ``Host`` and tokens (``on_refusal`` counts refusals)."""

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
            await _refuse_upgrade(backend, scope, receive, send)
            return
        if scope["type"] != "http":  # pragma: no cover - hypercorn only sends these
            return
        extra: tuple[tuple[bytes, bytes], ...] = ()
        refusal = (
            None
            if guard is None
            else guard.check(scope["method"], scope["path"], scope.get("headers", ()))
        )
        if refusal is not None:
            if on_refusal is not None:
                on_refusal(refusal.reason)
            status, body, content_type = _problem(refusal.status, refusal.message)
            extra = refusal.headers
        else:
            status, body, content_type = route(
                backend,
                scope["method"],
                scope["path"],
                urllib.parse.parse_qs(scope.get("query_string", b"").decode("latin-1")),
            )
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", content_type.encode()),
                    (b"content-length", str(len(body)).encode()),
                    *extra,
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})

    return app


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
            ],
        }
    )
    await send({"type": "websocket.http.response.body", "body": encoded})


def _json(status: int, payload: Any) -> tuple[int, bytes, str]:
    return status, orjson.dumps(payload), "application/json"


def _problem(status: int, message: str) -> tuple[int, bytes, str]:
    return _json(status, {"error": message})


def _task_route(backend: AdminBackend, rest: str) -> tuple[int, bytes, str]:
    graph = rest.endswith(_GRAPH_SUFFIX)
    task_id = urllib.parse.unquote(rest.removesuffix(_GRAPH_SUFFIX) if graph else rest)
    try:
        task = backend.view.task(task_id)
    except NotFound as exc:
        return _problem(404, str(exc))
    if not graph:
        return _json(200, task_detail_json(backend, task))
    peers = sorted(backend.view.peers_of_task(task.id), key=lambda p: p.id)
    edges = [(parent, p.id) for p in peers for parent in backend.view.parents_of(p.id)]
    svg = task_graph_svg(task.id, [(p.id, p.state.value) for p in peers], edges)
    return 200, svg.encode(), "image/svg+xml"


def route(
    backend: AdminBackend, method: str, path: str, query: dict[str, list[str]]
) -> tuple[int, bytes, str]:
    """Answer one request: ``(status, body, content type)``."""
    view = backend.view
    if path == "/healthz":
        return 200, b"ok\n", "text/plain"
    if path == "/readyz":
        return (
            (200, b"ready\n", "text/plain")
            if backend.ready
            else (503, b"not ready\n", "text/plain")
        )
    if path == "/metrics":
        return 200, generate_latest(backend.metrics_registry), CONTENT_TYPE_LATEST
    if path == _HOSTS:
        if method != "GET":
            return _problem(405, f"{method} not allowed on {path}")
        wanted = query.get("state", [None])[0]
        if wanted is not None and wanted not in _STATES:
            return _problem(400, f"state must be one of {sorted(_STATES)}, got {wanted!r}")
        hosts = [
            host_json(backend, h)
            for h in sorted(view.hosts(), key=lambda h: h.id)
            if wanted is None or h.state.value == wanted
        ]
        return _json(200, hosts)
    if path.startswith(_HOSTS + "/"):
        host_id = urllib.parse.unquote(path[len(_HOSTS) + 1 :])
        try:
            if method == "GET":
                return _json(200, host_json(backend, view.host(host_id)))
            if method == "DELETE":
                backend.evict_host(host_id, Reason.ADMIN)
                return _json(200, {"evicted": host_id, "reason": Reason.ADMIN.value})
        except NotFound as exc:
            return _problem(404, str(exc))
        return _problem(405, f"{method} not allowed on {path}")
    if method != "GET":
        return _problem(405, f"{method} not allowed on {path}")
    if path == _TASKS:
        return _json(200, [task_json(backend, t) for t in sorted(view.tasks(), key=lambda t: t.id)])
    if path.startswith(_TASKS + "/"):
        return _task_route(backend, path[len(_TASKS) + 1 :])
    if path == "/api/v1/schedulers":
        return _json(200, backend.schedulers())
    if path == _LEASE:
        nonce = query.get("nonce", [None])[0]
        if nonce is not None and not _NONCE.fullmatch(nonce):
            return _problem(400, "nonce must be 16 to 64 hexadecimal digits")
        report = backend.lease_report(nonce)
        if report is None:
            return _problem(404, "no registry: this scheduler is not in a cluster")
        return _json(200, report)
    if path == "/api/v1/peers":
        task_id = query.get("task", [None])[0]
        try:
            limit = int(query.get("limit", [str(_DEFAULT_PEER_LIMIT)])[0])
        except ValueError:
            return _problem(400, "limit must be an integer")
        peers = view.peers_of_task(task_id) if task_id is not None else view.peers()
        ordered = sorted(peers, key=lambda p: p.id)
        return _json(200, [peer_json(backend, p) for p in ordered[: max(0, limit)]])
    return _problem(404, f"no route for {path}")
