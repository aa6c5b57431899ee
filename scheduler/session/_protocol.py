"""The session rules, sans-IO: one :class:`SessionProtocol` per WebSocket session.

Like h11's ``Connection``, it does no I/O and reads no clock. The trio shell
hands it each frame with ``now`` and applies the :class:`Outcome`: it sends
``replies`` (in order), then ends the session with ``close`` if set, and feeds
``events`` (what the core did) to metrics, logs and the GC.

Rules, in the order they apply to a frame:

* a binary frame ends the session with ``binary_frame`` (close 1003): the
  protocol is JSON in text frames;
* every frame takes a token of the session's :class:`~._rate.MessageRate`; a
  frame over the rate is answered ``rate_limited`` (with its id, if it has one)
  and changes nothing, and more than ``rate_violation_limit`` of those within
  ``error_window`` seconds end the session with ``rate_limited`` (1008);
* a frame that does not decode gets an ``error`` with the codec's code;
* a ``batch`` frame's messages are handled in order, each by the rules here as
  if it were a frame of its own (its token, its errors, ``announce_host`` first),
  and their replies go back in one ``batch`` reply; an item that ends the
  session is the last one handled; a malformed batch (more than 1,000 items, a
  batch inside) is refused whole by the codec and changes nothing;
* ``announce_host`` is accepted at any time; the first one binds the session
  to the host (a newer session for the same host replaces this one), a later
  one for another host is ``forbidden``; with authentication on, an announce
  of a hostname the session's :class:`~._identity.Identity` may not use, or one
  that would reconnect to, take over or supersede a host another identity
  announced, is ``forbidden`` and changes nothing;
* anything else before the first announce is ``not_announced``;
* every accepted message refreshes the host's last contact, at most once per
  ``touch_every`` seconds (a pong always does);
* ``leave_host`` is acknowledged, removes the host and ends with ``leave``;
* ``register_peer`` registers the peer and schedules it at once, in one core call
  (``register_and_schedule``): the reply is ``schedule`` (with the request's id),
  not ``ack``, built from the core's typed answer; ``reschedule`` asks the core
  again (its failed parents are blocklisted) and is answered the same way; the
  time the core took to answer is in :attr:`Outcome.decision_seconds`;
* messages nobody asked for (a proactive ``schedule``, a ``fetch_task``) are
  handed to the session with :meth:`SessionProtocol.deliver` (through the host
  registry, see :mod:`._schedule`) and wait in :attr:`SessionProtocol.outbox`
  with the replies, in order; more than ``outbox_size`` waiting ends the
  session with ``outbox_overflow``;
* core errors map to wire codes (:data:`ERROR_CODE_FOR`), unknown ones to
  ``internal``;
* more than ``error_limit`` errors within ``error_window`` seconds: the reply is
  ``too_many_errors`` and the session ends with that cause.
"""

from __future__ import annotations

import logging
import math
import operator
import time
from collections import deque
from collections.abc import Callable
from typing import Final, final

import attrs

from ..core import (
    BackToSourceLimitReached,
    Conflict,
    ContactSource,
    Event,
    Forbidden,
    HostInfo,
    HostState,
    HostType,
    IllegalTransition,
    LimitExceeded,
    NotFound,
    SchedulerState,
    TaskInfo,
)
from ..protocol import (
    Ack,
    AnnounceHost,
    BackToSource,
    Batch,
    BatchReply,
    ClientMessage,
    DownloadFailed,
    DownloadFinished,
    DownloadStarted,
    ErrorCode,
    ErrorReply,
    Evicted,
    HostAccepted,
    HostPayload,
    LeaveHost,
    LeavePeer,
    PiecesFinished,
    ProtocolError,
    RegisterPeer,
    Reschedule,
    ServerMessage,
    TaskPayload,
    decode_client,
)
from ._causes import CLOSE_FOR, HOST_SETTLED, EndCause
from ._identity import Identity, check_announce
from ._networks import Network, refused_network
from ._placement import Placement
from ._rate import MessageRate, Verdict
from ._registry import HostRegistry, SessionOwner
from ._schedule import schedule_reply

