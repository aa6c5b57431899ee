"""Each session message does exactly what the core call it stands for does, and no more.

A session and a twin core with the same policies receive the same story, the
session as frames and the twin as direct calls: after every message, the events
the session reports and the state it leaves equal the twin's. Then the details a
client or an operator sees: whose peers a session may touch, the batch's tokens,
the error window's edge, the log records of a drop and of an internal error.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from typing import Any

import attrs
import orjson
import pytest

from scheduler import hookimpl
from scheduler.core import (
    ContactSource,
    Event,
    Expiry,
    Host,
    HostState,
    RecordKind,
    SchedulerState,
    TaskInfo,
)
from scheduler.policies import load_policies
from scheduler.protocol import (
    Ack,
    BatchReply,
    ErrorCode,
    ErrorReply,
    HostAccepted,
    HostPayload,
    Schedule,
)
from scheduler.session import (
    INVALID,
    EndCause,
    HostSessions,
    Outcome,
    SessionLimits,
    SessionProtocol,
    host_info_from,
    parse_networks,
)

A_ID, B_ID = "10.0.0.1-alpha", "10.0.0.2-bravo"
TASK = {
    "id": "t",
    "url": "https://example.invalid/blob",
    "piece_length": 1024,
    "content_length": 4096,
    "total_piece_count": 4,
}
TASK_INFO = TaskInfo("t", TASK["url"], 1024, 4096, 4)  # type: ignore[arg-type]
#: Every message touches the host (``touch_every`` 0), as the twin does.
LIMITS = SessionLimits(
    ping_interval=5.0,
    ping_timeout=4.0,
    announce_timeout=10.0,
    error_limit=50,
    error_window=10.0,
    touch_every=0.0,
)


class Contacts:
    """Records every sign of life the core reports to the policies."""

    name = "contacts"

    def __init__(self) -> None:
        self.seen: list[tuple[str, ContactSource, float]] = []

    @hookimpl
    def scheduler_host_contact(self, host: Host, source: ContactSource, now: float) -> None:
        self.seen.append((host.id, source, now))


def frame(message: dict[str, Any]) -> str:
    return orjson.dumps(message).decode()


def announce(hostname: str, ip: str, request_id: int = 1) -> str:
    host = {"hostname": hostname, "ip": ip, "port": 8002, "download_port": 8001}
    return frame({"type": "announce_host", "id": request_id, "host": host, "interval": 30.0})


def new_state(*plugins: object) -> SchedulerState:
    return SchedulerState(load_policies(plugins=plugins), now=0.0, rng=random.Random(7))


def snapshot(state: SchedulerState) -> dict[str, Any]:
    """Everything a message may change, in comparable form."""
    view = state.view
    return {
        "hosts": sorted(
            (
                h.id,
                h.state,
                h.last_contact_at,
                h.disconnected_at,
                h.concurrent_upload_count,
                h.upload_count,
                h.upload_failed_count,
            )
            for h in state.hosts()
        ),
        "peers": sorted(
            (
                p.id,
                p.state,
                p.updated_at,
                tuple(p.finished_pieces),
                tuple(sorted(p.parents)),
                view.piece_costs_of(p.id),
                view.parents_of(p.id),
                tuple(sorted(view.blocked_parents_of(p.id))),
            )
            for p in state.peers()
        ),
        "tasks": sorted(
            (t.id, t.state, t.url, t.piece_length, t.content_length, t.total_piece_count)
            for t in state.tasks()
        ),
        "deadlines": sorted(
            (kind.value, r.id, state.deadline_of(kind, r.id))
            for kind, records in (
                (RecordKind.HOST, state.hosts()),
                (RecordKind.PEER, state.peers()),
                (RecordKind.TASK, state.tasks()),
            )
            for r in records
        ),
    }


class Twins:
    """Sessions on one core; the same calls made directly on a twin core."""

    def __init__(self) -> None:
        self.contacts, self.twin_contacts = Contacts(), Contacts()
        self.state, self.twin = new_state(self.contacts), new_state(self.twin_contacts)
        self.hosts = HostSessions(self.state)
        self.a = SessionProtocol(self.state, self.hosts, LIMITS, opened_at=0.0)
        self.b = SessionProtocol(self.state, self.hosts, LIMITS, opened_at=0.0)

    def step(
        self,
        session: SessionProtocol,
        message: dict[str, Any],
        now: float,
        direct: Callable[[SchedulerState], list[Event]],
    ) -> Outcome:
        outcome = session.receive(frame(message), now)
        assert session.host_id is not None
        expected = self.twin.touch_host(session.host_id, now, ContactSource.MESSAGE)
        expected += direct(self.twin)
        assert list(outcome.events) == expected, message["type"]
        assert snapshot(self.state) == snapshot(self.twin), message["type"]
        assert self.contacts.seen == self.twin_contacts.seen
        return outcome


def test_every_message_does_what_its_core_call_does_and_reports_its_events() -> None:
    t = Twins()
    info_a = host_info_from(
        HostPayload(hostname="alpha", ip="10.0.0.1", port=8002, download_port=8001)
    )
    for session, name, ip, now in (
        (t.a, "alpha", "10.0.0.1", 1.0),
        (t.b, "bravo", "10.0.0.2", 2.0),
    ):
        outcome = session.receive(announce(name, ip), now)
        info = host_info_from(HostPayload(hostname=name, ip=ip, port=8002, download_port=8001))
        assert list(outcome.events) == t.twin.announce_host(info, now, interval=30.0)
    assert info_a.id == A_ID
    announced = len(t.contacts.seen)

    def register(peer_id: str, host: str, now: float) -> Callable[[SchedulerState], list[Event]]:
        def call(twin: SchedulerState) -> list[Event]:
            return [
                *twin.register_peer(peer_id, host, TASK_INFO, now),
                *twin.schedule_peer(peer_id, now, as_host=host),
            ]

        return call

    story: list[tuple[SessionProtocol, dict[str, Any], float, Callable[..., list[Event]]]] = [
        (
            t.a,
            {"type": "register_peer", "id": 2, "peer_id": "pa", "task": TASK},
            3.0,
            register("pa", A_ID, 3.0),
        ),
        (
            t.a,
            {"type": "back_to_source", "id": 3, "peer_id": "pa"},
            4.0,
            lambda s: s.back_to_source("pa", 4.0, as_host=A_ID),
        ),
        (
            t.a,
            {"type": "pieces_finished", "id": 4, "peer_id": "pa", "pieces": [0, 1], "cost": 0.25},
            5.0,
            lambda s: s.finish_pieces("pa", [0, 1], 5.0, cost=0.25, as_host=A_ID),
        ),
        (
            t.b,
            {"type": "register_peer", "id": 5, "peer_id": "pb", "task": TASK},
            6.0,
            register("pb", B_ID, 6.0),
        ),
        (
            t.b,
            {"type": "download_started", "id": 6, "peer_id": "pb"},
            7.0,
            lambda s: s.start_download("pb", 7.0, as_host=B_ID),
        ),
        (
            t.b,
            {
                "type": "pieces_finished",
                "id": 7,
                "peer_id": "pb",
                "pieces": [0],
                "parent_id": "pa",
                "cost": 0.5,
            },
            8.0,
            lambda s: s.finish_pieces("pb", [0], 8.0, parent_id="pa", cost=0.5, as_host=B_ID),
        ),
        (
            t.b,
            {"type": "reschedule", "id": 8, "peer_id": "pb", "failed_parents": ["pa"]},
            9.0,
            lambda s: s.reschedule_peer("pb", ["pa"], 9.0, as_host=B_ID),
        ),
        (
            t.b,
            {"type": "download_finished", "id": 9, "peer_id": "pb"},
            10.0,
            lambda s: s.finish_download("pb", 10.0, as_host=B_ID),
        ),
        (
            t.a,
            {"type": "download_failed", "id": 10, "peer_id": "pa"},
            11.0,
            lambda s: s.fail_download("pa", 11.0, as_host=A_ID),
        ),
        (
            t.b,
            {"type": "leave_peer", "id": 11, "peer_id": "pb"},
            12.0,
            lambda s: s.leave_peer("pb", 12.0, as_host=B_ID),
        ),
        (t.a, {"type": "leave_host", "id": 12}, 13.0, lambda s: s.leave_host(A_ID, 13.0)),
    ]
    for session, message, now, direct in story:
        outcome = t.step(session, message, now, direct)
        (reply,) = outcome.replies
        if message["type"] in ("register_peer", "reschedule"):
            assert isinstance(reply, Schedule)
            assert reply.id == message["id"]
        else:
            assert reply == Ack(id=message["id"])
    # Every message after the announces was a sign of life, reported as one.
    assert [source for _, source, _ in t.contacts.seen[announced:]] == [
        ContactSource.MESSAGE
    ] * len(story)
    assert t.a.receive(frame({"type": "leave_host", "id": 13}), 14.0).errors
    # The session's pong is a sign of life of its own kind.
    t.b.on_pong(15.0)
    assert t.contacts.seen[-1] == (B_ID, ContactSource.PONG, 15.0)
    # Its drop disconnects the host at the time of the drop.
    t.b.on_closed(16.0)
    assert t.state.host(B_ID).state is HostState.DISCONNECTED
    assert t.state.host(B_ID).disconnected_at == 16.0


@pytest.mark.parametrize(
    "message",
    [
        {"type": "download_started", "id": 5, "peer_id": "pa"},
        {"type": "back_to_source", "id": 5, "peer_id": "pa"},
        {"type": "pieces_finished", "id": 5, "peer_id": "pa", "pieces": [2]},
        {"type": "download_finished", "id": 5, "peer_id": "pa"},
        {"type": "download_failed", "id": 5, "peer_id": "pa"},
        {"type": "leave_peer", "id": 5, "peer_id": "pa"},
        {"type": "reschedule", "id": 5, "peer_id": "pa"},
    ],
    ids=lambda m: m["type"],
)
def test_a_session_cannot_find_another_hosts_peer(message: dict[str, Any]) -> None:
    t = Twins()
    t.a.receive(announce("alpha", "10.0.0.1"), 1.0)
    t.b.receive(announce("bravo", "10.0.0.2"), 1.0)
    t.a.receive(frame({"type": "register_peer", "id": 2, "peer_id": "pa", "task": TASK}), 2.0)
    t.a.receive(frame({"type": "back_to_source", "id": 3, "peer_id": "pa"}), 2.0)
    before = snapshot(t.state)
    outcome = t.b.receive(frame(message), 3.0)
    assert [e.code for e in outcome.errors] == [ErrorCode.NOT_FOUND]
    after = snapshot(t.state)
    assert {**after, "hosts": None} == {**before, "hosts": None}  # bravo's contact moved only


def test_register_peer_keeps_every_field_of_the_task() -> None:
    t = Twins()
    t.a.receive(announce("alpha", "10.0.0.1"), 1.0)
    t.a.receive(frame({"type": "register_peer", "id": 2, "peer_id": "pa", "task": TASK}), 2.0)
    task = t.state.task("t")
    assert (task.url, task.piece_length, task.content_length, task.total_piece_count) == (
        TASK["url"],
        1024,
        4096,
        4,
    )


# --- the session's own state ----------------------------------------------------------------


def test_a_session_registers_the_owner_it_was_given() -> None:
    state = new_state()
    hosts = HostSessions(state)

    class Shell:
        def end(self, cause: EndCause, evicted_reason: str | None = None) -> None:
            pass

        def deliver(self, message: object) -> bool:
            return True

    shell = Shell()
    session = SessionProtocol(state, hosts, LIMITS, opened_at=0.0, owner=shell)
    assert session.owner is shell
    session.receive(announce("alpha", "10.0.0.1"), 1.0)
    assert hosts.owner_of(A_ID) is shell


def test_a_fresh_session_has_no_cause_and_no_eviction_reason() -> None:
    session = SessionProtocol(new_state(), HostSessions(new_state()), LIMITS, opened_at=0.0)
    assert (session.cause, session.evicted_reason, session.farewell()) == (None, None, None)
    session.end(EndCause.EVICTED)  # evicted, but no reason given: no notice to send
    assert session.farewell() is None


def test_a_session_closed_twice_settles_its_host_once() -> None:
    state = new_state()
    hosts = HostSessions(state)
    session = SessionProtocol(state, hosts, LIMITS, opened_at=0.0)
    session.receive(announce("alpha", "10.0.0.1"), 1.0)
    assert session.on_closed(2.0).events
    # A frame still in flight re-binds the host; a second close changes nothing.
    session.receive(announce("alpha", "10.0.0.1"), 3.0)
    assert session.on_closed(4.0) == Outcome()
    assert state.host(A_ID).state is HostState.CONNECTED


def test_closing_after_the_host_was_evicted_does_nothing() -> None:
    state = new_state()
    hosts = HostSessions(state)
    session = SessionProtocol(state, hosts, LIMITS, opened_at=0.0)
    session.receive(announce("alpha", "10.0.0.1"), 1.0)
    state.evict(RecordKind.HOST, A_ID, "operator", 2.0)  # the shell has not ended it yet
    assert session.on_closed(3.0) == Outcome()


def test_the_ttl_of_a_host_due_within_a_second_is_exact() -> None:
    class Soon:
        name = "soon"

        @hookimpl
        def scheduler_host_expiry(self, host: Host) -> Expiry:
            return Expiry(host.last_contact_at + 0.5, "soon")

    state = SchedulerState(load_policies(plugins=[Soon()]), now=0.0)
    session = SessionProtocol(state, HostSessions(state), LIMITS, opened_at=0.0)
    reply = session.receive(announce("alpha", "10.0.0.1"), 1.0).replies[0]
    assert isinstance(reply, HostAccepted)
    assert reply.ttl == 0.5


def test_announcing_another_host_names_both() -> None:
    state = new_state()
    session = SessionProtocol(state, HostSessions(state), LIMITS, opened_at=0.0)
    session.receive(announce("alpha", "10.0.0.1"), 1.0)
    [error] = session.receive(announce("bravo", "10.0.0.2", request_id=2), 2.0).errors
    assert error.code is ErrorCode.FORBIDDEN
    assert error.message == f"this session owns host {A_ID!r}; it cannot announce {B_ID!r}"


def test_an_announce_from_a_refused_network_says_which_setting_refused_it() -> None:
    state = new_state()
    limits = attrs.evolve(
        LIMITS,
        refused_networks=parse_networks(["10.0.0.0/8"], loopback_listener=False),
    )
    session = SessionProtocol(state, HostSessions(state), limits, opened_at=0.0)
    [error] = session.receive(announce("alpha", "10.0.0.1"), 1.0).errors
    assert error.message == (
        "ip 10.0.0.1 is in 10.0.0.0/8, a network this scheduler refuses for hosts "
        "(limits.refused_host_networks): other hosts could not download from it"
    )


# --- frames, batches and errors ---------------------------------------------------------------


def test_a_binary_frame_is_an_invalid_message() -> None:
    session = SessionProtocol(new_state(), HostSessions(new_state()), LIMITS, opened_at=0.0)
    outcome = session.receive(b"\x00", 1.0)
    assert (outcome.close, outcome.message_type) == (EndCause.BINARY_FRAME, INVALID)


def test_the_frames_token_pays_for_the_first_item_of_a_batch_only() -> None:
    limits = attrs.evolve(
        LIMITS,
        message_rate=0.001,
        message_burst=1,
    )
    state = new_state()
    session = SessionProtocol(state, HostSessions(state), limits, opened_at=0.0)
    items = [
        {"type": "leave_peer", "id": 1, "peer_id": "x"},
        {"type": "leave_peer", "id": 2, "peer_id": "y"},
        {"type": "leave_peer", "id": 3},  # malformed: no peer_id
    ]
    outcome = session.receive(frame({"type": "batch", "id": 9, "messages": items}), 1.0)
    (reply,) = outcome.replies
    assert isinstance(reply, BatchReply)
    first, second, third = reply.replies
    assert isinstance(first, ErrorReply)
    assert first.code is ErrorCode.NOT_ANNOUNCED  # handled: the frame's token paid
    assert isinstance(second, ErrorReply)
    assert (second.code, second.id) == (ErrorCode.RATE_LIMITED, 2)
    assert isinstance(third, ErrorReply)
    assert (third.code, third.id) == (ErrorCode.RATE_LIMITED, 3)
    # Metrics count a refused item by its type, a malformed one as invalid.
    assert outcome.item_types == ("leave_peer", "leave_peer", INVALID)
    assert outcome.decision_seconds is None  # no decision was made


def test_an_undecodable_frame_over_the_rate_counts_towards_the_close() -> None:
    limits = attrs.evolve(
        LIMITS,
        message_rate=0.001,
        message_burst=1,
        rate_violation_limit=1,
    )
    state = new_state()
    session = SessionProtocol(state, HostSessions(state), limits, opened_at=0.0)
    session.receive("not json", 1.0)
    assert session.receive("not json", 1.0).close is None  # the first violation
    outcome = session.receive("not json", 1.0)
    assert outcome.close is EndCause.RATE_LIMITED
    assert [e.code for e in outcome.errors] == [ErrorCode.RATE_LIMITED]


def test_an_error_exactly_one_window_old_no_longer_counts() -> None:
    limits = attrs.evolve(
        LIMITS,
        error_limit=1,
        error_window=10.0,
    )
    state = new_state()
    session = SessionProtocol(state, HostSessions(state), limits, opened_at=0.0)
    assert session.receive("not json", 0.0).close is None
    assert session.receive("not json", 10.0).close is None  # the first one left the window
    assert session.receive("not json", 15.0).close is EndCause.TOO_MANY_ERRORS


# --- what an operator reads -------------------------------------------------------------------


def test_a_dropped_session_is_logged_with_its_host_remote_and_cause(
    caplog: pytest.LogCaptureFixture,
) -> None:
    state = new_state()
    session = SessionProtocol(state, HostSessions(state), LIMITS, opened_at=0.0, remote="1.2.3.4")
    session.receive(announce("alpha", "10.0.0.1"), 1.0)
    with caplog.at_level(logging.INFO, logger="scheduler.session"):
        session.on_closed(2.0)
    [record] = [r for r in caplog.records if r.name == "scheduler.session"]
    assert record.getMessage() == "session dropped"
    assert record.fields == {"host_id": A_ID, "remote": "1.2.3.4", "cause": "closed"}  # type: ignore[attr-defined]


def test_an_internal_error_is_logged_with_the_message_type_and_the_traceback(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def broken_placement(task_id: str) -> tuple[str, str] | None:
        raise RuntimeError("placement is broken")

    state = new_state()
    session = SessionProtocol(
        state, HostSessions(state), LIMITS, opened_at=0.0, placement=broken_placement
    )
    assert session.remote == ""
    session.receive(announce("alpha", "10.0.0.1"), 1.0)
    register = {"type": "register_peer", "id": 2, "peer_id": "pa", "task": TASK}
    with caplog.at_level(logging.ERROR, logger="scheduler.session"):
        outcome = session.receive(frame(register), 2.0)
    assert [e.code for e in outcome.errors] == [ErrorCode.INTERNAL]
    [record] = [r for r in caplog.records if r.name == "scheduler.session"]
    assert record.getMessage() == "internal error handling register_peer"
    assert record.exc_info is not None
    assert record.fields == {"host_id": A_ID, "remote": ""}  # type: ignore[attr-defined]


def test_a_task_owned_elsewhere_is_answered_moved_and_applies_nothing() -> None:
    state = new_state()
    session = SessionProtocol(
        state,
        HostSessions(state),
        LIMITS,
        opened_at=0.0,
        placement=lambda task_id: ("scheduler-b", "wss://b.example.invalid/"),
    )
    session.receive(announce("alpha", "10.0.0.1"), 1.0)
    register = {"type": "register_peer", "id": 2, "peer_id": "pa", "task": TASK}
    outcome = session.receive(frame(register), 2.0)
    [error] = outcome.errors
    assert (error.code, error.owner, error.url) == (
        ErrorCode.MOVED,
        "scheduler-b",
        "wss://b.example.invalid/",
    )
    assert (outcome.events, outcome.message_type, outcome.close) == ((), "register_peer", None)
    assert not state.has_peer("pa")
