"""What a policy may see of the state: lookups, iteration, counts and indexes; no mutator.

Hooks receive a :class:`StateView` (parameter ``view``), never the mutable
:class:`~scheduler.core.SchedulerState`: a policy decides, and the engine
applies. The records it returns are the live ones; read them, never mutate them.

This module imports only the model, so :mod:`scheduler.hookspecs` can name the
view without importing the engine.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol

from ._events import Expiry
from ._lifecycle import HostState, PeerState, TaskState
from ._model import Host, Peer, RecordKind, Task
from ._uploads import UploadLoad


class StateView(Protocol):
    """A read-only view of hosts, peers and tasks. Lookups raise ``NotFound``."""

    # --- time --------------------------------------------------------------------------

    def wall_time(self, t: float) -> float:
        """``t``, a time of the core's clock (every hook's ``now``), as Unix time.

        The core's clock is whatever its caller runs on: ``scheduler serve`` passes
        trio's monotonic clock, whose zero means nothing in a log line; this adds the
        offset the caller gave (Unix time minus its clock, read once at start-up).
        """
        ...

    # --- one record --------------------------------------------------------------------

    def host(self, host_id: str) -> Host: ...

    def peer(self, peer_id: str) -> Peer: ...

    def task(self, task_id: str) -> Task: ...

    def has_host(self, host_id: str) -> bool: ...

    def has_peer(self, peer_id: str) -> bool: ...

    def has_task(self, task_id: str) -> bool: ...

    # --- every record (snapshots: safe to iterate while the state changes) --------------

    def hosts(self) -> Iterator[Host]: ...

    def peers(self) -> Iterator[Peer]: ...

    def tasks(self) -> Iterator[Task]: ...

    # --- counts (O(1)) -------------------------------------------------------------------

    def host_count(self) -> int: ...

    def peer_count(self) -> int: ...

    def task_count(self) -> int: ...

    def host_counts_by_state(self) -> dict[HostState, int]: ...

    def peer_counts_by_state(self) -> dict[PeerState, int]: ...

    def task_counts_by_state(self) -> dict[TaskState, int]: ...

    def peer_count_of_host(self, host_id: str) -> int: ...

    def peer_count_of_task(self, task_id: str) -> int: ...

    # --- indexes -------------------------------------------------------------------------

    def peer_ids_of_host(self, host_id: str) -> frozenset[str]: ...

    def peer_ids_of_task(self, task_id: str) -> frozenset[str]: ...

    def peers_of_host(self, host_id: str) -> list[Peer]: ...

    def peers_of_task(self, task_id: str) -> list[Peer]: ...

    def host_ids_by_hostname(self, hostname: str) -> frozenset[str]: ...

    # --- scheduling ----------------------------------------------------------------------

    def is_schedulable(self, host_id: str) -> bool: ...

    def schedulable_hosts(self) -> list[Host]: ...

    def deadline_of(self, kind: RecordKind, record_id: str) -> Expiry | None: ...

    # --- parents handed out (O(1) or O(answer)) -----------------------------------------

    def parents_of(self, peer_id: str) -> tuple[str, ...]: ...

    def children_of(self, peer_id: str) -> tuple[str, ...]: ...

    def blocked_parents_of(self, peer_id: str) -> frozenset[str]: ...

    def piece_costs_of(self, peer_id: str) -> tuple[float, ...]: ...

    def feeder_count_of_task(self, task_id: str) -> int: ...

    # --- upload load (O(1)) ---------------------------------------------------------------

    def upload_load(self, host_id: str, now: float) -> UploadLoad:
        """The host's upload load at ``now``, counted from what its children report.

        Bytes and pieces served in the last 60 s, the current rate (bits/s), and the
        transfers in flight (children it feeds now). Its capacity is
        ``host.info.upload_bandwidth`` (bits/s, 0: unknown).
        """
        ...

    def upload_window_bytes(self, host_id: str, now: float) -> int:
        """``upload_load(host_id, now).window_bytes`` in O(1), for a per-candidate score
        (0 for a host nobody reported an upload from)."""
        ...
