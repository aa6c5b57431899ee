"""The Trio shell around the core: listeners, sessions and GC loops in one nursery tree.

    root nursery
    ├── WebSocket listener (its own cancel scope: stop accepting first)
    ├── session nursery ── one nursery per session (reader, handler, heartbeat)
    ├── admin HTTP (hypercorn, trio worker)
    └── GC loops: host, peer, task manager; each sleeps until the core's next
        deadline for its kind, or until woken because an earlier one appeared

The service reads ``trio.current_time()`` and hands it to the core; it never
decides anything the core or a policy can decide.
"""

from __future__ import annotations

import functools
import logging
import math
import time
from collections.abc import Iterable
from typing import Final, final

import hypercorn.config
import hypercorn.trio
import trio
from trio_websocket import ConnectionClosed, WebSocketRequest, wrap_server_stream

from ..core import (
    Event,
    Eviction,
    HostDisconnected,
    HostReconnected,
    HostState,
    PolicySet,
    Reason,
    RecordKind,
    SchedulerState,
)
from ..policies import load_policies
from ..protocol import SUBPROTOCOL
from ._admin import make_admin_app
from ._config import ServiceConfig
from ._logging import fields
from ._metrics import Metrics
from ._session import EndCause, Session

log = logging.getLogger("scheduler.service")
gc_log = logging.getLogger("scheduler.gc")

WS_PATH: Final = "/ws"
_MANAGERS: Final = {
    "host": RecordKind.HOST,
    "peer": RecordKind.PEER,
    "task": RecordKind.TASK,
}


