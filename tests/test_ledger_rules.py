"""The host and task ledgers' rules: what they record, what the policies hear, what they check."""

from __future__ import annotations

import math

import pytest

from scheduler.core import (
    ContactSource,
    Eviction,
    Expiry,
    HostInfo,
    HostState,
    IllegalTransition,
    NotFound,
    Peer,
    PeerState,
    RecordKind,
    SchedulerState,
    StateView,
    TaskCreated,
    TaskInfo,
    TaskState,
)
from tests.scripted import A, B, C, scripted_state

HOST, TASK = RecordKind.HOST, RecordKind.TASK


# --- announce ---------------------------------------------------------------------------------


@pytest.mark.parametrize("interval", [0.5, 1.0, 30.0, None])
def test_any_positive_finite_interval_is_accepted(interval: float | None) -> None:
    state, _ = scripted_state()
    state.announce_host(A, 0.0, interval=interval)
    assert state.host(A.id).announce_interval == interval


@pytest.mark.parametrize("interval", [0.0, -1.0, math.inf, math.nan])
def test_a_bad_interval_names_the_setting_and_the_value(interval: float) -> None:
    state, _ = scripted_state()
    with pytest.raises(ValueError, match=r"^interval must be a positive finite number of seconds"):
        state.announce_host(A, 0.0, interval=interval)
    assert not state.has_host(A.id)


@pytest.mark.parametrize("sweep_interval", [0.0, -5.0, math.inf])
def test_a_bad_sweep_interval_is_refused_by_name(sweep_interval: float) -> None:
    policies = scripted_state()[0].policies
    with pytest.raises(ValueError, match=rf"^sweep_interval must be .* got {sweep_interval!r}$"):
        SchedulerState(policies, sweep_interval=sweep_interval)


@pytest.mark.parametrize("info", [HostInfo("", "10.0.0.1"), HostInfo("alpha", "")])
def test_a_host_needs_both_a_hostname_and_an_ip(info: HostInfo) -> None:
    state, _ = scripted_state()
    with pytest.raises(ValueError, match=r"^hostname and ip must be non-empty$"):
        state.announce_host(info, 0.0)
    assert state.host_count() == 0


def test_a_new_host_is_stamped_with_the_announce_time_and_asked_about_then() -> None:
    state, script = scripted_state(now=3.0)
    state.announce_host(A, 5.0, interval=10.0)
    host = state.host(A.id)
    assert (host.created_at, host.last_announce_at, host.last_contact_at) == (5.0, 5.0, 5.0)
    assert (host.state, host.disconnected_at) == (HostState.CONNECTED, None)
    assert script.asked("contact") == [(A.id, ContactSource.ANNOUNCE, 5.0)]
    assert script.asked("supersedes") == [(A.id, 5.0)]
    assert script.asked("host_expiry") == [(A.id, 5.0)]


def test_a_reannounce_refreshes_the_times_but_keeps_the_creation() -> None:
    state, script = scripted_state()
    state.announce_host(A, 1.0, interval=10.0)
    del script.calls[:]
    state.announce_host(A, 7.0, interval=20.0)
    host = state.host(A.id)
    assert (host.created_at, host.last_announce_at, host.last_contact_at) == (1.0, 7.0, 7.0)
    assert host.announce_interval == 20.0
    assert script.asked("contact") == [(A.id, ContactSource.ANNOUNCE, 7.0)]
    assert script.asked("host_expiry") == [(A.id, 7.0)]
    assert script.asked("reconnected") == []


def test_a_reconnect_tells_the_policies_how_long_the_host_was_gone() -> None:
    state, script = scripted_state()
    state.announce_host(A, 0.0)
    state.disconnect_host(A.id, 4.0)
    del script.calls[:]
    state.announce_host(A, 10.0)
    host = state.host(A.id)
    assert (host.state, host.disconnected_at) == (HostState.CONNECTED, None)
    assert script.asked("reconnected") == [(A.id, HostState.CONNECTED, 6.0, 10.0)]
    assert script.asked("host_expiry") == [(A.id, 10.0)]
    assert state.host_counts_by_state() == {HostState.CONNECTED: 1, HostState.DISCONNECTED: 0}
    assert state.invariant_violations() == []


