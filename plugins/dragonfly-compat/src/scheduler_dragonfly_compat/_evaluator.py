"""Dragonfly v2.4's load-aware parent evaluator (``evaluator_default.go``), from its formula.

A candidate's score is::

    0.6 load quality + 0.2 IDC affinity + 0.1 location affinity + 0.1 host type

    load quality = 0.5 peak bandwidth usage + 0.3 bandwidth duration + 0.2 concurrency

with ``capacity`` the parent host's announced ``upload_bandwidth`` (bits/s):

* peak bandwidth usage: ``1 - current upload / capacity`` (0 once at or past it);
* bandwidth duration: ``1 - bytes uploaded in the last 60 s × 8 / capacity / 60 s``
  (1 when nothing was uploaded, 0 once at or past 1);
* concurrency: with ``needed = capacity / (16 MiB × 8)`` pieces, 1 while the
  uploads in flight are at most ``needed``, else ``needed / uploads in flight``
  (0 when ``needed <= 1``);
* each load term is 0 when the capacity is unknown (0);
* IDC affinity: 1 when both hosts name the same IDC (case-insensitive), else 0;
* location affinity: leading ``|``-separated elements in common (case-insensitive),
  up to 5, over 5; 1 for equal locations; 0 when either is empty;
* host type: a normal host 0.5; a seed 1 while its peer is ``received_normal`` or
  ``running`` (it is fetching the task for the swarm), else 0.

It hands out at most 3 parents (v2.4's ``candidateParentLimit``). The current
upload, bytes in the window and uploads in flight are the scheduler's count of what
the parent's children reported (``StateView.upload_load``), not the host's word.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, Final, final

from scheduler import hookimpl
from scheduler.core import (
    Host,
    HostType,
    Peer,
    PeerState,
    ScheduleLimits,
    StateView,
    UploadLoad,
)
from scheduler.settings import Section, integer

LOAD_QUALITY_WEIGHT: Final = 0.6
IDC_AFFINITY_WEIGHT: Final = 0.2
LOCATION_AFFINITY_WEIGHT: Final = 0.1
HOST_TYPE_WEIGHT: Final = 0.1

PEAK_BANDWIDTH_USAGE_WEIGHT: Final = 0.5
BANDWIDTH_DURATION_WEIGHT: Final = 0.3
CONCURRENCY_WEIGHT: Final = 0.2

#: Seconds of the bandwidth-duration window.
DURATION_WINDOW: Final = 60.0
#: The piece length the concurrency term assumes (bytes).
CONCURRENCY_PIECE_LENGTH: Final = 16 * 1024 * 1024
#: Location elements compared, at most.
MAX_LOCATION_ELEMENTS: Final = 5
#: v2.4's ``candidateParentLimit``.
CANDIDATE_PARENT_LIMIT: Final = 3

#: The peer states in which a seed's peer scores 1 for its host type.
SEED_PREFERRED_STATES: Final = frozenset({PeerState.RECEIVED_NORMAL, PeerState.RUNNING})


def peak_bandwidth_usage_score(capacity: float, rate: float) -> float:
    """``1 - rate / capacity``; 0 for an unknown capacity (0) or a saturated host."""
    if rate >= capacity:
        return 0.0
    return 1.0 - rate / capacity


def bandwidth_duration_score(capacity: float, window_bytes: int) -> float:
    """``1 - window_bytes × 8 / capacity / 60``; 1 when nothing was uploaded."""
    if capacity <= 0:
        return 0.0
    if window_bytes == 0:
        return 1.0
    return max(0.0, 1.0 - window_bytes * 8 / capacity / DURATION_WINDOW)


def concurrency_score(capacity: float, in_flight: int) -> float:
    """1 while the uploads in flight fit ``capacity`` in 16 MiB pieces, else the ratio."""
    needed = capacity / CONCURRENCY_PIECE_LENGTH / 8
    if needed <= 1.0:
        return 0.0  # an unknown capacity (0), or one that holds a piece at most
    return 1.0 if in_flight == 0 else min(1.0, needed / in_flight)


def load_quality_score(capacity: float, load: UploadLoad) -> float:
    return (
        PEAK_BANDWIDTH_USAGE_WEIGHT * peak_bandwidth_usage_score(capacity, load.rate)
        + BANDWIDTH_DURATION_WEIGHT * bandwidth_duration_score(capacity, load.window_bytes)
        + CONCURRENCY_WEIGHT * concurrency_score(capacity, load.in_flight)
    )


def idc_affinity_score(parent_idc: str, child_idc: str) -> float:
    return 1.0 if parent_idc and parent_idc.casefold() == child_idc.casefold() else 0.0


def location_affinity_score(parent_location: str, child_location: str) -> float:
    if not parent_location or not child_location:
        return 0.0
    mine, theirs = parent_location.casefold(), child_location.casefold()
    if mine == theirs:
        return 1.0
    mine_elements, their_elements = mine.split("|"), theirs.split("|")
    shared = 0
    for i in range(min(len(mine_elements), len(their_elements), MAX_LOCATION_ELEMENTS)):
        if mine_elements[i] != their_elements[i]:
            break
        shared += 1
    return shared / MAX_LOCATION_ELEMENTS


def host_type_score(parent: Peer, host: Host) -> float:
    if host.info.type is HostType.SEED:
        return 1.0 if parent.state in SEED_PREFERRED_STATES else 0.0
    return 0.5


def evaluate(parent: Peer, parent_host: Host, child_host: Host, load: UploadLoad) -> float:
    """Dragonfly v2.4's score of ``parent`` for a child on ``child_host``, in ``[0, 1]``."""
    capacity = float(parent_host.info.upload_bandwidth)
    return (
        LOAD_QUALITY_WEIGHT * load_quality_score(capacity, load)
        + IDC_AFFINITY_WEIGHT * idc_affinity_score(parent_host.info.idc, child_host.info.idc)
        + LOCATION_AFFINITY_WEIGHT
        * location_affinity_score(parent_host.info.location, child_host.info.location)
        + HOST_TYPE_WEIGHT * host_type_score(parent, parent_host)
    )


