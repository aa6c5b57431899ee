"""The peer ledger: registration, progress reports, the back-to-source count, eviction.

Every refusal names the record it refuses, and changes nothing.
"""

from __future__ import annotations

import math
import re

import pytest

from scheduler import hookimpl
from scheduler.core import (
    BackToSourceLimitReached,
    Conflict,
    Eviction,
    Expiry,
    HostInfo,
    IllegalTransition,
    NotFound,
    Peer,
    PeerRegistered,
    PeerState,
    Reason,
    RecordKind,
    SchedulerState,
    StateView,
    TaskInfo,
)
from scheduler.policies import load_policies

A = HostInfo("alpha", "10.0.0.1")
B = HostInfo("bravo", "10.0.0.2")
TASK = TaskInfo("t1", url="https://example.invalid/x", total_piece_count=10)


@pytest.fixture
def state() -> SchedulerState:
    s = SchedulerState(load_policies(entrypoints=False), now=0.0)
    s.announce_host(A, 0.0, interval=60)
    s.announce_host(B, 0.0, interval=60)
    return s


def exact(message: str) -> str:
    return f"^{re.escape(message)}$"


# --- registration -----------------------------------------------------------------------------


def test_registration_indexes_the_peer_by_host_and_task(state: SchedulerState) -> None:
    events = state.register_peer("p1", A.id, TASK, 1.0)
    assert PeerRegistered("p1", "t1", A.id, 1.0) in events
    state.register_peer("p2", A.id, TaskInfo("t2"), 2.0)
    state.register_peer("p3", B.id, TASK, 3.0)
    ledger = state._peers
    assert ledger.ids_of_host(A.id) == {"p1", "p2"}
    assert ledger.ids_of_task("t1") == {"p1", "p3"}
    assert (ledger.count_of_host(A.id), ledger.count_of_task("t1")) == (2, 2)
    assert {p.id for p in ledger.of_host(A.id)} == {"p1", "p2"}
    assert {p.id for p in ledger.of_task("t1")} == {"p1", "p3"}
    assert ledger.ids_of_host("nobody") == frozenset()
    assert (ledger.count_of_host("nobody"), ledger.count_of_task("none")) == (0, 0)
    assert ledger.of_task("none") == []
    peer = state.peer("p3")
    assert (peer.task_id, peer.host_id, peer.created_at, peer.updated_at) == ("t1", B.id, 3.0, 3.0)
    assert peer.piece_updated_at == 3.0
    assert peer.state is PeerState.RECEIVED_NORMAL


def test_registration_refusals_name_the_record(state: SchedulerState) -> None:
    state.register_peer("p1", A.id, TASK, 1.0)
    with pytest.raises(Conflict, match=exact("peer 'p1' is already registered")):
        state.register_peer("p1", B.id, TASK, 1.0)
    with pytest.raises(ValueError, match=exact("peer id and task id must be non-empty")):
        state.register_peer("", A.id, TASK, 1.0)
    with pytest.raises(ValueError, match=exact("peer id and task id must be non-empty")):
        state.register_peer("p2", A.id, TaskInfo(""), 1.0)
    state.disconnect_host(B.id, 2.0)
    with pytest.raises(
        Conflict, match=exact(f"host {B.id!r} is disconnected; it cannot register peers")
    ):
        state.register_peer("p3", B.id, TASK, 2.0)
    assert [p.id for p in state.view.peers()] == ["p1"]
    assert state.invariant_violations() == []


def test_counts_by_state_follow_every_peer_and_leave_out_leave(state: SchedulerState) -> None:
    state.register_peer("p1", A.id, TASK, 1.0)
    state.register_peer("p2", B.id, TASK, 1.0)
    state.start_download("p1", 2.0)
    counts = state._peers.counts_by_state()
    assert PeerState.LEAVE not in counts
    assert counts[PeerState.RUNNING] == 1
    assert counts[PeerState.RECEIVED_NORMAL] == 1
    assert sum(counts.values()) == 2
    state.leave_peer("p2", 3.0)
    counts = state._peers.counts_by_state()
    assert counts[PeerState.RECEIVED_NORMAL] == 0
    assert sum(counts.values()) == 1


