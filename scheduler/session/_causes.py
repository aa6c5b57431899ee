"""Why a session ends, and the close frame each end sends.

A session ends exactly once; the first cause wins. The causes in
:data:`HOST_SETTLED` already decided the host's fate (it left, was evicted, or
was handed to a newer session), so the end does not mark it disconnected.
"""

from __future__ import annotations

import enum
from typing import Final

from ..protocol import CloseCode


class EndCause(enum.StrEnum):
    LEAVE = "leave"
    CLOSED = "closed"
    PING_TIMEOUT = "ping_timeout"
    SEND_TIMEOUT = "send_timeout"
    EVICTED = "evicted"
    REPLACED = "replaced"
    TOO_MANY_ERRORS = "too_many_errors"
    #: More unsolicited messages (pushes, ``fetch_task``) waiting than ``outbox_size``:
    #: the client stopped reading.
    OUTBOX_OVERFLOW = "outbox_overflow"
    ANNOUNCE_TIMEOUT = "announce_timeout"
    #: More ``rate_limited`` replies than ``limits.rate_violation_limit`` in the error window.
    RATE_LIMITED = "rate_limited"
    #: A binary frame (the protocol is text frames only).
    BINARY_FRAME = "binary_frame"
    SHUTDOWN = "shutdown"
    INTERNAL = "internal"


#: The close code and reason sent for each cause.
CLOSE_FOR: Final[dict[EndCause, tuple[int, str]]] = {
    EndCause.LEAVE: (CloseCode.NORMAL, "host left"),
    EndCause.CLOSED: (CloseCode.NORMAL, "connection closed"),
    EndCause.PING_TIMEOUT: (CloseCode.GOING_AWAY, "no pong within ping_timeout"),
    EndCause.SEND_TIMEOUT: (CloseCode.GOING_AWAY, "send timed out"),
    EndCause.EVICTED: (CloseCode.EVICTED, "evicted"),
    EndCause.REPLACED: (CloseCode.REPLACED, "the host announced on a newer session"),
    EndCause.TOO_MANY_ERRORS: (CloseCode.POLICY_VIOLATION, "too many errors"),
    EndCause.OUTBOX_OVERFLOW: (CloseCode.POLICY_VIOLATION, "too many messages left unread"),
    EndCause.ANNOUNCE_TIMEOUT: (CloseCode.POLICY_VIOLATION, "no announce_host in time"),
    EndCause.RATE_LIMITED: (CloseCode.POLICY_VIOLATION, "message rate exceeded"),
    EndCause.BINARY_FRAME: (CloseCode.UNSUPPORTED_DATA, "binary frames are not supported"),
    EndCause.SHUTDOWN: (CloseCode.GOING_AWAY, "scheduler shutting down"),
    EndCause.INTERNAL: (CloseCode.INTERNAL_ERROR, "internal error"),
}

#: Causes after which the host is *not* marked disconnected: it is already gone or handed over.
HOST_SETTLED: Final = frozenset({EndCause.LEAVE, EndCause.EVICTED, EndCause.REPLACED})
