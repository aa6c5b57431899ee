"""The web console: its page, the summary it shows, and its live stream.

``GET /`` on the admin listener serves a page (``console/`` beside this module:
HTML, one script, one style sheet, no build step) that reads the admin API with
the operator's token. What keeps it live is a WebSocket,
``/api/v1/console/stream``, which carries no records: only a *summary* of
counters the core and the metrics already keep (hosts, peers and tasks by state,
sessions, messages handled, scheduling decisions, evictions, jobs). When the summary
changes, the page re-reads the pages of the tables it shows.

The stream's conversation (JSON text messages)::

    browser -> {"type": "hello", "token": "<admin:read token>" | null}   first, within
                                                          limits.handshake_timeout
    server  -> {"type": "summary", "seq": 1, "summary": {...}}
    browser -> {"type": "ack", "seq": 1}                   within liveness.send_timeout
    server  -> {"type": "summary", "seq": 2, ...}          when the summary changed, at
                                                          most once per INTERVAL, and
                                                          every HEARTBEAT regardless
    ...

**Bounds.** The server sends the next summary only once the previous one was
acknowledged, so a stream never has more than one summary (about 1 KiB) unread:
the kernel's socket buffer takes it at once, and no send waits on the browser.
A browser that does not acknowledge within ``liveness.send_timeout`` (it stopped
reading, froze, or vanished) is dropped (close 4408), and so is one that says
nothing after the upgrade. At most ``limits.console_streams`` streams are open at
once; one more is closed with 1013 at once. The summary is computed at most once
per INTERVAL/2 for every stream together, from O(1) counters: the records are
never read for it, so a stream costs the same with 10 or 100,000 hosts.

**Protection.** The upgrade passes the admin API's ``Host`` check, and an
``Origin`` (browsers always send one) must name the address the page was loaded
from, so that another web site cannot open the stream (cross-site WebSocket
hijacking). A browser's WebSocket cannot send ``Authorization``, so the token
travels in the first message, never in the URL, and is checked by the same
:class:`~._auth.AdminGuard` as every admin request (``admin:read``; 4401 or 4403
otherwise).

Close codes: 1001 shutting down, 1009 a message over 4 KiB, 1013 too many
streams, 4400 a message that is not the conversation's next, 4401 no valid
token, 4403 a token without ``admin:read``, 4408 no hello or no ack in time.
"""

from __future__ import annotations

import enum
import importlib.resources
import logging
import math
import urllib.parse
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping, MutableMapping
from typing import TYPE_CHECKING, Any, Final, final

import attrs
import orjson
import trio
from prometheus_client import Counter

from ._auth import AdminGuard, AdminRefusal
from ._config import ServiceConfig
from ._headers import security_headers

if TYPE_CHECKING:
    from ..core import StateView
    from ..jobs import JobLedger
    from ._evictions import EvictionLog
    from ._metrics import Metrics

log = logging.getLogger("scheduler.admin")

STREAM_PATH: Final = "/api/v1/console/stream"
#: The least time between two updates on one stream; changes in between are coalesced.
INTERVAL: Final = 0.5
#: An unchanged summary is sent again this often, so that a browser that vanished
#: without a word (no ack) is found, and the page refreshes its ages and times.
HEARTBEAT: Final = 15.0
#: The longest message a browser may send on the stream (a hello with its token).
MAX_MESSAGE: Final = 4096
#: A WebSocket close reason holds at most 123 bytes.
_MAX_REASON: Final = 123

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
OnRefusal = Callable[[str, str], None]


@final
@attrs.frozen
class Asset:
    """One file of the console's page."""

    body: bytes
    content_type: str
    csp: str = "default"


def _read(name: str) -> bytes:
    return (importlib.resources.files(__package__) / "console" / name).read_bytes()


#: The page and its files, read once, by path: the paths of :data:`~._auth.CONSOLE_PAGES`.
ASSETS: Final[Mapping[str, Asset]] = {
    "/": Asset(_read("index.html"), "text/html; charset=utf-8", csp="console"),
    "/console/console.js": Asset(_read("console.js"), "text/javascript; charset=utf-8"),
    "/console/console.css": Asset(_read("console.css"), "text/css; charset=utf-8"),
}


# --- the summary ----------------------------------------------------------------------------


