"""Client-side batching: the requests of a linger time go out as one ``batch`` frame.

A host with many downloads reports progress for each of them; sent one frame
each, the frames, not the updates, cost the scheduler most. :class:`Batcher`
keeps the requests of a session in order and sends them together:

* the first request of a window opens it; the window is sent ``linger`` seconds
  later, or at once when it holds ``max_messages`` or ``max_bytes`` characters
  (a ``batch`` frame never holds more: the server closes a session whose frame
  is longer than its ``server.max_message_size``);
* a window of one request is sent as that request's own frame (no ``batch``
  around it), so a quiet session looks as it did without batching;
* ``announce_host`` and ``leave_host`` do not wait: they close the window and
  send it at once, after what it holds, so the order of requests is kept;
* every request keeps its own id, so each caller gets its own reply (or error)
  out of the ``batch`` reply (see :class:`~._connection.SchedulerSession`).

``Batching(linger=0)`` (or ``max_messages=1``) turns it off: each request is
sent at once, in its own frame.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable, Iterator
from typing import Final, TypeAlias, final

import attrs
import trio

from scheduler.protocol import (
    MAX_BATCH_MESSAGES,
    Ack,
    AnnounceHost,
    Batch,
    BatchReply,
    ClientMessage,
    ErrorReply,
    HostAccepted,
    LeaveHost,
    Schedule,
    ServerMessage,
    encode,
)

from ._errors import SessionLost

__all__ = ["DEFAULT_BATCH_LINGER", "DEFAULT_BATCH_MAX", "Batcher", "Batching", "Reply"]

#: A reply to one request.
Reply: TypeAlias = HostAccepted | Ack | ErrorReply | Schedule

#: Seconds the first request of a window waits for others.
DEFAULT_BATCH_LINGER: Final = 0.005
#: Requests in one ``batch`` frame, at most; a full window is sent at once.
DEFAULT_BATCH_MAX: Final = 100
#: Characters in one ``batch`` frame, at most: half the server's default
#: ``server.max_message_size`` (64 KiB), past which it would close the session.
DEFAULT_BATCH_BYTES: Final = 32 * 1024


def _check_linger(_instance: object, _attribute: object, value: float) -> None:
    if not (math.isfinite(value) and value >= 0):
        raise ValueError(f"batch linger must be a finite number of seconds >= 0, got {value!r}")


def _check_max(_instance: object, _attribute: object, value: int) -> None:
    if not 1 <= value <= MAX_BATCH_MESSAGES:
        raise ValueError(f"batch max must be in 1..{MAX_BATCH_MESSAGES}, got {value!r}")


def _check_bytes(_instance: object, _attribute: object, value: int) -> None:
    if value < 1:
        raise ValueError(f"batch max_bytes must be >= 1, got {value!r}")


@final
@attrs.frozen(kw_only=True)
class Batching:
    """How a session gathers its requests into ``batch`` frames."""

    #: Seconds a window stays open after its first request (0: no batching).
    linger: float = attrs.field(default=DEFAULT_BATCH_LINGER, validator=_check_linger)
    #: Requests per frame, at most (1: no batching).
    max_messages: int = attrs.field(default=DEFAULT_BATCH_MAX, validator=_check_max)
    #: Characters of requests per ``batch`` frame, at most (the frame adds fewer
    #: than 64); keep it under the server's ``server.max_message_size``. A request
    #: longer than this goes alone.
    max_bytes: int = attrs.field(default=DEFAULT_BATCH_BYTES, validator=_check_bytes)

    @property
    def enabled(self) -> bool:
        return self.linger > 0 and self.max_messages > 1


#: Each request in its own frame, sent at once.
NO_BATCHING: Final = Batching(linger=0.0, max_messages=1)


@final
class Batcher:
    """The requests of one session on their way out, and the replies to its batches."""

    def __init__(
        self,
        batching: Batching,
        send: Callable[[ClientMessage | Batch], Awaitable[None]],
        ids: Iterator[int],
    ) -> None:
        self._enabled = batching.enabled
        self._linger = batching.linger
        self._max = batching.max_messages
        self._max_bytes = batching.max_bytes
        self._send = send
        self._ids = ids
        #: The request ids of each ``batch`` frame sent and not answered yet.
        self._sent: dict[str | int | None, list[str | int | None]] = {}
        self._window: list[ClientMessage] = []
        #: The encoded length of each request of the window, and their sum.
        self._sizes: list[int] = []
        self._bytes = 0
        #: The window's first this many requests must go at once.
        self._urgent = 0
        self._opened_at = 0.0
        self._arrived = trio.Event()
        self._full = trio.Event()
        #: ``batch`` frames and frames sent, for tests and logs.
        self.batches = 0
        self.frames = 0

    async def submit(self, message: ClientMessage) -> None:
        """Send ``message`` now (batching off), or queue it for the current window."""
        if not self._enabled:
            await self._send(message)
            return
        self.add(message, now=isinstance(message, AnnounceHost | LeaveHost))

    def answers(self, message: ServerMessage) -> list[Reply]:
        """The replies ``message`` holds for requests, in order.

        A ``batch`` reply holds one per request; an ``error`` for a ``batch``
        frame (refused whole) is the error of each of its requests; any other
        reply is its own.
        """
        if isinstance(message, BatchReply):
            self._sent.pop(message.id, None)
            return [r for r in message.replies if isinstance(r, Reply)]
        if isinstance(message, ErrorReply) and message.id in self._sent:
            return [attrs.evolve(message, id=i) for i in self._sent.pop(message.id)]
        return [message] if isinstance(message, Reply) else []

    def add(self, message: ClientMessage, *, now: bool = False) -> None:
        """Queue ``message`` (with its request id) for the current window.

        ``now``: send the window at once, with what it holds, this message last.
        """
        size = len(encode(message)) + 1  # and a comma
        if not self._window:
            self._opened_at = trio.current_time()
        self._window.append(message)
        self._sizes.append(size)
        self._bytes += size
        if now:
            self._urgent = len(self._window)
        self._arrived.set()
        if self._due():
            self._full.set()

    def _due(self) -> bool:
        """The window must go now: urgent, or full by count or by size."""
        return (
            bool(self._urgent) or len(self._window) >= self._max or self._bytes >= self._max_bytes
        )

    def _take(self) -> list[ClientMessage]:
        """The longest prefix of the window that fits in one frame (at least one request)."""
        count, size = 1, self._sizes[0]
        limit = min(self._max, len(self._window))
        while count < limit and size + self._sizes[count] <= self._max_bytes:
            size += self._sizes[count]
            count += 1
        messages = self._window[:count]
        del self._window[:count], self._sizes[:count]
        self._bytes -= size
        self._urgent = max(0, self._urgent - count)
        return messages

    async def run(self) -> None:
        """Send each window when it is due; returns when a send fails (the session ended)."""
        while self._enabled:
            while not self._window:
                self._arrived = trio.Event()
                await self._arrived.wait()
            if not self._due():
                self._full = trio.Event()
                with trio.move_on_at(self._opened_at + self._linger):
                    await self._full.wait()
            messages = self._take()
            if self._window:  # the rest opens the next window now
                self._opened_at = trio.current_time()
            try:
                await self._send_window(messages)
            except (SessionLost, trio.ClosedResourceError):
                return  # the session ended; its requests were woken by its end

    async def _send_window(self, messages: list[ClientMessage]) -> None:
        self.frames += 1
        if len(messages) == 1:
            await self._send(messages[0])
            return
        batch = Batch(id=next(self._ids), messages=list(messages))
        self.batches += 1
        self._sent[batch.id] = [m.id for m in messages]
        await self._send(batch)
