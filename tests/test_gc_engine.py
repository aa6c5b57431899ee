"""The GC engine and the deadline side of every ledger: what is due, what a sweep does."""

from __future__ import annotations

import logging

import pytest

from scheduler.core import (
    Eviction,
    Expiry,
    RecordKind,
    SchedulerState,
    StateView,
    Task,
    TaskInfo,
    Verdict,
)
from scheduler.core._gc import GarbageCollector
from scheduler.core._hosts import HostLedger
from scheduler.core._tasks import TaskLedger
from tests.scripted import A, B, scripted_state

HOST, PEER, TASK = RecordKind.HOST, RecordKind.PEER, RecordKind.TASK


def evictions(events: list[object]) -> list[tuple[str, str, str]]:
    return [(e.kind.value, e.record_id, e.reason) for e in events if isinstance(e, Eviction)]


def idle_when_alone(task: Task, view: StateView, now: float) -> Expiry | None:
    """A task with no peer left is due 5 s after it was created."""
    return None if view.peer_count_of_task(task.id) else Expiry(task.created_at + 5.0, "idle")


# --- next_deadline ----------------------------------------------------------------------------


def test_next_deadline_is_the_earliest_deadline_or_sweep_of_the_kinds_asked() -> None:
    state, script = scripted_state(sweep_interval=100.0)
    script.expiries[A.id] = Expiry(10.0, "ttl")
    script.expiries[B.id] = Expiry(500.0, "ttl")
    state.announce_host(A, 0.0)
    state.announce_host(B, 0.0)
    assert state.next_deadline() == 10.0
    assert state.next_deadline([HOST]) == 10.0
    assert state.next_deadline([TASK]) == 100.0  # nothing held: the sweep
    assert state.next_deadline([PEER, TASK]) == 100.0
    assert state.next_deadline([]) is None
    state.evict(HOST, A.id, "admin", 1.0)
    assert state.next_deadline([HOST]) == 100.0  # 500 is after the sweep
    state.sweep(100.0, HOST)
    assert state.next_deadline([HOST]) == 200.0
    assert state.next_deadline() == 100.0  # the other kinds' sweeps are still due at 100


# --- collect_expired --------------------------------------------------------------------------


def test_collect_expired_evicts_what_is_due_at_or_before_now_with_its_deadline() -> None:
    state, script = scripted_state()
    script.expiries[A.id] = Expiry(10.0, "ttl")
    script.expiries[B.id] = Expiry(10.5, "ttl")
    state.announce_host(A, 0.0)
    state.announce_host(B, 0.0)
    assert state.collect_expired(9.9) == []
    (eviction,) = state.collect_expired(10.0)
    assert (eviction.record_id, eviction.reason, eviction.at, eviction.deadline) == (
        A.id,
        "ttl",
        10.0,
        10.0,
    )
    assert eviction.lateness == 0.0
    assert state.has_host(B.id)


def test_collect_expired_touches_only_the_kinds_given() -> None:
    state, script = scripted_state()
    script.answers[TASK] = idle_when_alone
    script.expiries[A.id] = Expiry(10.0, "ttl")
    state.announce_host(A, 0.0)
    state.register_peer("p1", A.id, TaskInfo("t1"), 0.0)
    state.leave_peer("p1", 1.0)  # t1 is due at 5
    assert evictions(state.collect_expired(20.0, [TASK])) == [("task", "t1", "idle")]
    assert state.has_host(A.id)
    assert evictions(state.collect_expired(20.0, [PEER])) == []
    assert evictions(state.collect_expired(20.0, [HOST])) == [("host", A.id, "ttl")]


def test_collect_expired_returns_only_when_nothing_due_is_left_whatever_the_ledger_order() -> None:
    # Tasks are looked at before peers here: evicting the host's peer makes t1 due
    # after the task ledger was already asked, and the same call must still take it.
    state, script = scripted_state()
    script.answers[TASK] = idle_when_alone
    script.expiries[A.id] = Expiry(10.0, "ttl")
    state.announce_host(A, 0.0)
    state.register_peer("p1", A.id, TaskInfo("t1"), 0.0)
    ledgers = (state._tasks, state._peers, state._hosts)
    gc = GarbageCollector(ledgers, state.policies, state.view)
    events = gc.collect_expired(20.0, [HOST, PEER, TASK])
    assert evictions(events) == [
        ("peer", "p1", "host_evicted"),
        ("host", A.id, "ttl"),
        ("task", "t1", "idle"),
    ]
    assert not state.has_task("t1")


# --- sweep ------------------------------------------------------------------------------------


def test_a_sweep_applies_the_verdicts_for_its_kind_now() -> None:
    state, script = scripted_state(sweep_interval=60.0)
    state.announce_host(A, 0.0)
    state.announce_host(B, 0.0)
    script.verdicts[HOST] = [Verdict(HOST, B.id, "capacity")]
    (eviction,) = state.sweep(30.0, HOST)
    assert (eviction.record_id, eviction.reason, eviction.at, eviction.deadline) == (
        B.id,
        "capacity",
        30.0,
        None,
    )
    assert script.asked("sweep") == [(HOST, 30.0)]
    assert state.next_sweep_at(HOST) == 90.0
    assert state.next_sweep_at(TASK) == 60.0