# --- progress ---------------------------------------------------------------------------------


def test_pieces_report_how_many_are_new_and_stamp_the_peer(state: SchedulerState) -> None:
    state.register_peer("p", A.id, TASK, 1.0)
    state.start_download("p", 2.0)
    ledger = state._peers
    assert ledger.finish_pieces("p", [0, 1], 3.0, cost=0.5, as_host=None) == 2
    assert ledger.finish_pieces("p", [1, 9], 4.0, cost=0.25, as_host=None) == 1
    peer = state.peer("p")
    assert sorted(peer.finished_pieces) == [0, 1, 9]
    assert peer.cost_total == 0.75
    assert (peer.piece_updated_at, peer.updated_at) == (4.0, 4.0)
    assert ledger.finish_pieces("p", [], 5.0, cost=None, as_host=None) == 0
    assert peer.cost_total == 0.75


def test_the_parent_a_piece_came_from_is_remembered_only_if_handed_out(
    state: SchedulerState,
) -> None:
    state.register_peer("parent", B.id, TASK, 1.0)
    state.back_to_source("parent", 1.0)
    state.finish_pieces("parent", [0, 1, 2, 3], 1.0)
    state.register_peer("stranger", B.id, TaskInfo("t2"), 1.0)
    state.register_peer("p", A.id, TASK, 1.0)
    [scheduled] = state.schedule_peer("p", 1.5)
    assert scheduled.decision.parents == ("parent",)  # type: ignore[attr-defined]
    state.start_download("p", 2.0)
    state.register_peer("unasked", B.id, TASK, 2.0)  # same task, never handed out
    state.finish_pieces("p", [0], 3.0, parent_id="parent")
    state.finish_pieces("p", [1], 3.0, parent_id="stranger")  # another task
    state.finish_pieces("p", [2], 3.0, parent_id="gone")  # unknown
    state.finish_pieces("p", [3], 3.0, parent_id="unasked")
    assert state.peer("p").parents == {"parent"}
    assert state.host(B.id).upload_count == 1


@pytest.mark.parametrize("piece", [-1, 10, 11])
def test_pieces_out_of_range_are_refused_by_number(state: SchedulerState, piece: int) -> None:
    state.register_peer("p", A.id, TASK, 1.0)
    state.start_download("p", 2.0)
    message = f"piece {piece} is out of range for task 't1': piece numbers are 0..9"
    with pytest.raises(ValueError, match=exact(f"{message} (its total_piece_count is 10)")):
        state.finish_pieces("p", [0, piece], 3.0)
    assert len(state.peer("p").finished_pieces) == 0


def test_a_task_of_unknown_size_takes_any_piece_number_below_the_bound(
    state: SchedulerState,
) -> None:
    state.register_peer("p", A.id, TaskInfo("open"), 1.0)
    state.start_download("p", 2.0)
    state.finish_pieces("p", [0, 1000, 99_999], 3.0)
    assert sorted(state.peer("p").finished_pieces) == [0, 1000, 99_999]
    bound = "piece numbers are 0..99999 (max_piece_count is 100000)"
    for piece in (-1, 100_000):
        message = f"piece {piece} is out of range for task 'open': {bound}"
        with pytest.raises(ValueError, match=exact(message)):
            state.finish_pieces("p", [5, piece], 3.0)
    assert sorted(state.peer("p").finished_pieces) == [0, 1000, 99_999]


def test_a_task_of_no_piece_takes_no_piece(state: SchedulerState) -> None:
    state.register_peer("p", A.id, TaskInfo("empty", content_length=0, total_piece_count=0), 1.0)
    state.back_to_source("p", 2.0)
    message = "piece 0 is out of range for task 'empty': piece numbers are 0..-1"
    with pytest.raises(ValueError, match=exact(f"{message} (its total_piece_count is 0)")):
        state.finish_pieces("p", [0], 3.0)


