"""The default parent evaluator: a load-aware weighted sum, as an ordinary plugin.

A candidate's score is a weighted sum of six figures, each in ``[0, 1]``:

============================  ======  ==============================================
figure                        weight  value
============================  ======  ==============================================
finished pieces               0.15    parent's finished pieces / the task's total
upload success rate           0.15    successes / (successes + failures) of its host
upload load                   0.40    1 / (1 + uploads in flight + the share of its
                                      uplink its last 60 s of uploads filled)
host type                     0.10    1 for a normal host, 0.5 for a seed
IDC affinity                  0.10    1 when both hosts name the same IDC
location affinity             0.10    shared prefix of ``|``-separated elements / 5
============================  ======  ==============================================

The upload load is what the parent host's children reported
(``StateView.upload_load``): the children it feeds now, and the bytes it served in
the last 60 s over what its announced ``upload_bandwidth`` could carry in that time
(0 when it announced none). Every child in flight counts as a whole link's worth:
a new child shares the uplink with them, so the score halves with the first one.

Seeds are the last resort (:func:`without_seeds`): when a candidate on a normal host
holds pieces the child lacks, the seeds are left out of the decision, so that their
uplinks go to what only they hold (a task's first pieces) rather than to every child.

The functions are plain (no hooks) so that each rule is tested, and mutated, on its own.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, Final, final

from ..core import UPLOAD_WINDOW, Host, HostType, Peer, ScheduleLimits, StateView, Task, UploadLoad
from ..core._decision import (
    DEFAULT_CANDIDATE_PARENT_LIMIT,
    DEFAULT_FILTER_PARENT_LIMIT,
    DEFAULT_RETRY_AFTER,
    DEFAULT_RETRY_BACK_TO_SOURCE_LIMIT,
    DEFAULT_RETRY_LIMIT,
)
from ..hookspecs import hookimpl
from ..settings import Section, duration, integer

FINISHED_PIECE_WEIGHT: Final = 0.15
UPLOAD_SUCCESS_WEIGHT: Final = 0.15
UPLOAD_LOAD_WEIGHT: Final = 0.4
HOST_TYPE_WEIGHT: Final = 0.1
IDC_AFFINITY_WEIGHT: Final = 0.1
LOCATION_AFFINITY_WEIGHT: Final = 0.1

#: Location elements compared, at most (Dragonfly's ``maxElementLen``).
MAX_LOCATION_ELEMENTS: Final = 5

#: The load of a host nobody reported an upload from, feeding nobody.
NO_LOAD: Final = UploadLoad()

#: ``HostType.SEED`` for the hot path: an enum member read off its class is slow on 3.11.
_SEED: Final = HostType.SEED


def finished_piece_score(parent: Peer, child: Peer, task: Task) -> float:
    """The share of the task the parent holds; for a task of unknown size, its lead on the child."""
    parent_count = len(parent.finished_pieces)
    if task.total_piece_count > 0:
        return min(1.0, parent_count / task.total_piece_count)
    lead = parent_count - len(child.finished_pieces)
    return 1.0 if lead > 0 else 0.0


def upload_success_score(host: Host) -> float:
    """Successful uploads over all uploads of the parent's host; 1 for a host never tried."""
    attempts = host.upload_count + host.upload_failed_count
    if attempts == 0:
        return 1.0
    return host.upload_count / attempts


def upload_load_score(host: Host, load: UploadLoad) -> float:
    """``1 / (1 + in flight + recent)``: recent is the bytes of the last 60 s over what
    the host's ``upload_bandwidth`` carries in 60 s (0 for an unknown bandwidth)."""
    capacity = host.info.upload_bandwidth
    recent = load.window_bytes * 8 / (capacity * UPLOAD_WINDOW) if capacity > 0 else 0.0
    return 1.0 / (1.0 + load.in_flight + recent)


def host_type_score(host: Host) -> float:
    """Normal hosts first: a seed's uplink is kept for what only it holds."""
    return 0.5 if host.info.type is HostType.SEED else 1.0