def test_superseded_hosts_are_evicted_now_and_a_host_never_supersedes_itself() -> None:
    state, script = scripted_state()
    state.announce_host(A, 0.0)
    state.announce_host(B, 0.0)
    script.supersede[C.id] = [C.id, "unknown", A.id, A.id, B.id]
    events = state.announce_host(C, 9.0)
    gone = [e for e in events if isinstance(e, Eviction)]
    assert [(e.record_id, e.reason, e.at, e.deadline) for e in gone] == [
        (A.id, "superseded", 9.0, None),
        (B.id, "superseded", 9.0, None),
    ]
    assert state.has_host(C.id)
    assert [h.id for h in state.hosts()] == [C.id]


# --- touch, disconnect, leave -----------------------------------------------------------------


def test_a_touch_moves_the_last_contact_forward_only_and_tells_the_policies() -> None:
    state, script = scripted_state()
    state.announce_host(A, 5.0)
    del script.calls[:]
    assert state.touch_host(A.id, 8.0, ContactSource.MESSAGE) == []
    assert state.host(A.id).last_contact_at == 8.0
    state.touch_host(A.id, 6.0)  # a late pong does not move it back
    assert state.host(A.id).last_contact_at == 8.0
    assert state.host(A.id).last_announce_at == 5.0
    assert script.asked("contact") == [
        (A.id, ContactSource.MESSAGE, 8.0),
        (A.id, ContactSource.PONG, 6.0),
    ]
    assert script.asked("host_expiry") == [(A.id, 8.0), (A.id, 6.0)]
    with pytest.raises(NotFound, match="host 'nobody' not found"):
        state.touch_host("nobody", 1.0)


def test_a_disconnect_is_told_to_the_policies_with_the_host_already_disconnected() -> None:
    state, script = scripted_state()
    state.announce_host(A, 0.0)
    del script.calls[:]
    state.disconnect_host(A.id, 4.0)
    assert script.asked("disconnected") == [(A.id, HostState.DISCONNECTED, 4.0)]
    assert script.asked("host_expiry") == [(A.id, 4.0)]
    with pytest.raises(IllegalTransition, match=r"^host: event disconnect is not allowed"):
        state.disconnect_host(A.id, 5.0)
    assert state.host(A.id).disconnected_at == 4.0


def test_state_counts_follow_each_host_exactly() -> None:
    state, _ = scripted_state()
    for info in (A, B, C):
        state.announce_host(info, 0.0)
    state.disconnect_host(A.id, 1.0)
    assert state.host_counts_by_state() == {HostState.CONNECTED: 2, HostState.DISCONNECTED: 1}
    state.disconnect_host(B.id, 1.0)
    assert state.host_counts_by_state() == {HostState.CONNECTED: 1, HostState.DISCONNECTED: 2}
    state.leave_host(A.id, 2.0)
    assert state.host_counts_by_state() == {HostState.CONNECTED: 1, HostState.DISCONNECTED: 1}


def test_a_leave_counts_as_the_last_contact_unless_a_later_one_was_seen() -> None:
    state, _ = scripted_state()
    state.announce_host(A, 0.0)
    state.announce_host(B, 0.0)
    state.touch_host(B.id, 9.0)
    (left,) = state.leave_host(A.id, 5.0)
    assert (left.reason, left.at, left.last_contact, left.detection_latency) == (
        "leave",
        5.0,
        5.0,
        0.0,
    )
    (late,) = state.leave_host(B.id, 7.0)
    assert late.last_contact == 9.0


def test_an_evicted_host_reads_left_and_the_eviction_names_it() -> None:
    state, script = scripted_state()
    state.announce_host(A, 2.0)
    host = state.host(A.id)
    (eviction,) = state.evict(HOST, A.id, "admin", 6.0)
    assert host.state is HostState.LEFT
    assert eviction == Eviction(
        kind=HOST,
        record_id=A.id,
        reason="admin",
        at=6.0,
        last_contact=2.0,
        deadline=None,
        host_id=A.id,
        hostname="alpha",
    )
    assert script.evictions == [eviction]
    assert state.host_ids_by_hostname("alpha") == frozenset()
    assert state.host_ids_by_hostname("never-seen") == frozenset()


