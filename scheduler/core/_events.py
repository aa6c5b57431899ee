"""Events the core returns from every mutation. Small frozen classes under one base."""

from __future__ import annotations

import enum
from typing import final

import attrs

from ._decision import Decision
from ._model import RecordKind


class Reason(enum.StrEnum):
    """Eviction reasons the core and the built-in policies use.

    Reasons are plain strings on the wire and in metrics, so a plugin may
    define its own (``"phi_suspect"``) without touching this enum.
    """

    LEAVE = "leave"
    DISCONNECTED = "disconnected"
    TTL_EXPIRED = "ttl_expired"
    SUPERSEDED = "superseded"
    CAPACITY = "capacity"
    ADMIN = "admin"
    HOST_EVICTED = "host_evicted"
    TASK_EVICTED = "task_evicted"
    PIECE_TIMEOUT = "piece_timeout"
    #: Handed parents, it neither started nor reported a piece within the start timeout.
    START_TIMEOUT = "start_timeout"
    FAILED = "failed"
    IDLE = "idle"


class ContactSource(enum.StrEnum):
    """What told the scheduler that a host is alive."""

    ANNOUNCE = "announce"
    #: The answer to the server's own ping.
    PONG = "pong"
    #: A ping the client sent (a daemon that keeps its own heartbeat is never pinged).
    PING = "ping"
    MESSAGE = "message"


@final
@attrs.frozen
class Expiry:
    """A policy's verdict on one record: evict it at ``at`` (seconds) for ``reason``."""

    at: float
    reason: str


@final
@attrs.frozen
class Verdict:
    """A policy's order to evict one record now, from a sweep."""

    kind: RecordKind
    record_id: str
    reason: str


class Event:
    """Base class of everything the core returns."""

    __slots__ = ()


@final
@attrs.frozen
class HostRegistered(Event):
    host_id: str
    at: float


@final
@attrs.frozen
class HostReconnected(Event):
    host_id: str
    at: float
    disconnected_for: float


@final
@attrs.frozen
class HostDisconnected(Event):
    host_id: str
    at: float


@final
@attrs.frozen
class PeerRegistered(Event):
    peer_id: str
    task_id: str
    host_id: str
    at: float


@final
@attrs.frozen
class TaskCreated(Event):
    task_id: str
    at: float


@final
@attrs.frozen
class Eviction(Event):
    """One record removed from the state, with everything observability needs.

    * ``detection_latency`` = ``at`` − ``last_contact``: how long the record
      was stale before the scheduler noticed;
    * ``lateness`` = ``at`` − ``deadline``: how late the GC ran relative to the
      deadline that caused it (None for evictions that had no deadline: leave,
      admin, supersede, sweep verdicts, cascades).
    """

    kind: RecordKind
    record_id: str
    reason: str
    at: float
    last_contact: float
    deadline: float | None = None
    host_id: str | None = None
    hostname: str | None = None
    task_id: str | None = None

    @property
    def detection_latency(self) -> float:
        return max(0.0, self.at - self.last_contact)

    @property
    def lateness(self) -> float | None:
        return None if self.deadline is None else self.at - self.deadline


@final
@attrs.frozen
class PeerScheduled(Event):
    """One decision the core made for a child.

    ``cause`` is a :class:`~._decision.ScheduleCause` value: ``register`` and
    ``reschedule`` answer the child's request; ``parent_lost`` is a proactive
    push (``pushed`` is True), sent with no request id.
    """

    peer_id: str
    host_id: str
    task_id: str
    decision: Decision
    at: float
    cause: str
    pushed: bool


@final
@attrs.frozen
class SeedFetchRequested(Event):
    """Ask the seed host ``seed_host_id`` to fetch the task; it must register ``peer_id``."""

    seed_host_id: str
    task_id: str
    peer_id: str
    url: str
    piece_length: int
    content_length: int
    total_piece_count: int
    at: float