def idc_affinity_score(parent_idc: str, child_idc: str) -> float:
    return 1.0 if parent_idc and parent_idc == child_idc else 0.0


def location_affinity_score(parent_location: str, child_location: str) -> float:
    """Shared leading ``|``-separated elements, up to :data:`MAX_LOCATION_ELEMENTS`, over 5."""
    if not parent_location or not child_location:
        return 0.0
    if parent_location == child_location:
        return 1.0
    shared = 0
    for mine, theirs in zip(
        parent_location.split("|")[:MAX_LOCATION_ELEMENTS],
        child_location.split("|")[:MAX_LOCATION_ELEMENTS],
        strict=False,
    ):
        if mine != theirs:
            break
        shared += 1
    return shared / MAX_LOCATION_ELEMENTS


#: Locations repeat (a few per rack, zone or site), so a pair is split and compared once.
_location_affinity = functools.lru_cache(maxsize=4096)(location_affinity_score)


def evaluate(
    parent: Peer,
    parent_host: Host,
    child: Peer,
    child_host: Host,
    task: Task,
    *,
    load: UploadLoad = NO_LOAD,
) -> float:
    """The default score of ``parent`` for ``child``, in ``[0, 1]``: the figures, weighted.

    ``load`` is the parent host's upload load (``StateView.upload_load``).
    """
    return (
        FINISHED_PIECE_WEIGHT * finished_piece_score(parent, child, task)
        + UPLOAD_SUCCESS_WEIGHT * upload_success_score(parent_host)
        + UPLOAD_LOAD_WEIGHT * upload_load_score(parent_host, load)
        + HOST_TYPE_WEIGHT * host_type_score(parent_host)
        + IDC_AFFINITY_WEIGHT * idc_affinity_score(parent_host.info.idc, child_host.info.idc)
        + LOCATION_AFFINITY_WEIGHT
        * location_affinity_score(parent_host.info.location, child_host.info.location)
    )


def score_candidates(
    child: Peer, candidates: Sequence[Peer], view: StateView, now: float
) -> list[float]:
    """:func:`evaluate` of each candidate for ``child``, equal to the bit, in one pass.

    This is the hot path of a decision, so the figures are computed inline, with the
    same operations in the same order as :func:`evaluate` and the figure functions
    (a property test holds them equal), but without a call per figure: what depends
    on the child is read once, a pair of locations is compared once (cached), and
    ``min``/``max`` (slow builtins on CPython 3.11) are written as comparisons.
    """
    host_of = view.host
    window_bytes_of = view.upload_window_bytes
    child_info = host_of(child.host_id).info
    child_idc = child_info.idc
    child_location = child_info.location
    child_pieces = len(child.finished_pieces)
    total = view.task(child.task_id).total_piece_count
    seed = _SEED
    window = UPLOAD_WINDOW
    scores: list[float] = []
    for parent in candidates:
        host = host_of(parent.host_id)
        info = host.info
        pieces = len(parent.finished_pieces)
        if total > 0:
            finished = pieces / total if pieces < total else 1.0
        else:
            finished = 1.0 if pieces - child_pieces > 0 else 0.0
        attempts = host.upload_count + host.upload_failed_count
        success = 1.0 if attempts == 0 else host.upload_count / attempts
        capacity = info.upload_bandwidth
        recent = window_bytes_of(host.id, now) * 8 / (capacity * window) if capacity > 0 else 0.0
        idc = info.idc
        scores.append(
            FINISHED_PIECE_WEIGHT * finished
            + UPLOAD_SUCCESS_WEIGHT * success
            # The children in flight are the host's held upload slots (UploadLoad.in_flight).
            + UPLOAD_LOAD_WEIGHT * (1.0 / (1.0 + host.concurrent_upload_count + recent))
            + HOST_TYPE_WEIGHT * (0.5 if info.type is seed else 1.0)
            + IDC_AFFINITY_WEIGHT * (1.0 if idc and idc == child_idc else 0.0)
            + LOCATION_AFFINITY_WEIGHT * _location_affinity(info.location, child_location)
        )
    return scores


