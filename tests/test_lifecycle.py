"""Lifecycles are tables: legal events move, illegal ones raise and change nothing."""

from __future__ import annotations

import pickle
from collections.abc import Callable

import pytest

from scheduler.core import (
    HOST_TRANSITIONS,
    PEER_TRANSITIONS,
    TASK_TRANSITIONS,
    HostEvent,
    HostInfo,
    HostState,
    HostType,
    IllegalTransition,
    PeerEvent,
    PeerState,
    RecordKind,
    SchedulerState,
    TaskEvent,
    TaskInfo,
    TaskState,
    transition,
)
from scheduler.core._lifecycle import (
    TINY_TASK_BYTES,
    register_event,
    task_after_peer_failed,
    task_after_peer_started,
    task_after_peer_succeeded,
)
from scheduler.policies import load_policies

TABLES = [
    ("host", HOST_TRANSITIONS, HostState, HostEvent),
    ("peer", PEER_TRANSITIONS, PeerState, PeerEvent),
    ("task", TASK_TRANSITIONS, TaskState, TaskEvent),
]


@pytest.mark.parametrize(("machine", "table", "states", "events"), TABLES)
def test_every_state_has_a_row_and_every_pair_is_decided_by_the_table(
    machine: str, table: dict, states: type, events: type
) -> None:
    assert set(table) == set(states)
    for state in states:
        for event in events:
            if event in table[state]:
                assert transition(machine, table, state, event) is table[state][event]
            else:
                with pytest.raises(IllegalTransition) as info:
                    transition(machine, table, state, event)
                assert info.value.state == state.value
                assert info.value.event == event.value


def test_leave_is_reachable_from_every_live_peer_state_and_terminal() -> None:
    for state in PeerState:
        if state is PeerState.LEAVE:
            assert PEER_TRANSITIONS[state] == {}
        else:
            assert PEER_TRANSITIONS[state][PeerEvent.LEAVE] is PeerState.LEAVE


def test_dragonfly_peer_path() -> None:
    state = PeerState.PENDING
    for event in (PeerEvent.REGISTER_NORMAL, PeerEvent.DOWNLOAD, PeerEvent.DOWNLOAD_SUCCEEDED):
        state = transition("peer", PEER_TRANSITIONS, state, event)
    assert state is PeerState.SUCCEEDED


def _state() -> SchedulerState:
    return SchedulerState(load_policies(entrypoints=False), now=0.0)


def test_illegal_transition_leaves_peer_task_and_deadline_untouched() -> None:
    state = _state()
    state.announce_host(HostInfo("h", "10.0.0.1"), 0.0, interval=30)
    state.register_peer("p", "10.0.0.1-h", TaskInfo("t", total_piece_count=4), 1.0)
    state.start_download("p", 2.0)
    state.finish_download("p", 3.0)
    peer, task = state.peer("p"), state.task("t")
    snapshot = (peer.state, peer.updated_at, task.state, task.updated_at)
    deadline = state.deadline_of(RecordKind.PEER, "p")
    with pytest.raises(IllegalTransition):
        state.start_download("p", 4.0)
    assert (peer.state, peer.updated_at, task.state, task.updated_at) == snapshot
    assert peer.state is PeerState.SUCCEEDED
    assert task.state is TaskState.SUCCEEDED
    assert state.deadline_of(RecordKind.PEER, "p") == deadline


def test_piece_report_outside_a_download_is_rejected_without_change() -> None:
    state = _state()
    state.announce_host(HostInfo("h", "10.0.0.1"), 0.0, interval=30)
    state.register_peer("p", "10.0.0.1-h", TaskInfo("t", total_piece_count=4), 1.0)
    with pytest.raises(IllegalTransition):
        state.finish_pieces("p", [0], 2.0)
    assert len(state.peer("p").finished_pieces) == 0
    assert state.peer("p").updated_at == 1.0


def test_disconnect_twice_is_illegal_and_keeps_the_first_disconnect_time() -> None:
    state = _state()
    state.announce_host(HostInfo("h", "10.0.0.1"), 0.0, interval=30)
    state.disconnect_host("10.0.0.1-h", 1.0)
    with pytest.raises(IllegalTransition):
        state.disconnect_host("10.0.0.1-h", 2.0)
    host = state.host("10.0.0.1-h")
    assert host.state is HostState.DISCONNECTED
    assert host.disconnected_at == 1.0


# --- which event a change is -----------------------------------------------------


