"""The client side of scheduling, against the real service over memory streams (mock clock).

The session API (``register_peer``'s schedule, ``reschedule``, ``unsolicited``)
and the reference peer's rules (:class:`Downloads`: obey ``schedule``, pushes and
``fetch_task``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
import trio
from trio.testing import MockClock

from scheduler.client import SchedulerSession
from scheduler.client._connection import _session_on
from scheduler.client._downloads import Downloads, piece_sizes
from scheduler.core import PeerState
from scheduler.protocol import FetchTask, HostPayload, Schedule, TaskPayload
from tests.service_support import Freezable, Harness, announce, request
from tests.test_service import wait_until

TASK = TaskPayload(id="t", total_piece_count=4)


@asynccontextmanager
async def client(
    harness: Harness, hostname: str, ip: str, *, seed: bool = False
) -> AsyncIterator[tuple[SchedulerSession, Freezable]]:
    ws, stream = await harness.connect()
    host = HostPayload(
        hostname=hostname,
        ip=ip,
        port=8002,
        download_port=8001,
        type="seed" if seed else "normal",
    )
    async with _session_on(
        ws, host, interval=30.0, request_timeout=5.0, send_timeout=5.0, close_timeout=1.0
    ) as session:
        yield session, stream


async def test_register_returns_the_schedule_and_reschedule_asks_again(
    autojump_clock: MockClock, harness: Harness
) -> None:
    async with (
        client(harness, "alpha", "10.0.0.1") as (a, _),
        client(harness, "charlie", "10.0.0.3") as (c, _),
    ):
        first = await a.register_peer("pa", TASK)
        assert (first.peer_id, first.action) == ("pa", "back_to_source")
        assert first.id is not None
        waiting = await c.register_peer("pc", TASK)
        assert waiting.action == "wait"
        assert waiting.retry_after is not None
        await a.back_to_source("pa")
        await a.pieces_finished("pa", [0])
        await trio.sleep(waiting.retry_after)
        again = await c.reschedule("pc", [], "waited")
        assert again.action == "parents"
        assert [p.peer_id for p in again.parents] == ["pa"]
        blocked = await c.reschedule("pc", ["pa"], "pa is slow")
        assert blocked.action in ("wait", "back_to_source")
        assert "pa" in harness.service.state.blocked_parents_of("pc")


async def test_pushes_arrive_on_the_unsolicited_iterator(
    autojump_clock: MockClock, harness: Harness
) -> None:
    # The parents' hosts are raw test clients: alpha's will crash.
    a_ws, a_stream = await harness.connect()
    await announce(a_ws, "alpha", "10.0.0.1")
    b_ws = await harness.announced("bravo", "10.0.0.2")
    task = {"id": "t", "total_piece_count": 4}
    for ws, peer_id in ((a_ws, "pa"), (b_ws, "pb")):
        await request(ws, {"type": "register_peer", "id": 2, "peer_id": peer_id, "task": task})
    for ws, peer_id in ((a_ws, "pa"), (b_ws, "pb")):
        await request(ws, {"type": "back_to_source", "id": 3, "peer_id": peer_id})
        await request(ws, {"type": "pieces_finished", "id": 4, "peer_id": peer_id, "pieces": [0]})
    async with client(harness, "charlie", "10.0.0.3") as (c, _):
        reply = await c.register_peer("pc", TASK)
        assert {p.peer_id for p in reply.parents} == {"pa", "pb"}
        await c.download_started("pc")
        await a_stream.aclose()  # alpha crashes
        received = []
        with trio.fail_after(5):
            async for message in c.unsolicited():
                received.append(message)
                break
        (push,) = received
        assert isinstance(push, Schedule)
        assert push.id is None
        assert [p.peer_id for p in push.parents] == ["pb"]
        assert c.unsolicited_dropped == 0


async def test_the_reference_peer_follows_wait_parents_and_a_seed_fetch(
    autojump_clock: MockClock, harness: Harness
) -> None:
    state = harness.service.state
    async with (
        client(harness, "seed", "10.0.0.9", seed=True) as (seed, _),
        client(harness, "alpha", "10.0.0.1") as (a, _),
        trio.open_nursery() as nursery,
    ):
        seeds = Downloads(seed, nursery, seed=True)
        peers = Downloads(a, nursery, seed=False)
        nursery.start_soon(seeds.follow)
        nursery.start_soon(peers.follow)
        download = await peers.register("pa", TASK)
        # No one has the task: alpha waits, the seed is asked to fetch it,
        # alpha asks again after retry_after and gets the seed's peer.
        await wait_until(lambda: download.state == "downloading")
        (seed_peer,) = seeds.peers
        assert download.parents == (seed_peer,)
        # The seed's bytes take their time (--download-rate): alpha may start from it
        # as soon as it holds a piece, and the seed finishes after.
        await wait_until(lambda: seeds.peers[seed_peer].state == "finished")
        assert state.peer(seed_peer).state is PeerState.SUCCEEDED
        assert state.peer("pa").state is PeerState.RUNNING
        assert state.parents_of("pa") == (seed_peer,)
        nursery.cancel_scope.cancel()


async def test_the_reference_peer_obeys_back_to_source_fail_and_pushes(
    autojump_clock: MockClock, harness: Harness
) -> None:
    state = harness.service.state
    async with client(harness, "alpha", "10.0.0.1") as (a, _), trio.open_nursery() as nursery:
        peers = Downloads(a, nursery, seed=False)
        download = await peers.register("pa", TASK)
        assert (download.state, download.parents) == ("back_to_source", ())
        assert state.peer("pa").state is PeerState.BACK_TO_SOURCE
        await peers.obey(Schedule(peer_id="pa", action="fail", message="given up"))
        assert download.state == "failed"
        assert state.peer("pa").state is PeerState.FAILED
        nursery.cancel_scope.cancel()


async def test_a_fetch_task_on_any_host_is_downloaded_at_the_rate_and_reported(
    autojump_clock: MockClock, harness: Harness
) -> None:
    """A preheat's ``fetch_task``: the normal host registers, goes where it is told and
    reports its pieces in batches, each with its cost, then finishes."""
    state = harness.service.state
    mib = 1024 * 1024
    task = TaskPayload(id="big", piece_length=mib, content_length=10 * mib + 1)
    async with client(harness, "alpha", "10.0.0.1") as (a, _), trio.open_nursery() as nursery:
        peers = Downloads(a, nursery, seed=False, download_rate=4 * mib)
        start = trio.current_time()
        await peers.fetch(FetchTask(task=task, peer_id="pre"))
        download = peers.peers["pre"]
        assert download.state == "back_to_source"  # nobody else has it
        await wait_until(lambda: download.state == "finished")
        peer = state.peer("pre")
        assert peer.state is PeerState.SUCCEEDED
        assert sorted(peer.finished_pieces) == list(range(11))
        # 10 MiB + 1 byte at 4 MiB/s: the bytes took their time (virtual seconds)
        assert trio.current_time() - start >= (10 * mib + 1) / (4 * mib)
        assert 2.5 <= peer.cost_total <= 2.6
        nursery.cancel_scope.cancel()


async def test_a_fetch_task_the_scheduler_refuses_fails_the_download(
    autojump_clock: MockClock, harness: Harness
) -> None:
    async with client(harness, "alpha", "10.0.0.1") as (a, _), trio.open_nursery() as nursery:
        peers = Downloads(a, nursery, seed=False)
        await peers.register("taken", TASK)
        await peers.fetch(FetchTask(task=TASK, peer_id="taken"))  # the id exists: conflict
        assert peers.peers["taken"].state == "failed"
        nursery.cancel_scope.cancel()


def test_piece_sizes_cut_the_last_piece() -> None:
    assert piece_sizes(TaskPayload(id="t", piece_length=4, content_length=10)) == [4, 4, 2]
    assert piece_sizes(TaskPayload(id="t", piece_length=4, content_length=8)) == [4, 4]
    assert piece_sizes(TaskPayload(id="t", piece_length=4, content_length=0)) == []
    assert piece_sizes(TaskPayload(id="t", piece_length=4)) == [4]  # unknown size
    sized = TaskPayload(id="t", piece_length=4, content_length=9, total_piece_count=3)
    assert piece_sizes(sized) == [4, 4, 1]
    assert piece_sizes(TaskPayload(id="t", piece_length=4, total_piece_count=2)) == [4, 4]


def test_the_download_rate_must_be_positive() -> None:
    with pytest.raises(ValueError, match="download_rate must be positive"):
        Downloads(None, None, seed=False, download_rate=0)  # type: ignore[arg-type]
