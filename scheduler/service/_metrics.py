"""Prometheus metrics, prefix ``scheduler_``, in a registry owned by one service."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Iterator
from typing import TYPE_CHECKING, Final, final

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from ..core import Event, Eviction, PeerScheduled, RecordKind

if TYPE_CHECKING:
    from ..core import SchedulerState
    from ..session import Routed
    from ..transport import SharedReader

_LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 7200)
_LATENESS_BUCKETS = (0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 30, 60, 300, 900)
#: Loop lag: a healthy loop wakes within a millisecond; 100 ms stalls every session.
_LAG_BUCKETS: Final = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
_GC_BUCKETS = (0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5)
_DECISION_BUCKETS = (1e-5, 2.5e-5, 5e-5, 1e-4, 2e-4, 5e-4, 0.001, 0.0025, 0.005, 0.01, 0.05)


@final
class _StateCollector(Collector):
    """Gauges read from the state's own counters at scrape time: O(1), never a scan."""

    def __init__(self, state: SchedulerState, sessions: Collection[object]) -> None:
        self._state = state
        self._sessions = sessions

    def collect(self) -> Iterator[GaugeMetricFamily]:
        hosts = GaugeMetricFamily("scheduler_hosts", "Hosts by connection state", labels=["state"])
        for host_state, count in self._state.host_counts_by_state().items():
            hosts.add_metric([host_state.value], count)
        yield hosts
        peers = GaugeMetricFamily("scheduler_peers", "Peers by state", labels=["state"])
        for peer_state, count in self._state.peer_counts_by_state().items():
            peers.add_metric([peer_state.value], count)
        yield peers
        yield GaugeMetricFamily("scheduler_tasks", "Tasks", value=self._state.task_count())
        yield GaugeMetricFamily(
            "scheduler_sessions", "Open WebSocket sessions", value=len(self._sessions)
        )


class _ReaderCollector(Collector):
    """The sessions' shared reader (:mod:`._reader`), read at scrape time."""

    def __init__(self, reader: SharedReader) -> None:
        self._reader = reader

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        reader = self._reader
        yield GaugeMetricFamily(
            "scheduler_reader_sessions",
            "Sessions whose socket the shared reader watches (waiting for their next frame)",
            value=reader.waiting,
        )
        yield CounterMetricFamily(
            "scheduler_reader_reads",
            "Reads the shared reader fed with nothing left for the reader task",
            value=reader.handled,
        )
        yield CounterMetricFamily(
            "scheduler_reader_handbacks",
            "Reads after which the shared reader woke a session's reader task",
            value=reader.handed_back,
        )


