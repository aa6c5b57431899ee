"""The deadline heap: lazy deletion, compaction, and O(k log n) collection."""

from __future__ import annotations

import math

from hypothesis import given
from hypothesis import strategies as st

from scheduler.core import DeadlineQueue, Expiry, HostInfo, RecordKind, SchedulerState
from scheduler.policies import load_policies


def test_pop_due_returns_exactly_the_due_entries_in_order() -> None:
    queue = DeadlineQueue()
    for i, at in enumerate([5.0, 1.0, 3.0, 9.0]):
        queue.set(f"k{i}", Expiry(at, "r"))
    assert [k for k, _ in queue.pop_due(4.0)] == ["k1", "k2"]
    assert queue.peek() == 5.0
    assert len(queue) == 2


def test_update_supersedes_the_old_entry_and_discard_removes_it() -> None:
    queue = DeadlineQueue()
    queue.set("a", Expiry(1.0, "r"))
    queue.set("a", Expiry(10.0, "r"))
    queue.set("b", Expiry(2.0, "r"))
    queue.discard("b")
    assert queue.pop_due(5.0) == []
    assert queue.peek() == 10.0
    assert queue.pop_due(10.0) == [("a", Expiry(10.0, "r"))]
    assert queue.peek() is None


def test_setting_the_same_expiry_pushes_nothing() -> None:
    queue = DeadlineQueue()
    queue.set("a", Expiry(1.0, "r"))
    ops = queue.operations
    queue.set("a", Expiry(1.0, "r"))
    assert queue.operations == ops
    assert queue.heap_size() == 1


def test_heap_is_compacted_when_stale_entries_pile_up() -> None:
    queue = DeadlineQueue()
    for i in range(10_000):
        queue.set("only", Expiry(float(i), "r"))
    assert len(queue) == 1
    assert queue.heap_size() <= 2 * len(queue) + 1024 + 1


@given(
    st.lists(st.tuples(st.sampled_from("abcdefgh"), st.none() | st.floats(0, 100)), max_size=60),
    st.floats(0, 100),
)
def test_queue_matches_a_dict_model(updates: list[tuple[str, float | None]], now: float) -> None:
    queue = DeadlineQueue()
    model: dict[str, float] = {}
    for key, at in updates:
        queue.set(key, None if at is None else Expiry(at, "r"))
        if at is None:
            model.pop(key, None)
        else:
            model[key] = at
    assert queue.peek() == (min(model.values()) if model else None)
    due = queue.pop_due(now)
    assert sorted(k for k, _ in due) == sorted(k for k, at in model.items() if at <= now)
    assert [e.at for _, e in due] == sorted(e.at for _, e in due)
    assert sorted(queue.ids()) == sorted(k for k, at in model.items() if at > now)


def _state_with_hosts(n: int, due: int) -> SchedulerState:
    state = SchedulerState(load_policies(entrypoints=False), now=0.0)
    for i in range(n):
        # Hosts 0..due-1 announced with a 1 s interval (TTL 2 s); the rest with 1000 s.
        interval = 1.0 if i < due else 1000.0
        state.announce_host(HostInfo(f"h{i}", f"10.1.{i // 250}.{i % 250}"), 0.0, interval=interval)
    return state


def test_collect_expired_touches_k_entries_not_n() -> None:
    """collect_expired pops k due entries (plus one peek): O(k log n), independent of n."""
    for n in (1_000, 8_000):
        state = _state_with_hosts(n, due=10)
        queue = state.queues[RecordKind.HOST]
        before = queue.operations
        events = state.collect_expired(5.0, (RecordKind.HOST,))
        pops = queue.operations - before
        assert len(events) == 10
        assert pops == 10, f"n={n}: {pops} heap operations for 10 due records"
        assert math.ceil(math.log2(n)) * pops < n  # far below a scan


def test_next_deadline_reports_the_earliest_deadline_or_sweep() -> None:
    state = SchedulerState(load_policies(entrypoints=False), now=0.0, sweep_interval=60.0)
    assert state.next_deadline() == 60.0
    state.announce_host(HostInfo("h", "10.0.0.1"), 0.0, interval=5.0)
    assert state.next_deadline() == 10.0
    assert state.next_deadline((RecordKind.PEER,)) == 60.0
