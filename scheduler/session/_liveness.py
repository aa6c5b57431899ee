"""When to ping a session and when to give up on it, sans-IO: one timing wheel for every session.

A session is pinged only after it has been silent for ``ping_interval`` (any frame,
ping or pong it sends counts as a sign of life), and ends with ``ping_timeout`` when
nothing at all arrives within ``ping_timeout`` of that ping. So a hung host is found
at most ``ping_interval + ping_timeout`` after its last frame, and a busy session is
never pinged. The same wheel bounds the first ``announce_host`` (``announce_timeout``)
and a send that does not finish (``send_timeout``).

Every session has one current entry in the wheel, due at its next check; an entry is
never moved, a newer one just supersedes it (the stale one is skipped when it comes
up). A frame that arrives only updates ``heard_at``: the wheel is touched when an
entry comes due, so a busy session costs one entry per ``ping_interval``, and an idle
one two (the ping, then the check of its answer). The trio shell runs one task for
all sessions: it sleeps until :meth:`Liveness.next_due`, then applies what
:meth:`Liveness.expire` returns. Nothing here reads a clock.

The wheel: entries go into slots of :data:`SLOT` seconds of due time (a dict of lists,
and a heap of the few slot keys in use: about ``(ping_interval + ping_timeout) / SLOT``).
Adding an entry appends to its slot; a slot that comes due is sorted once and taken in
order. Entries come out exactly as from one heap of every entry: by due time, then in
the order they were added (``tests/test_liveness_wheel.py`` holds the wheel to such a
heap). But a heap of tens of thousands of entries cost each pop a dozen levels of
comparisons and cache misses, the most expensive step of an idle session's ping and
pong.
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


#: The checks after which the session ends (and leaves the wheel).
ENDS: Final = frozenset({Check.PING_TIMEOUT, Check.ANNOUNCE_TIMEOUT, Check.SEND_TIMEOUT})
#: Seconds of due time one slot of the wheel holds (any width gives the same results;
#: this one holds about a timer tick's worth of sessions).
SLOT: Final = 0.05


@final
class Liveness(Generic[W]):
    """The timing wheel of every session's next check."""

    def __init__(self, *, ping_interval: float, ping_timeout: float, send_timeout: float) -> None:
        if min(ping_interval, ping_timeout, send_timeout) <= 0:
            raise ValueError("ping_interval, ping_timeout and send_timeout must be > 0")
        self.ping_interval = ping_interval
        self.ping_timeout = ping_timeout
        self.send_timeout = send_timeout
        #: Slot key (``floor(due / SLOT)``) -> its entries ``(due, order added, session)``.
        self._slots: dict[int, list[tuple[float, int, W]]] = {}
        #: The keys of the slots in use, a heap.
        self._keys: list[int] = []
        self._entries = 0
        self._pushed = 0

    def __len__(self) -> int:
        """Entries in the wheel, stale ones included."""
        return self._entries

    def next_due(self) -> float:
        """When the earliest entry comes due (``inf`` if none), stale ones included."""
        keys = self._keys
        return min(self._slots[keys[0]])[0] if keys else math.inf

    def watch(self, session: W) -> float:
        """(Re)schedule ``session`` for its next check if that is earlier than its entry's.

        Call it when a session opens and when it starts a send. Returns the due time.
        """
        due = self.next_check(session)
        if due < session.due:
            session.due = due
            self._pushed += 1
            self._add(math.floor(due / SLOT), [(due, self._pushed, session)])
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

        Returns the sessions that need something, with what, in the order their entries
        came due. A session that ends leaves the wheel; a stale entry (superseded by an
        earlier one) is skipped.
        """
        keys, slots, found = self._keys, self._slots, []
        last = math.floor(now / SLOT)  # no entry due by now is in a later slot
        while keys and keys[0] <= last:
            key = heapq.heappop(keys)
            slot = slots.pop(key)  # entries added meanwhile go to a new slot
            slot.sort()  # by due time, then order added (unique: sessions are never compared)
            taken = 0
            for due, _, session in slot:
                if due > now or limit <= 0:
                    break
                taken += 1
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
            self._entries -= len(slot)
            if taken < len(slot):
                # The rest stay: past the limit, or not due yet (then this is the slot of
                # ``now`` itself, and every later slot is later than ``now``).
                self._add(key, slot[taken:])
                break
        return found

    def _add(self, key: int, entries: list[tuple[float, int, W]]) -> None:
        slot = self._slots.get(key)
        if slot is None:
            self._slots[key] = entries
            heapq.heappush(self._keys, key)
        else:
            slot.extend(entries)
        self._entries += len(entries)
