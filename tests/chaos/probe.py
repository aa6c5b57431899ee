"""A scheduling probe: a host in the test process that keeps asking for parents.

It registers peers of the scenario's tasks one after another (keeping the last few
registered, so that pushes reach it too), and records every parent it was handed,
with the wall time the request was sent (pushes: the time they arrived).
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Sequence

import attrs
import trio

from scheduler.client import RequestError, SchedulerSession, SessionLost, open_scheduler_session
from scheduler.protocol import FetchTask, HostPayload, Schedule, TaskPayload

#: How many of its peers the probe keeps registered (the oldest leaves).
KEEP = 20


@attrs.frozen
class Handed:
    """One schedule the probe received: when, which parents' hosts, how long it took."""

    at: float  # wall time the request was sent, or the push arrived
    hosts: tuple[str, ...]
    latency: float | None  # seconds, None for a push


@attrs.define
class Probe:
    url: str
    tasks: Sequence[str]
    hostname: str = "probe"
    handed: list[Handed] = attrs.Factory(list)
    errors: int = 0

    def parents_since(self, wall: float) -> list[Handed]:
        return [h for h in self.handed if h.at >= wall]

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Schedule forever (until cancelled); ``started`` after the first decision."""
        host = HostPayload(hostname=self.hostname, ip="127.0.0.2", port=1, download_port=2)
        async with (
            open_scheduler_session(self.url, host, interval=None) as session,
            trio.open_nursery() as nursery,
        ):
            nursery.start_soon(self._follow_pushes, session)
            await self._schedule(session, task_status)

    async def _schedule(
        self, session: SchedulerSession, task_status: trio.TaskStatus[None]
    ) -> None:
        kept: list[str] = []
        for number in itertools.count():
            url = self.tasks[number % len(self.tasks)]
            peer_id = f"{self.hostname}/{number}"
            sent, began = time.time(), trio.current_time()
            try:
                reply = await session.register_peer(peer_id, TaskPayload(url=url))
            except RequestError:
                self.errors += 1
                continue
            self._record(reply, sent, trio.current_time() - began)
            if number == 0:
                task_status.started()
            kept.append(peer_id)
            if len(kept) > KEEP:
                try:
                    await session.leave_peer(kept.pop(0))
                except RequestError:
                    self.errors += 1

    async def _follow_pushes(self, session: SchedulerSession) -> None:
        try:
            async for message in session.unsolicited():
                if isinstance(message, Schedule):
                    self._record(message, time.time(), None)
                elif isinstance(message, FetchTask):  # pragma: no cover - the probe is no seed
                    pass
        except SessionLost:
            pass

    def _record(self, schedule: Schedule, at: float, latency: float | None) -> None:
        self.handed.append(Handed(at, tuple(p.host_id for p in schedule.parents), latency))
