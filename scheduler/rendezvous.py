"""Rendezvous (highest random weight) hashing: one rule for every side of the scheduler.

The core places a task's seed with it (over the connected seed hosts), and a cluster
places each task on one scheduler with it (over the active members' names): the
client routes a task's messages there and a scheduler answers ``moved`` for a task
it does not own. Both sides import this one module, which imports nothing else of the
scheduler and does no I/O.

Every member gets a weight ``hash(key, member)`` and the key belongs to the member of
highest weight. Removing a member moves only the keys it owned; adding one takes
about ``1/n`` of the keys from the others. No ring, no virtual nodes, no state.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable


def rendezvous_weight(key: str, member: str) -> int:
    """A stable 64-bit weight of ``member`` for ``key`` (the same on every process)."""
    digest = hashlib.blake2b(f"{key}\x00{member}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def rendezvous_owner(key: str, members: Iterable[str]) -> str | None:
    """The member that owns ``key`` (None when there is no member).

    Ties, which need a 64-bit collision, go to the smaller member name.
    """
    best: str | None = None
    best_weight = -1
    for member in members:
        weight = rendezvous_weight(key, member)
        if weight > best_weight or (weight == best_weight and best is not None and member < best):
            best, best_weight = member, weight
    return best
