"""Resource bounds: what one host can make the scheduler keep, and what one frame costs.

The probe that found these: three 80-byte ``pieces_finished`` frames naming piece
800 000 000 grew the server from 58 to 345 MB; ``[0, 2**62]`` raised MemoryError,
was answered ``internal``, and left piece 0 recorded; 20 000 peers of one host were
accepted in 3 s; a wrong first ``total_piece_count`` made every later peer's reports
``invalid_message``; one host could take every back-to-source slot of a task.
"""

from __future__ import annotations

import gc
import tracemalloc
from collections.abc import Iterator
from typing import Any, Final

import orjson
import pytest

from scheduler.core import (
    BackToSourceLimitReached,
    HostInfo,
    LimitExceeded,
    Peer,
    PeerState,
    RecordLimits,
    SchedulerState,
    Task,
    TaskInfo,
)
from scheduler.core._origin import OriginBook
from scheduler.core._tasks import MAX_SIZE_CLAIMS
from scheduler.policies import load_policies
from scheduler.protocol import ErrorCode, ErrorReply
from scheduler.session import HostSessions, SessionLimits, SessionProtocol

A = HostInfo(hostname="alpha", ip="10.0.0.1")
B = HostInfo(hostname="bravo", ip="10.0.0.2")
C = HostInfo(hostname="charlie", ip="10.0.0.3")
LIMITS = SessionLimits(
    ping_interval=5.0, ping_timeout=4.0, announce_timeout=10.0, error_limit=10**6, error_window=1.0
)

#: What handling one frame may cost, in bytes per character of the frame...
BYTES_PER_CHARACTER: Final = 64
#: ...plus this much while it is handled (reply objects, and at most one fold of a
#: piece set into its bitmap: max_piece_count / 8 = 12 500 bytes at the default).
TRANSIENT_BYTES: Final = 16 * 1024


def new_state(limits: RecordLimits | None = None) -> SchedulerState:
    policies = load_policies(entrypoints=False)
    if limits is None:
        return SchedulerState(policies, now=0.0)
    return SchedulerState(policies, now=0.0, limits=limits)


def frame(message: dict[str, Any]) -> str:
    return orjson.dumps(message).decode()


@pytest.fixture
def traced() -> Iterator[None]:
    gc.collect()
    tracemalloc.start()
    try:
        yield
    finally:
        tracemalloc.stop()


class Probe:
    """One announced session on a fresh state; measures what each frame costs."""

    def __init__(self, limits: RecordLimits | None = None) -> None:
        self.state = new_state(limits)
        self.session = SessionProtocol(self.state, HostSessions(self.state), LIMITS, opened_at=0.0)
        host = {"hostname": "alpha", "ip": "10.0.0.1", "port": 1, "download_port": 2}
        self.send({"type": "announce_host", "host": host, "interval": 30})

    def send(self, message: dict[str, Any]) -> Any:
        (reply,) = self.session.receive(frame(message), 1.0).replies
        return reply

    def cost(self, message: dict[str, Any]) -> tuple[int, int, int, Any]:
        """(bytes kept, peak bytes, frame characters, reply) of one frame."""
        text = frame(message)
        tracemalloc.reset_peak()
        before = tracemalloc.get_traced_memory()[0]
        (reply,) = self.session.receive(text, 1.0).replies
        kept, peak = tracemalloc.get_traced_memory()
        return kept - before, peak - before, len(text), reply

    def started(self, peer_id: str, task: dict[str, Any]) -> None:
        self.send({"type": "register_peer", "peer_id": peer_id, "task": task})
        assert self.send({"type": "back_to_source", "peer_id": peer_id}).tag == "ack"


def assert_bounded(kept: int, peak: int, size: int) -> None:
    assert kept <= BYTES_PER_CHARACTER * size, (kept, size)
    assert peak <= BYTES_PER_CHARACTER * size + TRANSIENT_BYTES, (peak, size)


# --- what one frame costs ----------------------------------------------------------------


