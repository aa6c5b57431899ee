"""The composition root: builds the state, the registry, the sessions and the loops, and runs them.

    root nursery
    ├── peers' listener (its own cancel scope: stop accepting first)   _listeners.py
    ├── session nursery ── one nursery per session                     _connections.py, _session.py
    ├── admin HTTP (hypercorn, trio worker)                            _listeners.py, _admin.py
    ├── GC loops: host, peer, task manager                             _gc.py
    ├── the job loop: preheat jobs (scheduler.jobs)                    _jobs.py
    └── with --registry: the cluster registrar (lease keeper)          _registrar.py, _cluster.py

The service reads ``trio.current_time()`` and hands it to the core; it never
decides anything the core, a policy or the session rules can decide.
"""

from __future__ import annotations

import functools
import logging
import secrets
import time
from collections.abc import Sequence
from typing import Any, Final, final

import trio
from prometheus_client import CollectorRegistry

from ..core import (
    Event,
    Eviction,
    HostDisconnected,
    HostReconnected,
    PolicySet,
    Reason,
    RecordKind,
    SchedulerState,
    UploadLoad,
)
from ..policies import load_policies, plugins_in_force
from ..registry import Identity
from ..session import (
    EndCause,
    HostSessions,
    SessionLimits,
    SessionOwner,
    owner_elsewhere,
    route_unsolicited,
)
from ..transport import SharedReader, batched_reads_supported
from ._admin import AdminView, make_admin_app
from ._auth import AdminGuard, TokenVerifier, peer_guard, server_ssl_context
from ._cluster import cluster_identity, default_name, members_json, open_registrar
from ._config import ServiceConfig, risky_modes
from ._connections import Connections
from ._console import ConsoleStreams, summarize
from ._evictions import EvictionLog
from ._fds import raise_open_files_limit
from ._gate import WS_PATH
from ._gc import GcLoops
from ._jobs import JobRunner, JobsCollector, job_json
from ._listeners import serve_admin, serve_peers, url_host
from ._logging import fields
from ._metrics import Metrics
from ._registrar import Registrar
from ._session import Session, SessionEnv, SessionTimers
from ._throttle import AUTH_LOG_ADDRESSES, AUTH_LOG_INTERVAL, LogThrottle, log_throttled

log = logging.getLogger("scheduler.service")
gc_log = logging.getLogger("scheduler.gc")
admin_log = logging.getLogger("scheduler.admin")

#: Children pushed per slice of deferred pushes (a few ms of decisions at most).
PUSH_SLICE: Final = 20
#: Seconds between two wake-ups of the loop-lag probe (4 a second: negligible work).
LAG_PROBE_PERIOD: Final = 0.25


