"""Dragonfly's periodic sweeps, expressed as deadlines.

Dragonfly's GC does not evict a record the moment its TTL runs out: a ticker
fires every sweep period and evicts whatever has expired *by then*. In the
deadline model, that is the first tick strictly after the TTL runs out, with
ticks at the multiples of the period on the scheduler's clock.
"""

from __future__ import annotations

import math


def next_sweep_tick(due: float, period: float) -> float:
    """The first multiple of ``period`` strictly after ``due``.

    Dragonfly compares ``elapsed > ttl``, so a tick that lands exactly on
    ``due`` does not evict yet; the next one does.

    >>> next_sweep_tick(1060.0, 300.0), next_sweep_tick(1200.0, 300.0)
    (1200.0, 1500.0)
    """
    if not (math.isfinite(period) and period > 0):
        raise ValueError(f"period must be a positive finite number of seconds, got {period!r}")
    k = math.floor(due / period) + 1
    # due / period is rounded, so floor() can land one tick off either way near a
    # multiple; correct it against the exact products the ticks are made of.
    if k * period <= due:
        k += 1
    elif (k - 1) * period > due:
        k -= 1
    return k * period