@pytest.mark.usefixtures("traced")
def test_a_far_piece_on_a_task_of_unknown_size_costs_bytes_not_megabytes() -> None:
    probe = Probe()
    for i in range(3):  # warm the interpreter's caches outside the measurement
        probe.started(f"warm{i}", {"id": f"warm{i}"})
        probe.send({"type": "pieces_finished", "peer_id": f"warm{i}", "pieces": [99_999]})
    total_kept = total_size = 0
    for i in range(100):
        probe.started(f"p{i}", {"id": f"t{i}"})
        message = {"type": "pieces_finished", "peer_id": f"p{i}", "pieces": [99_999]}
        kept, peak, size, reply = probe.cost(message)
        assert reply.tag == "ack"
        assert_bounded(kept, peak, size)
        total_kept += kept
        total_size += size
    # On average a far piece keeps a few bytes per character (8 for the number itself,
    # the rest the peer's refreshed deadline), where a bitmap up to it would keep 12 500.
    assert total_kept <= 8 * total_size
    assert probe.state.peer("p0").finished_pieces.storage_bytes() == 8


@pytest.mark.usefixtures("traced")
@pytest.mark.parametrize(
    "pieces",
    [
        pytest.param(list(range(0, 100_000, 10)), id="spread-ascending"),
        pytest.param(list(range(99_999, 0, -10)), id="spread-descending"),
        pytest.param(list(range(10_000)), id="dense"),
        pytest.param([99_999, *range(1561)], id="a-far-piece-and-a-run"),
    ],
)
def test_the_worst_frames_cost_a_bounded_multiple_of_their_size(pieces: list[int]) -> None:
    probe = Probe()
    probe.started("p", {"id": "t"})
    kept, peak, size, reply = probe.cost(
        {"type": "pieces_finished", "peer_id": "p", "pieces": pieces}
    )
    assert reply.tag == "ack"
    assert_bounded(kept, peak, size)
    assert len(probe.state.peer("p").finished_pieces) == len(set(pieces))


@pytest.mark.usefixtures("traced")
def test_one_piece_that_folds_the_sparse_part_costs_at_most_the_bitmap() -> None:
    probe = Probe()
    probe.started("p", {"id": "t"})
    probe.send({"type": "pieces_finished", "peer_id": "p", "pieces": [99_999]})
    probe.send({"type": "pieces_finished", "peer_id": "p", "pieces": list(range(1561))})
    pieces = probe.state.peer("p").finished_pieces
    assert pieces.capacity() == 0  # still sparse: 1 562 numbers, 12 496 bytes
    message = {"type": "pieces_finished", "peer_id": "p", "pieces": [5000]}
    kept, peak, size, reply = probe.cost(message)
    assert reply.tag == "ack"
    assert pieces.capacity() == 100_000  # folded into 12 500 bytes
    assert pieces.storage_bytes() == 12_500
    # The bitmap replaced the sparse numbers: what stays is what any piece keeps.
    assert_bounded(kept, peak, size)


@pytest.mark.usefixtures("traced")
def test_registering_costs_a_bounded_multiple_of_the_frame() -> None:
    """A peer record costs a few KB; the indexes' dicts grow by doubling, so a single
    frame may pay for a resize, and the bound holds on average."""
    probe = Probe()
    for i in range(3):
        probe.send({"type": "register_peer", "peer_id": f"w{i}", "task": {"id": f"w{i}"}})
    total_kept = total_size = 0
    for i in range(200):
        message = {"type": "register_peer", "peer_id": f"p{i}", "task": {"id": f"t{i}"}}
        kept, _, size, reply = probe.cost(message)
        assert reply.tag == "schedule"
        total_kept += kept
        total_size += size
    assert total_kept <= BYTES_PER_CHARACTER * total_size


@pytest.mark.usefixtures("traced")
@pytest.mark.parametrize(
    "message",
    [
        pytest.param({"pieces": [0, 2**62]}, id="0-and-2**62"),
        pytest.param({"pieces": [800_000_000]}, id="800000000"),
        pytest.param({"pieces": [0, 100_000]}, id="just-past-the-bound"),
    ],
)
def test_a_piece_past_max_piece_count_is_invalid_and_records_nothing(
    message: dict[str, Any],
) -> None:
    probe = Probe()
    probe.started("p", {"id": "t"})
    kept, peak, size, reply = probe.cost({"type": "pieces_finished", "peer_id": "p", **message})
    assert isinstance(reply, ErrorReply)
    assert reply.code == ErrorCode.INVALID_MESSAGE
    assert "max_piece_count is 100000" in reply.message
    assert len(probe.state.peer("p").finished_pieces) == 0  # not even piece 0
    assert_bounded(kept, peak, size)


