"""The messages of protocol v1, as frozen attrs classes.

Rules of this file:

* One class per message type; its ``tag`` class variable is the ``"type"`` on the
  wire. The codec builds its dispatch tables from :data:`CLIENT_MESSAGES` and
  :data:`SERVER_MESSAGES`, so adding a class here and to one table is enough.
* Field types are exactly what JSON carries (``str``, ``int``, ``float``, ``list``,
  ``dict``, nested payload classes). An optional field is ``X | None = None`` and
  is left out of the frame when it is ``None``.
* Range checks live in the attrs validators below, so a message built in Python
  is as valid as one decoded from the wire. Type checks live in the codec.
"""

from __future__ import annotations

import enum
import functools
import hashlib
import ipaddress
import math
import re
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any, ClassVar, Final, Literal, TypeAlias, TypeVar, final

import attrs
from cattrs.errors import AttributeValidationNote

from ._errors import InvalidValue, ProtocolError

#: The WebSocket subprotocol name of this protocol version.
SUBPROTOCOL: Final = "scheduler.v1"

#: The most piece numbers one ``pieces_finished`` may carry.
MAX_PIECES_PER_MESSAGE: Final = 10_000

#: The most parent ids one ``reschedule`` may name.
MAX_FAILED_PARENTS: Final = 100

#: The most messages one ``batch`` frame may carry.
MAX_BATCH_MESSAGES: Final = 1_000

#: The most ``host.upload_bandwidth`` a host may announce (bits/s): 10 Tbit/s.
MAX_UPLOAD_BANDWIDTH: Final = 10**13

#: Bounds of ``announce_host``'s ``interval`` (seconds): a second to a day.
MIN_ANNOUNCE_INTERVAL: Final = 1.0
MAX_ANNOUNCE_INTERVAL: Final = 86_400.0

#: Characters no name or id may hold: C0 and C1 controls, DEL, and the Unicode line
#: and paragraph separators (a hostname holding a newline could forge a log line).
CONTROL_CHARACTERS: Final = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")


@final
class CloseCode(enum.IntEnum):
    """The WebSocket close codes the server uses, and when."""

    #: The host left (``leave_host``) and the server closed the session.
    NORMAL = 1000
    #: The server is shutting down.
    GOING_AWAY = 1001
    #: A frame broke the WebSocket framing rules (an unmasked client frame, a reserved
    #: opcode or bit, a bad control frame).
    PROTOCOL_ERROR = 1002
    #: A binary frame: the protocol is JSON in text frames only.
    UNSUPPORTED_DATA = 1003
    #: A text frame that is not valid UTF-8.
    INVALID_PAYLOAD = 1007
    #: Too many errors within the error window (after a ``too_many_errors`` reply), too
    #: many ``rate_limited`` replies, too many frames in flight or unread, or no
    #: ``announce_host`` in time.
    POLICY_VIOLATION = 1008
    #: A frame was longer than the server's ``max_message_size``.
    MESSAGE_TOO_BIG = 1009
    #: An unexpected server error ended the session.
    INTERNAL_ERROR = 1011
    #: The host was evicted (after an ``evicted`` message).
    EVICTED = 4001
    #: The same host announced on a newer session, which now owns it.
    REPLACED = 4002


HostType: TypeAlias = Literal["normal", "seed"]

_T = TypeVar("_T")
_Validator: TypeAlias = Callable[[Any, "attrs.Attribute[_T]", _T], None]


# --- validators ------------------------------------------------------------------


def _invalid(attribute: attrs.Attribute[Any], reason: str) -> InvalidValue:
    exc = InvalidValue(attribute.name, reason)
    # cattrs.transform_error reads this note to put the field on the error path,
    # e.g. "must be finite and > 0 @ $.interval".
    exc.add_note(
        AttributeValidationNote(
            f"Validating field {attribute.name}", attribute.name, attribute.type
        )
    )
    return exc


