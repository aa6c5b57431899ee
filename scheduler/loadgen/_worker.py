"""A load worker process: many WebSocket sessions in one trio loop.

``python -m scheduler.loadgen worker SPEC_JSON`` opens ``sessions`` sessions (each
announces its own host and runs its mix's set-up), prints ``ready {...}`` and then
obeys its stdin, one command a line:

* ``window {"start": T, "duration": D, "rate": R}``: every session sends requests from
  ``T`` (``time.monotonic()``, machine-wide) for ``D`` seconds, one in flight each;
  ``R`` > 0 paces each session at ``R`` requests/s (an offered rate: latency counts from
  the time a request was due, so a late reply delays nothing it should not), 0 sends
  back to back. The worker prints ``progress {...}`` lines and then ``result {...}``;
* ``quit``: close every session (close handshake, bounded) and exit.

Crash injection drops ``crash_rate`` × sessions per second during windows: the TCP
connection is closed without a WebSocket close frame, and the session reconnects
and announces again (which resumes its host on the server).
"""

from __future__ import annotations

import json
import os
import random
import sys
import time
from collections import Counter
from dataclasses import asdict, dataclass, field, fields
from typing import Any, final
from urllib.parse import urlsplit

import trio
from trio_websocket import WebSocketConnection, wrap_client_stream

from ._histogram import LatencyHistogram
from ._lines import LineReader, command, render
from ._mixes import MixSpec, SessionScript, Verdict
from ._procfs import raise_fd_limit

SUBPROTOCOL = "scheduler.v1"  # docs/protocol.md; kept literal so a worker imports no codec
_PROGRESS_EVERY = 0.25
_CRASH_TICK = 0.1


@dataclass(frozen=True)
class WorkerSpec:
    url: str
    sessions: int
    mix: MixSpec = field(default_factory=MixSpec)
    connect_timeout: float = 30.0
    request_timeout: float = 10.0
    close_timeout: float = 5.0
    open_concurrency: int = 200
    crash_rate: float = 0.0
    seed: int = 0

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> WorkerSpec:
        data = json.loads(text)
        data["mix"] = MixSpec(**data["mix"])
        return cls(**data)


@dataclass
class WindowStats:
    """What one worker saw in one window."""

    sent: int = 0
    replies: int = 0  # expected replies received inside the window
    late: int = 0  # replies that came after the window closed (not in the rate)
    updates: int = 0  # items acknowledged (batch items count one each)
    errors: Counter[str] = field(default_factory=Counter)  # error replies, by code
    failures: Counter[str] = field(default_factory=Counter)  # exceptions, by type
    unexpected: Counter[str] = field(default_factory=Counter)
    unsupported: str = ""  # the server's error reply to a batch frame
    crashes: int = 0
    reconnects: int = 0
    histogram: LatencyHistogram = field(default_factory=LatencyHistogram)
    cpu_seconds: float = 0.0
    wall_seconds: float = 0.0

    def progress(self) -> dict[str, Any]:
        return {
            "sent": self.sent,
            "replies": self.replies,
            "updates": self.updates,
            "errors": sum(self.errors.values()) + sum(self.failures.values()),
            "crashes": self.crashes,
        }

    def to_json(self) -> dict[str, Any]:
        # Not dataclasses.asdict: it rebuilds a Counter from (key, value) pairs, as keys.
        data = {f.name: getattr(self, f.name) for f in fields(self)}
        for name in ("errors", "failures", "unexpected"):
            data[name] = dict(data[name])
        data["histogram"] = self.histogram.to_json()
        return data


@dataclass(frozen=True)
class Window:
    number: int
    start: float  # trio time
    end: float
    interval: float  # seconds between one session's requests; 0 = back to back


class Crashed(Exception):
    """Raised in a session whose connection the crash injector dropped."""


def error_name(exc: BaseException) -> str:
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return type(exc).__name__


