from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, final

from ..core import ConfigError, Expiry, Host, Reason, parse_duration, section_reader
from ..hookspecs import hookimpl

DEFAULT_HOST_TTL = 3600.0
DEFAULT_MULTIPLIER = 2.0


@final
class AnnounceTTL:
    """A host expires ``multiplier`` × its announced interval after its last announce.

    Hosts that announce no interval fall back to ``host_ttl``. This is the
    backstop behind every faster detector.

    Config ``[plugins.announce_ttl]``: ``host_ttl`` (default ``1h``),
    ``multiplier`` (default 2).
    """

    name = "announce_ttl"

    def __init__(self) -> None:
        self.host_ttl = DEFAULT_HOST_TTL
        self.multiplier = DEFAULT_MULTIPLIER

    @hookimpl
    def scheduler_configure(self, config: Mapping[str, Mapping[str, Any]]) -> None:
        section = section_reader(config, self.name, {"host_ttl", "multiplier"})
        key = f"plugins.{self.name}"
        self.host_ttl = parse_duration(section.get("host_ttl", self.host_ttl), f"{key}.host_ttl")
        multiplier = section.get("multiplier", self.multiplier)
        if type(multiplier) not in (int, float) or not 1 <= multiplier < math.inf:
            raise ConfigError(f"{key}.multiplier", f"expected a number >= 1, got {multiplier!r}")
        self.multiplier = float(multiplier)

    def ttl(self, host: Host) -> float:
        interval = host.announce_interval
        return self.host_ttl if interval is None else self.multiplier * interval

    @hookimpl
    def scheduler_host_expiry(self, host: Host) -> Expiry:
        return Expiry(host.last_announce_at + self.ttl(host), Reason.TTL_EXPIRED)
