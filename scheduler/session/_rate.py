"""A session's message rate, sans-IO: a token bucket and a count of what it refused.

Each client frame takes one token from a bucket of ``burst`` tokens that refills
at ``rate`` tokens per second; a frame finding it empty is refused (the session
answers ``rate_limited`` and applies nothing). More than ``violation_limit``
refusals within ``violation_window`` seconds mean the client ignores the answer:
the session is closed. Time is always passed in (``now``); nothing here sleeps.
"""

from __future__ import annotations

from collections import deque
from enum import Enum
from typing import final


class Verdict(Enum):
    """What :meth:`MessageRate.admit` decided about one frame."""

    #: Within the rate: handle the frame.
    ALLOW = "allow"
    #: Over the rate: answer ``rate_limited``, change nothing.
    REFUSE = "refuse"
    #: Over the rate once too often: answer ``rate_limited`` and close the session.
    CLOSE = "close"


@final
class TokenBucket:
    """``burst`` tokens, refilled continuously at ``rate`` per second; starts full."""

    __slots__ = ("_at", "_tokens", "burst", "rate")

    def __init__(self, rate: float, burst: int, now: float) -> None:
        if not rate > 0 or burst < 1:
            raise ValueError(f"need rate > 0 and burst >= 1, got rate={rate!r} burst={burst!r}")
        self.rate = rate
        self.burst = burst
        self._tokens = float(burst)
        self._at = now

    def tokens(self, now: float) -> float:
        """The tokens available at ``now`` (a clock that went backwards adds none)."""
        return min(float(self.burst), self._tokens + max(0.0, now - self._at) * self.rate)

    def take(self, now: float) -> bool:
        """Take one token if there is one; False (and nothing taken) if the bucket is empty."""
        tokens = self.tokens(now)
        self._at = max(self._at, now)
        if tokens < 1.0:
            self._tokens = tokens
            return False
        self._tokens = tokens - 1.0
        return True


@final
class MessageRate:
    """The rate rule of one session: a :class:`TokenBucket` and its recent refusals."""

    # One per session, many idle: slots, and no deque until the first refusal.
    __slots__ = ("_refused", "bucket", "violation_limit", "violation_window")

    def __init__(
        self,
        *,
        rate: float,
        burst: int,
        violation_limit: int,
        violation_window: float,
        now: float,
    ) -> None:
        self.bucket = TokenBucket(rate, burst, now)
        self.violation_limit = violation_limit
        self.violation_window = violation_window
        # At most violation_limit + 1 entries: the deque is bounded by the rule itself.
        self._refused: deque[float] | None = None

    def admit(self, now: float) -> Verdict:
        """Judge one frame arriving at ``now``."""
        if self.bucket.take(now):
            return Verdict.ALLOW
        refused = self._refused
        if refused is None:
            refused = self._refused = deque()
        refused.append(now)
        while refused and refused[0] <= now - self.violation_window:
            refused.popleft()
        if len(refused) > self.violation_limit:
            return Verdict.CLOSE
        return Verdict.REFUSE
