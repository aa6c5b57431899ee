"""Scheduling through the service: replies, proactive pushes, seed fetches, admin views.

Every test runs against the ``harness`` fixture (tests/conftest.py): sessions
over memory streams under the autojumping mock clock.
"""

from __future__ import annotations

from typing import Any
from xml.etree import ElementTree

import attrs
import orjson
import pytest
import trio
from scheduler_dragonfly_compat import DragonflyCompat
from trio.testing import MockClock
from trio_websocket import WebSocketConnection

from scheduler.protocol import Schedule
from scheduler.service._admin import AdminViews
from tests.service_support import FAST, Harness, announce, request
from tests.test_service import closed_code, metric, wait_until

A_ID, B_ID, C_ID, D_ID = "10.0.0.1-alpha", "10.0.0.2-bravo", "10.0.0.3-charlie", "10.0.0.4-delta"
TASK = {"id": "t", "total_piece_count": 4}


async def host(harness: Harness, name: str, ip: str, **extra: Any) -> WebSocketConnection:
    ws, _ = await harness.connect()
    message = {"type": "announce_host", "id": 1, "interval": 10.0}
    message["host"] = {"hostname": name, "ip": ip, "port": 8002, "download_port": 8001, **extra}
    assert (await request(ws, message))["type"] == "host_accepted"
    return ws


async def send(ws: WebSocketConnection, message: dict[str, Any], request_id: int = 5) -> Any:
    return await request(ws, {**message, "id": request_id})


async def seeded_parent(ws: WebSocketConnection, peer_id: str, *, registered: bool = False) -> None:
    """A peer that went to the origin and holds piece 0: a parent for others."""
    if not registered:
        await send(ws, {"type": "register_peer", "peer_id": peer_id, "task": TASK})
    await send(ws, {"type": "back_to_source", "peer_id": peer_id})
    reply = await send(ws, {"type": "pieces_finished", "peer_id": peer_id, "pieces": [0]})
    assert reply["type"] == "ack"


async def two_parents(a: WebSocketConnection, b: WebSocketConnection) -> None:
    """pa (alpha) and pb (bravo) both fetch from the origin; neither is the other's child."""
    for ws, peer_id in ((a, "pa"), (b, "pb")):
        reply = await send(ws, {"type": "register_peer", "peer_id": peer_id, "task": TASK})
        assert reply["action"] in ("back_to_source", "wait")
    for ws, peer_id in ((a, "pa"), (b, "pb")):
        await seeded_parent(ws, peer_id, registered=True)


async def child_of(ws: WebSocketConnection, peer_id: str) -> dict[str, Any]:
    """Register and start a child; return its schedule (parents)."""
    reply = await send(ws, {"type": "register_peer", "peer_id": peer_id, "task": TASK}, 41)
    assert (reply["type"], reply["id"], reply["action"]) == ("schedule", 41, "parents")
    assert (await send(ws, {"type": "download_started", "peer_id": peer_id}))["type"] == "ack"
    return dict(reply)


async def next_message(ws: WebSocketConnection, within: float = 5.0) -> dict[str, Any] | None:
    with trio.move_on_after(within):
        message: dict[str, Any] = orjson.loads(await ws.get_message())
        return message
    return None


async def test_register_answers_back_to_source_wait_then_parents(
    autojump_clock: MockClock, harness: Harness
) -> None:
    a = await host(harness, "alpha", "10.0.0.1")
    c = await host(harness, "charlie", "10.0.0.3")
    first = await send(a, {"type": "register_peer", "peer_id": "pa", "task": TASK}, 11)
    assert (first["type"], first["id"], first["action"]) == ("schedule", 11, "back_to_source")
    assert "parents" not in first or first["parents"] == []
    second = await send(c, {"type": "register_peer", "peer_id": "pc", "task": TASK}, 12)
    assert (second["id"], second["action"]) == (12, "wait")
    assert second["retry_after"] > 0
    await send(a, {"type": "back_to_source", "peer_id": "pa"})
    await send(a, {"type": "pieces_finished", "peer_id": "pa", "pieces": [0, 1]})
    await trio.sleep(second["retry_after"])
    again = await send(c, {"type": "reschedule", "peer_id": "pc", "failed_parents": []}, 13)
    assert (again["type"], again["id"], again["action"]) == ("schedule", 13, "parents")
    assert again["parents"] == [
        {
            "peer_id": "pa",
            "host_id": A_ID,
            "ip": "10.0.0.1",
            "download_port": 8001,
            "finished_piece_count": 2,
            "type": "normal",
        }
    ]
    assert metric(harness, "scheduler_schedule_decisions_total", action="wait", cause="register")
    assert metric(
        harness, "scheduler_schedule_decisions_total", action="parents", cause="reschedule"
    )
    assert metric(harness, "scheduler_schedule_decision_seconds_count") == 3


