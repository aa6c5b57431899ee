"""Admin HTTP API and /metrics, through the real listeners on loopback."""

from __future__ import annotations

import itertools
import json
import sys
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, MutableMapping
from pathlib import Path
from types import FrameType
from typing import Any
from xml.etree import ElementTree

import attrs
import orjson
import pytest
import trio
from trio_websocket import ConnectionClosed, HandshakeError, open_websocket_url

from scheduler import hookimpl
from scheduler.client import fetch_hosts, fetch_peers, fetch_task
from scheduler.client._hosts import quote_id
from scheduler.core import HostInfo, TaskInfo
from scheduler.policies import load_policies
from scheduler.service import SchedulerService, Scope, ServiceConfig, issue_token
from scheduler.service._admin import GRAPH_DEFAULT, AdminViews, make_admin_app
from scheduler.service._graph import depths
from scheduler.service._headers import CSP
from tests.service_support import announce, open_client, request, serving

SVG = "{http://www.w3.org/2000/svg}"

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


# --- bounded views ------------------------------------------------------------------------


def hosted(service: SchedulerService, hosts: int = 1) -> list[str]:
    """``hosts`` hosts announced straight into the state; their ids."""
    for n in range(hosts):
        info = HostInfo(f"h{n}", f"10.0.{n // 250}.{n % 250 + 1}")
        service.state.announce_host(info, trio.current_time(), interval=3600.0)
    return sorted(h.id for h in service.state.view.hosts())


