"""The ground truth: which hosts and peers are really alive, known only to the simulator."""

from __future__ import annotations

import enum
from typing import final

import attrs

from ..core import HostInfo
from ._workload import Cause, HostPlan


class Mode(enum.Enum):
    """What a simulated peer is doing."""

    IDLE = "idle"  # registered, no decision applied yet
    WAIT = "wait"
    P2P = "p2p"
    ORIGIN = "origin"
    DONE = "done"
    FAILED = "failed"
    ABANDONED = "abandoned"  # its record was evicted while its host was alive


#: Modes in which a peer is still downloading.
ACTIVE_MODES = frozenset({Mode.IDLE, Mode.WAIT, Mode.P2P, Mode.ORIGIN})


@final
@attrs.define(eq=False)
class SimHost:
    plan: HostPlan
    info: HostInfo
    connected_at: float
    """When its current session started (the ping ticks count from there)."""
    dead: bool = False
    cause: Cause | None = None
    died_at: float | None = None
    last_touch: float = float("-inf")
    peers: dict[int, SimPeer] = attrs.field(factory=dict)
    """Its peers by task index (one per task: a second request is a local cache hit)."""

    @property
    def id(self) -> str:
        return self.info.id


@final
@attrs.define(eq=False)
class Batch:
    """Pieces being fetched: from ``parent_id`` (None: the origin), ``count`` from ``start``."""

    parent_id: str | None
    started_at: float
    count: int
    piece_time: float

    def done_by(self, at: float) -> int:
        """Pieces fully fetched by ``at``."""
        return max(0, min(self.count, int((at - self.started_at) / self.piece_time + 1e-9)))


@final
@attrs.define(eq=False)
class SimPeer:
    id: str
    host: SimHost
    task: int
    task_id: str
    registered_at: float
    seed: bool
    pieces: int = 0
    """Finished pieces, in order (a peer holds pieces 0..pieces-1)."""
    mode: Mode = Mode.IDLE
    parents: tuple[str, ...] = ()
    cursor: int = 0
    """Where the round-robin over ``parents`` resumes."""
    started: bool = False
    used_origin: bool = False
    epoch: int = 0
    """Bumped whenever the plan changes; a scheduled step of an older epoch is void."""
    batch: Batch | None = None
    stalled_since: float | None = None

    @property
    def active(self) -> bool:
        return self.mode in ACTIVE_MODES and not self.host.dead


@final
class GroundTruth:
    """Every host and peer the simulation created, alive or not."""

    def __init__(self) -> None:
        self.hosts: dict[str, SimHost] = {}
        self.peers: dict[str, SimPeer] = {}

    def add_host(self, host: SimHost) -> None:
        if host.id in self.hosts:
            raise ValueError(f"host {host.id!r} already exists")
        self.hosts[host.id] = host

    def add_peer(self, peer: SimPeer) -> None:
        if peer.id in self.peers:
            raise ValueError(f"peer {peer.id!r} already exists")
        self.peers[peer.id] = peer
        peer.host.peers[peer.task] = peer

    def death_cause(self, peer_id: str) -> str | None:
        """None if the peer can serve pieces now; else why not (its host's cause of death)."""
        peer = self.peers.get(peer_id)
        if peer is None:
            return "unknown"
        if peer.host.dead:
            return str(peer.host.cause)
        if peer.mode in (Mode.FAILED, Mode.ABANDONED):
            return "other"
        return None