@final
class Metrics:
    def __init__(
        self,
        state: SchedulerState,
        sessions: Collection[object],
        reader: SharedReader | None = None,
    ) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.host_evictions = Counter(
            "scheduler_host_evictions", "Hosts evicted", ["reason"], registry=r
        )
        self.peer_evictions = Counter(
            "scheduler_peer_evictions", "Peers evicted", ["reason"], registry=r
        )
        self.task_evictions = Counter(
            "scheduler_task_evictions", "Tasks evicted", ["reason"], registry=r
        )
        self.gc_runs = Counter("scheduler_gc_runs", "GC runs", ["manager"], registry=r)
        self.messages = Counter(
            "scheduler_messages", "Client messages handled", ["type"], registry=r
        )
        self.message_errors = Counter(
            "scheduler_message_errors", "Error replies sent", ["code"], registry=r
        )
        self.plugin_errors = Counter(
            "scheduler_plugin_errors", "Plugin hooks that raised", ["plugin", "hook"], registry=r
        )
        self.candidate_vetoes = Counter(
            "scheduler_candidate_vetoes",
            "Candidate parents a plugin vetoed (scheduler_candidate_veto), by plugin and reason",
            ["plugin", "reason"],
            registry=r,
        )
        self.session_ends = Counter(
            "scheduler_session_ends", "Sessions ended, by cause", ["cause"], registry=r
        )
        self.handshake_rejections = Counter(
            "scheduler_handshake_rejections", "Rejected handshakes", ["status"], registry=r
        )
        self.connection_rejections = Counter(
            "scheduler_connection_rejections",
            "Connections on the peers' port refused or closed by a limit, by reason",
            ["reason"],
            registry=r,
        )
        self.rate_limited = Counter(
            "scheduler_rate_limited",
            "Messages answered rate_limited (over a session's message rate)",
            registry=r,
        )
        self.auth_failures = Counter(
            "scheduler_auth_failures",
            "Refused credentials, by listener (peers, admin) and reason",
            ["listener", "reason"],
            registry=r,
        )
        self.gc_duration = Histogram(
            "scheduler_gc_duration_seconds",
            "Time spent in one GC run",
            ["manager"],
            buckets=_GC_BUCKETS,
            registry=r,
        )
        self.eviction_lateness = Histogram(
            "scheduler_eviction_lateness_seconds",
            "Eviction time minus the deadline that caused it",
            buckets=_LATENESS_BUCKETS,
            registry=r,
        )
        self.detection_latency = Histogram(
            "scheduler_detection_latency_seconds",
            "Host eviction time minus its last contact",
            ["reason"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.schedule_decisions = Counter(
            "scheduler_schedule_decisions",
            "Scheduling decisions, by action and cause",
            ["action", "cause"],
            registry=r,
        )
        self.dead_parent_pushes = Counter(
            "scheduler_dead_parent_pushes",
            "Unsolicited schedule messages queued for a child whose parent became unschedulable",
            registry=r,
        )
        self.fetch_tasks = Counter(
            "scheduler_fetch_tasks", "fetch_task messages queued for a seed host", registry=r
        )
        self.unsolicited_dropped = Counter(
            "scheduler_unsolicited_dropped",
            "Unsolicited messages dropped, by type and reason",
            ["type", "reason"],
            registry=r,
        )
        self.decision_seconds = Histogram(
            "scheduler_schedule_decision_seconds",
            "Time the core took to answer one register_peer (registration and decision) "
            "or reschedule",
            buckets=_DECISION_BUCKETS,
            registry=r,
        )
        self.loop_lag = Histogram(
            "scheduler_event_loop_lag_seconds",
            "How late a wake-up of the loop-lag probe came (something else held the event loop)",
            buckets=_LAG_BUCKETS,
            registry=r,
        )
        self.admin_restarts = Counter(
            "scheduler_admin_restarts",
            "Times the admin listener's HTTP server was started again after a connection's "
            "error ended it",
            registry=r,
        )
        self.console_streams = Gauge(
            "scheduler_console_streams",
            "Web console live streams open on the admin listener",
            registry=r,
        )
        self.console_stream_ends = Counter(
            "scheduler_console_stream_ends",
            "Web console live streams ended, by cause",
            ["cause"],
            registry=r,
        )
        for manager in ("host", "peer", "task"):  # export every series from the start
            self.gc_runs.labels(manager)
            self.gc_duration.labels(manager)
        r.register(_StateCollector(state, sessions))
        if reader is not None:
            r.register(_ReaderCollector(reader))
        self._message_counts: dict[str, Counter] = {}

    def count_message(self, message_type: str) -> None:
        """Count one client message (the labelled child is looked up once per type)."""
        child = self._message_counts.get(message_type)
        if child is None:
            child = self._message_counts[message_type] = self.messages.labels(message_type)
        child.inc()

    def observe_routed(self, routed: Routed) -> None:
        """Count what :func:`~scheduler.session.route_unsolicited` did with a batch."""
        if routed.pushes:
            self.dead_parent_pushes.inc(routed.pushes)
        if routed.fetch_tasks:
            self.fetch_tasks.inc(routed.fetch_tasks)
        for (message_type, reason), count in routed.dropped.items():
            self.unsolicited_dropped.labels(message_type, reason).inc(count)

    def observe(self, events: Iterable[Event]) -> None:
        for event in events:
            if isinstance(event, PeerScheduled):
                self.schedule_decisions.labels(event.decision.action.value, event.cause).inc()
                continue
            if not isinstance(event, Eviction):
                continue
            if event.kind is RecordKind.HOST:
                self.host_evictions.labels(event.reason).inc()
                self.detection_latency.labels(event.reason).observe(event.detection_latency)
            elif event.kind is RecordKind.PEER:
                self.peer_evictions.labels(event.reason).inc()
            else:
                self.task_evictions.labels(event.reason).inc()
            lateness = event.lateness
            if lateness is not None:
                self.eviction_lateness.observe(max(0.0, lateness))
