"""The interface every ledger implements, and the bookkeeping they share.

A ledger owns the records of one kind (hosts, peers or tasks): the records,
their indexes and per-state counts, and their deadlines. Whenever a record
changes, the ledger asks the policies for its expiry (the earliest answer
wins) and keeps it in a :class:`DeadlineQueue`; records no policy gave a
deadline to are *undecided*, and the periodic sweep asks again for them.

The GC engine (:mod:`._gc`) sees only this interface: :attr:`Ledger.kind`,
:meth:`~Ledger.next_deadline`, :meth:`~Ledger.pop_due`,
:meth:`~Ledger.start_sweep`, :meth:`~Ledger.exists` and :meth:`~Ledger.evict`.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Iterator
from typing import ClassVar, Generic, Protocol, TypeVar

from ._deadlines import DeadlineQueue
from ._errors import NotFound
from ._events import Event, Expiry
from ._model import Host, Peer, RecordKind, Task
from ._policy import PolicySet
from ._view import StateView

R = TypeVar("R", Host, Peer, Task)


class PeerCascade(Protocol):
    """What the host and task ledgers need of the peer ledger: their peers, and their eviction."""

    def of_task(self, task_id: str) -> list[Peer]: ...

    def evict_of_host(self, host_id: str, now: float) -> list[Event]:
        """Evict every peer of a host that is going (reason ``host_evicted``)."""

    def evict_of_task(self, task_id: str, now: float) -> list[Event]:
        """Evict every peer of a task that is going (reason ``task_evicted``)."""


class _Records(dict[str, R]):
    """A ledger's records by id; a missing id raises :class:`NotFound` naming the kind.

    ``records[id]`` is then the whole look-up, done in C, which a decision makes
    dozens of times (``Ledger.get`` is this dict's own ``__getitem__``).
    """

    __slots__ = ("kind",)

    def __init__(self, kind: str) -> None:
        super().__init__()
        self.kind = kind

    def __missing__(self, record_id: str) -> R:
        raise NotFound(self.kind, record_id)


class Ledger(abc.ABC, Generic[R]):
    """The records of one kind, their deadline queue, undecided set and sweep clock."""

    kind: ClassVar[RecordKind]

    def __init__(self, policies: PolicySet, *, now: float, sweep_interval: float) -> None:
        self.policies = policies
        self.queue = DeadlineQueue()
        self.sweep_interval = sweep_interval
        #: When the periodic sweep of this kind is next due.
        self.next_sweep_at = now + sweep_interval
        self._records: dict[str, R] = _Records(self.kind.value)
        #: The record by id, raising NotFound if there is none.
        self.get: Callable[[str], R] = self._records.__getitem__
        #: The record, or None if there is none (no exception: for hot paths). The
        #: dict's own ``get``, so that a decision's host look-ups are one C call each.
        self.find: Callable[[str], R | None] = self._records.get
        #: Records no policy gave a deadline to; the sweep asks again (the safety net).
        self._undecided: set[str] = set()
        self._view: StateView | None = None

    def connect(self, view: StateView) -> None:
        """Set the read-only view the policies judge this ledger's records against."""
        self._view = view

    @property
    def view(self) -> StateView:
        if self._view is None:
            raise RuntimeError(f"the {self.kind.value} ledger is not connected to a view")
        return self._view

    # --- records -----------------------------------------------------------------------

    def exists(self, record_id: str) -> bool:
        return record_id in self._records

    def count(self) -> int:
        return len(self._records)

    def records(self) -> Iterator[R]:
        """A snapshot: the caller may change the ledger while iterating."""
        return iter(list(self._records.values()))

    # --- deadlines ---------------------------------------------------------------------

    @abc.abstractmethod
    def expiry(self, record: R, now: float) -> Expiry | None:
        """What the policies in force say about ``record`` (the earliest deadline)."""

    def deadline_of(self, record_id: str) -> Expiry | None:
        return self.queue.get(record_id)

    def next_deadline(self) -> float:
        """The earliest deadline held, or the next sweep if that comes first."""
        head = self.queue.peek()
        return self.next_sweep_at if head is None else min(head, self.next_sweep_at)

    def pop_due(self, now: float, limit: int | None = None) -> list[tuple[str, Expiry]]:
        """Remove and return every deadline <= ``now``, earliest first (at most ``limit``)."""
        return self.queue.pop_due(now, limit)

    def reschedule(self, record_id: str, now: float) -> None:
        """Ask the policies again about a live record and keep their answer."""
        self._schedule(self._records[record_id], now)

    def start_sweep(self, now: float) -> None:
        """Start this kind's periodic sweep: set the next one, re-ask for undecided records.

        Re-asking costs O(undecided), not O(n), and gives a policy whose
        earlier answer was lost to a raising plugin another chance to decide.
        """
        self.next_sweep_at = now + self.sweep_interval
        for record_id in list(self._undecided):
            self.reschedule(record_id, now)

    # --- eviction and self-check -------------------------------------------------------

    @abc.abstractmethod
    def evict(
        self, record_id: str, reason: str, now: float, deadline: float | None = None
    ) -> list[Event]:
        """Remove the record (and what depends on it) now; raise NotFound if it is gone."""

    def invariant_violations(self) -> list[str]:
        """Every way this ledger's records, indexes and deadlines disagree. O(n)."""
        problems = self._record_violations()
        kind = self.kind.value
        for record_id in self.queue.ids():
            if record_id not in self._records:
                problems.append(f"deadline held for evicted {kind} {record_id}")
            if record_id in self._undecided:
                problems.append(f"{kind} {record_id} is both scheduled and undecided")
        for record_id in self._undecided:
            if record_id not in self._records:
                problems.append(f"evicted {kind} {record_id} is still undecided")
        return problems

    @abc.abstractmethod
    def _record_violations(self) -> list[str]:
        """Disagreements between this kind's records, indexes and counters."""

    # --- for subclasses ----------------------------------------------------------------

    def _add(self, record: R) -> None:
        self._records[record.id] = record

    def _forget(self, record_id: str) -> None:
        del self._records[record_id]
        self.queue.discard(record_id)
        self._undecided.discard(record_id)

    def _schedule(self, record: R, now: float) -> None:
        expiry = self.expiry(record, now)
        self.queue.set(record.id, expiry)
        if expiry is None:
            self._undecided.add(record.id)
        else:
            self._undecided.discard(record.id)
