"""The ledgers behind SchedulerState: the read-only view hooks get, host info, reconnect grace."""

from __future__ import annotations

import ast
import inspect
from typing import Any

import attrs
import pytest

import scheduler.hookspecs
from scheduler import hookimpl
from scheduler.core import (
    Expiry,
    Host,
    HostInfo,
    HostState,
    NotFound,
    PolicySet,
    RecordKind,
    SchedulerState,
    StateView,
    Task,
    TaskInfo,
    TaskState,
)
from scheduler.core._lifecycle import (
    PeerEvent,
    PeerState,
    register_event,
    task_after_peer_failed,
    task_after_peer_started,
    task_after_peer_succeeded,
)
from scheduler.policies import builtin_plugins, load_policies

A = HostInfo("alpha", "10.0.0.1", port=8001, stats={"load": 0.5})
TASK = TaskInfo("t1", total_piece_count=10)


def builtins(**config: Any) -> SchedulerState:
    return SchedulerState(load_policies(entrypoints=False, config=config), now=0.0)


# --- reconnect_grace ------------------------------------------------------------------------


@pytest.mark.parametrize("grace", [5.0, 7.5])
def test_reconnect_grace_is_the_disconnect_grace_the_builtins_apply(grace: float) -> None:
    state = builtins(disconnect_grace={"reconnect_grace": grace})
    state.announce_host(A, 0.0, interval=30)
    assert state.reconnect_grace(A.id, 10.0) == grace
    # It is what a real disconnect then gets.
    state.disconnect_host(A.id, 10.0)
    assert state.deadline_of(RecordKind.HOST, A.id) == Expiry(10.0 + grace, "disconnected")


def test_reconnect_grace_is_cut_short_by_an_earlier_deadline() -> None:
    state = builtins()
    state.announce_host(A, 0.0, interval=30)  # announce TTL: evicted at 60 whatever happens
    assert state.reconnect_grace(A.id, 58.0) == 2.0


def test_reconnect_grace_changes_nothing() -> None:
    calls: list[str] = []

    class Recorder:
        name = "recorder"

        @hookimpl
        def scheduler_host_disconnected(self, host: Host) -> None:
            calls.append(host.id)

    state = SchedulerState(PolicySet.from_plugins([*builtin_plugins(), Recorder()]), now=0.0)
    state.announce_host(A, 0.0, interval=30)
    held = state.deadline_of(RecordKind.HOST, A.id)
    assert state.reconnect_grace(A.id, 10.0) == 5.0
    host = state.host(A.id)
    assert (host.state, host.disconnected_at) == (HostState.CONNECTED, None)
    assert state.deadline_of(RecordKind.HOST, A.id) == held
    assert state.host_counts_by_state()[HostState.DISCONNECTED] == 0
    assert calls == []
    assert state.invariant_violations() == []


def test_reconnect_grace_asks_about_a_copy_that_differs_only_in_being_disconnected() -> None:
    asked: list[Host] = []

    class Asked:
        name = "asked"

        @hookimpl
        def scheduler_host_expiry(self, host: Host) -> None:
            asked.append(host)

    state = SchedulerState(PolicySet.from_plugins([Asked()]), now=0.0)
    state.announce_host(A, 0.0, interval=30)
    host = state.host(A.id)
    host.upload_count, host.concurrent_upload_count = 3, 1
    del asked[:]
    state.reconnect_grace(A.id, 10.0)
    (copy,) = asked
    assert copy is not host
    expected = {**attrs.asdict(host, recurse=False), "state": HostState.DISCONNECTED}
    assert attrs.asdict(copy, recurse=False) == {**expected, "disconnected_at": 10.0}


def test_reconnect_grace_is_none_when_no_policy_evicts_a_disconnected_host() -> None:
    state = SchedulerState(PolicySet.from_plugins([]), now=0.0)
    state.announce_host(A, 0.0, interval=30)
    assert state.reconnect_grace(A.id, 10.0) is None
    with pytest.raises(NotFound):
        state.reconnect_grace("nobody", 10.0)


def test_reconnect_grace_never_goes_negative() -> None:
    state = builtins()
    state.announce_host(A, 0.0, interval=30)  # due at 60; the GC has not run yet at 100
    assert state.reconnect_grace(A.id, 100.0) == 0.0


# --- the view -------------------------------------------------------------------------------


class Spy:
    """Keeps the ``view`` every decision hook receives."""

    name = "spy"

    def __init__(self) -> None:
        self.views: list[object] = []

    @hookimpl
    def scheduler_host_expiry(self, view: StateView) -> None:
        self.views.append(view)

    @hookimpl
    def scheduler_task_expiry(self, task: Task, view: StateView) -> None:
        self.views.append(view)

    @hookimpl
    def scheduler_sweep(self, view: StateView) -> None:
        self.views.append(view)

    @hookimpl
    def scheduler_host_supersedes(self, view: StateView) -> None:
        self.views.append(view)


