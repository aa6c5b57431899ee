"""Lifecycles as data.

Rules of this file:

* every state and every event is an ``Enum`` member;
* a lifecycle is a table ``{state: {event: new_state}}``; nothing else decides
  whether a transition is legal;
* :func:`transition` only *computes* the new state. It raises
  :class:`IllegalTransition` for a pair missing from the table, and the caller
  assigns the result only after it returned, so an illegal event changes nothing;
* which event a change is (the size scope of a new peer, whether a peer's
  failure fails its task) is decided by the plain functions at the end of this
  file, never by the ledgers that apply it.

The peer and task tables follow Dragonfly's scheduler FSMs.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from typing import Final, TypeVar

from ._errors import IllegalTransition


class IdentityEnum(enum.Enum):
    """An ``Enum`` hashed in C, by identity.

    ``enum.Enum.__hash__`` is a Python method (``hash(self._name_)``), and the states,
    events and kinds below key dictionaries on every message: the state counters, the
    transition tables, the deadline queues. Members are singletons that compare by
    identity (``Enum`` defines no ``__eq__``), so the object's own hash agrees with
    equality, at about a quarter of the cost (30 against 109 ns on the benchmark machine).
    """

    __hash__ = object.__hash__


class HostState(IdentityEnum):
    """Connection state of a host. An evicted host is removed, not kept in a state."""

    CONNECTED = "connected"
    DISCONNECTED = "disconnected"
    LEFT = "left"


class HostEvent(IdentityEnum):
    ANNOUNCE = "announce"
    DISCONNECT = "disconnect"
    LEAVE = "leave"


class PeerState(IdentityEnum):
    PENDING = "pending"
    RECEIVED_EMPTY = "received_empty"
    RECEIVED_TINY = "received_tiny"
    RECEIVED_SMALL = "received_small"
    RECEIVED_NORMAL = "received_normal"
    RUNNING = "running"
    BACK_TO_SOURCE = "back_to_source"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    LEAVE = "leave"


class PeerEvent(IdentityEnum):
    REGISTER_EMPTY = "register_empty"
    REGISTER_TINY = "register_tiny"
    REGISTER_SMALL = "register_small"
    REGISTER_NORMAL = "register_normal"
    DOWNLOAD = "download"
    DOWNLOAD_BACK_TO_SOURCE = "download_back_to_source"
    DOWNLOAD_SUCCEEDED = "download_succeeded"
    DOWNLOAD_FAILED = "download_failed"
    LEAVE = "leave"


class TaskState(IdentityEnum):
    PENDING = "pending"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    LEAVE = "leave"


class TaskEvent(IdentityEnum):
    DOWNLOAD = "download"
    DOWNLOAD_SUCCEEDED = "download_succeeded"
    DOWNLOAD_FAILED = "download_failed"
    LEAVE = "leave"


HOST_TRANSITIONS: Mapping[HostState, Mapping[HostEvent, HostState]] = {
    HostState.CONNECTED: {
        HostEvent.ANNOUNCE: HostState.CONNECTED,
        HostEvent.DISCONNECT: HostState.DISCONNECTED,
        HostEvent.LEAVE: HostState.LEFT,
    },
    HostState.DISCONNECTED: {
        # A new session announcing the same host id is a reconnect.
        HostEvent.ANNOUNCE: HostState.CONNECTED,
        HostEvent.LEAVE: HostState.LEFT,
    },
    HostState.LEFT: {},
}

_RECEIVED = (
    PeerState.RECEIVED_EMPTY,
    PeerState.RECEIVED_TINY,
    PeerState.RECEIVED_SMALL,
    PeerState.RECEIVED_NORMAL,
)
#: Registered, not yet downloading (from parents or from the origin).
RECEIVED_PEER_STATES: Final = frozenset(_RECEIVED)


def _peer_table() -> dict[PeerState, dict[PeerEvent, PeerState]]:
    table: dict[PeerState, dict[PeerEvent, PeerState]] = {s: {} for s in PeerState}
    table[PeerState.PENDING].update(
        {
            PeerEvent.REGISTER_EMPTY: PeerState.RECEIVED_EMPTY,
            PeerEvent.REGISTER_TINY: PeerState.RECEIVED_TINY,
            PeerEvent.REGISTER_SMALL: PeerState.RECEIVED_SMALL,
            PeerEvent.REGISTER_NORMAL: PeerState.RECEIVED_NORMAL,
            PeerEvent.DOWNLOAD_FAILED: PeerState.FAILED,
        }
    )
    # The protocol's order (docs/protocol.md, "Peer progress"): a peer finishes only
    # after it started (from parents or the origin), and an ended peer stays ended.
    for received in _RECEIVED:
        table[received].update(
            {
                PeerEvent.DOWNLOAD: PeerState.RUNNING,
                PeerEvent.DOWNLOAD_BACK_TO_SOURCE: PeerState.BACK_TO_SOURCE,
                PeerEvent.DOWNLOAD_FAILED: PeerState.FAILED,
            }
        )
    table[PeerState.RUNNING].update(
        {
            PeerEvent.DOWNLOAD_BACK_TO_SOURCE: PeerState.BACK_TO_SOURCE,
            PeerEvent.DOWNLOAD_SUCCEEDED: PeerState.SUCCEEDED,
            PeerEvent.DOWNLOAD_FAILED: PeerState.FAILED,
        }
    )
    table[PeerState.BACK_TO_SOURCE].update(
        {
            PeerEvent.DOWNLOAD_SUCCEEDED: PeerState.SUCCEEDED,
            PeerEvent.DOWNLOAD_FAILED: PeerState.FAILED,
        }
    )
    for state in PeerState:
        if state is not PeerState.LEAVE:
            table[state][PeerEvent.LEAVE] = PeerState.LEAVE
    return table


PEER_TRANSITIONS: Mapping[PeerState, Mapping[PeerEvent, PeerState]] = _peer_table()

TASK_TRANSITIONS: Mapping[TaskState, Mapping[TaskEvent, TaskState]] = {
    TaskState.PENDING: {
        TaskEvent.DOWNLOAD: TaskState.RUNNING,
        TaskEvent.LEAVE: TaskState.LEAVE,
    },
    TaskState.RUNNING: {
        TaskEvent.DOWNLOAD_SUCCEEDED: TaskState.SUCCEEDED,
        TaskEvent.DOWNLOAD_FAILED: TaskState.FAILED,
        TaskEvent.LEAVE: TaskState.LEAVE,
    },
    TaskState.SUCCEEDED: {
        TaskEvent.DOWNLOAD: TaskState.RUNNING,
        TaskEvent.LEAVE: TaskState.LEAVE,
    },
    TaskState.FAILED: {
        TaskEvent.DOWNLOAD: TaskState.RUNNING,
        TaskEvent.DOWNLOAD_SUCCEEDED: TaskState.SUCCEEDED,
        TaskEvent.LEAVE: TaskState.LEAVE,
    },
    TaskState.LEAVE: {},
}

#: Peer states in which a peer is still downloading (piece-progress timeouts apply).
ACTIVE_PEER_STATES = frozenset({PeerState.RUNNING, PeerState.BACK_TO_SOURCE})

#: Peer states that keep a running task alive: still downloading, or able to serve it.
SERVING_PEER_STATES = ACTIVE_PEER_STATES | {PeerState.SUCCEEDED}

#: Dragonfly's "tiny" size scope: content this small travels in the register reply.
TINY_TASK_BYTES: Final = 128

S = TypeVar("S", bound=enum.Enum)
E = TypeVar("E", bound=enum.Enum)


def transition(machine: str, table: Mapping[S, Mapping[E, S]], state: S, event: E) -> S:
    """Return the state that ``event`` leads to from ``state``; raise if the table forbids it."""
    try:
        return table[state][event]
    except KeyError:
        raise IllegalTransition(machine, state.value, event.value) from None


# --- which event a change is ----------------------------------------------------------


def register_event(content_length: int, total_piece_count: int) -> PeerEvent:
    """Dragonfly's size scope decides which Received state a new peer enters.

    ``content_length`` and ``total_piece_count`` are the task's (-1: unknown).
    """
    if content_length == 0:
        return PeerEvent.REGISTER_EMPTY
    if 1 <= content_length <= TINY_TASK_BYTES:
        return PeerEvent.REGISTER_TINY
    if total_piece_count == 1:
        return PeerEvent.REGISTER_SMALL
    return PeerEvent.REGISTER_NORMAL


def task_transition(state: TaskState, event: TaskEvent) -> TaskState:
    """:func:`transition` on the task table (an illegal event names the ``task`` machine)."""
    return transition("task", TASK_TRANSITIONS, state, event)


def task_after_peer_started(state: TaskState) -> TaskState:
    """A peer starts downloading (from parents or from the source): the task runs."""
    if state is TaskState.RUNNING:
        return state
    return task_transition(state, TaskEvent.DOWNLOAD)


def task_after_peer_succeeded(state: TaskState) -> TaskState:
    """A peer finished: the task has succeeded (a tiny task can finish without running)."""
    if state is TaskState.PENDING:
        state = task_transition(state, TaskEvent.DOWNLOAD)
    if state is not TaskState.SUCCEEDED:
        state = task_transition(state, TaskEvent.DOWNLOAD_SUCCEEDED)
    return state


def task_after_peer_failed(state: TaskState, other_peers: Iterable[PeerState]) -> TaskState:
    """A peer failed: a running task fails when none of its other peers serves or downloads."""
    if state is not TaskState.RUNNING or any(s in SERVING_PEER_STATES for s in other_peers):
        return state
    return task_transition(state, TaskEvent.DOWNLOAD_FAILED)