def test_a_total_piece_count_past_the_bound_is_invalid_and_registers_nothing() -> None:
    probe = Probe()
    task = {"id": "t", "total_piece_count": 2**62}
    reply = probe.send({"type": "register_peer", "peer_id": "p", "task": task})
    assert isinstance(reply, ErrorReply)
    assert reply.code == ErrorCode.INVALID_MESSAGE
    assert reply.message == (f"total_piece_count {2**62} is more than max_piece_count (100000)")
    assert not probe.state.has_peer("p")
    assert not probe.state.has_task("t")
    ok = probe.send(
        {"type": "register_peer", "peer_id": "p", "task": {**task, "total_piece_count": 100_000}}
    )
    assert ok.tag == "schedule"


def test_the_piece_bound_is_a_setting() -> None:
    state = new_state(RecordLimits(max_piece_count=10))
    state.announce_host(A, 0.0)
    with pytest.raises(
        ValueError, match=r"^total_piece_count 11 is more than max_piece_count \(10\)$"
    ):
        state.register_peer("q", A.id, TaskInfo("t", total_piece_count=11), 1.0)
    state.register_peer("p", A.id, TaskInfo("t"), 1.0)
    state.back_to_source("p", 1.0)
    state.finish_pieces("p", [9], 2.0)
    message = r"piece numbers are 0\.\.9 \(max_piece_count is 10\)$"
    with pytest.raises(ValueError, match=message):
        state.finish_pieces("p", [1, 10], 3.0)
    assert list(state.peer("p").finished_pieces) == [9]
    assert state.peer("p").updated_at == 2.0


_COUNTS = [f for f in RecordLimits.__attrs_attrs__ if f.type in (int, "int")]


@pytest.mark.parametrize("field", _COUNTS)
def test_every_record_limit_count_is_at_least_one(field: Any) -> None:
    assert RecordLimits(**{field.name: 1}).__getattribute__(field.name) == 1
    with pytest.raises(ValueError, match=f"^{field.name} must be >= 1, got 0$"):
        RecordLimits(**{field.name: 0})
    assert RecordLimits() == RecordLimits(
        max_piece_count=100_000,
        max_peers_per_host=10_000,
        max_tasks_per_host=10_000,
        max_back_to_source_per_host=20,
        max_upload_share=0.25,
        failure_report_window=300.0,
        seed_fetches_per_host=20,
        seed_fetch_window=60.0,
    )


def test_the_record_limits_that_are_not_counts() -> None:
    assert len(_COUNTS) == 5
    assert RecordLimits(max_upload_share=1.0).max_upload_share == 1.0
    for share in (0.0, 1.5, -0.1):
        with pytest.raises(ValueError, match=r"^max_upload_share must be in \(0, 1\], got "):
            RecordLimits(max_upload_share=share)
    for window in (0.0, -1.0, float("inf"), float("nan")):
        for name in ("failure_report_window", "seed_fetch_window"):
            with pytest.raises(ValueError, match=rf"^{name} must be a positive number"):
                RecordLimits(**{name: window})


# --- peers and tasks per host ----------------------------------------------------------------


def test_peers_per_host_are_capped_and_the_refusal_changes_nothing() -> None:
    state = new_state(RecordLimits(max_peers_per_host=2))
    state.announce_host(A, 0.0)
    state.announce_host(B, 0.0)
    state.register_peer("a1", A.id, TaskInfo("t"), 1.0)
    state.register_peer("a2", A.id, TaskInfo("u"), 1.0)
    with pytest.raises(
        LimitExceeded,
        match=r"^host '10\.0\.0\.1-alpha' already holds max_peers_per_host \(2\) peers$",
    ):
        state.register_peer("a3", A.id, TaskInfo("v"), 2.0)
    assert not state.has_peer("a3")
    assert not state.has_task("v")  # the task it named was not created either
    state.register_peer("b1", B.id, TaskInfo("v"), 2.0)  # another host is not affected
    state.leave_peer("a1", 3.0)
    state.register_peer("a3", A.id, TaskInfo("v"), 3.0)  # room again
    assert state.peer_count_of_host(A.id) == 2
    assert state.invariant_violations() == []


