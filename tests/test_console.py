"""The web console on the admin listener: its page, its JSON, its live stream and their bounds.

Real listeners on port 0, except where the stream's timing is the subject: there the ASGI
app is driven in-process under the mock clock, with the real service behind it.
"""

from __future__ import annotations

import itertools
import json
import re
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, MutableMapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import attrs
import orjson
import pytest
import trio
import trio.testing
from trio_websocket import (
    ConnectionClosed,
    ConnectionRejected,
    WebSocketConnection,
    wrap_client_stream,
)

from scheduler.core import Eviction, HostInfo, RecordKind, TaskInfo
from scheduler.service import SchedulerService, Scope, issue_token
from scheduler.service._admin import make_admin_app
from scheduler.service._auth import CONSOLE_PAGES
from scheduler.service._console import ASSETS, HEARTBEAT, INTERVAL, STREAM_PATH
from scheduler.service._evictions import RECENT_EVICTIONS, EvictionLog
from scheduler.service._headers import CSP
from tests.service_support import (
    FAST,
    LOOPBACK,
    Live,
    announce,
    client_frame,
    open_client,
    request,
    running_service,
    serving,
    upgrade_head,
)

KEY = b"c" * 32
CONFIG = attrs.evolve(LOOPBACK, send_timeout=1.0, handshake_timeout=1.0)


@pytest.fixture
def key_file(tmp_path: Path) -> Path:
    path = tmp_path / "admin.key"
    path.write_bytes(KEY)
    return path


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


@asynccontextmanager
async def console_stream(
    address: tuple[str, int], headers: list[tuple[bytes, bytes]] | None = None
) -> AsyncIterator[WebSocketConnection]:
    """A WebSocket to the console's stream that always closes its TCP stream."""
    host, port = address
    stream = await trio.open_tcp_stream(host, port)
    try:
        async with trio.open_nursery() as nursery:
            ws = await wrap_client_stream(
                nursery, stream, f"{host}:{port}", STREAM_PATH, extra_headers=headers
            )
            try:
                yield ws
            finally:
                with trio.move_on_after(2):
                    await ws.aclose()
    finally:
        await stream.aclose()


async def rejection_status(
    address: tuple[str, int], headers: list[tuple[bytes, bytes]]
) -> int | None:
    """The HTTP status an upgrade with ``headers`` is refused with (None: accepted)."""
    status: int | None = None
    try:
        async with console_stream(address, headers):
            pass
    except* ConnectionRejected as group:
        leaf: BaseException = group
        while isinstance(leaf, BaseExceptionGroup):
            leaf = leaf.exceptions[0]
        assert isinstance(leaf, ConnectionRejected)
        status = leaf.status_code
    return status


async def hello(ws: WebSocketConnection, token: str | None = None) -> dict[str, Any]:
    """Say hello; the first summary."""
    await ws.send_message(orjson.dumps({"type": "hello", "token": token}).decode())
    message: dict[str, Any] = orjson.loads(await ws.get_message())
    assert message["type"] == "summary", message
    return message


async def ack(ws: WebSocketConnection, message: dict[str, Any]) -> None:
    await ws.send_message(orjson.dumps({"type": "ack", "seq": message["seq"]}).decode())


async def close_code(ws: WebSocketConnection) -> int | None:
    """Read until the server closes; its close code."""
    try:
        while True:
            await ws.get_message()
    except ConnectionClosed as closed:
        return closed.reason.code


# --- the page and its assets --------------------------------------------------------------


async def test_the_console_page_and_its_assets_are_served_with_a_strict_policy() -> None:
    with trio.fail_after(30):
        async with serving(CONFIG) as live:
            status, headers, page = await call("GET", f"{live.admin_url}/")
            assert status == 200
            assert headers["content-type"] == "text/html; charset=utf-8"
            assert headers["x-content-type-options"] == "nosniff"
            assert headers["content-security-policy"] == CSP["console"]
            html = page.decode()
            assert '<script src="console/console.js" defer></script>' in html
            for path, kind in (
                ("/console/console.js", "text/javascript; charset=utf-8"),
                ("/console/console.css", "text/css; charset=utf-8"),
            ):
                status, headers, body = await call("GET", f"{live.admin_url}{path}")
                assert (status, headers["content-type"]) == (200, kind), path
                assert headers["x-content-type-options"] == "nosniff"
                assert body == ASSETS[path].body
            # Nothing else under /console/, and the API's answers keep their own policy.
            assert (await call("GET", f"{live.admin_url}/console/nope.js"))[0] == 404
            status, headers, _ = await call("GET", f"{live.admin_url}/api/v1/hosts")
            assert headers["content-security-policy"] == CSP["default"]


