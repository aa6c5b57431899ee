"""The records the scheduler keeps true: hosts, tasks and peers.

Records are plain mutable attrs classes, each owned by the ledger of its kind.
Policies receive them read-only by convention; only the ledgers mutate them.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import final

import attrs

from ._bitset import PieceSet
from ._lifecycle import HostState, IdentityEnum, PeerState, TaskState


class HostType(IdentityEnum):
    NORMAL = "normal"
    SEED = "seed"


class RecordKind(IdentityEnum):
    """The three kinds of record the GC engine manages, one deadline queue each."""

    HOST = "host"
    PEER = "peer"
    TASK = "task"


def host_id_for(ip: str, hostname: str, host_type: HostType = HostType.NORMAL) -> str:
    """Dragonfly's host id: ``"{ip}-{hostname}"``, with ``"-seed"`` for seed hosts."""
    base = f"{ip}-{hostname}"
    return f"{base}-seed" if host_type is HostType.SEED else base


def _read_only(stats: Mapping[str, float]) -> Mapping[str, float]:
    return MappingProxyType(dict(stats))


@final
@attrs.frozen
class HostInfo:
    """What a host says about itself in an announce; replaced whole on every announce.

    ``stats`` are the host's free-form figures (load, bandwidth, ...), for plugins.
    """

    hostname: str
    ip: str
    port: int = 0
    download_port: int = 0
    type: HostType = HostType.NORMAL
    idc: str = ""
    location: str = ""
    concurrent_upload_limit: int = 50
    #: Upload capacity in bits per second; 0 when the host did not say.
    upload_bandwidth: int = 0
    stats: Mapping[str, float] = attrs.field(factory=dict, converter=_read_only, hash=False)

    @property
    def id(self) -> str:
        return host_id_for(self.ip, self.hostname, self.type)


#: Read on every candidate of every decision: a module constant is faster to reach than
#: ``HostState.CONNECTED`` (a class attribute of an enum, about 0.1 µs on Python 3.11).
_CONNECTED = HostState.CONNECTED


@final
@attrs.define(eq=False)
class Host:
    """A host as the scheduler keeps it: what it said (``info``) and what the server tracks."""

    id: str
    info: HostInfo
    announce_interval: float | None
    created_at: float
    last_announce_at: float
    last_contact_at: float
    state: HostState = HostState.CONNECTED
    disconnected_at: float | None = None
    concurrent_upload_count: int = 0
    upload_count: int = 0
    upload_failed_count: int = 0

    @property
    def schedulable(self) -> bool:
        return self.state is _CONNECTED

    def free_upload_slots(self) -> int:
        return max(0, self.info.concurrent_upload_limit - self.concurrent_upload_count)


@final
@attrs.frozen
class TaskInfo:
    """What a peer says about the task it downloads."""

    id: str
    url: str = ""
    piece_length: int = 4 * 1024 * 1024
    content_length: int = -1
    total_piece_count: int = -1
    #: When the scheduler first handed this peer parents while it had not started
    #: (None: never). A peer that then neither starts nor reports a piece within the
    #: start timeout holds its parents' upload slots for nothing.
    handed_parents_at: float | None = None


@final
@attrs.define(eq=False)
class Task:
    """A task: ``content_length`` and ``total_piece_count`` are its size as published.

    The size is the first peer's claim (or the first known one) until finished peers
    confirm one; then the claim most of them confirmed. It is what seeds and the
    policies are told; it never bounds another peer's reports (each peer's own
    claim does), so a wrong first claim misleads nobody's validation.
    """

    id: str
    url: str
    piece_length: int
    content_length: int
    total_piece_count: int
    created_at: float
    updated_at: float
    back_to_source_limit: int = 200
    back_to_source_count: int = 0
    state: TaskState = TaskState.PENDING
    #: Back-to-source peers per host (only hosts with at least one).
    back_to_source_by_host: dict[str, int] = attrs.field(factory=dict)
    #: True once a peer that finished with every piece of its claim confirmed the size.
    size_confirmed: bool = False
    #: Confirmations per claimed ``(content_length, total_piece_count)``.
    size_votes: dict[tuple[int, int], int] = attrs.field(factory=dict)


@final
@attrs.define(eq=False)
class Peer:
    id: str
    task_id: str
    host_id: str
    created_at: float
    updated_at: float
    piece_updated_at: float
    state: PeerState = PeerState.PENDING
    finished_pieces: PieceSet = attrs.field(factory=PieceSet)
    parents: set[str] = attrs.field(factory=set)
    cost_total: float = 0.0
    #: The task's size as this peer claimed it at registration (-1: unknown). Its own
    #: piece reports are checked against it, never against another peer's claim.
    content_length: int = -1
    total_piece_count: int = -1
    #: When the scheduler first handed this peer parents while it had not started
    #: (None: never). A peer that then neither starts nor reports a piece within the
    #: start timeout holds its parents' upload slots for nothing.
    handed_parents_at: float | None = None