def _check(ok: Callable[[_T], bool], reason: str) -> _Validator[_T]:
    # Not ``_checks((ok, reason))``: the loop over one rule costs 2 % of a re-announce's
    # instructions (bench_instructions.py: 244,087 against 249,561).
    def validate(_instance: Any, attribute: attrs.Attribute[_T], value: _T) -> None:
        if not ok(value):
            raise _invalid(attribute, reason)

    return validate


def _checks(*rules: tuple[Callable[[_T], bool], str]) -> _Validator[_T]:
    """Each rule in order; the first one broken gives the reason (one call per field:
    ``attrs.validators.and_`` costs a call per rule and one of its own)."""

    def validate(_instance: Any, attribute: attrs.Attribute[_T], value: _T) -> None:
        for ok, reason in rules:
            if not ok(value):
                raise _invalid(attribute, reason)

    return validate


def _optional(validator: _Validator[_T]) -> _Validator[_T | None]:
    """``validator`` unless the value is None (as ``attrs.validators.optional``, in one
    function call rather than an instance's ``__call__``)."""

    def validate(instance: Any, attribute: attrs.Attribute[Any], value: _T | None) -> None:
        if value is not None:
            validator(instance, attribute, value)

    return validate


def _is_positive(value: float) -> bool:
    return math.isfinite(value) and value > 0


def _is_non_negative(value: float) -> bool:
    return math.isfinite(value) and value >= 0


def _is_port(value: int) -> bool:
    return 1 <= value <= 65535


def _are_finite(values: Mapping[str, float]) -> bool:
    return all(math.isfinite(v) for v in values.values())


def _is_plain(value: str) -> bool:
    # ``isprintable`` (in C) is False for every character the pattern matches (the Cc,
    # Zl and Zp categories), so True settles it; only the rest needs the pattern.
    return value.isprintable() or CONTROL_CHARACTERS.search(value) is None


def _is_interval(value: float) -> bool:
    return MIN_ANNOUNCE_INTERVAL <= value <= MAX_ANNOUNCE_INTERVAL


#: An RFC 1123 hostname: dot-separated labels of letters, digits and hyphens, each 1 to
#: 63 characters, neither starting nor ending with a hyphen; 253 characters at most.
_HOSTNAME: Final = re.compile(
    r"(?=.{1,253}\Z)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\Z",
    re.ASCII,
)
#: A seed host's id ends with it (``{ip}-{hostname}-seed``), so no hostname may.
SEED_SUFFIX: Final = "-seed"


def is_hostname(value: str) -> bool:
    """An RFC 1123 hostname that does not end with :data:`SEED_SUFFIX`."""
    return _HOSTNAME.match(value) is not None and not value.lower().endswith(SEED_SUFFIX)


@functools.lru_cache(maxsize=65_536)
def is_ip_literal(value: str) -> bool:
    """An IPv4 or IPv6 address in its canonical text (``10.0.0.1``, ``fe80::1``), no zone.

    Canonical, so that one address has one spelling, and so one host id. Cached: a
    host announces the same address again and again.
    """
    if "%" in value:
        return False  # an IPv6 zone ("fe80::1%eth0") means nothing to another host
    try:
        return str(ipaddress.ip_address(value)) == value
    except ValueError:
        return False


