"""Bounds on what one host can make the scheduler keep.

Each bound caps what a single client can allocate, so that no frame costs more
than a bounded multiple of its size and no host can crowd out the others. The
defaults are far above what a real cluster asks for; ``scheduler serve`` sets
them from its ``[records]`` settings.
"""

from __future__ import annotations

import math
from typing import Final, final

import attrs


def _at_least_one(_instance: object, attribute: attrs.Attribute[int], value: int) -> None:
    if value < 1:
        raise ValueError(f"{attribute.name} must be >= 1, got {value}")


def _positive_seconds(_instance: object, attribute: attrs.Attribute[float], value: float) -> None:
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"{attribute.name} must be a positive number of seconds, got {value}")


def _share(_instance: object, attribute: attrs.Attribute[float], value: float) -> None:
    if not 0 < value <= 1:
        raise ValueError(f"{attribute.name} must be in (0, 1], got {value}")


@final
@attrs.frozen(kw_only=True)
class RecordLimits:
    """The bounds the ledgers apply; every one is >= 1."""

    #: Piece numbers must be below this, and a task's ``total_piece_count`` at most this.
    max_piece_count: int = attrs.field(default=100_000, validator=_at_least_one)
    #: Peers one host may hold at once.
    max_peers_per_host: int = attrs.field(default=10_000, validator=_at_least_one)
    #: Live tasks one host may have created (a task outlives its peers until it idles out).
    max_tasks_per_host: int = attrs.field(default=10_000, validator=_at_least_one)
    #: Back-to-source slots of one task that the peers of one host may hold at once.
    max_back_to_source_per_host: int = attrs.field(default=20, validator=_at_least_one)
    #: The share of one host's upload slots that the peers of one other host may hold
    #: at once (at least one slot): a host cannot take every slot of a parent.
    max_upload_share: float = attrs.field(default=0.25, validator=_share)
    #: A parent's host is charged a failure at most once per reporting host in this
    #: many seconds, however many of that host's peers report it.
    failure_report_window: float = attrs.field(default=300.0, validator=_positive_seconds)
    #: Seed fetches the peers of one host may cause within ``seed_fetch_window`` seconds:
    #: a task's URL comes from its first peer, so no host can make the seeds fetch at will.
    seed_fetches_per_host: int = attrs.field(default=20, validator=_at_least_one)
    seed_fetch_window: float = attrs.field(default=60.0, validator=_positive_seconds)

    def upload_slots_for_one_host(self, upload_limit: int) -> int:
        """Of a host's ``upload_limit`` slots, how many the peers of one other host may hold."""
        return max(1, int(upload_limit * self.max_upload_share))


#: The bounds in force when none are given.
DEFAULT_LIMITS: Final = RecordLimits()
