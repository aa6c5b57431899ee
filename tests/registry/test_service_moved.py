"""``moved``: two schedulers in-process on one real PostgreSQL, a real client session.

A member answers ``register_peer`` for a task the other member owns with ``moved``,
naming the owner, and applies nothing; the owner registers it. Without ``--registry``
a scheduler never answers ``moved``.
"""

from __future__ import annotations

from typing import Any

import attrs
import pytest
import trio

from scheduler.client import (
    ClusterView,
    PeerConfig,
    RequestError,
    fetch_peers,
    open_scheduler_session,
    run_cluster_host,
)
from scheduler.protocol import HostPayload, TaskPayload
from scheduler.rendezvous import rendezvous_owner
from scheduler.service import SchedulerService, ServiceConfig
from tests.test_e2e import metric, poll

CONFIG = ServiceConfig(port=0, admin_port=0, entrypoints=False, ping_interval=30.0)
#: The lease interval (a lease lasts 3 of them) and the bound on each registry call: the
#: default call bound, so that a loaded machine's slow statement never costs a member
#: its lease in the middle of a test (the membership is not what these tests state).
INTERVAL = 2.0
HOST = HostPayload(hostname="alpha", ip="127.0.0.1", port=8002, download_port=8001)


def task_of(owner: str, names: tuple[str, ...]) -> TaskPayload:
    """A task whose owner among ``names`` is ``owner``."""
    for i in range(1000):
        task = TaskPayload(url=f"https://example.com/moved/{i}")
        if rendezvous_owner(task.task_id, names) == owner:
            return task
    raise AssertionError("no such task")  # pragma: no cover


async def start_members(
    nursery: trio.Nursery, registry_url: str, names: tuple[str, ...], cluster_id: str
) -> dict[str, Any]:
    """One service per name in ``cluster_id``; returns each one's URLs once every
    member lists all of them."""
    services = {
        name: SchedulerService(
            attrs.evolve(
                CONFIG,
                registry=registry_url,
                scheduler_name=name,
                cluster_id=cluster_id,
                lease_interval=INTERVAL,
                registry_timeout=INTERVAL,
            )
        )
        for name in names
    }
    urls = {}
    for name, service in services.items():
        urls[name] = await nursery.start(
            lambda task_status, s=service: s.run(task_status=task_status)
        )
    for service in services.values():
        registrar = service.registrar
        assert registrar is not None
        await registrar.wait_progress(
            lambda r=registrar: {m.name for m in r.members()} == set(names)
        )
    return urls


async def test_a_task_owned_by_another_member_is_moved_there(registry_url: str) -> None:
    names = ("s0", "s1")
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            urls = await start_members(nursery, registry_url, names, "moved")
            (ws0, admin0), (ws1, admin1) = urls["s0"], urls["s1"]
            theirs, ours = task_of("s1", names), task_of("s0", names)
            async with open_scheduler_session(ws0, HOST, interval=None) as session:
                with pytest.raises(RequestError) as info:
                    await session.register_peer("p-theirs", theirs)
                moved = info.value
                assert (moved.code, moved.owner, moved.url) == ("moved", "s1", ws1)
                assert "belongs to scheduler 's1'" in moved.message
                # Again and again: moved is no error of the client's, the session stays.
                for _ in range(5):
                    with pytest.raises(RequestError, match=r"^moved: "):
                        await session.register_peer("p-theirs", theirs)
                schedule = await session.register_peer("p-ours", ours)
                assert schedule.peer_id == "p-ours"
                peers = await trio.to_thread.run_sync(lambda: fetch_peers(admin0))
                assert [p["id"] for p in peers] == ["p-ours"]  # nothing of the moved task
                moved_count = await trio.to_thread.run_sync(
                    lambda: metric(admin0, "scheduler_message_errors_total", code="moved")
                )
                assert moved_count == 6
            async with open_scheduler_session(ws1, HOST, interval=None) as session:
                schedule = await session.register_peer("p-theirs", theirs)
                assert schedule.peer_id == "p-theirs"
            peers = await trio.to_thread.run_sync(lambda: fetch_peers(admin1))
            assert [p["id"] for p in peers] == ["p-theirs"]
            nursery.cancel_scope.cancel()


async def test_without_a_registry_every_task_is_taken() -> None:
    with trio.fail_after(30):
        service = SchedulerService(attrs.evolve(CONFIG, scheduler_name="solo"))
        async with trio.open_nursery() as nursery:
            ws, _admin = await nursery.start(
                lambda task_status: service.run(task_status=task_status)
            )
            assert service.task_owner_elsewhere("anything") is None
            async with open_scheduler_session(ws, HOST, interval=None) as session:
                for i in range(20):
                    task = TaskPayload(url=f"https://example.com/solo/{i}")
                    schedule = await session.register_peer(f"p{i}", task)
                    assert schedule.peer_id == f"p{i}"
            nursery.cancel_scope.cancel()


async def test_a_client_with_an_old_list_follows_moved_to_the_owner(registry_url: str) -> None:
    """The client missed a member: the other member says ``moved``, the client reads
    the members again and registers the peer with the owner."""
    names = ("s0", "s1")
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            urls = await start_members(nursery, registry_url, names, "follow")
            (_, admin0), (_, admin1) = urls["s0"], urls["s1"]
            view = ClusterView(admin0, refresh_interval=600.0)
            await nursery.start(view.run)
            assert view.routes.lost("s1")  # as if its connection had dropped a moment ago
            theirs = task_of("s1", names)
            config = PeerConfig(
                scheduler_url=admin0, hostname="beta", port=8002, download_port=8001,
                tasks=(theirs.url,),
            )  # fmt: skip
            shutdown = trio.Event()
            await nursery.start(
                lambda task_status: run_cluster_host(
                    config, view, shutdown=shutdown, task_status=task_status
                )
            )

            def on_s1() -> bool:
                return [p["task_id"] for p in fetch_peers(admin1)] == [theirs.task_id]

            # s1 renewed its lease since: the refresh that moved asked for brings it back.
            await poll(on_s1, 20, "the peer registered on its owner")
            moved = await trio.to_thread.run_sync(
                lambda: metric(admin0, "scheduler_message_errors_total", code="moved")
            )
            assert moved >= 1
            assert await trio.to_thread.run_sync(lambda: fetch_peers(admin0)) == []
            shutdown.set()
            nursery.cancel_scope.cancel()
