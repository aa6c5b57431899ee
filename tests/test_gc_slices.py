"""Collection in slices: ``max_count`` bounds one call, and the slices add up to one call.

The service's GC loops collect a mass expiry slice by slice, so that no pass
blocks the event loop for long; these tests pin the core's side of it, sans-IO.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from scheduler.core import DeadlineQueue, Eviction, Expiry, HostInfo, RecordKind, TaskInfo
from scheduler.core._gc import GarbageCollector
from tests.scripted import A, B, C, scripted_state

HOST, PEER, TASK = RecordKind.HOST, RecordKind.PEER, RecordKind.TASK


def evicted(events: list[object]) -> list[tuple[str, str]]:
    return [(e.kind.value, e.record_id) for e in events if isinstance(e, Eviction)]


def test_pop_due_with_a_limit_takes_the_earliest_and_leaves_the_rest_due() -> None:
    queue = DeadlineQueue()
    for key, at in (("a", 3.0), ("b", 1.0), ("c", 2.0), ("d", 9.0)):
        queue.set(key, Expiry(at, "ttl"))
    assert [key for key, _ in queue.pop_due(5.0, 2)] == ["b", "c"]
    assert queue.peek() == 3.0
    assert [key for key, _ in queue.pop_due(5.0, 2)] == ["a"]
    assert queue.pop_due(5.0, 2) == []
    assert len(queue) == 1
    assert queue.pops == 3


def test_a_stale_entry_does_not_count_against_the_limit() -> None:
    queue = DeadlineQueue()
    queue.set("a", Expiry(1.0, "ttl"))
    queue.set("a", Expiry(2.0, "ttl"))  # the entry at 1.0 is stale now
    queue.set("b", Expiry(3.0, "ttl"))
    assert [key for key, _ in queue.pop_due(5.0, 1)] == ["a"]
    assert queue.stale_pops == 1
    assert [key for key, _ in queue.pop_due(5.0, 1)] == ["b"]


def test_collect_expired_with_max_count_evicts_the_earliest_due_and_no_more() -> None:
    state, script = scripted_state()
    for info, at in ((A, 10.0), (B, 11.0), (C, 12.0)):
        script.expiries[info.id] = Expiry(at, "ttl")
        state.announce_host(info, 0.0)
    assert evicted(state.collect_expired(20.0, max_count=2)) == [("host", A.id), ("host", B.id)]
    assert state.has_host(C.id)
    assert state.next_deadline([HOST]) == 12.0  # still due: call again
    assert evicted(state.collect_expired(20.0, max_count=2)) == [("host", C.id)]
    assert state.collect_expired(20.0, max_count=2) == []


def test_a_cascade_goes_with_the_record_that_counts() -> None:
    state, script = scripted_state()
    script.expiries[A.id] = Expiry(10.0, "ttl")
    script.expiries[B.id] = Expiry(10.0, "ttl")
    state.announce_host(A, 0.0)
    state.announce_host(B, 0.0)
    for peer in ("p1", "p2", "p3"):
        state.register_peer(peer, A.id, TaskInfo("t1"), 0.0)
    assert evicted(state.collect_expired(20.0, max_count=1)) == [
        ("peer", "p1"),
        ("peer", "p2"),
        ("peer", "p3"),
        ("host", A.id),
    ]
    assert state.has_host(B.id)


def test_the_budget_is_shared_across_the_kinds() -> None:
    state, script = scripted_state()
    script.expiries[A.id] = Expiry(10.0, "ttl")
    script.expiries["p1"] = Expiry(10.0, "piece_timeout")
    script.expiries["t9"] = Expiry(10.0, "idle")
    state.announce_host(A, 0.0)
    state.announce_host(B, 0.0)
    state.register_peer("p1", B.id, TaskInfo("t1"), 0.0)
    state.register_peer("p9", B.id, TaskInfo("t9"), 0.0)
    assert evicted(state.collect_expired(20.0, max_count=2)) == [("host", A.id), ("peer", "p1")]
    assert state.has_task("t9")
    # The task's cascade (its peer) goes with it.
    assert evicted(state.collect_expired(20.0, max_count=2)) == [("peer", "p9"), ("task", "t9")]


@pytest.mark.parametrize("bad", [0, -1])
def test_max_count_must_be_positive_and_a_refusal_changes_nothing(bad: int) -> None:
    state, script = scripted_state()
    script.expiries[A.id] = Expiry(10.0, "ttl")
    state.announce_host(A, 0.0)
    with pytest.raises(ValueError, match="max_count must be >= 1"):
        state.collect_expired(20.0, max_count=bad)
    with pytest.raises(ValueError, match="max_count must be >= 1"):
        state.run_gc(20.0, max_count=bad)
    assert state.has_host(A.id)


def test_run_gc_bounds_the_collection_of_each_sweep_too() -> None:
    state, script = scripted_state(sweep_interval=15.0)
    for info in (A, B, C):
        script.expiries[info.id] = Expiry(10.0, "ttl")
        state.announce_host(info, 0.0)
    # At 20 the host sweep is due too; each collection takes at most one.
    events = state.run_gc(20.0, [HOST], max_count=1)
    assert evicted(events) == [("host", A.id), ("host", B.id)]
    assert state.next_sweep_at(HOST) == 35.0
    assert evicted(state.run_gc(20.0, [HOST], max_count=1)) == [("host", C.id)]


@given(
    deadlines=st.lists(st.integers(0, 20), min_size=1, max_size=40),
    peers_of=st.lists(st.integers(0, 3), min_size=40, max_size=40),
    max_count=st.integers(1, 7),
)
def test_slices_add_up_to_one_unbounded_call(
    deadlines: list[int], peers_of: list[int], max_count: int
) -> None:
    """Whatever the slice size, the same records go, in the same order, for the same reasons."""
    whole, whole_script = scripted_state()
    sliced, sliced_script = scripted_state()
    for state, script in ((whole, whole_script), (sliced, sliced_script)):
        for index, at in enumerate(deadlines):
            info = HostInfo(f"h{index}", f"10.0.1.{index}")
            script.expiries[info.id] = Expiry(float(at), "ttl")
            state.announce_host(info, 0.0)
            for peer in range(peers_of[index]):
                state.register_peer(f"p{index}-{peer}", info.id, TaskInfo(f"t{peer}"), 0.0)
    expected = whole.collect_expired(15.0)
    got: list[object] = []
    calls = 0
    while (wake := sliced.next_deadline([HOST, PEER, TASK])) is not None and wake <= 15.0:
        got.extend(sliced.collect_expired(15.0, max_count=max_count))
        calls += 1
    assert evicted(got) == evicted(expected)
    due = sum(1 for at in deadlines if at <= 15)
    assert calls == -(-due // max_count)
    assert sliced.invariant_violations() == []


def test_a_slice_with_budget_left_collects_what_its_evictions_made_due() -> None:
    # Tasks are looked at before hosts here: evicting alpha leaves t1 without a peer,
    # due at once, after the task ledger was asked; one record of budget is left for it.
    state, script = scripted_state()
    script.answers[TASK] = lambda task, view, now: (
        None if view.peer_count_of_task(task.id) else Expiry(0.0, "idle")
    )
    script.expiries[A.id] = Expiry(10.0, "ttl")
    state.announce_host(A, 0.0)
    state.register_peer("p1", A.id, TaskInfo("t1"), 0.0)
    gc = GarbageCollector((state._tasks, state._peers, state._hosts), state.policies, state.view)
    assert evicted(gc.collect_expired(20.0, [HOST, PEER, TASK], max_count=2)) == [
        ("peer", "p1"),
        ("host", A.id),
        ("task", "t1"),
    ]