def test_reconnect_grace_asks_the_policies_at_the_time_given() -> None:
    state, script = scripted_state()
    state.announce_host(A, 0.0)
    del script.calls[:]
    assert state.reconnect_grace(A.id, 4.0) is None
    assert script.asked("host_expiry") == [(A.id, 4.0)]


# --- the host ledger's self-check -------------------------------------------------------------


def test_the_host_self_check_names_each_disagreement() -> None:
    state, _ = scripted_state()
    state.announce_host(A, 0.0)
    state.announce_host(B, 0.0)
    state.announce_host(C, 0.0)
    a, b, c = (state.host(info.id) for info in (A, B, C))
    a.info = HostInfo("alpha", "10.0.0.9")
    b.state = HostState.LEFT
    c.disconnected_at = 1.0
    problems = state.invariant_violations()
    assert f"host {A.id} holds the info of 10.0.0.9-alpha" in problems
    assert f"host {B.id} is kept in state left" in problems
    assert f"host {C.id}: disconnected_at disagrees with HostState.CONNECTED" in problems
    assert (
        "host state counts {<HostState.CONNECTED: 'connected'>: 3} != "
        "{<HostState.CONNECTED: 'connected'>: 2, <HostState.LEFT: 'left'>: 1}"
    ) in problems
    assert len(problems) == 4


def test_the_host_self_check_notices_a_stale_hostname_index() -> None:
    state, _ = scripted_state()
    state.announce_host(A, 0.0)
    state.host(A.id).info = HostInfo("alpha", "10.0.0.1", port=1)  # same id and name: fine
    assert state.invariant_violations() == []
    state._hosts._by_hostname["alpha"].add("stale")
    assert state.invariant_violations() == [
        "hosts-by-hostname index disagrees with the host records"
    ]


# --- tasks ------------------------------------------------------------------------------------


def test_a_task_is_created_by_its_first_peer_with_what_that_peer_says() -> None:
    state, script = scripted_state()
    state.announce_host(A, 0.0)
    info = TaskInfo("t1", url="https://x.invalid/f", piece_length=1024, content_length=5000)
    events = state.register_peer("p1", A.id, info, 3.0, back_to_source_limit=7)
    assert events[0] == TaskCreated("t1", 3.0)
    task = state.task("t1")
    assert (task.url, task.piece_length, task.content_length, task.total_piece_count) == (
        "https://x.invalid/f",
        1024,
        5000,
        -1,
    )
    assert (task.created_at, task.updated_at, task.back_to_source_limit) == (3.0, 3.0, 7)
    assert ("t1", 3.0) in script.asked("task_expiry")
    state.register_peer("p2", A.id, info, 4.0)
    assert task.updated_at == 4.0
    assert task.created_at == 3.0


@pytest.mark.parametrize(
    ("known", "told", "kept"),
    [
        (-1, 0, 0),  # an unknown size is learnt, even an empty one
        (-1, 9, 9),
        (-1, -1, -1),
        (0, 9, 0),  # a known size is never overwritten
        (5, -1, 5),
        (5, 9, 5),
    ],
)
def test_a_task_learns_its_size_only_while_it_does_not_know_it(
    known: int, told: int, kept: int
) -> None:
    state, _ = scripted_state()
    state.announce_host(A, 0.0)
    state.register_peer("p1", A.id, TaskInfo("t1", content_length=known), 0.0)
    state.register_peer("p2", A.id, TaskInfo("t1", content_length=told), 1.0)
    assert state.task("t1").content_length == kept
    state.register_peer("p3", A.id, TaskInfo("t2", total_piece_count=known), 0.0)
    state.register_peer("p4", A.id, TaskInfo("t2", total_piece_count=told), 1.0)
    assert state.task("t2").total_piece_count == kept


