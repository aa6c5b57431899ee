"""The liveness wheel against one heap of every entry: the same checks, in the same order.

:class:`scheduler.session.Liveness` keeps its entries in slots of due time; a plain heap
of every entry (``ReferenceHeap`` below, the simplest correct form) is the model. Any
interleaving of sessions opening, frames arriving, sends starting and ending, and the
clock moving by amounts around and across slot boundaries must give the same checks,
for the same sessions, in the same order, and leave the same entries.
"""

from __future__ import annotations

import heapq
import math
from typing import Generic

import attrs
from hypothesis import given
from hypothesis import strategies as st

from scheduler.session import Check, Liveness
from scheduler.session._liveness import ENDS, SLOT, W
from tests.test_liveness import Watch


class ReferenceHeap(Generic[W]):
    """One heap entry per watch; stale entries skipped when they come up."""

    def __init__(self, liveness: Liveness[W]) -> None:
        self.rules = liveness  # next_check and check: the rules both share
        self.heap: list[tuple[float, int, W]] = []
        self.pushed = 0

    def watch(self, session: W) -> None:
        due = self.rules.next_check(session)
        if due < session.due:
            session.due = due
            self.pushed += 1
            heapq.heappush(self.heap, (due, self.pushed, session))

    def answered(self, session: W, now: float) -> None:
        session.heard_at = now
        if session.ping_sent_at is not None:
            session.ping_sent_at = None
            self.watch(session)

    def expire(self, now: float, limit: int) -> list[tuple[W, Check]]:
        found = []
        while self.heap and self.heap[0][0] <= now and limit > 0:
            due, _, session = heapq.heappop(self.heap)
            if session.watch_over or due != session.due:
                continue
            limit -= 1
            session.due = math.inf
            verdict = self.rules.check(session, now)
            if verdict is not None:
                found.append((session, verdict))
                if verdict in ENDS:
                    session.watch_over = True
                    continue
            self.watch(session)
        return found


#: Steps: open a session, a frame from one, a send starting or ending on one, the clock.
STEPS = st.lists(
    st.one_of(
        st.tuples(st.just("open"), st.booleans()),  # with an announce deadline or not
        st.tuples(st.just("frame"), st.integers(0, 30)),
        st.tuples(st.just("send"), st.integers(0, 30)),
        st.tuples(st.just("sent"), st.integers(0, 30)),
        st.tuples(
            st.just("time"),
            st.one_of(
                st.sampled_from([0.0, SLOT, SLOT / 2, 2 * SLOT, 0.5, 1.0, 2.0]),
                st.floats(0.0, 3.0, allow_nan=False),
            ),
        ),
        st.tuples(st.just("expire"), st.integers(1, 5)),
    ),
    max_size=120,
)


@given(
    steps=STEPS,
    interval=st.sampled_from([0.05, 0.3, 2.0, 2.5]),
    timeout=st.sampled_from([0.04, 1.0, 2.9]),
)
def test_the_wheel_gives_what_one_heap_gives(
    steps: list[tuple[str, object]], interval: float, timeout: float
) -> None:
    periods = {"ping_interval": interval, "ping_timeout": timeout, "send_timeout": 1.5}
    wheel: Liveness[Watch] = Liveness(**periods)
    model: ReferenceHeap[Watch] = ReferenceHeap(Liveness(**periods))
    ours: list[Watch] = []
    theirs: list[Watch] = []
    now = 1000.0
    for kind, value in steps:
        if kind == "open":
            announce_by = now + 0.7 if value else None
            ours.append(Watch(heard_at=now, announce_by=announce_by))
            theirs.append(Watch(heard_at=now, announce_by=announce_by))
            wheel.watch(ours[-1])
            model.watch(theirs[-1])
        elif kind == "time":
            assert isinstance(value, float)
            now += value
        elif kind == "expire":
            assert isinstance(value, int)
            got = [(ours.index(s), c) for s, c in wheel.expire(now, limit=value)]
            want = [(theirs.index(s), c) for s, c in model.expire(now, value)]
            assert got == want
        elif ours:
            assert isinstance(value, int)
            index = value % len(ours)
            mine, model_s = ours[index], theirs[index]
            if kind == "frame":  # as the service does with any frame
                for session, keeper in ((mine, wheel), (model_s, model)):
                    if session.ping_sent_at is None:
                        session.heard_at = now
                    else:
                        keeper.answered(session, now)
            elif kind == "send":
                for session, keeper in ((mine, wheel), (model_s, model)):
                    session.sending_since = now
                    keeper.watch(session)
            else:
                mine.sending_since = model_s.sending_since = None
        # The same entries left, stale ones included: the same earliest, the same count.
        assert wheel.next_due() == (model.heap[0][0] if model.heap else math.inf)
        assert len(wheel) == len(model.heap)
        assert [attrs.astuple(s) for s in ours] == [attrs.astuple(s) for s in theirs]


def test_a_slot_holding_entries_due_later_than_now_gives_only_those_due() -> None:
    liveness: Liveness[Watch] = Liveness(ping_interval=2.0, ping_timeout=1.0, send_timeout=5.0)
    first, second = Watch(heard_at=0.0), Watch(heard_at=SLOT / 2)
    liveness.watch(first)  # due 2.0
    liveness.watch(second)  # due 2.0 + SLOT / 2: the same slot
    assert liveness.expire(2.0 + SLOT / 4) == [(first, Check.PING)]
    assert liveness.next_due() == 2.0 + SLOT / 2
    assert liveness.expire(2.0 + SLOT / 2) == [(second, Check.PING)]
    assert len(liveness) == 2  # each one's ping timeout
