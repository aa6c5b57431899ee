from __future__ import annotations

from typing import final

from ..core import Host, SchedulerState
from ..hookspecs import hookimpl


@final
class HostnameUnique:
    """At most one live host per hostname.

    A host that announces a hostname already held by a record with another
    address (a restarted pod with a new IP) supersedes the old record, which
    is evicted at once with reason ``superseded`` instead of lingering until
    its TTL. This is the fix for the "several active rows per hostname"
    failure seen in Dragonfly's manager.
    """

    name = "hostname_unique"

    @hookimpl
    def scheduler_host_supersedes(self, host: Host, state: SchedulerState) -> list[str]:
        return [h for h in state.host_ids_by_hostname(host.hostname) if h != host.id]