def with_peers(service: SchedulerService, count: int, task_id: str = "t") -> list[str]:
    """A task of ``count`` peers (on as many hosts as the per-host limit needs); their ids."""
    host_ids = hosted(service, 1 + count // 5000)
    peer_ids = [f"p{n:05d}" for n in range(count)]
    for n, peer_id in enumerate(peer_ids):
        service.state.register_peer(
            peer_id, host_ids[n // 5000], TaskInfo(task_id), trio.current_time()
        )
    return peer_ids


def line_events(fn: Callable[[], object]) -> int:
    """How many lines of Python ``fn`` runs: a deterministic count of its work."""
    count = 0

    def trace(frame: FrameType, event: str, arg: object) -> Any:
        nonlocal count
        if event == "line":
            count += 1
        return trace

    previous = sys.gettrace()
    sys.settrace(trace)
    try:
        fn()
    finally:
        sys.settrace(previous)
    return count


def chain_and_idle(length: int) -> tuple[list[str], list[tuple[str, str]]]:
    """A parent chain whose ids descend (the worst order for a relaxation loop), and
    as many idle peers; nodes in id order, as the admin API passes them."""
    chain = [f"c{length - k:05d}" for k in range(length)]  # c{length} is the root
    edges = list(itertools.pairwise(chain))
    nodes = sorted([*chain, *(f"i{k:05d}" for k in range(length))])
    return nodes, edges


def test_depth_layout_is_linear_in_the_nodes_and_edges() -> None:
    small, large = chain_and_idle(150), chain_and_idle(300)
    assert depths(*large)["c00001"] == 299  # the deepest: the whole chain above it
    ratio = line_events(lambda: depths(*large)) / line_events(lambda: depths(*small))
    assert ratio < 2.2  # twice the nodes and edges, twice the work (a square would be 4)


def test_depth_layout_survives_a_cycle() -> None:
    depth = depths(["a", "b", "c", "d"], [("a", "b"), ("b", "c"), ("c", "b"), ("c", "d")])
    assert depth["a"] == 0
    assert depth["b"] == depth["c"] == depth["d"] == 1  # the cycle and below: past the rest


async def test_the_task_detail_is_paged_and_says_so() -> None:
    with trio.fail_after(30):
        service = SchedulerService(CONFIG)
        peer_ids = with_peers(service, 1500)
        views = AdminViews(service)
        first = await views.answer("GET", b"/api/v1/tasks/t", b"")
        detail = orjson.loads(first.body)
        assert [p["id"] for p in detail["peers"]] == peer_ids[:1000]
        assert (detail["peer_count"], detail["truncated"]) == (1500, True)
        assert detail["next"] == peer_ids[999]
        assert first.headers == ((b"link", b'</api/v1/tasks/t?after=p00999>; rel="next"'),)
        second = await views.answer("GET", b"/api/v1/tasks/t", b"after=p00999&limit=400")
        detail = orjson.loads(second.body)
        assert [p["id"] for p in detail["peers"]] == peer_ids[1000:1400]
        last = await views.answer("GET", b"/api/v1/tasks/t", b"after=p01399&limit=5000")
        detail = orjson.loads(last.body)
        assert [p["id"] for p in detail["peers"]] == peer_ids[1400:]
        assert (detail["truncated"], detail["next"], last.headers) == (False, None, ())
        bad = await views.answer("GET", b"/api/v1/tasks/t", b"limit=0")
        assert (bad.status, orjson.loads(bad.body)) == (
            400,
            {"error": "limit must be at least 1, got 0"},
        )


async def test_the_graph_draws_a_capped_page_and_says_what_it_left_out() -> None:
    with trio.fail_after(30):
        service = SchedulerService(CONFIG)
        peer_ids = with_peers(service, 1500)
        views = AdminViews(service)
        answer = await views.answer("GET", b"/api/v1/tasks/t/graph.svg", b"")
        svg = ElementTree.fromstring(answer.body)
        boxes = svg.findall(f"{SVG}g[@class='peer']")
        assert len(boxes) == GRAPH_DEFAULT
        (note,) = svg.findall(f"{SVG}text[@class='note']")
        assert note.text == (
            "showing 300 of 1500 peers by id, from the first id; "
            f"next page: ?after={peer_ids[299]}; edges to other peers not drawn"
        )
        assert answer.headers == (
            (b"link", b'</api/v1/tasks/t/graph.svg?after=p00299>; rel="next"'),
        )
        capped = await views.answer("GET", b"/api/v1/tasks/t/graph.svg", b"limit=100000")
        assert len(ElementTree.fromstring(capped.body).findall(f"{SVG}g[@class='peer']")) == 1000


async def test_an_admin_view_lets_other_tasks_run_between_its_slices() -> None:
    """A probe task counts its turns; the view's answer must not start before the probe
    had a turn per slice of records the view read."""
    with trio.fail_after(30):
        service = SchedulerService(CONFIG)
        with_peers(service, 1500)
        app = make_admin_app(service)
        turns = 0
        turns_at_answer: list[int] = []

        async def probe() -> None:
            nonlocal turns
            while True:
                turns += 1
                await trio.lowlevel.checkpoint()

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message: MutableMapping[str, Any]) -> None:
            if message["type"] == "http.response.start":
                turns_at_answer.append(turns)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(probe)
            for path in (b"/api/v1/tasks/t", b"/api/v1/peers", b"/api/v1/tasks/t/graph.svg"):
                before = turns
                scope = {"type": "http", "method": "GET", "path": path.decode(), "raw_path": path}
                await app({**scope, "query_string": b"limit=1000", "headers": []}, receive, send)
                assert turns_at_answer[-1] - before >= 1000 // 200  # one turn per slice at least
            nursery.cancel_scope.cancel()


async def test_ten_thousand_hosts_come_in_pages_and_the_cli_reads_them_all() -> None:
    # Ten pages of 1,000 hosts each: on a loaded machine one page may take seconds, so
    # each call has a generous bound (the time a page takes is the benchmarks' business).
    with trio.fail_after(300):
        async with serving(CONFIG) as live:
            hosted(live.service, 1)
            small = await call("GET", f"{live.admin_url}/metrics")
            host_ids = hosted(live.service, 10_000)
            status, page, headers = await trio.to_thread.run_sync(
                get_with_headers, f"{live.admin_url}/api/v1/hosts"
            )
            assert status == 200
            assert [h["id"] for h in page] == host_ids[:1000]
            assert headers["link"] == f'</api/v1/hosts?after={host_ids[999]}>; rel="next"'
            every = await trio.to_thread.run_sync(lambda: fetch_hosts(live.admin_url, timeout=60))
            assert [h["id"] for h in every] == host_ids
            connected = await trio.to_thread.run_sync(
                lambda: fetch_hosts(live.admin_url, state="connected", timeout=60)
            )
            assert len(connected) == 10_000
            # /metrics reads the core's counters: its size does not grow with the hosts.
            large = await call("GET", f"{live.admin_url}/metrics")
            assert len(large[1].splitlines()) == len(small[1].splitlines())


def get_with_headers(url: str) -> tuple[int, Any, dict[str, str]]:
    with urllib.request.urlopen(url, timeout=60) as response:
        return response.status, json.loads(response.read()), dict(response.headers.items())


# --- ids in paths -------------------------------------------------------------------------

ODD_HOSTNAMES = ["node%2D1", "a/b", "c?d=e", "é-ü-日本", "100%", "sp ace", "x#y"]


async def test_ids_with_percent_slash_and_non_ascii_are_decoded_once() -> None:
    with trio.fail_after(30):
        async with serving(CONFIG) as live:
            state, admin = live.service.state, live.admin_url
            for n, hostname in enumerate(["node-1", *ODD_HOSTNAMES]):
                now = trio.current_time()
                state.announce_host(HostInfo(hostname, f"10.0.0.{n + 1}"), now, interval=3600.0)
            # The attacker's host node%2D1 quoted once is node%252D1: deleting it must
            # evict that host, never the victim node-1.
            status, body = await call(
                "DELETE", f"{admin}/api/v1/hosts/{quote_id('10.0.0.2-node%2D1')}"
            )
            assert (status, body["evicted"]) == (200, "10.0.0.2-node%2D1")
            assert state.has_host("10.0.0.1-node-1")
            assert not state.has_host("10.0.0.2-node%2D1")
            for n, hostname in enumerate(ODD_HOSTNAMES[1:], start=3):
                host_id = f"10.0.0.{n}-{hostname}"
                status, host = await call("GET", f"{admin}/api/v1/hosts/{quote_id(host_id)}")
                assert (status, host["id"], host["hostname"]) == (200, host_id, hostname)
            # A route's own name may be percent-encoded too: it is decoded once, like an id.
            status, hosts = await call("GET", f"{admin}/api/v1/host%73?limit=2")
            assert (status, [h["hostname"] for h in hosts]) == (200, ["node-1", "a/b"])
            # An unencoded "/" is a separator: no such route.
            assert (await call("GET", f"{admin}/api/v1/hosts/10.0.0.3-a/b"))[0] == 404
            # Not UTF-8 after decoding: a clear 400.
            status, body = await call("GET", f"{admin}/api/v1/hosts/%FF")
            assert status == 400
            assert "UTF-8" in body["error"]


async def test_task_and_peer_ids_with_odd_characters_round_trip_through_the_client() -> None:
    with trio.fail_after(30):
        async with serving(CONFIG) as live:
            state, admin = live.service.state, live.admin_url
            now = trio.current_time()
            state.announce_host(HostInfo("h", "10.0.0.1"), now, interval=3600.0)
            task_id = "t/1?x=%41 é/graph.svg"
            peer_ids = ["p/1", "p%2", "p?3", "p é 4"]
            for peer_id in peer_ids:
                state.register_peer(peer_id, "10.0.0.1-h", TaskInfo(task_id), now)
            state.register_peer("other", "10.0.0.1-h", TaskInfo("t"), now)
            task = await trio.to_thread.run_sync(lambda: fetch_task(admin, task_id))
            assert task["id"] == task_id
            assert sorted(p["id"] for p in task["peers"]) == sorted(peer_ids)
            peers = await trio.to_thread.run_sync(lambda: fetch_peers(admin, task=task_id))
            assert sorted(p["id"] for p in peers) == sorted(peer_ids)
            status, svg = await call("GET", f"{admin}/api/v1/tasks/{quote_id(task_id)}/graph.svg")
            assert status == 200
            titles = [t.text for t in ElementTree.fromstring(svg).iter(f"{SVG}title")]
            assert titles[0] == f"task {task_id}"
            cursor = urllib.parse.quote("p%2", safe="")
            status, page = await call(
                "GET", f"{admin}/api/v1/peers?task={quote_id(task_id)}&after={cursor}"
            )
            assert [p["id"] for p in page] == sorted(i for i in peer_ids if i > "p%2")


# --- headers ------------------------------------------------------------------------------


async def test_every_admin_answer_says_nosniff_and_its_content_security_policy() -> None:
    key = b"k" * 32
    with tempfile.TemporaryDirectory() as tmp, trio.fail_after(30):
        key_file = Path(tmp) / "key"
        key_file.write_bytes(key)
        config = attrs.evolve(CONFIG, auth_key_file=str(key_file))
        async with serving(config) as live:
            with_peers(live.service, 3)
            token = issue_token(key, scopes=[Scope.ADMIN_READ])
            writer = issue_token(key, scopes=[Scope.ADMIN_WRITE])
            admin = live.admin_url
            cases = [
                ("GET", "/healthz", None, 200),
                ("GET", "/api/v1/hosts", token, 200),
                ("GET", "/api/v1/tasks/t", token, 200),
                ("GET", "/api/v1/tasks/t/graph.svg", token, 200),
                ("GET", "/api/v1/hosts", None, 401),
                ("DELETE", "/api/v1/hosts/x", token, 403),
                ("GET", "/nope", token, 404),
                ("POST", "/api/v1/tasks", writer, 405),
                ("GET", "/api/v1/peers?limit=x", token, 400),
            ]
            for method, path, bearer, status in cases:
                got, headers = await trio.to_thread.run_sync(
                    raw_headers, method, f"{admin}{path}", bearer
                )
                assert got == status, path
                assert headers["x-content-type-options"] == "nosniff", path
                expected = CSP["svg"] if path.endswith(".svg") else CSP["default"]
                assert headers["content-security-policy"] == expected, path
            assert CSP["default"].startswith("default-src 'none'")


def raw_headers(method: str, url: str, token: str | None) -> tuple[int, dict[str, str]]:
    req = urllib.request.Request(url, method=method)
    if token is not None:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=5) as response:
            return response.status, {k.lower(): v for k, v in response.headers.items()}
    except urllib.error.HTTPError as error:
        with error:
            return error.code, {k.lower(): v for k, v in error.headers.items()}


