"""Which session owns which host: the host <-> session registry.

A host is owned by at most one session, the last one that announced it. A
newer claim ends the older owner with ``replaced``; an eviction ends the owner
with ``evicted`` (a leave needs no close: the leaving session is already ending).
The session rules see only the small :class:`HostRegistry` interface.

Messages nobody asked for (a proactive ``schedule``, a ``fetch_task``) reach a
host through :meth:`HostRegistry.deliver`: it queues the message on the owning
session's bounded outbox at once, without blocking, and says what became of it.
"""

from __future__ import annotations

import enum
from collections.abc import Iterator
from typing import Protocol, final

from ..core import Reason, SchedulerState
from ..protocol import ServerMessage
from ._causes import EndCause
from ._identity import Identity


class Delivery(enum.StrEnum):
    """What became of a message handed to :meth:`HostRegistry.deliver`."""

    #: On the owning session's outbox; its shell sends it (bounded by ``send_timeout``).
    QUEUED = "queued"
    #: The host has no session (it dropped, or never had one): the message is dropped.
    NO_SESSION = "no_session"
    #: The session's outbox was full: the message is dropped and the session ends
    #: with ``outbox_overflow``.
    OUTBOX_OVERFLOW = "outbox_overflow"


class SessionOwner(Protocol):
    """What owns a host: a session, or a test double.

    It can be told to end, and be handed a message to send unasked.
    """

    def end(self, cause: EndCause, evicted_reason: str | None = None) -> None: ...

    def deliver(self, message: ServerMessage) -> bool:
        """Queue ``message`` without blocking; False: the outbox is full (the owner ends)."""


class HostRegistry(Protocol):
    """What the session rules need to know about host ownership."""

    def claim(self, host_id: str, owner: SessionOwner, identity: Identity | None = None) -> None:
        """``owner`` announced ``host_id`` and owns it now; an older owner is replaced.

        ``identity`` is who announced it (None: authentication is off).
        """

    def identity_of(self, host_id: str) -> Identity | None:
        """Who last announced ``host_id`` (None: nobody authenticated, or unknown)."""

    def owns(self, owner: SessionOwner, host_id: str) -> bool:
        """True if ``owner`` is the host's current session."""

    def release(self, owner: SessionOwner, host_id: str) -> bool:
        """``owner`` ended: forget it if it still owns the host; True if it did."""

    def deliver(self, host_id: str, message: ServerMessage) -> Delivery:
        """Queue an unsolicited message on the host's session, without blocking."""


@final
class HostSessions:
    """The registry the service uses: host id -> owning session, and who announced it.

    The identity outlives the session: a disconnected host keeps it until it is
    evicted, so that only the same identity can reconnect to it.
    """

    def __init__(self, state: SchedulerState) -> None:
        self._state = state
        self._owners: dict[str, SessionOwner] = {}
        self._identities: dict[str, Identity] = {}

    def __len__(self) -> int:
        return len(self._owners)

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._owners))

    def claim(self, host_id: str, owner: SessionOwner, identity: Identity | None = None) -> None:
        previous = self._owners.get(host_id)
        self._owners[host_id] = owner
        if identity is None:
            self._identities.pop(host_id, None)
        else:
            self._identities[host_id] = identity
        if previous is not None and previous is not owner:
            previous.end(EndCause.REPLACED)

    def owns(self, owner: SessionOwner, host_id: str) -> bool:
        return self._owners.get(host_id) is owner

    def identity_of(self, host_id: str) -> Identity | None:
        if not self._state.has_host(host_id):  # an identity outlives no host
            self._identities.pop(host_id, None)
            return None
        return self._identities.get(host_id)

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
        self._identities.pop(host_id, None)
        if owner is not None and reason != Reason.LEAVE:
            owner.end(EndCause.EVICTED, evicted_reason=reason)

    def deliver(self, host_id: str, message: ServerMessage) -> Delivery:
        owner = self._owners.get(host_id)
        if owner is None:
            return Delivery.NO_SESSION
        return Delivery.QUEUED if owner.deliver(message) else Delivery.OUTBOX_OVERFLOW