_NOT_EMPTY: Final = (bool, "must not be empty")
_PLAIN: Final = (_is_plain, "must not hold control characters")
_non_empty: _Validator[str] = _check(*_NOT_EMPTY)
_plain: _Validator[str] = _check(*_PLAIN)
#: A name or id a client gives: non-empty, no control characters.
_name: _Validator[str] = _checks(_NOT_EMPTY, _PLAIN)
_hostname: _Validator[str] = _check(
    is_hostname,
    "must be an RFC 1123 hostname: labels of letters, digits and hyphens separated by dots, "
    f"at most 253 characters, not ending with {SEED_SUFFIX!r}",
)
_ip: _Validator[str] = _check(
    is_ip_literal, "must be an IPv4 or IPv6 address in canonical form (e.g. 10.0.0.1, fe80::1)"
)
_interval: _Validator[float] = _check(
    _is_interval,
    f"must be between {MIN_ANNOUNCE_INTERVAL:g} and {MAX_ANNOUNCE_INTERVAL:g} seconds",
)
_positive: _Validator[float] = _check(_is_positive, "must be finite and > 0")
_non_negative: _Validator[float] = _check(_is_non_negative, "must be finite and >= 0")
_port: _Validator[int] = _check(_is_port, "must be a port number in 1..65535")
_at_least_minus_one: _Validator[int] = _check(lambda v: v >= -1, "must be >= -1 (-1: unknown)")
_count: _Validator[int] = _check(lambda v: v >= 0, "must be >= 0")
_positive_count: _Validator[int] = _check(lambda v: v > 0, "must be > 0")
_bandwidth: _Validator[int] = _check(
    lambda v: 0 <= v <= MAX_UPLOAD_BANDWIDTH,
    f"must be between 0 (unknown) and {MAX_UPLOAD_BANDWIDTH:g} bits per second",
)


def _validate_pieces(
    _instance: Any, attribute: attrs.Attribute[list[int]], value: list[int]
) -> None:
    if not value:
        raise _invalid(attribute, "must not be empty")
    if len(value) > MAX_PIECES_PER_MESSAGE:
        raise _invalid(attribute, f"must hold at most {MAX_PIECES_PER_MESSAGE} piece numbers")
    if min(value) < 0:
        index = next(i for i, piece in enumerate(value) if piece < 0)
        raise _invalid(attribute, f"piece numbers must be >= 0 (got {value[index]} at [{index}])")


def _validate_failed_parents(
    _instance: Any, attribute: attrs.Attribute[list[str]], value: list[str]
) -> None:
    if len(value) > MAX_FAILED_PARENTS:
        raise _invalid(attribute, f"must name at most {MAX_FAILED_PARENTS} parents")
    if not all(value):
        raise _invalid(attribute, "parent ids must not be empty")
    if not all(map(_is_plain, value)):
        raise _invalid(attribute, "parent ids must not hold control characters")


def _validate_url(instance: TaskPayload, attribute: attrs.Attribute[str], value: str) -> None:
    # attrs runs validators after every field is set, so ``instance.id`` is readable.
    if instance.id is None and not value:
        raise _invalid(attribute, "a task needs an id or a url")
    _plain(instance, attribute, value)


_optional_name = _optional(_name)
_optional_interval = _optional(_interval)
_optional_positive = _optional(_positive)
_optional_non_negative = _optional(_non_negative)
_optional_finite_values: _Validator[dict[str, float] | None] = _optional(
    _checks(
        (_are_finite, "values must be finite"),
        (lambda values: all(map(_is_plain, values)), "keys must not hold control characters"),
    )
)


# --- payloads ----------------------------------------------------------------------


@final
@attrs.frozen(kw_only=True)
class HostPayload:
    """What a host says about itself in ``announce_host``."""

    #: An RFC 1123 hostname (see :func:`is_hostname`): with ``ip``, it makes the host id.
    hostname: str = attrs.field(validator=_hostname)
    #: The address other hosts download from: an IP literal in canonical form.
    ip: str = attrs.field(validator=_ip)
    port: int = attrs.field(validator=_port)
    download_port: int = attrs.field(validator=_port)
    type: HostType = "normal"
    idc: str = attrs.field(default="", validator=_plain)
    location: str = attrs.field(default="", validator=_plain)
    concurrent_upload_limit: int = attrs.field(default=50, validator=_count)
    #: Upload capacity in bits per second (0: unknown), for the parent evaluators.
    upload_bandwidth: int = attrs.field(default=0, validator=_bandwidth)
    #: Free-form load figures (cpu, memory, ...), for plugins; values must be finite.
    stats: dict[str, float] | None = attrs.field(default=None, validator=_optional_finite_values)