def test_a_sweep_ignores_and_logs_verdicts_for_another_kind_or_a_gone_record(
    caplog: pytest.LogCaptureFixture,
) -> None:
    state, script = scripted_state()
    state.announce_host(A, 0.0)
    state.announce_host(B, 0.0)
    script.verdicts[HOST] = [
        Verdict(TASK, A.id, "capacity"),  # a live host's id, but not a host verdict
        Verdict(HOST, "gone", "capacity"),
        Verdict(HOST, B.id, "capacity"),  # still applied after the two bad ones
    ]
    with caplog.at_level(logging.WARNING, logger="scheduler.gc"):
        events = state.sweep(5.0, HOST)
    assert evictions(events) == [("host", B.id, "capacity")]
    assert state.has_host(A.id)
    assert caplog.messages == [
        f"ignoring sweep verdict for task {A.id}: not a live host record",
        "ignoring sweep verdict for host gone: not a live host record",
    ]


def test_a_sweep_asks_again_about_undecided_records_at_the_sweep_time() -> None:
    state, script = scripted_state(sweep_interval=60.0)
    state.announce_host(A, 0.0)  # no answer: undecided
    assert state.deadline_of(HOST, A.id) is None
    script.expiries[A.id] = Expiry(70.0, "ttl")
    del script.calls[:]
    assert state.sweep(60.0, HOST) == []
    assert script.asked("host_expiry") == [(A.id, 60.0)]
    assert state.deadline_of(HOST, A.id) == Expiry(70.0, "ttl")
    assert state.invariant_violations() == []
    # A decided record is not asked again by the sweep.
    del script.calls[:]
    state.sweep(120.0, HOST)
    assert script.asked("host_expiry") == []


def test_a_sweep_collects_what_has_expired_of_its_kind() -> None:
    state, script = scripted_state()
    script.expiries[A.id] = Expiry(10.0, "ttl")
    state.announce_host(A, 0.0)
    assert evictions(state.sweep(10.0, HOST)) == [("host", A.id, "ttl")]


def test_run_gc_runs_each_sweep_exactly_when_it_is_due() -> None:
    state, script = scripted_state(sweep_interval=60.0)
    state.run_gc(59.9)
    assert script.asked("sweep") == []
    state.run_gc(60.0, [HOST, TASK])
    assert script.asked("sweep") == [(HOST, 60.0), (TASK, 60.0)]
    assert state.next_sweep_at(PEER) == 60.0


def test_a_record_that_gets_a_deadline_is_no_longer_undecided() -> None:
    state, script = scripted_state()
    state.announce_host(A, 0.0)
    script.expiries[A.id] = Expiry(10.0, "ttl")
    state.touch_host(A.id, 1.0)
    assert state.deadline_of(HOST, A.id) == Expiry(10.0, "ttl")
    assert state.invariant_violations() == []
    del script.expiries[A.id]
    state.touch_host(A.id, 2.0)  # the answer is withdrawn: undecided again
    assert state.deadline_of(HOST, A.id) is None
    assert state.invariant_violations() == []


def test_an_undecided_record_that_is_evicted_is_forgotten_by_the_sweep() -> None:
    state, _ = scripted_state()
    state.announce_host(A, 0.0)
    state.evict(HOST, A.id, "admin", 1.0)
    assert state.invariant_violations() == []
    assert state.sweep(2.0, HOST) == []  # nothing left to ask about


# --- the ledgers' self-check of their deadlines -----------------------------------------------


def test_the_self_check_reports_deadlines_and_undecided_ids_of_evicted_records() -> None:
    state, _ = scripted_state()
    state.announce_host(A, 0.0)  # undecided
    hosts = state._hosts
    hosts.queue.set("ghost", Expiry(5.0, "ttl"))
    hosts.queue.set(A.id, Expiry(5.0, "ttl"))
    hosts._undecided.add("gone")
    assert sorted(state.invariant_violations()) == sorted(
        [
            "deadline held for evicted host ghost",
            f"host {A.id} is both scheduled and undecided",
            "evicted host gone is still undecided",
        ]
    )


def test_a_ledger_not_connected_to_a_view_says_which() -> None:
    state = SchedulerState(scripted_state()[0].policies)
    for ledger, kind in [
        (HostLedger(state.policies, now=0.0, sweep_interval=1.0), "host"),
        (TaskLedger(state.policies, now=0.0, sweep_interval=1.0), "task"),
    ]:
        with pytest.raises(RuntimeError, match=rf"^the {kind} ledger is not connected to a view$"):
            ledger.view  # noqa: B018


def test_run_gc_first_collects_what_has_expired_of_the_kinds_given() -> None:
    state, script = scripted_state(sweep_interval=60.0)
    script.expiries[A.id] = Expiry(10.0, "ttl")
    state.announce_host(A, 0.0)
    events = state.run_gc(20.0, [HOST])
    assert [(e.record_id, e.at, e.deadline) for e in events if isinstance(e, Eviction)] == [
        (A.id, 20.0, 10.0)
    ]
    assert script.asked("sweep") == []
