"""The session rules without a server, a socket or trio: frames in, outcomes out.

In the style of h11's and wsproto's tests, every test drives
:class:`SessionProtocol` with explicit ``now`` values and checks the replies,
the close and the core's state.
"""

from __future__ import annotations

import logging
import subprocess
import sys
from typing import Any

import attrs
import orjson
import pytest

from scheduler import hookimpl
from scheduler.core import (
    BackToSourceLimitReached,
    Conflict,
    Expiry,
    Forbidden,
    Host,
    HostDisconnected,
    HostInfo,
    HostRegistered,
    HostState,
    HostType,
    IllegalTransition,
    NotFound,
    Reason,
    SchedulerState,
)
from scheduler.policies import load_policies
from scheduler.protocol import (
    Ack,
    CloseCode,
    ErrorCode,
    ErrorReply,
    Evicted,
    HostAccepted,
    HostPayload,
    Schedule,
)
from scheduler.session import (
    CLOSE_FOR,
    INVALID,
    EndCause,
    HostSessions,
    Outcome,
    SessionLimits,
    SessionProtocol,
    error_code_for,
    host_info_from,
)

A_ID = "10.0.0.1-alpha"
B_ID = "10.0.0.2-bravo"
GRACE = 2.0
LIMITS = SessionLimits(
    ping_interval=5.0, ping_timeout=4.0, announce_timeout=10.0, error_limit=3, error_window=10.0
)


class World:
    """One core and one registry; sessions are opened on them."""

    def __init__(self, *plugins: object, disable: tuple[str, ...] = ()) -> None:
        policies = load_policies(
            defaults={"disconnect_grace": {"reconnect_grace": GRACE}},
            plugins=plugins,
            disable=disable,
        )
        self.state = SchedulerState(policies, now=0.0)
        self.hosts = HostSessions(self.state)

    def open(self, now: float = 0.0, limits: SessionLimits = LIMITS) -> SessionProtocol:
        return SessionProtocol(self.state, self.hosts, limits, opened_at=now)


def frame(message: dict[str, Any]) -> str:
    return orjson.dumps(message).decode()


def announce(
    hostname: str = "alpha", ip: str = "10.0.0.1", *, request_id: int = 1, interval: float = 10.0
) -> str:
    host = {"hostname": hostname, "ip": ip, "port": 8002, "download_port": 8001}
    return frame({"type": "announce_host", "id": request_id, "host": host, "interval": interval})


def only_reply(outcome: Outcome) -> object:
    (reply,) = outcome.replies
    return reply


def error_of(outcome: Outcome) -> ErrorReply:
    reply = only_reply(outcome)
    assert isinstance(reply, ErrorReply)
    return reply


@pytest.fixture
def world() -> World:
    return World()


# --- announce ---------------------------------------------------------------------------


def test_announce_binds_the_session_to_its_host(world: World) -> None:
    session = world.open()
    outcome = session.receive(announce(interval=10.0), 1.0)
    assert outcome.close is None
    assert outcome.message_type == "announce_host"
    assert any(isinstance(e, HostRegistered) for e in outcome.events)
    assert only_reply(outcome) == HostAccepted(
        id=1,
        host_id=A_ID,
        ttl=20.0,  # twice the interval (announce_ttl)
        ping_interval=LIMITS.ping_interval,
        ping_timeout=LIMITS.ping_timeout,
        reconnect_grace=GRACE,
    )
    assert session.host_id == A_ID
    assert world.hosts.owns(session, A_ID)
    assert world.state.is_schedulable(A_ID)


def test_a_re_announce_on_the_same_session_is_accepted(world: World) -> None:
    session = world.open()
    session.receive(announce(), 0.0)
    reply = only_reply(session.receive(announce(request_id=2), 3.0))
    assert isinstance(reply, HostAccepted)
    assert reply.id == 2
    assert world.state.host(A_ID).last_announce_at == 3.0


def test_announced_stats_reach_the_policies_through_host_info(world: World) -> None:
    seen: list[dict[str, float]] = []

    class StatsReader:
        @hookimpl
        def scheduler_host_contact(self, host: Host) -> None:
            seen.append(dict(host.info.stats))

    world = World(StatsReader())
    session = world.open()
    host = {"hostname": "alpha", "ip": "10.0.0.1", "port": 8002, "download_port": 8001}
    stats = {"cpu": 0.25, "memory": 0.5}
    session.receive(frame({"type": "announce_host", "host": {**host, "stats": stats}}), 0.0)
    assert world.state.host(A_ID).info.stats == stats
    assert seen == [stats]
    session.receive(frame({"type": "announce_host", "host": host}), 1.0)
    assert world.state.host(A_ID).info.stats == {}  # a re-announce replaces what the host said


