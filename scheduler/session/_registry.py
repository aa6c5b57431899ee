"""Which session owns which host: the host <-> session registry.

A host is owned by at most one session, the last one that announced it. A
newer claim ends the older owner with ``replaced``; an eviction ends the owner
with ``evicted`` (a leave needs no close: the leaving session is already ending).
The session rules see only the small :class:`HostRegistry` interface.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol, final

from ..core import Reason, SchedulerState
from ._causes import EndCause


class SessionOwner(Protocol):
    """What owns a host: anything that can be told to end (a session, or a test double)."""

    def end(self, cause: EndCause, evicted_reason: str | None = None) -> None: ...


class HostRegistry(Protocol):
    """What the session rules need to know about host ownership."""

    def claim(self, host_id: str, owner: SessionOwner) -> None:
        """``owner`` announced ``host_id`` and owns it now; an older owner is replaced."""

    def owns(self, owner: SessionOwner, host_id: str) -> bool:
        """True if ``owner`` is the host's current session."""

    def release(self, owner: SessionOwner, host_id: str) -> bool:
        """``owner`` ended: forget it if it still owns the host; True if it did."""

    def reconnect_grace(self, host_id: str, now: float) -> float | None:
        """Seconds a drop at ``now`` leaves the host before the policies evict it."""


@final
class HostSessions:
    """The registry the service uses: one dict, host id -> owning session."""

    def __init__(self, state: SchedulerState) -> None:
        self._state = state
        self._owners: dict[str, SessionOwner] = {}

    def __len__(self) -> int:
        return len(self._owners)

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._owners))

    def claim(self, host_id: str, owner: SessionOwner) -> None:
        previous = self._owners.get(host_id)
        self._owners[host_id] = owner
        if previous is not None and previous is not owner:
            previous.end(EndCause.REPLACED)

    def owns(self, owner: SessionOwner, host_id: str) -> bool:
        return self._owners.get(host_id) is owner

    def release(self, owner: SessionOwner, host_id: str) -> bool:
        if self._owners.get(host_id) is not owner:
            return False
        del self._owners[host_id]
        return True

    def owner_of(self, host_id: str) -> SessionOwner | None:
        return self._owners.get(host_id)

    def evicted(self, host_id: str, reason: str) -> None:
        """The core evicted the host: its session (if any) ends with ``evicted``."""
        owner = self._owners.pop(host_id, None)
        if owner is not None and reason != Reason.LEAVE:
            owner.end(EndCause.EVICTED, evicted_reason=reason)

    def reconnect_grace(self, host_id: str, now: float) -> float | None:
        return self._state.reconnect_grace(host_id, now)
