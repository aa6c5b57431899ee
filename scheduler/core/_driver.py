"""The GC in the caller's time: one code path for the service's loops and the simulators.

A :class:`GcDriver` asks the core when its GC must next run (:meth:`GcDriver.next_wake`),
runs it at a time the caller gives (:meth:`GcDriver.run`), and in virtual time
runs it at every deadline up to a bound (:meth:`GcDriver.run_due`,
:meth:`GcDriver.advance`). The service's GC loops sleep on trio's clock until the
next wake and call :meth:`GcDriver.run`; the simulators move their virtual clock
with :meth:`GcDriver.run_due` and :meth:`GcDriver.advance`. Each run is a
:class:`GcRun`: its time, its events, and which kinds' periodic sweep ran.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator
from typing import TYPE_CHECKING, Final, final

import attrs

from ._events import Event
from ._model import RecordKind

if TYPE_CHECKING:
    from ._state import SchedulerState

_ALL_KINDS: Final = tuple(RecordKind)


@final
@attrs.frozen
class GcRun:
    """One run of the GC: when, what it caused, and which kinds' sweeps were due."""

    at: float
    #: The evictions and what followed them (pushes), in order.
    events: tuple[Event, ...]
    #: The kinds whose periodic sweep ran (a sweep verdict evicts with no deadline).
    swept: tuple[RecordKind, ...]


@final
class GcDriver:
    """Run the core's GC for ``kinds`` when it is due, ``max_count`` records at a time."""

    def __init__(
        self,
        state: SchedulerState,
        kinds: Collection[RecordKind] = _ALL_KINDS,
        *,
        max_count: int | None = None,
    ) -> None:
        if max_count is not None and max_count < 1:
            raise ValueError(f"max_count must be >= 1, got {max_count!r}")
        self._state = state
        self.kinds = tuple(kinds)
        self.max_count = max_count

    def next_wake(self) -> float | None:
        """When the GC must next run: the earliest deadline or sweep (None: never)."""
        return self._state.next_deadline(self.kinds)

    def is_due(self, now: float) -> bool:
        """Whether something is due at ``now`` (after a sliced run: call :meth:`run` again)."""
        wake = self.next_wake()
        return wake is not None and wake <= now

    def run(self, now: float) -> GcRun:
        """Collect what has expired at ``now`` and run each sweep that is due."""
        state = self._state
        sweeps = {kind: state.next_sweep_at(kind) for kind in self.kinds}
        events = state.run_gc(now, self.kinds, self.max_count)
        # A sweep that ran moved its kind's next sweep: read from the effect, so that
        # the rule of when a sweep is due stays in the GC engine alone.
        swept = tuple(k for k, before in sweeps.items() if state.next_sweep_at(k) != before)
        return GcRun(now, tuple(events), swept)

    def run_due(self, now: float, until: float) -> GcRun | None:
        """In virtual time: if the GC is due by ``until``, run it at its wake (not before
        ``now``); else None and nothing runs."""
        wake = self.next_wake()
        if wake is None or wake > until:
            return None
        return self.run(max(wake, now))

    def advance(self, now: float, until: float) -> Iterator[GcRun]:
        """In virtual time: every run due from ``now`` to ``until``, in order.

        Lazy: each run is decided after the caller handled the previous one, so a
        mutation the caller makes between two runs is seen by the next.
        """
        while True:
            run = self.run_due(now, until)
            if run is None:
                return
            now = run.at
            yield run
