"""One task reads every idle session's socket: pings and pongs without a task switch each.

An idle session still sees a ping or a pong every ``ping_interval``. Read the
usual way, each one costs a wake-up of the session's reader task, an ``epoll``
re-arm, and trio's scheduling around them: about 100 µs, so 50,000 idle sessions
would need several cores for nothing but their liveness.

A reader whose last read held only pings and pongs (the connection has gone idle)
waits here instead (:meth:`IdleReader.wait`): its socket joins this reader's own
``epoll`` set, and the one task of :meth:`IdleReader.run` reads whichever sockets
are ready. Bytes that are only complete pings and pongs are handled on the spot
(:meth:`~scheduler.service._framing.ServerConnection.answer_control`: a pong is
a sign of life, a ping is answered); anything else (a message, a partial frame, a
close, the end of the stream, an error) is handed to the waiting reader, which
goes on as if it had read the bytes itself. So a busy session never passes
through here, and an idle one costs a read and a few dictionary look-ups per
ping, with no task switch.

Nothing outlives its owner: a reader's wait is cancellable (its socket leaves the
set), a socket that is closed leaves first (:meth:`IdleReader.release`), and the
``epoll`` object is closed with the task.
"""

from __future__ import annotations

import contextlib
import os
import select
from typing import Final, Protocol, final

import outcome
import trio

#: Bytes read per ready socket (an idle session's pings and pongs are a few bytes).
READ_SIZE: Final = 4096
#: Sockets handled per wake-up at most (the rest are ready again at the next one).
MAX_EVENTS: Final = 512


class Idler(Protocol):
    """A connection that may wait here (:class:`~scheduler.service._framing.ServerConnection`)."""

    def answer_control(self, data: bytes) -> bool:
        """Handle ``data`` now if it is only pings and pongs; False: its reader must read it."""
        ...


@final
class IdleReader:
    """The idle sessions' sockets, read by one task."""

    def __init__(self) -> None:
        #: Made by :meth:`run` (a service that never runs holds no file for it).
        self._epoll: select.epoll | None = None
        #: fd -> the connection waiting on it, and its parked reader task.
        self._waiting: dict[int, tuple[Idler, trio.lowlevel.Task]] = {}
        #: Frames handled here, and reads handed back to their reader (benchmarks, tests).
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
                for fd, _ in epoll.poll(0, MAX_EVENTS):
                    self._serve(fd)
        finally:
            for fd in list(self._waiting):
                self._hand_back(fd, outcome.Error(trio.ClosedResourceError("shutting down")))
            self._epoll = None
            trio.lowlevel.notify_closing(epoll.fileno())
            epoll.close()

    async def wait(self, connection: Idler, fd: int) -> bytes:
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

    def release(self, connection: Idler, fd: int) -> None:
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
            if data and entry[0].answer_control(data):
                self.handled += 1
                return
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
