"""Service behaviour over in-memory streams under a mock clock (no real time passes).

Every test runs against the ``harness`` fixture (tests/conftest.py).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import orjson
import pytest
import trio
from trio.testing import MockClock
from trio_websocket import ConnectionClosed, WebSocketConnection

from scheduler import hookimpl
from scheduler.core import Expiry, Host, HostState
from scheduler.protocol import CloseCode
from scheduler.service import ServiceConfig
from tests.service_support import FAST, Harness, announce, request

A_ID = "10.0.0.1-alpha"
B_ID = "10.0.0.2-bravo"


async def wait_until(predicate: Callable[[], bool], *, step: float = 0.05) -> float:
    """Poll a condition on the (mock) clock; return the time it became true."""
    while not predicate():  # noqa: ASYNC110 - polling the core's state on a mock clock
        await trio.sleep(step)
    return trio.current_time()


async def closed_code(ws: WebSocketConnection) -> int:
    """Drain the session until the server closes it; return the close code."""
    while True:
        try:
            await ws.get_message()
        except ConnectionClosed as closed:
            reason = closed.reason
            break
    assert reason is not None
    return int(reason.code)


def metric(harness: Harness, name: str, **labels: str) -> float:
    value = harness.service.metrics.registry.get_sample_value(name, labels)
    return 0.0 if value is None else value


async def test_announce_is_accepted_and_listed(autojump_clock: MockClock, harness: Harness) -> None:
    ws, _ = await harness.connect()
    reply = await announce(ws, interval=10.0)
    assert reply["type"] == "host_accepted"
    assert reply["id"] == 1
    assert reply["host_id"] == A_ID
    assert reply["ttl"] == pytest.approx(20.0)
    assert reply["ping_interval"] == FAST.ping_interval
    assert reply["reconnect_grace"] == FAST.reconnect_grace
    assert harness.service.state.is_schedulable(A_ID)


async def test_leave_removes_the_host_at_once_and_closes_1000(
    autojump_clock: MockClock, harness: Harness
) -> None:
    ws = await harness.announced()
    reply = await request(ws, {"type": "leave_host", "id": "bye"})
    assert reply == {"type": "ack", "id": "bye"}
    assert not harness.service.state.has_host(A_ID)
    assert await closed_code(ws) == CloseCode.NORMAL


async def test_close_without_leave_disconnects_then_evicts_after_grace(
    autojump_clock: MockClock, harness: Harness
) -> None:
    state = harness.service.state
    ws = await harness.announced()
    await ws.aclose()
    dropped = await wait_until(lambda: not state.is_schedulable(A_ID), step=0.01)
    assert state.host(A_ID).state is HostState.DISCONNECTED
    gone = await wait_until(lambda: not state.has_host(A_ID), step=0.01)
    assert gone - dropped == pytest.approx(FAST.reconnect_grace, abs=0.05)


async def test_reconnect_within_grace_keeps_host_and_peers(
    autojump_clock: MockClock, harness: Harness
) -> None:
    state = harness.service.state
    ws = await harness.announced()
    task = {"id": "t", "total_piece_count": 4}
    reply = await request(ws, {"type": "register_peer", "peer_id": "p", "task": task})
    assert (reply["type"], reply["action"]) == ("schedule", "back_to_source")
    await ws.aclose()
    await wait_until(lambda: not state.is_schedulable(A_ID), step=0.01)
    await trio.sleep(FAST.reconnect_grace / 2)
    ws2, _ = await harness.connect()
    assert (await announce(ws2))["type"] == "host_accepted"
    await trio.sleep(FAST.reconnect_grace * 2)
    assert state.is_schedulable(A_ID)
    assert state.has_peer("p")


async def test_silent_peer_is_evicted_within_ping_interval_timeout_and_grace(
    autojump_clock: MockClock, harness: Harness
) -> None:
    state = harness.service.state
    ws, stream = await harness.connect()
    await announce(ws, interval=300.0)
    frozen_at = trio.current_time()
    stream.freeze()
    gone = await wait_until(lambda: not state.has_host(A_ID))
    bound = FAST.ping_interval + FAST.ping_timeout + FAST.reconnect_grace
    assert gone - frozen_at <= bound + 0.1
    assert metric(harness, "scheduler_host_evictions_total", reason="disconnected") == 1


async def test_a_stalled_reader_cannot_block_other_sessions(
    autojump_clock: MockClock, harness: Harness
) -> None:
    state = harness.service.state
    slow, slow_stream = await harness.connect(lockstep=True)
    await announce(slow, "alpha", "10.0.0.1", interval=300.0)
    slow_stream.freeze()
    fast, _ = await harness.connect()
    await announce(fast, "bravo", "10.0.0.2", interval=300.0)
    started = trio.current_time()
    for i in range(20):
        reply = await announce(fast, "bravo", "10.0.0.2", interval=300.0)
        assert reply["type"] == "host_accepted", i
        await trio.sleep(0.5)
    # The fast session was never held up by the frozen one ...
    assert trio.current_time() - started == pytest.approx(10.0, abs=0.1)
    # ... and the frozen one was found dead and evicted meanwhile.
    assert not state.has_host(A_ID)
    assert state.is_schedulable(B_ID)


async def test_ttl_expiry_with_an_open_session_sends_evicted_and_closes_4001(
    autojump_clock: MockClock, harness: Harness
) -> None:
    ws, _ = await harness.connect()
    await announce(ws, interval=1.0)
    message = orjson.loads(await ws.get_message())
    assert message["type"] == "evicted"
    assert message["reason"] == "ttl_expired"
    assert await closed_code(ws) == CloseCode.EVICTED


async def test_admin_eviction_closes_the_session_4001(
    autojump_clock: MockClock, harness: Harness
) -> None:
    ws = await harness.announced()
    harness.service.evict_host(A_ID)
    message = orjson.loads(await ws.get_message())
    assert message == {
        "type": "evicted",
        "reason": "admin",
        "message": f"host {A_ID} evicted",
    }
    assert await closed_code(ws) == CloseCode.EVICTED
    assert not harness.service.state.has_host(A_ID)


async def test_same_hostname_new_address_supersedes_and_closes_the_old_session(
    autojump_clock: MockClock, harness: Harness
) -> None:
    old = await harness.announced("alpha", "10.0.0.1")
    await harness.announced("alpha", "10.0.0.9")
    message = orjson.loads(await old.get_message())
    assert message["reason"] == "superseded"
    assert await closed_code(old) == CloseCode.EVICTED
    assert harness.service.state.host_ids_by_hostname("alpha") == {"10.0.0.9-alpha"}


async def test_cross_host_writes_are_refused(autojump_clock: MockClock, harness: Harness) -> None:
    """Another host's peer is `not_found`, as a missing one; another host's announce `forbidden`."""
    state = harness.service.state
    a = await harness.announced("alpha", "10.0.0.1")
    b = await harness.announced("bravo", "10.0.0.2")
    task = {"id": "t", "total_piece_count": 4}
    await request(a, {"type": "register_peer", "peer_id": "pa", "task": task})
    for message, code in (
        ({"type": "download_started", "id": 5, "peer_id": "pa"}, "not_found"),
        ({"type": "leave_peer", "id": 5, "peer_id": "pa"}, "not_found"),
        ({"type": "leave_peer", "id": 5, "peer_id": "nobody"}, "not_found"),
        (
            {
                "type": "announce_host",
                "id": 5,
                "host": {"hostname": "alpha", "ip": "10.0.0.1", "port": 1, "download_port": 2},
            },
            "forbidden",
        ),
    ):
        reply = await request(b, message)
        assert reply["type"] == "error", message
        assert reply["code"] == code
        assert reply["id"] == 5
    assert state.peer("pa").host_id == A_ID
    assert state.peer("pa").state.value == "received_normal"
    assert state.is_schedulable(A_ID)


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        ("{not json", "invalid_json"),
        ("[1, 2]", "invalid_json"),
        ('{"type": "teleport", "id": 3}', "unknown_type"),
        ('{"type": "host_accepted", "id": 3}', "unknown_type"),
        (
            '{"type": "register_peer", "id": 3, "peer_id": 12, "task": {"id": "t"}}',
            "invalid_message",
        ),
        ('{"type": "download_started", "id": 3, "peer_id": "nope"}', "not_found"),
        ('{"type": "pieces_finished", "id": 3, "peer_id": "mine", "pieces": [0]}', "illegal_state"),
        ('{"type": "register_peer", "id": 3, "peer_id": "mine", "task": {"id": "t"}}', "conflict"),
    ],
)
async def test_bad_input_gets_its_documented_error_and_the_session_stays_open(
    autojump_clock: MockClock, harness: Harness, frame: str, code: str
) -> None:
    ws = await harness.announced()
    await request(ws, {"type": "register_peer", "peer_id": "mine", "task": {"id": "t"}})
    await ws.send_message(frame)
    reply = orjson.loads(await ws.get_message())
    assert reply["type"] == "error"
    assert reply["code"] == code
    assert reply["message"]
    if code not in ("invalid_json",):
        assert reply.get("id") == 3
    # Still open and working:
    assert (await announce(ws))["type"] == "host_accepted"
    assert metric(harness, "scheduler_message_errors_total", code=code) == 1


async def test_invalid_message_lists_field_paths(
    autojump_clock: MockClock, harness: Harness
) -> None:
    ws, _ = await harness.connect()
    bad = {
        "type": "announce_host",
        "id": 1,
        "host": {"hostname": "a", "ip": "1.2.3.4", "port": "12", "download_port": 1},
        "interval": 5,
    }
    reply = await request(ws, bad)
    assert reply["code"] == "invalid_message"
    assert "$.host.port" in reply["message"]


async def test_first_message_must_be_announce(autojump_clock: MockClock, harness: Harness) -> None:
    ws, _ = await harness.connect()
    reply = await request(ws, {"type": "leave_host", "id": 9})
    assert reply == {
        "type": "error",
        "id": 9,
        "code": "not_announced",
        "message": "the first message must be announce_host",
    }


async def test_no_announce_in_time_closes_1008(autojump_clock: MockClock, harness: Harness) -> None:
    ws, _ = await harness.connect()
    assert await closed_code(ws) == CloseCode.POLICY_VIOLATION


async def test_oversized_frame_closes_1009(autojump_clock: MockClock, harness: Harness) -> None:
    ws = await harness.announced()
    await ws.send_message("x" * (FAST.max_message_size + 1))
    assert await closed_code(ws) == CloseCode.MESSAGE_TOO_BIG
    state = harness.service.state
    await wait_until(lambda: not state.is_schedulable(A_ID), step=0.01)


async def test_too_many_errors_closes_1008(autojump_clock: MockClock, harness: Harness) -> None:
    ws = await harness.announced()
    codes = []
    for _ in range(FAST.error_limit + 1):
        codes.append((await request(ws, {"type": "nope"}))["code"])
    assert codes[-1] == "too_many_errors"
    assert set(codes[:-1]) == {"unknown_type"}
    assert await closed_code(ws) == CloseCode.POLICY_VIOLATION


@pytest.mark.harness(config=ServiceConfig(max_sessions=1, entrypoints=False))
async def test_wrong_subprotocol_is_rejected_400_and_cap_gives_503(
    autojump_clock: MockClock, harness: Harness
) -> None:
    assert await harness.rejection_status(subprotocols=["chat"]) == 400
    ws, _ = await harness.connect(subprotocols=[])
    assert (await announce(ws))["type"] == "host_accepted"
    assert await harness.rejection_status() == 503
    assert metric(harness, "scheduler_handshake_rejections_total", status="503") == 1


class RaisingPolicy:
    name = "raising"

    @hookimpl
    def scheduler_host_expiry(self, host: Host) -> Expiry:
        raise RuntimeError("policy bug")


@pytest.mark.harness(plugins=[RaisingPolicy()])
async def test_a_raising_plugin_is_contained(autojump_clock: MockClock, harness: Harness) -> None:
    ws, _ = await harness.connect()
    reply = await announce(ws, interval=1.0)
    assert reply["type"] == "host_accepted"
    assert reply["ttl"] == pytest.approx(2.0)
    message = orjson.loads(await ws.get_message())
    assert message["reason"] == "ttl_expired"
    errors = harness.service.metrics.plugin_errors.labels("raising", "scheduler_host_expiry")
    assert errors._value.get() >= 1
    assert math.isfinite(harness.service.state.next_deadline() or math.inf)


async def test_a_newer_session_for_the_same_host_replaces_the_old_one(
    autojump_clock: MockClock, harness: Harness
) -> None:
    state = harness.service.state
    old = await harness.announced()
    new, _ = await harness.connect()
    assert (await announce(new))["type"] == "host_accepted"
    assert await closed_code(old) == CloseCode.REPLACED
    # The old session's end neither disconnects nor evicts the host.
    await trio.sleep(FAST.reconnect_grace * 2)
    assert state.is_schedulable(A_ID)
    assert (await announce(new))["type"] == "host_accepted"


@pytest.mark.harness(config=ServiceConfig(max_sessions=3, entrypoints=False, announce_timeout=60.0))
async def test_the_session_cap_holds_under_concurrent_handshakes(
    autojump_clock: MockClock, harness: Harness
) -> None:
    statuses: list[int | None] = []

    async def attempt(harness: Harness) -> None:
        statuses.append(await harness.rejection_status())

    held = [await harness.connect() for _ in range(2)]
    async with trio.open_nursery() as nursery:
        for _ in range(10):
            nursery.start_soon(attempt, harness)
    assert statuses.count(None) == 1  # one slot was left
    assert statuses.count(503) == 9
    assert len(held) == 2
