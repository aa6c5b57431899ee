"""The host ledger (the README's HostManager): announce, contact, disconnect, leave, evict."""

from __future__ import annotations

import math
import operator
from collections import Counter
from typing import ClassVar, Final, final

import attrs

from ._events import (
    ContactSource,
    Event,
    Eviction,
    Expiry,
    HostDisconnected,
    HostReconnected,
    HostRegistered,
    Reason,
)
from ._ledger import Ledger, PeerCascade
from ._lifecycle import HOST_TRANSITIONS, HostEvent, HostState, transition
from ._model import Host, HostInfo, RecordKind
from ._policy import PolicySet


def require_finite_positive(name: str, value: float | None) -> None:
    if value is not None and not (math.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a positive finite number of seconds, got {value!r}")


#: Every field of a host, in the order of its ``__init__``'s parameters.
_host_fields: Final = operator.attrgetter(*(field.name for field in attrs.fields(Host)))


def _copy_host(host: Host) -> Host:
    """A copy of ``host`` (what ``attrs.evolve`` makes, at about a quarter of its cost)."""
    return Host(*_host_fields(host))


@final
class HostLedger(Ledger[Host]):
    """Hosts by id and by hostname, with live counts per connection state."""

    kind: ClassVar[RecordKind] = RecordKind.HOST
    #: Whose records go when a host goes (set once by the facade: the peer ledger).
    peers: PeerCascade

    def __init__(self, policies: PolicySet, *, now: float, sweep_interval: float) -> None:
        super().__init__(policies, now=now, sweep_interval=sweep_interval)
        self._by_hostname: dict[str, set[str]] = {}
        self._states: Counter[HostState] = Counter()

    # --- queries -----------------------------------------------------------------------

    def ids_by_hostname(self, hostname: str) -> frozenset[str]:
        return frozenset(self._by_hostname.get(hostname, ()))

    def counts_by_state(self) -> dict[HostState, int]:
        return {state: self._states[state] for state in HostState if state is not HostState.LEFT}

    def is_schedulable(self, host_id: str) -> bool:
        host = self._records.get(host_id)
        return host is not None and host.schedulable

    def schedulable(self) -> list[Host]:
        return [h for h in self._records.values() if h.schedulable]

    def expiry(self, record: Host, now: float) -> Expiry | None:
        return self.policies.host_expiry(record, self.view, now)

    def reconnect_grace(self, host_id: str, now: float) -> float | None:
        """Seconds a disconnect at ``now`` would leave the host before the policies evict it.

        Asks the policies about a disconnected copy of the host; changes nothing.
        """
        copy = _copy_host(self.get(host_id))
        copy.state, copy.disconnected_at = HostState.DISCONNECTED, now
        expiry = self.expiry(copy, now)
        return None if expiry is None else max(0.0, expiry.at - now)

    # --- mutations ---------------------------------------------------------------------

    def announce(self, info: HostInfo, now: float, interval: float | None) -> list[Event]:
        require_finite_positive("interval", interval)
        if not info.hostname or not info.ip:
            raise ValueError("hostname and ip must be non-empty")
        events: list[Event] = []
        host = self._records.get(info.id)
        if host is None:
            host = Host(
                id=info.id,
                info=info,
                announce_interval=interval,
                created_at=now,
                last_announce_at=now,
                last_contact_at=now,
            )
            self._add(host)
            self._states[host.state] += 1
            self._by_hostname.setdefault(info.hostname, set()).add(host.id)
            events.append(HostRegistered(host.id, now))
        else:
            new_state = transition("host", HOST_TRANSITIONS, host.state, HostEvent.ANNOUNCE)
            disconnected_at = host.disconnected_at
            self._set_state(host, new_state)
            host.disconnected_at = None
            host.info = info  # same id, so the same hostname, ip and type
            host.announce_interval = interval
            host.last_announce_at = now
            host.last_contact_at = now
            if disconnected_at is not None:
                events.append(HostReconnected(host.id, now, now - disconnected_at))
                self.policies.host_reconnected(host, now - disconnected_at, now)
        self.policies.host_contact(host, ContactSource.ANNOUNCE, now)
        for other_id in dict.fromkeys(self.policies.host_supersedes(host, self.view, now)):
            if other_id != host.id and other_id in self._records:
                events.extend(self.evict(other_id, Reason.SUPERSEDED, now))
        self._schedule(host, now)
        return events

    def touch(self, host_id: str, now: float, source: ContactSource) -> None:
        host = self.get(host_id)
        host.last_contact_at = max(host.last_contact_at, now)
        self.policies.host_contact(host, source, now)
        self._schedule(host, now)

    def disconnect(self, host_id: str, now: float) -> list[Event]:
        host = self.get(host_id)
        self._set_state(
            host, transition("host", HOST_TRANSITIONS, host.state, HostEvent.DISCONNECT)
        )
        host.disconnected_at = now
        self.policies.host_disconnected(host, now)
        self._schedule(host, now)
        return [HostDisconnected(host.id, now)]

    def leave(self, host_id: str, now: float) -> list[Event]:
        host = self.get(host_id)
        transition("host", HOST_TRANSITIONS, host.state, HostEvent.LEAVE)
        host.last_contact_at = max(host.last_contact_at, now)
        return self.evict(host_id, Reason.LEAVE, now)

    def evict(
        self, record_id: str, reason: str, now: float, deadline: float | None = None
    ) -> list[Event]:
        """Evict the host and, first, its peers (reason ``host_evicted``)."""
        host = self.get(record_id)
        events = self.peers.evict_of_host(host.id, now)
        self._states[host.state] -= 1
        host.state = HostState.LEFT
        self._forget(host.id)
        same_name = self._by_hostname[host.info.hostname]
        same_name.discard(host.id)
        if not same_name:
            del self._by_hostname[host.info.hostname]
        eviction = Eviction(
            kind=RecordKind.HOST,
            record_id=host.id,
            reason=str(reason),
            at=now,
            last_contact=host.last_contact_at,
            deadline=deadline,
            host_id=host.id,
            hostname=host.info.hostname,
        )
        self.policies.evicted(eviction)
        events.append(eviction)
        return events

    # --- internals ---------------------------------------------------------------------

    def _set_state(self, host: Host, state: HostState) -> None:
        self._states[host.state] -= 1
        self._states[state] += 1
        host.state = state

    def _record_violations(self) -> list[str]:
        problems: list[str] = []
        by_name: dict[str, set[str]] = {}
        for host in self._records.values():
            by_name.setdefault(host.info.hostname, set()).add(host.id)
            if host.id != host.info.id:
                problems.append(f"host {host.id} holds the info of {host.info.id}")
            if host.state is HostState.LEFT:
                problems.append(f"host {host.id} is kept in state left")
            if (host.state is HostState.DISCONNECTED) != (host.disconnected_at is not None):
                problems.append(f"host {host.id}: disconnected_at disagrees with {host.state}")
        if by_name != self._by_hostname:
            problems.append("hosts-by-hostname index disagrees with the host records")
        counts = Counter(h.state for h in self._records.values())
        if +counts != +self._states:
            problems.append(f"host state counts {dict(self._states)} != {dict(counts)}")
        return problems
