"""When to ping a session and when to give up on it, sans-IO: one deadline heap for every session.

A session is pinged only after it has been silent for ``ping_interval`` (any frame,
ping or pong it sends counts as a sign of life), and ends with ``ping_timeout`` when
nothing at all arrives within ``ping_timeout`` of that ping. So a hung host is found
at most ``ping_interval + ping_timeout`` after its last frame, and a busy session is
never pinged. The same heap bounds the first ``announce_host`` (``announce_timeout``)
and a send that does not finish (``send_timeout``).

Every session has one current entry in the heap, due at its next check; an entry is
never moved, a newer one just supersedes it (the stale one is skipped when it comes
up). A frame that arrives only updates ``heard_at``: the heap is touched when an
entry comes due, so a busy session costs one heap operation per ``ping_interval``,
and an idle one two (the ping, then the check of its answer). The trio shell runs
one task for all sessions: it sleeps until :meth:`Liveness.next_due`, then applies
what :meth:`Liveness.expire` returns. Nothing here reads a clock.
"""

from __future__ import annotations

import heapq
import math
from enum import Enum
from typing import Final, Generic, Protocol, TypeVar, final


class Watched(Protocol):
    """What the heap reads and writes on a session (the trio shell's session has these slots)."""

    #: When the last frame, ping or pong arrived (the session's opening counts).
    heard_at: float
    #: When the unanswered ping was sent; None: no ping outstanding.
    ping_sent_at: float | None
    #: When the send in progress started; None: not sending.
    sending_since: float | None
    #: The first ``announce_host`` must arrive before this; None once it did.
    announce_by: float | None
    #: The due time of the session's current heap entry (``inf``: none).
    due: float
    #: True once the session ended: its entries are dropped.
    watch_over: bool


W = TypeVar("W", bound=Watched)


class Check(Enum):
    """What a due check found."""

    #: Silent for ``ping_interval``: send a ping now.
    PING = "ping"
    #: Nothing arrived within ``ping_timeout`` of the ping: end the session.
    PING_TIMEOUT = "ping_timeout"
    #: No ``announce_host`` within ``announce_timeout`` of the opening.
    ANNOUNCE_TIMEOUT = "announce_timeout"
    #: A send took longer than ``send_timeout``.
    SEND_TIMEOUT = "send_timeout"


#: The checks after which the session ends (and leaves the heap).
ENDS: Final = frozenset({Check.PING_TIMEOUT, Check.ANNOUNCE_TIMEOUT, Check.SEND_TIMEOUT})


@final
class Liveness(Generic[W]):
    """The deadline heap of every session's next check."""

    def __init__(self, *, ping_interval: float, ping_timeout: float, send_timeout: float) -> None:
        if min(ping_interval, ping_timeout, send_timeout) <= 0:
            raise ValueError("ping_interval, ping_timeout and send_timeout must be > 0")
        self.ping_interval = ping_interval
        self.ping_timeout = ping_timeout
        self.send_timeout = send_timeout
        self._heap: list[tuple[float, int, W]] = []
        self._pushed = 0

    def __len__(self) -> int:
        """Entries in the heap, stale ones included."""
        return len(self._heap)

    def next_due(self) -> float:
        """When the earliest entry comes due (``inf`` if none)."""
        return self._heap[0][0] if self._heap else math.inf

    def watch(self, session: W) -> float:
        """(Re)schedule ``session`` for its next check if that is earlier than its entry's.

        Call it when a session opens and when it starts a send. Returns the due time.
        """
        due = self.next_check(session)
        if due < session.due:
            session.due = due
            self._pushed += 1
            heapq.heappush(self._heap, (due, self._pushed, session))
        return session.due

    def answered(self, session: W, now: float) -> None:
        """A pong (or any frame) arrived at ``now`` while a ping was outstanding.

        The next ping is then due ``ping_interval`` after it, not at the ping's
        deadline: so a host that freezes right after answering is found within
        ``ping_interval + ping_timeout`` of that answer.
        """
        session.heard_at = now
        if session.ping_sent_at is not None:
            session.ping_sent_at = None
            self.watch(session)

    def next_check(self, session: W) -> float:
        """When ``session`` next needs a look, from what it last heard and sent."""
        sent = session.ping_sent_at
        due = (
            sent + self.ping_timeout if sent is not None else session.heard_at + self.ping_interval
        )
        if session.announce_by is not None and session.announce_by < due:
            due = session.announce_by
        if session.sending_since is not None:
            due = min(due, session.sending_since + self.send_timeout)
        return due

    def check(self, session: W, now: float) -> Check | None:
        """What ``session`` needs at ``now`` (records a ping as sent when it says PING)."""
        if session.sending_since is not None and now >= session.sending_since + self.send_timeout:
            return Check.SEND_TIMEOUT
        if session.announce_by is not None and now >= session.announce_by:
            return Check.ANNOUNCE_TIMEOUT
        sent = session.ping_sent_at
        if sent is not None:
            if session.heard_at >= sent:  # anything after the ping answers it
                session.ping_sent_at = sent = None
            elif now >= sent + self.ping_timeout:
                return Check.PING_TIMEOUT
        if sent is None and now >= session.heard_at + self.ping_interval:
            session.ping_sent_at = now
            return Check.PING
        return None

    def expire(self, now: float, limit: int = 1_000) -> list[tuple[W, Check]]:
        """Pop the entries due at ``now`` (at most ``limit``), check each, schedule the next.

        Returns the sessions that need something, with what. A session that ends
        leaves the heap; a stale entry (superseded by an earlier one) is skipped.
        """
        heap, found = self._heap, []
        while heap and heap[0][0] <= now and limit > 0:
            due, _, session = heapq.heappop(heap)
            if session.watch_over or due != session.due:
                continue
            limit -= 1
            session.due = math.inf
            verdict = self.check(session, now)
            if verdict is not None:
                found.append((session, verdict))
                if verdict in ENDS:
                    session.watch_over = True
                    continue
            self.watch(session)
        return found
