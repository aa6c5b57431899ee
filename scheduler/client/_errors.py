"""The exceptions of the client library.

Every one of them derives from :class:`SchedulerClientError`, so a caller that
only wants to know "the scheduler did not work out this time" catches one class.
"""

from __future__ import annotations

from typing import Final, TypeVar, final

E = TypeVar("E", bound=BaseException)


class SchedulerClientError(Exception):
    """Base class of every error the client library raises on purpose."""


@final
class ConnectError(SchedulerClientError):
    """The WebSocket to the scheduler could not be opened.

    ``status_code`` is the HTTP status when the scheduler rejected the handshake
    (503 when it holds its maximum number of sessions), else ``None``.
    """

    def __init__(
        self, url: str, detail: str, status_code: int | None = None, *, permanent: bool = False
    ) -> None:
        super().__init__(f"cannot connect to the scheduler at {url}: {detail}")
        self.url = url
        self.detail = detail
        self.status_code = status_code
        #: True when trying again cannot help: the credential, the certificate, the URL.
        self.permanent = permanent or status_code in PERMANENT_STATUSES


#: Handshake answers no retry can change: a bad request or path, a refused credential.
PERMANENT_STATUSES: Final = frozenset({400, 401, 403, 404})
#: ``announce_host`` errors no retry can change: the host's own word is refused.
PERMANENT_ANNOUNCE_CODES: Final = frozenset({"forbidden", "invalid_message"})


@final
class PermanentError(SchedulerClientError):
    """The scheduler refuses this client for a reason no retry can fix.

    ``str()`` is one line: what was refused and what to do about it. The reference
    peer stops with it (exit status 2) instead of retrying forever.
    """

    def __init__(self, message: str, cause: SchedulerClientError) -> None:
        super().__init__(message)
        self.cause = cause


def permanent_error(exc: SchedulerClientError, *, announcing: bool) -> PermanentError | None:
    """``exc`` as a :class:`PermanentError` when no retry can fix it, else None.

    ``announcing``: ``exc`` came from the session's first ``announce_host``.
    """
    if isinstance(exc, ConnectError) and exc.permanent:
        hint = {
            401: "check the token (--token, --token-file; `scheduler token issue` makes one)",
            403: "this client may not connect (check the token's scope, the Origin header)",
        }.get(exc.status_code or 0, "")
        return PermanentError(f"{exc}{'; ' + hint if hint else ''}", exc)
    if isinstance(exc, RequestError) and announcing and exc.code in PERMANENT_ANNOUNCE_CODES:
        hint = (
            "use the token issued for this hostname, or --hostname"
            if exc.code == "forbidden"
            else "fix the host's settings (--hostname, --ip, ...)"
        )
        return PermanentError(f"the scheduler refused the announce: {exc}; {hint}", exc)
    return None


@final
class RequestError(SchedulerClientError):
    """The scheduler answered a request with an ``error`` reply.

    ``code`` is the reply's error code, one of :class:`scheduler.protocol.ErrorCode`'s
    values or a code this client does not know (the protocol allows new ones).
    For ``moved``, ``owner`` and ``url`` name the scheduler that owns the task.
    """

    def __init__(
        self, code: str, message: str, *, owner: str | None = None, url: str | None = None
    ) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.owner = owner
        self.url = url


@final
class RequestTimeout(SchedulerClientError):
    """The scheduler sent no reply to a request in time."""

    def __init__(self, request_type: str, timeout: float) -> None:
        super().__init__(f"no reply to {request_type} within {timeout:g} s")
        self.request_type = request_type
        self.timeout = timeout


@final
class SessionLost(SchedulerClientError):
    """The session ended without ``leave_host``.

    ``reason`` says why in words. ``close_code`` is the WebSocket close code when
    the connection was closed (1001: the scheduler shut down, 4001: evicted, 1006:
    the connection dropped), else ``None`` (e.g. the heartbeat failed).
    ``evicted_reason`` is the ``reason`` of the scheduler's ``evicted`` message,
    if it sent one (``ttl_expired``, ``superseded``, ``admin``, ...).
    """

    def __init__(
        self,
        reason: str,
        *,
        close_code: int | None = None,
        evicted_reason: str | None = None,
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.close_code = close_code
        self.evicted_reason = evicted_reason

    def copy(self) -> SessionLost:
        """A fresh exception with the same details, to raise once more elsewhere."""
        return SessionLost(
            self.reason, close_code=self.close_code, evicted_reason=self.evicted_reason
        )


def first_leaf(group: BaseExceptionGroup[E]) -> E:
    """The first leaf of a (nested) exception group: a session ends for one reason."""
    leaf: BaseException = group
    while isinstance(leaf, BaseExceptionGroup):
        leaf = leaf.exceptions[0]
    return leaf  # type: ignore[return-value]