@final
@attrs.frozen(kw_only=True)
class TaskPayload:
    """The task a peer downloads. Either ``id`` or ``url`` is required."""

    id: str | None = attrs.field(default=None, validator=_optional_name)
    url: str = attrs.field(default="", validator=_validate_url)
    piece_length: int = attrs.field(default=4 * 1024 * 1024, validator=_positive_count)
    content_length: int = attrs.field(default=-1, validator=_at_least_minus_one)
    total_piece_count: int = attrs.field(default=-1, validator=_at_least_minus_one)

    @property
    def task_id(self) -> str:
        """``id`` if given, else the SHA-256 hex digest of ``url`` (deterministic)."""
        if self.id is not None:
            return self.id
        return task_id_for_url(self.url)


def task_id_for_url(url: str) -> str:
    """The task id of a task announced by url only: the SHA-256 hex digest of the url."""
    return hashlib.sha256(url.encode()).hexdigest()


# --- client -> server ------------------------------------------------------------------


@final
@attrs.frozen(kw_only=True)
class AnnounceHost:
    """Must be the session's first message; repeat it every ``interval`` seconds."""

    tag: ClassVar[str] = "announce_host"
    id: str | int | None = None
    host: HostPayload
    #: Seconds between announces (1 s to a day); the host's TTL is twice this.
    #: ``None``: the server default.
    interval: float | None = attrs.field(default=None, validator=_optional_interval)


@final
@attrs.frozen(kw_only=True)
class LeaveHost:
    """The host leaves: its peers are released and the server closes with 1000."""

    tag: ClassVar[str] = "leave_host"
    id: str | int | None = None


@final
@attrs.frozen(kw_only=True)
class RegisterPeer:
    """A peer of this host starts to take part in a task."""

    tag: ClassVar[str] = "register_peer"
    id: str | int | None = None
    peer_id: str = attrs.field(validator=_name)
    task: TaskPayload


@final
@attrs.frozen(kw_only=True)
class DownloadStarted:
    tag: ClassVar[str] = "download_started"
    id: str | int | None = None
    peer_id: str = attrs.field(validator=_name)


@final
@attrs.frozen(kw_only=True)
class BackToSource:
    """The peer downloads from the origin instead of from other peers."""

    tag: ClassVar[str] = "back_to_source"
    id: str | int | None = None
    peer_id: str = attrs.field(validator=_name)


@final
@attrs.frozen(kw_only=True)
class PiecesFinished:
    """The peer has these pieces now, fetched from ``parent_id`` (or the origin)."""

    tag: ClassVar[str] = "pieces_finished"
    id: str | int | None = None
    peer_id: str = attrs.field(validator=_name)
    pieces: list[int] = attrs.field(validator=_validate_pieces)
    parent_id: str | None = attrs.field(default=None, validator=_optional_name)
    #: Seconds the pieces took to download.
    cost: float | None = attrs.field(default=None, validator=_optional_non_negative)


@final
@attrs.frozen(kw_only=True)
class DownloadFinished:
    tag: ClassVar[str] = "download_finished"
    id: str | int | None = None
    peer_id: str = attrs.field(validator=_name)


@final
@attrs.frozen(kw_only=True)
class DownloadFailed:
    tag: ClassVar[str] = "download_failed"
    id: str | int | None = None
    peer_id: str = attrs.field(validator=_name)
    reason: str = ""


@final
@attrs.frozen(kw_only=True)
class LeavePeer:
    tag: ClassVar[str] = "leave_peer"
    id: str | int | None = None
    peer_id: str = attrs.field(validator=_name)


@final
@attrs.frozen(kw_only=True)
class Reschedule:
    """The peer asks for new parents; ``failed_parents`` are blocklisted for it."""

    tag: ClassVar[str] = "reschedule"
    id: str | int | None = None
    peer_id: str = attrs.field(validator=_name)
    failed_parents: list[str] = attrs.field(factory=list, validator=_validate_failed_parents)
    reason: str = ""


