"""The limits' rules without sockets: the token bucket, the rate rule, admission, binary frames.

Every test passes ``now`` explicitly; nothing sleeps.
"""

from __future__ import annotations

from collections import Counter

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from scheduler.protocol import CloseCode, ErrorCode, ErrorReply, HostAccepted
from scheduler.session import (
    CLOSE_FOR,
    INVALID,
    Admission,
    AdmissionLimits,
    EndCause,
    MessageRate,
    Refused,
    SessionLimits,
    TokenBucket,
    Verdict,
)
from tests.test_session_rules import A_ID, LIMITS, World, announce, error_of, frame, only_reply


@pytest.fixture
def world() -> World:
    return World()


# --- the token bucket -------------------------------------------------------------------


def test_a_bucket_starts_full_and_refuses_when_empty() -> None:
    bucket = TokenBucket(rate=2.0, burst=3, now=0.0)
    assert [bucket.take(0.0) for _ in range(4)] == [True, True, True, False]
    assert bucket.tokens(0.0) == pytest.approx(0.0)


def test_a_bucket_refills_at_its_rate_up_to_its_burst() -> None:
    bucket = TokenBucket(rate=2.0, burst=3, now=0.0)
    for _ in range(3):
        assert bucket.take(0.0)
    assert not bucket.take(0.4)  # 0.8 tokens
    assert bucket.take(0.5)  # 1.0 token
    assert bucket.tokens(100.0) == 3.0  # never above the burst


def test_a_refused_take_takes_nothing() -> None:
    bucket = TokenBucket(rate=1.0, burst=1, now=0.0)
    assert bucket.take(0.0)
    for _ in range(10):
        assert not bucket.take(0.5)
    assert bucket.tokens(0.5) == pytest.approx(0.5)
    assert bucket.take(1.0)


def test_a_clock_going_backwards_adds_no_tokens() -> None:
    bucket = TokenBucket(rate=1.0, burst=2, now=10.0)
    assert bucket.take(10.0)
    assert bucket.take(10.0)
    assert not bucket.take(5.0)
    assert not bucket.take(10.5)
    assert bucket.take(11.0)


@pytest.mark.parametrize(("rate", "burst"), [(0.0, 1), (-1.0, 1), (1.0, 0)])
def test_a_bucket_needs_a_positive_rate_and_burst(rate: float, burst: int) -> None:
    with pytest.raises(ValueError, match="rate > 0 and burst >= 1"):
        TokenBucket(rate, burst, now=0.0)


@given(
    rate=st.floats(0.5, 100.0),
    burst=st.integers(1, 50),
    gaps=st.lists(st.floats(0.0, 2.0), min_size=1, max_size=200),
)
def test_a_bucket_never_allows_more_than_burst_plus_rate_times_time(
    rate: float, burst: int, gaps: list[float]
) -> None:
    bucket = TokenBucket(rate, burst, now=0.0)
    now, allowed = 0.0, 0
    for gap in gaps:
        now += gap
        allowed += bucket.take(now)
    assert allowed <= burst + rate * now + 1e-6


# --- the rate rule ----------------------------------------------------------------------


def test_refusals_past_the_violation_limit_close() -> None:
    rate = MessageRate(rate=1.0, burst=1, violation_limit=2, violation_window=10.0, now=0.0)
    verdicts = [rate.admit(0.0) for _ in range(4)]
    assert verdicts == [Verdict.ALLOW, Verdict.REFUSE, Verdict.REFUSE, Verdict.CLOSE]


def test_refusals_older_than_the_window_are_forgotten() -> None:
    rate = MessageRate(rate=0.01, burst=1, violation_limit=2, violation_window=10.0, now=0.0)
    assert rate.admit(0.0) is Verdict.ALLOW
    assert rate.admit(0.0) is Verdict.REFUSE
    assert rate.admit(1.0) is Verdict.REFUSE
    assert rate.admit(10.5) is Verdict.REFUSE  # the refusal at 0.0 left the window
    assert rate.admit(10.5) is Verdict.CLOSE


# --- the session's rate rule ------------------------------------------------------------

