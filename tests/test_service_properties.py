"""Interleaved clocks at the service level.

Hypothesis generates a schedule per simulated peer (announce jitter, crash,
leave, hang, resume, reconnect, each on the peer's own drifting clock). The
peers run concurrently against the real service under a mock clock; the core
invariants are checked at every step and at the end.
"""

from __future__ import annotations

from typing import Any

import attrs
import orjson
import trio
import trio.testing
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from trio_websocket import ConnectionClosed, WebSocketConnection

from scheduler.core import HostState, SchedulerState
from scheduler.protocol import CloseCode
from scheduler.service import SchedulerService
from tests.service_support import FAST, Freezable, Harness, announce, request, running_service

ACTIONS = ("announce", "announce", "announce", "crash", "leave", "hang", "resume", "peer")
SLACK = 0.05  # mock-clock polling granularity
#: The close codes a script's session may get from the server while it runs.
_SERVER_ENDS = frozenset({CloseCode.EVICTED, CloseCode.REPLACED})


@attrs.frozen
class PeerScript:
    hostname: str
    ip: str
    interval: float
    drift: float
    steps: tuple[tuple[float, str], ...]


def scripts() -> st.SearchStrategy[list[PeerScript]]:
    step = st.tuples(st.floats(0.1, 6.0), st.sampled_from(ACTIONS))
    script = st.builds(
        PeerScript,
        hostname=st.sampled_from(["alpha", "bravo", "charlie"]),
        ip=st.just(""),  # one address per simulated peer, set from its index below
        interval=st.sampled_from([1.0, 2.0, 5.0]),
        drift=st.floats(-0.05, 0.05),
        steps=st.lists(step, max_size=10).map(tuple),
    )
    return st.lists(script, min_size=1, max_size=4).map(
        lambda plan: [attrs.evolve(p, ip=f"10.0.0.{i + 1}") for i, p in enumerate(plan)]
    )


def check_invariants(service: SchedulerService) -> None:
    state = service.state
    assert state.invariant_violations() == []
    names: dict[str, int] = {}
    for host in state.hosts():
        names[host.info.hostname] = names.get(host.info.hostname, 0) + 1
        assert host.state in (HostState.CONNECTED, HostState.DISCONNECTED)
    assert all(count == 1 for count in names.values()), names  # hostnames are all "normal"
    for host in state.schedulable_hosts():
        assert host.state is HostState.CONNECTED
    now = trio.current_time()
    for kind, queue in state.queues.items():
        for record_id in queue.ids():
            expiry = queue.get(record_id)
            assert expiry is not None
            # The GC loop runs as soon as a deadline passes: nothing overdue lingers.
            assert expiry.at > now - SLACK, (kind, record_id, expiry, now)


def superseded(state: SchedulerState, host_id: str) -> bool:
    """``host_id`` is gone and another host has its hostname."""
    hostname = host_id.split("-", 1)[1]
    others = state.view.host_ids_by_hostname(hostname) - {host_id}
    return not state.has_host(host_id) and bool(others)


async def wait_for(predicate: Any, bound: float) -> None:
    with trio.fail_after(bound):
        while not predicate():  # noqa: ASYNC110 - polling the core on the mock clock
            await trio.sleep(0.01)


async def run_peer(harness: Harness, script: PeerScript, index: int) -> None:
    service = harness.service
    state = service.state
    host_id = f"{script.ip}-{script.hostname}"
    ws: WebSocketConnection | None = None
    stream: Freezable | None = None
    peers = 0
    for delay, action in script.steps:
        await trio.sleep(delay * (1.0 + script.drift))
        try:
            if action == "announce":
                if ws is None or ws.closed is not None:
                    ws, stream = await harness.connect()
                reply = await announce(ws, script.hostname, script.ip, script.interval)
                assert (reply["type"], reply.get("id")) == ("host_accepted", 1), reply
                if not state.is_schedulable(host_id):
                    # Superseded by a concurrent announce of its hostname (the server
                    # handles each frame as it reads it, so the other may get there
                    # first): the reply still went first, and the `evicted` notice follows.
                    assert superseded(state, host_id)
                    notice = orjson.loads(await ws.get_message())
                    assert notice["type"] == "evicted", notice
            elif action == "peer" and ws is not None and ws.closed is None:
                peers += 1
                task = {"id": f"task-{peers % 2}", "total_piece_count": 4}
                peer_id = f"{host_id}-p{index}-{peers}"
                message = {"type": "register_peer", "id": 2, "peer_id": peer_id, "task": task}
                reply = await request(ws, message)
                assert (reply["type"], reply.get("id")) == ("schedule", 2), reply
            elif action == "leave" and ws is not None and ws.closed is None:
                reply = await request(ws, {"type": "leave_host", "id": 1})
                assert (reply["type"], reply.get("id")) == ("ack", 1), reply
                assert not state.has_host(host_id)
                ws = None
            elif action == "crash" and ws is not None and stream is not None:
                # Like a killed process: the connection just ends, no close frame.
                owned = service.session_of(host_id) is not None
                await stream.aclose()
                ws = None
                if owned:
                    # Unschedulable at once (within the polling granularity).
                    await wait_for(lambda: not state.is_schedulable(host_id), SLACK)
            elif action == "hang" and stream is not None:
                stream.freeze()
                if service.session_of(host_id) is not None:
                    bound = FAST.ping_interval + FAST.ping_timeout + FAST.reconnect_grace
                    await wait_for(
                        lambda: (
                            state.is_schedulable(host_id) is False
                            and (not state.has_host(host_id) or service.session_of(host_id) is None)
                        ),
                        bound + SLACK,
                    )
                stream.thaw()
                ws = None
            elif action == "resume" and stream is not None:
                stream.thaw()
        except ConnectionClosed as closed:
            # The server ends a session on its own only when its host goes: evicted (its
            # announce TTL ran out while the script slept, or another script announced
            # its hostname) or replaced. Anything else (an internal error, a policy
            # violation) is a failure.
            assert closed.reason.code in _SERVER_ENDS, closed.reason  # noqa: PT017
            ws = None
        check_invariants(service)


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture], deadline=None)
@given(scripts())
async def test_interleaved_peers_keep_the_invariants(
    autojump_clock: trio.testing.MockClock, plan: list[PeerScript]
) -> None:
    with trio.fail_after(600):
        async with running_service() as harness:
            async with trio.open_nursery() as nursery:
                for index, script in enumerate(plan):
                    nursery.start_soon(run_peer, harness, script, index)
            check_invariants(harness.service)
            # Everyone is silent now: the TTL backstop (and the grace) clears every host.
            longest = max(s.interval for s in plan) * 2 + FAST.ping_interval + FAST.ping_timeout
            await trio.sleep(longest + FAST.reconnect_grace + 1.0)
            check_invariants(harness.service)
            assert harness.service.state.host_count() == 0
            assert harness.service.state.peer_count() == 0
