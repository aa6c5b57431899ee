"""The GC loops: the host, peer and task managers, one trio task each.

Each loop drives the core's GC for its kind of record with a
:class:`~scheduler.core.GcDriver` (the one the simulators use in virtual time):
it sleeps until the driver's next wake, or until :meth:`GcLoops.wake` sees that an
earlier deadline appeared; then it runs the GC at ``trio.current_time()`` and hands
the events on.

A mass expiry (100,000 hosts whose deadlines pass within seconds) must not stall
the sessions: the loop collects in slices of at most ``slice_size`` due records,
and lets every other task run between two slices, until nothing is due.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from typing import Final, final

import trio

from ..core import Event, GcDriver, RecordKind, SchedulerState
from ._metrics import Metrics

MANAGERS: Final = {
    "host": RecordKind.HOST,
    "peer": RecordKind.PEER,
    "task": RecordKind.TASK,
}


@final
class GcLoops:
    def __init__(
        self,
        state: SchedulerState,
        metrics: Metrics,
        apply: Callable[[Sequence[Event]], None],
        *,
        slice_size: int = 100,
    ) -> None:
        if slice_size < 1:
            raise ValueError(f"slice_size must be >= 1, got {slice_size!r}")
        self._drivers = {
            kind: GcDriver(state, (kind,), max_count=slice_size) for kind in RecordKind
        }
        self._metrics = metrics
        self._apply = apply
        self._wakeups = {kind: trio.Event() for kind in RecordKind}
        self._sleeping_until = {kind: math.inf for kind in RecordKind}

    async def run(self) -> None:
        """Run every manager's loop until cancelled."""
        async with trio.open_nursery() as nursery:
            for name, kind in MANAGERS.items():
                nursery.start_soon(self._loop, name, kind)

    def wake(self) -> None:
        """Wake each loop whose next deadline is now earlier than the one it sleeps until."""
        for kind, event in self._wakeups.items():
            wake = self._drivers[kind].next_wake()
            if wake is not None and wake < self._sleeping_until[kind]:
                event.set()

    async def _loop(self, manager: str, kind: RecordKind) -> None:
        driver, metrics = self._drivers[kind], self._metrics
        while True:
            wake = driver.next_wake()
            self._sleeping_until[kind] = math.inf if wake is None else wake
            event = self._wakeups[kind] = trio.Event()
            with trio.move_on_at(self._sleeping_until[kind]):
                await event.wait()
            self._sleeping_until[kind] = -math.inf  # a running loop needs no wake-up
            while True:
                now = trio.current_time()
                started = time.perf_counter()
                run = driver.run(now)
                metrics.gc_duration.labels(manager).observe(time.perf_counter() - started)
                metrics.gc_runs.labels(manager).inc()
                if run.events:
                    self._apply(run.events)
                await trio.lowlevel.checkpoint()
                if not driver.is_due(trio.current_time()):
                    break