log = logging.getLogger("scheduler.session")

#: Core errors and the wire code each becomes; checked in this order (first match wins).
ERROR_CODE_FOR: Final[tuple[tuple[type[Exception], ErrorCode], ...]] = (
    (Forbidden, ErrorCode.FORBIDDEN),
    (NotFound, ErrorCode.NOT_FOUND),
    (Conflict, ErrorCode.CONFLICT),
    (BackToSourceLimitReached, ErrorCode.CONFLICT),
    (LimitExceeded, ErrorCode.LIMIT_EXCEEDED),
    (IllegalTransition, ErrorCode.ILLEGAL_STATE),
    (ValueError, ErrorCode.INVALID_MESSAGE),
)

#: The ``message_type`` of an outcome whose frame did not decode.
INVALID: Final = "invalid"


@final
@attrs.frozen(kw_only=True)
class SessionLimits:
    """The settings the session rules apply (the shell builds it from its config)."""

    ping_interval: float
    ping_timeout: float
    announce_timeout: float
    error_limit: int
    error_window: float
    #: Any client message refreshes the host's last contact, at most this often.
    touch_every: float = 1.0
    #: Most unsolicited messages waiting to be sent; one more ends the session.
    outbox_size: int = 64
    #: The message rate (messages per second) and burst of one session's token bucket.
    message_rate: float = 1_000.0
    message_burst: int = 2_000
    #: ``rate_limited`` replies within ``error_window`` before the session ends.
    rate_violation_limit: int = 100
    #: The server process's random id, sent in every ``host_accepted`` (``None``: not sent).
    boot_id: str | None = None
    #: Networks whose addresses no host may announce (see :mod:`._networks`).
    refused_networks: tuple[Network, ...] = ()


@final
@attrs.frozen(kw_only=True)
class Outcome:
    """What one input did: replies to send, a cause to end with, core events to apply."""

    replies: tuple[ServerMessage, ...] = ()
    close: EndCause | None = None
    events: tuple[Event, ...] = ()
    #: The frame's message type (``"invalid"`` if it did not decode); None for non-frames.
    message_type: str | None = None
    #: Seconds the core took to decide (``register_peer``, ``reschedule``); else None.
    decision_seconds: float | None = None
    #: The ``message_type`` of each message of a ``batch`` handled, in order.
    item_types: tuple[str, ...] = ()

    @property
    def message_types(self) -> tuple[str, ...]:
        """The frame's message type and those of the messages it carried, for metrics."""
        own = () if self.message_type is None else (self.message_type,)
        return own + self.item_types

    @property
    def errors(self) -> list[ErrorReply]:
        """Every ``error`` among the replies, those inside a ``batch`` reply included."""
        found: list[ErrorReply] = []
        for reply in self.replies:
            inner = reply.replies if isinstance(reply, BatchReply) else (reply,)
            found.extend(r for r in inner if isinstance(r, ErrorReply))
        return found


_NOTHING: Final = Outcome()


def host_info_from(payload: HostPayload) -> HostInfo:
    """The one copy of what a host says (wire) into what the core keeps.

    The two classes declare the same fields (a test checks it), so the copy reads them
    all in ``HostInfo``'s order and converts only the two whose types differ on the
    wire: the host type and the optional stats.
    """
    values = list(_read_host_fields(payload))
    values[_TYPE_AT] = _HOST_TYPES[values[_TYPE_AT]]
    values[_STATS_AT] = values[_STATS_AT] or {}  # HostInfo's converter copies it
    return HostInfo(*values)


#: ``HostInfo``'s fields in order, read from a ``HostPayload`` in one call.
_HOST_FIELDS: Final = tuple(field.name for field in attrs.fields(HostInfo))
_read_host_fields: Final = operator.attrgetter(*_HOST_FIELDS)
_TYPE_AT: Final = _HOST_FIELDS.index("type")
_STATS_AT: Final = _HOST_FIELDS.index("stats")
#: The core's host type for each wire value (a dict look-up is cheaper than the Enum call).
_HOST_TYPES: Final = {member.value: member for member in HostType}


