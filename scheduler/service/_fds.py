"""Open files: one socket per session, so the process's ``RLIMIT_NOFILE`` caps the sessions.

Distributions start processes with a soft limit of 1,024 (or so) and a much higher
hard limit; a process may raise its soft limit up to the hard one by itself. The
service does so at start-up and logs, in one line, how many sessions that leaves
room for (the limit minus what the process needs besides: listeners, the event
loop, logs, the admin API's connections).
"""

from __future__ import annotations

import contextlib
import resource
from typing import Final, final

import attrs

#: Descriptors kept for the process itself and the admin API, not for sessions.
RESERVED_FDS: Final = 64
#: The soft limit asked for when the hard limit is unlimited.
UNLIMITED_TARGET: Final = 1 << 20


@final
@attrs.frozen
class FileLimit:
    """The soft limit before and after the raise, and the hard limit."""

    before: int
    soft: int
    hard: int

    @property
    def sessions(self) -> int:
        """How many sessions the soft limit leaves room for."""
        return max(0, self.soft - RESERVED_FDS)


def target_soft_limit(soft: int, hard: int) -> int:
    """The soft limit to ask for: the hard limit (a bounded number if it is unlimited),
    never lower than the current one."""
    if hard == resource.RLIM_INFINITY:
        return soft if soft == resource.RLIM_INFINITY else max(soft, UNLIMITED_TARGET)
    if soft == resource.RLIM_INFINITY:
        return soft
    return max(soft, hard)


def raise_open_files_limit() -> FileLimit:
    """Raise the soft ``RLIMIT_NOFILE`` as far as the hard limit allows; never lowers it.

    A refused raise (a container's seccomp or the like) leaves the limit as it was.
    """
    before, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = target_soft_limit(before, hard)
    if target != before:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    return FileLimit(before=before, soft=soft, hard=hard)