@pytest.mark.parametrize("cost", [-0.5, math.inf, math.nan])
def test_a_cost_is_a_non_negative_number_of_seconds(state: SchedulerState, cost: float) -> None:
    state.register_peer("p", A.id, TASK, 1.0)
    state.start_download("p", 2.0)
    message = f"cost must be a non-negative number of seconds, got {cost!r}"
    with pytest.raises(ValueError, match=exact(message)):
        state.finish_pieces("p", [0], 3.0, cost=cost)
    assert len(state.peer("p").finished_pieces) == 0
    state.finish_pieces("p", [0], 3.0, cost=0.0)
    assert state.peer("p").cost_total == 0.0


def test_pieces_only_while_downloading(state: SchedulerState) -> None:
    state.register_peer("p", A.id, TASK, 1.0)
    state.start_download("p", 2.0)
    state.fail_download("p", 3.0)
    with pytest.raises(IllegalTransition) as caught:
        state.finish_pieces("p", [0], 4.0)
    assert (caught.value.machine, caught.value.state, caught.value.event) == (
        "peer",
        "failed",
        "pieces_finished",
    )


def test_another_hosts_peer_is_refused_as_if_missing(state: SchedulerState) -> None:
    state.register_peer("p", A.id, TASK, 1.0)
    with pytest.raises(NotFound, match=exact("peer 'p' not found")):
        state.start_download("p", 2.0, as_host=B.id)
    with pytest.raises(NotFound, match=exact("peer 'p' not found")):
        state.leave_peer("p", 2.0, as_host=B.id)
    state.start_download("p", 2.0, as_host=A.id)
    assert state.peer("p").state is PeerState.RUNNING


# --- the back-to-source count -----------------------------------------------------------------


def test_the_back_to_source_count_follows_the_peers_at_the_origin(state: SchedulerState) -> None:
    for i, host in enumerate((A, B, A)):
        state.register_peer(f"p{i}", host.id, TASK, 1.0, back_to_source_limit=2)
    state.back_to_source("p0", 2.0)
    state.back_to_source("p1", 2.0)
    task = state.task("t1")
    assert task.back_to_source_count == 2
    message = "task 't1' already has 2 back-to-source peers"
    with pytest.raises(BackToSourceLimitReached, match=exact(message)):
        state.back_to_source("p2", 3.0)
    assert state.peer("p2").state is PeerState.RECEIVED_NORMAL
    state.finish_download("p0", 4.0)
    assert task.back_to_source_count == 1
    state.back_to_source("p2", 4.0)
    state.fail_download("p1", 5.0)
    assert task.back_to_source_count == 1
    state.leave_peer("p2", 6.0)
    assert task.back_to_source_count == 0


def test_finishing_or_failing_a_running_peer_keeps_the_origin_count(
    state: SchedulerState,
) -> None:
    state.register_peer("origin", A.id, TASK, 1.0)
    state.back_to_source("origin", 1.0)
    for name in ("ok", "ko", "gone"):
        state.register_peer(name, B.id, TASK, 1.0)
        state.start_download(name, 1.0)
    state.finish_download("ok", 2.0)
    state.fail_download("ko", 2.0)
    state.leave_peer("gone", 2.0)
    assert state.task("t1").back_to_source_count == 1


# --- eviction ---------------------------------------------------------------------------------


def test_an_eviction_says_who_went_why_and_when(state: SchedulerState) -> None:
    state.register_peer("p", A.id, TASK, 1.0)
    state.start_download("p", 2.5)
    events = state.evict(RecordKind.PEER, "p", "admin", 4.0)
    (eviction,) = [e for e in events if isinstance(e, Eviction)]
    assert eviction == Eviction(
        kind=RecordKind.PEER,
        record_id="p",
        reason="admin",
        at=4.0,
        last_contact=2.5,
        deadline=None,
        host_id=A.id,
        task_id="t1",
    )
    assert not state.has_peer("p")
    assert state._peers.ids_of_host(A.id) == frozenset()
    assert state._peers.ids_of_task("t1") == frozenset()
    assert state.invariant_violations() == []


