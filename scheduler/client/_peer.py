"""The reference peer daemon: stay announced to the scheduler, forever, until shut down.

States, each logged on ``scheduler.peer``: *connecting* -> *announced* (the
session re-announces every ``announce_interval`` and pings the scheduler) ->
*lost* (dropped, evicted, frozen scheduler, failed re-announce) -> *backing off*
(full-jitter backoff) -> *connecting* ... On shutdown: *leaving* (``leave_host``,
bounded by ``leave_timeout``) -> *stopped*.

While announced it follows the protocol for each of its tasks (see
:mod:`._downloads`): it registers, obeys each ``schedule`` (parents, origin,
wait and reschedule, fail) and each push, and logs the parents it was given.
With ``seed`` it announces a seed host and obeys ``fetch_task``.
"""

from __future__ import annotations

import logging
import socket
from typing import TypeVar, final

import attrs
import trio
from wsproto.utilities import LocalProtocolError

from scheduler.protocol import HostPayload, TaskPayload

from ._backoff import Backoff
from ._connection import SchedulerSession, open_scheduler_session
from ._downloads import Downloads
from ._errors import SchedulerClientError, SessionLost

__all__ = ["PeerConfig", "run_peer"]

_log = logging.getLogger("scheduler.peer")


def _is_websocket_url(_instance: object, _attribute: object, value: str) -> None:
    if not value.startswith(("ws://", "wss://")):
        raise ValueError(f"scheduler_url must be a ws:// or wss:// URL, got {value!r}")


@final
@attrs.frozen(kw_only=True)
class PeerConfig:
    """What the peer daemon announces, and how patiently it talks to the scheduler.

    Durations are seconds.
    """

    #: The scheduler's WebSocket URL, e.g. ``ws://127.0.0.1:8002/ws``.
    scheduler_url: str = attrs.field(validator=_is_websocket_url)
    #: The port this host serves pieces on.
    port: int
    #: The port this host's downloads go through.
    download_port: int
    hostname: str = attrs.field(factory=socket.gethostname)
    ip: str = "127.0.0.1"
    idc: str = ""
    location: str = ""
    #: Seconds between announces; the scheduler expires the host after twice this.
    announce_interval: float = 30.0
    #: Reconnect backoff: full jitter between 0 and ``min(cap, base * 2 ** attempt)``.
    backoff_base: float = 0.1
    backoff_cap: float = 5.0
    #: A session that lasted this long resets the backoff to ``backoff_base``.
    backoff_reset_after: float = 10.0
    connect_timeout: float = 5.0
    request_timeout: float = 5.0
    #: How long to wait for the ack of ``leave_host`` on shutdown.
    leave_timeout: float = 3.0
    #: URLs of tasks this host downloads: after each announce, the daemon keeps one
    #: peer per task registered and running (a stand-in for real downloads).
    tasks: tuple[str, ...] = ()
    #: Announce a seed host, which fetches tasks from the origin when asked (``fetch_task``).
    seed: bool = False

    def host_payload(self) -> HostPayload:
        """The ``host`` of this daemon's ``announce_host``."""
        return HostPayload(
            hostname=self.hostname,
            ip=self.ip,
            port=self.port,
            download_port=self.download_port,
            type="seed" if self.seed else "normal",
            idc=self.idc,
            location=self.location,
        )


@final
class _PeerDaemon:
    def __init__(
        self, config: PeerConfig, shutdown: trio.Event, task_status: trio.TaskStatus[None]
    ) -> None:
        self._config = config
        self._host = config.host_payload()
        self._shutdown = shutdown
        self._task_status = task_status
        self._started = False
        self._backoff = Backoff(
            base=config.backoff_base,
            cap=config.backoff_cap,
            reset_after=config.backoff_reset_after,
        )
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
                async with open_scheduler_session(
                    config.scheduler_url,
                    self._host,
                    interval=config.announce_interval,
                    connect_timeout=config.connect_timeout,
                    request_timeout=config.request_timeout,
                ) as session:
                    accepted_at = trio.current_time()
                    self._in_session = True
                    _log.info("announced as %s", session.host_id)
                    async with trio.open_nursery() as nursery:
                        downloads = Downloads(session, nursery, seed=config.seed)
                        nursery.start_soon(downloads.follow)
                        await self._register_downloads(session, downloads)
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
                _log.warning("session lost: %s", _first(lost).reason)
            except* SchedulerClientError as failed:
                _log.warning("could not announce: %s", _first(failed))
            # trio-websocket's reader raises this when a ping arrives while the client is
            # closing (a frozen link that thaws): the session is over, the daemon is not.
            except* LocalProtocolError as closing:
                _log.warning("session lost while closing: %s", _first(closing))
            finally:
                self._in_session = False
        return 0.0 if accepted_at is None else trio.current_time() - accepted_at

    async def _register_downloads(self, session: SchedulerSession, downloads: Downloads) -> None:
        """One peer per configured task, following its schedule (it may survive a reconnect)."""
        for url in self._config.tasks:
            task = TaskPayload(url=url)
            peer_id = f"{session.host_id}/{task.task_id[:16]}"
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


E = TypeVar("E", bound=BaseException)


def _first(group: BaseExceptionGroup[E]) -> E:
    """The first leaf of an exception group (a session ends for one reason)."""
    leaf: BaseException = group
    while isinstance(leaf, BaseExceptionGroup):
        leaf = leaf.exceptions[0]
    return leaf  # type: ignore[return-value]


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
    daemon = _PeerDaemon(config, trio.Event() if shutdown is None else shutdown, task_status)
    await daemon.run()
