from __future__ import annotations

from typing import final

from ..core import Host, StateView
from ..hookspecs import hookimpl


@final
class HostnameUnique:
    """At most one live host per hostname and host type.

    A host that announces a hostname already held by a record of the same type
    with another address (a restarted pod with a new IP) supersedes the old
    record, which is evicted at once with reason ``superseded`` instead of
    lingering until its TTL. This is the fix for the "several active rows per
    hostname" failure seen in Dragonfly's manager. A seed daemon and a normal
    daemon on the same machine are different hosts (``-seed`` ids) and coexist.
    """

    name = "hostname_unique"

    @hookimpl
    def scheduler_host_supersedes(self, host: Host, view: StateView) -> list[str]:
        return self.superseded_by(host, view)

    def superseded_by(self, host: Host, view: StateView) -> list[str]:
        """Other live hosts of the same hostname and type."""
        return [
            other
            for other in view.host_ids_by_hostname(host.info.hostname)
            if other != host.id and view.host(other).info.type is host.info.type
        ]