def without_seeds(child: Peer, ranked: Sequence[Peer], view: StateView) -> list[str] | None:
    """The ranked candidates less those on seed hosts, when one on a normal host holds a
    piece the child lacks; None (the ranking as it is) otherwise.

    Pieces are compared by count: a candidate with more finished pieces than the child
    holds one it lacks. For a child that holds nothing, any candidate holding a piece
    does.
    """
    mine = len(child.finished_pieces)
    seed = _SEED
    normal: list[str] = []
    ahead = False
    dropped = False
    for candidate in ranked:
        if view.host(candidate.host_id).info.type is seed:
            dropped = True
        else:
            normal.append(candidate.id)
            ahead = ahead or len(candidate.finished_pieces) > mine
    return normal if ahead and dropped else None


#: ``[plugins.evaluator]``: the limits every decision is made with (Dragonfly's defaults).
SETTINGS: Final = Section.plugin(
    "evaluator",
    integer(
        "candidate_parent_limit",
        DEFAULT_CANDIDATE_PARENT_LIMIT,
        "most parents handed to a child at once, best first",
        minimum=1,
    ),
    integer(
        "filter_parent_limit",
        DEFAULT_FILTER_PARENT_LIMIT,
        "candidates sampled at random among the task's peers that can feed, per decision",
        minimum=1,
    ),
    duration(
        "retry_after",
        DEFAULT_RETRY_AFTER,
        "how long a child told to wait waits before asking again (jittered by 20 %)",
        positive=True,
    ),
    integer(
        "retry_back_to_source_limit",
        DEFAULT_RETRY_BACK_TO_SOURCE_LIMIT,
        "after more waits and reschedules than this, a child with no parent goes to the origin",
        details="if the task's back-to-source limit allows.",
        minimum=0,
    ),
    integer(
        "retry_limit",
        DEFAULT_RETRY_LIMIT,
        "after more waits and reschedules than this, a child with no parent and no origin fails",
        minimum=0,
    ),
)


@final
class Evaluator:
    """The load-aware parent evaluator: scores candidates, keeps seeds for last, and sets
    the decision limits.

    Scores with :func:`evaluate` (in ``[0, 1]``); other plugins' scores add to it.
    Config ``[plugins.evaluator]``: see :data:`SETTINGS`.
    """

    name = "evaluator"
    settings: ClassVar[Section] = SETTINGS
    candidate_parent_limit: int
    filter_parent_limit: int
    retry_after: float
    retry_back_to_source_limit: int
    retry_limit: int

    def __init__(self) -> None:
        SETTINGS.init(self)
        self._limits = self.limits()

    @hookimpl
    def scheduler_configure(self, config: Mapping[str, Mapping[str, Any]]) -> None:
        SETTINGS.configure(self, config)
        self._limits = self.limits()

    def limits(self) -> ScheduleLimits:
        return ScheduleLimits(
            candidate_parent_limit=self.candidate_parent_limit,
            filter_parent_limit=self.filter_parent_limit,
            retry_after=self.retry_after,
            retry_back_to_source_limit=self.retry_back_to_source_limit,
            retry_limit=self.retry_limit,
        )

    @hookimpl
    def scheduler_schedule_limits(self) -> ScheduleLimits:
        # Built once per configuration: this is asked on every decision.
        return self._limits

    @hookimpl
    def scheduler_candidate_scores(
        self, child: Peer, candidates: Sequence[Peer], view: StateView, now: float
    ) -> list[float]:
        # Once per decision for every candidate (not once per candidate): the hot path.
        return score_candidates(child, candidates, view, now)

    @hookimpl
    def scheduler_select_parents(
        self, child: Peer, candidates: Sequence[Peer], view: StateView
    ) -> list[str] | None:
        # The ranking stands, less the seeds when a normal host can feed the child.
        return without_seeds(child, candidates, view)
