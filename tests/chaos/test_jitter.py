"""Scenario 4, jitter: 200 ms ± 150 ms per chunk and 1 % spikes of 2 s, at the defaults.

Every chunk, in both directions, is held 50-350 ms, and one in a hundred 2 s more
(head-of-line: what follows a spike waits behind it). At the default settings
(ping every 5 s, pong within 5 s, grace 5 s, announce every 30 s) no host may be
evicted and no session lost over 10 minutes.

* **Virtual time** (every run): the service in this process under the mock clock
  (``autojump_clock``), each client the client library's own session
  (``_session_on``: heartbeat, re-announce, peer) on memory streams, the proxy's
  pumps in between. Ten virtual minutes take seconds.
* **Real time**: ``scheduler serve`` and ``scheduler peer --hosts`` processes through
  the TCP fault proxy, ten real minutes at full scale (``nox -s chaos``), 30 s and a
  tenth of the hosts below it.
"""

from __future__ import annotations

import functools
import random

import pytest
import trio
import trio.testing

from scheduler.client import SessionLost
from scheduler.client._connection import _session_on, wrap_client_stream
from scheduler.protocol import SUBPROTOCOL, HostPayload, TaskPayload
from scheduler.service import ServiceConfig
from tests.service_support import running_service

from .cluster import FULL, Cluster, hosts, metric, poll, scaled
from .conftest import Figures
from .proxy import Direction, FaultProxy, Faults, Gate

pytestmark = [pytest.mark.chaos, pytest.mark.e2e]

JITTER = Faults(delay=0.2, jitter=0.15, spike_probability=0.01, spike=2.0)
DURATION = 600.0
#: The real-time variant: ten real minutes at full scale (``nox -s chaos``); below it
#: (CI), half a minute with a tenth of the hosts: the same path, a few spikes.
REAL_DURATION = DURATION if FULL else 30.0
TASK = "https://example.invalid/jitter.iso"
EVICTION_REASONS = ("disconnected", "ttl_expired", "admin", "superseded", "leave")


class Ledger:
    """What the virtual clients saw: sessions opened and lost, chunks held."""

    def __init__(self) -> None:
        self.sessions = 0
        self.lost: list[str] = []


async def jittered_host(
    harness: object, name: str, seed: int, ledger: Ledger, *, task_status: trio.TaskStatus[None]
) -> None:
    """One host: the client library's session over a jittered memory link, and a peer."""
    service = harness.service  # type: ignore[attr-defined]
    client_end, proxy_client = trio.testing.memory_stream_pair()
    proxy_server, server_end = trio.testing.memory_stream_pair()
    gate, rng = Gate(), random.Random(seed)
    host = HostPayload(hostname=name, ip="10.0.0.1", port=8002, download_port=8001)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(service.handle_stream, server_end)
        for source, sink in ((proxy_client, proxy_server), (proxy_server, proxy_client)):
            nursery.start_soon(Direction(source, sink, lambda: JITTER, gate, rng).run)
        ws = await wrap_client_stream(
            nursery, client_end, "scheduler.test", "/ws", subprotocols=[SUBPROTOCOL]
        )
        started = False
        try:
            async with _session_on(
                ws, host, interval=30.0, request_timeout=15.0, send_timeout=5.0, close_timeout=2.0
            ) as session:
                ledger.sessions += 1
                await session.register_peer(f"{name}/peer", TaskPayload(url=TASK))
                task_status.started()
                started = True
                await trio.sleep_forever()
        except SessionLost as lost:
            ledger.lost.append(f"{name}: {lost}")
            if not started:
                task_status.started()
            nursery.cancel_scope.cancel()


