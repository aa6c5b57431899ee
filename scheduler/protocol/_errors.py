"""Error codes and the exceptions of the wire protocol.

This module imports nothing else from the package, so both the message classes
and the codec can depend on it.
"""

from __future__ import annotations

import enum
from typing import final


@final
class ErrorCode(enum.StrEnum):
    """The ``code`` of an ``error`` reply. The values are part of the wire protocol."""

    #: The frame is not JSON, or is JSON but not an object.
    INVALID_JSON = "invalid_json"
    #: ``"type"`` is missing, not a string, or not a client message type.
    UNKNOWN_TYPE = "unknown_type"
    #: A field is missing, extra, of the wrong type or out of range.
    INVALID_MESSAGE = "invalid_message"
    #: The message names a host or peer that this session does not own; with
    #: authentication on, also an announce its identity may not make.
    FORBIDDEN = "forbidden"
    #: The peer or task does not exist (or was already evicted).
    NOT_FOUND = "not_found"
    #: The request contradicts existing state, e.g. a peer id reused for another task.
    CONFLICT = "conflict"
    #: The peer's lifecycle does not allow this event now.
    ILLEGAL_STATE = "illegal_state"
    #: The host reached one of its bounds: peers or tasks per host (``[records]``).
    LIMIT_EXCEEDED = "limit_exceeded"
    #: Any message other than ``announce_host`` before the host was announced.
    NOT_ANNOUNCED = "not_announced"
    #: Too many errors in the error window; the server closes with 1008 next.
    TOO_MANY_ERRORS = "too_many_errors"
    #: The session sent more messages than its rate allows (``limits.message_rate``,
    #: ``limits.message_burst``); the message was not applied. Slow down and resend;
    #: past ``limits.rate_violation_limit`` of these the server closes with 1008.
    RATE_LIMITED = "rate_limited"
    #: ``register_peer`` for a task another scheduler of the cluster owns (rendezvous
    #: over the active members' names, ``serve --registry`` only). The reply names the
    #: owner (``owner``: its name, ``url``: its peers' WebSocket URL); nothing was
    #: applied, and it does not count towards the error limit. Register it there.
    MOVED = "moved"
    #: A bug on the server side; the request may or may not have been applied.
    INTERNAL = "internal"


@final
class ProtocolError(Exception):
    """A frame that cannot be decoded into a message.

    ``request_id`` is the frame's ``"id"`` when it could be read (a string or an
    integer), so that the ``error`` reply can echo it; otherwise ``None``.
    """

    def __init__(self, code: ErrorCode, message: str, request_id: str | int | None = None) -> None:
        super().__init__(f"{code.value}: {message}")
        self.code = code
        self.message = message
        self.request_id = request_id


@final
class InvalidValue(ValueError):
    """A field holds a value of the right type that the protocol does not allow.

    ``reason`` says what is wrong without naming the field (the codec adds the
    field's path), e.g. ``"must be finite and > 0"``.
    """

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}" if field else reason)
        self.field = field
        self.reason = reason
