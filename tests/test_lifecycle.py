"""Lifecycles are tables: legal events move, illegal ones raise and change nothing."""

from __future__ import annotations

import pytest

from scheduler.core import (
    HOST_TRANSITIONS,
    PEER_TRANSITIONS,
    TASK_TRANSITIONS,
    HostEvent,
    HostInfo,
    HostState,
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