# --- server -> client ----------------------------------------------------------------


@final
@attrs.frozen(kw_only=True)
class HostAccepted:
    """The reply to every ``announce_host``: the host id and the session's timings."""

    tag: ClassVar[str] = "host_accepted"
    id: str | int | None = None
    host_id: str = attrs.field(validator=_non_empty)
    #: Seconds until the host expires unless it announces again; ``None``: never.
    ttl: float | None = attrs.field(default=None, validator=_optional_positive)
    ping_interval: float = attrs.field(validator=_positive)
    ping_timeout: float = attrs.field(validator=_positive)
    #: Seconds a dropped host waits for a re-announce before the policies in force
    #: evict it; ``None``: no policy evicts a dropped host (only its TTL, if any).
    reconnect_grace: float | None = attrs.field(default=None, validator=_optional_non_negative)
    #: A random id the server draws when its process starts: a different ``boot_id``
    #: on a reconnect means the scheduler restarted and lost every host and peer, so
    #: the client registers its running peers again at once. ``None``: not sent.
    boot_id: str | None = None


@final
@attrs.frozen(kw_only=True)
class Ack:
    """The reply to a request that succeeded and has nothing else to say."""

    tag: ClassVar[str] = "ack"
    id: str | int | None = None


@final
@attrs.frozen(kw_only=True)
class ErrorReply:
    """The reply to a request that failed; the ``"type"`` on the wire is ``error``."""

    tag: ClassVar[str] = "error"
    id: str | int | None = None
    #: One of :class:`ErrorCode`; a client must accept codes it does not know.
    code: str = attrs.field(validator=_non_empty)
    message: str
    #: ``moved`` only: the name of the scheduler that owns the task ...
    owner: str | None = attrs.field(default=None, validator=_optional_name)
    #: ... and its peers' WebSocket URL.
    url: str | None = attrs.field(default=None, validator=_optional_name)

    @classmethod
    def from_error(cls, error: ProtocolError) -> ErrorReply:
        """The reply to a frame that could not be decoded."""
        return cls(id=error.request_id, code=error.code.value, message=error.message)


@final
@attrs.frozen(kw_only=True)
class Evicted:
    """The host was evicted; the server closes with 4001 right after."""

    tag: ClassVar[str] = "evicted"
    #: Why, e.g. ``ttl_expired``, ``admin``, ``superseded``, ``disconnected``.
    reason: str = attrs.field(validator=_non_empty)
    message: str = ""


class ScheduleAction(enum.StrEnum):
    """What a ``schedule`` message tells the peer to do."""

    #: Download from ``parents`` (non-empty).
    PARENTS = "parents"
    #: Download from the origin.
    BACK_TO_SOURCE = "back_to_source"
    #: Nobody can feed the peer yet: ask again (``reschedule``) after ``retry_after``.
    WAIT = "wait"
    #: The scheduler gives up on this peer; it should report ``download_failed``.
    FAIL = "fail"


@final
@attrs.frozen(kw_only=True)
class ParentPayload:
    """One candidate parent in a ``schedule`` message."""

    peer_id: str = attrs.field(validator=_non_empty)
    host_id: str = attrs.field(validator=_non_empty)
    ip: str = attrs.field(validator=_non_empty)
    download_port: int = attrs.field(validator=_port)
    finished_piece_count: int = attrs.field(validator=_count)
    type: HostType = "normal"


def _validate_schedule(instance: Schedule, attribute: attrs.Attribute[Any], value: Any) -> None:
    # attrs runs validators after every field is set, so the other fields are readable.
    has_parents = bool(instance.parents)
    if has_parents != (instance.action == ScheduleAction.PARENTS.value):
        raise _invalid(attribute, "parents must be non-empty exactly when action is parents")
    if (instance.retry_after is not None) != (instance.action == ScheduleAction.WAIT.value):
        raise _invalid(attribute, "retry_after comes with action wait, and only with it")


