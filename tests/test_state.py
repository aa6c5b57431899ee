"""SchedulerState: announce, leave, disconnect, reconnect, supersede, cascades, GC."""

from __future__ import annotations

import pytest

from scheduler.core import (
    BackToSourceLimitReached,
    Conflict,
    Eviction,
    HostDisconnected,
    HostInfo,
    HostReconnected,
    HostRegistered,
    HostState,
    HostType,
    NotFound,
    PeerScheduled,
    PeerState,
    Reason,
    RecordKind,
    SchedulerState,
    TaskInfo,
    TaskState,
    host_id_for,
)
from scheduler.policies import load_policies

A = HostInfo("alpha", "10.0.0.1")
B = HostInfo("bravo", "10.0.0.2")
TASK = TaskInfo("t1", url="https://example.invalid/x", total_piece_count=10)

CONFIG = {
    "disconnect_grace": {"reconnect_grace": "5s"},
    "task_idle": {"task_idle_ttl": "10m"},
}


@pytest.fixture
def state() -> SchedulerState:
    return SchedulerState(load_policies(entrypoints=False, config=CONFIG), now=0.0)


def evictions(events: list) -> list[tuple[str, str, str]]:
    return [(e.kind.value, e.record_id, e.reason) for e in events if isinstance(e, Eviction)]


def test_host_id_follows_dragonfly() -> None:
    assert host_id_for("10.0.0.1", "alpha") == "10.0.0.1-alpha"
    assert HostInfo("alpha", "10.0.0.1", type=HostType.SEED).id == "10.0.0.1-alpha-seed"


def test_announce_registers_then_refreshes(state: SchedulerState) -> None:
    assert state.announce_host(A, 0.0, interval=30) == [HostRegistered(A.id, 0.0)]
    assert state.deadline_of(RecordKind.HOST, A.id).at == 60.0
    assert state.announce_host(A, 20.0, interval=30) == []
    assert state.deadline_of(RecordKind.HOST, A.id).at == 80.0
    assert [h.id for h in state.schedulable_hosts()] == [A.id]


def test_announce_without_interval_falls_back_to_host_ttl(state: SchedulerState) -> None:
    state.announce_host(A, 0.0)
    assert state.deadline_of(RecordKind.HOST, A.id).at == 3600.0


def test_bad_interval_is_rejected_and_nothing_is_created(state: SchedulerState) -> None:
    for bad in (0.0, -1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="interval"):
            state.announce_host(A, 0.0, interval=bad)
    assert state.host_count() == 0


def test_leave_evicts_host_and_its_peers_at_once(state: SchedulerState) -> None:
    state.announce_host(A, 0.0, interval=30)
    state.register_peer("p1", A.id, TASK, 1.0)
    events = state.leave_host(A.id, 2.0)
    assert evictions(events) == [("peer", "p1", "host_evicted"), ("host", A.id, "leave")]
    assert not state.has_host(A.id)
    assert not state.has_peer("p1")
    # The task stays until its idle TTL, then goes.
    assert state.has_task("t1")
    assert state.deadline_of(RecordKind.TASK, "t1").at == 2.0 + 600
    assert evictions(state.collect_expired(602.0)) == [("task", "t1", "idle")]
    assert state.invariant_violations() == []


def test_crash_makes_host_unschedulable_at_once_and_evicts_after_grace(
    state: SchedulerState,
) -> None:
    state.announce_host(A, 0.0, interval=30)
    state.announce_host(B, 0.0, interval=30)
    assert state.disconnect_host(A.id, 10.0) == [HostDisconnected(A.id, 10.0)]
    assert not state.is_schedulable(A.id)
    assert [h.id for h in state.schedulable_hosts()] == [B.id]
    assert state.collect_expired(14.9) == []
    events = state.collect_expired(15.0)
    assert evictions(events) == [("host", A.id, "disconnected")]
    (eviction,) = events
    assert isinstance(eviction, Eviction)
    assert eviction.detection_latency == 15.0  # last contact was the announce at 0
    assert eviction.lateness == 0.0
    assert state.has_host(B.id)


def test_reconnect_within_grace_keeps_the_host_and_its_peers(state: SchedulerState) -> None:
    state.announce_host(A, 0.0, interval=30)
    state.register_peer("p1", A.id, TASK, 1.0)
    state.disconnect_host(A.id, 10.0)
    events = state.announce_host(A, 12.0, interval=30)
    assert events == [HostReconnected(A.id, 12.0, 2.0)]
    assert state.collect_expired(20.0) == []
    assert state.is_schedulable(A.id)
    assert state.has_peer("p1")


