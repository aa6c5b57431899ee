from __future__ import annotations

from typing import final

from ..core import Host, SchedulerState
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
    def scheduler_host_supersedes(self, host: Host, state: SchedulerState) -> list[str]:
        return [
            other
            for other in state.host_ids_by_hostname(host.hostname)
            if other != host.id and state.host(other).type is host.type
        ]
