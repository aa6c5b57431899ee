"""The ``batch`` frame in the session rules, sans-IO: one frame, many messages, one reply.

The two properties of the contract: a batch's replies are the replies of the same
messages sent one frame each, and a failing item changes nothing while the others
apply. Then the limits: the whole-frame refusals, the rate, ``announce_host`` in a
batch, and an item that ends the session.
"""

from __future__ import annotations

import random
from typing import Any

import attrs
import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from scheduler.core import PeerScheduled, SchedulerState
from scheduler.policies import load_policies
from scheduler.protocol import (
    MAX_BATCH_MESSAGES,
    Ack,
    Batch,
    BatchReply,
    ErrorCode,
    ErrorReply,
    HostAccepted,
    InvalidValue,
    LeavePeer,
    ProtocolError,
    Schedule,
    ServerMessage,
    decode_client,
    decode_server,
    encode,
)
from scheduler.session import (
    EndCause,
    HostSessions,
    Outcome,
    SessionLimits,
    SessionProtocol,
    unsolicited,
)

LIMITS = SessionLimits(
    ping_interval=5.0, ping_timeout=4.0, announce_timeout=10.0, error_limit=3, error_window=10.0
)
#: Limits no test sequence reaches, so only the rules of each message decide.
LENIENT = attrs.evolve(LIMITS, error_limit=10_000)
HOST = {"hostname": "alpha", "ip": "10.0.0.1", "port": 8002, "download_port": 8001}
TASK = {"id": "t1", "content_length": 40 * 4 * 1024 * 1024, "total_piece_count": 40}


class World:
    """A core with a second host (bravo) already holding a seeded peer of ``t1``."""

    def __init__(self, limits: SessionLimits = LENIENT) -> None:
        policies = load_policies(entrypoints=False)
        self.state = SchedulerState(policies, now=0.0, rng=random.Random(7))
        self.hosts = HostSessions(self.state)
        bravo = SessionProtocol(self.state, self.hosts, LENIENT, opened_at=0.0)
        bravo_host = {**HOST, "hostname": "bravo", "ip": "10.0.0.2"}
        for message in (
            {"type": "announce_host", "id": 1, "host": bravo_host, "interval": 30.0},
            {"type": "register_peer", "id": 2, "peer_id": "b1", "task": TASK},
            {"type": "back_to_source", "id": 3, "peer_id": "b1"},
            {"type": "pieces_finished", "id": 4, "peer_id": "b1", "pieces": list(range(40))},
            {"type": "download_finished", "id": 5, "peer_id": "b1"},
        ):
            assert bravo.receive(frame(message), 0.0).close is None
        self.session = SessionProtocol(self.state, self.hosts, limits, opened_at=0.0)

    def snapshot(self) -> object:
        """Everything the core keeps, comparable across two worlds."""
        view = self.state.view

        def plain(record: object) -> dict[str, Any]:
            fields = attrs.asdict(record, recurse=False)  # type: ignore[arg-type]
            return {
                k: sorted(v) if k in ("finished_pieces", "parents") else v
                for k, v in fields.items()
            }

        return (
            sorted((h.id, repr(plain(h))) for h in view.hosts()),
            sorted((p.id, repr(plain(p))) for p in view.peers()),
            sorted((t.id, repr(plain(t))) for t in view.tasks()),
            self.session.host_id,
            self.session.cause,
        )


def frame(message: dict[str, Any] | Any) -> str:
    return orjson.dumps(message).decode()


def batch(messages: list[Any], request_id: int | str = "b") -> str:
    return frame({"type": "batch", "id": request_id, "messages": messages})


def batch_replies(outcome: Outcome, request_id: int | str = "b") -> list[ServerMessage]:
    (reply,) = outcome.replies
    assert isinstance(reply, BatchReply)
    assert reply.id == request_id
    # What goes on the wire decodes to the same thing.
    assert decode_server(encode(reply)) == reply
    return reply.replies


def one_by_one(world: World, messages: list[Any], now: float) -> tuple[list[object], Outcome]:
    """Each message as a frame of its own, up to the first that ends the session.

    The outcome returned is the last one, with the events of all and their types.
    """
    replies: list[object] = []
    events: list[object] = []
    types: list[str] = []
    outcome = Outcome()
    for message in messages:
        outcome = world.session.receive(frame(message), now)
        replies.extend(outcome.replies)
        events.extend(outcome.events)
        types.append(outcome.message_type or "")
        if outcome.close is not None:
            break
    return replies, attrs.evolve(outcome, events=tuple(events), item_types=tuple(types))  # type: ignore[arg-type]


# --- strategies ---------------------------------------------------------------------------

PEERS = st.sampled_from(["p1", "p2", "p3", "b1"])


