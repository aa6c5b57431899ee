"""The GC engine: evict what is due, and run each kind's periodic sweep.

It knows the ledgers only through the :class:`~._ledger.Ledger` interface and
loops over them in order (hosts, peers, tasks), so a host's peers leave with
reason ``host_evicted`` before their own deadlines could fire.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Sequence
from typing import Any, Final, final

from ._events import Event
from ._ledger import Ledger
from ._model import RecordKind
from ._policy import PolicySet
from ._view import StateView

log = logging.getLogger("scheduler.gc")

#: Default period of the batch sweep, per record kind (seconds).
DEFAULT_SWEEP_INTERVAL: Final = 60.0


@final
class GarbageCollector:
    """Deadline-driven eviction over a fixed sequence of ledgers."""

    def __init__(
        self, ledgers: Sequence[Ledger[Any]], policies: PolicySet, view: StateView
    ) -> None:
        self.ledgers = tuple(ledgers)
        self.by_kind = {ledger.kind: ledger for ledger in self.ledgers}
        self.policies = policies
        self.view = view

    def next_deadline(self, kinds: Collection[RecordKind]) -> float | None:
        """When the GC must next run for ``kinds``: the earliest deadline or sweep."""
        times = [ledger.next_deadline() for ledger in self.ledgers if ledger.kind in kinds]
        return min(times) if times else None

    def collect_expired(
        self, now: float, kinds: Collection[RecordKind], max_count: int | None = None
    ) -> list[Event]:
        """Evict every record of ``kinds`` whose deadline is <= ``now``; nothing else.

        An eviction can give another record a deadline that has passed too
        (a task made idle by its last peer's eviction); the loop collects it
        in the same call. With ``max_count``, at most that many due records are
        evicted (what cascades from them goes along: a host's peers leave with
        it); the rest stay due, so ``next_deadline(kinds) <= now`` says to call again.
        """
        if max_count is not None and max_count < 1:
            raise ValueError(f"max_count must be >= 1, got {max_count!r}")
        events: list[Event] = []
        remaining = max_count
        while True:
            evicted_any = False
            for ledger in self.ledgers:
                if ledger.kind not in kinds or remaining == 0:
                    continue
                due = ledger.pop_due(now, remaining)
                if remaining is not None:
                    remaining -= len(due)
                for record_id, expiry in due:
                    if ledger.exists(record_id):  # pragma: no branch - removal drops deadlines
                        evicted_any = True
                        events.extend(ledger.evict(record_id, expiry.reason, now, expiry.at))
            if not evicted_any or remaining == 0:
                return events

    def sweep(self, now: float, kind: RecordKind, max_count: int | None = None) -> list[Event]:
        """The periodic batch sweep of one kind: re-ask for undecided records, apply verdicts.

        Then collect what is due, at most ``max_count`` records (see :meth:`collect_expired`).
        """
        ledger = self.by_kind[kind]
        ledger.start_sweep(now)
        events: list[Event] = []
        for verdict in self.policies.sweep(kind, self.view, now):
            if verdict.kind is not kind or not ledger.exists(verdict.record_id):
                log.warning(
                    "ignoring sweep verdict for %s %s: not a live %s record",
                    verdict.kind.value,
                    verdict.record_id,
                    kind.value,
                )
                continue
            events.extend(ledger.evict(verdict.record_id, verdict.reason, now))
        events.extend(self.collect_expired(now, (kind,), max_count))
        return events

    def run_gc(
        self, now: float, kinds: Collection[RecordKind], max_count: int | None = None
    ) -> list[Event]:
        """Collect what has expired, then run each sweep that is due.

        ``max_count`` bounds each collection (the first, and the one of each sweep).
        """
        events = self.collect_expired(now, kinds, max_count)
        for ledger in self.ledgers:
            if ledger.kind in kinds and ledger.next_sweep_at <= now:
                events.extend(self.sweep(now, ledger.kind, max_count))
        return events
