"""The lifecycle tables, entry by entry, against an independent statement of them.

mutmut does not mutate module-level code, and the peer table is built once at
import, before a mutant is switched on. So the allowed transitions are written
out here as literal (state, event, new state) triples, and each table, and the
function that builds the peer table, must match them exactly: adding, removing
or redirecting any entry fails a test.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping

import pytest

from scheduler.core import (
    ACTIVE_PEER_STATES,
    HOST_TRANSITIONS,
    PEER_TRANSITIONS,
    TASK_TRANSITIONS,
    HostEvent,
    HostState,
    IllegalTransition,
    PeerEvent,
    PeerState,
    TaskEvent,
    TaskState,
    transition,
)
from scheduler.core._lifecycle import _peer_table

H, HE = HostState, HostEvent
P, PE = PeerState, PeerEvent
T, TE = TaskState, TaskEvent

HOST_ALLOWED = {
    (H.CONNECTED, HE.ANNOUNCE, H.CONNECTED),
    (H.CONNECTED, HE.DISCONNECT, H.DISCONNECTED),
    (H.CONNECTED, HE.LEAVE, H.LEFT),
    (H.DISCONNECTED, HE.ANNOUNCE, H.CONNECTED),
    (H.DISCONNECTED, HE.LEAVE, H.LEFT),
}

#: The protocol's order: finishing needs a started download; an ended peer stays ended.
PEER_ALLOWED = {
    (P.PENDING, PE.REGISTER_EMPTY, P.RECEIVED_EMPTY),
    (P.PENDING, PE.REGISTER_TINY, P.RECEIVED_TINY),
    (P.PENDING, PE.REGISTER_SMALL, P.RECEIVED_SMALL),
    (P.PENDING, PE.REGISTER_NORMAL, P.RECEIVED_NORMAL),
    (P.PENDING, PE.DOWNLOAD_FAILED, P.FAILED),
    (P.PENDING, PE.LEAVE, P.LEAVE),
    (P.RECEIVED_EMPTY, PE.DOWNLOAD, P.RUNNING),
    (P.RECEIVED_EMPTY, PE.DOWNLOAD_BACK_TO_SOURCE, P.BACK_TO_SOURCE),
    (P.RECEIVED_EMPTY, PE.DOWNLOAD_FAILED, P.FAILED),
    (P.RECEIVED_EMPTY, PE.LEAVE, P.LEAVE),
    (P.RECEIVED_TINY, PE.DOWNLOAD, P.RUNNING),
    (P.RECEIVED_TINY, PE.DOWNLOAD_BACK_TO_SOURCE, P.BACK_TO_SOURCE),
    (P.RECEIVED_TINY, PE.DOWNLOAD_FAILED, P.FAILED),
    (P.RECEIVED_TINY, PE.LEAVE, P.LEAVE),
    (P.RECEIVED_SMALL, PE.DOWNLOAD, P.RUNNING),
    (P.RECEIVED_SMALL, PE.DOWNLOAD_BACK_TO_SOURCE, P.BACK_TO_SOURCE),
    (P.RECEIVED_SMALL, PE.DOWNLOAD_FAILED, P.FAILED),
    (P.RECEIVED_SMALL, PE.LEAVE, P.LEAVE),
    (P.RECEIVED_NORMAL, PE.DOWNLOAD, P.RUNNING),
    (P.RECEIVED_NORMAL, PE.DOWNLOAD_BACK_TO_SOURCE, P.BACK_TO_SOURCE),
    (P.RECEIVED_NORMAL, PE.DOWNLOAD_FAILED, P.FAILED),
    (P.RECEIVED_NORMAL, PE.LEAVE, P.LEAVE),
    (P.RUNNING, PE.DOWNLOAD_BACK_TO_SOURCE, P.BACK_TO_SOURCE),
    (P.RUNNING, PE.DOWNLOAD_SUCCEEDED, P.SUCCEEDED),
    (P.RUNNING, PE.DOWNLOAD_FAILED, P.FAILED),
    (P.RUNNING, PE.LEAVE, P.LEAVE),
    (P.BACK_TO_SOURCE, PE.DOWNLOAD_SUCCEEDED, P.SUCCEEDED),
    (P.BACK_TO_SOURCE, PE.DOWNLOAD_FAILED, P.FAILED),
    (P.BACK_TO_SOURCE, PE.LEAVE, P.LEAVE),
    (P.SUCCEEDED, PE.LEAVE, P.LEAVE),
    (P.FAILED, PE.LEAVE, P.LEAVE),
}

TASK_ALLOWED = {
    (T.PENDING, TE.DOWNLOAD, T.RUNNING),
    (T.PENDING, TE.LEAVE, T.LEAVE),
    (T.RUNNING, TE.DOWNLOAD_SUCCEEDED, T.SUCCEEDED),
    (T.RUNNING, TE.DOWNLOAD_FAILED, T.FAILED),
    (T.RUNNING, TE.LEAVE, T.LEAVE),
    (T.SUCCEEDED, TE.DOWNLOAD, T.RUNNING),
    (T.SUCCEEDED, TE.LEAVE, T.LEAVE),
    (T.FAILED, TE.DOWNLOAD, T.RUNNING),
    (T.FAILED, TE.DOWNLOAD_SUCCEEDED, T.SUCCEEDED),
    (T.FAILED, TE.LEAVE, T.LEAVE),
}

#: A peer in one of these states is still downloading (piece-progress timeouts apply).
ACTIVE = {P.RUNNING, P.BACK_TO_SOURCE}

Table = Mapping[enum.Enum, Mapping[enum.Enum, enum.Enum]]

MACHINES = [
    pytest.param("host", HOST_TRANSITIONS, HOST_ALLOWED, HostState, HostEvent, id="host"),
    pytest.param("peer", PEER_TRANSITIONS, PEER_ALLOWED, PeerState, PeerEvent, id="peer"),
    pytest.param("peer", _peer_table(), PEER_ALLOWED, PeerState, PeerEvent, id="peer-builder"),
    pytest.param("task", TASK_TRANSITIONS, TASK_ALLOWED, TaskState, TaskEvent, id="task"),
]


def entries(table: Table) -> set[tuple[enum.Enum, enum.Enum, enum.Enum]]:
    return {(state, event, new) for state, row in table.items() for event, new in row.items()}


@pytest.mark.parametrize(("machine", "table", "allowed", "states", "events"), MACHINES)
def test_the_table_holds_exactly_the_allowed_transitions(
    machine: str, table: Table, allowed: set[tuple[enum.Enum, ...]], states: type, events: type
) -> None:
    assert set(table) == set(states), "every state has a row, terminal states an empty one"
    assert entries(table) - allowed == set(), "transitions the table must not allow"
    assert allowed - entries(table) == set(), "transitions missing from the table"


def test_the_peer_table_is_built_afresh_by_its_builder() -> None:
    # PEER_TRANSITIONS is built once at import; check the builder when called now,
    # so a change to it cannot hide behind the table computed before the change.
    assert entries(_peer_table()) == PEER_ALLOWED
    assert set(_peer_table()) == set(PeerState)


@pytest.mark.parametrize(("machine", "table", "allowed", "states", "events"), MACHINES)
def test_transition_follows_the_table_and_names_the_illegal_pair(
    machine: str, table: Table, allowed: set[tuple[enum.Enum, ...]], states: type, events: type
) -> None:
    legal = {(state, event): new for state, event, new in allowed}
    for state in states:
        for event in events:
            if (state, event) in legal:
                assert transition(machine, table, state, event) is legal[state, event]
                continue
            with pytest.raises(IllegalTransition) as info:
                transition(machine, table, state, event)
            error = info.value
            assert (error.machine, error.state, error.event) == (machine, state.value, event.value)
            message = f"{machine}: event {event.value} is not allowed in state {state.value}"
            assert str(error) == message
            # The table lookup's KeyError is an implementation detail: not chained.
            assert error.__cause__ is None
            assert error.__suppress_context__ is True


def test_the_active_peer_states_are_the_downloading_ones() -> None:
    assert set(ACTIVE_PEER_STATES) == ACTIVE
    assert isinstance(ACTIVE_PEER_STATES, frozenset)