def test_a_task_is_asked_about_again_whenever_one_of_its_peers_changes() -> None:
    state, script = scripted_state()
    state.announce_host(A, 0.0)
    state.register_peer("p1", A.id, TaskInfo("t1"), 0.0)
    del script.calls[:]
    state.start_download("p1", 2.0)
    assert script.asked("task_expiry") == [("t1", 2.0)]
    assert state.task("t1").updated_at == 2.0


def test_an_evicted_task_reads_leave_and_its_eviction_names_it() -> None:
    state, script = scripted_state()
    state.announce_host(A, 0.0)
    state.register_peer("p1", A.id, TaskInfo("t1"), 1.0)
    state.register_peer("p2", A.id, TaskInfo("t1"), 2.0)
    task = state.task("t1")
    script.expiries["t1"] = Expiry(8.0, "idle")
    state.start_download("p1", 3.0)
    events = state.collect_expired(9.0)
    peers_gone = [e for e in events if isinstance(e, Eviction) and e.kind is RecordKind.PEER]
    assert [(e.record_id, e.reason, e.at) for e in peers_gone] == [
        ("p1", "task_evicted", 9.0),
        ("p2", "task_evicted", 9.0),
    ]
    eviction = events[-1]
    assert eviction == Eviction(
        kind=TASK,
        record_id="t1",
        reason="idle",
        at=9.0,
        last_contact=3.0,  # the last change of the task before its eviction
        deadline=8.0,
        task_id="t1",
    )
    assert task.state is TaskState.LEAVE
    assert script.evictions[-1] == eviction
    assert state.task_counts_by_state()[TaskState.RUNNING] == 0
    assert state.invariant_violations() == []


def test_task_counts_follow_each_task_exactly() -> None:
    state, _ = scripted_state()
    state.announce_host(A, 0.0)
    for n in range(3):
        state.register_peer(f"p{n}", A.id, TaskInfo(f"t{n}"), 0.0)
    state.start_download("p0", 1.0)
    counts = state.task_counts_by_state()
    assert (counts[TaskState.PENDING], counts[TaskState.RUNNING]) == (2, 1)
    state.start_download("p1", 1.0)
    counts = state.task_counts_by_state()
    assert (counts[TaskState.PENDING], counts[TaskState.RUNNING]) == (1, 2)


def test_the_task_self_check_names_each_disagreement() -> None:
    state, _ = scripted_state()
    state.announce_host(A, 0.0)
    state.register_peer("p1", A.id, TaskInfo("t1"), 0.0)
    state.register_peer("p2", A.id, TaskInfo("t2"), 0.0)
    state.register_peer("p3", A.id, TaskInfo("t3"), 0.0)
    state.back_to_source("p3", 1.0)
    assert state.peer("p3").state is PeerState.BACK_TO_SOURCE
    assert state.invariant_violations() == []
    state.task("t1").state = TaskState.LEAVE
    state.task("t2").back_to_source_count = 2
    problems = state.invariant_violations()
    assert "task t1 is kept in state leave" in problems
    assert "task t2: back_to_source_count 2" in problems
    assert (
        "task state counts {<TaskState.PENDING: 'pending'>: 2, "
        "<TaskState.RUNNING: 'running'>: 1} != {<TaskState.LEAVE: 'leave'>: 1, "
        "<TaskState.PENDING: 'pending'>: 1, <TaskState.RUNNING: 'running'>: 1}"
    ) in problems
    assert len(problems) == 3


def test_while_a_new_peer_is_judged_its_task_already_reads_the_registration_time() -> None:
    state, script = scripted_state()
    seen: list[float] = []

    def peer_expiry(peer: Peer, view: StateView, now: float) -> None:
        seen.append(view.task(peer.task_id).updated_at)

    script.answers[RecordKind.PEER] = peer_expiry
    state.announce_host(A, 0.0)
    state.register_peer("p1", A.id, TaskInfo("t1"), 2.0)  # creates t1
    state.register_peer("p2", A.id, TaskInfo("t1"), 5.0)  # joins it
    assert seen == [2.0, 5.0]