def test_tasks_per_host_count_the_live_tasks_it_created() -> None:
    state = new_state(RecordLimits(max_tasks_per_host=2))
    state.announce_host(A, 0.0)
    state.announce_host(B, 0.0)
    state.register_peer("b1", B.id, TaskInfo("shared"), 0.0)
    for i in range(2):
        state.register_peer(f"a{i}", A.id, TaskInfo(f"t{i}"), 1.0)
        state.leave_peer(f"a{i}", 1.0)  # the task outlives its peer (until it idles out)
    assert state.has_task("t0")
    with pytest.raises(
        LimitExceeded,
        match=r"^host '10\.0\.0\.1-alpha' already created max_tasks_per_host \(2\) live tasks$",
    ):
        state.register_peer("a9", A.id, TaskInfo("t9"), 2.0)
    assert not state.has_task("t9")
    assert not state.has_peer("a9")
    state.register_peer("a8", A.id, TaskInfo("shared"), 2.0)  # joining a task creates none
    state.register_peer("b9", B.id, TaskInfo("t9"), 2.0)  # another host may create it
    assert state.invariant_violations() == []
    # Once one of them idles out, the host may create another.
    state.run_gc(2.0 + 601.0)
    assert not state.has_task("t0")
    state.register_peer("a7", A.id, TaskInfo("t7"), 700.0)
    assert state.invariant_violations() == []


# --- a task's size: claims and confirmations -------------------------------------------------


def finish(state: SchedulerState, peer_id: str, host: HostInfo, task: TaskInfo, now: float) -> None:
    state.register_peer(peer_id, host.id, task, now)
    state.back_to_source(peer_id, now)
    count = task.total_piece_count
    state.finish_pieces(peer_id, list(range(count)), now)
    state.finish_download(peer_id, now)


def test_a_wrong_first_claim_poisons_nobody_elses_reports() -> None:
    state = new_state()
    state.announce_host(A, 0.0)
    state.announce_host(B, 0.0)
    state.register_peer("liar", A.id, TaskInfo("t", total_piece_count=1), 1.0)
    state.register_peer("honest", B.id, TaskInfo("t", total_piece_count=10), 1.0)
    assert state.task("t").total_piece_count == 1  # the first claim, unconfirmed
    assert not state.task("t").size_confirmed
    state.start_download("honest", 2.0)
    assert state.finish_pieces("honest", [5, 9], 2.0) == []
    assert sorted(state.peer("honest").finished_pieces) == [5, 9]
    # The liar is held to its own claim.
    state.back_to_source("liar", 2.0)
    with pytest.raises(ValueError, match="its total_piece_count is 1"):
        state.finish_pieces("liar", [5], 2.0)


def test_finished_peers_confirm_a_size_and_the_most_confirmed_wins() -> None:
    state = new_state()
    for host in (A, B, C):
        state.announce_host(host, 0.0)
    true, false = TaskInfo("t", total_piece_count=4), TaskInfo("t", total_piece_count=2)
    finish(state, "liar", A, false, 1.0)
    task = state.task("t")
    assert (task.total_piece_count, task.size_confirmed) == (2, True)
    finish(state, "h1", B, true, 2.0)
    assert task.total_piece_count == 2  # a tie keeps the earlier
    finish(state, "h2", C, true, 3.0)
    assert task.total_piece_count == 4
    assert task.size_votes == {(-1, 2): 1, (-1, 4): 2}
    # A later unconfirmed claim no longer moves the size, however early it would be.
    state.register_peer("late", A.id, TaskInfo("t", content_length=7, total_piece_count=9), 4.0)
    assert (task.content_length, task.total_piece_count) == (-1, 4)


def test_a_peer_confirms_only_a_claim_it_holds_every_piece_of() -> None:
    state = new_state()
    state.announce_host(A, 0.0)
    state.register_peer("p", A.id, TaskInfo("t", total_piece_count=4), 1.0)
    state.back_to_source("p", 1.0)
    state.finish_pieces("p", [0, 1, 2], 1.0)
    state.finish_download("p", 2.0)
    assert not state.task("t").size_confirmed
    state.register_peer("q", A.id, TaskInfo("u"), 1.0)  # claims no size
    state.back_to_source("q", 1.0)
    state.finish_pieces("q", [0], 1.0)
    state.finish_download("q", 2.0)
    assert not state.task("u").size_confirmed
    assert state.task("u").size_votes == {}


def test_an_unknown_size_is_learnt_from_a_later_claim_until_confirmed() -> None:
    state = new_state()
    state.announce_host(A, 0.0)
    state.register_peer("p", A.id, TaskInfo("t"), 1.0)
    state.register_peer("q", A.id, TaskInfo("t", content_length=50, total_piece_count=3), 1.0)
    assert (state.task("t").content_length, state.task("t").total_piece_count) == (50, 3)
    # Each peer's own size scope: q claimed a tiny task, p claimed nothing (the task's size then).
    assert state.peer("q").state is PeerState.RECEIVED_TINY
    assert state.peer("p").state is PeerState.RECEIVED_NORMAL


