"""Reconnect backoff: capped exponential backoff with full jitter.

"Full jitter" (AWS Architecture Blog, *Exponential Backoff And Jitter*) sleeps
``uniform(0, min(cap, base * 2 ** attempt))``: clients that lost the scheduler
at the same moment spread their reconnects over the whole window instead of
arriving in waves. Sans-IO: the caller sleeps, and tells the backoff how long a
session lasted, so the tests need no clock.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import final

# 2 ** 64 times any sane base is far beyond any cap; the bound keeps the float finite.
_MAX_EXPONENT = 64


@final
class Backoff:
    """Delays between reconnect attempts.

    ``uniform(low, high)`` is the random source (``random.uniform`` unless
    injected). ``reset_after`` is how long a session must have lasted for the
    next delay to start from ``base`` again; a session that ends sooner (say the
    scheduler accepts and drops at once) keeps the delays growing.
    """

    def __init__(
        self,
        *,
        base: float = 0.1,
        cap: float = 5.0,
        reset_after: float = 10.0,
        uniform: Callable[[float, float], float] = random.uniform,
    ) -> None:
        if not base > 0 or not cap >= base:
            raise ValueError(f"need 0 < base <= cap, got base={base!r} cap={cap!r}")
        self._base = base
        self._cap = cap
        self._reset_after = reset_after
        self._uniform = uniform
        self._attempt = 0

    @property
    def attempt(self) -> int:
        """How many delays were handed out since the last reset."""
        return self._attempt

    def ceiling(self) -> float:
        """The upper bound of the next delay: ``min(cap, base * 2 ** attempt)``."""
        return min(self._cap, self._base * 2.0 ** min(self._attempt, _MAX_EXPONENT))

    def next_delay(self) -> float:
        """The next delay in seconds, drawn from ``[0, ceiling()]``; counts one attempt."""
        delay = self._uniform(0.0, self.ceiling())
        self._attempt += 1
        return delay

    def reset(self) -> None:
        """Start again from ``base``."""
        self._attempt = 0

    def session_ended(self, lasted: float) -> None:
        """Report a session that lasted ``lasted`` seconds (0 if never accepted)."""
        if lasted >= self._reset_after:
            self.reset()