def summarize(
    view: StateView,
    sessions: int,
    metrics: Metrics,
    evictions: EvictionLog,
    jobs: JobLedger,
) -> dict[str, Any]:
    """What the console's header shows, from counters only: O(1) in the records."""
    decisions = sorted(_counted(metrics.schedule_decisions), key=lambda c: sorted(c[0].items()))
    kinds = (
        ("host", metrics.host_evictions),
        ("peer", metrics.peer_evictions),
        ("task", metrics.task_evictions),
    )
    return {
        "hosts": {state.value: n for state, n in view.host_counts_by_state().items()},
        "peers": {state.value: n for state, n in view.peer_counts_by_state().items()},
        "tasks": {state.value: n for state, n in view.task_counts_by_state().items()},
        "sessions": sessions,
        "messages": int(sum(value for _, value in _counted(metrics.messages))),
        "decisions": [
            {"action": labels["action"], "cause": labels["cause"], "count": int(value)}
            for labels, value in decisions
        ],
        "evictions": [
            {"kind": kind, "reason": labels["reason"], "count": int(value)}
            for kind, counter in kinds
            for labels, value in sorted(_counted(counter), key=lambda c: c[0]["reason"])
        ],
        "evictions_recorded": evictions.total,
        # Since start: jobs accepted and finished, and their hosts done. What the console's
        # jobs table shows changes only with these (a queued job starts when one is
        # accepted or another finishes).
        "jobs": {
            "submitted": jobs.jobs_submitted,
            "unfinished": jobs.jobs_submitted - sum(jobs.jobs_finished.values()),
            "succeeded": jobs.jobs_finished["succeeded"],
            "failed": jobs.jobs_finished["failed"],
            "hosts_succeeded": jobs.hosts_finished["succeeded"],
            "hosts_failed": jobs.hosts_finished["failed"],
        },
    }


def _counted(counter: Counter) -> Iterator[tuple[dict[str, str], float]]:
    """A counter's labelled values (its ``_total`` samples), through its public ``collect``."""
    for family in counter.collect():
        for sample in family.samples:
            if sample.name.endswith("_total"):
                yield sample.labels, sample.value


# --- the streams ----------------------------------------------------------------------------


class StreamEnd(enum.StrEnum):
    """Why a console stream ended: the ``cause`` label of its metric."""

    #: The browser closed the stream or went away.
    CLOSED = "closed"
    #: ``limits.console_streams`` were open already.
    FULL = "full"
    #: No hello within ``limits.handshake_timeout``.
    HELLO_TIMEOUT = "hello_timeout"
    #: The hello's token was refused (401 or 403).
    REFUSED = "refused"
    #: A summary was not acknowledged within ``liveness.send_timeout``.
    ACK_TIMEOUT = "ack_timeout"
    #: A send did not complete within ``liveness.send_timeout``.
    SEND_TIMEOUT = "send_timeout"
    #: A message that is not the conversation's next one, or too long.
    BAD_MESSAGE = "bad_message"
    #: The scheduler is shutting down.
    SHUTDOWN = "shutdown"


@final
class ConsoleStreams:
    """The console's live streams: their cap, the shared summary, and shutdown."""

    def __init__(
        self,
        summarize: Callable[[], Mapping[str, Any]],
        *,
        max_streams: int,
        ack_timeout: float,
        hello_timeout: float,
        metrics: Metrics | None = None,
    ) -> None:
        self._summarize = summarize
        self.max_streams = max_streams
        self.ack_timeout = ack_timeout
        self.hello_timeout = hello_timeout
        self._metrics = metrics
        #: Streams open now (past the upgrade, holding a slot).
        self.open = 0
        self._conversations: set[_Conversation] = set()
        self._changed = trio.Event()
        self._stopping = False
        self._summary: Mapping[str, Any] = {}
        self._summary_at = -math.inf
        #: Moves whenever the summary changes.
        self.version = 0

    @classmethod
    def from_config(
        cls,
        config: ServiceConfig,
        summarize: Callable[[], Mapping[str, Any]],
        metrics: Metrics | None = None,
    ) -> ConsoleStreams:
        """Streams as the settings ask: ``limits.console_streams`` of them, acks within
        ``liveness.send_timeout``, the hello within ``limits.handshake_timeout``."""
        return cls(
            summarize,
            max_streams=config.console_streams,
            ack_timeout=config.send_timeout,
            hello_timeout=config.handshake_timeout,
            metrics=metrics,
        )

    def current(self, now: float) -> tuple[int, Mapping[str, Any]]:
        """The summary and its version, recomputed when older than ``INTERVAL / 2``."""
        if now - self._summary_at >= INTERVAL / 2:
            summary = self._summarize()
            if summary != self._summary:
                self._summary = summary
                self.version += 1
            self._summary_at = now
        return self.version, self._summary

    def stop(self) -> None:
        """Close every stream with 1001 and refuse new ones (shutdown)."""
        self._stopping = True
        for conversation in list(self._conversations):
            conversation.end(StreamEnd.SHUTDOWN, 1001, "the scheduler is shutting down")

    async def wait_open(self, count: int) -> None:
        """Return once exactly ``count`` streams are open."""
        while self.open != count:
            await self._changed.wait()

    def _take(self, conversation: _Conversation) -> bool:
        if self._stopping or self.open >= self.max_streams:
            return False
        self.open += 1
        self._conversations.add(conversation)
        self._count_change()
        return True

    def _give_back(self, conversation: _Conversation) -> None:
        self.open -= 1
        self._conversations.discard(conversation)
        self._count_change()

    def _count_change(self) -> None:
        if self._metrics is not None:
            self._metrics.console_streams.set(self.open)
        self._changed.set()
        self._changed = trio.Event()

    def _ended(self, cause: StreamEnd) -> None:
        if self._metrics is not None:
            self._metrics.console_stream_ends.labels(cause.value).inc()


