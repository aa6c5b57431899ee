"""Preheat jobs in the service: the admin routes, the job loop, and what hosts receive."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

import attrs
import orjson
import pytest
import trio
import trio.testing
from trio_websocket import WebSocketConnection

from scheduler.jobs import JobRefused, JobRequestError
from scheduler.protocol import task_id_for_url
from scheduler.service import Scope, ServiceConfig, issue_token
from scheduler.service._admin import MAX_BODY
from tests.service_support import (
    FAST,
    LOOPBACK,
    announce,
    host_payload,
    open_client,
    request,
    running_service,
    serving,
)

URL = "https://origin.example/blob"


def http(method: str, url: str, body: bytes | None = None) -> tuple[int, Any]:
    req = urllib.request.Request(url, method=method, data=body)
    try:
        with urllib.request.urlopen(req, timeout=5) as response:
            payload, status = response.read(), response.status
    except urllib.error.HTTPError as error:
        with error:
            payload, status = error.read(), error.code
    return status, json.loads(payload)


async def call(method: str, url: str, body: Any = None, raw: bytes | None = None) -> Any:
    data = raw if raw is not None else (None if body is None else orjson.dumps(body))
    return await trio.to_thread.run_sync(http, method, url, data)


async def announce_as(
    ws: WebSocketConnection, hostname: str, ip: str, *, seed: bool = False
) -> None:
    host = host_payload(hostname, ip, type="seed" if seed else "normal")
    reply = await request(ws, {"type": "announce_host", "id": 1, "host": host, "interval": 30})
    assert reply["type"] == "host_accepted", reply


async def next_fetch_task(ws: WebSocketConnection) -> dict[str, Any]:
    message: dict[str, Any] = orjson.loads(await ws.get_message())
    assert message["type"] == "fetch_task", message
    return message


async def fetch_as_told(ws: WebSocketConnection, order: dict[str, Any]) -> dict[str, Any]:
    """Do what a host does with ``fetch_task``: register, download (all pieces), finish."""
    peer_id = order["peer_id"]
    reply = await request(
        ws, {"type": "register_peer", "id": 2, "peer_id": peer_id, "task": order["task"]}
    )
    assert reply["type"] == "schedule", reply
    parent = None
    if reply["action"] == "back_to_source":
        await request(ws, {"type": "back_to_source", "id": 3, "peer_id": peer_id})
    else:
        assert reply["action"] == "parents", reply
        parent = reply["parents"][0]["peer_id"]
        await request(ws, {"type": "download_started", "id": 3, "peer_id": peer_id})
    pieces = list(range(order["task"]["total_piece_count"]))
    done = {"type": "pieces_finished", "id": 4, "peer_id": peer_id, "pieces": pieces}
    if parent is not None:
        done["parent_id"] = parent
    assert (await request(ws, done))["type"] == "ack"
    assert (await request(ws, {"type": "download_finished", "id": 5, "peer_id": peer_id}))[
        "type"
    ] == "ack"
    return reply


async def test_a_preheat_asks_the_seed_first_then_the_others_from_it() -> None:
    with trio.fail_after(30):
        async with (
            serving() as live,
            open_client(live.ws_url) as seed,
            open_client(live.ws_url) as normal,
        ):
            await announce_as(seed, "seed", "10.0.0.1", seed=True)
            await announce_as(normal, "node", "10.0.0.2")
            jobs = f"{live.admin_url}/api/v1/jobs"
            body = {"type": "preheat", "url": URL, "scope": "all_peers", "content_length": 10}
            status, job = await call("POST", jobs, body | {"piece_length": 4})
            assert status == 202
            assert (job["state"], job["host_count"], job["task_id"]) == (
                "running",
                2,
                job["task_id"],
            )
            assert [h["seed"] for h in job["hosts"]] == [True, False]
            _, summary = await call("GET", f"{live.admin_url}/api/v1/summary")
            assert (summary["jobs"]["submitted"], summary["jobs"]["unfinished"]) == (1, 1)
            order = await next_fetch_task(seed)  # only the seed: nobody holds the task yet
            assert order["peer_id"] == job["hosts"][0]["peer_id"]
            assert order["task"] == {
                "id": job["task_id"],
                "url": URL,
                "piece_length": 4,
                "content_length": 10,
                "total_piece_count": 3,
            }
            assert (await fetch_as_told(seed, order))["action"] == "back_to_source"
            order = await next_fetch_task(normal)  # the seed holds it now
            reply = await fetch_as_told(normal, order)
            assert reply["action"] == "parents"
            assert reply["parents"][0]["peer_id"] == job["hosts"][0]["peer_id"]
            done = await finished(f"{jobs}/{job['id']}")
            assert (done["state"], done["reasons"]) == ("succeeded", [])
            progress = [
                (h["state"], h["finished_pieces"], h["total_pieces"]) for h in done["hosts"]
            ]
            assert progress == [("succeeded", 3, 3), ("succeeded", 3, 3)]
            assert done["hosts_by_state"]["succeeded"] == 2
            # The console's summary counts the job and its hosts (counters only).
            _, summary = await call("GET", f"{live.admin_url}/api/v1/summary")
            assert summary["jobs"] == {
                "submitted": 1,
                "unfinished": 0,
                "succeeded": 1,
                "failed": 0,
                "hosts_succeeded": 2,
                "hosts_failed": 0,
            }
            status, listed = await call("GET", jobs)
            assert [j["id"] for j in listed] == [job["id"]]
            assert "hosts" not in listed[0]
            metrics = await trio.to_thread.run_sync(_text, f"{live.admin_url}/metrics")
            for line in (
                'scheduler_jobs{state="succeeded",type="preheat"} 1.0',
                'scheduler_jobs_finished_total{state="succeeded",type="preheat"} 1.0',
                'scheduler_job_hosts_total{outcome="succeeded"} 2.0',
                "scheduler_job_fetch_tasks_total 2.0",
            ):
                assert line in metrics


async def finished(url: str) -> dict[str, Any]:
    """The job at ``url`` once it is no longer pending or running (the job loop's pace)."""
    while True:
        status, job = await call("GET", url)
        assert status == 200
        if job["state"] not in ("pending", "running"):
            return dict(job)
        await trio.sleep(0.05)


def _text(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as response:
        return str(response.read().decode())


@pytest.mark.parametrize(
    ("raw", "status", "message"),
    [
        (b"{", 400, "the body must be JSON"),
        (b"[]", 400, "the body must be a JSON object"),
        (b'{"type": "preheat", "url": "u", "scope": "all_peers", "count": "2"}', 400, "count"),
        (b'{"type": "preheat", "url": "u", "scope": "single_seed"}', 409, "no connected host"),
        (b" " * (MAX_BODY + 1), 413, f"at most {MAX_BODY} bytes"),
    ],
)
async def test_a_bad_request_is_refused_and_creates_nothing(
    raw: bytes, status: int, message: str
) -> None:
    with trio.fail_after(30):
        async with serving() as live, open_client(live.ws_url) as ws:
            await announce(ws, "alpha", "10.0.0.1")
            jobs = f"{live.admin_url}/api/v1/jobs"
            answer = await call("POST", jobs, raw=raw)
            assert answer[0] == status
            assert message in answer[1]["error"]
            assert await call("GET", jobs) == (200, [])
            assert (await call("GET", f"{jobs}/nope"))[0] == 404
            assert (await call("GET", f"{jobs}?limit=0"))[0] == 400
            assert (await call("DELETE", jobs))[0] == 405


async def test_writing_a_job_needs_admin_write(tmp_path: Any) -> None:
    key = tmp_path / "auth.key"
    key.write_text("k" * 64)
    config = attrs.evolve(LOOPBACK, auth_key_file=str(key))
    read = issue_token(key.read_bytes(), scopes=[Scope.ADMIN_READ], ttl=60)
    with trio.fail_after(30):
        async with serving(config) as live:
            req = urllib.request.Request(
                f"{live.admin_url}/api/v1/jobs",
                method="POST",
                data=b"{}",
                headers={"Authorization": f"Bearer {read}"},
            )
            with pytest.raises(urllib.error.HTTPError) as refused:
                await trio.to_thread.run_sync(lambda: urllib.request.urlopen(req, timeout=5))
            refused.value.close()
            assert refused.value.code == 403
            assert len(live.service.jobs.ledger) == 0


# --- the loop under a mock clock ------------------------------------------------------------


JOBS_FAST = attrs.evolve(FAST, jobs_deadline=5.0, jobs_keep_finished=60.0)


async def test_a_host_that_leaves_fails_its_part_and_the_job_says_why(
    autojump_clock: trio.testing.MockClock,
) -> None:
    with trio.fail_after(30):
        async with running_service(JOBS_FAST) as harness:
            service = harness.service
            harness.nursery.start_soon(service.jobs.run)
            ws = await harness.announced("alpha", "10.0.0.1")
            job = service.submit_job({"type": "preheat", "url": URL, "scope": "all_peers"})
            order = await next_fetch_task(ws)
            assert order["task"]["total_piece_count"] == -1
            await request(ws, {"type": "leave_host", "id": 9})
            await trio.sleep(1.0)
            done = service.job(job["id"])
            assert done is not None
            assert done["state"] == "failed"
            assert done["reasons"] == ["10.0.0.1-alpha (10.0.0.1): host_gone"]
            assert done["hosts"][0]["error"] == "host_gone"


async def test_a_host_that_refuses_the_task_fails_after_register_timeout(
    autojump_clock: trio.testing.MockClock,
) -> None:
    config = attrs.evolve(JOBS_FAST, jobs_register_timeout=2.0, max_tasks_per_host=1)
    async with running_service(config) as harness:
        service = harness.service
        harness.nursery.start_soon(service.jobs.run)
        ws = await harness.announced("alpha", "10.0.0.1")
        other = {"type": "register_peer", "id": 2, "peer_id": "p", "task": {"url": "u"}}
        assert (await request(ws, other))["type"] == "schedule"
        job = service.submit_job({"type": "preheat", "url": URL, "scope": "all_peers"})
        order = await next_fetch_task(ws)
        task = order["task"]
        refused = {"type": "register_peer", "id": 3, "peer_id": order["peer_id"], "task": task}
        assert (await request(ws, refused))["code"] == "limit_exceeded"
        await trio.sleep(2.5)
        done = service.job(job["id"])
        assert done is not None
        assert (done["state"], done["hosts"][0]["error"]) == ("failed", "not_registered")


async def test_a_job_nobody_finishes_fails_at_its_deadline_and_is_forgotten_later(
    autojump_clock: trio.testing.MockClock,
) -> None:
    with trio.fail_after(300):
        async with running_service(JOBS_FAST) as harness:
            service = harness.service
            harness.nursery.start_soon(service.jobs.run)
            ws = await harness.announced("alpha", "10.0.0.1")
            job = service.submit_job({"type": "preheat", "url": URL, "scope": "all_peers"})
            await next_fetch_task(ws)
            await trio.sleep(4.9)  # virtual time: the loop ran every JOB_TICK meanwhile
            assert service.job(job["id"])["state"] == "running"  # type: ignore[index]
            await trio.sleep(0.5)
            done = service.job(job["id"])
            assert done is not None
            assert (done["state"], done["hosts"][0]["error"]) == ("failed", "deadline")
            await trio.sleep(61.0)  # keep_finished (the host meanwhile expired: no announces)
            assert service.job(job["id"]) is None


async def test_submit_refuses_what_the_ledger_refuses(
    autojump_clock: trio.testing.MockClock,
) -> None:
    config = attrs.evolve(FAST, jobs_max_jobs=1)
    async with running_service(config) as harness:
        service = harness.service
        await harness.announced("alpha", "10.0.0.1")
        body = {"type": "preheat", "url": URL, "scope": "all_peers"}
        with pytest.raises(JobRequestError, match="scope must be one of"):
            service.submit_job(body | {"scope": "x"})
        service.submit_job(body)
        with pytest.raises(JobRefused, match="max_jobs is 1") as refused:
            service.submit_job(body)
        assert refused.value.status == 429
        assert len(service.recent_jobs(10)) == 1


async def test_in_a_cluster_a_preheat_goes_to_the_member_that_owns_the_task(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with running_service(FAST) as harness:
        service = harness.service
        await harness.announced("alpha", "10.0.0.1")
        owners = {task_id_for_url(URL): ("s2", "ws://10.0.0.2:8002/ws")}
        service.jobs._owner_elsewhere = owners.get  # as --registry would say
        body = {"type": "preheat", "url": URL, "scope": "all_peers"}
        with pytest.raises(JobRefused, match="scheduled by cluster member s2") as refused:
            service.submit_job(body)
        assert refused.value.status == 409
        assert service.recent_jobs(10) == []
        assert service.submit_job(body | {"url": URL + "?mine"})["state"] == "running"


def test_the_job_settings_reach_the_ledger() -> None:
    config = ServiceConfig(jobs_max_hosts=7, jobs_origin_fetches=3, jobs_deadline=9.0)
    limits = config.job_limits()
    assert (limits.max_hosts, limits.origin_fetches, limits.deadline) == (7, 3, 9.0)
