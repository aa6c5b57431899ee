"""A restarted scheduler and the reference peer: ``boot_id`` and the jittered backoff.

* :class:`BootWatch` decides, from ``host_accepted``'s ``boot_id``, whether a
  reconnect talks to the same scheduler process (ask where each peer stands) or
  to a restarted one (register every running peer again, at once);
* the real service on loopback is stopped and started again on the same port
  under a running :func:`run_peer`, which re-registers its peers on the new
  process without a ``conflict`` round trip;
* the backoff's spread, measured with a seeded random source.
"""

from __future__ import annotations

import functools
import logging
import random
import statistics
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager

import attrs
import pytest
import trio

from scheduler.client import Backoff, BootWatch, PeerConfig, Resume, run_peer
from scheduler.protocol import TaskPayload
from scheduler.service import SchedulerService
from scheduler.session import EndCause
from tests.service_support import LOOPBACK
from tests.test_client import Changes

# --- BootWatch --------------------------------------------------------------------------


def test_the_first_session_registers() -> None:
    watch = BootWatch()
    assert watch.accepted("a") is Resume.REGISTER
    assert (watch.boot_id, watch.restarts) == ("a", 0)


def test_the_same_boot_id_resumes_and_a_new_one_registers_again() -> None:
    watch = BootWatch()
    watch.accepted("a")
    assert watch.accepted("a") is Resume.RESCHEDULE
    assert watch.accepted("b") is Resume.REGISTER
    assert watch.restarts == 1
    assert watch.accepted("b") is Resume.RESCHEDULE


def test_a_scheduler_that_sends_no_boot_id_is_always_registered_with() -> None:
    watch = BootWatch()
    assert watch.accepted(None) is Resume.REGISTER
    assert watch.accepted(None) is Resume.REGISTER
    assert watch.accepted("a") is Resume.REGISTER
    assert watch.restarts == 0


# --- a restart on loopback --------------------------------------------------------------


@attrs.define(eq=False)
class PeerLog(logging.Handler):
    lines: list[str] = attrs.Factory(list)
    changes: Changes = attrs.Factory(Changes)

    def __attrs_post_init__(self) -> None:
        super().__init__(logging.INFO)

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())
        self.changes.notify()

    def count(self, prefix: str) -> int:
        return sum(line.startswith(prefix) for line in self.lines)


@pytest.fixture
def peer_log() -> Iterator[PeerLog]:
    logger = logging.getLogger("scheduler.peer")
    handler, level = PeerLog(), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


@asynccontextmanager
async def scheduler_on(port: int) -> AsyncIterator[SchedulerService]:
    service = SchedulerService(attrs.evolve(LOOPBACK, port=port))
    async with trio.open_nursery() as nursery:
        await nursery.start(lambda task_status: service.run(task_status=task_status))
        yield service
        nursery.cancel_scope.cancel()


def messages(service: SchedulerService, kind: str) -> float:
    value = service.metrics.registry.get_sample_value("scheduler_messages_total", {"type": kind})
    return 0.0 if value is None else value


TASKS = ("http://origin.test/a", "http://origin.test/b", "http://origin.test/c")
PEER_IDS = [f"127.0.0.1-node-1/{TaskPayload(url=url).task_id[:16]}" for url in TASKS]


def peer_config(url: str) -> PeerConfig:
    return PeerConfig(
        scheduler_url=url,
        hostname="node-1",
        port=8002,
        download_port=8001,
        backoff_base=0.01,
        backoff_cap=0.05,
        tasks=TASKS,
    )


def port_of(url: str) -> int:
    return int(url.rsplit(":", 1)[1].split("/", maxsplit=1)[0])


async def test_a_reconnect_to_the_same_scheduler_asks_where_the_peers_stand(
    peer_log: PeerLog,
) -> None:
    shutdown = trio.Event()
    with trio.fail_after(20):
        async with scheduler_on(0) as service, trio.open_nursery() as nursery:
            # Returns once announced and the peers are registered.
            await nursery.start(
                functools.partial(run_peer, peer_config(service.ws_url), shutdown=shutdown)
            )
            assert all(service.state.has_peer(p) for p in PEER_IDS)
            for session in list(service.sessions):
                session.end(EndCause.SHUTDOWN)
            await peer_log.changes.wait_until(
                lambda: peer_log.count("announced as") == 2 and peer_log.count("task ") == 6
            )
            assert messages(service, "register_peer") == 3
            assert messages(service, "reschedule") == 3
            assert peer_log.count("the scheduler restarted") == 0
            shutdown.set()


