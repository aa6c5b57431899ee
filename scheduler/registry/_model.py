"""What the registry stores and answers: plain frozen records, and its errors.

Times that come from the database (``lease_expires_at``, ``db_now``) are aware
``datetime``s of the database's clock. They are shown to operators and peers; the
process itself never compares them with its own clock (see ``_lease.py``).
"""

from __future__ import annotations

import datetime
import enum
from typing import Any, Final, final

import attrs

#: The cluster a scheduler joins when none is given.
DEFAULT_CLUSTER: Final = "default"


class RowState(enum.StrEnum):
    """The ``state`` column. Only registration writes ``active``; nothing writes it back."""

    ACTIVE = "active"
    #: Ended by its own process at shutdown.
    OFFLINE = "offline"
    #: Another registration with the same (cluster, name) took the name over.
    SUPERSEDED = "superseded"
    #: Its lease ran out (recorded by a later registration or ``registry check --fix``).
    EXPIRED = "expired"


class RegistryError(Exception):
    """Base class of the registry's errors."""


@final
class RegistryUnavailable(RegistryError):
    """The database could not be reached or did not answer in time; nothing is known."""


@final
class SchemaError(RegistryError):
    """The database schema is missing or was changed by hand."""


@final
class NameTaken(RegistryError):
    """A live registration holds the name and this one may not take it over."""

    def __init__(self, cluster_id: str, name: str, holder: Member) -> None:
        self.cluster_id = cluster_id
        self.name = name
        self.holder = holder
        super().__init__(
            f"scheduler name {name!r} in cluster {cluster_id!r} is held by registration "
            f"{holder.registration_id} (boot {holder.boot_id}, {holder.url}) until "
            f"{holder.lease_expires_at.isoformat()}"
        )


@final
class LeaseLost(RegistryError):
    """A renewal found its registration ended (superseded, offlined or expired)."""

    def __init__(self, registration_id: int, state: RowState | None) -> None:
        self.registration_id = registration_id
        self.state = state
        what = "gone" if state is None else state.value
        super().__init__(f"registration {registration_id} is {what}: its lease is lost")


@final
@attrs.frozen
class Identity:
    """Who registers: the row a scheduler writes, minus what the database decides."""

    cluster_id: str
    name: str
    boot_id: str
    #: The peers' WebSocket URL (``ws://host:port/ws``), as other machines reach it.
    url: str
    address: str
    port: int
    admin_url: str | None = None
    admin_port: int | None = None

    def __attrs_post_init__(self) -> None:
        for field in ("cluster_id", "name", "boot_id", "url", "address"):
            if not getattr(self, field):
                raise ValueError(f"registry identity: {field} must not be empty")
        for field in ("port", "admin_port"):
            value = getattr(self, field)
            if value is not None and not 0 <= value <= 65535:
                raise ValueError(f"registry identity: {field} must be 0-65535, got {value}")


@final
@attrs.frozen
class Member:
    """One active registration, as ``GET /api/v1/schedulers`` lists it."""

    registration_id: int
    cluster_id: str
    name: str
    boot_id: str
    url: str
    admin_url: str | None
    address: str
    port: int
    admin_port: int | None
    registered_at: datetime.datetime
    renewed_at: datetime.datetime
    lease_expires_at: datetime.datetime
    #: HMAC-SHA256 of the row under the cluster key (``_trust.py``); None if unsigned.
    signature: str | None = attrs.field(default=None, repr=False)

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "url": self.url,
            "admin_url": self.admin_url,
            "cluster_id": self.cluster_id,
            "boot_id": self.boot_id,
            "address": self.address,
            "port": self.port,
            "admin_port": self.admin_port,
            "registration_id": self.registration_id,
            "registered_at": self.registered_at.isoformat(),
            "renewed_at": self.renewed_at.isoformat(),
            "lease_expires_at": self.lease_expires_at.isoformat(),
        }


@final
@attrs.frozen
class Roster:
    """A cluster's active members, read at the database's ``db_now``."""

    db_now: datetime.datetime
    members: tuple[Member, ...]

    def remaining(self, member: Member) -> float:
        """Seconds of lease ``member`` had left when the roster was read (a duration:
        it may be added to another clock, unlike the timestamps)."""
        return (member.lease_expires_at - self.db_now).total_seconds()


@final
@attrs.frozen
class Lease:
    """What one registration or renewal got from the database."""

    registration_id: int
    #: The database's clock at the transaction, and the expiry it wrote.
    db_now: datetime.datetime
    lease_expires_at: datetime.datetime
    #: Registrations this one ended when it took the name (empty on renewal).
    superseded: tuple[int, ...] = ()
    #: Of those, the ones that proved nothing under the cluster key (forged or unsigned).
    forged: tuple[int, ...] = ()