def test_the_first_message_must_be_announce(world: World) -> None:
    session = world.open()
    outcome = session.receive(frame({"type": "leave_host", "id": 9}), 0.0)
    assert error_of(outcome) == ErrorReply(
        id=9, code=ErrorCode.NOT_ANNOUNCED, message="the first message must be announce_host"
    )
    assert outcome.close is None
    assert outcome.events == ()
    assert session.host_id is None
    assert world.state.host_count() == 0


def test_the_announce_deadline_counts_from_the_open(world: World) -> None:
    session = world.open(now=5.0)
    assert session.announce_by == 5.0 + LIMITS.announce_timeout
    assert not session.announce_overdue(14.9)
    assert session.announce_overdue(15.0)
    session.receive(announce(), 14.9)
    assert not session.announce_overdue(100.0)


# --- the policies in force report the grace ---------------------------------------------


class LongerGrace:
    """Replaces the built-in disconnect grace with a fixed 7 s."""

    name = "longer_grace"

    @hookimpl
    def scheduler_replaces(self) -> list[str]:
        return ["disconnect_grace"]

    @hookimpl
    def scheduler_host_expiry(self, host: Host) -> Expiry | None:
        if host.disconnected_at is None:
            return None
        return Expiry(host.disconnected_at + 7.0, Reason.DISCONNECTED)


def test_reconnect_grace_is_the_one_the_policies_in_force_apply() -> None:
    session = World(LongerGrace()).open()
    reply = only_reply(session.receive(announce(interval=30.0), 0.0))
    assert isinstance(reply, HostAccepted)
    assert reply.reconnect_grace == pytest.approx(7.0)


def test_reconnect_grace_is_none_when_no_policy_evicts_a_dropped_host() -> None:
    session = World(disable=("disconnect_grace", "announce_ttl")).open()
    reply = only_reply(session.receive(announce(), 0.0))
    assert isinstance(reply, HostAccepted)
    assert reply.reconnect_grace is None
    assert reply.ttl is None


# --- error codes ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("message", "code"),
    [
        ("{not json", ErrorCode.INVALID_JSON),
        ("[1, 2]", ErrorCode.INVALID_JSON),
        ('{"type": "teleport", "id": 3}', ErrorCode.UNKNOWN_TYPE),
        ('{"type": "host_accepted", "id": 3}', ErrorCode.UNKNOWN_TYPE),
        (
            '{"type": "register_peer", "id": 3, "peer_id": 12, "task": {"id": "t"}}',
            ErrorCode.INVALID_MESSAGE,
        ),
        ('{"type": "download_started", "id": 3, "peer_id": "nope"}', ErrorCode.NOT_FOUND),
        (
            '{"type": "pieces_finished", "id": 3, "peer_id": "mine", "pieces": [0]}',
            ErrorCode.ILLEGAL_STATE,
        ),
        (
            '{"type": "register_peer", "id": 3, "peer_id": "mine", "task": {"id": "t"}}',
            ErrorCode.CONFLICT,
        ),
    ],
)
def test_bad_input_gets_its_documented_error_and_the_session_stays_open(
    world: World, message: str, code: ErrorCode
) -> None:
    session = world.open()
    session.receive(announce(), 0.0)
    register = {"type": "register_peer", "peer_id": "mine", "task": {"id": "t"}}
    assert isinstance(only_reply(session.receive(frame(register), 0.0)), Schedule)
    outcome = session.receive(message, 1.0)
    reply = error_of(outcome)
    assert reply.code == code
    assert reply.message
    if code is not ErrorCode.INVALID_JSON:
        assert reply.id == 3
    assert outcome.close is None
    # Frames that do not decode are counted as "invalid", the others by their type.
    decoded = code not in (
        ErrorCode.INVALID_JSON,
        ErrorCode.UNKNOWN_TYPE,
        ErrorCode.INVALID_MESSAGE,
    )
    assert outcome.message_type == (orjson.loads(message)["type"] if decoded else INVALID)
    assert isinstance(only_reply(session.receive(announce(), 2.0)), HostAccepted)


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (Forbidden("not yours"), ErrorCode.FORBIDDEN),
        (NotFound("peer", "p"), ErrorCode.NOT_FOUND),
        (Conflict("taken"), ErrorCode.CONFLICT),
        (BackToSourceLimitReached("enough"), ErrorCode.CONFLICT),
        (IllegalTransition("peer", "pending", "finish"), ErrorCode.ILLEGAL_STATE),
        (ValueError("bad"), ErrorCode.INVALID_MESSAGE),
        (RuntimeError("bug"), None),
    ],
)
def test_core_errors_map_to_wire_codes(error: Exception, code: ErrorCode | None) -> None:
    assert error_code_for(error) == code


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (NotFound("peer", "p"), ErrorCode.NOT_FOUND),
        (BackToSourceLimitReached("enough"), ErrorCode.CONFLICT),
        (ValueError("bad interval"), ErrorCode.INVALID_MESSAGE),
        (RuntimeError("bug"), ErrorCode.INTERNAL),
    ],
)
def test_an_error_raised_by_the_core_becomes_its_reply(
    world: World,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    error: Exception,
    code: ErrorCode,
) -> None:
    session = world.open()
    session.receive(announce(), 0.0)

    def raising(*args: object, **kwargs: object) -> list[object]:
        raise error

    monkeypatch.setattr(world.state, "back_to_source", raising)
    with caplog.at_level(logging.ERROR, logger="scheduler.session"):
        outcome = session.receive(frame({"type": "back_to_source", "id": 4, "peer_id": "p"}), 1.0)
    reply = error_of(outcome)
    assert (reply.id, reply.code) == (4, code)
    assert outcome.message_type == "back_to_source"
    if code is ErrorCode.INTERNAL:
        assert reply.message == "internal error"  # no internals leak to the client
        assert any("internal error" in r.message for r in caplog.records)
    else:
        assert reply.message == str(error)


