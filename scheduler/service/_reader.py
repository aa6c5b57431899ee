"""One task reads every session's socket: frames handled without a task switch each.

Read the usual way, each frame costs a wake-up of its connection's reader task, an
``epoll`` re-arm (trio's registrations are one-shot: one ``epoll_ctl`` per wait), and
trio's scheduling around them: about 100 µs for an idle session's ping and pong,
and a third syscall and a task switch for every message of a busy one.

A reader at a frame boundary (the bytes it last read were all complete common frames,
see :mod:`._wire`) waits here instead (:meth:`SharedReader.wait`): its socket joins
this reader's own ``epoll`` set, where it stays (level-triggered: no re-arm) while the
frames it brings are handled on the spot, and the one task of :meth:`SharedReader.run`
reads whichever sockets are ready.
:meth:`~scheduler.service._framing.ServerConnection.answer_now` handles the complete
frames at the start of what was read, in order: a ping is answered, a pong is a sign
of life, a message goes to the session's ``on_message_now``, which applies it and
writes its replies when nothing has to wait. Whatever it cannot handle now (a message
behind a reply still being sent, a partial frame, a close, the end of the stream, an
error) is handed to the waiting reader with everything after it, and the reader goes
on as if it had read those bytes itself. So the frames of one session are handled in
the order they came, by one task at a time.

Fairness: one wake-up serves at most :data:`MAX_EVENTS` sockets, one read of
:data:`READ_SIZE` bytes each, and stops once it has held the loop for :data:`SLICE`;
the sockets still ready (``epoll`` is level-triggered: they stay ready, and go to the
back of its queue) are served after every other runnable task has run.

Nothing outlives its owner: a reader's wait is cancellable (its socket leaves the
set), a socket that is closed leaves first (:meth:`SharedReader.release`), and the
``epoll`` object is closed with the task.
"""

from __future__ import annotations

import contextlib
import os
import select
import time
from typing import Final, Protocol, final

import outcome
import trio

#: Bytes read per ready socket (a frame of a busy session is a few hundred bytes; a
#: longer one is handed back in part, and its reader reads the rest).
READ_SIZE: Final = 4096
#: Sockets served per wake-up at most (the rest are ready again at the next one).
MAX_EVENTS: Final = 512
#: Seconds one wake-up may hold the event loop: after the socket that crosses it, the
#: rest wait for the next wake-up. (A message is tens of µs; a ping or pong about 30.)
SLICE: Final = 0.004


class Reading(Protocol):
    """A connection that may wait here (:class:`~scheduler.service._framing.ServerConnection`)."""

    def answer_now(self, data: bytes) -> int:
        """Handle the frames at the start of ``data`` now; how many bytes were handled."""
        ...


@final
class SharedReader:
    """The sockets of the sessions waiting for their next frame, read by one task."""

    def __init__(self) -> None:
        #: Made by :meth:`run` (a service that never runs holds no file for it).
        self._epoll: select.epoll | None = None
        #: fd -> the connection waiting on it, and its parked reader task.
        self._waiting: dict[int, tuple[Reading, trio.lowlevel.Task]] = {}
        #: Reads handled here whole, and reads handed back to their reader, in part or
        #: whole (metrics, benchmarks, tests).
        self.handled = 0
        self.handed_back = 0

    @property
    def waiting(self) -> int:
        """How many readers wait here now."""
        return len(self._waiting)

    @property
    def running(self) -> bool:
        """Whether :meth:`wait` may be used (the task of :meth:`run` is running)."""
        return self._epoll is not None

    async def run(self, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Read ready sockets until cancelled; then close the ``epoll`` object."""
        epoll = self._epoll = select.epoll()
        try:
            task_status.started()
            while True:
                await trio.lowlevel.wait_readable(epoll.fileno())
                until = time.perf_counter() + SLICE
                for fd, _ in epoll.poll(0, MAX_EVENTS):
                    self._serve(fd)
                    if time.perf_counter() > until:
                        break
        finally:
            for fd in list(self._waiting):
                self._hand_back(fd, outcome.Error(trio.ClosedResourceError("shutting down")))
            self._epoll = None
            trio.lowlevel.notify_closing(epoll.fileno())
            epoll.close()

    async def wait(self, connection: Reading, fd: int) -> bytes:
        """Wait here for ``fd`` (``connection``'s socket): the bytes a reader would have read.

        Raises ``trio.BrokenResourceError`` for a socket error and
        ``trio.ClosedResourceError`` for a socket closed meanwhile.
        """
        task = trio.lowlevel.current_task()
        assert self._epoll is not None, "wait() only while running"
        try:
            self._epoll.register(fd, select.EPOLLIN)
        except OSError as exc:  # not a socket epoll can watch (any more)
            raise trio.BrokenResourceError(exc) from exc
        self._waiting[fd] = (connection, task)

        def abort(_: object) -> trio.lowlevel.Abort:
            self._forget(fd, task)
            return trio.lowlevel.Abort.SUCCEEDED

        data: bytes = await trio.lowlevel.wait_task_rescheduled(abort)
        return data

    def release(self, connection: Reading, fd: int) -> None:
        """``connection``'s socket is about to close: its waiting reader gets
        ``trio.ClosedResourceError``."""
        entry = self._waiting.get(fd)
        if entry is not None and entry[0] is connection:
            self._hand_back(fd, outcome.Error(trio.ClosedResourceError("the socket was closed")))

    # --- internals -----------------------------------------------------------------------

    def _serve(self, fd: int) -> None:
        entry = self._waiting.get(fd)
        if entry is None:  # not ours any more (handed back in this same batch)
            return
        result: outcome.Outcome[bytes]
        try:
            data = os.read(fd, READ_SIZE)
            if data:  # (b"": the end of the stream, the reader's to handle)
                done = entry[0].answer_now(data)
                if done == len(data):
                    self.handled += 1
                    return
                data = data[done:]  # from the first frame not handled
            result = outcome.Value(data)
        except BlockingIOError:
            return
        except OSError as exc:
            result = outcome.Error(trio.BrokenResourceError(exc))
        except Exception as exc:  # one session's failure goes to its own reader, never further
            result = outcome.Error(exc)
        self.handed_back += 1
        self._hand_back(fd, result)

    def _hand_back(self, fd: int, result: outcome.Outcome[bytes]) -> None:
        _, task = self._waiting[fd]
        self._forget(fd, task)
        trio.lowlevel.reschedule(task, result)

    def _forget(self, fd: int, task: trio.lowlevel.Task) -> None:
        """Drop ``fd`` from the set if ``task`` still waits on it (the number may be reused)."""
        entry = self._waiting.get(fd)
        if entry is None or entry[1] is not task:
            return
        del self._waiting[fd]
        if self._epoll is not None:
            # Already closed: the kernel has dropped it from the set.
            with contextlib.suppress(OSError):
                self._epoll.unregister(fd)
