"""The admin HTTP API: a small ASGI app served by hypercorn on its own port.

Routes::

    GET    /healthz              liveness of the process
    GET    /readyz               200 once the listeners are up, 503 while shutting down
    GET    /metrics              Prometheus text exposition
    GET    /api/v1/hosts         ?state=connected|disconnected
    GET    /api/v1/hosts/{id}
    DELETE /api/v1/hosts/{id}    evict with reason "admin" (closes its session with 4001)
    GET    /api/v1/tasks
    GET    /api/v1/peers         ?task=ID&limit=N
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Awaitable, Callable, MutableMapping
from typing import TYPE_CHECKING, Any, Final

import orjson
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from ..core import Host, HostState, NotFound, Peer, Reason, Task

if TYPE_CHECKING:
    from ._service import SchedulerService

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

_HOSTS: Final = "/api/v1/hosts"
_STATES: Final = {s.value for s in (HostState.CONNECTED, HostState.DISCONNECTED)}
_DEFAULT_PEER_LIMIT: Final = 1000


def host_json(service: SchedulerService, host: Host) -> dict[str, Any]:
    state = service.state
    return {
        "id": host.id,
        "hostname": host.info.hostname,
        "ip": host.info.ip,
        "port": host.info.port,
        "download_port": host.info.download_port,
        "type": host.info.type.value,
        "idc": host.info.idc,
        "location": host.info.location,
        "state": host.state.value,
        "announce_interval": host.announce_interval,
        "created_at": service.wall_time(host.created_at),
        "last_announce_at": service.wall_time(host.last_announce_at),
        "last_contact_at": service.wall_time(host.last_contact_at),
        "disconnected_at": (
            None if host.disconnected_at is None else service.wall_time(host.disconnected_at)
        ),
        "concurrent_upload_limit": host.info.concurrent_upload_limit,
        "upload_count": host.upload_count,
        "peers": state.peer_count_of_host(host.id),
        "session": service.session_of(host.id) is not None,
    }


def task_json(service: SchedulerService, task: Task) -> dict[str, Any]:
    return {
        "id": task.id,
        "url": task.url,
        "state": task.state.value,
        "piece_length": task.piece_length,
        "content_length": task.content_length,
        "total_piece_count": task.total_piece_count,
        "peers": service.state.peer_count_of_task(task.id),
        "back_to_source_count": task.back_to_source_count,
        "created_at": service.wall_time(task.created_at),
        "updated_at": service.wall_time(task.updated_at),
    }


def peer_json(service: SchedulerService, peer: Peer) -> dict[str, Any]:
    return {
        "id": peer.id,
        "task_id": peer.task_id,
        "host_id": peer.host_id,
        "state": peer.state.value,
        "finished_pieces": len(peer.finished_pieces),
        "parents": sorted(peer.parents),
        "created_at": service.wall_time(peer.created_at),
        "updated_at": service.wall_time(peer.updated_at),
    }


def make_admin_app(service: SchedulerService) -> ASGIApp:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] != "http":  # pragma: no cover - hypercorn only sends these
            return
        status, body, content_type = route(
            service,
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
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})

    return app


def _json(status: int, payload: Any) -> tuple[int, bytes, str]:
    return status, orjson.dumps(payload), "application/json"


def _problem(status: int, message: str) -> tuple[int, bytes, str]:
    return _json(status, {"error": message})


def route(
    service: SchedulerService, method: str, path: str, query: dict[str, list[str]]
) -> tuple[int, bytes, str]:
    """Answer one request: ``(status, body, content type)``."""
    state = service.state
    if path == "/healthz":
        return 200, b"ok\n", "text/plain"
    if path == "/readyz":
        return (
            (200, b"ready\n", "text/plain")
            if service.ready
            else (503, b"not ready\n", "text/plain")
        )
    if path == "/metrics":
        return 200, generate_latest(service.metrics.registry), CONTENT_TYPE_LATEST
    if path == _HOSTS:
        if method != "GET":
            return _problem(405, f"{method} not allowed on {path}")
        wanted = query.get("state", [None])[0]
        if wanted is not None and wanted not in _STATES:
            return _problem(400, f"state must be one of {sorted(_STATES)}, got {wanted!r}")
        hosts = [
            host_json(service, h)
            for h in sorted(state.hosts(), key=lambda h: h.id)
            if wanted is None or h.state.value == wanted
        ]
        return _json(200, hosts)
    if path.startswith(_HOSTS + "/"):
        host_id = urllib.parse.unquote(path[len(_HOSTS) + 1 :])
        try:
            if method == "GET":
                return _json(200, host_json(service, state.host(host_id)))
            if method == "DELETE":
                service.evict_host(host_id, Reason.ADMIN)
                return _json(200, {"evicted": host_id, "reason": Reason.ADMIN.value})
        except NotFound as exc:
            return _problem(404, str(exc))
        return _problem(405, f"{method} not allowed on {path}")
    if method != "GET":
        return _problem(405, f"{method} not allowed on {path}")
    if path == "/api/v1/tasks":
        return _json(
            200, [task_json(service, t) for t in sorted(state.tasks(), key=lambda t: t.id)]
        )
    if path == "/api/v1/peers":
        task_id = query.get("task", [None])[0]
        try:
            limit = int(query.get("limit", [str(_DEFAULT_PEER_LIMIT)])[0])
        except ValueError:
            return _problem(400, "limit must be an integer")
        peers = state.peers_of_task(task_id) if task_id is not None else list(state.peers())
        peers.sort(key=lambda p: p.id)
        return _json(200, [peer_json(service, p) for p in peers[: max(0, limit)]])
    return _problem(404, f"no route for {path}")
