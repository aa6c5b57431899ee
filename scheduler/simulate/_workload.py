"""The exogenous workload, drawn once from the seed and replayed for every policy set.

Who joins when, who dies how and when, and which task each host asks for at
which time do not depend on the scheduler's decisions, so every policy set
faces exactly the same churn and the same requests.
"""

from __future__ import annotations

import bisect
import enum
import heapq
import itertools
import math
import random
from collections.abc import Sequence
from typing import final

import attrs

from ._scenario import Scenario


class Cause(enum.StrEnum):
    """How a host goes (the ground truth; the scheduler is never told which)."""

    CRASH = "crash"
    HANG = "hang"
    LEAVE = "leave"
    STALE = "stale"  # stopped announcing (and serving), session kept


@final
@attrs.frozen
class Death:
    at: float
    cause: Cause


@final
@attrs.frozen
class Request:
    """A host asks for a task (index into the task list) at ``at``."""

    at: float
    task: int


@final
@attrs.frozen(kw_only=True)
class HostPlan:
    """One host incarnation: when it joins, what it requests, how it goes."""

    index: int
    hostname: str
    ip: str
    seed: bool
    joined_at: float
    death: Death | None
    requests: tuple[Request, ...]
    speed: float
    """Piece time multiplier of its uploads (1: the scenario's piece_time)."""
    idc: str
    location: str


class ZipfSampler:
    """Draws task indexes ``0..n-1`` with weight ``1 / (k + 1) ** s``, O(log n) per draw."""

    def __init__(self, n: int, exponent: float) -> None:
        if n < 1:
            raise ValueError("need at least one task")
        self._cumulative = list(itertools.accumulate(1.0 / (k + 1) ** exponent for k in range(n)))

    def __len__(self) -> int:
        return len(self._cumulative)

    def draw(self, rng: random.Random) -> int:
        total = self._cumulative[-1]
        index = bisect.bisect_right(self._cumulative, rng.random() * total)
        return min(index, len(self._cumulative) - 1)


def draw_death(rng: random.Random, joined_at: float, scenario: Scenario) -> Death | None:
    """Competing risks: each cause's exponential clock; the first within the run wins."""
    rates = (
        (Cause.CRASH, scenario.crash_rate),
        (Cause.HANG, scenario.hang_rate),
        (Cause.LEAVE, scenario.leave_rate),
        (Cause.STALE, scenario.stop_rate),
    )
    first: Death | None = None
    for cause, per_hour in rates:
        # Always draw, so that a zero rate does not shift the other draws.
        u = rng.random()
        if per_hour <= 0:
            continue
        at = joined_at + rng_exponential(u, per_hour / 3600.0)
        if at < scenario.duration and (first is None or at < first.at):
            first = Death(at, cause)
    return first


def rng_exponential(u: float, rate: float) -> float:
    """The exponential quantile of a uniform draw ``u`` in [0, 1)."""
    return -math.log(1.0 - u) / rate


def _requests(
    rng: random.Random, joined_at: float, until: float, scenario: Scenario, tasks: ZipfSampler
) -> tuple[Request, ...]:
    out: list[Request] = []
    at = joined_at + rng.expovariate(1.0 / scenario.request_interval)
    while at < until:
        out.append(Request(at, tasks.draw(rng)))
        at += rng.expovariate(1.0 / scenario.request_interval)
    return tuple(out)


def build_workload(scenario: Scenario) -> list[HostPlan]:
    """Every host incarnation of the run, ordered by join time then index.

    The initial hosts join over the first minute (seeds at once); each normal
    host that goes is replaced by a new one (new id) after an exponential delay
    of mean ``rejoin_delay``, so the population stays about constant. Seeds never churn.
    """
    rng = random.Random(scenario.seed)
    tasks = ZipfSampler(scenario.tasks, scenario.zipf_exponent)
    plans: list[HostPlan] = []
    pending: list[tuple[float, int]] = [
        (0.0 if i < scenario.seeds else rng.uniform(0.0, 60.0), i) for i in range(scenario.hosts)
    ]
    heapq.heapify(pending)
    counter = itertools.count()
    while pending:
        joined_at, slot = heapq.heappop(pending)
        index = next(counter)
        seed = slot < scenario.seeds
        death = None if seed else draw_death(rng, joined_at, scenario)
        until = scenario.duration if death is None else death.at
        requests = () if seed else _requests(rng, joined_at, until, scenario, tasks)
        speed = 1.0 if seed else rng.lognormvariate(0.0, 0.25)
        idc = rng.randrange(scenario.idcs)
        plans.append(
            HostPlan(
                index=index,
                hostname=f"{'seed' if seed else 'host'}-{index}",
                ip=f"10.{index >> 16 & 255}.{index >> 8 & 255}.{index & 255}",
                seed=seed,
                joined_at=joined_at,
                death=death,
                requests=requests,
                speed=speed,
                idc=f"idc-{idc}",
                location=f"region-{idc % 2}|zone-{idc}|rack-{rng.randrange(8)}",
            )
        )
        if death is not None:
            again = death.at + rng.expovariate(1.0 / scenario.rejoin_delay)
            if again < scenario.duration:
                heapq.heappush(pending, (again, slot))
    return sorted(plans, key=lambda p: (p.joined_at, p.index))


def task_ids(scenario: Scenario) -> Sequence[str]:
    """Task ids, most popular first."""
    return [f"task-{k:04d}" for k in range(scenario.tasks)]
