"""The recent evictions and the hosts' upload load, through the admin API on loopback."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

import attrs
import trio

from scheduler.core import Eviction, HostInfo, RecordKind, TaskInfo
from scheduler.service._evictions import RECENT_EVICTIONS, EvictionLog
from tests.service_support import (
    FAST,
    LOOPBACK,
    Live,
    announce,
    open_client,
    request,
    running_service,
    serving,
)

CONFIG = attrs.evolve(LOOPBACK, send_timeout=1.0, handshake_timeout=1.0)


def http(
    method: str, url: str, token: str | None = None, **headers: str
) -> tuple[int, dict[str, str], bytes]:
    req = urllib.request.Request(url, method=method)
    if token is not None:
        req.add_header("Authorization", f"Bearer {token}")
    for name, value in headers.items():
        req.add_header(name, value)
    try:
        with urllib.request.urlopen(req, timeout=5) as response:
            return response.status, _lower(response.headers), response.read()
    except urllib.error.HTTPError as error:
        with error:
            return error.code, _lower(error.headers), error.read()


def _lower(headers: Any) -> dict[str, str]:
    return {k.lower(): v for k, v in headers.items()}


async def call(
    method: str, url: str, token: str | None = None, **headers: str
) -> tuple[int, dict[str, str], bytes]:
    return await trio.to_thread.run_sync(lambda: http(method, url, token, **headers))


async def get_json(url: str, token: str | None = None) -> Any:
    status, _, body = await call("GET", url, token)
    assert status == 200, body
    return json.loads(body)


# --- recent evictions ---------------------------------------------------------------------


def eviction(n: int, kind: RecordKind = RecordKind.HOST) -> Eviction:
    return Eviction(kind, f"{kind.value}{n}", "ttl_expired", at=float(n), last_contact=n - 2.5)


def test_the_eviction_log_keeps_the_last_of_each_kind_newest_first() -> None:
    log = EvictionLog(size=3)
    for n in range(5):
        log.record(eviction(n))
    log.record(eviction(10, RecordKind.PEER))
    assert log.total == 6
    assert [e.record_id for e in log.recent(RecordKind.HOST)] == ["host4", "host3", "host2"]
    assert [e.record_id for e in log.recent()] == ["peer10", "host4", "host3", "host2"]
    assert [e.record_id for e in log.recent(limit=2)] == ["peer10", "host4"]
    assert log.recent(RecordKind.TASK) == []
    # A flood of one kind does not push the others out.
    for n in range(100, 200):
        log.record(eviction(n, RecordKind.PEER))
    assert [e.record_id for e in log.recent(RecordKind.HOST)] == ["host4", "host3", "host2"]
    assert len(log.recent()) == 6


async def test_evictions_are_listed_with_reason_and_detection_latency() -> None:
    with trio.fail_after(30):
        async with serving(CONFIG) as live:
            admin, service = live.admin_url, live.service
            await announce_and_leave(live, "beta", "10.0.0.2")
            async with open_client(live.ws_url) as ws:
                await announce(ws, "alpha", "10.0.0.1")
                now = trio.current_time()
                service.state.register_peer("p1", "10.0.0.1-alpha", TaskInfo("t1"), now)
                assert (await call("DELETE", f"{admin}/api/v1/hosts/10.0.0.1-alpha"))[0] == 200
            everything = await get_json(f"{admin}/api/v1/evictions")
            kinds = [(e["kind"], e["id"], e["reason"]) for e in everything]
            assert ("host", "10.0.0.2-beta", "leave") in kinds
            assert ("host", "10.0.0.1-alpha", "admin") in kinds
            assert ("peer", "p1", "host_evicted") in kinds
            assert [e["at"] for e in everything] == sorted(
                (e["at"] for e in everything), reverse=True
            )
            (alpha,) = await get_json(f"{admin}/api/v1/evictions?kind=host&limit=1")
            assert alpha["id"] == "10.0.0.1-alpha"
            assert alpha["hostname"] == "alpha"
            assert alpha["detection_latency"] >= 0
            assert alpha["lateness"] is None  # an admin eviction has no deadline
            assert abs(alpha["at"] - service.wall_time(trio.current_time())) < 60  # Unix time
            assert set(alpha) == {
                "kind", "id", "reason", "at", "detection_latency", "lateness",
                "host_id", "hostname", "task_id",
            }  # fmt: skip
            for query, status in (("kind=nope", 400), ("limit=0", 400), ("limit=x", 400)):
                assert (await call("GET", f"{admin}/api/v1/evictions?{query}"))[0] == status
            assert (await call("POST", f"{admin}/api/v1/evictions"))[0] == 405


async def announce_and_leave(live: Live, hostname: str, ip: str) -> None:
    async with open_client(live.ws_url) as ws:
        await announce(ws, hostname, ip)
        assert (await request(ws, {"type": "leave_host", "id": 2}))["type"] == "ack"


async def test_the_eviction_ring_is_bounded() -> None:
    async with running_service(FAST) as harness:
        service = harness.service
        now = trio.current_time()
        for n in range(RECENT_EVICTIONS + 50):
            service.state.announce_host(HostInfo(f"h{n}", f"10.3.{n // 250}.{n % 250 + 1}"), now)
            service.evict_host(f"10.3.{n // 250}.{n % 250 + 1}-h{n}")
        recent = service.evictions.recent(RecordKind.HOST)
        assert len(recent) == RECENT_EVICTIONS
        assert recent[0].record_id == "10.3.0.250-h249"
        assert service.evictions.total == RECENT_EVICTIONS + 50


async def test_a_host_says_how_many_of_its_upload_slots_are_held() -> None:
    with trio.fail_after(30):
        async with serving(CONFIG) as live, open_client(live.ws_url) as ws:
            await announce(ws, "alpha", "10.0.0.1")
            host = await get_json(f"{live.admin_url}/api/v1/hosts/10.0.0.1-alpha")
            assert host["concurrent_upload_count"] == 0
            assert host["concurrent_upload_limit"] == 50
