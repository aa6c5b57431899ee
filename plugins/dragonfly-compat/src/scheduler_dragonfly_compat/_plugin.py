"""The ``dragonfly_compat`` plugin: Dragonfly's GC semantics, deadline by deadline."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar, Final, final

from scheduler import hookimpl
from scheduler.core import (
    ACTIVE_PEER_STATES,
    Expiry,
    Host,
    Peer,
    PeerState,
    Reason,
    StateView,
    Task,
)
from scheduler.settings import Section, duration

from ._ticks import next_sweep_tick

#: The built-in policies whose job this plugin takes over. It keeps
#: ``hostname_unique`` and ``capacity``, which Dragonfly has no equivalent of
#: that would conflict.
REPLACED_PLUGINS: Final = ("announce_ttl", "disconnect_grace", "peer_lifetime", "task_idle")

#: A host is dead once this many announce intervals have passed (Dragonfly's rule).
ANNOUNCE_INTERVAL_MULTIPLIER: Final = 2.0

#: Dragonfly's GC defaults, in seconds.
DEFAULT_HOST_SWEEP_INTERVAL: Final = 5 * 60.0
DEFAULT_HOST_TTL: Final = 3600.0
DEFAULT_PEER_SWEEP_INTERVAL: Final = 10.0
DEFAULT_PEER_TTL: Final = 24 * 3600.0
DEFAULT_PIECE_TIMEOUT: Final = 30 * 60.0
DEFAULT_TASK_SWEEP_INTERVAL: Final = 30 * 60.0

#: ``[plugins.dragonfly_compat]``: every setting, its default and bounds.
SETTINGS: Final = Section.plugin(
    "dragonfly_compat",
    duration(
        "host_sweep_interval",
        DEFAULT_HOST_SWEEP_INTERVAL,
        "period of the host sweep; a dead host goes at the next tick",
        positive=True,
    ),
    duration(
        "host_ttl",
        DEFAULT_HOST_TTL,
        "lifetime of a host that announced no interval, from its last announce",
    ),
    duration(
        "peer_sweep_interval",
        DEFAULT_PEER_SWEEP_INTERVAL,
        "period of the peer sweep; an expired or failed peer goes at the next tick",
        positive=True,
    ),
    duration("peer_ttl", DEFAULT_PEER_TTL, "a peer not updated for this long expires"),
    duration(
        "piece_timeout",
        DEFAULT_PIECE_TIMEOUT,
        "a downloading peer that finishes no piece for this long expires",
    ),
    duration(
        "task_sweep_interval",
        DEFAULT_TASK_SWEEP_INTERVAL,
        "period of the task sweep; a task with no peers goes at the next tick",
        positive=True,
    ),
)


@final
class DragonflyCompat:
    """Dragonfly's sweep-based GC, for side-by-side comparison and migration.

    Every deadline is the first sweep tick strictly after a TTL runs out:

    * a host: ``2 × announce interval`` after its last announce (``host_ttl``
      for a host that sent no interval), at the next host sweep
      (``ttl_expired``). Pongs do not count: Dragonfly has no keepalive. A
      disconnected host is unschedulable (the core says so) but its record
      stays until that tick, because Dragonfly has no session liveness;
    * a failed peer: at the next peer sweep (``failed``);
    * a running or back-to-source peer: ``piece_timeout`` after its last piece
      (``piece_timeout``);
    * every other peer: ``peer_ttl`` after its last update (``ttl_expired``);
    * a task with no peers: at the next task sweep after it lost its last
      peer (``idle``).

    It replaces the built-ins in :data:`REPLACED_PLUGINS`.

    Config ``[plugins.dragonfly_compat]``: see :data:`SETTINGS`.
    """

    name = "dragonfly_compat"
    settings: ClassVar[Section] = SETTINGS
    host_sweep_interval: float
    host_ttl: float
    peer_sweep_interval: float
    peer_ttl: float
    piece_timeout: float
    task_sweep_interval: float

    def __init__(self) -> None:
        SETTINGS.init(self)

    # --- composition and configuration ------------------------------------------------

    @hookimpl
    def scheduler_replaces(self) -> list[str]:
        return list(REPLACED_PLUGINS)

    @hookimpl
    def scheduler_configure(self, config: Mapping[str, Mapping[str, Any]]) -> None:
        # Validates every key before assigning any, so a bad key changes nothing.
        SETTINGS.configure(self, config)

    # --- scheduling ---------------------------------------------------------------------

    @hookimpl
    def scheduler_proactive_push(self) -> bool:
        """Dragonfly never pushes: a child learns of a dead parent when a piece fails."""
        return False

    # --- deadlines ----------------------------------------------------------------------

    def host_ttl_for(self, host: Host) -> float:
        """How long ``host`` lives after its last announce, before sweep rounding."""
        interval = host.announce_interval
        return self.host_ttl if interval is None else ANNOUNCE_INTERVAL_MULTIPLIER * interval

    @hookimpl
    def scheduler_host_expiry(self, host: Host) -> Expiry:
        due = host.last_announce_at + self.host_ttl_for(host)
        return Expiry(next_sweep_tick(due, self.host_sweep_interval), Reason.TTL_EXPIRED)

    @hookimpl
    def scheduler_peer_expiry(self, peer: Peer) -> Expiry:
        period = self.peer_sweep_interval
        if peer.state is PeerState.FAILED:
            return Expiry(next_sweep_tick(peer.updated_at, period), Reason.FAILED)
        ttl = Expiry(next_sweep_tick(peer.updated_at + self.peer_ttl, period), Reason.TTL_EXPIRED)
        if peer.state in ACTIVE_PEER_STATES:
            due = peer.piece_updated_at + self.piece_timeout
            stall = Expiry(next_sweep_tick(due, period), Reason.PIECE_TIMEOUT)
            # Dragonfly checks the piece timeout first, so it wins a shared tick.
            return stall if stall.at <= ttl.at else ttl
        return ttl

    @hookimpl
    def scheduler_task_expiry(self, task: Task, view: StateView) -> Expiry | None:
        if view.peer_ids_of_task(task.id):
            return None
        # The core bumps ``updated_at`` when a task loses a peer.
        return Expiry(next_sweep_tick(task.updated_at, self.task_sweep_interval), Reason.IDLE)