def test_a_leaving_peer_goes_with_reason_leave(state: SchedulerState) -> None:
    state.register_peer("p", A.id, TASK, 1.0)
    (eviction,) = [e for e in state.leave_peer("p", 2.0) if isinstance(e, Eviction)]
    assert (eviction.record_id, eviction.reason, eviction.at) == ("p", Reason.LEAVE, 2.0)


def test_a_going_host_or_task_takes_its_peers_in_order(state: SchedulerState) -> None:
    for name in ("c", "a", "b"):
        state.register_peer(name, A.id, TASK, 1.0)
    state.register_peer("other", B.id, TASK, 1.0)
    events = state._peers.evict_of_host(A.id, 2.0)
    assert [(e.record_id, e.reason) for e in events if isinstance(e, Eviction)] == [
        ("a", Reason.HOST_EVICTED),
        ("b", Reason.HOST_EVICTED),
        ("c", Reason.HOST_EVICTED),
    ]
    state.register_peer("z", A.id, TASK, 3.0)
    events = state._peers.evict_of_task("t1", 4.0)
    assert [(e.record_id, e.reason) for e in events if isinstance(e, Eviction)] == [
        ("other", Reason.TASK_EVICTED),
        ("z", Reason.TASK_EVICTED),
    ]


# --- the ledger checks itself -----------------------------------------------------------------


def test_record_violations_name_the_peer(state: SchedulerState) -> None:
    state.register_peer("p", A.id, TASK, 1.0)
    ledger = state._peers
    assert ledger._record_violations() == []
    peer = state.peer("p")
    peer.host_id, peer.task_id = "ghost-host", "ghost-task"
    problems = ledger._record_violations()
    assert "peer p dangles: host ghost-host is gone" in problems
    assert "peer p dangles: task ghost-task is gone" in problems
    assert "peers-by-host index disagrees with the peer records" in problems
    assert "peers-by-task index disagrees with the peer records" in problems
    peer.host_id, peer.task_id = A.id, "t1"
    assert ledger._record_violations() == []
    peer.state = PeerState.LEAVE
    problems = ledger._record_violations()
    assert "peer p is kept in state leave" in problems
    assert any(p.startswith("peer state counts ") for p in problems)


# --- every step is stamped, judged by the policies, and refused by name -----------------------


class Spy:
    """Records when the policies are asked about peers, and every eviction they hear of."""

    name = "spy"

    def __init__(self) -> None:
        self.asked: list[tuple[str, bool, float]] = []
        self.evicted: list[Eviction] = []

    @hookimpl
    def scheduler_peer_expiry(self, peer: Peer, view: StateView, now: float) -> Expiry | None:
        self.asked.append((peer.id, view.has_peer(peer.id), now))
        return Expiry(10.0, "spy") if peer.id == "doomed" else None

    @hookimpl
    def scheduler_evicted(self, eviction: Eviction) -> None:
        self.evicted.append(eviction)


@pytest.fixture
def spy() -> Spy:
    return Spy()


@pytest.fixture
def watched(spy: Spy) -> SchedulerState:
    s = SchedulerState(load_policies(entrypoints=False, plugins=[spy]), now=0.0)
    s.announce_host(A, 0.0, interval=60)
    s.announce_host(B, 0.0, interval=60)
    return s


def test_each_step_asks_the_policies_with_its_time(watched: SchedulerState, spy: Spy) -> None:
    watched.register_peer("p", A.id, TASK, 1.0)
    watched.start_download("p", 2.0)
    watched.finish_pieces("p", [0], 3.0)
    watched.finish_download("p", 4.0)
    watched.register_peer("q", B.id, TASK, 5.0)
    watched.back_to_source("q", 6.0)
    watched.fail_download("q", 7.0)
    mine = [(peer, now) for peer, in_view, now in spy.asked if in_view]
    assert mine == [
        ("p", 1.0),
        ("p", 2.0),
        ("p", 3.0),
        ("p", 4.0),
        ("q", 5.0),
        ("q", 6.0),
        ("q", 7.0),
    ]


