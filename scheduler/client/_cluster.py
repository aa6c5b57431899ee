"""A peer in a cluster of schedulers: discover them, announce to all, route each task to one.

`ClusterView` reads ``GET /api/v1/schedulers`` from any member (the first of the
members' admin URLs that answers, then the URL it was given) every
``refresh_interval`` seconds, or sooner when a scheduler answered ``moved``, and keeps
the result in a `ClusterRoutes`. Many hosts of one process may share one view.

`run_cluster_host` keeps one host announced to *every* routed member, one session
each, and registers each of its tasks on the member that owns the task. When the
routes change (a refresh, a lost connection) each session registers the tasks it
gained (the same way a peer comes back after a reconnect, :mod:`._boot`) and leaves
the peers of tasks it lost. A session that is lost drops its member from the routes
at once, which hands that member's tasks to the survivors.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from typing import final

import trio
from trio_websocket import ConnectionRejected

from scheduler.protocol import HostPayload, TaskPayload

from ._backoff import Backoff
from ._boot import BootWatch, Resume
from ._connection import SchedulerSession
from ._downloads import Downloads
from ._errors import (
    ConnectError,
    RequestError,
    SchedulerClientError,
    SessionLost,
    first_leaf,
    permanent_error,
)
from ._hosts import HostsFetchError
from ._membership import MembershipError, SchedulerMember, fetch_schedulers
from ._peer_config import PeerConfig
from ._routing import ClusterRoutes

__all__ = ["ClusterView", "peer_id_of", "run_cluster_host"]

_log = logging.getLogger("scheduler.peer")

#: Refreshes asked for by ``moved`` replies are at least this far apart (seconds).
_MIN_REFRESH_GAP = 0.5


def peer_id_of(host_id: str, task: TaskPayload) -> str:
    """The id of this host's peer of ``task`` (the same on every scheduler)."""
    return f"{host_id}/{task.task_id[:16]}"


