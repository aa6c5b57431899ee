"""The resource bounds and the session rules, through the real service.

Each test replays a probe's finding on the wire (the harness: the service's own
connection handler over memory streams, under the mock clock) and checks the
fixed behaviour: the reply, what the state holds afterwards, and the metrics.
"""

from __future__ import annotations

from typing import Any

import attrs
import orjson
import pytest
from trio.testing import MockClock
from trio_websocket import ConnectionClosed, WebSocketConnection

from scheduler import hookimpl
from scheduler.core import Expiry, Host
from scheduler.protocol import CloseCode
from tests.service_support import FAST, Harness, announce, host_payload, request

A_ID = "10.0.0.1-alpha"
B_ID = "10.0.0.2-bravo"


def metric(harness: Harness, name: str, **labels: str) -> float:
    value = harness.service.metrics.registry.get_sample_value(name, labels)
    return 0.0 if value is None else value


async def register(ws: WebSocketConnection, peer_id: str, **task: Any) -> dict[str, Any]:
    message = {"type": "register_peer", "id": peer_id, "peer_id": peer_id, "task": task}
    return await request(ws, message)


async def step(ws: WebSocketConnection, kind: str, peer_id: str, **extra: Any) -> dict[str, Any]:
    return await request(ws, {"type": kind, "id": kind, "peer_id": peer_id, **extra})


async def test_far_pieces_are_refused_and_a_failed_report_records_nothing(
    autojump_clock: MockClock, harness: Harness
) -> None:
    """Three 80-byte frames naming piece 800 000 000 once grew the server by ~290 MB."""
    state = harness.service.state
    ws = await harness.announced()
    assert (await register(ws, "p", id="t"))["type"] == "schedule"
    assert (await step(ws, "back_to_source", "p"))["type"] == "ack"
    for _ in range(3):
        reply = await step(ws, "pieces_finished", "p", pieces=[800_000_000])
        assert (reply["type"], reply["code"]) == ("error", "invalid_message")
        assert "max_piece_count is 100000" in reply["message"]
    reply = await step(ws, "pieces_finished", "p", pieces=[0, 2**62])
    assert (reply["type"], reply["code"]) == ("error", "invalid_message")  # not `internal`
    peer = state.peer("p")
    assert len(peer.finished_pieces) == 0  # piece 0 was not recorded either
    assert peer.finished_pieces.storage_bytes() == 0
    assert (await step(ws, "pieces_finished", "p", pieces=[99_999]))["type"] == "ack"
    assert peer.finished_pieces.storage_bytes() == 8
    assert metric(harness, "scheduler_message_errors_total", code="invalid_message") == 4


@pytest.mark.harness(config=attrs.evolve(FAST, max_peers_per_host=2))
async def test_peers_per_host_past_the_cap_are_limit_exceeded(
    autojump_clock: MockClock, harness: Harness
) -> None:
    state = harness.service.state
    ws = await harness.announced()
    for i in range(2):
        assert (await register(ws, f"p{i}", id=f"t{i}"))["type"] == "schedule"
    reply = await register(ws, "p2", id="t2")
    assert (reply["type"], reply["code"]) == ("error", "limit_exceeded")
    assert reply["message"] == f"host '{A_ID}' already holds max_peers_per_host (2) peers"
    assert not state.has_peer("p2")
    assert not state.has_task("t2")
    assert metric(harness, "scheduler_message_errors_total", code="limit_exceeded") == 1
    assert (await step(ws, "leave_peer", "p0"))["type"] == "ack"
    assert (await register(ws, "p2", id="t2"))["type"] == "schedule"


async def test_a_wrong_first_size_does_not_poison_the_next_peers_reports(
    autojump_clock: MockClock, harness: Harness
) -> None:
    state = harness.service.state
    a = await harness.announced()
    b = await harness.announced("bravo", "10.0.0.2")
    assert (await register(a, "liar", id="t", total_piece_count=1))["type"] == "schedule"
    assert (await register(b, "honest", id="t", total_piece_count=8))["type"] == "schedule"
    assert (await step(b, "back_to_source", "honest"))["type"] == "ack"
    assert (await step(b, "pieces_finished", "honest", pieces=list(range(8))))["type"] == "ack"
    assert (await step(b, "download_finished", "honest"))["type"] == "ack"
    task = state.task("t")
    assert (task.total_piece_count, task.size_confirmed) == (8, True)
    # The liar is held to its own claim, and no one else is.
    assert (await step(a, "back_to_source", "liar"))["type"] == "ack"
    reply = await step(a, "pieces_finished", "liar", pieces=[3])
    assert (reply["type"], reply["code"]) == ("error", "invalid_message")


