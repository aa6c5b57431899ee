"""The deadline queue's exact bookkeeping: the compaction rule and the counters.

The benchmarks report ``operations``, ``pops`` and ``stale_pops``, and the
O(k log n) claims are checked against them, so they are pinned exactly here:
every heap push and pop is one operation, every pop is one pop, and a pop that
only discards an outdated entry is also one stale pop.
"""

from __future__ import annotations

import pytest

from scheduler.core import DeadlineQueue, Expiry

#: Stale entries the heap tolerates beyond twice the live ones before it is rebuilt.
SLACK = 1024


def counters(queue: DeadlineQueue) -> tuple[int, int, int]:
    return queue.operations, queue.pops, queue.stale_pops


def test_a_new_queue_is_empty_and_has_counted_nothing() -> None:
    queue = DeadlineQueue()
    assert counters(queue) == (0, 0, 0)
    assert len(queue) == 0
    assert queue.heap_size() == 0
    assert queue.ids() == []
    assert queue.peek() is None
    assert queue.pop_due(float("inf")) == []
    assert counters(queue) == (0, 0, 0)


def test_membership_and_lookup_follow_set_and_discard() -> None:
    queue = DeadlineQueue()
    queue.set("a", Expiry(1.0, "ttl"))
    assert "a" in queue
    assert "b" not in queue
    assert queue.get("a") == Expiry(1.0, "ttl")
    assert queue.get("b") is None
    queue.set("a", None)
    assert "a" not in queue
    assert queue.get("a") is None
    queue.discard("never-set")
    assert len(queue) == 0


def test_each_push_counts_one_operation_and_no_pop() -> None:
    queue = DeadlineQueue()
    queue.set("a", Expiry(1.0, "r"))
    queue.set("b", Expiry(2.0, "r"))
    queue.set("a", Expiry(3.0, "r"))  # an update is a new push
    assert counters(queue) == (3, 0, 0)
    queue.set("a", Expiry(3.0, "r"))  # unchanged: no push
    queue.set("b", None)  # removal is lazy: no heap operation
    queue.discard("a")
    assert counters(queue) == (3, 0, 0)
    assert queue.heap_size() == 3


def test_pop_due_counts_every_pop_and_the_stale_ones() -> None:
    queue = DeadlineQueue()
    queue.set("a", Expiry(1.0, "r"))
    queue.set("a", Expiry(5.0, "r"))  # (1.0, a) becomes stale
    queue.set("b", Expiry(2.0, "r"))
    queue.set("c", Expiry(3.0, "r"))
    queue.discard("c")  # (3.0, c) becomes stale
    assert counters(queue) == (4, 0, 0)

    assert queue.pop_due(4.0) == [("b", Expiry(2.0, "r"))]
    # Popped (1, a) stale, (2, b) live, (3, c) stale.
    assert counters(queue) == (7, 3, 2)
    assert queue.heap_size() == 1

    assert queue.pop_due(5.0) == [("a", Expiry(5.0, "r"))]
    assert counters(queue) == (8, 4, 2)
    assert queue.pop_due(100.0) == []
    assert counters(queue) == (8, 4, 2)


def test_peek_drops_stale_heads_and_counts_them() -> None:
    queue = DeadlineQueue()
    queue.set("a", Expiry(1.0, "r"))
    queue.set("b", Expiry(2.0, "r"))
    queue.set("a", Expiry(9.0, "r"))
    queue.discard("b")
    assert counters(queue) == (3, 0, 0)
    assert queue.peek() == 9.0
    assert counters(queue) == (5, 2, 2)
    assert queue.heap_size() == 1
    assert queue.peek() == 9.0  # a live head is not popped
    assert counters(queue) == (5, 2, 2)
    queue.discard("a")
    assert queue.peek() is None
    assert counters(queue) == (6, 3, 3)
    assert queue.heap_size() == 0


def test_a_due_entry_is_popped_once_and_an_entry_due_later_stays() -> None:
    queue = DeadlineQueue()
    queue.set("now", Expiry(4.0, "r"))
    queue.set("later", Expiry(4.5, "r"))
    assert queue.pop_due(4.0) == [("now", Expiry(4.0, "r"))]
    assert queue.pop_due(4.0) == []
    assert queue.ids() == ["later"]
    assert counters(queue) == (3, 1, 0)


def fill(queue: DeadlineQueue, live: int, pushes: int) -> None:
    """Make ``live`` keys live with ``pushes`` pushes in total (the rest are updates)."""
    for i in range(pushes):
        queue.set(f"k{i % live}", Expiry(float(i), "r"))


@pytest.mark.parametrize("live", [1, 3, 10])
def test_the_heap_is_rebuilt_exactly_when_it_exceeds_twice_the_live_entries_plus_the_slack(
    live: int,
) -> None:
    limit = 2 * live + SLACK
    queue = DeadlineQueue()
    fill(queue, live, limit)
    assert queue.heap_size() == limit  # at the limit: not yet compacted
    assert counters(queue) == (limit, 0, 0)

    queue.set("k0", Expiry(float(limit), "r"))  # one past the limit
    assert queue.heap_size() == live  # only live entries are left
    assert counters(queue) == (limit + 1, 0, 0)  # rebuilding pops nothing
    assert len(queue) == live


def test_the_rebuilt_heap_keeps_every_live_deadline_in_order() -> None:
    queue = DeadlineQueue()
    live = 3
    fill(queue, live, 2 * live + SLACK + 1)
    assert queue.heap_size() == live
    latest = 2 * live + SLACK
    last_pushes = range(latest - live + 1, latest + 1)
    expected = [(f"k{i % live}", Expiry(float(i), "r")) for i in last_pushes]
    assert queue.peek() == expected[0][1].at
    assert queue.pop_due(float(latest)) == expected
    assert counters(queue) == (latest + 1 + live, live, 0)
    assert len(queue) == 0
