from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar, Final, final

from ..core import Expiry, Host, Reason
from ..hookspecs import hookimpl
from ..settings import Section, duration, number

SETTINGS: Final = Section.plugin(
    "announce_ttl",
    duration(
        "host_ttl",
        3600,
        "lifetime of a host that announced no interval, from its last announce",
        details="(reason `ttl_expired`). A host that sends an interval expires "
        "`multiplier` × interval after its last announce.",
    ),
    number(
        "multiplier",
        2,
        "a host that announced an interval expires this many intervals after its last announce",
        minimum=1,
    ),
)


@final
class AnnounceTTL:
    """A host expires ``multiplier`` × its announced interval after its last announce.

    Hosts that announce no interval fall back to ``host_ttl``. This is the
    backstop behind every faster detector.

    Config ``[plugins.announce_ttl]``: see :data:`SETTINGS`.
    """

    name = "announce_ttl"
    settings: ClassVar[Section] = SETTINGS
    host_ttl: float
    multiplier: float

    def __init__(self) -> None:
        SETTINGS.init(self)

    @hookimpl
    def scheduler_configure(self, config: Mapping[str, Mapping[str, Any]]) -> None:
        SETTINGS.configure(self, config)

    def ttl(self, host: Host) -> float:
        interval = host.announce_interval
        return self.host_ttl if interval is None else self.multiplier * interval

    def host_expiry(self, host: Host) -> Expiry:
        return Expiry(host.last_announce_at + self.ttl(host), Reason.TTL_EXPIRED)

    @hookimpl
    def scheduler_host_expiry(self, host: Host) -> Expiry:
        return self.host_expiry(host)