def _messages() -> st.SearchStrategy[Any]:
    peer = {"peer_id": PEERS}
    task = st.sampled_from([TASK, {"id": "t2", "url": "https://example.invalid/2"}])
    return st.one_of(
        st.fixed_dictionaries({"type": st.just("announce_host"), "host": st.just(HOST)}),
        st.fixed_dictionaries({"type": st.just("register_peer"), **peer, "task": task}),
        st.fixed_dictionaries({"type": st.just("download_started"), **peer}),
        st.fixed_dictionaries({"type": st.just("back_to_source"), **peer}),
        st.fixed_dictionaries(
            {
                "type": st.just("pieces_finished"),
                **peer,
                "pieces": st.lists(st.integers(0, 39), min_size=1, max_size=5),
                "parent_id": st.sampled_from(["b1", "p1"]),
            }
        ),
        st.fixed_dictionaries({"type": st.just("download_finished"), **peer}),
        st.fixed_dictionaries({"type": st.just("download_failed"), **peer}),
        st.fixed_dictionaries({"type": st.just("leave_peer"), **peer}),
        st.fixed_dictionaries(
            {"type": st.just("reschedule"), **peer, "failed_parents": st.just(["b1"])}
        ),
        # Items that do not decode: each gets its own error.
        st.just({"type": "download_started", "peer_id": ""}),
        st.just({"type": "no_such_type"}),
        st.just({"peer_id": "p1"}),
        st.just(17),
        st.just({"type": "leave_host"}),
    )


def _with_ids(messages: list[Any]) -> list[Any]:
    return [
        {**message, "id": index} if isinstance(message, dict) else message
        for index, message in enumerate(messages)
    ]


message_lists = st.lists(_messages(), max_size=25).map(_with_ids)


# --- the two properties -------------------------------------------------------------------


@given(messages=message_lists, announced=st.booleans())
def test_a_batch_answers_as_the_same_messages_one_frame_each(
    messages: list[Any], announced: bool
) -> None:
    apart, together = World(), World()
    if announced:
        for world in (apart, together):
            world.session.receive(frame({"type": "announce_host", "id": "a", "host": HOST}), 1.0)
    expected, alone = one_by_one(apart, messages, 2.0)
    outcome = together.session.receive(batch(messages), 2.0)
    assert batch_replies(outcome) == expected
    assert outcome.close == alone.close
    assert outcome.events == alone.events
    assert outcome.message_type == "batch"
    assert outcome.message_types == ("batch", *alone.item_types)
    assert together.snapshot() == apart.snapshot()
    # The pushes the items caused go out as they would have: coalesced per child.
    assert unsolicited(together.state.view, outcome.events) == unsolicited(
        apart.state.view, alone.events
    )


def _failing(index: int) -> st.SearchStrategy[Any]:
    """An item that fails whatever came before it, and so changes nothing."""
    return st.sampled_from(
        [
            {"type": "download_finished", "id": f"x{index}", "peer_id": "never-registered"},
            {"type": "leave_peer", "id": f"x{index}", "peer_id": "b1"},  # bravo's peer
            {"type": "register_peer", "id": f"x{index}", "peer_id": "b1", "task": TASK},
            {"type": "pieces_finished", "id": f"x{index}", "peer_id": "p1", "pieces": [-1]},
            {"type": "announce_host", "id": f"x{index}", "host": {**HOST, "ip": "10.9.9.9"}},
            {"type": "batch", "id": f"x{index}"},
            [1, 2],
        ]
    )


@given(data=st.data(), messages=message_lists)
def test_a_failing_item_changes_nothing_and_the_others_apply(
    data: st.DataObject, messages: list[Any]
) -> None:
    # Announced first, so the announce item below fails as another host's announce.
    messages = [{"type": "announce_host", "id": "a", "host": HOST}, *messages]
    messages = [m for m in messages if not (isinstance(m, dict) and m.get("type") == "leave_host")]
    index = data.draw(st.integers(1, len(messages)))
    failing = data.draw(_failing(index))
    if isinstance(failing, dict) and failing["type"] == "batch":
        failing = {"type": "leave_peer", "id": f"x{index}", "peer_id": "b1"}
    with_failure = [*messages[:index], failing, *messages[index:]]
    plain, failed = World(), World()
    replies = batch_replies(plain.session.receive(batch(messages), 1.0))
    replies_with = batch_replies(failed.session.receive(batch(with_failure), 1.0))
    error = replies_with.pop(index)
    assert isinstance(error, ErrorReply)
    assert replies_with == replies
    assert failed.snapshot() == plain.snapshot()


# --- whole-frame refusals -----------------------------------------------------------------


def _announced(limits: SessionLimits = LENIENT) -> World:
    world = World(limits)
    outcome = world.session.receive(frame({"type": "announce_host", "id": "a", "host": HOST}), 1.0)
    assert isinstance(outcome.replies[0], HostAccepted)
    return world


