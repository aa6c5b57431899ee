from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar, Final, final

from ..core import Expiry, Host, HostState, Reason
from ..hookspecs import hookimpl
from ..settings import Section, duration

SETTINGS: Final = Section.plugin(
    "disconnect_grace",
    duration(
        "reconnect_grace",
        5,
        "evict a host whose session dropped without a leave this long after the drop",
        details="(reason `disconnected`), unless it announces again on a new session. "
        "`0` evicts at once.",
    ),
)


@final
class DisconnectGrace:
    """A host whose session dropped without a leave is evicted after ``reconnect_grace``.

    It is unschedulable from the moment it disconnects (the core's state says
    so); this policy only decides when the record goes. A re-announce on a new
    session within the grace clears the deadline.

    Config ``[plugins.disconnect_grace]``: see :data:`SETTINGS`.
    """

    name = "disconnect_grace"
    settings: ClassVar[Section] = SETTINGS
    reconnect_grace: float

    def __init__(self) -> None:
        SETTINGS.init(self)

    @hookimpl
    def scheduler_configure(self, config: Mapping[str, Mapping[str, Any]]) -> None:
        SETTINGS.configure(self, config)

    @hookimpl
    def scheduler_host_expiry(self, host: Host) -> Expiry | None:
        return self.host_expiry(host)

    def host_expiry(self, host: Host) -> Expiry | None:
        if host.state is not HostState.DISCONNECTED or host.disconnected_at is None:
            return None
        return Expiry(host.disconnected_at + self.reconnect_grace, Reason.DISCONNECTED)
