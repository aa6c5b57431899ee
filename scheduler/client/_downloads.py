"""What the reference peer does with ``schedule`` and ``fetch_task``: the protocol, followed.

It downloads nothing and connects to no parent, but it keeps the state a real
daemon keeps and sends what a real one sends:

* ``parents``: it adopts them (logged) and, the first time, sends ``download_started``;
* ``back_to_source``: it sends ``back_to_source``;
* ``wait``: after ``retry_after`` it sends ``reschedule`` and obeys the answer;
* ``fail``: it sends ``download_failed``;
* an unsolicited ``schedule`` (a push) is obeyed the same way: the new parents
  replace the old ones;
* ``fetch_task`` (a seed fetch, or a preheat on any host): it registers the
  given peer id and obeys the answer like any other peer's, then *simulates*
  the bytes: the task's pieces arrive at ``download_rate`` bytes per second, from
  its first parent or from the origin, reported in ``pieces_finished`` batches
  of about :data:`REPORT_EVERY` seconds each (with the parent and the cost, as a
  real download reports them), then ``download_finished``.
"""

from __future__ import annotations

import logging
from typing import Final, final

import trio

from scheduler.protocol import FetchTask, Schedule, TaskPayload

from ._connection import SchedulerSession
from ._errors import RequestError

_log = logging.getLogger("scheduler.peer")

#: A task whose size is unknown (``total_piece_count`` -1) is reported as this many pieces.
UNKNOWN_SIZE_PIECES = 1
#: Bytes per second a fetch is simulated at by default: a 64 MiB preheat takes 2 s.
DEFAULT_DOWNLOAD_RATE: Final = 32 * 1024 * 1024
#: Seconds of simulated transfer between two ``pieces_finished`` reports of a fetch.
REPORT_EVERY: Final = 0.25
#: The most pieces one report names (well under the protocol's bound).
REPORT_MAX_PIECES: Final = 1000


def piece_sizes(task: TaskPayload) -> list[int]:
    """The bytes of each piece of ``task``: ``piece_length`` each, the last one the rest.

    A task of unknown size counts as :data:`UNKNOWN_SIZE_PIECES` whole pieces.
    """
    total = task.total_piece_count
    if total < 0 and task.content_length >= 0:
        total = -(-task.content_length // task.piece_length)
    if total < 0:
        return [task.piece_length] * UNKNOWN_SIZE_PIECES
    sizes = [task.piece_length] * total
    if sizes and task.content_length >= 0:
        sizes[-1] = max(0, task.content_length - (total - 1) * task.piece_length)
    return sizes


@final
class Download:
    """One peer of this host: what the scheduler last told it."""

    __slots__ = ("fetch", "parents", "peer_id", "started", "state", "transferring", "waiting")

    def __init__(self, peer_id: str) -> None:
        self.peer_id = peer_id
        #: The task of a ``fetch_task``: its bytes are simulated to the end (None: a
        #: configured task, which only follows the scheduler).
        self.fetch: TaskPayload | None = None
        self.transferring = False
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

    def __init__(
        self,
        session: SchedulerSession,
        nursery: trio.Nursery,
        *,
        seed: bool,
        download_rate: float = DEFAULT_DOWNLOAD_RATE,
    ) -> None:
        if not download_rate > 0:
            raise ValueError(f"download_rate must be positive, got {download_rate!r}")
        self._session = session
        self._nursery = nursery
        self._seed = seed
        self._rate = download_rate
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
                self._nursery.start_soon(self.fetch, message)
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
                self._transfer_soon(download)
            elif schedule.action == "back_to_source":
                download.parents = ()
                _log.info("%s downloads from the origin", peer_id)
                if download.state != "back_to_source":
                    await session.back_to_source(peer_id)
                download.started, download.state = True, "back_to_source"
                self._transfer_soon(download)
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
        """Fetch a task the scheduler asked for (a seed fetch or a preheat), to the end."""
        session, peer_id = self._session, order.peer_id
        kind = "seed" if self._seed else "host"
        _log.info("fetching task %s as %s (this %s was asked)", order.task.task_id, peer_id, kind)
        download = self.peers.setdefault(peer_id, Download(peer_id))
        download.fetch = order.task
        try:
            reply = await session.register_peer(peer_id, order.task)
        except RequestError as exc:
            _log.warning("fetch of %s as %s failed: %s", order.task.task_id, peer_id, exc)
            download.state = "failed"
            return
        await self.obey(reply)

    def _transfer_soon(self, download: Download) -> None:
        if download.fetch is not None and not download.transferring:
            download.transferring = True
            self._nursery.start_soon(self._transfer, download, download.fetch)

    async def _transfer(self, download: Download, task: TaskPayload) -> None:
        """The task's bytes at ``download_rate``, reported as a real download reports them."""
        session, peer_id = self._session, download.peer_id
        sizes = piece_sizes(task)
        batch: list[int] = []
        cost = 0.0
        try:
            for index, size in enumerate(sizes):
                batch.append(index)
                cost += size / self._rate
                last = index == len(sizes) - 1
                if cost >= REPORT_EVERY or len(batch) >= REPORT_MAX_PIECES or last:
                    await trio.sleep(cost)
                    parent = download.parents[0] if download.parents else None
                    await session.pieces_finished(peer_id, batch, parent_id=parent, cost=cost)
                    batch, cost = [], 0.0
            await session.download_finished(peer_id)
        except RequestError as exc:
            _log.warning("%s: the download stopped: %s", peer_id, exc)
            download.state = "failed"
            return
        _log.info("%s: fetched %d pieces", peer_id, len(sizes))
        download.state = "finished"
