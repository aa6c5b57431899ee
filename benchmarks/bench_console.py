"""What the web console costs the scheduler (a script, not a test).

A real :class:`SchedulerService` runs in-process on loopback listeners, with
``--hosts`` hosts announced straight into its state (a tenth of them with a peer, of
100 tasks; 3 % of them then evicted), while a churn task announces one more host
every 5 ms (about 200 changes a second). It measures:

* **summary**: the CPU time of one summary (what every console update carries), with
  10 hosts and with ``--hosts`` (built alike): it reads counters only, so the two
  should match;
* **loop lag**: a probe task sleeps 1 ms again and again and records how late each
  wake-up comes, first with no console and then with ``--streams`` console streams
  open (real WebSocket clients that acknowledge every update, as the page does);
* **updates**: how many updates each stream received per second, and their size;
* **a refresh**: the answers the page reads after an update (a page of 50 hosts, a
  page of 50 tasks, 100 recent evictions), timed from a client thread.

    python benchmarks/bench_console.py                  # 10,000 hosts, 8 streams
    python benchmarks/bench_console.py --hosts 100000 --streams 8
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
import urllib.request
from collections.abc import Sequence

import orjson
import trio
from trio_websocket import WebSocketConnection, wrap_client_stream

from scheduler.core import HostInfo, TaskInfo
from scheduler.service import SchedulerService, ServiceConfig
from scheduler.service._console import STREAM_PATH


def quantile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def populate(service: SchedulerService, hosts: int) -> None:
    """``hosts`` hosts; a tenth of them with a peer (of up to 100 tasks); 3 % evicted."""
    now = trio.current_time()
    for n in range(hosts):
        info = HostInfo(f"h{n}", f"10.{n // 62500}.{n // 250 % 250}.{n % 250 + 1}")
        service.state.announce_host(info, now, interval=3600.0)
    host_ids = sorted(h.id for h in service.state.view.hosts())
    for n, host_id in enumerate(host_ids[: max(1, hosts // 10)]):
        service.state.register_peer(f"p{n}", host_id, TaskInfo(f"t{n % 100}"), now)
    for host_id in host_ids[-max(1, hosts * 3 // 100) :]:
        service.evict_host(host_id)


def summary_cost(service: SchedulerService, rounds: int = 2000) -> tuple[float, float]:
    """Median and 99th percentile CPU time of one summary, in microseconds."""
    times = []
    for _ in range(rounds):
        started = time.thread_time()
        service.summary()
        times.append((time.thread_time() - started) * 1e6)
    return statistics.median(times), quantile(times, 0.99)


async def probe_lag(seconds: float) -> list[float]:
    lags = []
    deadline = trio.current_time() + seconds
    while trio.current_time() < deadline:
        before = trio.current_time()
        await trio.sleep(0.001)
        lags.append((trio.current_time() - before - 0.001) * 1000)
    return lags


async def churn(service: SchedulerService, stop: trio.Event) -> None:
    n = 0
    while not stop.is_set():
        info = HostInfo(f"churn{n}", f"172.16.{n // 250 % 250}.{n % 250 + 1}")
        service.state.announce_host(info, trio.current_time(), interval=3600.0)
        n += 1
        await trio.sleep(0.005)


async def console_client(
    address: tuple[str, int],
    counts: list[int],
    sizes: list[int],
    index: int,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    host, port = address
    stream = await trio.open_tcp_stream(host, port)
    async with stream, trio.open_nursery() as nursery:
        ws: WebSocketConnection = await wrap_client_stream(
            nursery, stream, f"{host}:{port}", STREAM_PATH
        )
        await ws.send_message(orjson.dumps({"type": "hello", "token": None}).decode())
        task_status.started()
        while True:
            text = await ws.get_message()
            message = orjson.loads(text)
            counts[index] += 1
            sizes.append(len(text))
            await ws.send_message(orjson.dumps({"type": "ack", "seq": message["seq"]}).decode())


def timed_get(url: str, rounds: int = 20) -> tuple[float, int]:
    """Median milliseconds of GET ``url`` and the answer's size."""
    times, size = [], 0
    for _ in range(rounds):
        started = time.perf_counter()
        with urllib.request.urlopen(url, timeout=30) as response:
            size = len(response.read())
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times), size


async def main(hosts: int, streams: int, seconds: float) -> None:
    config = ServiceConfig(port=0, admin_port=0, entrypoints=False, console_streams=streams)
    service = SchedulerService(config)
    async with trio.open_nursery() as nursery:
        _, admin = await nursery.start(lambda task_status: service.run(task_status=task_status))
        host, port = admin.removeprefix("http://").split(":")
        address = (host, int(port))

        few = SchedulerService(ServiceConfig(entrypoints=False))
        populate(few, 10)
        populate(service, hosts)
        for label, measured in (("10 hosts", few), (f"{hosts:,} hosts", service)):
            median, p99 = summary_cost(measured)
            print(f"summary, CPU per call, {label}: {median:.1f} us median, {p99:.1f} us p99")

        stop = trio.Event()
        nursery.start_soon(churn, service, stop)
        lag_without = await probe_lag(seconds)

        counts = [0] * streams
        sizes: list[int] = []
        async with trio.open_nursery() as clients:
            for index in range(streams):
                await clients.start(console_client, address, counts, sizes, index)
            await service.console.wait_open(streams)
            counts[:] = [0] * streams
            lag_with = await probe_lag(seconds)
            received = list(counts)
            clients.cancel_scope.cancel()
        for label, lags in (("no console", lag_without), (f"{streams} streams", lag_with)):
            print(
                f"loop lag, {label:>11}: median {statistics.median(lags):.2f} ms, "
                f"p99 {quantile(lags, 0.99):.2f} ms, max {max(lags):.2f} ms ({len(lags)} probes)"
            )
        rates = [n / seconds for n in received]
        print(
            f"updates per stream: {min(rates):.2f} to {max(rates):.2f} per second under "
            f"{1 / 0.005:.0f} changes per second; {statistics.median(sizes):.0f} bytes each"
        )
        stop.set()

        for path in (
            "/api/v1/hosts?limit=50",
            "/api/v1/tasks?limit=50",
            "/api/v1/evictions?kind=host&limit=100",
            "/api/v1/summary",
        ):
            ms, size = await trio.to_thread.run_sync(timed_get, f"{admin}{path}")
            print(f"refresh GET {path}: {ms:.1f} ms median, {size:,} bytes")
        nursery.cancel_scope.cancel()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, default=10_000)
    parser.add_argument("--streams", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()
    print(
        f"{platform.python_implementation()} {platform.python_version()}, "
        f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}"
    )
    trio.run(main, args.hosts, args.streams, args.seconds)
