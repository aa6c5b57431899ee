"""The cluster client against a scheduler without ``--registry``: a cluster of one.

``GET /api/v1/schedulers`` lists the process alone, so a peer given its admin URL
announces to it and registers every task there, exactly as with its WebSocket URL.
"""

from __future__ import annotations

import attrs
import pytest
import trio

from scheduler.client import ClusterView, PeerConfig, fetch_hosts, fetch_peers, run_peer
from scheduler.service import SchedulerService, ServiceConfig
from tests.test_e2e import poll

CONFIG = ServiceConfig(port=0, admin_port=0, entrypoints=False, ping_interval=30.0)
TASKS = tuple(f"https://example.com/solo/{i}" for i in range(5))


def test_a_view_needs_an_admin_url_and_a_positive_interval() -> None:
    with pytest.raises(ValueError, match="admin URL"):
        ClusterView("ws://127.0.0.1:8002/ws")
    with pytest.raises(ValueError, match="refresh_interval"):
        ClusterView("http://127.0.0.1:8000", refresh_interval=0)


async def test_a_peer_given_an_admin_url_serves_the_one_scheduler() -> None:
    with trio.fail_after(30):
        service = SchedulerService(attrs.evolve(CONFIG, scheduler_name="solo"))
        async with trio.open_nursery() as nursery:
            _ws, admin = await nursery.start(
                lambda task_status: service.run(task_status=task_status)
            )
            view = ClusterView(admin, refresh_interval=600.0)
            await nursery.start(view.run)
            assert [m.name for m in view.members] == ["solo"]
            epoch = view.epoch
            assert await view.refresh()
            assert view.epoch == epoch + 1  # every refresh wakes the links, changed or not
            await view.wait_changed(epoch)

            config = PeerConfig(
                scheduler_url=admin, hostname="beta", port=8002, download_port=8001, tasks=TASKS
            )
            shutdown = trio.Event()
            await nursery.start(lambda task_status: run_peer(
                config, shutdown=shutdown, task_status=task_status
            ))  # fmt: skip
            hosts = await trio.to_thread.run_sync(lambda: fetch_hosts(admin))
            assert [h["hostname"] for h in hosts] == ["beta"]
            peers = await trio.to_thread.run_sync(lambda: fetch_peers(admin))
            assert len(peers) == len(TASKS)
            shutdown.set()  # it leaves the scheduler
            await poll(lambda: not fetch_hosts(admin), 10, "the host left")
            nursery.cancel_scope.cancel()


async def test_a_peer_whose_cluster_never_answers_still_shuts_down() -> None:
    config = PeerConfig(
        scheduler_url="http://127.0.0.1:9", port=8002, download_port=8001, request_timeout=0.5
    )
    shutdown = trio.Event()
    shutdown.set()
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            # Reports started (so nursery.start returns) though no member ever answered.
            await nursery.start(lambda task_status: run_peer(
                config, shutdown=shutdown, task_status=task_status
            ))  # fmt: skip
