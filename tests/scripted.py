"""A plugin whose answers a test sets, and which writes down every hook call it gets.

Tests of the ledgers, the GC engine and the facade use it to state what the
policies are asked (with which record and which ``now``) and to decide exactly
which deadline each record gets.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from scheduler import hookimpl
from scheduler.core import (
    ContactSource,
    Eviction,
    Expiry,
    Host,
    HostInfo,
    Peer,
    PolicySet,
    RecordKind,
    SchedulerState,
    StateView,
    Task,
    Verdict,
)

Answer = Callable[[Any, StateView, float], Expiry | None]


class Scripted:
    """Expiries per record id (or computed), sweep verdicts per kind, and a call log."""

    name = "scripted"

    def __init__(self) -> None:
        self.expiries: dict[str, Expiry] = {}
        self.answers: dict[RecordKind, Answer] = {}
        self.verdicts: dict[RecordKind, list[Verdict]] = {}
        self.supersede: dict[str, list[str]] = {}
        self.calls: list[tuple[Any, ...]] = []
        self.evictions: list[Eviction] = []

    def _expiry(self, kind: RecordKind, record: Any, view: StateView, now: float) -> Expiry | None:
        self.calls.append((f"{kind.value}_expiry", record.id, now))
        answer = self.answers.get(kind)
        if answer is not None:
            return answer(record, view, now)
        return self.expiries.get(record.id)

    def asked(self, hook: str) -> list[tuple[Any, ...]]:
        """The arguments of every call of ``hook`` (its name without ``scheduler_``)."""
        return [call[1:] for call in self.calls if call[0] == hook]

    @hookimpl
    def scheduler_host_expiry(self, host: Host, view: StateView, now: float) -> Expiry | None:
        return self._expiry(RecordKind.HOST, host, view, now)

    @hookimpl
    def scheduler_peer_expiry(self, peer: Peer, view: StateView, now: float) -> Expiry | None:
        return self._expiry(RecordKind.PEER, peer, view, now)

    @hookimpl
    def scheduler_task_expiry(self, task: Task, view: StateView, now: float) -> Expiry | None:
        return self._expiry(RecordKind.TASK, task, view, now)

    @hookimpl
    def scheduler_sweep(self, kind: RecordKind, now: float) -> list[Verdict]:
        self.calls.append(("sweep", kind, now))
        return self.verdicts.get(kind, [])

    @hookimpl
    def scheduler_host_supersedes(self, host: Host, now: float) -> list[str]:
        self.calls.append(("supersedes", host.id, now))
        return self.supersede.get(host.id, [])

    @hookimpl
    def scheduler_host_contact(self, host: Host, source: ContactSource, now: float) -> None:
        self.calls.append(("contact", host.id, source, now))

    @hookimpl
    def scheduler_host_disconnected(self, host: Host, now: float) -> None:
        self.calls.append(("disconnected", host.id, host.state, now))

    @hookimpl
    def scheduler_host_reconnected(self, host: Host, disconnected_for: float, now: float) -> None:
        self.calls.append(("reconnected", host.id, host.state, disconnected_for, now))

    @hookimpl
    def scheduler_evicted(self, eviction: Eviction) -> None:
        self.evictions.append(eviction)


def scripted_state(
    *, now: float = 0.0, sweep_interval: float = 1000.0
) -> tuple[SchedulerState, Scripted]:
    """A state whose only policy is a fresh :class:`Scripted`."""
    script = Scripted()
    policies = PolicySet.from_plugins([script])
    return SchedulerState(policies, now=now, sweep_interval=sweep_interval), script


A = HostInfo("alpha", "10.0.0.1")
B = HostInfo("bravo", "10.0.0.2")
C = HostInfo("charlie", "10.0.0.3")