async def test_the_peer_order_of_the_protocol_is_enforced(
    autojump_clock: MockClock, harness: Harness
) -> None:
    state = harness.service.state
    ws = await harness.announced()
    await register(ws, "p", id="t")
    reply = await step(ws, "download_finished", "p")  # right after register_peer
    assert (reply["type"], reply["code"]) == ("error", "illegal_state")
    assert state.peer("p").state.value == "received_normal"
    assert (await step(ws, "download_started", "p"))["type"] == "ack"
    assert (await step(ws, "download_finished", "p"))["type"] == "ack"
    reply = await step(ws, "download_failed", "p")  # after download_finished
    assert (reply["type"], reply["code"]) == ("error", "illegal_state")
    assert state.peer("p").state.value == "succeeded"
    assert state.task("t").state.value == "succeeded"


@pytest.mark.parametrize("interval", [1e308, 5e-324, 0.5, 86_401])
async def test_an_announce_that_fails_validation_registers_nothing(
    autojump_clock: MockClock, harness: Harness, interval: float
) -> None:
    state = harness.service.state
    ws, _ = await harness.connect()
    reply = await announce(ws, interval=interval)
    assert (reply["type"], reply["code"]) == ("error", "invalid_message")
    assert reply["message"] == "must be between 1 and 86400 seconds @ $.interval"
    assert not state.has_host(A_ID)
    assert harness.service.session_of(A_ID) is None
    reply = await request(
        ws, {"type": "register_peer", "id": 2, "peer_id": "p", "task": {"id": "t"}}
    )
    assert reply["code"] == "not_announced"  # the session is not bound either
    assert (await announce(ws, interval=1.0))["type"] == "host_accepted"


async def test_control_characters_in_names_are_refused(
    autojump_clock: MockClock, harness: Harness
) -> None:
    state = harness.service.state
    ws, _ = await harness.connect()
    for host in (
        host_payload("alpha\n2026-01-01T00:00:00.000Z INFO    scheduler.gc: forged"),
        host_payload("alpha", "10.0.0.1\x00"),
    ):
        reply = await request(ws, {"type": "announce_host", "id": 1, "host": host})
        assert (reply["type"], reply["code"]) == ("error", "invalid_message")
        assert ("RFC 1123 hostname" in reply["message"]) or (
            "address in canonical" in reply["message"]
        )
    assert state.host_count() == 0
    await announce(ws)
    reply = await register(ws, "p\u2028q", id="t")
    assert (reply["type"], reply["code"]) == ("error", "invalid_message")
    assert not state.has_task("t")


class EvictAtOnce:
    """Every host is due the moment it announced (as a far too short TTL would make it)."""

    name = "evict_at_once"

    @hookimpl
    def scheduler_host_expiry(self, host: Host) -> Expiry:
        return Expiry(host.last_announce_at, "ttl_expired")


@pytest.mark.harness(plugins=[EvictAtOnce()])
async def test_host_accepted_goes_out_before_the_eviction_it_causes(
    autojump_clock: MockClock, harness: Harness
) -> None:
    ws, _ = await harness.connect()
    message = {"type": "announce_host", "id": 1, "host": host_payload(), "interval": 1}
    await ws.send_message(orjson.dumps(message).decode())
    replies = [orjson.loads(await ws.get_message()) for _ in range(2)]
    assert [r["type"] for r in replies] == ["host_accepted", "evicted"]
    assert replies[0]["id"] == 1
    assert replies[1]["reason"] == "ttl_expired"
    with pytest.raises(ConnectionClosed) as closed:
        await ws.get_message()
    reason = closed.value.reason
    assert reason is not None
    assert reason.code == CloseCode.EVICTED
    assert not harness.service.state.has_host(A_ID)


async def test_upload_counts_only_for_parents_handed_out(
    autojump_clock: MockClock, harness: Harness
) -> None:
    state = harness.service.state
    a = await harness.announced()
    b = await harness.announced("bravo", "10.0.0.2")
    await register(a, "src", id="t")
    await step(a, "back_to_source", "src")
    await step(a, "pieces_finished", "src", pieces=[0, 1])
    await register(a, "other", id="t")  # a peer of the task never handed to the child
    reply = await register(b, "child", id="t")
    assert [p["peer_id"] for p in reply["parents"]] == ["src"]
    await step(b, "download_started", "child")
    await step(b, "pieces_finished", "child", pieces=[0], parent_id="other")
    await step(b, "pieces_finished", "child", pieces=[1], parent_id="src")
    assert state.host(A_ID).upload_count == 1
    assert state.peer("child").parents == {"src"}