def test_cross_host_writes_are_not_found_and_announces_forbidden(world: World) -> None:
    """Another host's peer is answered as a missing one: no outsider learns which ids exist."""
    a, b = world.open(), world.open()
    a.receive(announce("alpha", "10.0.0.1"), 0.0)
    b.receive(announce("bravo", "10.0.0.2"), 0.0)
    task = {"id": "t", "total_piece_count": 4}
    a.receive(frame({"type": "register_peer", "peer_id": "pa", "task": task}), 0.0)
    for i, kind in enumerate(("download_started", "leave_peer", "pieces_finished", "reschedule")):
        extra = {"pieces": [0]} if kind == "pieces_finished" else {}
        now = 1.0 + 20 * i  # past the error window each time
        theirs = error_of(b.receive(frame({"type": kind, "id": 5, "peer_id": "pa", **extra}), now))
        missing = error_of(b.receive(frame({"type": kind, "id": 5, "peer_id": "zz", **extra}), now))
        assert (theirs.id, theirs.code) == (5, ErrorCode.NOT_FOUND), kind
        assert theirs.message == missing.message.replace("zz", "pa") == "peer 'pa' not found"
    reply = error_of(b.receive(announce("alpha", "10.0.0.1", request_id=5), 100.0))
    assert (reply.id, reply.code) == (5, ErrorCode.FORBIDDEN)
    assert b.host_id == B_ID
    assert world.state.peer("pa").host_id == A_ID
    assert world.hosts.owns(a, A_ID)


# --- the error-rate window --------------------------------------------------------------


def test_too_many_errors_within_the_window_ends_the_session(world: World) -> None:
    session = world.open()
    session.receive(announce(), 0.0)
    for t in (1.0, 2.0, 3.0):
        outcome = session.receive('{"type": "nope"}', t)
        assert error_of(outcome).code == ErrorCode.UNKNOWN_TYPE
        assert outcome.close is None
    outcome = session.receive('{"type": "nope"}', 4.0)
    assert error_of(outcome).code == ErrorCode.TOO_MANY_ERRORS
    assert error_of(outcome).message == "more than 3 errors in 10s"
    assert outcome.close is EndCause.TOO_MANY_ERRORS


def test_errors_older_than_the_window_are_forgotten(world: World) -> None:
    session = world.open()
    session.receive(announce(), 0.0)
    for t in (0.0, 1.0, 2.0):
        session.receive('{"type": "nope"}', t)
    # At 10.5 the error at 0.0 has left the 10 s window: three remain, none too many.
    outcome = session.receive('{"type": "nope"}', 10.5)
    assert error_of(outcome).code == ErrorCode.UNKNOWN_TYPE
    assert outcome.close is None
    outcome = session.receive('{"type": "nope"}', 10.6)
    assert outcome.close is EndCause.TOO_MANY_ERRORS


# --- signs of life ----------------------------------------------------------------------


def test_messages_touch_the_host_at_most_once_per_touch_interval(world: World) -> None:
    session = world.open()
    session.receive(announce(interval=300.0), 0.0)
    host = world.state.host(A_ID)
    bogus_leave = frame({"type": "leave_peer", "id": 1, "peer_id": "none"})
    session.receive(bogus_leave, 0.5)
    assert host.last_contact_at == 0.0  # within touch_every of the announce
    session.receive(bogus_leave, 1.0)
    assert host.last_contact_at == 1.0
    session.receive(bogus_leave, 1.5)
    assert host.last_contact_at == 1.0
    session.on_pong(1.6)  # a pong always counts
    assert host.last_contact_at == 1.6


