"""What a scheduling decision says, and the limits it is made under.

Plain frozen classes, importing nothing of the engine, so that the hook
specifications and the events can name them.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Callable
from typing import Any, Final, final

import attrs


class ScheduleAction(enum.StrEnum):
    """What the child should do next."""

    #: Download from :attr:`Decision.parents` (non-empty).
    PARENTS = "parents"
    #: Download from the origin; the task's back-to-source slot is reserved for the child.
    BACK_TO_SOURCE = "back_to_source"
    #: Nobody can feed the child yet: ask again after :attr:`Decision.retry_after`.
    WAIT = "wait"
    #: The scheduler gives up on the child.
    FAIL = "fail"


# Checked on every decision: module constants, since an enum member read off its class
# costs about 0.1 µs on CPython 3.11.
_PARENTS: Final = ScheduleAction.PARENTS
_WAIT: Final = ScheduleAction.WAIT


class ScheduleCause(enum.StrEnum):
    """Why the core made a decision (:attr:`PeerScheduled.cause`)."""

    REGISTER = "register"
    RESCHEDULE = "reschedule"
    #: A proactive push: a parent handed to the child became unschedulable.
    PARENT_LOST = "parent_lost"


def _check_decision(
    instance: Decision, attribute: attrs.Attribute[ScheduleAction], value: ScheduleAction
) -> None:
    action = instance.action
    if bool(instance.parents) != (action is _PARENTS):
        raise ValueError("parents must be non-empty exactly when the action is parents")
    if (instance.retry_after is not None) != (action is _WAIT):
        raise ValueError("retry_after comes with wait, and only with it")


@final
@attrs.frozen
class Decision:
    """One answer to a child: parents (best first), the origin, wait, or fail."""

    action: ScheduleAction = attrs.field(validator=_check_decision)
    #: Peer ids, best first; non-empty exactly when ``action`` is ``parents``.
    parents: tuple[str, ...] = ()
    #: Seconds before the child asks again; only with ``wait``.
    retry_after: float | None = None
    message: str = ""


#: Dragonfly's defaults (``candidateParentLimit``, ``filterParentLimit``, ...).
DEFAULT_CANDIDATE_PARENT_LIMIT: Final = 4
DEFAULT_FILTER_PARENT_LIMIT: Final = 15
DEFAULT_RETRY_AFTER: Final = 0.5
DEFAULT_RETRY_BACK_TO_SOURCE_LIMIT: Final = 4
DEFAULT_RETRY_LIMIT: Final = 5


def _at_least(minimum: int) -> Callable[[Any, attrs.Attribute[int], int], None]:
    def check(instance: object, attribute: attrs.Attribute[int], value: int) -> None:
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise ValueError(f"{attribute.name} must be an integer >= {minimum}, got {value!r}")

    return check


def _positive_seconds(instance: object, attribute: attrs.Attribute[float], value: float) -> None:
    if not (isinstance(value, int | float) and math.isfinite(value) and value > 0):
        raise ValueError(f"{attribute.name} must be a positive number of seconds, got {value!r}")


@final
@attrs.frozen
class ScheduleLimits:
    """The numbers a decision is made with (from the ``scheduler_schedule_limits`` hook).

    * ``candidate_parent_limit``: most parents handed out at once;
    * ``filter_parent_limit``: candidates sampled at random from the task;
    * ``retry_after``: seconds a waiting child is told to wait (jittered ±20 %);
    * ``retry_back_to_source_limit``: after more waits and reschedules than this, a
      child with no candidate goes to the origin if the task's limit allows;
    * ``retry_limit``: after more than this (and no origin), it gets ``fail``.
    """

    candidate_parent_limit: int = attrs.field(
        default=DEFAULT_CANDIDATE_PARENT_LIMIT, validator=_at_least(1)
    )
    filter_parent_limit: int = attrs.field(
        default=DEFAULT_FILTER_PARENT_LIMIT, validator=_at_least(1)
    )
    retry_after: float = attrs.field(default=DEFAULT_RETRY_AFTER, validator=_positive_seconds)
    retry_back_to_source_limit: int = attrs.field(
        default=DEFAULT_RETRY_BACK_TO_SOURCE_LIMIT, validator=_at_least(0)
    )
    retry_limit: int = attrs.field(default=DEFAULT_RETRY_LIMIT, validator=_at_least(0))