@final
class ClusterView:
    """The schedulers of a cluster as one process sees them, refreshed in the background."""

    def __init__(
        self,
        admin_url: str,
        *,
        refresh_interval: float = 10.0,
        fetch_timeout: float = 5.0,
        token: str | None = None,
        ca_file: str | None = None,
    ) -> None:
        if not admin_url.startswith(("http://", "https://")):
            raise ValueError(f"expected a scheduler's admin URL (http[s]://...), got {admin_url!r}")
        if not (math.isfinite(refresh_interval) and refresh_interval > 0):
            raise ValueError(f"refresh_interval must be > 0, got {refresh_interval!r}")
        self.admin_url = admin_url.rstrip("/")
        self.refresh_interval = refresh_interval
        self.fetch_timeout = fetch_timeout
        self.token = token
        self.ca_file = ca_file
        self.routes = ClusterRoutes()
        self.refreshes = 0
        #: Bumped by every refresh and every change of the routes (`wait_changed`).
        self.epoch = 0
        #: Whether the last list was marked stale: the registry is down for every
        #: scheduler, which serve on the list they read before; routes and sessions stay.
        self.stale = False
        self._changed = trio.Event()
        self._refresh_soon = trio.Event()

    @property
    def members(self) -> Sequence[SchedulerMember]:
        return self.routes.members

    def owner(self, task_id: str) -> SchedulerMember | None:
        return self.routes.owner(task_id)

    def lost(self, name: str) -> None:
        """A session to ``name`` was lost: route its tasks to the others at once."""
        if self.routes.lost(name):
            _log.warning("lost scheduler %s: routing its tasks to %s", name, self.routes.names)
            self._wake()

    def refresh_soon(self) -> None:
        """Read the members again without waiting for the interval (after ``moved``)."""
        self._refresh_soon.set()

    async def wait_changed(self, epoch: int) -> None:
        """Return once the routes may differ from what they were at ``epoch``.

        Every refresh counts, changed or not: a task a member refused with ``moved``
        (its view of the members was older or newer than ours) is tried again after
        each one, until both views agree (at the latest when the lease of the member
        they disagree about ran out).
        """
        while self.epoch == epoch:
            await self._changed.wait()

    def _wake(self) -> None:
        self.epoch += 1
        self._changed.set()
        self._changed = trio.Event()

    def _sources(self) -> list[str]:
        urls = [m.admin_url for m in self.routes.members if m.admin_url]
        return [*dict.fromkeys([*urls, self.admin_url])]

    def _fetch(self, url: str) -> list[SchedulerMember]:
        return fetch_schedulers(
            url, timeout=self.fetch_timeout, token=self.token, ca_file=self.ca_file
        )

    async def refresh(self) -> bool:
        """Read the members from the first source that answers; False if none did."""
        for url in self._sources():
            try:
                listed = await trio.to_thread.run_sync(self._fetch, url, abandon_on_cancel=True)
            except (HostsFetchError, MembershipError) as exc:
                _log.info("cannot read the schedulers from %s: %s", url, exc)
                continue
            self.refreshes += 1
            stale = any(m.stale for m in listed)
            if stale != self.stale:
                self.stale = stale
                what = "stale: the registry is down" if stale else "fresh"
                _log.warning("schedulers list from %s is %s", url, what)
            joined, left = self.routes.refreshed(listed)
            if joined or left:
                _log.info(
                    "schedulers: %s (joined %s, left %s)",
                    self.routes.names,
                    sorted(joined),
                    sorted(left),
                )
            self._wake()
            return True
        return False

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Refresh forever; ``started`` after the first refresh that listed a member."""
        started = False
        while True:
            ok = await self.refresh()
            if ok and not started and self.routes.members:
                started = True
                task_status.started()
            delay = self.refresh_interval if started else min(1.0, self.refresh_interval)
            with trio.move_on_after(delay):
                await self._refresh_soon.wait()
                await trio.sleep(_MIN_REFRESH_GAP)  # a burst of moved replies: one refresh
            self._refresh_soon = trio.Event()


@final
class _Link:
    """One host's session with one member: the peers of the tasks that member owns."""

    def __init__(self, host: _ClusterHost, member: SchedulerMember) -> None:
        self.host = host
        self.member = member
        self.held: set[str] = set()  # task URLs registered on this member
        self.ready = trio.Event()  # announced and the first round of registrations done

    async def run(self) -> None:
        """Hold the session; retry a member that refused us, drop one that is gone."""
        host, config = self.host, self.host.config
        backoff = Backoff(
            base=config.backoff_base, cap=config.backoff_cap, reset_after=config.backoff_reset_after
        )
        try:
            while not host.shutdown.is_set():
                if not await self._hold_session():
                    break
                # It answered, with a refusal (503: full; 408: too slow to handshake):
                # alive, so it keeps its tasks; try again after a backoff.
                delay = backoff.next_delay()
                with trio.move_on_after(delay):
                    await host.shutdown.wait()
        finally:
            self.ready.set()
        if not host.shutdown.is_set():
            host.view.lost(self.member.name)

    async def _hold_session(self) -> bool:
        """One session, to its end; True if the member refused the handshake (alive)."""
        host, member = self.host, self.member
        config = host.config
        refused = False
        announcing = True
        try:
            async with config.open_session(
                member.url, host.payload, config.ssl_context(member.url)
            ) as session:
                announcing = False
                resume = host.boots.setdefault(member.name, BootWatch()).accepted(session.boot_id)
                _log.info("announced to %s as %s", member.name, session.host_id)
                async with trio.open_nursery() as nursery:
                    downloads = Downloads(
                        session, nursery, seed=config.seed, download_rate=config.download_rate
                    )
                    nursery.start_soon(downloads.follow)
                    await self._follow_routes(session, downloads, resume)
                    nursery.cancel_scope.cancel()
                if await session.leave(ack_timeout=config.leave_timeout):
                    _log.info("left %s", member.name)
        except* SessionLost as lost:
            _log.warning("session with %s lost: %s", member.name, first_leaf(lost))
        except* ConnectError as failed:
            error = first_leaf(failed)
            permanent = permanent_error(error, announcing=True)
            if permanent is not None:
                raise permanent from error
            _log.warning("could not connect to %s: %s", member.name, error)
            refused = isinstance(error, ConnectError) and error.status_code is not None
        except* SchedulerClientError as failed:
            failure = first_leaf(failed)
            permanent = permanent_error(failure, announcing=announcing)
            if permanent is not None:
                raise permanent from failure
            _log.warning("could not announce to %s: %s", member.name, failure)
        except* ConnectionRejected as rejected:
            _log.warning("%s refused the handshake: %r", member.name, first_leaf(rejected))
            refused = True
        except* Exception as broken:  # e.g. the WebSocket library failing mid-close
            # One member's broken session must not take the host's other sessions down.
            _log.warning("session with %s failed: %r", member.name, first_leaf(broken))
        return refused

    async def _follow_routes(
        self, session: SchedulerSession, downloads: Downloads, resume: Resume
    ) -> None:
        """Register the tasks this member owns, leave those it lost; until shutdown."""
        host, view = self.host, self.host.view
        while not host.shutdown.is_set():
            epoch = view.epoch
            mine = {url for url in host.tasks if _owner_name(view, url) == self.member.name}
            async with trio.open_nursery() as nursery:
                for url in sorted(mine - self.held):
                    nursery.start_soon(self._bring, session, downloads, url, resume)
                for url in sorted(self.held - mine):
                    nursery.start_soon(self._hand_over, session, downloads, url)
            resume = Resume.REGISTER  # later gains are new to this member
            self.ready.set()
            await _changed_or_shutdown(view, epoch, host.shutdown)

    async def _bring(
        self, session: SchedulerSession, downloads: Downloads, url: str, resume: Resume
    ) -> None:
        task = TaskPayload(url=url)
        peer_id = peer_id_of(session.host_id, task)
        try:
            if resume is Resume.RESCHEDULE:
                download = await downloads.resume(peer_id, task)
            else:
                download = await downloads.register(peer_id, task)
        except RequestError as exc:
            if exc.code == "moved":
                here, owner = self.member.name, f"{exc.owner} ({exc.url})"
                _log.info("%s: %s says %s owns it; reading the members", url, here, owner)
                self.host.view.refresh_soon()
            else:  # one task's refusal is no reason to drop the member: retried on a change
                _log.warning("%s: %s refused the peer: %s", url, self.member.name, exc)
            return
        self.held.add(url)
        self.host.registered += 1
        _log.info("task %s as peer %s on %s: %s", url, peer_id, self.member.name, download.state)

    async def _hand_over(self, session: SchedulerSession, downloads: Downloads, url: str) -> None:
        """The task moved to another member: leave its peer here."""
        self.held.discard(url)
        peer_id = peer_id_of(session.host_id, TaskPayload(url=url))
        downloads.peers.pop(peer_id, None)
        try:
            await session.leave_peer(peer_id)
        except RequestError as exc:  # e.g. it finished meanwhile
            _log.info("%s: leave_peer refused: %s", peer_id, exc)