def _register(peer: str, request_id: int | str = 1) -> dict[str, Any]:
    return {"type": "register_peer", "id": request_id, "peer_id": peer, "task": TASK}


def test_more_than_the_most_items_is_refused_whole_and_changes_nothing() -> None:
    world = _announced()
    before = world.snapshot()
    items = [_register(f"p{i}", i) for i in range(MAX_BATCH_MESSAGES + 1)]
    outcome = world.session.receive(batch(items), 2.0)
    (reply,) = outcome.replies
    assert isinstance(reply, ErrorReply)
    assert reply.id == "b"
    assert reply.code == ErrorCode.INVALID_MESSAGE
    assert "at most 1000 messages" in reply.message
    assert outcome.events == ()
    assert world.snapshot() == before
    # The most items are fine.
    replies = batch_replies(world.session.receive(batch(items[:MAX_BATCH_MESSAGES]), 3.0))
    assert len(replies) == MAX_BATCH_MESSAGES
    assert all(isinstance(r, Schedule) for r in replies)


def test_a_batch_inside_a_batch_is_refused_whole_and_changes_nothing() -> None:
    world = _announced()
    before = world.snapshot()
    inner = {"type": "batch", "id": "inner", "messages": [_register("p2", 2)]}
    outcome = world.session.receive(batch([_register("p1"), inner]), 2.0)
    (reply,) = outcome.replies
    assert isinstance(reply, ErrorReply)
    assert reply.code == ErrorCode.INVALID_MESSAGE
    assert reply.message == "a batch cannot hold a batch @ $.messages[1]"
    assert world.snapshot() == before


def test_a_malformed_batch_is_refused_whole() -> None:
    world = _announced()
    for bad, problem in (
        ({"type": "batch", "id": 3}, "required field missing @ $.messages"),
        ({"type": "batch", "id": 3, "messages": {}}, "not a JSON list @ $.messages"),
        ({"type": "batch", "id": 3, "messages": [], "x": 1}, "extra fields found (x) @ $"),
    ):
        (reply,) = world.session.receive(frame(bad), 2.0).replies
        assert reply == ErrorReply(id=3, code=ErrorCode.INVALID_MESSAGE, message=problem)


def test_an_empty_batch_gets_an_empty_reply() -> None:
    world = _announced()
    assert batch_replies(world.session.receive(batch([]), 2.0)) == []


# --- the rate -----------------------------------------------------------------------------


def test_each_item_takes_a_token_and_one_without_one_is_refused_alone() -> None:
    limits = attrs.evolve(LENIENT, message_rate=1.0, message_burst=5)
    world = _announced(limits)  # the announce took one of the five tokens
    items = [_register(f"p{i}", i) for i in range(6)]
    replies = batch_replies(world.session.receive(batch(items), 1.0))
    assert [type(r) for r in replies] == [Schedule] * 4 + [ErrorReply] * 2
    assert {r.code for r in replies[4:] if isinstance(r, ErrorReply)} == {ErrorCode.RATE_LIMITED}
    assert [r.id for r in replies] == list(range(6))
    assert sorted(p.id for p in world.state.view.peers()) == ["b1", "p0", "p1", "p2", "p3"]
    # An empty bucket refuses the batch frame itself, whole.
    outcome = world.session.receive(batch([_register("p9", 9)]), 1.0)
    (reply,) = outcome.replies
    assert isinstance(reply, ErrorReply)
    assert reply.code == ErrorCode.RATE_LIMITED
    assert reply.id == "b"
    assert not world.state.has_peer("p9")


def test_an_item_over_the_rate_too_often_ends_the_session_there() -> None:
    limits = attrs.evolve(LENIENT, message_rate=1.0, message_burst=2, rate_violation_limit=2)
    world = _announced(limits)
    items = [_register(f"p{i}", i) for i in range(6)]
    outcome = world.session.receive(batch(items), 1.0)
    replies = batch_replies(outcome)
    assert outcome.close is EndCause.RATE_LIMITED
    # p0 applied; p1, p2 refused; p3 refused once too often: the last one answered.
    assert [r.id for r in replies] == [0, 1, 2, 3]
    assert not world.state.has_peer("p4")


# --- announce_host and the end of a session in a batch ----------------------------------


