"""One task reads every plain-TCP session's socket and feeds its connection.

Read the usual way, each frame costs a wake-up of its connection's reader task, an
``epoll`` re-arm (trio's registrations are one-shot: one ``epoll_ctl`` per wait), and
trio's scheduling around them: about 100 µs for an idle session's ping and pong,
and a third syscall and a task switch for every message of a busy one.

A plain-TCP session's reader task waits here instead (:meth:`SharedReader.wait`): its
socket joins this reader's own ``epoll`` set, where it stays (level-triggered: no
re-arm), and the one task of :meth:`SharedReader.run` reads whichever sockets are
ready and hands the bytes to :meth:`~scheduler.transport.WebSocketStream.feed`, the
same synchronous call a reader task makes with what it reads itself: a ping is
answered, a message applied and its replies written, there, without a task switch.
The reader task is woken only when its connection needs it: the end of the stream, a
socket error, a connection that closed, or replies the socket did not take whole (it
waits for them to be written before anything more is read).

Fairness: one wake-up serves at most :data:`MAX_EVENTS` sockets, one read of
:data:`READ_SIZE` bytes each, and stops once it has held the loop for :data:`SLICE`;
the sockets still ready (level-triggered: they stay ready, and go to the back of the
queue) are served after every other runnable task has run.

Portability: the batch needs ``select.epoll`` (Linux). :func:`batched_reads_supported`
says whether it is there; the service decides at start-up, and without it every
session's reader task reads its own socket (trio's ``wait_readable``), through the same
``feed``: slower per frame, the same behaviour.

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
#: longer one is buffered by its connection until the rest arrives).
READ_SIZE: Final = 4096
#: Sockets served per wake-up at most (the rest are ready again at the next one).
MAX_EVENTS: Final = 512
#: Seconds one wake-up may hold the event loop: after the socket that crosses it, the
#: rest wait for the next wake-up. (A message is tens of µs; a ping or pong about 30.)
SLICE: Final = 0.004


def batched_reads_supported() -> bool:
    """Whether this platform has ``epoll`` (Linux), which :class:`SharedReader` needs."""
    return hasattr(select, "epoll")


class Fed(Protocol):
    """What the shared reader feeds (:class:`~scheduler.transport.WebSocketStream`)."""

    def feed(self, data: bytes) -> None:
        """Read ``data``: handle its frames and write what they need written."""
        ...

    @property
    def wants_task(self) -> bool:
        """Whether the connection's own reader task must act before more is read."""
        ...


@final
class SharedReader:
    """The sockets of the plain-TCP sessions, read by one task."""

    def __init__(self) -> None:
        #: Made by :meth:`run` (a service that never runs holds no file for it).
        self._epoll: select.epoll | None = None
        #: Ready sockets the last wake-up stopped before (its slice was spent): the next
        #: wake-up serves them first.
        self._unserved: list[int] = []
        #: fd -> the connection waiting on it, and its parked reader task.
        self._waiting: dict[int, tuple[Fed, trio.lowlevel.Task]] = {}
        #: Reads fed here with nothing left for the reader task, and reads after which
        #: the reader task was woken (metrics, benchmarks, tests).
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
        if not batched_reads_supported():
            raise RuntimeError("the shared reader needs select.epoll (Linux)")
        epoll = self._epoll = select.epoll()
        try:
            task_status.started()
            while True:
                await trio.lowlevel.wait_readable(epoll.fileno())
                until = time.perf_counter() + SLICE
                ready = [fd for fd, _ in epoll.poll(0, MAX_EVENTS)]
                if self._unserved:
                    # Level-triggered epoll lists the sockets in the same order again:
                    # those a past wake-up left unserved go first, so none waits for
                    # the same few to be served before it, wake-up after wake-up.
                    first = set(self._unserved)
                    ready = self._unserved + [fd for fd in ready if fd not in first]
                self._unserved = []
                for index, fd in enumerate(ready):
                    self._serve(fd)
                    if time.perf_counter() > until:
                        self._unserved = ready[index + 1 :]
                        break
        finally:
            for fd in list(self._waiting):
                self._hand_back(fd, outcome.Error(trio.ClosedResourceError("shutting down")))
            self._epoll = None
            trio.lowlevel.notify_closing(epoll.fileno())
            epoll.close()

    async def wait(self, connection: Fed, fd: int) -> bool:
        """Feed what arrives on ``fd`` (``connection``'s socket) until the connection's
        reader task must act: False at the end of the stream, True otherwise.

        Raises ``trio.BrokenResourceError`` for a socket error,
        ``trio.ClosedResourceError`` for a socket closed meanwhile, and whatever
        ``feed`` raised.
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

        more: bool = await trio.lowlevel.wait_task_rescheduled(abort)
        return more

    def release(self, connection: Fed, fd: int) -> None:
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
        result: outcome.Outcome[bool]
        try:
            data = os.read(fd, READ_SIZE)
            if data:
                connection = entry[0]
                connection.feed(data)
                if not connection.wants_task:
                    self.handled += 1
                    return
            result = outcome.Value(bool(data))  # False: the end of the stream
        except BlockingIOError:
            return
        except OSError as exc:
            result = outcome.Error(trio.BrokenResourceError(exc))
        except Exception as exc:  # one session's failure goes to its own reader, never further
            result = outcome.Error(exc)
        self.handed_back += 1
        self._hand_back(fd, result)

    def _hand_back(self, fd: int, result: outcome.Outcome[bool]) -> None:
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
