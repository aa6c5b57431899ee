"""Client-side batching: the requests of a linger time go out as one ``batch`` frame.

Deterministic: an in-memory WebSocket to the fake scheduler of ``test_client`` under
the autojump clock, so the linger is virtual time. One test runs against the real
service on loopback.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import pytest
import trio
import trio.testing

from scheduler.client import Batching, RequestError, SchedulerSession, open_scheduler_session
from scheduler.client._batching import NO_BATCHING
from scheduler.protocol import (
    MAX_BATCH_MESSAGES,
    AnnounceHost,
    Batch,
    DownloadStarted,
    HostPayload,
    Schedule,
    TaskPayload,
    encode,
)

from .service_support import serving
from .test_client import FakeScheduler, connect_in_memory, session_over


async def all_at_once(*requests: Callable[[], Awaitable[object]]) -> list[object]:
    """Start every request in the same turn; their results (or errors) in order."""
    results: list[object] = [None] * len(requests)

    async def run(index: int, request: Callable[[], Awaitable[object]]) -> None:
        try:
            results[index] = await request()
        except RequestError as exc:
            results[index] = exc

    async with trio.open_nursery() as nursery:
        for index, request in enumerate(requests):
            nursery.start_soon(run, index, request)
    return results


def started(session: SchedulerSession, peer_id: str) -> Callable[[], Awaitable[None]]:
    return lambda: session.download_started(peer_id)


def batches(fake: FakeScheduler) -> list[Batch]:
    return [frame for frame in fake.frames if isinstance(frame, Batch)]


@asynccontextmanager
async def batched_session(
    fake: FakeScheduler, batching: Batching, *, within: float
) -> AsyncIterator[SchedulerSession]:
    """A session with ``batching`` to ``fake`` (in-memory streams), all within ``within`` s."""
    with trio.fail_after(within):
        async with trio.open_nursery() as nursery:
            ws = await connect_in_memory(nursery, fake)
            async with session_over(ws, interval=None, batching=batching) as session:
                yield session
            nursery.cancel_scope.cancel()


async def test_updates_within_the_linger_go_out_as_one_frame(
    autojump_clock: trio.testing.MockClock,
) -> None:
    fake = FakeScheduler()
    async with batched_session(fake, Batching(), within=5) as session:
        # The announce went alone: a window of one is sent as its own frame.
        assert [type(f) for f in fake.frames] == [AnnounceHost]
        opened = trio.current_time()
        results = await all_at_once(*(started(session, f"p{i}") for i in range(10)))
        assert results == [None] * 10
        [batch] = fake.frames[1:]
        assert isinstance(batch, Batch)
        peers = sorted(m.peer_id for m in batch.messages)  # type: ignore[union-attr]
        assert peers == sorted(f"p{i}" for i in range(10))
        # Sent when the linger (5 ms) of the first request ran out.
        assert fake.frames_at[1] - opened == pytest.approx(0.005)
        assert fake.count("download_started") == 10


async def test_requests_spread_over_the_lingers_go_in_one_frame_per_linger(
    autojump_clock: trio.testing.MockClock,
) -> None:
    fake = FakeScheduler()
    # A window opens with its first request and closes 95 ms later.
    batching = Batching(linger=0.095, max_messages=100)
    async with batched_session(fake, batching, within=5) as session:

        async def every_10_ms(peer: str) -> None:
            await trio.sleep(0.001 + 0.01 * int(peer[1:]))
            await session.download_started(peer)

        async with trio.open_nursery() as senders:
            for i in range(25):  # 1 .. 241 ms
                senders.start_soon(every_10_ms, f"p{i}")
        sizes = [len(b.messages) for b in batches(fake)]
        assert sizes == [10, 10, 5]


async def test_a_full_window_is_sent_at_once(autojump_clock: trio.testing.MockClock) -> None:
    fake = FakeScheduler()
    batching = Batching(linger=3.0, max_messages=4)
    async with batched_session(fake, batching, within=60) as session:
        opened = trio.current_time()
        await all_at_once(*(started(session, f"p{i}") for i in range(10)))
        assert [len(b.messages) for b in batches(fake)] == [4, 4, 2]
        sent_after = [at - opened for at in fake.frames_at[1:]]
        # The two full ones at once, the rest when its linger ran out.
        assert sent_after == [0.0, 0.0, pytest.approx(3.0)]


async def test_a_window_is_split_and_sent_at_once_by_size(
    autojump_clock: trio.testing.MockClock,
) -> None:
    fake = FakeScheduler()
    size = len(encode(DownloadStarted(id=10, peer_id="p0"))) + 1
    batching = Batching(linger=3.0, max_messages=100, max_bytes=3 * size)
    async with batched_session(fake, batching, within=60) as session:
        opened = trio.current_time()
        await all_at_once(*(started(session, f"p{i}") for i in range(7)))
        assert [len(b.messages) for b in batches(fake)] == [3, 3]
        # Full by size: sent at once; the last one waited for its linger.
        assert [at - opened for at in fake.frames_at[1:]] == [0.0, 0.0, 3.0]
        assert isinstance(fake.frames[-1], DownloadStarted)
        for batch in batches(fake):
            assert len(encode(batch)) < 3 * size + 64


async def test_each_error_goes_to_the_caller_of_its_request(
    autojump_clock: trio.testing.MockClock,
) -> None:
    fake = FakeScheduler(errors={"download_failed": ("not_found", "no peer p2")})
    async with batched_session(fake, Batching(), within=5) as session:
        results = await all_at_once(
            started(session, "p1"),
            lambda: session.download_failed("p2"),
            started(session, "p3"),
        )
        assert len(batches(fake)) == 1
        first, failed, third = results
        assert first is None
        assert third is None
        assert isinstance(failed, RequestError)
        assert failed.code == "not_found"
        assert "no peer p2" in str(failed)


async def test_a_batch_refused_whole_fails_each_of_its_requests(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # What a scheduler from before batches says to a batch frame.
    fake = FakeScheduler(errors={"batch": ("unknown_type", '"type" is not a client message')})
    async with batched_session(fake, Batching(), within=5) as session:
        results = await all_at_once(started(session, "p1"), started(session, "p2"))
        assert [getattr(r, "code", None) for r in results] == ["unknown_type"] * 2
        # The session goes on; a request alone is sent as its own frame.
        await session.download_started("p3")


async def test_batching_off_sends_each_request_in_its_own_frame(
    autojump_clock: trio.testing.MockClock,
) -> None:
    fake = FakeScheduler()
    async with batched_session(fake, NO_BATCHING, within=5) as session:
        opened = trio.current_time()
        await all_at_once(*(started(session, f"p{i}") for i in range(3)))
        assert [type(f) for f in fake.frames[1:]] == [DownloadStarted] * 3
        assert fake.frames_at[1:] == [opened] * 3


def test_batching_settings_are_checked() -> None:
    assert Batching().linger == 0.005
    assert Batching().max_messages == 100
    assert Batching().enabled
    assert not Batching(linger=0).enabled
    assert not Batching(max_messages=1).enabled
    assert Batching().max_bytes == 32 * 1024
    for bad in ({"linger": -1.0}, {"linger": float("nan")}, {"max_messages": 0}, {"max_bytes": 0}):
        with pytest.raises(ValueError, match="batch"):
            Batching(**bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"1\.\.1000"):
        Batching(max_messages=MAX_BATCH_MESSAGES + 1)


async def test_registrations_batched_against_the_real_scheduler() -> None:
    host = HostPayload(hostname="batcher", ip="127.0.0.1", port=8002, download_port=8001)
    task = TaskPayload(id="t1", url="https://example.invalid/t1", total_piece_count=4)
    with trio.fail_after(20):
        async with serving() as live:
            async with open_scheduler_session(
                live.ws_url, host, interval=None, batching=Batching(linger=0.05)
            ) as session:
                results = await all_at_once(
                    *(
                        (lambda i=i: session.register_peer(f"peer-{i}", task))  # type: ignore[misc]
                        for i in range(20)
                    ),
                    lambda: session.download_started("nobody"),
                )
            registry = live.service.metrics.registry
            frames = registry.get_sample_value("scheduler_messages_total", {"type": "batch"})
            registered = registry.get_sample_value(
                "scheduler_messages_total", {"type": "register_peer"}
            )
    assert all(isinstance(r, Schedule) for r in results[:20])
    assert isinstance(results[20], RequestError)
    assert results[20].code == "not_found"
    assert frames == 1
    assert registered == 20
