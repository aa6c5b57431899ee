"""Did the scheduler restart? What a client learns from ``host_accepted``'s ``boot_id``.

The scheduler keeps its state in memory only and draws a random ``boot_id`` when
its process starts. A client that reconnects and sees the ``boot_id`` it saw
before talks to the same process, which may still hold its peers (a dropped host
keeps them through ``reconnect_grace``): it asks where each one stands
(``reschedule``). A different ``boot_id`` (or none to compare) means the
scheduler lost them all: the client registers every running peer again, at once.
"""

from __future__ import annotations

import enum
from typing import final


class Resume(enum.Enum):
    """What to do with this host's running peers on a new session."""

    #: The first session, a restarted scheduler, or no ``boot_id`` to compare: register.
    REGISTER = "register"
    #: The same scheduler process: ask where each peer stands, register those it lost.
    RESCHEDULE = "reschedule"


@final
class BootWatch:
    """Remembers the scheduler's ``boot_id`` across the sessions of one client."""

    def __init__(self) -> None:
        self.boot_id: str | None = None
        #: How many times a new ``boot_id`` replaced a known one.
        self.restarts = 0

    def accepted(self, boot_id: str | None) -> Resume:
        """A session was accepted with ``boot_id``: how to bring the peers back."""
        previous, self.boot_id = self.boot_id, boot_id
        if previous is not None and boot_id is not None and boot_id == previous:
            return Resume.RESCHEDULE
        if previous is not None and boot_id is not None:
            self.restarts += 1
        return Resume.REGISTER