def test_a_clients_ping_touches_the_host_at_most_once_per_touch_interval(world: World) -> None:
    session = world.open()
    assert session.on_ping(0.2).events == ()  # before any announce: nothing to touch
    session.receive(announce(interval=300.0), 0.5)
    host = world.state.host(A_ID)
    outcome = session.on_ping(1.0)
    assert host.last_contact_at == 1.0  # a ping right after the announce counts
    assert [type(e).__name__ for e in outcome.events] == []  # a contact returns no event
    session.on_ping(1.5)
    assert host.last_contact_at == 1.0  # within touch_every of the last ping
    session.on_ping(2.0)
    assert host.last_contact_at == 2.0


def test_a_replaced_session_no_longer_touches_the_host(world: World) -> None:
    old, new = world.open(), world.open()
    old.receive(announce(), 0.0)
    new.receive(announce(), 1.0)
    old.on_pong(5.0)
    assert world.state.host(A_ID).last_contact_at == 1.0


# --- ends -------------------------------------------------------------------------------


def test_leave_acks_removes_the_host_and_ends_with_leave(world: World) -> None:
    session = world.open()
    session.receive(announce(), 0.0)
    outcome = session.receive(frame({"type": "leave_host", "id": "bye"}), 1.0)
    assert outcome.replies == (Ack(id="bye"),)
    assert outcome.close is EndCause.LEAVE
    assert session.cause is EndCause.LEAVE  # recorded before the shell closes
    assert not world.state.has_host(A_ID)
    # A later end (say, an eviction racing the close) does not change the cause.
    session.end(EndCause.EVICTED, "admin")
    assert session.cause is EndCause.LEAVE
    assert session.on_closed(2.0).events == ()
    assert session.close_frame() == (CloseCode.NORMAL, "host left")
    assert session.farewell() is None


def test_a_drop_disconnects_the_host_once(world: World) -> None:
    session = world.open()
    session.receive(announce(), 0.0)
    outcome = session.on_closed(3.0)
    assert session.cause is EndCause.CLOSED
    assert [type(e) for e in outcome.events] == [HostDisconnected]
    assert world.state.host(A_ID).state is HostState.DISCONNECTED
    assert not world.hosts.owns(session, A_ID)
    assert session.on_closed(4.0) == Outcome()


def test_a_newer_session_replaces_the_older_one(world: World) -> None:
    old, new = world.open(), world.open()
    old.receive(announce(), 0.0)
    assert isinstance(only_reply(new.receive(announce(), 1.0)), HostAccepted)
    assert old.cause is EndCause.REPLACED
    assert world.hosts.owns(new, A_ID)
    # The old session's end neither disconnects nor evicts the host.
    assert old.on_closed(2.0).events == ()
    assert world.state.is_schedulable(A_ID)
    assert old.close_frame() == (CloseCode.REPLACED, "the host announced on a newer session")


def test_an_evicted_host_ends_its_session_with_a_notice(world: World) -> None:
    session = world.open()
    session.receive(announce(), 0.0)
    world.hosts.evicted(A_ID, Reason.ADMIN)
    assert session.cause is EndCause.EVICTED
    assert session.farewell() == Evicted(reason="admin", message=f"host {A_ID} evicted")
    assert session.close_frame() == (CloseCode.EVICTED, "evicted")


def test_a_leave_eviction_does_not_end_the_leaving_session_again(world: World) -> None:
    session = world.open()
    session.receive(announce(), 0.0)
    world.hosts.evicted(A_ID, Reason.LEAVE)
    assert session.cause is None


def test_the_first_end_cause_wins(world: World) -> None:
    session = world.open()
    session.end(EndCause.PING_TIMEOUT)
    session.end(EndCause.SHUTDOWN)
    assert session.cause is EndCause.PING_TIMEOUT
    assert session.on_closed(1.0) == Outcome()  # no host: nothing to disconnect
    assert session.close_frame() == (CloseCode.GOING_AWAY, "no pong within ping_timeout")


def test_every_end_cause_has_a_close_frame() -> None:
    assert set(CLOSE_FOR) == set(EndCause)
    assert all(1000 <= code <= 4999 and reason for code, reason in CLOSE_FOR.values())


def test_the_session_rules_do_not_import_trio() -> None:
    code = "import sys, scheduler.session; sys.exit('trio' in sys.modules)"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_the_wire_and_the_core_declare_the_same_host_fields() -> None:
    assert [f.name for f in attrs.fields(HostPayload)] == [f.name for f in attrs.fields(HostInfo)]
    payload = HostPayload(
        hostname="alpha",
        ip="10.0.0.1",
        port=8002,
        download_port=8001,
        type="seed",
        idc="idc-1",
        location="cn|sh",
        concurrent_upload_limit=7,
        upload_bandwidth=10**9,
        stats={"cpu": 0.5},
    )
    assert host_info_from(payload) == HostInfo(
        "alpha", "10.0.0.1", 8002, 8001, HostType.SEED, "idc-1", "cn|sh", 7, 10**9, {"cpu": 0.5}
    )