@final
@attrs.frozen(kw_only=True)
class Schedule:
    """Where a peer should download from.

    The reply to ``register_peer`` and ``reschedule`` (with their ``id``), or pushed
    unsolicited (no ``id``) when a parent handed out earlier became unschedulable.
    """

    tag: ClassVar[str] = "schedule"
    id: str | int | None = None
    peer_id: str = attrs.field(validator=_non_empty)
    action: Literal["parents", "back_to_source", "wait", "fail"] = attrs.field(
        validator=_validate_schedule
    )
    parents: list[ParentPayload] = attrs.field(factory=list)
    #: Seconds to wait before asking again; only with ``wait``.
    retry_after: float | None = attrs.field(default=None, validator=_optional_non_negative)
    message: str = ""


@final
@attrs.frozen(kw_only=True)
class FetchTask:
    """Asks a seed host to download a task from the origin and serve it (unsolicited)."""

    tag: ClassVar[str] = "fetch_task"
    task: TaskPayload
    #: The peer id the seed should register for the task.
    peer_id: str = attrs.field(validator=_non_empty)


# --- batches -------------------------------------------------------------------------


def _validate_batch(
    _instance: Any, attribute: attrs.Attribute[list[Any]], value: list[Any]
) -> None:
    if len(value) > MAX_BATCH_MESSAGES:
        raise _invalid(attribute, f"must hold at most {MAX_BATCH_MESSAGES} messages")
    if any(isinstance(item, Batch | BatchReply) for item in value):
        raise _invalid(attribute, "a batch cannot hold a batch")


@final
@attrs.frozen(kw_only=True)
class Batch:
    """Up to :data:`MAX_BATCH_MESSAGES` client messages in one frame, applied in order.

    Answered by one :class:`BatchReply` with the same ``id``. An item that did not
    decode is kept as the :class:`ProtocolError` the codec raised for it (its reply
    is that ``error``); a client never sends one (:func:`encode` refuses it).
    """

    tag: ClassVar[str] = "batch"
    id: str | int | None = None
    messages: list[ClientMessage | ProtocolError] = attrs.field(validator=_validate_batch)


@final
@attrs.frozen(kw_only=True)
class BatchReply:
    """The answer to a ``batch``: one reply per message, in order (``"type"``: ``batch``)."""

    tag: ClassVar[str] = "batch"
    id: str | int | None = None
    replies: list[ServerMessage] = attrs.field(validator=_validate_batch)


ClientMessage: TypeAlias = (
    AnnounceHost
    | LeaveHost
    | RegisterPeer
    | DownloadStarted
    | BackToSource
    | PiecesFinished
    | DownloadFinished
    | DownloadFailed
    | LeavePeer
    | Reschedule
)
#: What the server sends; a :class:`BatchReply` holds the others, never itself.
ServerMessage: TypeAlias = (
    HostAccepted | Ack | ErrorReply | Evicted | Schedule | FetchTask | BatchReply
)

#: Every client -> server message class by its ``"type"``.
CLIENT_MESSAGES: Final[Mapping[str, type[ClientMessage]]] = MappingProxyType(
    {
        cls.tag: cls
        for cls in (
            AnnounceHost,
            LeaveHost,
            RegisterPeer,
            DownloadStarted,
            BackToSource,
            PiecesFinished,
            DownloadFinished,
            DownloadFailed,
            LeavePeer,
            Reschedule,
        )
    }
)
#: Every server -> client message class by its ``"type"``.
SERVER_MESSAGES: Final[Mapping[str, type[ServerMessage]]] = MappingProxyType(
    {cls.tag: cls for cls in (HostAccepted, Ack, ErrorReply, Evicted, Schedule, FetchTask)}
)
