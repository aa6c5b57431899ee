"""Dragonfly's bad-node rule: a parent whose latest piece cost is an outlier.

With fewer than :data:`MIN_COST_SAMPLES` costs nothing is known, so the peer is good.
Below :data:`NORMAL_DISTRIBUTION_SAMPLES` costs the distribution is not trusted and
only a last cost more than :data:`OUTLIER_FACTOR` × the mean of the earlier ones is
bad; from then on the three-sigma rule applies.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Final

MIN_COST_SAMPLES: Final = 2
NORMAL_DISTRIBUTION_SAMPLES: Final = 30
OUTLIER_FACTOR: Final = 20.0
SIGMAS: Final = 3.0


def is_bad_node(costs: Sequence[float]) -> bool:
    """True if the last of ``costs`` (oldest first) is an outlier against the others."""
    count = len(costs)
    if count < MIN_COST_SAMPLES:
        return False
    *earlier, last = costs
    mean = math.fsum(earlier) / len(earlier)
    if count < NORMAL_DISTRIBUTION_SAMPLES:
        return last > mean * OUTLIER_FACTOR
    variance = math.fsum((c - mean) ** 2 for c in earlier) / len(earlier)
    return last > mean + SIGMAS * math.sqrt(variance)
