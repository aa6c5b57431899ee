"""Scheduling in the session rules, without a server, a socket or trio.

``register_peer`` and ``reschedule`` are answered with ``schedule``; the core's
proactive pushes and seed fetches, whichever mutation produced them, reach the
session of the host they are for through the registry (:func:`route_unsolicited`).
"""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from scheduler.core import (
    Decision,
    HostType,
    PeerScheduled,
    RecordKind,
    ScheduleAction,
    SchedulerState,
    SeedFetchRequested,
)
from scheduler.policies import load_policies
from scheduler.protocol import (
    ErrorCode,
    ErrorReply,
    FetchTask,
    ParentPayload,
    Schedule,
    TaskPayload,
)
from scheduler.session import (
    CLOSE_FOR,
    Delivery,
    EndCause,
    HostSessions,
    Outcome,
    Routed,
    SessionLimits,
    SessionProtocol,
    route_unsolicited,
    schedule_message,
    unsolicited,
)

LIMITS = SessionLimits(
    ping_interval=5.0,
    ping_timeout=4.0,
    announce_timeout=10.0,
    error_limit=50,
    error_window=10.0,
    outbox_size=3,
)
A_ID, B_ID, C_ID = "10.0.0.1-alpha", "10.0.0.2-bravo", "10.0.0.3-charlie"
SEED_ID = "10.0.0.9-seed-seed"
TASK = {"id": "t", "total_piece_count": 4}


class World:
    """One core and one registry; each host gets a session."""

    def __init__(self, *, enable: tuple[str, ...] = ()) -> None:
        self.state = SchedulerState(load_policies(enable=enable), now=0.0)
        self.hosts = HostSessions(self.state)
        self.sessions: dict[str, SessionProtocol] = {}
        self.ticks = 0.0

    def timer(self) -> float:
        self.ticks += 0.25
        return self.ticks

    def open(self, hostname: str, ip: str, *, seed: bool = False) -> SessionProtocol:
        session = SessionProtocol(self.state, self.hosts, LIMITS, opened_at=0.0, timer=self.timer)
        host: dict[str, Any] = {"hostname": hostname, "ip": ip, "port": 8002}
        host |= {"download_port": 8001, "type": "seed" if seed else "normal"}
        self.apply(session.receive(frame({"type": "announce_host", "id": 1, "host": host}), 0.0))
        assert session.host_id is not None
        self.sessions[session.host_id] = session
        return session

    def apply(self, outcome: Outcome) -> Routed:
        """What the service does with every outcome: route the unsolicited messages."""
        return route_unsolicited(self.state.view, self.hosts, outcome.events)

    def close(self, session: SessionProtocol, now: float) -> Routed:
        """The session's end, then (the service: once the sessions that ended in the
        same batch are all closed) the pushes the drop deferred."""
        outcome = session.on_closed(now)
        events = [*outcome.events, *self.state.flush_pushes(now)]
        return route_unsolicited(self.state.view, self.hosts, events)

    def send(self, session: SessionProtocol, message: dict[str, Any], now: float) -> Any:
        outcome = session.receive(frame(message), now)
        self.apply(outcome)
        (reply,) = outcome.replies
        return reply


def frame(message: dict[str, Any]) -> str:
    return orjson.dumps(message).decode()


def register(peer_id: str, request_id: int = 7) -> dict[str, Any]:
    return {"type": "register_peer", "id": request_id, "peer_id": peer_id, "task": TASK}


def pushes(session: SessionProtocol) -> list[Schedule]:
    found = [m for m in session.outbox if isinstance(m, Schedule) and m.id is None]
    session.outbox.clear()
    return found


@pytest.fixture
def world() -> World:
    return World()


def feed_task(world: World) -> tuple[SessionProtocol, SessionProtocol, SessionProtocol]:
    """alpha holds two peers with pieces (pa, pa2); charlie's pc downloads from both."""
    a, b = world.open("alpha", "10.0.0.1"), world.open("bravo", "10.0.0.2")
    c = world.open("charlie", "10.0.0.3")
    for peer_id in ("pa", "pa2"):
        world.send(a, register(peer_id), 0.0)
        world.send(a, {"type": "back_to_source", "id": 2, "peer_id": peer_id}, 0.0)
        world.send(a, {"type": "pieces_finished", "id": 3, "peer_id": peer_id, "pieces": [0]}, 0.0)
    reply = world.send(c, register("pc"), 1.0)
    assert isinstance(reply, Schedule)
    assert reply.action == "parents"
    assert {p.peer_id for p in reply.parents} == {"pa", "pa2"}
    world.send(c, {"type": "download_started", "id": 4, "peer_id": "pc"}, 1.0)
    for session in (a, b, c):
        session.outbox.clear()
    return a, b, c