@pytest.mark.parametrize(
    ("content_length", "total_piece_count", "event"),
    [
        (0, -1, PeerEvent.REGISTER_EMPTY),
        (0, 1, PeerEvent.REGISTER_EMPTY),
        (1, 1, PeerEvent.REGISTER_TINY),
        (TINY_TASK_BYTES, 1, PeerEvent.REGISTER_TINY),
        (TINY_TASK_BYTES + 1, 1, PeerEvent.REGISTER_SMALL),
        (TINY_TASK_BYTES + 1, 2, PeerEvent.REGISTER_NORMAL),
        (TINY_TASK_BYTES + 1, 0, PeerEvent.REGISTER_NORMAL),
        (-1, 1, PeerEvent.REGISTER_SMALL),  # unknown size, one piece
        (-1, -1, PeerEvent.REGISTER_NORMAL),
        (-1, 2, PeerEvent.REGISTER_NORMAL),
    ],
)
def test_the_size_scope_picks_the_register_event(
    content_length: int, total_piece_count: int, event: PeerEvent
) -> None:
    assert register_event(content_length, total_piece_count) is event


def test_tiny_means_at_most_128_bytes() -> None:
    assert TINY_TASK_BYTES == 128


@pytest.mark.parametrize(
    ("before", "after"),
    [
        (TaskState.PENDING, TaskState.RUNNING),
        (TaskState.RUNNING, TaskState.RUNNING),
        (TaskState.SUCCEEDED, TaskState.RUNNING),
        (TaskState.FAILED, TaskState.RUNNING),
    ],
)
def test_a_started_peer_makes_the_task_run(before: TaskState, after: TaskState) -> None:
    assert task_after_peer_started(before) is after


@pytest.mark.parametrize(
    ("before", "after"),
    [
        (TaskState.PENDING, TaskState.SUCCEEDED),  # a tiny task finishes without running
        (TaskState.RUNNING, TaskState.SUCCEEDED),
        (TaskState.SUCCEEDED, TaskState.SUCCEEDED),
        (TaskState.FAILED, TaskState.SUCCEEDED),
    ],
)
def test_a_succeeded_peer_makes_the_task_succeed(before: TaskState, after: TaskState) -> None:
    assert task_after_peer_succeeded(before) is after


@pytest.mark.parametrize("rule", [task_after_peer_started, task_after_peer_succeeded])
def test_a_task_that_left_cannot_change_and_the_error_names_the_task_machine(
    rule: Callable[[TaskState], TaskState],
) -> None:
    with pytest.raises(IllegalTransition) as info:
        rule(TaskState.LEAVE)
    assert info.value.machine == "task"
    assert info.value.state == TaskState.LEAVE.value


def test_a_failed_peer_fails_a_running_task_only_when_no_other_peer_serves() -> None:
    assert task_after_peer_failed(TaskState.RUNNING, []) is TaskState.FAILED
    idle_others = [PeerState.FAILED, PeerState.PENDING, PeerState.RECEIVED_NORMAL]
    assert task_after_peer_failed(TaskState.RUNNING, idle_others) is TaskState.FAILED
    for serving in (PeerState.RUNNING, PeerState.BACK_TO_SOURCE, PeerState.SUCCEEDED):
        others = [PeerState.FAILED, serving]
        assert task_after_peer_failed(TaskState.RUNNING, others) is TaskState.RUNNING


@pytest.mark.parametrize("state", [TaskState.PENDING, TaskState.SUCCEEDED, TaskState.FAILED])
def test_a_failed_peer_leaves_a_task_that_is_not_running_as_it_is(state: TaskState) -> None:
    assert task_after_peer_failed(state, []) is state
    assert task_after_peer_failed(state, [PeerState.RUNNING]) is state


@pytest.mark.parametrize(
    "enum_type",
    [HostState, HostEvent, PeerState, PeerEvent, TaskState, TaskEvent, HostType, RecordKind],
)
def test_lifecycle_enums_key_dicts_by_identity_and_survive_pickling(enum_type: type) -> None:
    # IdentityEnum hashes members by identity (in C); equality is identity too, so
    # every member finds itself, a pickled copy is the same member, and no member
    # collides with its own value or name.
    table = {member: member.value for member in enum_type}
    for member in enum_type:
        copy = pickle.loads(pickle.dumps(member))
        assert copy is member
        assert table[copy] == member.value
        assert member.value not in table
        assert member.name not in table
    assert len(table) == len(list(enum_type))