def task_info_from(payload: TaskPayload) -> TaskInfo:
    return TaskInfo(
        id=payload.task_id,
        url=payload.url,
        piece_length=payload.piece_length,
        content_length=payload.content_length,
        total_piece_count=payload.total_piece_count,
    )


def _item_id(item: ClientMessage | ProtocolError) -> str | int | None:
    return item.request_id if isinstance(item, ProtocolError) else item.id


def _item_type(item: ClientMessage | ProtocolError) -> str:
    return INVALID if isinstance(item, ProtocolError) else item.tag


def _finite(seconds: float | None) -> float | None:
    """``seconds``, or None ("never") for an infinite time."""
    return seconds if seconds is not None and math.isfinite(seconds) else None


def error_code_for(exc: Exception) -> ErrorCode | None:
    """The wire code for a core error; None: not a client's fault (internal)."""
    for kind, code in ERROR_CODE_FOR:
        if isinstance(exc, kind):
            return code
    return None


@final
class SessionProtocol:
    """The rules of one session; no I/O, no clock: every call takes ``now``."""

    def __init__(
        self,
        state: SchedulerState,
        hosts: HostRegistry,
        limits: SessionLimits,
        *,
        opened_at: float,
        owner: SessionOwner | None = None,
        remote: str = "",
        timer: Callable[[], float] = time.perf_counter,
        identity: Identity | None = None,
        placement: Placement | None = None,
    ) -> None:
        self.state = state
        self.hosts = hosts
        self.limits = limits
        self.opened_at = opened_at
        #: What the registry holds for this session; ``self`` unless a shell wraps it.
        self.owner: SessionOwner = self if owner is None else owner
        self.remote = remote
        #: Who the handshake proved the client to be; None: authentication is off.
        self.identity = identity
        #: Measures how long a decision takes (never decides anything).
        self.timer = timer
        #: In a cluster: the owner of a task this scheduler does not own (else None).
        self.placement = placement
        #: What waits to be sent, in order: replies (the shell adds them) and
        #: unsolicited messages (:meth:`deliver`).
        # A list, not a deque: most sessions are idle, and an empty deque costs 760 bytes
        # (a list 56); the outbox is bounded by ``outbox_size``, so popping its head is cheap.
        self.outbox: list[ServerMessage] = []
        self.host_id: str | None = None
        self.cause: EndCause | None = None
        self.evicted_reason: str | None = None
        self._errors: deque[float] | None = None  # made at the first error: most sessions have none
        self.rate = MessageRate(
            rate=limits.message_rate,
            burst=limits.message_burst,
            violation_limit=limits.rate_violation_limit,
            violation_window=limits.error_window,
            now=opened_at,
        )
        self._last_touch = -math.inf
        self._last_ping_touch = -math.inf
        self._closed = False

    # --- state ---------------------------------------------------------------------------

    @property
    def announce_by(self) -> float:
        """The first ``announce_host`` must arrive before this time."""
        return self.opened_at + self.limits.announce_timeout

    @property
    def settles_host(self) -> bool:
        """True if the end cause already decided the host's fate (no disconnect needed)."""
        return self.cause in HOST_SETTLED

    def end(self, cause: EndCause, evicted_reason: str | None = None) -> None:
        """Record why the session ends; the first cause wins."""
        if self.cause is None:
            self.cause = cause
            self.evicted_reason = evicted_reason

    def deliver(self, message: ServerMessage) -> bool:
        """Queue an unsolicited message; past ``outbox_size`` the session ends instead.

        Never blocks: a client that stopped reading must not stall the caller (a
        GC pass, another session). Returns False when the message was dropped.
        """
        if len(self.outbox) >= self.limits.outbox_size:
            self.owner.end(EndCause.OUTBOX_OVERFLOW)
            return False
        self.outbox.append(message)
        return True

    def announce_overdue(self, now: float) -> bool:
        return self.host_id is None and now >= self.announce_by

    def close_frame(self) -> tuple[int, str]:
        """The close code and reason to send (``closed`` if no cause was recorded)."""
        return CLOSE_FOR[self.cause or EndCause.CLOSED]

    def farewell(self) -> Evicted | None:
        """The ``evicted`` notice to send before the close, if the host was evicted."""
        if self.cause is not EndCause.EVICTED or self.evicted_reason is None:
            return None
        return Evicted(reason=self.evicted_reason, message=f"host {self.host_id} evicted")

    # --- inputs --------------------------------------------------------------------------

    def receive(self, frame: str | bytes, now: float) -> Outcome:
        """One client frame: decode it, apply it to the core, say what to send."""
        if isinstance(frame, bytes | bytearray):
            return Outcome(close=EndCause.BINARY_FRAME, message_type=INVALID)
        verdict = self.rate.admit(now)
        try:
            message = decode_client(frame)
        except ProtocolError as exc:
            if verdict is not Verdict.ALLOW:
                return self._rate_limited(verdict, exc.request_id, INVALID)
            return self._error(exc.code, exc.message, exc.request_id, now, INVALID)
        tag = message.tag
        if verdict is not Verdict.ALLOW:
            return self._rate_limited(verdict, message.id, tag)
        if isinstance(message, Batch):
            return self._batch(message, now)
        return self._handle(message, now)

    def _handle(self, message: ClientMessage, now: float) -> Outcome:
        """Apply one decoded message; every error becomes a reply."""
        tag = message.tag
        try:
            return self._dispatch(message, now)
        except Exception as exc:
            code = error_code_for(exc)
            if code is None:
                log.exception("internal error handling %s", tag, extra=self._fields())
                return self._error(ErrorCode.INTERNAL, "internal error", message.id, now, tag)
            return self._error(code, str(exc), message.id, now, tag)

    def _batch(self, batch: Batch, now: float) -> Outcome:
        """The items of a ``batch`` in order, each as if it were a frame of its own.

        The frame's token pays for the first item; each later one takes its own.
        An item that ends the session (``leave_host``, ``too_many_errors``, the
        rate limit's close) is the last one applied and answered.
        """
        replies: list[ServerMessage] = []
        events: list[Event] = []
        close: EndCause | None = None
        seconds: float | None = None
        types: list[str] = []
        for index, item in enumerate(batch.messages):
            verdict = Verdict.ALLOW if index == 0 else self.rate.admit(now)
            if verdict is not Verdict.ALLOW:
                outcome = self._rate_limited(verdict, _item_id(item), _item_type(item))
            elif isinstance(item, ProtocolError):
                outcome = self._error(item.code, item.message, item.request_id, now, INVALID)
            else:
                outcome = self._handle(item, now)
            replies.extend(outcome.replies)
            events.extend(outcome.events)
            types.append(outcome.message_type or INVALID)
            if outcome.decision_seconds is not None:
                seconds = (seconds or 0.0) + outcome.decision_seconds
            close = outcome.close
            if close is not None:
                break
        return Outcome(
            replies=(BatchReply(id=batch.id, replies=replies),),
            close=close,
            events=tuple(events),
            message_type=batch.tag,
            decision_seconds=seconds,
            item_types=tuple(types),
        )

    def on_pong(self, now: float) -> Outcome:
        """A pong arrived: the host is alive (not rate-limited: the server paces its pings)."""
        return Outcome(events=tuple(self._touch(ContactSource.PONG, now, force=True)))

    def on_ping(self, now: float) -> Outcome:
        """The client pinged: the host is alive. A client that keeps its own heartbeat is
        never pinged (the server pings silent sessions only), so its pings are its contact.
        At most one per ``touch_every``: the client paces these."""
        if self.host_id is None or now - self._last_ping_touch < self.limits.touch_every:
            return _NOTHING
        self._last_ping_touch = now
        return Outcome(events=tuple(self._touch(ContactSource.PING, now, force=True)))

    def on_closed(self, now: float) -> Outcome:
        """The session is over: release the host, and disconnect it unless already settled.

        Call once, after the socket's end; later calls do nothing. The disconnect
        defers its proactive pushes: the shell calls ``state.flush_pushes(now)``
        once the sessions that ended together have all been closed.
        """
        if self._closed:
            return _NOTHING
        self._closed = True
        self.end(EndCause.CLOSED)
        host_id = self.host_id
        if host_id is None or not self.hosts.release(self.owner, host_id):
            return _NOTHING
        state = self.state
        if self.settles_host or not state.has_host(host_id):
            return _NOTHING
        if state.host(host_id).state is not HostState.CONNECTED:
            return _NOTHING
        log.info("session dropped", extra=self._fields(cause=str(self.cause)))
        # The pushes to the children of the host's peers wait for the shell's next
        # ``state.flush_pushes``: sessions drop by the dozen when a rack goes, and
        # every one of those hosts is then marked before anyone is given new parents.
        return Outcome(events=tuple(state.disconnect_host(host_id, now, defer_pushes=True)))

    # --- rules ---------------------------------------------------------------------------

    def _dispatch(self, message: ClientMessage, now: float) -> Outcome:
        tag = message.tag
        if isinstance(message, AnnounceHost):
            return self._announce(message, now)
        host_id = self.host_id
        if host_id is None:
            text = "the first message must be announce_host"
            return self._error(ErrorCode.NOT_ANNOUNCED, text, message.id, now, tag)
        events = self._touch(ContactSource.MESSAGE, now)
        state = self.state
        close: EndCause | None = None
        if isinstance(message, RegisterPeer | Reschedule):
            return self._schedule(message, host_id, events, now)
        if isinstance(message, LeaveHost):
            # Recorded now, not when the shell ends the session after the ack: a
            # concurrent end (an eviction) must not turn a leave into a drop.
            self.end(EndCause.LEAVE)
            events += state.leave_host(host_id, now)
            close = EndCause.LEAVE
        elif isinstance(message, DownloadStarted):
            events += state.start_download(message.peer_id, now, as_host=host_id)
        elif isinstance(message, BackToSource):
            events += state.back_to_source(message.peer_id, now, as_host=host_id)
        elif isinstance(message, PiecesFinished):
            events += state.finish_pieces(
                message.peer_id,
                message.pieces,
                now,
                parent_id=message.parent_id,
                cost=message.cost,
                as_host=host_id,
            )
        elif isinstance(message, DownloadFinished):
            events += state.finish_download(message.peer_id, now, as_host=host_id)
        elif isinstance(message, DownloadFailed):
            events += state.fail_download(message.peer_id, now, as_host=host_id)
        elif isinstance(message, LeavePeer):
            events += state.leave_peer(message.peer_id, now, as_host=host_id)
        else:  # pragma: no cover - the codec only yields the types above
            raise TypeError(f"unhandled message {message!r}")
        return Outcome(
            replies=(Ack(id=message.id),), close=close, events=tuple(events), message_type=tag
        )

    def _schedule(
        self, message: RegisterPeer | Reschedule, host_id: str, events: list[Event], now: float
    ) -> Outcome:
        """``register_peer`` and ``reschedule``: the core decides; the reply is ``schedule``."""
        state, peer_id = self.state, message.peer_id
        if isinstance(message, RegisterPeer):
            owner = None if self.placement is None else self.placement(message.task.task_id)
            if owner is not None:
                return self._moved(message, owner, events)
            task_info = task_info_from(message.task)
            started = self.timer()
            scheduled = state.register_and_schedule(peer_id, host_id, task_info, now)
        else:
            started = self.timer()
            scheduled = state.reschedule(peer_id, message.failed_parents, now, as_host=host_id)
        seconds = self.timer() - started
        events += scheduled.events
        reply = schedule_reply(scheduled, message.id)
        return Outcome(
            replies=(reply,),
            events=tuple(events),
            message_type=message.tag,
            decision_seconds=seconds,
        )

    def _moved(self, message: RegisterPeer, owner: tuple[str, str], events: list[Event]) -> Outcome:
        """Another scheduler owns the task: say which; nothing is applied.

        Not an error of the client's (its list of members was older than ours), so it
        does not count towards the error limit; the host's sign of life still counts.
        """
        name, url = owner
        text = f"task {message.task.task_id} belongs to scheduler {name!r}"
        reply = ErrorReply(id=message.id, code=ErrorCode.MOVED, message=text, owner=name, url=url)
        return Outcome(replies=(reply,), events=tuple(events), message_type=message.tag)

    def _announce(self, message: AnnounceHost, now: float) -> Outcome:
        info = host_info_from(message.host)
        host_id = info.id
        if self.host_id is not None and host_id != self.host_id:
            raise Forbidden(
                f"this session owns host {self.host_id!r}; it cannot announce {host_id!r}"
            )
        state = self.state
        refused = refused_network(info.ip, self.limits.refused_networks)
        if refused is not None:
            raise Forbidden(
                f"ip {info.ip} is in {refused}, a network this scheduler refuses for hosts "
                "(limits.refused_host_networks): other hosts could not download from it"
            )
        if self.identity is not None:
            # Checked before the core is asked: a forbidden announce changes nothing.
            same_name = state.view.host_ids_by_hostname(info.hostname)
            affected = [h for h in (host_id, *sorted(same_name)) if state.has_host(h)]
            check_announce(
                self.identity,
                info.hostname,
                affected,
                self.hosts.identity_of,
                seed=info.type is HostType.SEED,
            )
        announced = state.announce(info, now, interval=message.interval)
        self._last_touch = now
        if self.host_id is None:
            self.host_id = host_id
            self.hosts.claim(host_id, self.owner, self.identity)
        expiry = announced.expiry
        limits = self.limits
        # Built so that it cannot fail: the announce is applied already.
        ttl = _finite(None if expiry is None else max(expiry.at - now, 1e-3))
        accepted = HostAccepted(
            id=message.id,
            host_id=host_id,
            ttl=ttl,
            ping_interval=limits.ping_interval,
            ping_timeout=limits.ping_timeout,
            reconnect_grace=_finite(announced.reconnect_grace),
            boot_id=limits.boot_id,
        )
        return Outcome(replies=(accepted,), events=announced.events, message_type=message.tag)

    def _touch(self, source: ContactSource, now: float, *, force: bool = False) -> list[Event]:
        """Count a sign of life (rate-limited for ordinary messages)."""
        host_id = self.host_id
        if host_id is None or (not force and now - self._last_touch < self.limits.touch_every):
            return []
        if not self.hosts.owns(self.owner, host_id):
            return []
        self._last_touch = now
        return self.state.touch_host(host_id, now, source)

    def _error(
        self,
        code: ErrorCode,
        text: str,
        request_id: str | int | None,
        now: float,
        message_type: str,
    ) -> Outcome:
        limits, errors = self.limits, self._errors
        if errors is None:
            errors = self._errors = deque()
        errors.append(now)
        while errors and errors[0] <= now - limits.error_window:
            errors.popleft()
        close: EndCause | None = None
        if len(errors) > limits.error_limit:
            code, close = ErrorCode.TOO_MANY_ERRORS, EndCause.TOO_MANY_ERRORS
            text = f"more than {limits.error_limit} errors in {limits.error_window:g}s"
        reply = ErrorReply(id=request_id, code=code, message=text)
        return Outcome(replies=(reply,), close=close, message_type=message_type)

    def _rate_limited(
        self, verdict: Verdict, request_id: str | int | None, message_type: str
    ) -> Outcome:
        """The answer to a frame over the rate: nothing applied, maybe the end."""
        bucket = self.rate.bucket
        text = f"more than {bucket.rate:g} messages/s (burst {bucket.burst}); slow down"
        reply = ErrorReply(id=request_id, code=ErrorCode.RATE_LIMITED, message=text)
        close = EndCause.RATE_LIMITED if verdict is Verdict.CLOSE else None
        return Outcome(replies=(reply,), close=close, message_type=message_type)

    def _fields(self, **extra: object) -> dict[str, object]:
        # The same shape as the service's log fields (scheduler.service._logging.fields).
        return {"fields": {"host_id": self.host_id, "remote": self.remote, **extra}}