# --- replies ------------------------------------------------------------------------


def test_register_is_answered_with_schedule_echoing_the_id(world: World) -> None:
    a = world.open("alpha", "10.0.0.1")
    outcome = a.receive(frame(register("pa", request_id=41)), 1.0)
    assert outcome.replies == (
        Schedule(
            id=41,
            peer_id="pa",
            action="back_to_source",
            message="nobody can feed the task yet",
        ),
    )
    assert outcome.message_type == "register_peer"
    assert world.state.has_peer("pa")
    (scheduled,) = [e for e in outcome.events if isinstance(e, PeerScheduled)]
    assert (scheduled.cause, scheduled.pushed) == ("register", False)


def test_the_decision_time_is_measured_around_the_core_call_only(world: World) -> None:
    a = world.open("alpha", "10.0.0.1")
    outcome = a.receive(frame(register("pa")), 1.0)
    assert outcome.decision_seconds == 0.25  # one tick of the injected timer
    leave = a.receive(frame({"type": "leave_peer", "id": 2, "peer_id": "pa"}), 2.0)
    assert leave.decision_seconds is None


def test_a_peer_nobody_can_feed_yet_is_told_to_wait(world: World) -> None:
    a, c = world.open("alpha", "10.0.0.1"), world.open("charlie", "10.0.0.3")
    world.send(a, register("pa"), 0.0)  # goes to the origin, has no piece yet
    reply = world.send(c, register("pc"), 0.5)
    assert isinstance(reply, Schedule)
    assert reply.action == "wait"
    assert reply.retry_after is not None
    assert reply.retry_after > 0
    assert reply.parents == []


def test_parents_are_described_from_the_view(world: World) -> None:
    feed_task(world)
    state = world.state
    message = schedule_message(state.view, "pc", Decision(ScheduleAction.PARENTS, ("pa",)), 5)
    assert message == Schedule(
        id=5,
        peer_id="pc",
        action="parents",
        parents=[
            ParentPayload(
                peer_id="pa",
                host_id=A_ID,
                ip="10.0.0.1",
                download_port=8001,
                finished_piece_count=1,
                type="normal",
            )
        ],
    )


def test_a_parent_gone_before_the_reply_is_left_out(world: World) -> None:
    feed_task(world)
    decision = Decision(ScheduleAction.PARENTS, ("gone", "pa"))
    message = schedule_message(world.state.view, "pc", decision)
    assert [p.peer_id for p in message.parents] == ["pa"]
    everything_gone = schedule_message(
        world.state.view, "pc", Decision(ScheduleAction.PARENTS, ("gone",))
    )
    assert (everything_gone.action, everything_gone.retry_after) == ("wait", 0.0)


def test_reschedule_is_answered_with_schedule_and_blocklists_the_failed_parents(
    world: World,
) -> None:
    _, _, c = feed_task(world)
    message = {"type": "reschedule", "id": "r1", "peer_id": "pc", "failed_parents": ["pa"]}
    reply = world.send(c, message, 2.0)
    assert isinstance(reply, Schedule)
    assert reply.id == "r1"
    assert [p.peer_id for p in reply.parents] == ["pa2"]
    assert world.state.parents_of("pc") == ("pa2",)
    assert "pa" in world.state.blocked_parents_of("pc")


@pytest.mark.parametrize(
    ("peer_id", "code"), [("nobody", ErrorCode.NOT_FOUND), ("pa", ErrorCode.NOT_FOUND)]
)
def test_reschedule_errors_keep_their_wire_codes(
    world: World, peer_id: str, code: ErrorCode
) -> None:
    _, _, c = feed_task(world)
    reply = world.send(c, {"type": "reschedule", "id": 9, "peer_id": peer_id}, 2.0)
    assert isinstance(reply, ErrorReply)
    assert (reply.id, reply.code) == (9, code)


# --- pushes -------------------------------------------------------------------------


