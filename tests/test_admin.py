"""Admin HTTP API and /metrics, through the real listeners on loopback."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

import pytest
import trio
from trio_websocket import ConnectionClosed, HandshakeError, open_websocket_url

from scheduler.service import SchedulerService, ServiceConfig
from tests.service_support import announce, open_client, request

CONFIG = ServiceConfig(port=0, admin_port=0, entrypoints=False, ping_interval=30.0)


def http(method: str, url: str) -> tuple[int, Any]:
    req = urllib.request.Request(url, method=method)
    try:
        with urllib.request.urlopen(req, timeout=5) as response:
            body = response.read()
            status = response.status
            kind = response.headers.get("content-type", "")
    except urllib.error.HTTPError as error:
        with error:
            body, status, kind = error.read(), error.code, error.headers.get("content-type", "")
    return status, json.loads(body) if kind.startswith("application/json") else body.decode()


async def call(method: str, url: str) -> tuple[int, Any]:
    return await trio.to_thread.run_sync(http, method, url)


async def test_admin_api_lists_filters_and_evicts_hosts() -> None:
    with trio.fail_after(30):
        service = SchedulerService(CONFIG)
        async with trio.open_nursery() as nursery:
            ws_url, admin = await nursery.start(
                lambda task_status: service.run(task_status=task_status)
            )
            assert ws_url.startswith("ws://127.0.0.1:")
            assert admin.startswith("http://127.0.0.1:")
            assert await call("GET", f"{admin}/healthz") == (200, "ok\n")
            assert await call("GET", f"{admin}/readyz") == (200, "ready\n")
            async with open_client(ws_url) as ws:
                await announce(ws, "alpha", "10.0.0.1", interval=30.0)
                task = {"url": "https://example.invalid/f", "total_piece_count": 2}
                await request(ws, {"type": "register_peer", "peer_id": "p1", "task": task})

                status, hosts = await call("GET", f"{admin}/api/v1/hosts")
                assert status == 200
                (host,) = hosts
                assert host["id"] == "10.0.0.1-alpha"
                assert host["state"] == "connected"
                assert host["peers"] == 1
                assert abs(host["last_announce_at"] - trio.current_time()) > 0  # unix time
                assert (await call("GET", f"{admin}/api/v1/hosts?state=disconnected"))[1] == []
                assert (await call("GET", f"{admin}/api/v1/hosts?state=bogus"))[0] == 400
                status, one = await call("GET", f"{admin}/api/v1/hosts/10.0.0.1-alpha")
                assert (status, one["hostname"]) == (200, "alpha")
                assert (await call("GET", f"{admin}/api/v1/hosts/nope"))[0] == 404

                status, tasks = await call("GET", f"{admin}/api/v1/tasks")
                assert [t["peers"] for t in tasks] == [1]
                status, peers = await call("GET", f"{admin}/api/v1/peers?task={tasks[0]['id']}")
                assert [p["id"] for p in peers] == ["p1"]

                status, body = await call("DELETE", f"{admin}/api/v1/hosts/10.0.0.1-alpha")
                assert (status, body["reason"]) == (200, "admin")
                evicted = json.loads(await ws.get_message())
                assert evicted["reason"] == "admin"
            status, metrics = await call("GET", f"{admin}/metrics")
            assert status == 200
            assert 'scheduler_host_evictions_total{reason="admin"} 1.0' in metrics
            assert 'scheduler_peer_evictions_total{reason="host_evicted"} 1.0' in metrics
            assert 'scheduler_messages_total{type="announce_host"} 1.0' in metrics
            for name in (
                'scheduler_hosts{state="connected"} 0.0',
                "scheduler_tasks 1.0",
                "scheduler_sessions",
                "scheduler_gc_runs_total",
                "scheduler_gc_duration_seconds_bucket",
                "scheduler_eviction_lateness_seconds_bucket",
                'scheduler_detection_latency_seconds_count{reason="admin"} 1.0',
            ):
                assert name in metrics
            assert (await call("POST", f"{admin}/api/v1/tasks"))[0] == 405
            assert (await call("GET", f"{admin}/nope"))[0] == 404
            nursery.cancel_scope.cancel()


async def test_shutdown_closes_sessions_with_1001_and_stops_listening() -> None:
    with trio.fail_after(30):
        service = SchedulerService(CONFIG)
        shutdown = trio.Event()
        async with trio.open_nursery() as nursery:
            ws_url, _ = await nursery.start(
                lambda task_status: service.run(shutdown=shutdown, task_status=task_status)
            )
            async with open_client(ws_url) as ws:
                await announce(ws)
                shutdown.set()
                with pytest.raises(ConnectionClosed) as info:
                    await ws.get_message()
                assert info.value.reason.code == 1001
        # The run() returned on its own: nothing outlives the service.
        assert not service.sessions
        refused = False
        try:
            async with open_websocket_url(ws_url, connect_timeout=2):
                pass
        except* HandshakeError:
            refused = True
        assert refused
