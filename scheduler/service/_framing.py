"""The WebSocket connection of one peer: trio-websocket, made to say why it drops one.

wsproto reports a frame it cannot parse (invalid UTF-8 in a text frame, an
unmasked client frame, a reserved opcode or bit) as a ``CloseConnection`` event
with the right code (1007 or 1002), while the connection is still open; a close
frame the client really sent moves it to ``REMOTE_CLOSING`` instead.
trio-websocket 0.12 answers only the second kind and drops the TCP connection on
the first without a close frame, so the client never learns why. Our connection
class sends the close frame first, then lets trio-websocket close as before.
"""

from __future__ import annotations

import contextlib
from typing import Final, final

import trio
from trio_websocket import ConnectionClosed, WebSocketConnection, WebSocketRequest
from wsproto import ConnectionType, WSConnection
from wsproto.connection import ConnectionState
from wsproto.events import CloseConnection

#: A close reason must fit a control frame (125 bytes, 2 of them the code).
MAX_CLOSE_REASON: Final = 120


@final
class ServerConnection(WebSocketConnection):
    """A server-side WebSocket that sends a close code for a framing error."""

    async def _handle_close_connection_event(self, event: CloseConnection) -> None:
        if self._wsproto.state is ConnectionState.OPEN:
            reason = (event.reason or "").encode()[:MAX_CLOSE_REASON].decode(errors="ignore")
            with contextlib.suppress(ConnectionClosed):
                await self._send(CloseConnection(code=event.code, reason=reason))
        await super()._handle_close_connection_event(event)


async def wrap_server_stream(
    nursery: trio.Nursery,
    stream: trio.abc.Stream,
    *,
    message_queue_size: int,
    max_message_size: int,
) -> WebSocketRequest:
    """``trio_websocket.wrap_server_stream`` with :class:`ServerConnection`."""
    connection = ServerConnection(
        stream,
        WSConnection(ConnectionType.SERVER),
        message_queue_size=message_queue_size,
        max_message_size=max_message_size,
    )
    nursery.start_soon(connection._reader_task)
    return await connection._get_request()
