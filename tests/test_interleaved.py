"""Many hosts on one timeline, each with its own interval, jitter and drift, under each policy set.

The kit's state machine checks the core invariants after every step; this
module runs it under the built-ins, dragonfly-compat and phi-accrual, and
adds one more invariant: every ``collect_expired`` pops exactly the due
entries (plus stale ones left by updates), never scanning the heap, so its
cost is O(k log n).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

import pytest
from hypothesis import strategies as st
from hypothesis.stateful import invariant, precondition, rule
from scheduler_dragonfly_compat import DragonflyCompat
from scheduler_phi_accrual import PhiAccrual

from scheduler.core import Eviction, RecordKind
from scheduler.policies import builtin_plugins
from scheduler.testing import CASCADE_REASONS, SchedulerStateMachine, measure_coverage


class InterleavedClocks(SchedulerStateMachine):
    max_hosts = 24

    @precondition(lambda self: hasattr(self, "sim"))
    @rule(seconds=st.sampled_from([1.0, 30.0, 300.0, 3600.0]))
    def jump_then_collect(self, seconds: float) -> None:
        """Let time pass with the GC asleep, then collect: k records are due at once."""
        sim = self.sim
        state = sim.state
        sim.now += seconds
        queues = state.queues.values()
        before_pops = sum(q.pops for q in queues)
        before_stale = sum(q.stale_pops for q in queues)
        events = state.collect_expired(sim.now)
        pops = sum(q.pops for q in queues) - before_pops
        stale = sum(q.stale_pops for q in queues) - before_stale
        due = [e for e in events if isinstance(e, Eviction) and e.reason not in CASCADE_REASONS]
        # The heap pops exactly the k due entries plus the stale heads left by
        # updates (each pushed once, popped once): never a scan of n.
        assert pops == len(due) + stale, (pops, len(due), stale)
        for eviction in due:
            assert eviction.deadline is not None
            assert eviction.deadline <= sim.now
        sim.record(events)
        sim.run_gc()
        sim.check()

    @invariant()
    def stale_entries_stay_bounded(self) -> None:
        if not hasattr(self, "sim"):
            return
        for kind, queue in self.sim.state.queues.items():
            assert queue.heap_size() <= 2 * len(queue) + 1024 + 1, kind


class BuiltinsTimeline(InterleavedClocks):
    config: ClassVar = {
        "disconnect_grace": {"reconnect_grace": "2s"},
        "peer_lifetime": {"piece_timeout": "30s", "failed_peer_ttl": "1s"},
        "task_idle": {"task_idle_ttl": "5s"},
    }
    sweep_interval = 10.0


class DragonflyTimeline(InterleavedClocks):
    @classmethod
    def make_plugins(cls) -> Sequence[object]:
        return [*builtin_plugins(), DragonflyCompat()]


class PhiAccrualTimeline(InterleavedClocks):
    @classmethod
    def make_plugins(cls) -> Sequence[object]:
        return [*builtin_plugins(), PhiAccrual()]


TestBuiltinsTimeline = BuiltinsTimeline.TestCase
TestDragonflyTimeline = DragonflyTimeline.TestCase
TestPhiAccrualTimeline = PhiAccrualTimeline.TestCase


def test_dragonfly_compat_replaced_the_builtins_in_its_timeline() -> None:
    machine = DragonflyTimeline()
    names = machine.make_policies().names
    assert "dragonfly_compat" in names
    assert "announce_ttl" not in names
    assert "disconnect_grace" not in names
    assert RecordKind.HOST.value == "host"


@pytest.mark.parametrize(
    ("machine", "pushes"),
    [(BuiltinsTimeline, True), (DragonflyTimeline, False), (PhiAccrualTimeline, True)],
)
def test_each_timeline_hands_out_parents(machine: type[InterleavedClocks], pushes: bool) -> None:
    """Over the profile's examples, most runs schedule; dragonfly_compat never pushes."""
    measure_coverage(machine).check(pushes=pushes)
