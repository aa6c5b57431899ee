"""Who may open a connection or a session, sans-IO: totals and per-address counts.

The shell asks before it spends anything on a connection: :meth:`Admission.connect`
right after the TCP accept (before a byte is read), :meth:`Admission.open_session`
when the WebSocket handshake arrives. Each ``True`` answer must be matched by one
:meth:`disconnect` or :meth:`close_session` call; a refusal counts nothing. The
counts of an address are dropped when they reach zero, so memory follows the
open connections, not every address ever seen.
"""

from __future__ import annotations

import enum
from collections import Counter
from typing import final

import attrs


class Refused(enum.StrEnum):
    """Why a connection or a session was not admitted (the metrics' ``reason`` label)."""

    #: ``limits.max_connections`` TCP connections are open.
    MAX_CONNECTIONS = "max_connections"
    #: ``limits.max_connections_per_address`` TCP connections are open from this address.
    ADDRESS_CONNECTIONS = "address_connections"
    #: ``server.max_sessions`` sessions are open (or being opened).
    MAX_SESSIONS = "max_sessions"
    #: ``limits.max_sessions_per_address`` sessions are open from this address.
    ADDRESS_SESSIONS = "address_sessions"


@final
@attrs.frozen(kw_only=True)
class AdmissionLimits:
    max_connections: int
    max_connections_per_address: int
    max_sessions: int
    max_sessions_per_address: int


@final
class Admission:
    """Counts open connections and sessions, in total and per client address."""

    def __init__(self, limits: AdmissionLimits) -> None:
        self.limits = limits
        self.connections = 0
        self.sessions = 0
        self._connections_of: Counter[str] = Counter()
        self._sessions_of: Counter[str] = Counter()

    def connections_from(self, address: str) -> int:
        return self._connections_of[address]

    def sessions_from(self, address: str) -> int:
        return self._sessions_of[address]

    def connect(self, address: str) -> Refused | None:
        """A TCP connection from ``address`` was accepted: count it, or say why not."""
        limits = self.limits
        if self.connections >= limits.max_connections:
            return Refused.MAX_CONNECTIONS
        if self._connections_of[address] >= limits.max_connections_per_address:
            return Refused.ADDRESS_CONNECTIONS
        self.connections += 1
        self._connections_of[address] += 1
        return None

    def disconnect(self, address: str) -> None:
        """A connection counted by :meth:`connect` closed."""
        self.connections -= 1
        _decrement(self._connections_of, address)

    def open_session(self, address: str) -> Refused | None:
        """A WebSocket handshake from ``address`` arrived: count a session, or say why not."""
        limits = self.limits
        if self.sessions >= limits.max_sessions:
            return Refused.MAX_SESSIONS
        if self._sessions_of[address] >= limits.max_sessions_per_address:
            return Refused.ADDRESS_SESSIONS
        self.sessions += 1
        self._sessions_of[address] += 1
        return None

    def close_session(self, address: str) -> None:
        """A session counted by :meth:`open_session` ended (or its handshake failed)."""
        self.sessions -= 1
        _decrement(self._sessions_of, address)


def _decrement(counts: Counter[str], address: str) -> None:
    counts[address] -= 1
    if counts[address] <= 0:
        del counts[address]
