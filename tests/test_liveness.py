"""Ping scheduling: the sans-IO timing wheel, and the service's one timer task under a mock clock.

A session is pinged only after ``ping_interval`` of silence; any frame counts as a
sign of life; nothing within ``ping_timeout`` of the ping ends it.
"""

from __future__ import annotations

import math

import attrs
import pytest
import trio
from trio.testing import MockClock
from trio_websocket import ConnectionClosed

from scheduler import hookimpl
from scheduler.core import ContactSource, HostState
from scheduler.protocol import CloseCode
from scheduler.service import ServiceConfig
from scheduler.service._session import TIMER_TICK, _tick
from scheduler.session import Check, Liveness
from tests.service_support import FAST, Harness, announce, running_service
from tests.test_client_scheduling import client

A_ID = "10.0.0.1-alpha"


@attrs.define(eq=False)
class Watch:
    """A session as the liveness rules see it (compared by identity, as sessions are)."""

    heard_at: float = 0.0
    ping_sent_at: float | None = None
    sending_since: float | None = None
    announce_by: float | None = None
    due: float = math.inf
    watch_over: bool = False


def heap() -> Liveness[Watch]:
    return Liveness(ping_interval=2.0, ping_timeout=1.0, send_timeout=5.0)


def test_a_silent_session_is_pinged_after_the_interval_then_times_out() -> None:
    liveness, watch = heap(), Watch()
    liveness.watch(watch)
    assert liveness.next_due() == 2.0
    assert liveness.expire(1.9) == []
    assert liveness.expire(2.0) == [(watch, Check.PING)]
    assert watch.ping_sent_at == 2.0
    assert liveness.next_due() == 3.0
    assert liveness.expire(2.9) == []
    assert liveness.expire(3.0) == [(watch, Check.PING_TIMEOUT)]
    assert watch.watch_over
    assert liveness.expire(100.0) == []


def test_any_frame_after_the_ping_answers_it() -> None:
    liveness, watch = heap(), Watch()
    liveness.watch(watch)
    assert liveness.expire(2.0) == [(watch, Check.PING)]
    watch.heard_at = 2.5  # a pong, or any frame
    assert liveness.expire(3.0) == []
    assert watch.ping_sent_at is None
    assert liveness.next_due() == 4.5  # the next ping: 2 s after the last frame
    assert liveness.expire(4.5) == [(watch, Check.PING)]


def test_after_an_answer_the_next_ping_is_an_interval_after_it() -> None:
    # A timeout longer than the interval, as by default: the answer must move the check.
    liveness = Liveness(ping_interval=2.0, ping_timeout=3.0, send_timeout=5.0)
    watch = Watch()
    liveness.watch(watch)
    assert liveness.expire(2.0) == [(watch, Check.PING)]
    liveness.answered(watch, 2.1)  # the pong; then the host freezes
    assert watch.ping_sent_at is None
    assert liveness.next_due() == pytest.approx(4.1)
    assert liveness.expire(4.1) == [(watch, Check.PING)]
    assert liveness.expire(7.0) == []
    # Found interval + timeout after its last frame, not timeout + interval + timeout.
    assert liveness.expire(7.1) == [(watch, Check.PING_TIMEOUT)]
    assert liveness.expire(8.0) == []  # the superseded entry (due 5.0) was skipped


def test_a_busy_session_is_never_pinged() -> None:
    liveness, watch = heap(), Watch()
    liveness.watch(watch)
    found = []
    for tick in range(1, 200):
        now = tick * 0.5
        watch.heard_at = now  # a frame every 0.5 s
        found += liveness.expire(now)
    assert found == []
    assert len(liveness) == 1  # one entry, moved once per interval


def test_the_first_announce_is_due_within_announce_timeout() -> None:
    liveness, watch = heap(), Watch(announce_by=1.5)
    liveness.watch(watch)
    assert liveness.next_due() == 1.5
    assert liveness.expire(1.5) == [(watch, Check.ANNOUNCE_TIMEOUT)]


def test_an_announced_session_has_no_announce_deadline() -> None:
    liveness, watch = heap(), Watch(announce_by=1.5)
    liveness.watch(watch)
    watch.announce_by, watch.heard_at = None, 1.0
    assert liveness.expire(1.5) == []
    assert liveness.next_due() == 3.0


def test_a_send_that_takes_send_timeout_ends_the_session() -> None:
    liveness, watch = Liveness(ping_interval=60.0, ping_timeout=1.0, send_timeout=5.0), Watch()
    liveness.watch(watch)
    watch.sending_since = 1.0
    liveness.watch(watch)  # a send started: its deadline is earlier than the ping's
    assert liveness.next_due() == 6.0
    assert liveness.expire(6.0) == [(watch, Check.SEND_TIMEOUT)]
    assert liveness.expire(60.0) == []  # the superseded entry is skipped


def test_a_send_that_finishes_changes_nothing() -> None:
    liveness, watch = Liveness(ping_interval=60.0, ping_timeout=1.0, send_timeout=5.0), Watch()
    liveness.watch(watch)
    watch.sending_since = 1.0
    liveness.watch(watch)
    watch.sending_since = None
    assert liveness.expire(6.0) == []
    assert liveness.next_due() == 60.0


def test_expire_takes_at_most_limit_sessions_at_a_time() -> None:
    liveness = heap()
    watches = [Watch() for _ in range(10)]
    for watch in watches:
        liveness.watch(watch)
    assert len(liveness.expire(2.0, limit=4)) == 4
    assert len(liveness.expire(2.0, limit=100)) == 6