def test_hooks_get_a_view_without_mutators() -> None:
    spy = Spy()
    state = SchedulerState(PolicySet.from_plugins([*builtin_plugins(), spy]), now=0.0)
    state.announce_host(A, 0.0, interval=30)
    state.register_peer("p1", A.id, TASK, 1.0)
    state.sweep(2.0, RecordKind.TASK)
    assert spy.views
    assert all(view is state.view for view in spy.views)
    view = state.view
    assert view is not state
    for mutator in ("evict", "announce_host", "leave_host", "register_peer", "collect_expired"):
        assert not hasattr(view, mutator), mutator
    # It answers what the state answers.
    assert view.host(A.id) is state.host(A.id)
    assert [p.id for p in view.peers_of_task("t1")] == ["p1"]
    assert view.peer_count_of_host(A.id) == 1
    assert view.host_ids_by_hostname("alpha") == frozenset({A.id})
    assert view.deadline_of(RecordKind.HOST, A.id) == state.deadline_of(RecordKind.HOST, A.id)


def test_hookspecs_name_the_view_and_never_the_mutable_state() -> None:
    source = inspect.getsource(scheduler.hookspecs)
    assert "SchedulerState" not in source
    imported = {
        node.module
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.ImportFrom) and node.module and "core" in node.module
    }
    assert imported == {
        "core._decision",
        "core._events",
        "core._lifecycle",
        "core._model",
        "core._view",
    }


def test_every_view_member_is_on_the_state_too() -> None:
    members = {name for name in vars(StateView) if not name.startswith("_")}
    assert members
    state = builtins()
    for name in members:
        assert callable(getattr(state.view, name)), name
        assert callable(getattr(state, name)), name


# --- host info ------------------------------------------------------------------------------


def test_host_info_is_replaced_on_reannounce_and_stats_reach_plugins() -> None:
    seen: list[dict[str, float]] = []

    class StatsReader:
        name = "stats_reader"

        @hookimpl
        def scheduler_host_expiry(self, host: Host) -> None:
            seen.append(dict(host.info.stats))

    state = SchedulerState(PolicySet.from_plugins([StatsReader()]), now=0.0)
    state.announce_host(A, 0.0, interval=30)
    host = state.host(A.id)
    assert host.info == A
    moved = HostInfo("alpha", "10.0.0.1", port=9001, idc="eu", stats={"load": 0.9})
    state.announce_host(moved, 5.0, interval=30)
    assert state.host(A.id) is host
    assert (host.info.port, host.info.idc, host.info.stats) == (9001, "eu", {"load": 0.9})
    assert seen[0] == {"load": 0.5}
    assert seen[-1] == {"load": 0.9}
    with pytest.raises(TypeError):
        host.info.stats["load"] = 1.0  # type: ignore[index]


def test_host_info_stats_default_empty_and_do_not_break_hashing() -> None:
    info = HostInfo("alpha", "10.0.0.1")
    assert dict(info.stats) == {}
    assert hash(info) == hash(HostInfo("alpha", "10.0.0.1", stats={"x": 1.0}))


# --- per-kind counts --------------------------------------------------------------------------


def test_task_counts_by_state_follow_the_tasks() -> None:
    state = builtins()
    state.announce_host(A, 0.0, interval=30)
    state.register_peer("p1", A.id, TASK, 0.0)
    state.register_peer("p2", A.id, TaskInfo("t2"), 0.0)
    state.start_download("p1", 1.0)
    counts = state.task_counts_by_state()
    assert counts[TaskState.RUNNING] == 1
    assert counts[TaskState.PENDING] == 1
    assert TaskState.LEAVE not in counts
    state.evict(RecordKind.TASK, "t1", "admin", 2.0)
    assert state.task_counts_by_state()[TaskState.RUNNING] == 0
    assert not state.has_peer("p1")
    assert state.invariant_violations() == []


# --- which event a change is (the lifecycle file decides) -----------------------------------


@pytest.mark.parametrize(
    ("content_length", "pieces", "event"),
    [
        (0, -1, PeerEvent.REGISTER_EMPTY),
        (1, 1, PeerEvent.REGISTER_TINY),
        (128, 1, PeerEvent.REGISTER_TINY),
        (129, 1, PeerEvent.REGISTER_SMALL),
        (-1, 1, PeerEvent.REGISTER_SMALL),
        (-1, -1, PeerEvent.REGISTER_NORMAL),
        (10_000, 3, PeerEvent.REGISTER_NORMAL),
    ],
)
def test_size_scope_chooses_the_register_event(
    content_length: int, pieces: int, event: PeerEvent
) -> None:
    assert register_event(content_length, pieces) is event


def test_task_rules_when_a_peer_starts_succeeds_or_fails() -> None:
    assert task_after_peer_started(TaskState.PENDING) is TaskState.RUNNING
    assert task_after_peer_started(TaskState.RUNNING) is TaskState.RUNNING
    assert task_after_peer_succeeded(TaskState.PENDING) is TaskState.SUCCEEDED
    assert task_after_peer_succeeded(TaskState.SUCCEEDED) is TaskState.SUCCEEDED
    running = TaskState.RUNNING
    assert task_after_peer_failed(running, []) is TaskState.FAILED
    assert task_after_peer_failed(running, [PeerState.FAILED, PeerState.PENDING]) is (
        TaskState.FAILED
    )
    for alive in (PeerState.RUNNING, PeerState.BACK_TO_SOURCE, PeerState.SUCCEEDED):
        assert task_after_peer_failed(running, [alive]) is running
    assert task_after_peer_failed(TaskState.SUCCEEDED, []) is TaskState.SUCCEEDED
