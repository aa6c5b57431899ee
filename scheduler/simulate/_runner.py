"""Run the policy sets side by side: same seed, same workload, one result per set and churn."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import attrs

from ._engine import ChurnSimulation
from ._metrics import SetResult
from ._scenario import POLICY_SETS, PolicySetSpec, Scenario
from ._workload import build_workload


def simulate(
    scenario: Scenario,
    policies: Sequence[str | PolicySetSpec] = tuple(POLICY_SETS),
    churn: Sequence[float] = (),
    *,
    progress: Callable[[SetResult], None] | None = None,
) -> list[SetResult]:
    """Every policy set at every crash rate in ``churn`` (default: the scenario's own).

    A policy set is a name of :data:`POLICY_SETS` or a :class:`PolicySetSpec` of one's
    own (``scheduler simulate --policy-set``). The workload of one crash rate is drawn
    once from the seed and replayed for each policy set, so the sets differ only in
    the scheduler they run.
    """
    unknown = [p for p in policies if isinstance(p, str) and p not in POLICY_SETS]
    if unknown:
        raise ValueError(f"unknown policy set(s) {unknown}; known: {list(POLICY_SETS)}")
    specs = [POLICY_SETS[p] if isinstance(p, str) else p for p in policies]
    results: list[SetResult] = []
    for rate in churn or (scenario.crash_rate,):
        at_rate = attrs.evolve(scenario, crash_rate=rate)
        plans = build_workload(at_rate)
        for spec in specs:
            result = ChurnSimulation(at_rate, spec, plans).run()
            results.append(result)
            if progress is not None:
                progress(result)
    return results