def test_each_step_stamps_the_peer_and_its_task(state: SchedulerState) -> None:
    state.register_peer("p", A.id, TASK, 1.0)
    task = state.task("t1")
    assert (task.created_at, task.updated_at) == (1.0, 1.0)
    steps = [
        (state.back_to_source, 2.0),
        (state.finish_download, 3.0),
    ]
    for step, now in steps:
        step("p", now)
        assert (state.peer("p").updated_at, task.updated_at) == (now, now)
    state.register_peer("q", B.id, TASK, 4.0)
    assert task.updated_at == 4.0
    state.fail_download("q", 5.0)
    assert (state.peer("q").updated_at, task.updated_at) == (5.0, 5.0)


def test_an_eviction_by_the_gc_carries_its_deadline_to_the_plugins(
    watched: SchedulerState, spy: Spy
) -> None:
    watched.register_peer("doomed", A.id, TASK, 1.0)
    watched.run_gc(11.0)
    (eviction,) = [e for e in spy.evicted if e.kind is RecordKind.PEER]
    assert (eviction.record_id, eviction.reason, eviction.deadline) == ("doomed", "spy", 10.0)
    assert not watched.has_peer("doomed")


def test_a_task_eviction_takes_its_peers_at_that_time(state: SchedulerState) -> None:
    state.register_peer("p", A.id, TASK, 1.0)
    events = state.evict(RecordKind.TASK, "t1", "admin", 5.0)
    (eviction,) = [e for e in events if isinstance(e, Eviction) and e.kind is RecordKind.PEER]
    assert (eviction.record_id, eviction.reason, eviction.at) == ("p", Reason.TASK_EVICTED, 5.0)


def test_a_peer_record_held_elsewhere_reads_leave_after_it_goes(state: SchedulerState) -> None:
    state.register_peer("p", A.id, TASK, 1.0)
    record = state.peer("p")
    state.leave_peer("p", 2.0)
    assert record.state is PeerState.LEAVE


@pytest.mark.parametrize("step", ["start_download", "back_to_source", "finish_download"])
def test_an_illegal_step_names_the_peer_machine(state: SchedulerState, step: str) -> None:
    state.register_peer("p", A.id, TASK, 1.0)
    state.start_download("p", 2.0)
    state.fail_download("p", 3.0)
    with pytest.raises(IllegalTransition) as caught:
        getattr(state, step)("p", 4.0)
    assert caught.value.machine == "peer"
    assert str(caught.value).startswith("peer: event ")


def test_failing_twice_names_the_peer_machine(state: SchedulerState) -> None:
    state.register_peer("p", A.id, TASK, 1.0)
    state.fail_download("p", 2.0)
    with pytest.raises(IllegalTransition, match=r"^peer: event download_failed is not allowed"):
        state.fail_download("p", 3.0)


@pytest.mark.parametrize(
    "step", ["back_to_source", "finish_download", "fail_download", "finish_pieces"]
)
def test_every_step_refuses_another_hosts_peer(state: SchedulerState, step: str) -> None:
    state.register_peer("p", A.id, TASK, 1.0)
    state.start_download("p", 1.0)
    args: tuple[object, ...] = ("p", [0], 2.0) if step == "finish_pieces" else ("p", 2.0)
    with pytest.raises(NotFound, match=exact("peer 'p' not found")):
        getattr(state, step)(*args, as_host=B.id)
    assert state.peer("p").state is PeerState.RUNNING


def test_counts_add_up_with_many_peers_in_one_state(state: SchedulerState) -> None:
    for i in range(3):
        state.register_peer(f"p{i}", A.id, TASK, 1.0)
        state.start_download(f"p{i}", 2.0)
    assert state._peers.counts_by_state()[PeerState.RUNNING] == 3


def test_one_failure_at_the_origin_takes_one_off_the_count(state: SchedulerState) -> None:
    for i in range(3):
        state.register_peer(f"p{i}", A.id, TASK, 1.0)
        state.back_to_source(f"p{i}", 1.0)
    state.fail_download("p0", 2.0)
    assert state.task("t1").back_to_source_count == 2
