"""The WebSocket transport of the peers' port: one connection object, one frame path.

* :class:`ServerConnection` (sans-IO, no trio): the handshake, RFC 6455 frames and the
  close handshake of one server-side connection;
* :class:`WebSocketStream` (trio): moves one connection's bytes; its :meth:`feed` is the
  one place where received bytes are read, whoever read them;
* :class:`SharedReader` (trio): one task reads every plain-TCP session's socket and
  feeds it (``epoll`` on Linux, ``selectors`` elsewhere).
"""

from ._codec import MAX_CLOSE_REASON as MAX_CLOSE_REASON
from ._codec import valid_close_code as valid_close_code
from ._connection import LocalProtocolError as LocalProtocolError
from ._connection import ServerConnection as ServerConnection
from ._connection import State as State
from ._events import BadRequest as BadRequest
from ._events import Closed as Closed
from ._events import Event as Event
from ._events import Message as Message
from ._events import Ping as Ping
from ._events import Pong as Pong
from ._events import Request as Request
from ._reader import READ_SIZE as READ_SIZE
from ._reader import SharedReader as SharedReader
from ._reader import batched_reads_supported as batched_reads_supported
from ._stream import Listener as Listener
from ._stream import StreamClosed as StreamClosed
from ._stream import WebSocketStream as WebSocketStream

__all__ = [
    "MAX_CLOSE_REASON",
    "READ_SIZE",
    "BadRequest",
    "Closed",
    "Event",
    "Listener",
    "LocalProtocolError",
    "Message",
    "Ping",
    "Pong",
    "Request",
    "ServerConnection",
    "SharedReader",
    "State",
    "StreamClosed",
    "WebSocketStream",
    "batched_reads_supported",
    "valid_close_code",
]
