"""Prometheus metrics, prefix ``scheduler_``, in a registry owned by one service."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Iterator
from typing import TYPE_CHECKING, final

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from ..core import Event, Eviction, RecordKind

if TYPE_CHECKING:
    from ..core import SchedulerState

_LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 7200)
_LATENESS_BUCKETS = (0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 30, 60, 300, 900)
_GC_BUCKETS = (0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5)


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


@final
class Metrics:
    def __init__(self, state: SchedulerState, sessions: Collection[object]) -> None:
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
        self.session_ends = Counter(
            "scheduler_session_ends", "Sessions ended, by cause", ["cause"], registry=r
        )
        self.handshake_rejections = Counter(
            "scheduler_handshake_rejections", "Rejected handshakes", ["status"], registry=r
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
        for manager in ("host", "peer", "task"):  # export every series from the start
            self.gc_runs.labels(manager)
            self.gc_duration.labels(manager)
        r.register(_StateCollector(state, sessions))

    def observe(self, events: Iterable[Event]) -> None:
        for event in events:
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