async def test_an_admin_handler_that_raises_answers_500_with_the_headers() -> None:
    with trio.fail_after(10):
        service = SchedulerService(CONFIG)
        app = make_admin_app(service)
        sent: list[MutableMapping[str, Any]] = []

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message: MutableMapping[str, Any]) -> None:
            sent.append(message)

        def broken(_host_id: str) -> None:
            raise RuntimeError("boom")

        service.state.view.host = broken  # type: ignore[method-assign,assignment]
        scope = {
            "type": "http",
            "method": "GET",
            "path": "/api/v1/hosts/x",
            "raw_path": b"/api/v1/hosts/x",
        }
        await app({**scope, "query_string": b"", "headers": []}, receive, send)
        start, body = sent
        assert start["status"] == 500
        assert (b"x-content-type-options", b"nosniff") in start["headers"]
        assert orjson.loads(body["body"]) == {"error": "internal error; see the scheduler's log"}


class RefuseAll:
    """A plugin seen at work: it vetoes every candidate."""

    name = "refuse_all"

    @hookimpl
    def scheduler_candidate_veto(self) -> str:
        return "quarantined"


async def test_the_plugins_route_shows_each_plugin_its_settings_and_its_vetoes() -> None:
    config = attrs.evolve(CONFIG, plugin_config={"peer_start": {"start_timeout": "45s"}})
    policies = load_policies(config=config.policy_config(), plugins=[RefuseAll()])
    with trio.fail_after(30):
        async with serving(config, policies) as live:
            async with open_client(live.ws_url) as feeder, open_client(live.ws_url) as child:
                await announce(feeder, "feeder", "10.0.0.1", interval=30.0)
                await announce(child, "child", "10.0.0.2", interval=30.0)
                task = {"id": "t", "url": "https://example.invalid/f"}
                await request(feeder, {"type": "register_peer", "peer_id": "f", "task": task})
                await request(feeder, {"type": "back_to_source", "peer_id": "f"})
                reply = await request(
                    child, {"type": "register_peer", "peer_id": "c", "task": task}
                )
                assert reply["action"] == "wait"
            status, answer = await call("GET", f"{live.admin_url}/api/v1/plugins")
            assert status == 200
            by_name = {p["name"]: p for p in answer["plugins"]}
            assert by_name["peer_start"]["settings"] == {"start_timeout": 45.0}
            assert by_name["peer_start"]["builtin"] is True
            assert by_name["peer_start"]["hooks"] == ["scheduler_peer_expiry"]
            assert by_name["refuse_all"]["builtin"] is False
            assert by_name["refuse_all"]["settings"] is None
            assert by_name["refuse_all"]["vetoes"] == {"quarantined": 1}
            assert answer["blocked"] == []
            _, metrics = await call("GET", f"{live.admin_url}/metrics")
            assert (
                'scheduler_candidate_vetoes_total{plugin="refuse_all",reason="quarantined"} 1.0'
                in metrics
            )
