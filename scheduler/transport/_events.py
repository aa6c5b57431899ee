"""What a :class:`~scheduler.transport.ServerConnection` reports (sans-IO: no trio).

Small frozen classes under one base, as h11's and wsproto's events are.
"""

from __future__ import annotations

from typing import final

import attrs


class Event:
    """The base of every event a connection returns from ``receive_data``."""

    __slots__ = ()


@final
@attrs.frozen(slots=True)
class Request(Event):
    """The opening handshake's request head arrived (the connection is ``CONNECTING``).

    ``problem`` is set when it is not a WebSocket upgrade this server can accept (its
    HTTP status and one line): the caller answers it with :meth:`reject`, or with its
    own refusal.
    """

    method: str
    target: str
    #: Header names in lower case, as h11 gives them.
    headers: tuple[tuple[bytes, bytes], ...]
    subprotocols: tuple[str, ...]
    problem: tuple[int, str] | None = None


@final
@attrs.frozen(slots=True)
class BadRequest(Event):
    """The bytes before the handshake are not an HTTP request head (answer 400 and close)."""

    reason: str


@final
@attrs.frozen(slots=True)
class Message(Event):
    """A complete message: ``str`` from text frames, ``bytes`` from binary ones."""

    data: str | bytes


@final
@attrs.frozen(slots=True)
class Ping(Event):
    """A ping; its pong is already in :meth:`ServerConnection.data_to_send`."""

    payload: bytes


@final
@attrs.frozen(slots=True)
class Pong(Event):
    """A pong (solicited or not: RFC 6455 §5.5.3 lets a peer send one unasked)."""

    payload: bytes


@final
@attrs.frozen(slots=True)
class Closed(Event):
    """The WebSocket is closed for reading: nothing after this is read.

    ``by_peer``: the peer sent a close frame (``code`` and ``reason`` are its own; 1005
    when it gave none). Otherwise the peer broke the protocol and this connection
    closes with ``code`` (1002, 1007 or 1009). Either way, the close frame this side
    owes is in :meth:`ServerConnection.data_to_send`.
    """

    code: int
    reason: str
    by_peer: bool