@final
class LoadSession:
    """One WebSocket session: connect, set up, serve windows, reconnect after a crash."""

    def __init__(self, worker: Worker, index: int) -> None:
        self.worker = worker
        self.script = SessionScript(worker.spec.mix, index)
        self.scope: trio.CancelScope | None = None
        self.done_window = 0
        self.request_id = 0
        self.stopped = False  # the server refused our batch frames: send no more
        self.opened = False  # set-up succeeded once

    async def run(self) -> None:
        worker = self.worker
        worker.running += 1
        try:
            while not worker.quitting:
                try:
                    await self._connection()
                except Crashed:
                    worker.stats.crashes += 1
                except Exception as exc:  # a dead connection: counted, then reconnect
                    if not self.opened:  # a session that never opened does not retry
                        worker.settled(opened=False, why=error_name(exc))
                        return
                    worker.stats.failures[error_name(exc)] += 1
                    await trio.sleep(0.1)  # no tight reconnect loop against a dead server
                else:
                    return
                worker.stats.reconnects += 1
        finally:
            worker.running -= 1
            if not worker.running:
                worker.all_stopped.set()

    async def _connection(self) -> None:
        worker, spec = self.worker, self.worker.spec
        stream: trio.SocketStream | None = None
        crashed = False
        with trio.CancelScope() as scope:
            try:
                async with trio.open_nursery() as nursery:
                    with trio.fail_after(spec.connect_timeout):
                        async with worker.open_limiter:
                            stream = await trio.open_tcp_stream(worker.host, worker.port)
                            ws = await wrap_client_stream(
                                nursery,
                                stream,
                                worker.host,
                                worker.resource,
                                subprotocols=worker.subprotocols,
                            )
                            await self._setup(ws)
                    if not self.opened:
                        self.opened = True
                        worker.settled(opened=True)
                    self.scope = scope
                    await self._serve(ws)
                    self.scope = None
                    with trio.move_on_after(spec.close_timeout):
                        await ws.aclose()
                    nursery.cancel_scope.cancel()
            finally:
                self.scope = None
                crashed = scope.cancel_called
                if stream is not None:
                    await trio.aclose_forcefully(stream)  # no close frame: abrupt
        if crashed:
            raise Crashed

    def crash(self) -> bool:
        if self.scope is None:
            return False
        self.scope.cancel()
        return True

    async def _exchange(self, ws: WebSocketConnection, frame: str, expected: str) -> dict[str, Any]:
        await ws.send_message(frame)
        while True:
            reply = json.loads(await ws.get_message())
            if isinstance(reply, dict) and reply.get("type") == expected and "id" in reply:
                return reply
            if isinstance(reply, dict) and reply.get("type") == "error":
                raise RuntimeError(f"set-up: {reply.get('code')}: {reply.get('message')}")

    async def _setup(self, ws: WebSocketConnection) -> None:
        steps = self.script.setup_frames()
        if self.opened:  # a reconnect: the announce resumes the host and its peer
            steps = steps[:1]
        for frame, expected in steps:
            reply = await self._exchange(ws, frame, expected)
            if expected == "schedule":
                step = self.script.after_schedule(reply)
                if step is not None:
                    await self._exchange(ws, *step)

    async def _serve(self, ws: WebSocketConnection) -> None:
        while True:
            window = await self.worker.next_window(self.done_window)
            if window is None:
                return
            await self._window(ws, window)
            self.done_window = window.number

    async def _window(self, ws: WebSocketConnection, window: Window) -> None:
        worker = self.worker
        worker.in_window += 1
        try:
            await self._requests(ws, window)
        finally:
            worker.in_window -= 1
            if not worker.in_window:
                worker.drained.set()

    async def _requests(self, ws: WebSocketConnection, window: Window) -> None:
        worker, script = self.worker, self.script
        stats = worker.stats
        updates = script.spec.updates_per_request
        await trio.sleep_until(window.start)
        interval = window.interval
        due = window.start + worker.rng.random() * interval
        while True:
            now = trio.current_time()
            if interval:
                if due >= window.end:
                    break
                if due > now:
                    await trio.sleep_until(due)
                sent_at, due = due, due + interval
            else:
                if now >= window.end:
                    break
                sent_at = now
            if self.stopped:
                await trio.sleep_until(window.end)
                break
            self.request_id += 1
            request_id = self.request_id
            frame = script.request(request_id)
            stats.sent += 1
            with trio.fail_after(worker.spec.request_timeout):
                await ws.send_message(frame)
                while True:
                    judgement = script.judge(await ws.get_message(), request_id)
                    if judgement.verdict is not Verdict.OTHER:
                        break
            received = trio.current_time()
            if judgement.verdict is Verdict.OK:
                if received <= window.end:
                    stats.replies += 1
                    stats.updates += updates
                    stats.histogram.record(received - sent_at)
                else:
                    stats.late += 1
            elif judgement.verdict is Verdict.UNSUPPORTED:
                worker.refusal = stats.unsupported = judgement.detail
                self.stopped = True
            elif judgement.verdict is Verdict.ERROR:
                stats.errors[judgement.detail] += 1
            else:
                stats.unexpected[judgement.detail] += 1


