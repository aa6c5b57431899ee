"""Typed errors raised by the sans-IO core.

Every error leaves the state exactly as it was: the core validates before it
mutates, so a caller can report the error and carry on.
"""

from __future__ import annotations

from typing import final


class SchedulerError(Exception):
    """Base class of every error the core raises on purpose."""


@final
class IllegalTransition(SchedulerError):
    """A lifecycle event that the transition table does not allow."""

    def __init__(self, machine: str, state: object, event: object) -> None:
        self.machine = machine
        self.state = state
        self.event = event
        super().__init__(f"{machine}: event {event!s} is not allowed in state {state!s}")


@final
class NotFound(SchedulerError, LookupError):
    """The host, peer or task does not exist (or was already evicted)."""

    def __init__(self, kind: str, record_id: str) -> None:
        self.kind = kind
        self.record_id = record_id
        super().__init__(f"{kind} {record_id!r} not found")


@final
class Forbidden(SchedulerError):
    """A session tried to touch a record that belongs to another host."""


@final
class Conflict(SchedulerError):
    """The request contradicts existing state (e.g. a peer id reused on another host)."""


@final
class BackToSourceLimitReached(SchedulerError):
    """The task already has as many back-to-source peers as its limit allows."""


@final
class LimitExceeded(SchedulerError):
    """A host asked for more records than its bounds allow (peers, tasks, origin slots)."""


@final
class ConfigError(SchedulerError, ValueError):
    """A configuration value is missing, unknown or malformed; the message names the key."""

    def __init__(self, key: str, message: str) -> None:
        self.key = key
        super().__init__(f"{key}: {message}")
