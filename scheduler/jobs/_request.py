"""What a ``POST /api/v1/jobs`` asks for, checked field by field (sans-IO).

:func:`parse_job_request` takes the decoded JSON body and returns a
:class:`PreheatRequest`, or raises :class:`JobRequestError` with one clear
sentence naming the field. Types are strict (``"3"`` is no count, ``true`` is
no number), unknown keys are refused, and nothing is created on an error.
"""

from __future__ import annotations

import enum
import ipaddress
import math
import re
from collections.abc import Mapping
from typing import Any, Final, final

import attrs

#: The longest URL a preheat may name (characters).
MAX_URL_LENGTH: Final = 4096
#: A piece length when the request gives none: the protocol's default.
DEFAULT_PIECE_LENGTH: Final = 4 * 1024 * 1024
_CONTROL: Final = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_KEYS: Final = frozenset(
    {"type", "url", "scope", "count", "percentage", "ips", "piece_length", "content_length"}
)


class JobRequestError(ValueError):
    """A request that cannot become a job; its message names the field (HTTP 400)."""


class Scope(enum.Enum):
    """Which hosts a preheat asks."""

    #: One seed host: the task's seed (the one the scheduler asks for it anyway).
    SINGLE_SEED = "single_seed"
    #: Every connected seed host (or ``count``, ``percentage`` or ``ips`` of them).
    ALL_SEEDS = "all_seeds"
    #: Every connected host, seeds first (or ``count``, ``percentage`` or ``ips`` of them).
    ALL_PEERS = "all_peers"


@final
@attrs.frozen(kw_only=True)
class PreheatRequest:
    """A checked preheat: which task, which hosts."""

    url: str
    scope: Scope
    count: int | None = None
    percentage: float | None = None
    ips: tuple[str, ...] | None = None
    piece_length: int = DEFAULT_PIECE_LENGTH
    #: Bytes; -1: unknown (the hosts then report the task as one piece).
    content_length: int = -1

    @property
    def total_piece_count(self) -> int:
        """Pieces of the task (-1 when its length is unknown)."""
        if self.content_length < 0:
            return -1
        return -(-self.content_length // self.piece_length)


def _optional_integer(body: Mapping[str, Any], key: str) -> int | None:
    """``body[key]`` as an integer; None when absent or null."""
    value = body.get(key)
    if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
        raise JobRequestError(f"{key} must be an integer, got {value!r}")
    return value


def _integer(body: Mapping[str, Any], key: str, default: int) -> int:
    value = _optional_integer(body, key)
    return default if value is None else value


def parse_job_request(body: object, *, max_hosts: int, max_piece_count: int) -> PreheatRequest:
    """The preheat ``body`` asks for; :class:`JobRequestError` names what is wrong."""
    if not isinstance(body, Mapping):
        raise JobRequestError("the body must be a JSON object")
    unknown = sorted(set(body) - _KEYS)
    if unknown:
        raise JobRequestError(f"unknown field {unknown[0]!r} (known: {', '.join(sorted(_KEYS))})")
    kind = body.get("type")
    if kind != "preheat":
        raise JobRequestError(f"type must be 'preheat', got {kind!r}")
    url = body.get("url")
    if not isinstance(url, str) or not url:
        raise JobRequestError("url must be a non-empty string")
    if len(url) > MAX_URL_LENGTH or _CONTROL.search(url):
        raise JobRequestError(
            f"url must be at most {MAX_URL_LENGTH} characters, without control characters"
        )
    given_scope = body.get("scope")
    try:
        scope = Scope(given_scope)
    except ValueError:
        names = ", ".join(s.value for s in Scope)
        raise JobRequestError(f"scope must be one of {names}, got {given_scope!r}") from None
    given = [key for key in ("count", "percentage", "ips") if body.get(key) is not None]
    if len(given) > 1:
        raise JobRequestError(f"give at most one of count, percentage and ips, got {given}")
    if given and scope is Scope.SINGLE_SEED:
        raise JobRequestError(f"{given[0]} goes with all_seeds or all_peers, not single_seed")
    count = _optional_integer(body, "count")
    if count is not None and not 1 <= count <= max_hosts:
        raise JobRequestError(f"count must be between 1 and max_hosts ({max_hosts}), got {count}")
    percentage = body.get("percentage")
    if percentage is not None:
        if isinstance(percentage, bool) or not isinstance(percentage, int | float):
            raise JobRequestError(f"percentage must be a number, got {percentage!r}")
        if not (math.isfinite(percentage) and 0 < percentage <= 100):
            raise JobRequestError(f"percentage must be in (0, 100], got {percentage!r}")
        percentage = float(percentage)
    ips = _ips(body.get("ips"), max_hosts)
    piece_length = _integer(body, "piece_length", DEFAULT_PIECE_LENGTH)
    content_length = _integer(body, "content_length", -1)
    if piece_length < 1:
        raise JobRequestError(f"piece_length must be at least 1, got {piece_length}")
    if content_length < -1:
        raise JobRequestError(f"content_length must be -1 (unknown) or more, got {content_length}")
    request = PreheatRequest(
        url=url,
        scope=scope,
        count=count,
        percentage=percentage,
        ips=ips,
        piece_length=piece_length,
        content_length=content_length,
    )
    if request.total_piece_count > max_piece_count:
        raise JobRequestError(
            f"content_length / piece_length makes {request.total_piece_count} pieces, "
            f"more than max_piece_count ({max_piece_count})"
        )
    return request


def _ips(value: object, max_hosts: int) -> tuple[str, ...] | None:
    if value is None:
        return None
    if not isinstance(value, list) or not value:
        raise JobRequestError("ips must be a non-empty list of IP addresses")
    if len(value) > max_hosts:
        raise JobRequestError(f"ips must hold at most max_hosts ({max_hosts}) addresses")
    out: list[str] = []
    for item in value:
        if not isinstance(item, str):
            raise JobRequestError(f"ips must hold IP addresses as strings, got {item!r}")
        try:
            out.append(str(ipaddress.ip_address(item)))
        except ValueError:
            raise JobRequestError(f"ips: {item!r} is not an IP address") from None
    return tuple(dict.fromkeys(out))