@final
class Worker:
    def __init__(self, spec: WorkerSpec) -> None:
        self.spec = spec
        parts = urlsplit(spec.url)
        if parts.scheme != "ws" or not parts.hostname or parts.port is None:
            raise ValueError(f"expected ws://HOST:PORT/PATH, got {spec.url!r}")
        self.host, self.port = parts.hostname, parts.port
        self.resource = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        self.subprotocols = [SUBPROTOCOL] if spec.mix.scheduler_protocol else []
        self.rng = random.Random(spec.seed)
        self.open_limiter = trio.CapacityLimiter(spec.open_concurrency)
        self.sessions = [LoadSession(self, i) for i in range(spec.sessions)]
        self.stats = WindowStats()
        self.window: Window | None = None
        self.quitting = False
        self.running = 0  # session tasks alive
        self.all_stopped = trio.Event()
        self.refusal = ""  # the server's error reply to our batch frames, once seen
        self.in_window = 0  # sessions inside a window's request loop
        self.drained = trio.Event()  # set when the last one leaves it
        self._changed = trio.Event()
        self._settled = 0
        self._opened = 0
        self._open_failures: Counter[str] = Counter()
        self._all_settled = trio.Event()

    def settled(self, *, opened: bool, why: str = "") -> None:
        self._settled += 1
        if opened:
            self._opened += 1
        else:
            self._open_failures[why] += 1
        if self._settled == len(self.sessions):
            self._all_settled.set()

    def _announce_change(self) -> None:
        self._changed.set()
        self._changed = trio.Event()

    async def next_window(self, done: int) -> Window | None:
        """The window after number ``done`` once it is announced; None when quitting."""
        while not self.quitting:
            if self.window is not None and self.window.number > done:
                return self.window
            await self._changed.wait()
        return None

    async def _crasher(self) -> None:
        owed = 0.0
        while True:
            await trio.sleep(_CRASH_TICK)
            if (
                self.window is None
                or not self.window.start <= trio.current_time() < self.window.end
            ):
                continue
            owed += self.spec.crash_rate * len(self.sessions) * _CRASH_TICK
            while owed >= 1:
                owed -= 1
                if self.rng.choice(self.sessions).crash() is False:
                    owed = min(owed + 1, 10.0)  # try another next tick
                    break

    async def _report_progress(self, out: trio.abc.SendStream, window: Window) -> None:
        while trio.current_time() < window.end:
            await trio.sleep(_PROGRESS_EVERY)
            await out.send_all(render("progress", self.stats.progress()))

    async def run(self) -> None:
        out = trio.lowlevel.FdStream(os.dup(sys.stdout.fileno()))
        commands = LineReader(trio.lowlevel.FdStream(os.dup(sys.stdin.fileno())))
        async with trio.open_nursery() as nursery:
            for session in self.sessions:
                nursery.start_soon(session.run)
            await self._all_settled.wait()
            await out.send_all(
                render("ready", {"opened": self._opened, "failed": dict(self._open_failures)})
            )
            nursery.start_soon(self._crasher)
            number = 0
            while (line := await commands.line()) is not None:
                word, payload = command(line)
                if word == "quit":
                    break
                if word != "window":
                    raise ValueError(f"unknown command {word!r}")
                number += 1
                await self._run_window(out, number, payload)
            self.quitting = True
            self._announce_change()
            # The sessions close themselves (bounded by close_timeout); then stop the crasher.
            with trio.move_on_after(self.spec.close_timeout + 2):
                await self.all_stopped.wait()
            nursery.cancel_scope.cancel()
        await out.send_all(render("closed", {}))

    async def _run_window(
        self, out: trio.abc.SendStream, number: int, spec: dict[str, Any]
    ) -> None:
        offset = trio.current_time() - time.monotonic()
        start = float(spec["start"]) + offset
        rate = float(spec.get("rate", 0.0))
        window = Window(number, start, start + float(spec["duration"]), 1 / rate if rate else 0.0)
        self.stats = stats = WindowStats()
        self.drained = trio.Event()
        self.window = window
        self._announce_change()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._report_progress, out, window)
            await trio.sleep_until(window.start)
            cpu0, wall0 = time.process_time(), time.monotonic()
            await trio.sleep_until(window.end)
            stats.cpu_seconds = time.process_time() - cpu0
            stats.wall_seconds = time.monotonic() - wall0
        # Let the requests in flight at the end come back (they count as late).
        with trio.move_on_after(self.spec.request_timeout + 1):
            if self.in_window:
                await self.drained.wait()
        stats.unsupported = stats.unsupported or self.refusal  # sticky: later windows say it too
        await out.send_all(render("result", stats.to_json()))


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m scheduler.loadgen worker SPEC_JSON", file=sys.stderr)
        return 2
    raise_fd_limit()
    spec = WorkerSpec.from_json(args[0])
    trio.run(Worker(spec).run)
    return 0