@final
class SchedulerService:
    """Owns the state, the sessions and the loops of one ``scheduler serve`` process.

    It is also the admin API's backend (:class:`~._admin.AdminBackend`).
    """

    def __init__(self, config: ServiceConfig, policies: PolicySet | None = None) -> None:
        self.config = config
        self.metrics: Metrics
        # Read the keys and certificates first: a bad file stops start-up (ConfigError).
        verifier = TokenVerifier.from_config(config)
        self.peers_ssl = server_ssl_context(config, client_certificates=True)
        self.admin_ssl = server_ssl_context(config, client_certificates=False)
        self.admin_guard = AdminGuard.from_config(config, verifier)
        #: Refused admin requests are logged once per address per interval, all counted.
        self._admin_refusals = LogThrottle(AUTH_LOG_INTERVAL, AUTH_LOG_ADDRESSES)
        #: Restarts of the admin listener: one line per interval, all counted.
        self._admin_restarts = LogThrottle(AUTH_LOG_INTERVAL, 1)
        if policies is None:
            policies = build_policies(config)
        policies.on_error = self._plugin_error
        policies.on_veto = self._candidate_vetoed
        now = trio.current_time()
        self.state = SchedulerState(
            policies,
            now=now,
            sweep_interval=config.sweep_interval,
            limits=config.record_limits(),
            # Read both clocks once: timestamps stay stable across API calls.
            wall_offset=time.time() - now,
        )
        self.hosts = HostSessions(self.state)
        #: Drawn once per process start; every ``host_accepted`` carries it, so a client
        #: that reconnects can tell a restarted scheduler (which lost its state).
        self.boot_id = secrets.token_hex(8)
        sessions: set[Session] = set()
        #: Chosen at start-up: one task reads every plain-TCP session's socket where
        #: ``epoll`` exists (Linux); elsewhere each session's reader task reads its own.
        self.reader = SharedReader() if batched_reads_supported() else None
        self.metrics = Metrics(self.state, sessions, self.reader)
        self.timers = SessionTimers(config)
        #: Set when a dropped session deferred pushes (see :meth:`_push_deferred`).
        self._pushes_due = trio.Event()
        env = SessionEnv(
            state=self.state,
            hosts=self.hosts,
            limits=session_limits(config, boot_id=self.boot_id),
            config=config,
            metrics=self.metrics,
            apply=self.apply,
            timers=self.timers,
            reader=self.reader,
            placement=None if config.registry is None else self.task_owner_elsewhere,
        )
        self.connections = Connections(env, sessions, peer_guard(config, verifier))
        #: The last evictions of each kind (``GET /api/v1/evictions``, the console).
        self.evictions = EvictionLog()
        #: The web console's live streams on the admin listener.
        self.console = ConsoleStreams.from_config(config, self.summary, self.metrics)
        self.gc = GcLoops(
            self.state, self.metrics, self.apply, slice_size=config.evictions_per_slice
        )
        #: Preheat jobs (``/api/v1/jobs``) and the loop that runs them.
        self.jobs = JobRunner(
            self.state,
            self.hosts,
            config.job_limits(),
            max_piece_count=config.max_piece_count,
            owner_elsewhere=self.task_owner_elsewhere,
        )
        self.metrics.registry.register(JobsCollector(self.jobs))
        self._serving = False
        self.ws_url = ""
        self.admin_url = ""
        #: With ``--registry``: this process's membership of the cluster.
        self.registrar: Registrar | None = open_registrar(config)
        self._name = config.scheduler_name or default_name()
        if self.registrar is not None:
            self.registrar.register_metrics(self.metrics.registry)

    # --- what the admin API reads and does ----------------------------------------------

    @property
    def view(self) -> AdminView:
        return self.state.view

    @property
    def ready(self) -> bool:
        """Serving, and (with a registry) holding a lease it renewed within the lease, or
        riding out an outage of the registry that every member asked sees too."""
        return self._serving and (self.registrar is None or self.registrar.serving())

    def plugins(self) -> dict[str, Any]:
        """``GET /api/v1/plugins``: the plugins loaded, their settings in force and counts."""
        return plugins_in_force(self.state.policies)

    def schedulers(self) -> list[dict[str, Any]]:
        """``GET /api/v1/schedulers``: the cluster's active members, or this process alone."""
        return members_json(self.registrar, self.identity())

    def summary(self) -> dict[str, Any]:
        """``GET /api/v1/summary`` and the console's stream: counters only, O(1)."""
        return summarize(
            self.state.view, len(self.sessions), self.metrics, self.evictions, self.jobs.ledger
        )

    def lease_report(self, nonce: str | None) -> dict[str, Any] | None:
        """``GET /api/v1/lease``: this member's lease (None without a registry)."""
        return None if self.registrar is None else self.registrar.lease_report(nonce)

    def task_owner_elsewhere(self, task_id: str) -> tuple[str, str] | None:
        """The cluster member (name, URL) that owns ``task_id``, if not this one (``moved``)."""
        registrar = self.registrar
        if registrar is None:
            return None
        members = {m.name: m.url for m in registrar.members()}
        return owner_elsewhere(task_id, self._name, members)

    def identity(self) -> Identity:
        """Who this process is in the cluster (its bound URLs once it runs)."""
        config = self.config
        return cluster_identity(
            cluster_id=config.cluster_id,
            name=config.scheduler_name,
            boot_id=self.boot_id,
            ws_url=self.ws_url,
            admin_url=self.admin_url,
            advertise=config.advertise,
            advertise_admin=config.advertise_admin,
        )

    @property
    def metrics_registry(self) -> CollectorRegistry:
        return self.metrics.registry

    @property
    def sessions(self) -> set[Session]:
        return self.connections.sessions

    def wall_time(self, t: float) -> float:
        """Convert a core timestamp (trio clock) into Unix time, with one fixed offset."""
        return self.state.view.wall_time(t)

    def session_of(self, host_id: str) -> SessionOwner | None:
        return self.hosts.owner_of(host_id)

    def upload_load(self, host_id: str) -> UploadLoad:
        return self.state.view.upload_load(host_id, trio.current_time())

    def has_session(self, host_id: str) -> bool:
        return self.hosts.owner_of(host_id) is not None

    def submit_job(self, body: object) -> dict[str, Any]:
        """``POST /api/v1/jobs``: JobRequestError (400) or JobRefused (its status)."""
        job = self.jobs.submit(body)
        return job_json(job, self.jobs.ledger, self.wall_time, hosts=True)

    def job(self, job_id: str) -> dict[str, Any] | None:
        """``GET /api/v1/jobs/{id}``: the job with each host's progress (None: unknown)."""
        job = self.jobs.ledger.get(job_id)
        return None if job is None else job_json(job, self.jobs.ledger, self.wall_time, hosts=True)

    def recent_jobs(self, limit: int) -> list[dict[str, Any]]:
        """``GET /api/v1/jobs``: the last ``limit`` jobs, newest first, without their hosts."""
        ledger = self.jobs.ledger
        return [job_json(job, ledger, self.wall_time, hosts=False) for job in ledger.recent(limit)]

    def evict_host(self, host_id: str, reason: str = Reason.ADMIN) -> list[Event]:
        """Evict a host now (admin API). Raises NotFound."""
        events = self.state.evict(RecordKind.HOST, host_id, reason, trio.current_time())
        self.apply(events)
        return events

    # --- running ------------------------------------------------------------------------

    async def run(
        self,
        *,
        shutdown: trio.Event | None = None,
        task_status: trio.TaskStatus[tuple[str, str]] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Serve until ``shutdown`` is set (or cancelled), then shut down gracefully.

        Reports ``(peers' URL, admin URL)``; a listener that cannot bind raises
        :class:`~._listeners.ListenError` (inside an ExceptionGroup).
        """
        if shutdown is None:
            shutdown = trio.Event()
        config = self.config
        for risk in risky_modes(config):
            log.warning(risk)
        self._raise_open_files_limit()
        async with trio.open_nursery() as root:
            session_nursery: trio.Nursery = await root.start(_hold_nursery)
            listener_scope = trio.CancelScope()
            ws_port = await root.start(self._serve_peers, listener_scope, session_nursery)
            scheme = "wss" if self.peers_ssl is not None else "ws"
            self.ws_url = f"{scheme}://{url_host(config.bind)}:{ws_port}{WS_PATH}"
            admin_stop, admin_done = trio.Event(), trio.Event()
            binds: list[str] = await root.start(
                functools.partial(
                    serve_admin,
                    make_admin_app(
                        self, self.admin_guard, self._admin_refused, console=self.console
                    ),
                    config.admin_host,
                    config.admin_port,
                    stop=admin_stop,
                    done=admin_done,
                    ssl_context=self.admin_ssl,
                    on_restart=self._admin_restarted,
                )
            )
            root.start_soon(self.run_gc_loops)
            root.start_soon(self.jobs.run)
            self.admin_url = binds[0] if binds else ""
            if self.registrar is not None:
                await root.start(self.registrar.run, self.identity())
            self._serving = True
            log.info(
                "serving",
                extra=fields(
                    ws=self.ws_url, admin=self.admin_url, plugins=self.state.policies.names
                ),
            )
            task_status.started((self.ws_url, self.admin_url))
            await shutdown.wait()
            self._serving = False
            log.info("shutting down", extra=fields(sessions=len(self.sessions)))
            if self.registrar is not None:
                # Leave the cluster first (one transaction, bounded by the registry's
                # timeout), so that no one is sent here while the sessions close.
                await self.registrar.leave()
            listener_scope.cancel()
            self.console.stop()
            self.connections.end_all(EndCause.SHUTDOWN)
            # One deadline for the whole graceful part; what is left is cancelled.
            with trio.move_on_after(config.shutdown_timeout):
                await self.connections.wait_idle()
                admin_stop.set()
                await admin_done.wait()
            admin_stop.set()
            root.cancel_scope.cancel()

    def _raise_open_files_limit(self) -> None:
        """One socket per session: raise RLIMIT_NOFILE and say how many sessions fit."""
        limit = raise_open_files_limit()
        level = logging.WARNING if limit.sessions < self.config.max_sessions else logging.INFO
        log.log(
            level,
            "open files limit %d (was %d, hard %d): room for %d sessions (max_sessions %d)",
            limit.soft,
            limit.before,
            limit.hard,
            limit.sessions,
            self.config.max_sessions,
            extra=fields(sessions=limit.sessions),
        )

    async def _serve_peers(
        self,
        scope: trio.CancelScope,
        session_nursery: trio.Nursery,
        task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        with scope:
            await serve_peers(
                self.handle_stream,
                self.config.bind,
                self.config.port,
                session_nursery,
                task_status=task_status,
                ssl_context=self.peers_ssl,
            )

    async def handle_stream(self, stream: trio.abc.Stream) -> None:
        """Run one peers' connection (tests feed memory streams here)."""
        await self.connections.handle_stream(stream)

    async def run_gc_loops(self) -> None:
        """The host, peer and task manager GC loops, the sessions' timer task, the
        sessions' shared reader and the deferred pushes; runs until cancelled."""
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self.timers.run)
            if self.reader is not None:
                await nursery.start(self.reader.run)
            nursery.start_soon(self._push_deferred)
            nursery.start_soon(self._probe_loop_lag)
            await self.gc.run()

    async def _probe_loop_lag(self) -> None:
        """Sleep :data:`LAG_PROBE_PERIOD` again and again; how late each wake-up comes is
        how long something held the event loop (``scheduler_event_loop_lag_seconds``)."""
        lag = self.metrics.loop_lag
        while True:
            asked = trio.current_time() + LAG_PROBE_PERIOD
            await trio.sleep_until(asked)
            lag.observe(max(0.0, trio.current_time() - asked))

    async def _push_deferred(self) -> None:
        """Send the pushes that dropped sessions deferred, once per batch of drops.

        A session that drops marks its host unschedulable at once and defers the
        pushes to the children of the host's peers (``disconnect_host(...,
        defer_pushes=True)``). This task is woken by the first such drop and runs
        after every task of that scheduling batch, so when forty sessions of a rack
        end together, all forty hosts are marked before one decision per child is
        made, and none of those decisions names a host that is about to be marked.
        """
        state = self.state
        while True:
            await self._pushes_due.wait()
            self._pushes_due = trio.Event()
            # In slices, yielding between them: sessions still ending are marked
            # first, and the later slices' decisions exclude their hosts too.
            while state.pushes_pending:
                self.apply(state.flush_pushes(trio.current_time(), PUSH_SLICE))
                await trio.lowlevel.checkpoint()

    # --- applying core events -----------------------------------------------------------

    def apply(self, events: Sequence[Event]) -> None:
        """Turn core events into metrics, log lines, messages and session closes; wake the GC.

        Every mutation's events pass here, whoever made it (a session, a GC loop,
        the admin API), so this is where proactive pushes and seed fetches are
        queued on their hosts' sessions: at once, in the same turn, never blocking.
        """
        self.metrics.observe(events)
        routed = route_unsolicited(self.state.view, self.hosts, events)
        self.metrics.observe_routed(routed)
        if self.state.pushes_pending:
            self._pushes_due.set()
        for event in events:
            if isinstance(event, Eviction):
                self._on_eviction(event)
            elif isinstance(event, HostDisconnected | HostReconnected):
                log.info(type(event).__name__, extra=fields(host_id=event.host_id))
        self.gc.wake()

    def _on_eviction(self, event: Eviction) -> None:
        self.evictions.record(event)
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
        self.hosts.evicted(event.record_id, event.reason)

    def _admin_refused(self, reason: str, address: str) -> None:
        self.metrics.auth_failures.labels("admin", reason).inc()
        log_throttled(
            admin_log,
            self._admin_refusals,
            "admin request refused",
            address,
            trio.current_time(),
            reason=reason,
        )

    def _admin_restarted(self, error: BaseException) -> None:
        self.metrics.admin_restarts.inc()
        while isinstance(error, BaseExceptionGroup) and len(error.exceptions) == 1:
            error = error.exceptions[0]
        for line in self._admin_restarts.event("admin", trio.current_time()):
            admin_log.warning(
                "admin listener served again after a connection's error dropped its connections",
                extra=fields(error=repr(error)[:200], suppressed=line.suppressed),
            )

    def _candidate_vetoed(self, plugin: str, reason: str) -> None:
        metrics = getattr(self, "metrics", None)
        if metrics is not None:
            metrics.candidate_vetoes.labels(plugin, reason).inc()

    def _plugin_error(self, plugin: str, hook: str, exc: BaseException) -> None:
        # Called from inside PolicySet; metrics may not exist yet during start-up.
        metrics = getattr(self, "metrics", None)
        if metrics is not None:
            metrics.plugin_errors.labels(plugin, hook).inc()


def session_limits(config: ServiceConfig, *, boot_id: str | None = None) -> SessionLimits:
    """The settings the session rules apply, from the service's config."""
    return SessionLimits(
        message_rate=config.message_rate,
        message_burst=config.message_burst,
        rate_violation_limit=config.rate_violation_limit,
        boot_id=boot_id,
        ping_interval=config.ping_interval,
        ping_timeout=config.ping_timeout,
        announce_timeout=config.announce_timeout,
        error_limit=config.error_limit,
        error_window=config.error_window,
        outbox_size=config.outbox_size,
        refused_networks=config.refused_networks(),
    )


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