#: ``[plugins.dragonfly_evaluator]``.
SETTINGS: Final = Section.plugin(
    "dragonfly_evaluator",
    integer(
        "candidate_parent_limit",
        CANDIDATE_PARENT_LIMIT,
        "most parents handed to a child at once, best first (v2.4's default: 3)",
        minimum=1,
    ),
)


@final
class DragonflyEvaluator:
    """Dragonfly v2.4's load-aware evaluator; replaces the built-in ``evaluator``.

    Config ``[plugins.dragonfly_evaluator]``: see :data:`SETTINGS`. The other
    decision limits are the core's defaults (Dragonfly's).
    """

    name = "dragonfly_evaluator"
    settings: ClassVar[Section] = SETTINGS
    candidate_parent_limit: int

    def __init__(self) -> None:
        SETTINGS.init(self)
        self._limits = ScheduleLimits(candidate_parent_limit=self.candidate_parent_limit)

    @hookimpl
    def scheduler_replaces(self) -> list[str]:
        return ["evaluator"]

    @hookimpl
    def scheduler_configure(self, config: Mapping[str, Mapping[str, Any]]) -> None:
        SETTINGS.configure(self, config)
        self._limits = ScheduleLimits(candidate_parent_limit=self.candidate_parent_limit)

    @hookimpl
    def scheduler_schedule_limits(self) -> ScheduleLimits:
        return self._limits

    @hookimpl
    def scheduler_candidate_scores(
        self, child: Peer, candidates: Sequence[Peer], view: StateView, now: float
    ) -> list[float]:
        return self.scores(child, candidates, view, now)

    def scores(
        self, child: Peer, candidates: Sequence[Peer], view: StateView, now: float
    ) -> list[float]:
        child_host = view.host(child.host_id)
        return [
            evaluate(
                parent,
                view.host(parent.host_id),
                child_host,
                view.upload_load(parent.host_id, now),
            )
            for parent in candidates
        ]