async def serve_stream(
    scope: Scope,
    receive: Receive,
    send: Send,
    *,
    streams: ConsoleStreams,
    guard: AdminGuard | None,
    on_refusal: OnRefusal | None,
) -> None:
    """Run one console stream: an ASGI ``websocket`` scope on :data:`STREAM_PATH`."""
    await receive()  # websocket.connect
    headers = list(scope.get("headers", ()))
    client = scope.get("client")
    address = str(client[0]) if client else ""
    refusal = None if guard is None else guard.check_host(headers)
    if refusal is None and not same_origin(headers):
        refusal = AdminRefusal(
            403, "the Origin header does not name the address the console was loaded from", "origin"
        )
    if refusal is not None:
        if on_refusal is not None:
            on_refusal(refusal.reason, address)
        await _reject(send, refusal, within=streams.ack_timeout)
        return
    conversation = _Conversation(
        streams, receive, send, guard=guard, on_refusal=on_refusal, address=address, headers=headers
    )
    await conversation.run()


def same_origin(headers: Iterable[tuple[bytes, bytes]]) -> bool:
    """True without an ``Origin`` (not a browser), or when it names the ``Host`` asked for."""
    origins = [value for name, value in headers if name.lower() == b"origin"]
    hosts = [value for name, value in headers if name.lower() == b"host"]
    if not origins:
        return True
    if len(origins) > 1 or len(hosts) != 1:
        return False
    try:
        netloc = urllib.parse.urlsplit(origins[0].decode("ascii")).netloc
    except (UnicodeDecodeError, ValueError):
        return False
    return bool(netloc) and netloc.lower() == hosts[0].decode("latin-1").strip().lower()


async def _reject(send: Send, refusal: AdminRefusal, *, within: float) -> None:
    body = orjson.dumps({"error": refusal.message})
    with trio.move_on_after(within):
        await send(
            {
                "type": "websocket.http.response.start",
                "status": refusal.status,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    *refusal.headers,
                    *security_headers(),
                ],
            }
        )
        await send({"type": "websocket.http.response.body", "body": body})


class _BadMessage(Exception):
    pass