async def test_jitter_virtual_time(
    autojump_clock: trio.testing.MockClock, figures: Figures
) -> None:
    count = scaled(100, 20)
    config = ServiceConfig(entrypoints=False)  # every default: ping 5 s / 5 s, grace 5 s
    ledger = Ledger()
    async with running_service(config) as harness:
        registry = harness.service.metrics_registry
        with trio.fail_after(DURATION + 120):
            async with trio.open_nursery() as hosts_nursery:
                async with trio.open_nursery() as starting:  # all at once, each until registered
                    for n in range(count):
                        host = functools.partial(jittered_host, harness, f"j{n}", n, ledger)
                        starting.start_soon(hosts_nursery.start, host)
                began = trio.current_time()
                await trio.sleep(DURATION)
                elapsed = trio.current_time() - began
                connected = sum(
                    1 for h in harness.service.state.hosts() if h.state.value == "connected"
                )
                hosts_nursery.cancel_scope.cancel()
        evicted = {
            reason: registry.get_sample_value("scheduler_host_evictions_total", {"reason": reason})
            or 0.0
            for reason in EVICTION_REASONS
        }
        pings = registry.get_sample_value("scheduler_session_ends_total", {"cause": "ping_timeout"})

    figures.add("variant", "virtual time: in-process service, MockClock, memory links")
    figures.add("hosts / virtual time", f"{count} / {elapsed:.0f} s")
    figures.add("link", "200 ms ± 150 ms per chunk each way, 1 % spikes of +2 s; defaults")
    figures.add("chunks held / spiked", f"{JITTER.chunks} / {JITTER.spiked}")
    figures.add("sessions lost (client side)", len(ledger.lost))
    figures.add("host evictions (server side)", f"{sum(evicted.values()):.0f}")
    figures.add("ping timeouts (server side)", f"{pings or 0:.0f}")
    figures.add("hosts connected at the end", f"{connected}/{count}")
    assert ledger.lost == []
    assert sum(evicted.values()) == 0, evicted
    assert not pings
    assert connected == count


async def test_jitter_real_time(cluster: Cluster, figures: Figures) -> None:
    count = scaled(100, 10)
    scheduler = await cluster.start_scheduler()  # every default
    proxy = FaultProxy(("127.0.0.1", scheduler.port), faults=JITTER, seed=44)
    async with trio.open_nursery() as nursery:
        await nursery.start(proxy.run)
        cluster.start_hosts(proxy.url, "j", count, tasks=[TASK])

        def all_connected() -> bool:
            listed = hosts(scheduler.admin)
            return len(listed) == count and all(h["state"] == "connected" for h in listed.values())

        await poll(all_connected, 120, f"{count} hosts through the jittered proxy", 0.5)
        before = hosts(scheduler.admin)
        began = trio.current_time()
        dropped = 0
        with trio.move_on_after(REAL_DURATION):
            # Watch all along: any host not connected, or connected anew, is a false loss.
            while True:
                now = hosts(scheduler.admin)
                dropped = sum(
                    1
                    for name, host in before.items()
                    if now.get(name, {}).get("created_at") != host["created_at"]
                    or now[name]["state"] != "connected"
                )
                assert dropped == 0, "a host was dropped or reconnected under jitter"
                await trio.sleep(1.0)
        elapsed = trio.current_time() - began
        links = len(proxy.links)
        chunks = sum(link.faults.chunks for link in proxy.links)
        spiked = sum(link.faults.spiked for link in proxy.links)
        nursery.cancel_scope.cancel()
    evicted = {
        reason: metric(scheduler.admin, "scheduler_host_evictions_total", reason=reason)
        for reason in EVICTION_REASONS
    }
    pings = metric(scheduler.admin, "scheduler_session_ends_total", cause="ping_timeout")
    figures.add("variant", "real time: scheduler serve + scheduler peer --hosts, TCP proxy")
    figures.add("hosts / real time", f"{count} / {elapsed:.0f} s")
    figures.add("chunks held / spiked", f"{chunks} / {spiked}")
    figures.add("proxied connections opened (1 per host: no reconnect)", links)
    figures.add("host evictions / ping timeouts", f"{sum(evicted.values()):.0f} / {pings:.0f}")
    assert sum(evicted.values()) == 0, evicted
    assert pings == 0
    assert links == count
