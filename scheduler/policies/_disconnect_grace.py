from __future__ import annotations

from collections.abc import Mapping
from typing import Any, final

from ..core import Expiry, Host, HostState, Reason, parse_duration, section_reader
from ..hookspecs import hookimpl

DEFAULT_RECONNECT_GRACE = 5.0


@final
class DisconnectGrace:
    """A host whose session dropped without a leave is evicted after ``reconnect_grace``.

    It is unschedulable from the moment it disconnects (the core's state says
    so); this policy only decides when the record goes. A re-announce on a new
    session within the grace clears the deadline.

    Config ``[plugins.disconnect_grace]``: ``reconnect_grace`` (default ``5s``).
    """

    name = "disconnect_grace"

    def __init__(self) -> None:
        self.reconnect_grace = DEFAULT_RECONNECT_GRACE

    @hookimpl
    def scheduler_configure(self, config: Mapping[str, Mapping[str, Any]]) -> None:
        section = section_reader(config, self.name, {"reconnect_grace"})
        self.reconnect_grace = parse_duration(
            section.get("reconnect_grace", self.reconnect_grace),
            f"plugins.{self.name}.reconnect_grace",
        )

    @hookimpl
    def scheduler_host_expiry(self, host: Host) -> Expiry | None:
        if host.state is not HostState.DISCONNECTED or host.disconnected_at is None:
            return None
        return Expiry(host.disconnected_at + self.reconnect_grace, Reason.DISCONNECTED)