async def test_a_crashed_parent_host_pushes_one_schedule_with_fresh_parents(
    autojump_clock: MockClock, harness: Harness
) -> None:
    a_ws, a_stream = await harness.connect()
    assert (await announce(a_ws, "alpha", "10.0.0.1"))["type"] == "host_accepted"
    b = await host(harness, "bravo", "10.0.0.2")
    c = await host(harness, "charlie", "10.0.0.3")
    await two_parents(a_ws, b)
    reply = await child_of(c, "pc")
    assert {p["peer_id"] for p in reply["parents"]} == {"pa", "pb"}
    # alpha crashes: the connection ends, no close frame, no leave.
    await a_stream.aclose()
    push = await next_message(c)
    assert push is not None
    assert push["type"] == "schedule"
    assert "id" not in push
    assert push["peer_id"] == "pc"
    assert [p["peer_id"] for p in push["parents"]] == ["pb"]
    assert harness.service.state.parents_of("pc") == ("pb",)
    assert await next_message(c) is None  # exactly one push
    assert await next_message(b) is None  # nothing for a host whose peers lost nothing
    assert metric(harness, "scheduler_dead_parent_pushes_total") == 1
    assert metric(
        harness, "scheduler_schedule_decisions_total", action="parents", cause="parent_lost"
    )


async def test_an_admin_eviction_pushes_too(autojump_clock: MockClock, harness: Harness) -> None:
    a = await host(harness, "alpha", "10.0.0.1")
    b = await host(harness, "bravo", "10.0.0.2")
    c = await host(harness, "charlie", "10.0.0.3")
    await two_parents(a, b)
    await child_of(c, "pc")
    harness.service.evict_host(A_ID)
    push = await next_message(c)
    assert push is not None
    assert [p["peer_id"] for p in push["parents"]] == ["pb"]


async def test_a_frozen_child_does_not_stall_the_push_to_another(
    autojump_clock: MockClock, harness: Harness
) -> None:
    a_ws, a_stream = await harness.connect()
    await announce(a_ws, "alpha", "10.0.0.1")
    b = await host(harness, "bravo", "10.0.0.2")
    c_ws, c_stream = await harness.connect()
    await announce(c_ws, "charlie", "10.0.0.3")
    d = await host(harness, "delta", "10.0.0.4")
    await two_parents(a_ws, b)
    await child_of(c_ws, "pc")
    await child_of(d, "pd")
    c_stream.freeze()  # charlie stops reading (SIGSTOP)
    started = trio.current_time()
    await a_stream.aclose()
    push = await next_message(d)
    assert push is not None
    assert push["peer_id"] == "pd"
    assert trio.current_time() - started < FAST.send_timeout  # not held up by charlie
    # charlie's own push cannot be sent: its session ends on a timeout (the send's
    # or the heartbeat's, whichever comes first) and does not hold anything up.
    await wait_until(lambda: harness.service.session_of(C_ID) is None)
    ends = [
        metric(harness, "scheduler_session_ends_total", cause=cause)
        for cause in ("send_timeout", "ping_timeout")
    ]
    assert sum(ends) == 1


@pytest.mark.harness(config=attrs.evolve(FAST, outbox_size=1))
async def test_an_outbox_that_overflows_ends_its_session(
    autojump_clock: MockClock, harness: Harness
) -> None:
    ws, stream = await harness.connect()
    await announce(ws, "charlie", "10.0.0.3")
    stream.freeze()
    hosts = harness.service.hosts
    first = hosts.deliver(C_ID, Schedule(peer_id="p0", action="fail"))
    await trio.testing.wait_all_tasks_blocked()  # the writer took it and is stuck sending
    outcomes = [hosts.deliver(C_ID, Schedule(peer_id=f"p{n}", action="fail")) for n in (1, 2)]
    assert [o.value for o in (first, *outcomes)] == ["queued", "queued", "outbox_overflow"]
    await wait_until(lambda: harness.service.session_of(C_ID) is None)
    assert metric(harness, "scheduler_session_ends_total", cause="outbox_overflow") == 1
    assert not harness.service.state.is_schedulable(C_ID)  # the end is a drop


@pytest.mark.harness(plugins=[DragonflyCompat()])
async def test_dragonfly_compat_pushes_nothing(autojump_clock: MockClock, harness: Harness) -> None:
    a_ws, a_stream = await harness.connect()
    await announce(a_ws, "alpha", "10.0.0.1")
    b = await host(harness, "bravo", "10.0.0.2")
    c = await host(harness, "charlie", "10.0.0.3")
    await two_parents(a_ws, b)
    await child_of(c, "pc")
    await a_stream.aclose()
    await wait_until(lambda: not harness.service.state.is_schedulable(A_ID))
    assert await next_message(c) is None
    assert metric(harness, "scheduler_dead_parent_pushes_total") == 0