SLOW = attrs.evolve(LIMITS, message_rate=1.0, message_burst=2, rate_violation_limit=2)


def test_a_message_over_the_rate_is_rate_limited_and_changes_nothing(world: World) -> None:
    session = world.open(limits=SLOW)
    assert isinstance(only_reply(session.receive(announce(), 0.0)), HostAccepted)
    register = frame(
        {"type": "register_peer", "id": 7, "peer_id": "p1", "task": {"url": "http://x/a"}}
    )
    assert session.receive(register, 0.0).replies[0].tag == "schedule"
    outcome = session.receive(
        frame({"type": "register_peer", "id": 8, "peer_id": "p2", "task": {"url": "http://x/b"}}),
        0.0,
    )
    error = error_of(outcome)
    assert error.code is ErrorCode.RATE_LIMITED
    assert error.id == 8
    assert outcome.close is None
    assert outcome.events == ()
    assert outcome.message_type == "register_peer"
    assert world.state.has_peer("p1")
    assert not world.state.has_peer("p2")


def test_the_rate_refills_with_time(world: World) -> None:
    session = world.open(limits=SLOW)
    session.receive(announce(request_id=1), 0.0)
    session.receive(announce(request_id=2), 0.0)
    assert error_of(session.receive(announce(request_id=3), 0.0)).code is ErrorCode.RATE_LIMITED
    assert isinstance(only_reply(session.receive(announce(request_id=4), 1.0)), HostAccepted)


def test_an_undecodable_frame_over_the_rate_is_rate_limited_too(world: World) -> None:
    session = world.open(limits=SLOW)
    session.receive(announce(), 0.0)
    session.receive(announce(), 0.0)
    outcome = session.receive('{"type": "nope", "id": "x"}', 0.0)
    assert error_of(outcome).code is ErrorCode.RATE_LIMITED
    assert error_of(outcome).id == "x"
    assert outcome.message_type == INVALID


def test_past_the_violation_limit_the_session_closes_1008(world: World) -> None:
    session = world.open(limits=SLOW)
    outcomes = [session.receive(announce(request_id=i), 0.0) for i in range(5)]
    assert [o.close for o in outcomes] == [None, None, None, None, EndCause.RATE_LIMITED]
    assert error_of(outcomes[-1]).code is ErrorCode.RATE_LIMITED
    assert CLOSE_FOR[EndCause.RATE_LIMITED][0] == CloseCode.POLICY_VIOLATION


def test_rate_limited_replies_do_not_count_as_errors(world: World) -> None:
    # LIMITS allows 3 errors; the rate rule has its own limit.
    limits = attrs.evolve(SLOW, rate_violation_limit=10)
    session = world.open(limits=limits)
    outcomes = [session.receive(announce(request_id=i), 0.0) for i in range(8)]
    assert all(o.close is None for o in outcomes)


def test_the_default_rate_is_generous(world: World) -> None:
    # 1,000 messages in one second from one session pass at the defaults.
    session = world.open()
    session.receive(announce(), 0.0)
    for i in range(1_000):
        outcome = session.receive(announce(request_id=i), i / 1_000)
        assert isinstance(only_reply(outcome), HostAccepted)


def test_a_pong_takes_no_token(world: World) -> None:
    session = world.open(limits=SLOW)
    session.receive(announce(), 0.0)
    for _ in range(10):
        session.on_pong(0.0)
    assert isinstance(only_reply(session.receive(announce(), 0.0)), HostAccepted)


# --- binary frames ----------------------------------------------------------------------


@pytest.mark.parametrize("data", [b"", b'{"type": "leave_host"}', bytearray(b"\x00\xff")])
def test_a_binary_frame_closes_1003_and_changes_nothing(
    world: World, data: bytes | bytearray
) -> None:
    session = world.open()
    session.receive(announce(), 0.0)
    outcome = session.receive(bytes(data), 1.0)
    assert outcome.close is EndCause.BINARY_FRAME
    assert outcome.replies == ()
    assert outcome.events == ()
    assert CLOSE_FOR[EndCause.BINARY_FRAME][0] == CloseCode.UNSUPPORTED_DATA == 1003
    assert world.state.is_schedulable(A_ID)


