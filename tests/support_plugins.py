"""Small plugins that tests load by ``module:object`` spec."""

from __future__ import annotations

from scheduler import hookimpl
from scheduler.core import Expiry, Host


class FixedTTL:
    """Every host expires 7 s after its last announce."""

    name = "fixed_ttl"

    @hookimpl
    def scheduler_host_expiry(self, host: Host) -> Expiry:
        return Expiry(host.last_announce_at + 7.0, "fixed")


class Replacer:
    name = "replacer"

    @hookimpl
    def scheduler_replaces(self) -> list[str]:
        return ["task_idle"]


class Misspelled:
    name = "misspelled"

    @hookimpl
    def scheduler_host_expiri(self, host: Host) -> None:
        return None