def _owner_name(view: ClusterView, url: str) -> str | None:
    owner = view.owner(TaskPayload(url=url).task_id)
    return None if owner is None else owner.name


async def _changed_or_shutdown(view: ClusterView, epoch: int, shutdown: trio.Event) -> None:
    """Return when the routes may have changed since ``epoch``, or at shutdown."""
    async with trio.open_nursery() as nursery:

        async def changed() -> None:
            await view.wait_changed(epoch)
            nursery.cancel_scope.cancel()

        nursery.start_soon(changed)
        await shutdown.wait()
        nursery.cancel_scope.cancel()


@final
class _ClusterHost:
    """One host of this process in the cluster, and its links to the members."""

    def __init__(self, config: PeerConfig, view: ClusterView, shutdown: trio.Event) -> None:
        self.config = config
        self.payload: HostPayload = config.host_payload()
        self.tasks = config.tasks
        self.view = view
        self.shutdown = shutdown
        self.boots: dict[str, BootWatch] = {}
        self.links: dict[str, _Link] = {}
        #: Peers registered (on any member), counted: the first time and after failovers.
        self.registered = 0

    async def run(self, task_status: trio.TaskStatus[None]) -> None:
        started = False
        async with trio.open_nursery() as nursery:
            while not self.shutdown.is_set():
                epoch = self.view.epoch
                for member in self.view.members:
                    if member.name not in self.links:
                        self.links[member.name] = link = _Link(self, member)
                        nursery.start_soon(self._run_link, link)
                if not started:
                    for link in list(self.links.values()):
                        await link.ready.wait()
                    started = True
                    task_status.started()
                await _changed_or_shutdown(self.view, epoch, self.shutdown)
        if not started:
            task_status.started()

    async def _run_link(self, link: _Link) -> None:
        await link.run()
        if self.links.get(link.member.name) is link:
            del self.links[link.member.name]


async def run_cluster_host(
    config: PeerConfig,
    view: ClusterView,
    *,
    shutdown: trio.Event,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Keep one host announced to every member of ``view`` until ``shutdown`` is set.

    ``config`` is a :class:`PeerConfig`; its tasks are routed through ``view``.
    ``task_status.started()`` once every member listed at the start has accepted the
    host and registered its tasks (or failed).
    """
    await _ClusterHost(config, view, shutdown).run(task_status)
