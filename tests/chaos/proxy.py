"""A fault-injecting TCP proxy written with trio, for the chaos suite.

``FaultProxy`` listens on 127.0.0.1 (port 0) and forwards every accepted
connection to an upstream address. Each proxied connection is a :class:`Link`
whose two directions are pumped by :func:`pump`; the test controls them while
they run:

* **delay** and **jitter**: each chunk is held ``delay ± jitter`` seconds (and
  ``spike`` seconds more with probability ``spike_probability``). Bytes are never
  reordered: a chunk leaves no earlier than the one before it, as on a TCP link,
  so a spike delays what follows it too (head-of-line blocking);
* **freeze**: stop forwarding in both directions, keep both sockets open (the
  kernel buffers fill, nothing is closed: a hung host or a black-holed route);
* **drop**: close both sockets at once;
* **half-close**: send EOF in one direction, keep the other open.

A link is labelled with the hostname of its first ``announce_host`` (read from
the client's first WebSocket frame, before that frame is forwarded), so a test
can freeze a chosen set of hosts, and a host that reconnects while frozen is
frozen again before its announce reaches the scheduler.

The pumps work on any ``trio.abc.Stream``: :func:`pump` between memory streams
gives the same faults under the mock clock (the virtual-time jitter scenario).
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Iterable
from typing import final

import attrs
import orjson
import trio

#: How many bytes one receive takes from a socket.
CHUNK = 65536


@attrs.define
class Faults:
    """What a link does to the bytes it forwards; changed live by the test."""

    delay: float = 0.0
    jitter: float = 0.0
    spike_probability: float = 0.0
    spike: float = 0.0
    #: Counters: chunks held, and how many of them spiked.
    chunks: int = attrs.field(default=0, eq=False)
    spiked: int = attrs.field(default=0, eq=False)

    def hold(self, rng: random.Random) -> float:
        """How long one chunk is held: ``delay ± jitter``, plus a spike now and then."""
        self.chunks += 1
        held = self.delay + (rng.uniform(-self.jitter, self.jitter) if self.jitter else 0.0)
        if self.spike_probability and rng.random() < self.spike_probability:
            self.spiked += 1
            held += self.spike
        return max(held, 0.0)


@final
class Gate:
    """Open or shut; a shut gate blocks both pumps of a link (a freeze)."""

    def __init__(self) -> None:
        self._open = trio.Event()
        self._open.set()

    @property
    def is_open(self) -> bool:
        return self._open.is_set()

    def shut(self) -> None:
        if self._open.is_set():
            self._open = trio.Event()

    def open(self) -> None:
        self._open.set()

    async def wait_open(self) -> None:
        await self._open.wait()


def announced_hostname(head: bytes) -> str | None:
    """The hostname of the ``announce_host`` in the first WebSocket frame after the
    HTTP upgrade request in ``head``; ``None`` while ``head`` holds too little, or
    when the frame is anything else (the link then stays unlabelled)."""
    end = head.find(b"\r\n\r\n")
    if end < 0:
        return None
    frame = head[end + 4 :]
    if len(frame) < 2:
        return None
    length, at = frame[1] & 0x7F, 2
    if length == 126:
        length, at = int.from_bytes(frame[2:4]), 4
    elif length == 127:
        length, at = int.from_bytes(frame[2:10]), 10
    masked = bool(frame[1] & 0x80)
    mask, at = (frame[at : at + 4], at + 4) if masked else (b"\0\0\0\0", at)
    if len(frame) < at + length:
        return None
    payload = bytes(b ^ mask[i % 4] for i, b in enumerate(frame[at : at + length]))
    try:
        message = orjson.loads(payload)
        hostname = message["host"]["hostname"] if message["type"] == "announce_host" else None
    except (orjson.JSONDecodeError, KeyError, TypeError):
        return ""
    return hostname if isinstance(hostname, str) else ""


@final
class Direction:
    """One direction of a link: reads ``source``, holds each chunk, writes ``sink``.

    ``stop()`` ends the reading; what was read is still delivered, then EOF is sent
    on ``sink`` when the stream can (a half-close), else it is closed.
    """

    def __init__(
        self,
        source: trio.abc.ReceiveStream,
        sink: trio.abc.SendStream,
        faults: Callable[[], Faults],
        gate: Gate,
        rng: random.Random,
        *,
        first_chunk: Callable[[bytes], None] | None = None,
    ) -> None:
        self._source, self._sink = source, sink
        self._faults, self._gate, self._rng = faults, gate, rng
        self._first_chunk = first_chunk
        self._reading = trio.CancelScope()

    def stop(self) -> None:
        self._reading.cancel()

    async def run(self) -> None:
        """Forward until EOF, an error, or ``stop()``; waits on the gate before each step."""
        send, receive = trio.open_memory_channel[tuple[float, bytes]](math.inf)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._deliver, receive)
            async with send:
                with self._reading:
                    while True:
                        await self._gate.wait_open()
                        try:
                            data = await self._source.receive_some(CHUNK)
                        except (trio.BrokenResourceError, trio.ClosedResourceError):
                            data = b""
                        if self._first_chunk is not None:
                            self._first_chunk(data)
                        await self._gate.wait_open()  # a freeze while receiving holds it too
                        if not data:
                            break
                        due = trio.current_time() + self._faults().hold(self._rng)
                        try:
                            send.send_nowait((due, data))
                        except trio.BrokenResourceError:
                            break  # the sink is gone: nothing more to forward

    async def _deliver(self, chunks: trio.MemoryReceiveChannel[tuple[float, bytes]]) -> None:
        last = -math.inf
        async with chunks:
            async for due, data in chunks:
                last = max(last, due)  # never overtake the chunk before
                await trio.sleep_until(last)
                await self._gate.wait_open()
                try:
                    await self._sink.send_all(data)
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    self._reading.cancel()  # the sink is gone: stop reading too
                    return
        try:
            if isinstance(self._sink, trio.abc.HalfCloseableStream):
                await self._sink.send_eof()
            else:
                await self._sink.aclose()
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
            pass


async def pump(
    source: trio.abc.ReceiveStream,
    sink: trio.abc.SendStream,
    faults: Callable[[], Faults],
    gate: Gate,
    rng: random.Random,
) -> None:
    """Forward ``source`` to ``sink`` until EOF, holding chunks as ``faults()`` says."""
    await Direction(source, sink, faults, gate, rng).run()


@final
class Link:
    """One proxied connection: client <-> upstream, both directions pumped."""

    def __init__(self, proxy: FaultProxy, number: int) -> None:
        self._proxy = proxy
        self.number = number
        #: The hostname of its ``announce_host`` (``""``: something else came first).
        self.label: str | None = None
        self.faults = attrs.evolve(proxy.faults, chunks=0, spiked=0)
        self.gate = Gate()
        self.closed = False
        self._scope = trio.CancelScope()
        self._head = b""
        self._directions: list[Direction] = []

    @property
    def frozen(self) -> bool:
        return not self.gate.is_open

    def freeze(self) -> None:
        self.gate.shut()

    def thaw(self) -> None:
        self.gate.open()

    def drop(self) -> None:
        """Close both sockets now (the client and the scheduler see EOF)."""
        self._scope.cancel()

    def half_close(self, *, towards_upstream: bool = True) -> None:
        """Stop forwarding towards the scheduler (or the client) and send it EOF there;
        the other direction keeps flowing."""
        if self._directions:
            self._directions[0 if towards_upstream else 1].stop()

    def _sniff(self, data: bytes) -> None:
        if self.label is not None:
            return
        self._head += data
        label = announced_hostname(self._head) if data else ""
        if label is not None or len(self._head) > CHUNK:
            self.label = label or ""
            self._head = b""
            if self.label in self._proxy.frozen_labels:
                self.freeze()

    async def run(self, client: trio.SocketStream) -> None:
        upstream: trio.SocketStream | None = None
        try:
            with self._scope:
                upstream = await trio.open_tcp_stream(*self._proxy.upstream)
                rng = random.Random(self._proxy.seed * 1_000_003 + self.number)
                faults = lambda: self.faults  # noqa: E731 -- read live: the test may change them
                self._directions = [
                    Direction(client, upstream, faults, self.gate, rng, first_chunk=self._sniff),
                    Direction(upstream, client, faults, self.gate, rng),
                ]
                async with trio.open_nursery() as nursery:
                    for direction in self._directions:
                        nursery.start_soon(direction.run)
        except OSError:
            pass  # the scheduler is down: the client sees its connection close
        finally:
            self.closed = True
            # Synchronously: an await here would stop at the first close under cancellation.
            for stream in (client, upstream):
                if stream is not None:
                    stream.socket.close()


@final
class FaultProxy:
    """Forwards ``127.0.0.1:port`` to ``upstream``; run it with ``await nursery.start(proxy.run)``.

    ``faults`` apply to every new link (``set_faults`` changes every open link as
    well); ``freeze(labels)`` freezes the links of those hosts, now and whenever
    they reconnect, until ``thaw(labels)``. ``seed`` makes the jitter reproducible.
    """

    def __init__(self, upstream: tuple[str, int], *, faults: Faults | None = None, seed: int = 0):
        self.upstream = upstream
        self.faults = faults or Faults()
        self.seed = seed
        self.port = 0
        self.links: list[Link] = []
        self.frozen_labels: set[str] = set()

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"

    def open_links(self) -> list[Link]:
        return [link for link in self.links if not link.closed]

    def set_faults(self, faults: Faults) -> None:
        self.faults = faults
        for link in self.open_links():
            link.faults = attrs.evolve(faults, chunks=0, spiked=0)

    def freeze(self, labels: Iterable[str]) -> None:
        self.frozen_labels.update(labels)
        for link in self.open_links():
            if link.label in self.frozen_labels:
                link.freeze()

    def thaw(self, labels: Iterable[str]) -> None:
        thawed = set(labels)
        self.frozen_labels -= thawed
        for link in self.links:
            if link.label in thawed:
                link.thaw()

    async def run(self, *, task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED) -> None:
        listeners = await trio.open_tcp_listeners(0, host="127.0.0.1", backlog=4096)
        self.port = listeners[0].socket.getsockname()[1]
        async with trio.open_nursery() as nursery:
            task_status.started(self.port)
            await trio.serve_listeners(self._serve_one, listeners, handler_nursery=nursery)

    async def _serve_one(self, client: trio.SocketStream) -> None:
        link = Link(self, len(self.links))
        self.links.append(link)
        await link.run(client)
