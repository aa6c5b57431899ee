"""A sliding-window quota per key: at most ``limit`` uses in any ``window`` seconds.

Memory is at most ``limit`` timestamps per key that used the quota in the last
``window`` seconds: keys whose window is empty are purged every so many uses
(amortised O(1)), so a key that goes away is forgotten without being named, and
one that comes back finds its recent uses still counted.
"""

from __future__ import annotations

from collections import deque
from typing import final


@final
class Quota:
    __slots__ = ("_since_purge", "_uses", "limit", "window")

    def __init__(self, limit: int, window: float) -> None:
        self.limit = limit
        self.window = window
        self._uses: dict[str, deque[float]] = {}
        self._since_purge = 0

    def take(self, key: str, now: float) -> bool:
        """Use the quota once for ``key`` at ``now``; False (and nothing used) if it is spent."""
        self._since_purge += 1
        if self._since_purge > len(self._uses) + 64:
            self.purge(now)
        uses = self._uses.get(key)
        if uses is None:
            uses = self._uses[key] = deque(maxlen=self.limit)
        while uses and uses[0] <= now - self.window:
            uses.popleft()
        if len(uses) >= self.limit:
            return False
        uses.append(now)
        return True

    def used(self, key: str, now: float) -> int:
        """How many uses of ``key`` are within the window ending at ``now``."""
        return sum(1 for at in self._uses.get(key, ()) if at > now - self.window)

    def purge(self, now: float) -> None:
        """Drop every key with no use within the window ending at ``now``."""
        self._since_purge = 0
        horizon = now - self.window
        for key in [k for k, uses in self._uses.items() if not uses or uses[-1] <= horizon]:
            del self._uses[key]

    def __len__(self) -> int:
        return len(self._uses)