@pytest.mark.parametrize(
    ("first", "claim", "scope"),
    [
        # The peer's own claim decides its size scope, not the task's first claim...
        ({"content_length": 1000, "total_piece_count": 1}, {"content_length": 0}, "empty"),
        ({"content_length": 100}, {"content_length": 0}, "empty"),
        ({"total_piece_count": 10}, {"total_piece_count": 1}, "small"),
        ({"total_piece_count": 1}, {"total_piece_count": 0}, "normal"),
        # ...and the task's size when it claims none.
        ({"content_length": 100}, {}, "tiny"),
        ({"total_piece_count": 1}, {}, "small"),
    ],
)
def test_a_peer_is_scoped_by_its_own_claim(
    first: dict[str, int], claim: dict[str, int], scope: str
) -> None:
    state = new_state()
    state.announce_host(A, 0.0)
    state.register_peer("first", A.id, TaskInfo("t", **first), 1.0)
    state.register_peer("p", A.id, TaskInfo("t", **claim), 1.0)
    assert state.peer("p").state.value == f"received_{scope}"


def test_a_claim_of_no_piece_is_confirmed_by_a_peer_that_finishes_with_none() -> None:
    state = new_state()
    state.announce_host(A, 0.0)
    state.register_peer("p", A.id, TaskInfo("t", content_length=0, total_piece_count=0), 1.0)
    state.back_to_source("p", 1.0)
    state.finish_download("p", 2.0)
    task = state.task("t")
    assert (task.content_length, task.total_piece_count, task.size_confirmed) == (0, 0, True)
    assert task.size_votes == {(0, 0): 1}


def test_a_confirmation_carries_the_content_length_of_the_claim() -> None:
    state = new_state()
    state.announce_host(A, 0.0)
    state.register_peer("first", A.id, TaskInfo("t", content_length=99, total_piece_count=1), 1.0)
    finish(state, "p", A, TaskInfo("t", content_length=40, total_piece_count=1), 2.0)
    task = state.task("t")
    assert (task.content_length, task.total_piece_count) == (40, 1)
    assert state.peer("p").content_length == 40
    assert task.size_votes == {(40, 1): 1}


def test_the_task_ledger_reports_broken_indexes() -> None:
    state = new_state()
    state.announce_host(A, 0.0)
    state.register_peer("p", A.id, TaskInfo("t"), 1.0)
    state.back_to_source("p", 1.0)
    task = state.task("t")
    task.back_to_source_by_host[A.id] = 2
    assert state.invariant_violations() == ["task t: back-to-source peers by host disagree"]
    task.back_to_source_by_host[A.id] = 1
    ledger = state._tasks
    ledger._by_creator[A.id].add("ghost")  # the reverse index alone disagrees
    assert state.invariant_violations() == [
        "tasks-by-creator index disagrees with the task records"
    ]
    ledger._by_creator[A.id].discard("ghost")
    ledger._creator_of["ghost"] = A.id  # the forward index alone disagrees
    ledger._by_creator[A.id].add("ghost")
    assert state.invariant_violations() == [
        "tasks-by-creator index disagrees with the task records"
    ]


def test_a_task_counts_votes_for_a_few_distinct_claims_only() -> None:
    state = new_state()
    state.announce_host(A, 0.0)
    for n in range(1, MAX_SIZE_CLAIMS + 2):
        finish(state, f"p{n}", A, TaskInfo("t", total_piece_count=n), float(n))
    votes = state.task("t").size_votes
    assert len(votes) == MAX_SIZE_CLAIMS == 8
    assert (-1, MAX_SIZE_CLAIMS + 1) not in votes
    finish(state, "again", A, TaskInfo("t", total_piece_count=2), 20.0)
    assert votes[(-1, 2)] == 2
    assert state.task("t").total_piece_count == 2


# --- back-to-source slots shared between hosts -----------------------------------------------