def test_a_dropped_parent_host_pushes_fresh_parents_to_the_child_once(world: World) -> None:
    a, b, c = feed_task(world)
    # Both of pc's parents live on alpha: one mutation kills both.
    routed = world.close(a, 3.0)
    assert routed.pushes == 1
    (push,) = pushes(c)
    assert push.id is None
    assert push.peer_id == "pc"
    assert {p.peer_id for p in push.parents}.isdisjoint({"pa", "pa2"})
    assert push.action == "back_to_source"  # nobody else has the task
    assert pushes(b) == []


def test_sessions_dropping_together_push_once_with_every_dropped_host_excluded(
    world: World,
) -> None:
    a, b, c = feed_task(world)
    # bravo feeds the task too: pc could be pushed to it, if bravo were not dropping.
    world.send(b, register("pb"), 1.0)
    world.send(b, {"type": "back_to_source", "id": 2, "peer_id": "pb"}, 1.0)
    world.send(b, {"type": "pieces_finished", "id": 3, "peer_id": "pb", "pieces": [0]}, 1.0)
    b.outbox.clear()
    # Both sessions end in one batch: each drop marks its host and defers the push.
    for session in (a, b):
        outcome = session.on_closed(3.0)
        assert not any(isinstance(e, PeerScheduled) for e in outcome.events)
        assert world.apply(outcome).pushes == 0
    assert not world.state.is_schedulable(A_ID)
    assert not world.state.is_schedulable(B_ID)
    assert world.state.pushes_pending
    # Then the shell flushes: one push, naming neither dropped host.
    routed = route_unsolicited(world.state.view, world.hosts, world.state.flush_pushes(3.0))
    assert routed.pushes == 1
    (push,) = pushes(c)
    assert push.peer_id == "pc"
    assert push.action == "back_to_source"  # nobody alive has the task
    assert not world.state.pushes_pending
    assert world.state.flush_pushes(3.0) == []


def test_an_admin_eviction_pushes_too(world: World) -> None:
    _, _, c = feed_task(world)
    events = world.state.evict(RecordKind.HOST, A_ID, "admin", 3.0)
    routed = route_unsolicited(world.state.view, world.hosts, events)
    assert routed.pushes == 1
    assert [p.peer_id for p in pushes(c)] == ["pc"]


def test_a_gc_pass_pushes_too(world: World) -> None:
    a, _, c = feed_task(world)
    host = {"hostname": "alpha", "ip": "10.0.0.1", "port": 8002, "download_port": 8001}
    world.send(a, {"type": "announce_host", "id": 8, "host": host, "interval": 5.0}, 2.0)
    # alpha hangs: no message, no drop; its TTL (twice the interval) ends it.
    deadline = world.state.deadline_of(RecordKind.HOST, A_ID)
    assert deadline is not None
    events = world.state.run_gc(deadline.at)
    assert not world.state.has_host(A_ID)
    routed = route_unsolicited(world.state.view, world.hosts, events)
    assert routed.pushes == 1
    (push,) = pushes(c)
    assert push.peer_id == "pc"
    assert push.id is None


def test_a_failed_parent_pushes_to_its_child(world: World) -> None:
    a, _, c = feed_task(world)
    world.send(a, {"type": "download_failed", "id": 5, "peer_id": "pa"}, 3.0)
    (push,) = pushes(c)
    assert [p.peer_id for p in push.parents] == ["pa2"]


def test_pushes_are_coalesced_to_the_last_one_per_child() -> None:
    def push(peer_id: str, parents: tuple[str, ...], at: float) -> PeerScheduled:
        decision = Decision(ScheduleAction.PARENTS, parents)
        return PeerScheduled(peer_id, C_ID, "t", decision, at, "parent_lost", True)

    world = World()
    feed_task(world)
    events = [push("pc", ("pa",), 1.0), push("pc", ("pa2",), 2.0)]
    [(host_id, message)] = unsolicited(world.state.view, events)
    assert host_id == C_ID
    assert isinstance(message, Schedule)
    assert [p.peer_id for p in message.parents] == ["pa2"]


def test_a_push_for_a_host_with_no_session_is_dropped_and_counted(world: World) -> None:
    a, _, c = feed_task(world)
    # charlie's session is gone but the host is still connected (as between a
    # session's end and the disconnect, or for a host the state learned otherwise).
    assert world.hosts.release(c, C_ID)
    routed = world.close(a, 3.0)
    assert routed.pushes == 0
    assert routed.dropped == {("schedule", "no_session"): 1}