def test_same_hostname_new_address_supersedes_the_old_record(state: SchedulerState) -> None:
    old = HostInfo("alpha", "10.0.0.1")
    new = HostInfo("alpha", "10.0.0.9")
    state.announce_host(old, 0.0, interval=30)
    state.register_peer("p1", old.id, TASK, 1.0)
    events = state.announce_host(new, 5.0, interval=30)
    assert evictions(events) == [("peer", "p1", "host_evicted"), ("host", old.id, "superseded")]
    assert state.host_ids_by_hostname("alpha") == {new.id}


def test_ttl_backstop_evicts_a_silent_host(state: SchedulerState) -> None:
    state.announce_host(A, 0.0, interval=30)
    assert state.collect_expired(59.0) == []
    (eviction,) = state.collect_expired(61.0)
    assert isinstance(eviction, Eviction)
    assert eviction.reason == Reason.TTL_EXPIRED
    assert eviction.deadline == 60.0
    assert eviction.lateness == 1.0
    assert eviction.detection_latency == 61.0


def test_peer_lifecycle_and_task_state(state: SchedulerState) -> None:
    state.announce_host(A, 0.0, interval=30)
    state.register_peer("p1", A.id, TASK, 1.0)
    assert state.peer("p1").state is PeerState.RECEIVED_NORMAL
    state.start_download("p1", 2.0)
    assert state.task("t1").state is TaskState.RUNNING
    state.finish_pieces("p1", [0, 1, 1, 2], 3.0, cost=0.5)
    assert sorted(state.peer("p1").finished_pieces) == [0, 1, 2]
    state.finish_download("p1", 4.0)
    assert state.task("t1").state is TaskState.SUCCEEDED


@pytest.mark.parametrize(
    ("content_length", "pieces", "expected"),
    [
        (0, 0, PeerState.RECEIVED_EMPTY),
        (100, 1, PeerState.RECEIVED_TINY),
        (4 << 20, 1, PeerState.RECEIVED_SMALL),
        (40 << 20, 10, PeerState.RECEIVED_NORMAL),
        (-1, -1, PeerState.RECEIVED_NORMAL),
    ],
)
def test_register_picks_the_size_scope(
    state: SchedulerState, content_length: int, pieces: int, expected: PeerState
) -> None:
    state.announce_host(A, 0.0)
    task = TaskInfo("t", content_length=content_length, total_piece_count=pieces)
    state.register_peer("p", A.id, task, 0.0)
    assert state.peer("p").state is expected


def test_parent_pieces_count_as_uploads_of_the_parent_host(state: SchedulerState) -> None:
    state.announce_host(A, 0.0)
    state.announce_host(B, 0.0)
    state.register_peer("seed", A.id, TASK, 0.0)
    state.back_to_source("seed", 0.5)  # it can feed others from now on
    state.register_peer("child", B.id, TASK, 0.0)
    (scheduled,) = state.schedule_peer("child", 0.5)
    assert isinstance(scheduled, PeerScheduled)
    assert scheduled.decision.parents == ("seed",)
    state.start_download("child", 1.0)
    state.finish_pieces("child", [0, 1], 2.0, parent_id="seed")
    assert state.peer("child").parents == {"seed"}
    assert state.host(A.id).upload_count == 2


def test_pieces_from_a_parent_not_handed_out_count_no_upload(state: SchedulerState) -> None:
    state.announce_host(A, 0.0)
    state.announce_host(B, 0.0)
    state.register_peer("seed", A.id, TASK, 0.0)
    state.register_peer("child", B.id, TASK, 0.0)
    state.start_download("child", 1.0)
    state.finish_pieces("child", [0, 1], 2.0, parent_id="seed")
    assert state.peer("child").parents == set()  # a parent it was not given is not recorded
    assert state.host(A.id).upload_count == 0  # but the scheduler never handed it out


def test_failed_peer_leaves(state: SchedulerState) -> None:
    state.announce_host(A, 0.0)
    state.register_peer("p1", A.id, TASK, 0.0)
    state.start_download("p1", 1.0)
    state.fail_download("p1", 2.0)
    assert state.task("t1").state is TaskState.FAILED
    assert evictions(state.collect_expired(2.0)) == [("peer", "p1", "failed")]


def test_stalled_download_times_out(state: SchedulerState) -> None:
    state.announce_host(A, 0.0)
    state.register_peer("p1", A.id, TASK, 0.0)
    state.start_download("p1", 0.0)
    assert evictions(state.collect_expired(1800.0)) == [("peer", "p1", "piece_timeout")]