@final
class _Conversation:
    """One stream after its upgrade passed: hello, then summaries and their acks."""

    def __init__(
        self,
        streams: ConsoleStreams,
        receive: Receive,
        send: Send,
        *,
        guard: AdminGuard | None,
        on_refusal: OnRefusal | None,
        address: str,
        headers: list[tuple[bytes, bytes]],
    ) -> None:
        self._streams = streams
        self._guard = guard
        self._on_refusal = on_refusal
        self._address = address
        self._headers = headers
        self._receive = receive
        self._send = send
        self._scope = trio.CancelScope()
        self._cause: StreamEnd | None = None
        self._close: tuple[int, str] | None = None
        self._sent = 0
        self._acked = 0
        self._ack = trio.Event()

    def end(self, cause: StreamEnd, code: int | None = None, reason: str = "") -> None:
        """End the stream (the first cause stands); close it with ``code`` unless None."""
        if self._cause is not None:
            return
        self._cause = cause
        if code is not None:
            self._close = (code, reason.encode()[:_MAX_REASON].decode("utf-8", "ignore"))
        self._scope.cancel()

    async def run(self) -> None:
        streams = self._streams
        if not streams._take(self):
            if streams._stopping:
                cause, code, reason = StreamEnd.SHUTDOWN, 1001, "the scheduler is shutting down"
            else:
                limit = streams.max_streams
                cause, code = StreamEnd.FULL, 1013
                reason = f"too many console streams (limits.console_streams = {limit})"
            streams._ended(cause)
            if await self._bounded({"type": "websocket.accept"}):
                await self._bounded({"type": "websocket.close", "code": code, "reason": reason})
            return
        try:
            if await self._bounded({"type": "websocket.accept"}):
                with self._scope:
                    await self._converse()
            else:
                self.end(StreamEnd.SEND_TIMEOUT)
            if self._close is not None:
                code, reason = self._close
                await self._bounded({"type": "websocket.close", "code": code, "reason": reason})
        finally:
            streams._give_back(self)
            streams._ended(self._cause or StreamEnd.CLOSED)

    async def _converse(self) -> None:
        timeout = self._streams.hello_timeout
        message: Message | None = None
        with trio.move_on_after(timeout):
            message = await self._receive()
        if message is None:
            self.end(StreamEnd.HELLO_TIMEOUT, 4408, f"no hello within {timeout} s")
            return
        await self._hello(message)
        if self._cause is not None:
            return
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._read)
            nursery.start_soon(self._write)

    async def _hello(self, message: Message) -> None:
        """Check the hello's token with the admin guard; end the stream if it is refused."""
        try:
            hello = _decode(message)
        except _Disconnected:
            self.end(StreamEnd.CLOSED)
            return
        except _BadMessage as exc:
            self.end(StreamEnd.BAD_MESSAGE, 4400, str(exc))
            return
        token = hello.get("token")
        if hello.get("type") != "hello" or not (token is None or isinstance(token, str)):
            self.end(StreamEnd.BAD_MESSAGE, 4400, 'expected {"type": "hello", "token": ...}')
            return
        if self._guard is None:
            return
        headers = [(n, v) for n, v in self._headers if n.lower() != b"authorization"]
        if token:
            headers.append((b"authorization", f"Bearer {token}".encode("utf-8", "replace")))
        refusal = self._guard.check("GET", STREAM_PATH, headers)
        if refusal is not None:
            if self._on_refusal is not None:
                self._on_refusal(refusal.reason, self._address)
            code = 4403 if refusal.status == 403 else 4401
            self.end(StreamEnd.REFUSED, code, refusal.message)

    async def _read(self) -> None:
        """Take the browser's acks; anything else ends the stream."""
        while True:
            try:
                message = _decode(await self._receive())
            except _Disconnected:
                self.end(StreamEnd.CLOSED)
                return
            except _BadMessage as exc:
                self.end(StreamEnd.BAD_MESSAGE, 4400, str(exc))
                return
            seq = message.get("seq")
            if (
                message.get("type") != "ack"
                or not isinstance(seq, int)
                or isinstance(seq, bool)
                or not 0 < seq <= self._sent
            ):
                self.end(StreamEnd.BAD_MESSAGE, 4400, 'expected {"type": "ack", "seq": N}')
                return
            if seq > self._acked:
                self._acked = seq
                self._ack.set()
                self._ack = trio.Event()

    async def _write(self) -> None:
        """Send the summary when it changed (or a heartbeat is due), once the last was acked."""
        streams = self._streams
        sent_version, sent_at = -1, -math.inf
        while True:
            now = trio.current_time()
            version, summary = streams.current(now)
            if version != sent_version or now - sent_at >= HEARTBEAT:
                seq = self._sent + 1
                text = orjson.dumps({"type": "summary", "seq": seq, "summary": summary}).decode()
                self._sent = seq
                if not await self._bounded({"type": "websocket.send", "text": text}):
                    self.end(StreamEnd.SEND_TIMEOUT)
                    return
                sent_version, sent_at = version, now
                with trio.move_on_after(streams.ack_timeout):
                    while self._acked < seq:
                        await self._ack.wait()
                if self._acked < seq:
                    reason = f"no ack within {streams.ack_timeout} s"
                    self.end(StreamEnd.ACK_TIMEOUT, 4408, reason)
                    return
            await trio.sleep(INTERVAL)

    async def _bounded(self, message: Message) -> bool:
        """Send one message within ``liveness.send_timeout``; False if it did not go."""
        with trio.move_on_after(self._streams.ack_timeout):
            await self._send(message)
            return True
        return False


class _Disconnected(Exception):
    pass


def _decode(message: Message) -> dict[str, Any]:
    """A client message as a JSON object; _Disconnected or _BadMessage otherwise."""
    if message.get("type") == "websocket.disconnect":
        raise _Disconnected
    raw = message.get("text")
    if raw is None:
        raw = message.get("bytes")
    try:
        decoded = orjson.loads(raw) if raw is not None else None
    except orjson.JSONDecodeError:
        raise _BadMessage("not JSON") from None
    if not isinstance(decoded, dict):
        raise _BadMessage("expected a JSON object")
    return decoded