async def test_the_peer_registers_again_at_once_on_a_new_boot_id(peer_log: PeerLog) -> None:
    shutdown = trio.Event()
    with trio.fail_after(20):
        async with trio.open_nursery() as outer:
            first_scope = trio.CancelScope()
            first_ready: list[SchedulerService] = []

            async def run_first(task_status: trio.TaskStatus[None]) -> None:
                with first_scope:
                    async with scheduler_on(0) as service:
                        first_ready.append(service)
                        task_status.started()
                        await trio.sleep_forever()

            await outer.start(run_first)
            (first,) = first_ready
            await outer.start(
                functools.partial(run_peer, peer_config(first.ws_url), shutdown=shutdown)
            )
            assert all(first.state.has_peer(p) for p in PEER_IDS)

            # The scheduler process goes away with its state, and a new one starts.
            first_scope.cancel()
            async with scheduler_on(port_of(first.ws_url)) as second:
                assert second.boot_id != first.boot_id
                await peer_log.changes.wait_until(lambda: peer_log.count("task ") == 6)
                assert peer_log.count("the scheduler restarted") == 1
                assert all(second.state.has_peer(p) for p in PEER_IDS)
                # Registered directly: no conflict, no reschedule on the new process.
                assert messages(second, "register_peer") == 3
                assert messages(second, "reschedule") == 0
                shutdown.set()


# --- the backoff's spread -----------------------------------------------------------------


def test_each_delay_is_spread_uniformly_over_its_window() -> None:
    """Full jitter: the delay at each attempt is uniform on ``[0, ceiling]``."""
    rng = random.Random(9)
    for attempt in range(8):
        draws = []
        for _ in range(10_000):
            backoff = Backoff(base=0.1, cap=5.0, uniform=rng.uniform)
            for _ in range(attempt):
                backoff.next_delay()
            ceiling = backoff.ceiling()
            draws.append(backoff.next_delay())
        assert ceiling == min(5.0, 0.1 * 2**attempt)
        assert min(draws) >= 0.0
        assert max(draws) <= ceiling
        assert statistics.fmean(draws) == pytest.approx(ceiling / 2, rel=0.03)
        assert statistics.pstdev(draws) == pytest.approx(ceiling / 12**0.5, rel=0.03)
        deciles = Counter(min(9, int(10 * d / ceiling)) for d in draws)
        assert all(850 <= deciles[i] <= 1_150 for i in range(10)), deciles


def reconnect_times(
    clients: int, back_at: float, uniform: Callable[[float, float], float]
) -> list[float]:
    """When each client gets back in, if the scheduler is down from 0 to ``back_at``.

    Every client lost its session at 0 and retries after each backoff delay; an
    attempt before ``back_at`` is refused at once (a session that lasted 0 s).
    """
    times = []
    for _ in range(clients):
        backoff = Backoff(base=0.1, cap=5.0, uniform=uniform)
        t = 0.0
        while t < back_at:
            backoff.session_ended(0.0)
            t += backoff.next_delay()
        times.append(t)
    return times


def peak_per_100ms(times: list[float]) -> int:
    return max(Counter(int(t / 0.1) for t in times).values())


@pytest.mark.parametrize("seed", [0, 3])
def test_a_restart_does_not_bring_every_client_back_at_once(seed: int) -> None:
    """1,000 clients, the scheduler back after 2 s: the reconnects spread over seconds."""
    rng = random.Random(seed)
    jittered = reconnect_times(1_000, 2.0, rng.uniform)
    print(f"seed {seed}: peak {peak_per_100ms(jittered)} reconnects per 100 ms")
    assert peak_per_100ms(jittered) <= 150
    assert max(jittered) - 2.0 <= 5.0  # nobody waits longer than the cap
    assert statistics.median(jittered) - 2.0 >= 0.5
    # Without jitter every client would come back in the same instant.
    herd = reconnect_times(1_000, 2.0, lambda low, high: high)
    assert peak_per_100ms(herd) == 1_000
