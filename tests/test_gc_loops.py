"""The service's GC loops collect a mass expiry in slices, letting other tasks run between.

Under the autojump clock: no sleeps, no timing assertions; what is checked is
the order of things (a task runs between two slices) and that everything due goes.
"""

from __future__ import annotations

from collections.abc import Sequence

import pytest
import trio
import trio.testing

from scheduler.core import Event, Eviction, HostInfo, SchedulerState
from scheduler.policies import load_policies
from scheduler.service import SchedulerService, ServiceConfig
from scheduler.service._gc import GcLoops
from scheduler.service._metrics import Metrics

HOSTS = 100


def announced(count: int) -> SchedulerState:
    state = SchedulerState(load_policies(entrypoints=False), now=0.0)
    for index in range(count):
        # An interval of 5 s: announce_ttl makes each host due at 10 s.
        state.announce_host(
            HostInfo(f"h{index}", f"10.0.{index // 250}.{index % 250}"), 0.0, interval=5.0
        )
    return state


async def test_a_mass_expiry_is_collected_in_slices_with_other_tasks_running_between(
    autojump_clock: trio.testing.MockClock,
) -> None:
    state = announced(HOSTS)
    metrics = Metrics(state, ())
    applied: list[Sequence[Event]] = []
    loops = GcLoops(state, metrics, applied.append, slice_size=7)
    seen_counts: list[int] = []

    async def watch() -> None:
        # From the mass expiry on, runs at every checkpoint: what it sees between slices.
        await trio.sleep_until(10.0)
        while state.host_count():
            seen_counts.append(state.host_count())
            await trio.lowlevel.checkpoint()

    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(loops.run)
            await trio.sleep(9.0)
            assert state.host_count() == HOSTS
            nursery.start_soon(watch)
            await trio.sleep(11.0)
            assert state.host_count() == 0
            nursery.cancel_scope.cancel()
    sizes = [sum(isinstance(e, Eviction) for e in events) for events in applied]
    assert sizes == [7] * (HOSTS // 7) + [HOSTS % 7]
    # The watcher ran between slices and saw the hosts go a slice at a time (trio
    # picks the order within a batch of runnable tasks, so it may miss some).
    between = {count for count in seen_counts if 0 < count < HOSTS}
    assert between <= {HOSTS - 7 * n for n in range(1, HOSTS // 7 + 1)}
    assert len(between) >= 5
    assert all(e.at == 10.0 for events in applied for e in events if isinstance(e, Eviction))


def test_the_slice_size_must_be_positive() -> None:
    state = announced(0)
    with pytest.raises(ValueError, match="slice_size must be >= 1"):
        GcLoops(state, Metrics(state, ()), lambda events: None, slice_size=0)


async def test_the_loop_lag_probe_measures_how_long_the_loop_was_held(
    autojump_clock: trio.testing.MockClock,
) -> None:
    service = SchedulerService(ServiceConfig(entrypoints=False))
    lag = service.metrics.registry
    async with trio.open_nursery() as nursery:
        nursery.start_soon(service.run_gc_loops)
        await trio.sleep(1.0)  # four wake-ups of a free loop, each on time
        free = lag.get_sample_value("scheduler_event_loop_lag_seconds_count") or 0.0
        assert free >= 3
        assert lag.get_sample_value("scheduler_event_loop_lag_seconds_sum") == 0.0
        autojump_clock.jump(0.6)  # as if one task held the loop for 0.6 s
        await trio.sleep(0.5)
        # The probe was due within 0.25 s of the hold's start: 0.35 s late at least.
        assert (lag.get_sample_value("scheduler_event_loop_lag_seconds_sum") or 0.0) >= 0.35
        nursery.cancel_scope.cancel()