async def test_a_seed_session_receives_fetch_task(
    autojump_clock: MockClock, harness: Harness
) -> None:
    seed = await host(harness, "seed", "10.0.0.9", type="seed")
    a = await host(harness, "alpha", "10.0.0.1")
    reply = await send(a, {"type": "register_peer", "peer_id": "pa", "task": TASK}, 21)
    assert (reply["id"], reply["action"]) == (21, "wait")
    fetch = await next_message(seed)
    assert fetch is not None
    assert fetch["type"] == "fetch_task"
    assert fetch["task"]["id"] == "t"
    assert fetch["task"]["total_piece_count"] == 4
    seed_peer = fetch["peer_id"]
    await seeded_parent(seed, seed_peer)
    again = await send(a, {"type": "reschedule", "peer_id": "pa"}, 22)
    assert [(p["peer_id"], p["type"]) for p in again["parents"]] == [(seed_peer, "seed")]
    assert metric(harness, "scheduler_fetch_tasks_total") == 1


async def test_admin_shows_parent_edges_and_draws_them(
    autojump_clock: MockClock, harness: Harness
) -> None:
    a = await host(harness, "alpha", "10.0.0.1")
    c = await host(harness, "charlie", "10.0.0.3")
    await seeded_parent(a, "pa")
    await child_of(c, 'pc<&">')
    views = AdminViews(harness.service)
    answer = await views.answer("GET", b"/api/v1/tasks/t", b"")
    assert (answer.status, answer.content_type) == (200, "application/json")
    detail = orjson.loads(answer.body)
    assert detail["id"] == "t"
    assert detail["edges"] == [{"parent": "pa", "child": 'pc<&">'}]
    assert (detail["peer_count"], detail["truncated"], detail["next"]) == (2, False, None)
    peers = {p["id"]: p for p in detail["peers"]}
    assert peers['pc<&">']["parents"] == ["pa"]
    assert peers["pa"]["parents"] == []
    answer = await views.answer("GET", b"/api/v1/peers", b"")
    assert {p["id"]: p["parents"] for p in orjson.loads(answer.body)} == {
        "pa": [],
        'pc<&">': ["pa"],
    }
    answer = await views.answer("GET", b"/api/v1/tasks/t/graph.svg", b"")
    assert (answer.status, answer.content_type, answer.csp) == (200, "image/svg+xml", "svg")
    tree = ElementTree.fromstring(answer.body)  # well-formed: every id escaped
    ns = "{http://www.w3.org/2000/svg}"
    assert len(tree.findall(f"{ns}line")) == 1
    titles = [t.text for t in tree.iter(f"{ns}title")]
    assert 'pc<&"> (running)' in titles
    assert (await views.answer("GET", b"/api/v1/tasks/nope", b"")).status == 404
    assert (await views.answer("GET", b"/api/v1/tasks/nope/graph.svg", b"")).status == 404
    assert await closed_code_or_none(c) is None


async def closed_code_or_none(ws: WebSocketConnection) -> int | None:
    """None while the session is open (no message within a second)."""
    with trio.move_on_after(1.0):
        return await closed_code(ws)
    return None


async def test_a_batch_is_answered_in_one_frame_and_its_pushes_are_coalesced(
    autojump_clock: MockClock, harness: Harness
) -> None:
    a = await host(harness, "alpha", "10.0.0.1")
    c = await host(harness, "charlie", "10.0.0.3")
    for peer_id in ("pa", "pb"):  # two parents on one host
        await seeded_parent(a, peer_id)
    reply = await child_of(c, "pc")
    assert {p["peer_id"] for p in reply["parents"]} == {"pa", "pb"}
    # Both parents leave in one batch: one reply frame, and one push for pc (the
    # last decision), not one per parent lost.
    batch = {
        "type": "batch",
        "id": "b",
        "messages": [
            {"type": "leave_peer", "id": 1, "peer_id": "pa"},
            {"type": "leave_peer", "id": 2, "peer_id": "nobody"},
            {"type": "leave_peer", "id": 3, "peer_id": "pb"},
        ],
    }
    answer = await request(a, batch)
    assert answer["type"] == "batch"
    assert answer["id"] == "b"
    assert [(r["type"], r["id"]) for r in answer["replies"]] == [
        ("ack", 1),
        ("error", 2),
        ("ack", 3),
    ]
    assert answer["replies"][1]["code"] == "not_found"
    push = await next_message(c)
    assert push is not None
    assert push["type"] == "schedule"
    assert "id" not in push
    assert push["peer_id"] == "pc"
    assert push["action"] != "parents"  # no parent is left
    assert await next_message(c) is None  # exactly one push
    assert metric(harness, "scheduler_messages_total", type="batch") == 1
    assert metric(harness, "scheduler_messages_total", type="leave_peer") == 3
    assert metric(harness, "scheduler_message_errors_total", code="not_found") == 1