@final
class SchedulerService:
    """Owns the state, the sessions and the loops of one ``scheduler serve`` process."""

    def __init__(self, config: ServiceConfig, policies: PolicySet | None = None) -> None:
        self.config = config
        self.metrics: Metrics
        self.sessions: set[Session] = set()
        self._host_sessions: dict[str, Session] = {}
        if policies is None:
            policies = build_policies(config)
        policies.on_error = self._plugin_error
        self.state = SchedulerState(
            policies, now=trio.current_time(), sweep_interval=config.sweep_interval
        )
        self.metrics = Metrics(self.state, self.sessions)
        self._wakeups = {kind: trio.Event() for kind in RecordKind}
        self._sleeping_until = {kind: math.inf for kind in RecordKind}
        self._no_sessions = trio.Event()
        self._no_sessions.set()
        self._handshakes = 0
        # Read both clocks once: timestamps stay stable across API calls.
        self._wall_offset = time.time() - trio.current_time()
        self.ready = False
        self.ws_url = ""
        self.admin_url = ""

    # --- time ---------------------------------------------------------------------------

    def wall_time(self, t: float) -> float:
        """Convert a core timestamp (trio clock) into Unix time, with one fixed offset."""
        return self._wall_offset + t

    # --- running ------------------------------------------------------------------------

    async def run(
        self,
        *,
        shutdown: trio.Event | None = None,
        task_status: trio.TaskStatus[tuple[str, str]] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Serve until ``shutdown`` is set (or cancelled), then shut down gracefully."""
        if shutdown is None:
            shutdown = trio.Event()
        config = self.config
        async with trio.open_nursery() as root:
            session_nursery: trio.Nursery = await root.start(_hold_nursery)
            listener_scope = trio.CancelScope()
            ws_port = await root.start(self._serve_websocket, listener_scope, session_nursery)
            admin_stop, admin_done = trio.Event(), trio.Event()
            binds: list[str] = await root.start(self._serve_admin, admin_stop, admin_done)
            root.start_soon(self.run_gc_loops)
            self.ws_url = f"ws://{_url_host(config.bind)}:{ws_port}{WS_PATH}"
            self.admin_url = binds[0] if binds else ""
            self.ready = True
            log.info(
                "serving",
                extra=fields(
                    ws=self.ws_url, admin=self.admin_url, plugins=self.state.policies.names
                ),
            )
            task_status.started((self.ws_url, self.admin_url))
            await shutdown.wait()
            self.ready = False
            log.info("shutting down", extra=fields(sessions=len(self.sessions)))
            listener_scope.cancel()
            for session in list(self.sessions):
                session.end(EndCause.SHUTDOWN)
            # One deadline for the whole graceful part; what is left is cancelled.
            with trio.move_on_after(config.shutdown_timeout):
                await self._no_sessions.wait()
                admin_stop.set()
                await admin_done.wait()
            admin_stop.set()
            root.cancel_scope.cancel()

    async def _serve_admin(
        self,
        stop: trio.Event,
        done: trio.Event,
        task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        try:
            await hypercorn.trio.serve(
                make_admin_app(self),  # type: ignore[arg-type]
                _hypercorn_config(self.config),
                shutdown_trigger=stop.wait,
                task_status=task_status,
            )
        finally:
            done.set()

    async def _serve_websocket(
        self,
        scope: trio.CancelScope,
        session_nursery: trio.Nursery,
        task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Accept TCP connections and run each as a session in ``session_nursery``."""
        config = self.config
        with scope:
            async with trio.open_nursery() as nursery:
                listeners: list[trio.SocketListener] = await nursery.start(
                    functools.partial(
                        trio.serve_tcp,
                        self.handle_stream,
                        config.port,
                        host=config.bind,
                        handler_nursery=session_nursery,
                    )
                )
                task_status.started(listeners[0].socket.getsockname()[1])

    async def handle_stream(self, stream: trio.abc.Stream) -> None:
        """One connection: handshake, session, close. Every exception is contained here.

        The connection's nursery is ours rather than trio-websocket's, so an
        error in its background reader (e.g. wsproto refusing a pong while we
        close) ends this session only, never the server.
        """
        config = self.config
        try:
            async with trio.open_nursery() as nursery:
                with trio.move_on_after(config.announce_timeout) as handshake:
                    request = await wrap_server_stream(
                        nursery,
                        stream,
                        message_queue_size=4,
                        max_message_size=config.max_message_size,
                    )
                if not handshake.cancelled_caught:
                    await self.handle_request(request)
                nursery.cancel_scope.cancel()
        except* trio.Cancelled:
            raise
        except* (ConnectionClosed, trio.BrokenResourceError, trio.ClosedResourceError):
            pass
        except* Exception as group:
            for exc in group.exceptions:
                log.error("connection failed", exc_info=exc)  # noqa: TRY400 - not current
            self.metrics.session_ends.labels("internal").inc()
        finally:
            with trio.CancelScope(shield=True), trio.move_on_after(config.close_timeout):
                await stream.aclose()

    async def handle_request(self, request: WebSocketRequest) -> None:
        """Handshake and run one session; every exception is contained here."""
        try:
            await self._accept_and_run(request)
        except* trio.Cancelled:
            raise
        except* Exception as group:
            for exc in group.exceptions:
                log.error("session failed", exc_info=exc)  # noqa: TRY400 - not current
            self.metrics.session_ends.labels("internal").inc()

    async def _accept_and_run(self, request: WebSocketRequest) -> None:
        config = self.config
        # Count handshakes in flight too: the cap must hold under concurrent connects.
        if len(self.sessions) + self._handshakes >= config.max_sessions:
            self.metrics.handshake_rejections.labels("503").inc()
            with trio.move_on_after(config.send_timeout):
                await request.reject(503, body=b"session limit reached; retry later\n")
            return
        proposed = request.proposed_subprotocols
        if proposed and SUBPROTOCOL not in proposed:
            self.metrics.handshake_rejections.labels("400").inc()
            with trio.move_on_after(config.send_timeout):
                body = f"unsupported subprotocols {list(proposed)}; offer {SUBPROTOCOL}\n"
                await request.reject(400, body=body.encode())
            return
        self._handshakes += 1
        try:
            with trio.move_on_after(config.send_timeout) as accept_scope:
                ws = await request.accept(subprotocol=SUBPROTOCOL if proposed else None)
        finally:
            self._handshakes -= 1
        if accept_scope.cancelled_caught:
            return
        remote = str(request.remote)
        session = Session(self, ws, remote)
        self.sessions.add(session)
        self._no_sessions = trio.Event()
        try:
            await session.run()
        finally:
            self.sessions.discard(session)
            if not self.sessions:
                self._no_sessions.set()

    # --- sessions <-> hosts -------------------------------------------------------------

    def claim_host(self, session: Session) -> None:
        """``session`` announced its host: it owns it now; an older session is replaced."""
        assert session.host_id is not None
        previous = self._host_sessions.get(session.host_id)
        self._host_sessions[session.host_id] = session
        if previous is not None and previous is not session:
            previous.end(EndCause.REPLACED)

    def owns(self, session: Session, host_id: str) -> bool:
        return self._host_sessions.get(host_id) is session

    def session_ended(self, session: Session) -> None:
        """Map a session's end to host state: a drop disconnects, leave/evict already settled."""
        cause = session.cause or EndCause.INTERNAL
        self.metrics.session_ends.labels(cause.value).inc()
        host_id = session.host_id
        if host_id is None or not self.owns(session, host_id):
            return
        del self._host_sessions[host_id]
        if session.settles_host or not self.state.has_host(host_id):
            return
        if self.state.host(host_id).state is HostState.CONNECTED:
            now = trio.current_time()
            log.info("session dropped", extra=fields(host_id=host_id, cause=cause.value))
            self.apply(self.state.disconnect_host(host_id, now))

    def session_of(self, host_id: str) -> Session | None:
        return self._host_sessions.get(host_id)

    # --- applying core events -----------------------------------------------------------

    def apply(self, events: Iterable[Event]) -> None:
        """Turn core events into metrics, log lines and session closes; wake the GC."""
        events = list(events)
        self.metrics.observe(events)
        for event in events:
            if isinstance(event, Eviction):
                self._on_eviction(event)
            elif isinstance(event, HostDisconnected | HostReconnected):
                log.info(type(event).__name__, extra=fields(host_id=event.host_id))
        self._wake_gc()

    def _on_eviction(self, event: Eviction) -> None:
        if event.kind is not RecordKind.HOST:
            gc_log.debug(
                "evicted %s",
                event.kind.value,
                extra=fields(id=event.record_id, reason=event.reason, host_id=event.host_id),
            )
            return
        lateness = event.lateness
        gc_log.info(
            "evicted host",
            extra=fields(
                host_id=event.record_id,
                hostname=event.hostname,
                reason=event.reason,
                detection_latency=round(event.detection_latency, 6),
                lateness=None if lateness is None else round(lateness, 6),
            ),
        )
        session = self._host_sessions.pop(event.record_id, None)
        if session is not None and event.reason != Reason.LEAVE:
            session.end(EndCause.EVICTED, evicted_reason=event.reason)

    def evict_host(self, host_id: str, reason: str = Reason.ADMIN) -> list[Event]:
        """Evict a host now (admin API). Raises NotFound."""
        events = self.state.evict(RecordKind.HOST, host_id, reason, trio.current_time())
        self.apply(events)
        return events

    def _plugin_error(self, plugin: str, hook: str, exc: BaseException) -> None:
        # Called from inside PolicySet; metrics may not exist yet during start-up.
        metrics = getattr(self, "metrics", None)
        if metrics is not None:
            metrics.plugin_errors.labels(plugin, hook).inc()

    # --- GC loops -----------------------------------------------------------------------

    async def run_gc_loops(self) -> None:
        """The host, peer and task manager GC loops; runs until cancelled."""
        async with trio.open_nursery() as nursery:
            for name, kind in _MANAGERS.items():
                nursery.start_soon(self._gc_loop, name, kind)

    def _wake_gc(self) -> None:
        for kind, event in self._wakeups.items():
            wake = self.state.next_deadline((kind,))
            if wake is not None and wake < self._sleeping_until[kind]:
                event.set()

    async def _gc_loop(self, manager: str, kind: RecordKind) -> None:
        metrics = self.metrics
        while True:
            wake = self.state.next_deadline((kind,))
            self._sleeping_until[kind] = math.inf if wake is None else wake
            event = self._wakeups[kind] = trio.Event()
            with trio.move_on_at(self._sleeping_until[kind]):
                await event.wait()
            self._sleeping_until[kind] = -math.inf  # a running loop needs no wake-up
            now = trio.current_time()
            started = time.perf_counter()
            events = self.state.run_gc(now, (kind,))
            metrics.gc_duration.labels(manager).observe(time.perf_counter() - started)
            metrics.gc_runs.labels(manager).inc()
            if events:
                self.apply(events)
            await trio.lowlevel.checkpoint()


def build_policies(config: ServiceConfig) -> PolicySet:
    """The policy set a config asks for; raises ConfigError before anything starts."""
    return load_policies(
        config=config.policy_config(),
        defaults=config.policy_defaults(),
        enable=config.enable,
        disable=config.disable,
        entrypoints=config.entrypoints,
    )


async def _hold_nursery(task_status: trio.TaskStatus[trio.Nursery]) -> None:
    """Open a nursery, hand it to the caller, and keep it open until cancelled."""
    async with trio.open_nursery() as nursery:
        task_status.started(nursery)
        await trio.sleep_forever()


def _hypercorn_config(config: ServiceConfig) -> hypercorn.config.Config:
    hc = hypercorn.config.Config()
    hc.bind = [f"{_url_host(config.admin_host)}:{config.admin_port}"]
    hc.accesslog = None
    hc.errorlog = logging.getLogger("scheduler.admin")
    hc.graceful_timeout = 1.0
    hc.keep_alive_timeout = 5.0
    return hc


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host and not host.startswith("[") else host
