"""The registrar's rules, sans-IO: when to renew, when to retry, what it may believe.

The process never compares the database's timestamps with its own clock. It believes its
lease until ``sent_at + lease``, where ``sent_at`` is its own (monotonic) clock read
*before* the registration or renewal was sent: the database computed the expiry as its
``now()`` (which is later than the sending) plus the same ``lease``, so the belief ends no
later than the row's lease. A renewal that failed, or whose answer never came, extends
nothing: "it may have committed" is not believed.
"""

from __future__ import annotations

import enum
import random
from collections.abc import Callable
from typing import final

from ._model import Lease


class Step(enum.Enum):
    #: Insert a row (first start: take the name over from whatever held it).
    REGISTER = "register"
    #: Extend the live lease of our row.
    RENEW = "renew"
    #: Our row ended (superseded, expired): register again, but do not take a live name.
    REJOIN = "rejoin"


@final
class LeaseKeeper:
    """Tracks one process's registration; the trio task asks it what to do next.

    ``interval`` is the renewal period, ``lease`` the lease length (3 × interval by
    default). Failures are retried after a jittered, doubling delay starting at
    ``interval / 10`` and capped at ``interval``, so several retries fit in one lease.
    """

    def __init__(
        self,
        interval: float,
        lease: float,
        *,
        uniform: Callable[[float, float], float] = random.uniform,
    ) -> None:
        if not 0 < interval < lease:
            raise ValueError(f"need 0 < lease_interval < lease, got {interval!r} and {lease!r}")
        self.interval = interval
        self.lease = lease
        self._uniform = uniform
        self.registration_id: int | None = None
        self.believed_until: float | None = None
        self.step = Step.REGISTER
        self.failures = 0
        self.last_lease: Lease | None = None

    def holds(self, now: float) -> bool:
        """Whether the lease may still be believed at ``now`` (own clock)."""
        return self.believed_until is not None and now < self.believed_until

    def succeeded(self, sent_at: float, lease: Lease) -> float:
        """A registration or renewal sent at ``sent_at`` answered; returns when to renew."""
        self.registration_id = lease.registration_id
        self.believed_until = sent_at + self.lease
        self.last_lease = lease
        self.step = Step.RENEW
        self.failures = 0
        return sent_at + self.interval

    def failed(self, now: float) -> float:
        """The database did not answer; returns when to try again. Believes nothing new."""
        ceiling = min(self.interval, self.interval / 10 * 2.0 ** min(self.failures, 32))
        self.failures += 1
        return now + self._uniform(ceiling / 2, ceiling)

    def lost(self, now: float) -> float:
        """Our row ended under us: the lease is gone at once; returns when to rejoin."""
        self.registration_id = None
        self.believed_until = None
        self.step = Step.REJOIN
        return now

    def refused(self, now: float) -> float:
        """A rejoin found the name held by a live registration: wait one interval."""
        self.failures += 1
        return now + self.interval

    def released(self) -> None:
        """The registration was offlined at shutdown."""
        self.registration_id = None
        self.believed_until = None
        self.step = Step.REJOIN
