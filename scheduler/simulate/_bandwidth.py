"""``--bandwidth SPEC``: the uplink and downlink of every simulated host.

* ``mixed``: most hosts at 1 Gbit/s, one in five at 10 Gbit/s, seeds at 25 Gbit/s;
* ``uniform``: every host, seeds included, at 1 Gbit/s;
* exact numbers: ``uplink=1G,downlink=10G[,seed-uplink=25G][,seed-downlink=25G]``
  (seeds default to the hosts' figures).

Figures are bits per second, with an optional decimal suffix ``k``, ``M``, ``G``
or ``T`` and an optional ``bit/s`` or ``bps`` after it (``500M``, ``2.5Gbit/s``).
Which hosts of ``mixed`` are fast is drawn from the seed and the host's index,
apart from the workload's own draws, so turning bandwidth on changes no workload.
"""

from __future__ import annotations

import math
import random
import re
from typing import Final, final

import attrs

GBIT: Final = 1e9
_UNITS: Final = {"": 1.0, "k": 1e3, "m": 1e6, "g": 1e9, "t": 1e12}
_FIGURE: Final = re.compile(
    r"^\s*([0-9]*\.?[0-9]+(?:e[+-]?[0-9]+)?)\s*([kmgt]?)(?:bit/s|bps|b)?\s*$"
)
#: The most bandwidth a link may be given (bits/s): the protocol's own bound.
MAX_LINK: Final = 1e13


def parse_bits(text: str) -> float:
    """``1G`` → 1e9: bits per second, > 0 and at most 10 Tbit/s."""
    match = _FIGURE.match(text.lower())
    if match is None:
        raise ValueError(f"expected bits per second like 1G, 500M or 2.5Gbit/s, got {text!r}")
    value = float(match.group(1)) * _UNITS[match.group(2)]
    if not (math.isfinite(value) and 0 < value <= MAX_LINK):
        raise ValueError(f"bandwidth must be > 0 and at most 10 Tbit/s, got {text!r}")
    return value


@final
@attrs.frozen(kw_only=True)
class BandwidthSpec:
    """Link capacities in bits per second; ``fast_share`` of normal hosts get the fast ones."""

    name: str
    uplink: float
    downlink: float
    seed_uplink: float
    seed_downlink: float
    fast_share: float = 0.0
    fast_uplink: float = 0.0
    fast_downlink: float = 0.0

    def links_of(self, seed: int, index: int, is_seed: bool) -> tuple[float, float]:
        """(uplink, downlink) of host number ``index`` of the run drawn from ``seed``."""
        if is_seed:
            return self.seed_uplink, self.seed_downlink
        if self.fast_share > 0 and random.Random(f"bandwidth-{seed}-{index}").random() < (
            self.fast_share
        ):
            return self.fast_uplink, self.fast_downlink
        return self.uplink, self.downlink


MIXED: Final = BandwidthSpec(
    name="mixed",
    uplink=GBIT,
    downlink=GBIT,
    seed_uplink=25 * GBIT,
    seed_downlink=25 * GBIT,
    fast_share=0.2,
    fast_uplink=10 * GBIT,
    fast_downlink=10 * GBIT,
)
UNIFORM: Final = BandwidthSpec(
    name="uniform", uplink=GBIT, downlink=GBIT, seed_uplink=GBIT, seed_downlink=GBIT
)
NAMED: Final = {spec.name: spec for spec in (MIXED, UNIFORM)}
_KEYS: Final = ("uplink", "downlink", "seed-uplink", "seed-downlink")


def parse_bandwidth(text: str) -> BandwidthSpec:
    """``mixed``, ``uniform`` or ``uplink=..,downlink=..[,seed-uplink=..][,seed-downlink=..]``."""
    name = text.strip()
    if name in NAMED:
        return NAMED[name]
    figures: dict[str, float] = {}
    for part in name.split(","):
        key, sep, value = part.partition("=")
        key = key.strip()
        if not sep or key not in _KEYS:
            raise ValueError(
                f"expected mixed, uniform or uplink=..,downlink=..[,seed-uplink=..]"
                f"[,seed-downlink=..], got {text!r}"
            )
        if key in figures:
            raise ValueError(f"{key} given twice in {text!r}")
        figures[key] = parse_bits(value)
    if "uplink" not in figures or "downlink" not in figures:
        raise ValueError(f"both uplink and downlink are required, got {text!r}")
    return BandwidthSpec(
        name=name,
        uplink=figures["uplink"],
        downlink=figures["downlink"],
        seed_uplink=figures.get("seed-uplink", figures["uplink"]),
        seed_downlink=figures.get("seed-downlink", figures["downlink"]),
    )