def test_announce_host_in_a_batch_applies_in_sequence() -> None:
    world = World()
    outcome = world.session.receive(
        batch(
            [
                _register("p1", 1),  # before the announce: refused
                {"type": "announce_host", "id": 2, "host": HOST},
                _register("p1", 3),
                {"type": "announce_host", "id": 4, "host": {**HOST, "ip": "10.0.0.9"}},
            ]
        ),
        1.0,
    )
    first, accepted, scheduled, other = batch_replies(outcome)
    assert isinstance(first, ErrorReply)
    assert first.code == ErrorCode.NOT_ANNOUNCED
    assert isinstance(accepted, HostAccepted)
    assert accepted.id == 2
    assert isinstance(scheduled, Schedule)
    assert scheduled.peer_id == "p1"
    assert isinstance(other, ErrorReply)
    assert other.code == ErrorCode.FORBIDDEN
    assert world.session.host_id == accepted.host_id


def test_leave_host_is_the_last_item_applied() -> None:
    world = _announced()
    outcome = world.session.receive(
        batch([_register("p1", 1), {"type": "leave_host", "id": 2}, _register("p2", 3)]), 2.0
    )
    replies = batch_replies(outcome)
    assert [type(r) for r in replies] == [Schedule, Ack]
    assert outcome.close is EndCause.LEAVE
    assert not world.state.has_peer("p2")


def test_too_many_errors_in_a_batch_end_the_session_at_that_item() -> None:
    world = _announced(LIMITS)  # error_limit 3
    items = [{"type": "download_started", "id": i, "peer_id": "nobody"} for i in range(6)]
    outcome = world.session.receive(batch(items), 2.0)
    replies = batch_replies(outcome)
    assert outcome.close is EndCause.TOO_MANY_ERRORS
    assert [r.code for r in replies if isinstance(r, ErrorReply)] == [
        ErrorCode.NOT_FOUND,
        ErrorCode.NOT_FOUND,
        ErrorCode.NOT_FOUND,
        ErrorCode.TOO_MANY_ERRORS,
    ]


def test_the_decision_time_of_a_batch_sums_its_items() -> None:
    ticks = iter(range(100))
    world = _announced()
    world.session.timer = lambda: float(next(ticks))
    outcome = world.session.receive(batch([_register("p1", 1), _register("p2", 2)]), 2.0)
    assert outcome.decision_seconds == 2.0
    assert any(isinstance(e, PeerScheduled) for e in outcome.events)


# --- the codec's side of a batch ----------------------------------------------------------


def test_a_batch_encodes_to_exactly_its_items() -> None:
    batch = Batch(id=7, messages=[LeavePeer(id=1, peer_id="p")])
    assert orjson.loads(encode(batch)) == {
        "type": "batch",
        "id": 7,
        "messages": [{"type": "leave_peer", "id": 1, "peer_id": "p"}],
    }
    reply = BatchReply(replies=[Ack(id=1)])
    assert orjson.loads(encode(reply)) == {"type": "batch", "replies": [{"type": "ack", "id": 1}]}
    assert decode_client(encode(Batch(messages=[]))) == Batch(id=None, messages=[])
    assert decode_client(frame({"type": "batch", "id": None, "messages": []})) == Batch(messages=[])


def test_a_batch_built_in_python_follows_the_same_limits() -> None:
    too_many = [LeavePeer(peer_id="p")] * (MAX_BATCH_MESSAGES + 1)
    for build, reason in (
        (lambda: Batch(messages=too_many), "must hold at most 1000 messages"),
        (lambda: Batch(messages=[Batch(messages=[])]), "a batch cannot hold a batch"),  # type: ignore[list-item]
        (lambda: BatchReply(replies=[BatchReply(replies=[])]), "a batch cannot hold a batch"),
    ):
        with pytest.raises(InvalidValue) as caught:
            build()
        assert caught.value.reason == reason
        assert caught.value.field in ("messages", "replies")


def test_the_whole_frame_refusals_say_exactly_why() -> None:
    for bad, problem in (
        (
            {"type": "batch", "id": 1, "messages": [], "x": 1, "a": 2},
            "extra fields found (a, x) @ $",
        ),
        (
            {"type": "batch", "id": 1.5, "messages": []},
            "invalid value for type, expected str | int | None @ $.id",
        ),
    ):
        with pytest.raises(ProtocolError) as caught:
            decode_client(frame(bad))
        assert caught.value.code == ErrorCode.INVALID_MESSAGE
        assert caught.value.message == problem


def test_a_server_batch_must_hold_only_replies() -> None:
    with pytest.raises(ProtocolError) as caught:
        decode_server(frame({"type": "batch", "id": 3, "replies": [{"type": "ack"}, 5]}))
    error = caught.value
    assert (error.code, error.message, error.request_id) == (
        ErrorCode.INVALID_JSON,
        "replies[1] is not a JSON object",
        3,
    )
    with pytest.raises(ProtocolError) as caught:
        decode_server(frame({"type": "batch", "id": 3, "replies": [{"type": "register_peer"}]}))
    assert caught.value.code == ErrorCode.UNKNOWN_TYPE
    assert caught.value.message == "\"type\" is not a server message type: 'register_peer'"
