"""The reference peer daemon: stay announced to the scheduler, forever, until shut down.

States, each logged on ``scheduler.peer``: *connecting* -> *announced* (the
session re-announces every ``announce_interval`` and pings the scheduler) ->
*lost* (dropped, evicted, frozen scheduler, failed re-announce) -> *backing off*
(full-jitter backoff) -> *connecting* ... On shutdown: *leaving* (``leave_host``,
bounded by ``leave_timeout``) -> *stopped*.

While announced it follows the protocol for each of its tasks (see
:mod:`._downloads`): it registers, obeys each ``schedule`` (parents, origin,
wait and reschedule, fail) and each push, and logs the parents it was given.
After a reconnect it brings its peers back at once, all together, as the
``boot_id`` of ``host_accepted`` says (see :mod:`._boot`): the same scheduler
process is asked where each peer stands (``reschedule``); a restarted one (a new
``boot_id``) gets every peer registered again.
With ``seed`` it announces a seed host and obeys ``fetch_task``.
"""

from __future__ import annotations

import logging
from typing import final

import trio
from wsproto.utilities import LocalProtocolError

from scheduler.protocol import TaskPayload

from ._backoff import Backoff
from ._boot import BootWatch, Resume
from ._cluster import ClusterView, peer_id_of, run_cluster_host
from ._connection import SchedulerSession
from ._downloads import Downloads
from ._errors import SchedulerClientError, SessionLost, first_leaf, permanent_error
from ._peer_config import PeerConfig

__all__ = ["PeerConfig", "run_peer"]

_log = logging.getLogger("scheduler.peer")


@final
class _PeerDaemon:
    def __init__(
        self, config: PeerConfig, shutdown: trio.Event, task_status: trio.TaskStatus[None]
    ) -> None:
        self._config = config
        self._host = config.host_payload()
        self._ssl_context = config.ssl_context()
        self._shutdown = shutdown
        self._task_status = task_status
        self._started = False
        self._backoff = Backoff(
            base=config.backoff_base,
            cap=config.backoff_cap,
            reset_after=config.backoff_reset_after,
        )
        self._boot = BootWatch()
        # Shutdown cancels a connect in progress; an announced session leaves instead.
        self._connecting = trio.CancelScope()
        self._in_session = False

    async def run(self) -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._abort_connect_on_shutdown)
            await self._keep_announced()
            nursery.cancel_scope.cancel()
        _log.info("stopped")
        # Shut down before the first accept: still report started, so that
        # ``nursery.start(run_peer, ...)`` returns instead of raising.
        self._report_started()

    async def _keep_announced(self) -> None:
        while not self._shutdown.is_set():
            lasted = await self._hold_one_session()
            if self._shutdown.is_set():
                return
            self._backoff.session_ended(lasted)
            delay = self._backoff.next_delay()
            _log.info("reconnecting in %.2f s (attempt %d)", delay, self._backoff.attempt)
            with trio.move_on_after(delay):
                await self._shutdown.wait()

    async def _hold_one_session(self) -> float:
        """Connect, announce, and hold the session; return how long it was announced."""
        config = self._config
        accepted_at: float | None = None
        with trio.CancelScope() as self._connecting:
            _log.info("connecting to %s", config.scheduler_url)
            try:
                async with config.open_session(
                    config.scheduler_url, self._host, self._ssl_context
                ) as session:
                    accepted_at = trio.current_time()
                    self._in_session = True
                    _log.info("announced as %s", session.host_id)
                    resume = self._resume_as(session.boot_id)
                    async with trio.open_nursery() as nursery:
                        downloads = Downloads(
                            session, nursery, seed=config.seed, download_rate=config.download_rate
                        )
                        nursery.start_soon(downloads.follow)
                        await self._register_downloads(session, downloads, resume)
                        self._report_started()
                        await self._shutdown.wait()
                        nursery.cancel_scope.cancel()
                    _log.info("shutting down: leaving the scheduler")
                    if await session.leave(ack_timeout=config.leave_timeout):
                        _log.info("left the scheduler")
                    else:
                        _log.warning(
                            "leave_host not acknowledged within %g s", config.leave_timeout
                        )
            # The loss may surface in a task of the downloads' nursery, wrapped in an
            # ExceptionGroup: except* takes it out of a group as well as bare.
            except* SessionLost as lost:
                _log.warning("session lost: %s", first_leaf(lost).reason)
            except* SchedulerClientError as failed:
                error = first_leaf(failed)
                permanent = permanent_error(error, announcing=accepted_at is None)
                if permanent is not None:
                    raise permanent from error
                _log.warning("could not announce: %s", error)
            # A backstop: trio-websocket can still raise this when a message is sent in
            # the instant the scheduler's Close arrives (python-trio/trio-websocket#175;
            # the ping-while-closing case, #184, wrap_client_stream contains). The
            # session is over, the daemon is not.
            except* LocalProtocolError as closing:
                _log.warning("session lost while closing: %s", first_leaf(closing))
            finally:
                self._in_session = False
        return 0.0 if accepted_at is None else trio.current_time() - accepted_at

    def _resume_as(self, boot_id: str | None) -> Resume:
        """Compare the scheduler's ``boot_id`` with the last one: how to bring peers back."""
        previous, restarts = self._boot.boot_id, self._boot.restarts
        resume = self._boot.accepted(boot_id)
        if self._boot.restarts > restarts:
            _log.warning(
                "the scheduler restarted (boot_id %s, was %s): registering %d peers again",
                boot_id,
                previous,
                len(self._config.tasks),
            )
        return resume

    async def _register_downloads(
        self, session: SchedulerSession, downloads: Downloads, resume: Resume
    ) -> None:
        """One peer per configured task, all at once, following its schedule."""
        async with trio.open_nursery() as nursery:
            for url in self._config.tasks:
                nursery.start_soon(self._bring_back, session, downloads, url, resume)

    async def _bring_back(
        self, session: SchedulerSession, downloads: Downloads, url: str, resume: Resume
    ) -> None:
        task = TaskPayload(url=url)
        peer_id = peer_id_of(session.host_id, task)
        if resume is Resume.RESCHEDULE:
            download = await downloads.resume(peer_id, task)
        else:
            download = await downloads.register(peer_id, task)
        _log.info("task %s as peer %s: %s", url, peer_id, download.state)

    async def _abort_connect_on_shutdown(self) -> None:
        await self._shutdown.wait()
        if not self._in_session:
            self._connecting.cancel()

    def _report_started(self) -> None:
        if not self._started:
            self._started = True
            self._task_status.started()