# --- boot_id ----------------------------------------------------------------------------


def test_host_accepted_carries_the_boot_id(world: World) -> None:
    session = world.open(limits=attrs.evolve(LIMITS, boot_id="b00t"))
    reply = only_reply(session.receive(announce(), 0.0))
    assert isinstance(reply, HostAccepted)
    assert reply.boot_id == "b00t"


# --- admission --------------------------------------------------------------------------

SMALL = AdmissionLimits(
    max_connections=4, max_connections_per_address=2, max_sessions=3, max_sessions_per_address=1
)


def test_connections_are_capped_per_address_and_in_total() -> None:
    admission = Admission(SMALL)
    assert admission.connect("a") is None
    assert admission.connect("a") is None
    assert admission.connect("a") is Refused.ADDRESS_CONNECTIONS
    assert admission.connect("b") is None
    assert admission.connect("b") is None
    assert admission.connect("c") is Refused.MAX_CONNECTIONS
    assert admission.connections == 4
    assert admission.connections_from("a") == 2


def test_a_refusal_counts_nothing_and_a_disconnect_frees_the_slot() -> None:
    admission = Admission(SMALL)
    admission.connect("a")
    admission.connect("a")
    for _ in range(5):
        assert admission.connect("a") is Refused.ADDRESS_CONNECTIONS
    assert admission.connections == 2
    admission.disconnect("a")
    assert admission.connect("a") is None


def test_sessions_are_capped_per_address_and_in_total() -> None:
    admission = Admission(SMALL)
    assert admission.open_session("a") is None
    assert admission.open_session("a") is Refused.ADDRESS_SESSIONS
    assert admission.open_session("b") is None
    assert admission.open_session("c") is None
    assert admission.open_session("d") is Refused.MAX_SESSIONS
    admission.close_session("a")
    assert admission.sessions_from("a") == 0
    assert admission.open_session("a") is None


def test_an_address_is_forgotten_when_its_last_connection_closes() -> None:
    admission = Admission(SMALL)
    for address in ("a", "b"):
        admission.connect(address)
        admission.open_session(address)
    for address in ("a", "b"):
        admission.close_session(address)
        admission.disconnect(address)
    assert admission.connections == admission.sessions == 0
    assert not admission._connections_of
    assert not admission._sessions_of


def test_session_limits_default_to_generous_rates() -> None:
    limits = SessionLimits(
        ping_interval=1.0, ping_timeout=1.0, announce_timeout=1.0, error_limit=1, error_window=1.0
    )
    assert limits.message_rate >= 1_000
    assert limits.message_burst >= 1_000
    assert isinstance(ErrorReply(code=ErrorCode.RATE_LIMITED, message="x"), ErrorReply)


@given(
    st.lists(
        st.tuples(
            st.sampled_from(["connect", "disconnect", "open", "close"]),
            st.sampled_from(["a", "b", "c"]),
        ),
        max_size=60,
    )
)
def test_admission_counts_match_what_was_admitted(ops: list[tuple[str, str]]) -> None:
    """Whatever the order, the totals are the sums per address and no cap is exceeded."""
    admission = Admission(SMALL)
    connections: Counter[str] = Counter()
    sessions: Counter[str] = Counter()
    for op, address in ops:
        if op == "connect" and admission.connect(address) is None:
            connections[address] += 1
        elif op == "disconnect" and connections[address]:
            admission.disconnect(address)
            connections[address] -= 1
        elif op == "open" and admission.open_session(address) is None:
            sessions[address] += 1
        elif op == "close" and sessions[address]:
            admission.close_session(address)
            sessions[address] -= 1
        assert admission.connections == connections.total() <= SMALL.max_connections
        assert admission.sessions == sessions.total() <= SMALL.max_sessions
        for name in "abc":
            assert admission.connections_from(name) == connections[name]
            assert connections[name] <= SMALL.max_connections_per_address
            assert admission.sessions_from(name) == sessions[name]
            assert sessions[name] <= SMALL.max_sessions_per_address