def test_the_console_policy_allows_only_its_own_origin_and_no_inline_code() -> None:
    policy = dict(part.strip().split(" ", 1) for part in CSP["console"].split(";"))
    assert policy["default-src"] == "'none'"
    assert policy["script-src"] == "'self'"
    assert policy["style-src"] == "'self'"
    assert policy["connect-src"] == "'self'"
    assert policy["img-src"] == "'self' data: blob:"
    assert policy["frame-ancestors"] == "'none'"
    assert policy["form-action"] == "'none'"
    assert policy["base-uri"] == "'none'"
    assert "unsafe" not in CSP["console"]


def test_the_assets_load_nothing_from_elsewhere_and_never_write_html() -> None:
    assert set(ASSETS) == CONSOLE_PAGES
    html = ASSETS["/"].body.decode()
    script = ASSETS["/console/console.js"].body.decode()
    style = ASSETS["/console/console.css"].body.decode()
    for text in (html, script, style):
        assert not re.search(r"https?://", text)  # no CDN, no external font, no beacon
        assert "@import" not in text
    # No inline script or style, no event-handler attributes: the policy would block them.
    assert re.findall(r"<script[^>]*>", html) == ['<script src="console/console.js" defer>']
    assert not re.search(r"\sstyle=|\son\w+=", html)
    assert "<style" not in html
    # Data reaches the DOM through textContent only.
    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("):
        assert sink not in script, sink
    assert "new Function" not in script
    # The token is kept for the tab only, and never put in a URL.
    assert "sessionStorage" in script
    assert "localStorage" not in script
    assert "?token" not in script
    assert "&token" not in script


# --- the guard ----------------------------------------------------------------------------


async def test_with_auth_the_page_is_open_and_everything_it_reads_needs_admin_read(
    key_file: Path,
) -> None:
    reader = issue_token(KEY, scopes=[Scope.ADMIN_READ])
    host_token = issue_token(KEY, scopes=[Scope.HOST])
    with trio.fail_after(30):
        async with serving(attrs.evolve(CONFIG, auth_key_file=str(key_file))) as live:
            admin = live.admin_url
            # The page holds no data: it loads without a token, then asks for one.
            for path in ASSETS:
                assert (await call("GET", f"{admin}{path}"))[0] == 200, path
            for path in ("/api/v1/evictions", "/api/v1/summary"):
                status, headers, _ = await call("GET", f"{admin}{path}")
                assert status == 401, path
                assert headers["www-authenticate"] == 'Bearer realm="scheduler-admin"'
                assert (await call("GET", f"{admin}{path}", host_token))[0] == 403, path
                assert (await call("GET", f"{admin}{path}", reader))[0] == 200, path
            # Writing is not reading: the page's assets are GET only.
            assert (await call("DELETE", f"{admin}/", reader))[0] == 403


async def test_the_page_and_its_data_refuse_a_foreign_host_header() -> None:
    with trio.fail_after(30):
        async with serving(CONFIG) as live:
            for path in (*ASSETS, "/api/v1/evictions", "/api/v1/summary"):
                status, _, body = await call(
                    "GET", f"{live.admin_url}{path}", Host="attacker.example"
                )
                assert status == 403, path
                assert "auth.allowed_hosts" in json.loads(body)["error"]


async def test_the_stream_checks_host_and_origin_at_the_upgrade() -> None:
    with trio.fail_after(30):
        async with serving(CONFIG) as live:
            port = live.admin_address[1]
            for origin in (
                b"http://attacker.example",
                f"http://127.0.0.1:{port + 1}".encode(),
                b"http://127.0.0.1",
                b"null",
                b"",
            ):
                status = await rejection_status(live.admin_address, [(b"origin", origin)])
                assert status == 403, origin
            assert live.service.console.open == 0
            # The page's own origin passes (http, or https behind a proxy that ends TLS).
            for origin in (f"http://127.0.0.1:{port}", f"https://127.0.0.1:{port}"):
                headers = [(b"origin", origin.encode())]
                async with console_stream(live.admin_address, headers) as ws:
                    assert (await hello(ws))["summary"]["sessions"] == 0
            stream = await trio.open_tcp_stream(*live.admin_address)
            async with stream:
                await stream.send_all(upgrade_head(STREAM_PATH, host="evil.example").encode())
                head = await stream.receive_some()
                assert head.startswith(b"HTTP/1.1 403 ")


async def test_with_auth_the_stream_wants_an_admin_read_token_in_its_hello(
    key_file: Path,
) -> None:
    reader = issue_token(KEY, scopes=[Scope.ADMIN_READ])
    host_token = issue_token(KEY, scopes=[Scope.HOST])
    stranger = issue_token(b"s" * 32, scopes=[Scope.ADMIN_READ])
    with trio.fail_after(30):
        async with serving(attrs.evolve(CONFIG, auth_key_file=str(key_file))) as live:
            for token, code in ((None, 4401), (stranger, 4401), (host_token, 4403)):
                async with console_stream(live.admin_address) as ws:
                    await ws.send_message(orjson.dumps({"type": "hello", "token": token}).decode())
                    assert await close_code(ws) == code
            refused = live.service.metrics.registry.get_sample_value(
                "scheduler_auth_failures_total", {"listener": "admin", "reason": "scope"}
            )
            assert refused == 1
            async with console_stream(live.admin_address) as ws:
                assert (await hello(ws, reader))["seq"] == 1
            assert live.service.console.open == 0
            assert ends(live.service, "refused") == 3


def ends(service: SchedulerService, cause: str) -> float:
    value = service.metrics.registry.get_sample_value(
        "scheduler_console_stream_ends_total", {"cause": cause}
    )
    return value or 0.0


# --- the stream ---------------------------------------------------------------------------


async def test_the_stream_tells_of_a_new_host_and_an_eviction() -> None:
    with trio.fail_after(30):
        async with serving(CONFIG) as live, console_stream(live.admin_address) as ws:
            first = await hello(ws)
            assert first["summary"]["hosts"]["connected"] == 0
            await ack(ws, first)
            async with open_client(live.ws_url) as session:
                await announce(session, "alpha", "10.0.0.1")
                update = orjson.loads(await ws.get_message())
                assert update["seq"] == 2
                assert update["summary"]["hosts"]["connected"] == 1
                assert update["summary"]["sessions"] == 1
                await ack(ws, update)
                status, _, _ = await call("DELETE", f"{live.admin_url}/api/v1/hosts/10.0.0.1-alpha")
                assert status == 200
                update = orjson.loads(await ws.get_message())
                assert update["summary"]["hosts"]["connected"] == 0
                assert update["summary"]["evictions_recorded"] == 1
                assert {"kind": "host", "reason": "admin", "count": 1} in update["summary"][
                    "evictions"
                ]


async def test_the_streams_are_capped_and_a_full_console_says_so() -> None:
    config = attrs.evolve(CONFIG, console_streams=2)
    with trio.fail_after(30):
        async with serving(config) as live:
            async with (
                console_stream(live.admin_address) as first,
                console_stream(live.admin_address) as second,
            ):
                await hello(first)
                await hello(second)
                assert live.service.console.open == 2
                async with console_stream(live.admin_address) as third:
                    assert await close_code(third) == 1013
                gauge = live.service.metrics.registry.get_sample_value("scheduler_console_streams")
                assert gauge == 2
            await live.service.console.wait_open(0)
            assert ends(live.service, "full") == 1
            async with console_stream(live.admin_address) as again:
                await hello(again)


async def test_a_client_that_never_reads_is_dropped_and_frees_its_slot() -> None:
    """A raw client sends its upgrade and hello, then never reads a byte."""
    config = attrs.evolve(CONFIG, console_streams=1)
    with trio.fail_after(30):
        async with serving(config) as live:
            stream = await trio.open_tcp_stream(*live.admin_address)
            async with stream:
                port = live.admin_address[1]
                head = upgrade_head(STREAM_PATH, host=f"127.0.0.1:{port}")
                await stream.send_all(head.encode())
                data = bytearray()
                while b"\r\n\r\n" not in data:
                    data += await stream.receive_some()
                assert data.startswith(b"HTTP/1.1 101 ")
                hello_frame = orjson.dumps({"type": "hello", "token": None})
                await stream.send_all(client_frame(0x1, hello_frame))
                # The server sends its summary, waits send_timeout for the ack, and drops
                # the stream: the slot is free again, whatever the client does.
                await live.service.console.wait_open(1)
                await live.service.console.wait_open(0)
                assert ends(live.service, "ack_timeout") == 1
                while chunk := await stream.receive_some():
                    data += chunk
            close = b"\x88" + bytes([2 + len(b"no ack within 1.0 s")]) + (4408).to_bytes(2, "big")
            assert close + b"no ack within 1.0 s" in data
            async with console_stream(live.admin_address) as ws:
                await hello(ws)


async def test_a_client_that_says_nothing_or_garbage_is_dropped() -> None:
    with trio.fail_after(30):
        async with serving(CONFIG) as live:
            async with console_stream(live.admin_address) as silent:
                assert await close_code(silent) == 4408
            for garbage in ("not json", '{"type": "ack", "seq": "1"}', '{"type": "hello"}', "[]"):
                async with console_stream(live.admin_address) as ws:
                    first = await hello(ws)
                    await ack(ws, first)
                    await ws.send_message(garbage)
                    assert await close_code(ws) == 4400, garbage
            async with console_stream(live.admin_address) as ws:
                await ws.send_message("x" * 10_000)
                assert await close_code(ws) == 1009
            assert ends(live.service, "hello_timeout") == 1
            assert ends(live.service, "bad_message") == 4


async def test_shutdown_closes_the_streams_with_going_away() -> None:
    with trio.fail_after(30):
        service = SchedulerService(CONFIG)
        stop = trio.Event()
        async with trio.open_nursery() as nursery:
            _, admin = await nursery.start(
                lambda task_status: service.run(shutdown=stop, task_status=task_status)
            )
            host, port = admin.removeprefix("http://").split(":")
            async with console_stream((host, int(port))) as ws:
                await ack(ws, await hello(ws))
                stop.set()
                assert await close_code(ws) == 1001
        assert ends(service, "shutdown") == 1


# --- the stream's pace, under the mock clock -----------------------------------------------


@attrs.define
class AsgiClient:
    """Drives the admin app's WebSocket route in-process, as hypercorn would."""

    to_app: trio.MemorySendChannel[dict[str, Any]]
    from_app: trio.MemoryReceiveChannel[MutableMapping[str, Any]]

    async def say(self, message: dict[str, Any]) -> None:
        await self.to_app.send({"type": "websocket.receive", "text": orjson.dumps(message)})

    async def next(self) -> MutableMapping[str, Any]:
        return await self.from_app.receive()


@asynccontextmanager
async def asgi_stream(
    service: SchedulerService, headers: list[tuple[bytes, bytes]] | None = None
) -> AsyncIterator[AsgiClient]:
    app = make_admin_app(service, service.admin_guard, console=service.console)
    to_app, app_in = trio.open_memory_channel[dict[str, Any]](10)
    app_out, from_app = trio.open_memory_channel[MutableMapping[str, Any]](100)
    scope = {
        "type": "websocket",
        "path": STREAM_PATH,
        "raw_path": STREAM_PATH.encode(),
        "query_string": b"",
        "headers": headers or [(b"host", b"127.0.0.1:8000")],
        "client": ("127.0.0.1", 40000),
        "extensions": {"websocket.http.response": {}},
    }
    async with trio.open_nursery() as nursery:
        nursery.start_soon(app, scope, app_in.receive, app_out.send)
        await to_app.send({"type": "websocket.connect"})
        client = AsgiClient(to_app, from_app)
        assert (await client.next())["type"] == "websocket.accept"
        yield client
        nursery.cancel_scope.cancel()


def summary_of(message: MutableMapping[str, Any]) -> dict[str, Any]:
    assert message["type"] == "websocket.send", message
    decoded: dict[str, Any] = orjson.loads(message["text"])
    return decoded


async def test_changes_are_coalesced_to_one_update_per_interval(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with running_service(FAST) as harness:
        service = harness.service
        async with asgi_stream(service) as client:
            await client.say({"type": "hello", "token": None})
            sent: list[tuple[float, dict[str, Any]]] = []
            started = trio.current_time()
            first = summary_of(await client.next())
            sent.append((trio.current_time(), first))
            await client.say({"type": "ack", "seq": first["seq"]})
            # A host announced every 10 ms for 5 s: 500 changes.
            async with trio.open_nursery() as nursery:

                async def churn() -> None:
                    for n in range(500):
                        info = HostInfo(f"h{n}", f"10.1.{n // 250}.{n % 250 + 1}")
                        service.state.announce_host(info, trio.current_time(), interval=3600.0)
                        await trio.sleep(0.01)

                nursery.start_soon(churn)
                while trio.current_time() < started + 6:
                    with trio.move_on_after(1):
                        update = summary_of(await client.next())
                        sent.append((trio.current_time(), update))
                        await client.say({"type": "ack", "seq": update["seq"]})
            times = [at for at, _ in sent]
            gaps = [b - a for a, b in itertools.pairwise(times)]
            assert min(gaps) >= INTERVAL
            assert len(sent) <= 6 / INTERVAL + 1
            assert sent[-1][1]["summary"]["hosts"]["connected"] == 500
            assert [m["seq"] for _, m in sent] == list(range(1, len(sent) + 1))


async def test_an_unchanged_console_hears_a_heartbeat_and_an_unacked_one_is_dropped(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with running_service(FAST) as harness:
        service = harness.service
        async with asgi_stream(service) as client:
            await client.say({"type": "hello", "token": None})
            first = summary_of(await client.next())
            at = trio.current_time()
            await client.say({"type": "ack", "seq": first["seq"]})
            beat = summary_of(await client.next())
            assert trio.current_time() - at >= HEARTBEAT
            assert beat["summary"] == first["summary"]
            assert beat["seq"] == first["seq"] + 1
            # No ack: after send_timeout the stream is closed and its slot freed.
            closed = await client.next()
            assert trio.current_time() - at >= HEARTBEAT + FAST.send_timeout
            assert closed == {
                "type": "websocket.close",
                "code": 4408,
                "reason": "no ack within 1.0 s",
            }
            await service.console.wait_open(0)


async def test_a_summary_costs_the_same_with_many_records(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """The stream reads counters, never the records: no record is touched per update."""
    async with running_service(FAST) as harness:
        service = harness.service
        now = trio.current_time()
        for n in range(2000):
            service.state.announce_host(HostInfo(f"h{n}", f"10.2.{n // 250}.{n % 250 + 1}"), now)
        touched = 0
        view = service.state.view
        hosts, peers, tasks = view.hosts, view.peers, view.tasks

        def counting(records: Any) -> Any:
            def wrapper() -> Any:
                nonlocal touched
                touched += 1
                return records()

            return wrapper

        view.hosts = counting(hosts)  # type: ignore[method-assign]
        view.peers = counting(peers)  # type: ignore[method-assign]
        view.tasks = counting(tasks)  # type: ignore[method-assign]
        summary = service.summary()
        assert summary["hosts"]["connected"] == 2000
        assert touched == 0


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


# --- the summary and the hosts' upload load -------------------------------------------------


async def test_the_summary_counts_records_sessions_and_decisions() -> None:
    with trio.fail_after(30):
        async with serving(CONFIG) as live:
            async with open_client(live.ws_url) as ws:
                await announce(ws, "alpha", "10.0.0.1")
                task = {"url": "https://example.invalid/f", "total_piece_count": 2}
                message = {"type": "register_peer", "id": 2, "peer_id": "p1", "task": task}
                await ws.send_message(orjson.dumps(message).decode())
                await ws.get_message()
                summary = await get_json(f"{live.admin_url}/api/v1/summary")
                host = await get_json(f"{live.admin_url}/api/v1/hosts/10.0.0.1-alpha")
            assert summary["hosts"] == {"connected": 1, "disconnected": 0}
            assert summary["tasks"]["running"] + summary["tasks"]["pending"] == 1
            assert sum(summary["peers"].values()) == 1
            assert summary["sessions"] == 1
            assert summary["messages"] == 2
            (decision,) = summary["decisions"]
            assert (decision["cause"], decision["count"]) == ("register", 1)
            assert summary["evictions"] == []
            assert host["concurrent_upload_count"] == 0
            assert host["concurrent_upload_limit"] == 50
            assert host["upload_bandwidth"] == 0  # not announced: unknown
            assert host["upload"] == {
                "rate": 0.0,
                "window_seconds": 60.0,
                "window_bytes": 0,
                "window_pieces": 0,
                "in_flight": 0,
            }