def test_an_ended_session_leaves_the_heap() -> None:
    liveness, watch = heap(), Watch()
    liveness.watch(watch)
    watch.watch_over = True
    assert liveness.expire(10.0) == []
    assert len(liveness) == 0


def test_limits_must_be_positive() -> None:
    with pytest.raises(ValueError, match="must be > 0"):
        Liveness(ping_interval=0.0, ping_timeout=1.0, send_timeout=1.0)


# --- the service: one timer task for every session ---------------------------------------


async def test_an_idle_session_is_pinged_once_per_interval_and_stays(
    autojump_clock: MockClock, harness: Harness
) -> None:
    ws, _ = await harness.connect()
    await announce(ws, interval=300.0)
    await trio.sleep(10 * FAST.ping_interval + 0.5)
    timers = harness.service.timers
    # The test client answers every ping: one per interval of silence after the pong.
    assert 5 <= timers.pings <= 10
    assert ws.closed is None
    assert harness.service.state.host(A_ID).state is HostState.CONNECTED


async def test_a_busy_session_is_not_pinged(autojump_clock: MockClock, harness: Harness) -> None:
    ws, _ = await harness.connect()
    for _ in range(20):
        assert (await announce(ws, interval=300.0))["type"] == "host_accepted"
        await trio.sleep(FAST.ping_interval / 2)
    assert harness.service.timers.pings == 0
    assert ws.closed is None


async def test_a_frozen_client_is_dropped_within_interval_and_timeout_of_its_last_frame(
    autojump_clock: MockClock, harness: Harness
) -> None:
    state = harness.service.state
    ws, stream = await harness.connect()
    await announce(ws, interval=300.0)
    last_frame = trio.current_time()
    stream.freeze()
    while state.host(A_ID).state is HostState.CONNECTED:  # noqa: ASYNC110 - mock clock
        await trio.sleep(0.01)
    bound = FAST.ping_interval + FAST.ping_timeout + TIMER_TICK
    assert trio.current_time() - last_frame <= bound + 0.02
    assert not state.is_schedulable(A_ID)
    ended = harness.service.metrics.registry.get_sample_value(
        "scheduler_session_ends_total", {"cause": "ping_timeout"}
    )
    assert ended == 1


async def test_with_the_default_settings_a_hung_host_is_unschedulable_within_5_5_s(
    autojump_clock: MockClock,
) -> None:
    config = ServiceConfig(entrypoints=False)
    assert config.ping_interval + config.ping_timeout <= 5.5
    async with running_service(config) as harness:
        state = harness.service.state
        ws, stream = await harness.connect()
        await announce(ws, interval=300.0)
        await trio.sleep(7.3)  # some pings answered first
        assert state.is_schedulable(A_ID)
        hung_at = trio.current_time()
        stream.freeze()
        with trio.fail_after(60):
            while state.is_schedulable(A_ID):  # noqa: ASYNC110 - mock clock
                await trio.sleep(0.01)
        assert trio.current_time() - hung_at <= 5.5


async def test_a_session_that_never_announces_ends_at_announce_timeout(
    autojump_clock: MockClock, harness: Harness
) -> None:
    ws, _ = await harness.connect()
    opened = trio.current_time()
    with trio.fail_after(30):
        while ws.closed is None:
            try:
                await ws.get_message()
            except ConnectionClosed:
                break
    assert ws.closed is not None
    assert ws.closed.code == CloseCode.POLICY_VIOLATION
    assert trio.current_time() - opened == pytest.approx(FAST.announce_timeout, abs=0.05)


@pytest.mark.parametrize(
    "due", [995.2500000000001, 864.5000000000001, 905.8500000000001, 0.3, 7.0, math.inf]
)
def test_the_timer_never_wakes_before_an_entry_is_due(due: float) -> None:
    # ceil(due / tick) * tick rounds to just below these: a wake-up before the entry
    # is due finds nothing and sleeps to the same deadline again, a spin that never
    # lets a mock clock jump (found by the virtual-time jitter scenario).
    woken = _tick(due)
    assert woken >= due
    assert woken - due < TIMER_TICK or math.isinf(due)


class Contacts:
    """Records where each host contact came from."""

    name = "contacts"

    def __init__(self) -> None:
        self.sources: list[ContactSource] = []

    @hookimpl
    def scheduler_host_contact(self, source: ContactSource) -> None:
        self.sources.append(source)


CONTACTS = Contacts()


@pytest.mark.harness(
    config=attrs.evolve(FAST, ping_interval=2.5, ping_timeout=2.9), plugins=[CONTACTS]
)
async def test_a_client_that_pings_keeps_its_contact_within_one_ping_interval(
    autojump_clock: MockClock, harness: Harness
) -> None:
    # The reference client pings the scheduler every ping_interval; a scheduler whose
    # own timer runs a little later never pings it back (a session that is not silent
    # is not pinged), so the client's pings must count as contact themselves.
    CONTACTS.sources.clear()
    state = harness.service.state
    async with client(harness, "alpha", "10.0.0.1") as (session, _):
        worst = 0.0
        for _ in range(100):  # 30 s of mock time, where the announce interval is 30 s
            await trio.sleep(0.3)
            last = state.host(session.host_id).last_contact_at
            worst = max(worst, trio.current_time() - last)
        assert worst <= 2.5
    assert CONTACTS.sources.count(ContactSource.PING) >= 10