async def run_peer(
    config: PeerConfig,
    *,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    shutdown: trio.Event | None = None,
) -> None:
    """Keep this host announced to the scheduler until ``shutdown`` is set.

    Connects and announces; while the session lasts it re-announces every
    ``config.announce_interval`` and pings the scheduler (trio-websocket answers
    the scheduler's pings). When the session is lost, or cannot be opened, it
    reconnects after a full-jitter backoff and announces again, forever.

    When ``shutdown`` is set it sends ``leave_host``, waits for the ack at most
    ``config.leave_timeout`` seconds, and returns. A connect in progress is
    abandoned at once.

    ``task_status.started()`` is called once the first ``host_accepted`` arrived
    (or on return, if shut down before that), so ``await nursery.start(run_peer,
    ...)`` returns once the host is announced.
    """
    shutdown = trio.Event() if shutdown is None else shutdown
    if config.cluster:
        await _run_in_cluster(config, shutdown, task_status)
        return
    daemon = _PeerDaemon(config, shutdown, task_status)
    await daemon.run()


async def _run_in_cluster(
    config: PeerConfig, shutdown: trio.Event, task_status: trio.TaskStatus[None]
) -> None:
    """``scheduler_url`` is a member's admin URL: find the members, then serve them all."""
    view = ClusterView(
        config.scheduler_url,
        refresh_interval=config.cluster_refresh,
        fetch_timeout=config.request_timeout,
        token=config.token,
        ca_file=config.ca_file,
    )
    async with trio.open_nursery() as nursery:
        with trio.CancelScope() as finding:
            nursery.start_soon(_cancel_on, shutdown, finding)
            _log.info("reading the cluster's schedulers from %s", config.scheduler_url)
            await nursery.start(view.run)
        found = not shutdown.is_set()
        if found:  # reports started itself
            await run_cluster_host(config, view, shutdown=shutdown, task_status=task_status)
        nursery.cancel_scope.cancel()
    _log.info("stopped")
    if not found:  # shut down before the cluster answered: still report started
        task_status.started()


async def _cancel_on(event: trio.Event, scope: trio.CancelScope) -> None:
    await event.wait()
    scope.cancel()
