"""The ``phi_accrual`` plugin: suspect a host when its heartbeats are improbably late."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Final, final

from scheduler import hookimpl
from scheduler.core import (
    ConfigError,
    ContactSource,
    Eviction,
    Expiry,
    Host,
    HostState,
    Peer,
    RecordKind,
    StateView,
)
from scheduler.settings import Section, duration, integer, number

from ._detector import MAX_THRESHOLD, HeartbeatWindow, phi, suspicion_delay, suspicion_penalty

#: The eviction reason this plugin gives.
PHI_SUSPECT: Final = "phi_suspect"

#: Contacts that are heartbeats: they arrive on a rhythm the detector can learn.
#: Other messages (piece reports, ...) come in bursts; they prove the host is
#: alive, and so move the deadline, but would distort the interval window.
HEARTBEAT_SOURCES: Final = frozenset(
    {ContactSource.ANNOUNCE, ContactSource.PONG, ContactSource.PING}
)

DEFAULT_THRESHOLD: Final = 8.0
DEFAULT_MIN_STD_DEVIATION: Final = 0.5
DEFAULT_ACCEPTABLE_HEARTBEAT_PAUSE: Final = 0.0
DEFAULT_MAX_SAMPLES: Final = 100
DEFAULT_MIN_SAMPLES: Final = 3
#: A host suspected at the threshold loses this much score: the evaluator scores in [0, 1],
#: so it ranks below every unsuspected candidate.
DEFAULT_SUSPICION_PENALTY: Final = 1.0

#: ``[plugins.phi_accrual]``: every setting, its default and bounds.
SETTINGS: Final = Section.plugin(
    "phi_accrual",
    number(
        "threshold",
        DEFAULT_THRESHOLD,
        "suspect a host once phi reaches this (8: a 1 in 10^8 chance the heartbeat is only late)",
        positive=True,
        maximum=MAX_THRESHOLD,
    ),
    duration(
        "min_std_deviation",
        DEFAULT_MIN_STD_DEVIATION,
        "floor on the spread of heartbeat intervals, so a regular host is not judged too fast",
        positive=True,
    ),
    duration(
        "acceptable_heartbeat_pause",
        DEFAULT_ACCEPTABLE_HEARTBEAT_PAUSE,
        "extra silence tolerated on top of the expected interval",
    ),
    integer("max_samples", DEFAULT_MAX_SAMPLES, "intervals kept per host", minimum=1),
    integer(
        "min_samples",
        DEFAULT_MIN_SAMPLES,
        "intervals needed before the detector has an opinion (<= max_samples)",
        minimum=1,
    ),
    number(
        "suspicion_penalty",
        DEFAULT_SUSPICION_PENALTY,
        "score a candidate parent loses when its host is suspected; proportional below that",
        details="(φ / threshold × this, capped at this). 0 turns the penalty off.",
        minimum=0,
    ),
)


@dataclass(slots=True)
class _History:
    """What the detector knows about one incarnation of one host."""

    created_at: float  # the Host record's, to tell a re-registered host from the old one
    announce_interval: float | None
    last_heartbeat: float
    window: HeartbeatWindow
    #: The next heartbeat starts a new baseline instead of closing an interval:
    #: set on disconnect, so the disconnected gap never enters the window.
    resume: bool = False


@final
class PhiAccrual:
    """A φ-accrual failure detector over each host's heartbeats (announces and pongs).

    It learns the distribution of each host's heartbeat inter-arrival times
    over a bounded window and evicts the host, with reason ``phi_suspect``,
    once the silence since its last contact makes φ reach ``threshold``. It
    has no opinion until ``min_samples`` intervals are observed, nor about a
    disconnected host (the session policy owns those; a reconnect resumes the
    window without the gap). It is additive: the announce TTL stays the backstop.

    Config ``[plugins.phi_accrual]``: see :data:`SETTINGS`.
    """

    name = "phi_accrual"
    settings: ClassVar[Section] = SETTINGS
    threshold: float
    min_std_deviation: float
    acceptable_heartbeat_pause: float
    max_samples: int
    min_samples: int
    suspicion_penalty: float

    def __init__(self) -> None:
        SETTINGS.init(self)
        self._histories: dict[str, _History] = {}

    # --- configuration ------------------------------------------------------------------

    @hookimpl
    def scheduler_configure(self, config: Mapping[str, Mapping[str, Any]]) -> None:
        self.configure(config)

    def configure(self, config: Mapping[str, Mapping[str, Any]]) -> None:
        """Check ``[plugins.phi_accrual]`` whole, then apply it (nothing on an error)."""
        values = SETTINGS.values(config, self)
        if values["min_samples"] > values["max_samples"]:
            raise ConfigError(
                SETTINGS.qualified("min_samples"),
                f"must not exceed max_samples ({values['max_samples']}), "
                f"got {values['min_samples']}",
            )
        # Everything validated: only now change the plugin.
        SETTINGS.assign(self, values)

    # --- queries (pure) ----------------------------------------------------------------------

    def tracked_hosts(self) -> frozenset[str]:
        """Ids of the hosts the detector holds heartbeat state for."""
        return frozenset(self._histories)

    def intervals(self, host_id: str) -> tuple[float, ...]:
        """The host's observed inter-arrival intervals, oldest first (empty if untracked)."""
        history = self._histories.get(host_id)
        return () if history is None else history.window.intervals()

    def suspicion_delay(self, host: Host) -> float | None:
        """Seconds of silence after which ``host`` is suspected, or None for no opinion."""
        model = self._model(host)
        return None if model is None else suspicion_delay(*model, self.threshold)

    def phi(self, host: Host, now: float) -> float | None:
        """The suspicion level of ``host`` at ``now``, or None for no opinion."""
        model = self._model(host)
        return None if model is None else phi(now - host.last_contact_at, *model)

    # --- deadlines (pure) ----------------------------------------------------------------

    @hookimpl
    def scheduler_host_expiry(self, host: Host) -> Expiry | None:
        return self.host_expiry(host)

    def host_expiry(self, host: Host) -> Expiry | None:
        """When a connected host whose rhythm is known becomes suspect (``phi_suspect``)."""
        if host.state is not HostState.CONNECTED:
            return None
        delay = self.suspicion_delay(host)
        if delay is None:
            return None
        # Any contact proves the host alive, so the silence counts from the last one.
        return Expiry(host.last_contact_at + delay, PHI_SUSPECT)

    # --- scheduling (pure) ----------------------------------------------------------------

    @hookimpl
    def scheduler_candidate_score(self, parent: Peer, view: StateView, now: float) -> float | None:
        return self.candidate_score(parent, view, now)

    def candidate_score(self, parent: Peer, view: StateView, now: float) -> float | None:
        """A host going quiet is the last choice as a parent, before it is declared dead."""
        level = self.phi(view.host(parent.host_id), now)
        if level is None:
            return None
        return -suspicion_penalty(level, self.threshold, self.suspicion_penalty)

    # --- notifications: the only place state changes ---------------------------------------

    @hookimpl
    def scheduler_host_contact(self, host: Host, source: ContactSource, now: float) -> None:
        self.heard(host, source, now)

    def heard(self, host: Host, source: ContactSource, now: float) -> None:
        """A contact: a heartbeat (announce, pong, ping) adds its interval to the window."""
        if source not in HEARTBEAT_SOURCES:
            return
        history = self._history_of(host)
        if history is None or history.announce_interval != host.announce_interval:
            # A new host, or a daemon that now announces on another rhythm (usually a
            # restart): what was learnt about the old rhythm says nothing about this one.
            self._histories[host.id] = _History(
                created_at=host.created_at,
                announce_interval=host.announce_interval,
                last_heartbeat=now,
                window=HeartbeatWindow(self.max_samples),
            )
            return
        if history.resume:
            history.resume = False
            history.last_heartbeat = now
            return
        gap = now - history.last_heartbeat
        if gap > 0:  # an announce and a pong at the same instant are one heartbeat
            history.window.add(gap)
            history.last_heartbeat = now

    @hookimpl
    def scheduler_host_disconnected(self, host: Host) -> None:
        self.resume_after_gap(host)

    @hookimpl
    def scheduler_host_reconnected(self, host: Host) -> None:
        # Normally already set by the disconnect; set it again in case that
        # notification was lost to another plugin's failure.
        self.resume_after_gap(host)

    def resume_after_gap(self, host: Host) -> None:
        """The host's next heartbeat restarts its rhythm: the gap of a disconnect is no
        interval."""
        history = self._history_of(host)
        if history is not None:
            history.resume = True

    @hookimpl
    def scheduler_evicted(self, eviction: Eviction) -> None:
        self.forget(eviction)

    def forget(self, eviction: Eviction) -> None:
        """An evicted host's heartbeat state goes with it."""
        if eviction.kind is RecordKind.HOST:
            self._histories.pop(eviction.record_id, None)

    # --- internals ----------------------------------------------------------------------------

    def _model(self, host: Host) -> tuple[float, float] | None:
        """The expected interval (pause included) and its spread, once enough are observed."""
        history = self._history_of(host)
        if history is None or len(history.window) < self.min_samples:
            return None
        mean = history.window.mean + self.acceptable_heartbeat_pause
        return mean, max(history.window.std, self.min_std_deviation)

    def _history_of(self, host: Host) -> _History | None:
        """The history of this incarnation of ``host``; None for a stale one."""
        history = self._histories.get(host.id)
        if history is None or history.created_at != host.created_at:
            return None
        return history
