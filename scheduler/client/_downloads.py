"""What the reference peer does with ``schedule`` and ``fetch_task``: the protocol, followed.

It downloads nothing and connects to no parent, but it keeps the state a real
daemon keeps and sends what a real one sends:

* ``parents``: it adopts them (logged) and, the first time, sends ``download_started``;
* ``back_to_source``: it sends ``back_to_source``;
* ``wait``: after ``retry_after`` it sends ``reschedule`` and obeys the answer;
* ``fail``: it sends ``download_failed``;
* an unsolicited ``schedule`` (a push) is obeyed the same way: the new parents
  replace the old ones;
* ``fetch_task`` (seed hosts only): it registers the given peer id, goes back
  to the source, reports every piece and finishes.
"""

from __future__ import annotations

import logging
from typing import final

import trio

from scheduler.protocol import FetchTask, Schedule, TaskPayload

from ._connection import SchedulerSession
from ._errors import RequestError

_log = logging.getLogger("scheduler.peer")

#: A task whose size is unknown (``total_piece_count`` -1) is reported as this many pieces.
UNKNOWN_SIZE_PIECES = 1


@final
class Download:
    """One peer of this host: what the scheduler last told it."""

    __slots__ = ("parents", "peer_id", "started", "state", "waiting")

    def __init__(self, peer_id: str) -> None:
        self.peer_id = peer_id
        #: The parents it was given, best first (empty: none, or the origin).
        self.parents: tuple[str, ...] = ()
        #: ``registered``, ``downloading``, ``back_to_source``, ``failed`` or ``finished``.
        self.state = "registered"
        self.started = False
        #: A ``reschedule`` after a ``wait`` is due.
        self.waiting = False


@final
class Downloads:
    """The peers of one session and how they follow the scheduler's decisions."""

    def __init__(self, session: SchedulerSession, nursery: trio.Nursery, *, seed: bool) -> None:
        self._session = session
        self._nursery = nursery
        self._seed = seed
        self.peers: dict[str, Download] = {}

    async def register(self, peer_id: str, task: TaskPayload) -> Download:
        """Register ``peer_id`` (or find it again after a reconnect) and obey the answer."""
        download = self.peers.setdefault(peer_id, Download(peer_id))
        try:
            reply = await self._session.register_peer(peer_id, task)
        except RequestError as exc:
            # conflict: the peer survived a reconnect; ask where it stands now.
            if exc.code != "conflict":
                raise
            download.started = True
            try:
                reply = await self._session.reschedule(peer_id, (), "reconnected")
            except RequestError as again:  # e.g. it finished or failed meanwhile
                _log.info("%s is kept as it is: %s", peer_id, again)
                return download
        await self.obey(reply)
        return download

    async def resume(self, peer_id: str, task: TaskPayload) -> Download:
        """A peer the same scheduler process may still hold: ask where it stands.

        If the scheduler lost it meanwhile (evicted while this host was away), it is
        registered again.
        """
        download = self.peers.setdefault(peer_id, Download(peer_id))
        download.started = True
        try:
            reply = await self._session.reschedule(peer_id, (), "reconnected")
        except RequestError as exc:
            if exc.code not in ("not_found", "forbidden"):  # e.g. it finished meanwhile
                _log.info("%s is kept as it is: %s", peer_id, exc)
                return download
            _log.info("%s was lost while away: registering it again", peer_id)
            download.started = False
            return await self.register(peer_id, task)
        await self.obey(reply)
        return download

    async def follow(self) -> None:
        """Obey what the scheduler sends unasked, until the session ends."""
        async for message in self._session.unsolicited():
            if isinstance(message, FetchTask):
                await self.fetch(message)
            elif message.peer_id in self.peers:
                _log.info("pushed a new schedule for %s", message.peer_id)
                await self.obey(message)
            else:
                _log.warning("a schedule for a peer this host does not have: %s", message.peer_id)

    async def obey(self, schedule: Schedule) -> None:
        """Do what one ``schedule`` says (a reply or a push)."""
        download = self.peers.setdefault(schedule.peer_id, Download(schedule.peer_id))
        session, peer_id = self._session, schedule.peer_id
        try:
            if schedule.action == "parents":
                download.parents = tuple(p.peer_id for p in schedule.parents)
                where = ", ".join(f"{p.peer_id}@{p.ip}:{p.download_port}" for p in schedule.parents)
                _log.info("%s downloads from %s", peer_id, where)
                if not download.started:
                    await session.download_started(peer_id)
                    download.started = True
                download.state = "downloading"
            elif schedule.action == "back_to_source":
                download.parents = ()
                _log.info("%s downloads from the origin", peer_id)
                if download.state != "back_to_source":
                    await session.back_to_source(peer_id)
                download.started, download.state = True, "back_to_source"
            elif schedule.action == "wait":
                self._reschedule_later(download, schedule.retry_after or 0.0)
            else:
                _log.warning("%s: the scheduler gave up: %s", peer_id, schedule.message)
                download.parents, download.state = (), "failed"
                await session.download_failed(peer_id, schedule.message or "scheduler said fail")
        except RequestError as exc:
            _log.warning("%s: %s refused: %s", peer_id, schedule.action, exc)

    def _reschedule_later(self, download: Download, delay: float) -> None:
        if download.waiting:
            return
        download.waiting = True
        _log.info("%s waits %.2f s before asking again", download.peer_id, delay)
        self._nursery.start_soon(self._reschedule_after, download, delay)

    async def _reschedule_after(self, download: Download, delay: float) -> None:
        await trio.sleep(delay)
        download.waiting = False
        try:
            reply = await self._session.reschedule(download.peer_id, (), "wait")
        except RequestError as exc:
            _log.warning("%s: reschedule refused: %s", download.peer_id, exc)
            return
        await self.obey(reply)

    async def fetch(self, order: FetchTask) -> None:
        """A seed host's job: fetch the task from the origin and serve it."""
        if not self._seed:
            _log.warning("fetch_task for %s ignored: this host is no seed", order.task.task_id)
            return
        session, peer_id = self._session, order.peer_id
        _log.info("fetching task %s as %s", order.task.task_id, peer_id)
        total = order.task.total_piece_count
        pieces = list(range(total if total >= 0 else UNKNOWN_SIZE_PIECES))
        try:
            reply = await session.register_peer(peer_id, order.task)
            _log.info("%s: the scheduler said %s; a seed goes to the origin", peer_id, reply.action)
            await session.back_to_source(peer_id)
            if pieces:
                await session.pieces_finished(peer_id, pieces)
            await session.download_finished(peer_id)
        except RequestError as exc:
            _log.warning("fetch of %s as %s failed: %s", order.task.task_id, peer_id, exc)
            return
        download = self.peers.setdefault(peer_id, Download(peer_id))
        download.started, download.state = True, "finished"