def test_one_host_cannot_take_every_back_to_source_slot() -> None:
    state = new_state(RecordLimits(max_back_to_source_per_host=3))
    state.announce_host(A, 0.0)
    state.announce_host(B, 0.0)
    for i in range(4):
        state.register_peer(f"a{i}", A.id, TaskInfo("t"), 1.0, back_to_source_limit=10)
    state.register_peer("b0", B.id, TaskInfo("t"), 1.0)
    for i in range(3):
        state.back_to_source(f"a{i}", 2.0)
    with pytest.raises(
        BackToSourceLimitReached,
        match=r"^host '10\.0\.0\.1-alpha' already has max_back_to_source_per_host \(3\) "
        r"back-to-source peers in task 't'$",
    ):
        state.back_to_source("a3", 3.0)
    assert state.peer("a3").state is PeerState.RECEIVED_NORMAL
    state.back_to_source("b0", 3.0)
    task = state.task("t")
    assert task.back_to_source_by_host == {A.id: 3, B.id: 1}
    assert task.back_to_source_count == 4
    state.fail_download("a0", 4.0)
    state.back_to_source("a3", 4.0)  # a slot of its host came free
    state.finish_pieces("a3", [0], 5.0)
    state.finish_download("a3", 5.0)
    state.leave_peer("a1", 6.0)
    assert task.back_to_source_by_host == {A.id: 1, B.id: 1}
    state.leave_peer("a2", 6.0)
    state.leave_peer("b0", 6.0)
    assert task.back_to_source_by_host == {}
    assert task.back_to_source_count == 0
    assert state.invariant_violations() == []


def test_a_share_of_one_lets_each_host_send_one_peer_to_the_origin() -> None:
    state = new_state(RecordLimits(max_back_to_source_per_host=1))
    state.announce_host(A, 0.0)
    state.register_peer("a0", A.id, TaskInfo("t"), 1.0)
    state.register_peer("a1", A.id, TaskInfo("t"), 1.0)
    state.back_to_source("a0", 2.0)
    with pytest.raises(BackToSourceLimitReached):
        state.back_to_source("a1", 2.0)


def peer(peer_id: str, host_id: str, state: PeerState = PeerState.RECEIVED_NORMAL) -> Peer:
    return Peer(peer_id, "t", host_id, 0.0, 0.0, 0.0, state=state)


def test_reservations_count_against_the_hosts_share() -> None:
    task = Task("t", "", 1, -1, -1, 0.0, 0.0, back_to_source_limit=10)
    book = OriginBook(per_host=2)
    a1, a2, a3, b1 = peer("a1", "A"), peer("a2", "A"), peer("a3", "A"), peer("b1", "B")
    book.reserve(a1)
    assert book.back_to_source_allowed(task, a2)
    book.reserve(a2)
    assert not book.back_to_source_allowed(task, a3)
    assert book.back_to_source_allowed(task, a1)  # it holds one already
    assert book.back_to_source_allowed(task, b1)
    task.back_to_source_by_host["B"] = 2
    assert not book.back_to_source_allowed(task, b1)  # in use counts as well
    book.release("a1")
    assert book.back_to_source_allowed(task, a3)
    book.release("a2")
    book.release("a2")  # twice is harmless
    assert book.violations({"a3"}) == []
    book.reserve(a3)
    book.reserve(peer("a4", "A"))
    assert not book.back_to_source_allowed(task, peer("a5", "A"))
    assert book.violations({"a3", "a4"}) == []
    assert book.violations({"a3"}) == ["peer a4 holds a back-to-source reservation but is gone"]


def test_a_share_of_one_slot_lets_each_host_take_one() -> None:
    task = Task("t", "", 1, -1, -1, 0.0, 0.0, back_to_source_limit=10)
    book = OriginBook(per_host=1)
    first, second = peer("a1", "A"), peer("a2", "A")
    assert book.back_to_source_allowed(task, first)
    book.reserve(first)
    assert not book.back_to_source_allowed(task, second)
    assert book.back_to_source_allowed(task, peer("b1", "B"))


def test_decisions_send_no_more_of_a_hosts_peers_to_the_origin_than_its_share() -> None:
    """Peers asking again and again are sent to the origin, within their host's share."""
    state = new_state(RecordLimits(max_back_to_source_per_host=2))
    state.announce_host(A, 0.0)
    state.announce_host(B, 0.0)
    actions = {}
    for name, host in (("a0", A), ("a1", A), ("a2", A), ("b0", B)):
        state.register_peer(name, host.id, TaskInfo("t"), 1.0)
    for name in ("a0", "a1", "a2", "b0"):
        decision = None
        for attempt in range(6):
            [scheduled, *_] = state.reschedule_peer(name, [], 2.0 + attempt)
            decision = scheduled.decision  # type: ignore[attr-defined]
            if decision.action.value != "wait":
                break
        assert decision is not None
        actions[name] = decision.action.value
    assert actions == {
        "a0": "back_to_source",
        "a1": "back_to_source",
        "a2": "fail",
        "b0": "back_to_source",
    }
    assert state.invariant_violations() == []