def test_a_full_outbox_ends_the_session_instead_of_blocking(world: World) -> None:
    a, _, c = feed_task(world)
    for n in range(LIMITS.outbox_size):
        assert (
            world.hosts.deliver(C_ID, Schedule(peer_id=f"x{n}", action="fail")) is Delivery.QUEUED
        )
    overflow = world.hosts.deliver(C_ID, Schedule(peer_id="late", action="fail"))
    assert overflow is Delivery.OUTBOX_OVERFLOW
    assert c.cause is EndCause.OUTBOX_OVERFLOW
    assert len(c.outbox) == LIMITS.outbox_size
    assert CLOSE_FOR[EndCause.OUTBOX_OVERFLOW] == (1008, "too many messages left unread")
    # Routing counts it as dropped, and the session's end (a drop) disconnects charlie.
    routed = world.close(a, 3.0)
    assert routed.dropped == {("schedule", "outbox_overflow"): 1}
    world.close(c, 3.0)
    assert not world.state.is_schedulable(C_ID)


def test_dragonfly_compat_pushes_nothing() -> None:
    world = World(enable=("dragonfly_compat",))
    a, _, c = feed_task(world)
    routed = world.close(a, 3.0)
    assert routed == Routed()
    assert pushes(c) == []


# --- seeds --------------------------------------------------------------------------


def test_a_seed_host_is_asked_to_fetch_a_task_nobody_has(world: World) -> None:
    seed = world.open("seed", "10.0.0.9", seed=True)
    assert seed.host_id == SEED_ID
    a = world.open("alpha", "10.0.0.1")
    outcome = a.receive(frame(register("pa")), 1.0)
    routed = world.apply(outcome)
    (reply,) = outcome.replies
    assert isinstance(reply, Schedule)
    assert reply.action == "wait"
    (request,) = [e for e in outcome.events if isinstance(e, SeedFetchRequested)]
    assert routed.fetch_tasks == 1
    assert list(seed.outbox) == [
        FetchTask(
            task=TaskPayload(id="t", total_piece_count=4),
            peer_id=request.peer_id,
        )
    ]
    assert list(a.outbox) == []


def test_seed_host_type_is_carried_to_the_child(world: World) -> None:
    seed = world.open("seed", "10.0.0.9", seed=True)
    a = world.open("alpha", "10.0.0.1")
    world.send(a, register("pa"), 1.0)
    (fetch,) = list(seed.outbox)
    assert isinstance(fetch, FetchTask)
    for message in (
        register(fetch.peer_id),
        {"type": "back_to_source", "id": 2, "peer_id": fetch.peer_id},
        {"type": "pieces_finished", "id": 3, "peer_id": fetch.peer_id, "pieces": [0, 1]},
    ):
        world.send(seed, message, 2.0)
    reply = world.send(a, {"type": "reschedule", "id": 4, "peer_id": "pa"}, 3.0)
    assert isinstance(reply, Schedule)
    assert [(p.peer_id, p.type, p.finished_piece_count) for p in reply.parents] == [
        (fetch.peer_id, "seed", 2)
    ]
    assert world.state.host(SEED_ID).info.type is HostType.SEED


def test_a_parent_on_a_seed_host_is_described_as_a_seed_in_replies_and_pushes(
    world: World,
) -> None:
    seed, a = world.open("seed", "10.0.0.9", seed=True), world.open("alpha", "10.0.0.1")
    c = world.open("charlie", "10.0.0.3")
    for session, peer_id in ((seed, "ps"), (a, "pa")):
        world.send(session, register(peer_id), 0.0)
        world.send(session, {"type": "back_to_source", "id": 2, "peer_id": peer_id}, 0.0)
        finished = {"type": "pieces_finished", "id": 3, "peer_id": peer_id, "pieces": [0]}
        world.send(session, finished, 0.0)
    reply = world.send(c, register("pc"), 1.0)
    assert {(p.peer_id, p.type) for p in reply.parents} == {("ps", "seed"), ("pa", "normal")}
    decision = Decision(ScheduleAction.PARENTS, ("ps", "pa"))
    push = schedule_message(world.state.view, "pc", decision)
    assert [(p.peer_id, p.type) for p in push.parents] == [("ps", "seed"), ("pa", "normal")]