def test_back_to_source_limit(state: SchedulerState) -> None:
    state.announce_host(A, 0.0)
    state.register_peer("p1", A.id, TASK, 0.0, back_to_source_limit=1)
    state.register_peer("p2", A.id, TASK, 0.0)
    state.back_to_source("p1", 1.0)
    with pytest.raises(BackToSourceLimitReached):
        state.back_to_source("p2", 1.0)
    assert state.peer("p2").state is PeerState.RECEIVED_NORMAL
    state.finish_download("p1", 2.0)
    state.back_to_source("p2", 3.0)
    assert state.task("t1").back_to_source_count == 1


def test_one_host_cannot_touch_another_hosts_peer(state: SchedulerState) -> None:
    state.announce_host(A, 0.0)
    state.announce_host(B, 0.0)
    state.register_peer("p1", A.id, TASK, 0.0)
    with pytest.raises(NotFound):
        state.leave_peer("p1", 1.0, as_host=B.id)
    with pytest.raises(NotFound):
        state.start_download("p1", 1.0, as_host=B.id)
    assert state.peer("p1").state is PeerState.RECEIVED_NORMAL


def test_unknown_records_and_duplicates(state: SchedulerState) -> None:
    with pytest.raises(NotFound):
        state.leave_host("nope", 0.0)
    with pytest.raises(NotFound):
        state.register_peer("p", "nope", TASK, 0.0)
    state.announce_host(A, 0.0)
    state.register_peer("p", A.id, TASK, 0.0)
    with pytest.raises(Conflict):
        state.register_peer("p", A.id, TASK, 0.0)
    with pytest.raises(NotFound):
        state.start_download("missing", 0.0)
    state.start_download("p", 0.0)
    with pytest.raises(ValueError, match="out of range"):
        state.finish_pieces("p", [10], 0.0)
    assert len(state.peer("p").finished_pieces) == 0


def test_disconnected_host_cannot_register_peers(state: SchedulerState) -> None:
    state.announce_host(A, 0.0)
    state.disconnect_host(A.id, 1.0)
    with pytest.raises(Conflict):
        state.register_peer("p", A.id, TASK, 1.0)
    assert state.peer_count() == 0
    assert state.host(A.id).state is HostState.DISCONNECTED


def test_admin_eviction_of_a_task_makes_its_peers_leave(state: SchedulerState) -> None:
    state.announce_host(A, 0.0)
    state.register_peer("p", A.id, TASK, 0.0)
    events = state.evict(RecordKind.TASK, "t1", Reason.ADMIN, 1.0)
    assert evictions(events) == [("peer", "p", "task_evicted"), ("task", "t1", "admin")]
    assert state.invariant_violations() == []


def test_capacity_sweep_trims_finished_peers() -> None:
    config = {"capacity": {"max_peers_per_task": 1}}
    state = SchedulerState(load_policies(entrypoints=False, config=config), now=0.0)
    state.announce_host(A, 0.0)
    for i in range(3):
        state.register_peer(f"p{i}", A.id, TASK, float(i))
    events = state.sweep(10.0, RecordKind.PEER)
    assert evictions(events) == [("peer", "p0", "capacity"), ("peer", "p1", "capacity")]
    assert state.next_sweep_at(RecordKind.PEER) == 70.0


def test_run_gc_runs_due_sweeps(state: SchedulerState) -> None:
    assert state.run_gc(59.0) == []
    assert state.next_sweep_at(RecordKind.HOST) == 60.0
    state.run_gc(60.0)
    assert state.next_sweep_at(RecordKind.HOST) == 120.0


def test_state_counts_follow_every_change(state: SchedulerState) -> None:
    state.announce_host(A, 0.0)
    state.announce_host(B, 0.0)
    state.register_peer("p1", A.id, TASK, 0.0)
    state.register_peer("p2", B.id, TASK, 0.0)
    state.start_download("p1", 1.0)
    state.disconnect_host(B.id, 2.0)
    assert state.host_counts_by_state() == {HostState.CONNECTED: 1, HostState.DISCONNECTED: 1}
    peers = state.peer_counts_by_state()
    assert (peers[PeerState.RUNNING], peers[PeerState.RECEIVED_NORMAL]) == (1, 1)
    state.leave_host(A.id, 3.0)
    assert state.host_counts_by_state()[HostState.CONNECTED] == 0
    assert sum(state.peer_counts_by_state().values()) == 1
    assert state.invariant_violations() == []
