"""What the reference peer daemon announces, and where: one scheduler or a cluster."""

from __future__ import annotations

import socket
import ssl
from contextlib import AbstractAsyncContextManager
from typing import final

import attrs

from scheduler.protocol import HostPayload

from ._batching import DEFAULT_BATCH_LINGER, DEFAULT_BATCH_MAX, Batching
from ._connection import SchedulerSession, open_scheduler_session
from ._credentials import client_ssl_context
from ._downloads import DEFAULT_DOWNLOAD_RATE

__all__ = ["PeerConfig"]


def _is_scheduler_url(_instance: object, _attribute: object, value: str) -> None:
    if not value.startswith(("ws://", "wss://", "http://", "https://")):
        raise ValueError(
            "scheduler_url must be a ws:// or wss:// URL (one scheduler), or a cluster"
            f" member's admin URL, http:// or https:// (every scheduler), got {value!r}"
        )


def _positive_rate(_instance: object, _attribute: object, value: float) -> None:
    if not (isinstance(value, int | float) and 0 < value < float("inf")):
        raise ValueError(
            f"download_rate must be a positive number of bytes per second, got {value!r}"
        )


@final
@attrs.frozen(kw_only=True)
class PeerConfig:
    """What the peer daemon announces, and how patiently it talks to the scheduler.

    Durations are seconds.
    """

    #: The scheduler's WebSocket URL, e.g. ``ws://127.0.0.1:8002/ws``; or the admin
    #: URL of any member of a cluster, e.g. ``http://127.0.0.1:8000``: the daemon then
    #: reads the members from it, announces to every one and routes each task to one.
    scheduler_url: str = attrs.field(validator=_is_scheduler_url)
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
    #: Bytes per second the pieces of a ``fetch_task`` (a seed fetch, a preheat) are
    #: simulated at: the reference peer moves no real bytes.
    download_rate: float = attrs.field(default=DEFAULT_DOWNLOAD_RATE, validator=_positive_rate)
    #: Sent as ``Authorization: Bearer`` on every handshake (``scheduler token issue``).
    token: str | None = attrs.field(default=None, repr=False)
    #: For ``wss://``: the CA that signed the scheduler's certificate (default: the system's).
    ca_file: str | None = None
    #: A client certificate and its key, for a scheduler that verifies clients.
    cert_file: str | None = None
    key_file: str | None = None
    #: In a cluster: seconds between two reads of the members (``/api/v1/schedulers``).
    cluster_refresh: float = 10.0
    #: Requests (progress updates, registrations) sent within this many seconds of
    #: each other go out as one ``batch`` frame; 0 turns batching off.
    batch_linger: float = DEFAULT_BATCH_LINGER
    #: The most requests in one ``batch`` frame; a full one is sent at once (1: off).
    batch_max: int = DEFAULT_BATCH_MAX

    def batching(self) -> Batching:
        """The session's batching (ValueError for a linger < 0 or a max out of range)."""
        return Batching(linger=self.batch_linger, max_messages=self.batch_max)

    @property
    def cluster(self) -> bool:
        """True when ``scheduler_url`` is a cluster member's admin URL."""
        return self.scheduler_url.startswith(("http://", "https://"))

    def ssl_context(self, url: str | None = None) -> ssl.SSLContext | None:
        """The TLS settings for ``url`` (default ``scheduler_url``): None for ``ws://``;
        ValueError for a bad file."""
        if not (url or self.scheduler_url).startswith("wss://"):
            return None
        return client_ssl_context(self.ca_file, self.cert_file, self.key_file)

    def open_session(
        self, url: str, host: HostPayload, ssl_context: ssl.SSLContext | None
    ) -> AbstractAsyncContextManager[SchedulerSession]:
        """A session with the scheduler at ``url`` under this daemon's settings (announce
        interval, timeouts, token, batching): the one way both modes connect."""
        return open_scheduler_session(
            url,
            host,
            interval=self.announce_interval,
            connect_timeout=self.connect_timeout,
            request_timeout=self.request_timeout,
            ssl_context=ssl_context,
            token=self.token,
            batching=self.batching(),
        )

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
