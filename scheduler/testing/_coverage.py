"""What a kit run reached: decisions with parents, pushes, failed-parent reports, evictions.

A state machine that never hands out a parent checks no decision. :func:`measure`
runs a machine over a profile's worth of examples and counts, per run, what its
:class:`~._simulation.Simulation` reached; :meth:`Coverage.check` fails when too
few runs hand out parents or no run pushes, so a machine (or a plugin's config)
that stops reaching the scheduler is a failing test, not a silent one.
"""

from __future__ import annotations

from typing import Any, Final, final

import attrs
from hypothesis import HealthCheck, Phase, event, settings
from hypothesis.stateful import RuleBasedStateMachine, run_state_machine_as_test

from ..core import PeerScheduled, ScheduleAction
from ._decisions import InvariantError
from ._simulation import Simulation

#: The share of runs that must hand out parents for :meth:`Coverage.check` to pass.
MIN_RUNS_WITH_PARENTS: Final = 0.8


@final
@attrs.frozen
class RunStats:
    """What one run (one example) of a simulation reached."""

    #: Decisions the core made (answers and pushes).
    decisions: int
    #: Decisions that handed out at least one parent.
    with_parents: int
    #: Decisions pushed to a child that lost a parent.
    pushes: int
    #: ``reschedule`` requests that named a failed parent the peer had been handed.
    failed_parent_reports: int
    #: Records the GC, a sweep, a leave or a supersede removed.
    evictions: int

    @classmethod
    def of(cls, sim: Simulation) -> RunStats:
        decisions = [e for e in sim.events if isinstance(e, PeerScheduled)]
        return cls(
            decisions=len(decisions),
            with_parents=sum(1 for e in decisions if e.decision.action is ScheduleAction.PARENTS),
            pushes=sum(1 for e in decisions if e.pushed),
            failed_parent_reports=sim.failed_parent_reports,
            evictions=len(sim.evictions),
        )


@final
@attrs.frozen
class Coverage:
    """The :class:`RunStats` of every run of a measurement."""

    name: str
    runs: tuple[RunStats, ...]

    def share(self, field: str) -> float:
        """The share of runs in which ``field`` (a :class:`RunStats` count) is non-zero."""
        if not self.runs:
            return 0.0
        return sum(1 for run in self.runs if getattr(run, field) > 0) / len(self.runs)

    def mean(self, field: str) -> float:
        """The mean of ``field`` per run."""
        return sum(getattr(run, field) for run in self.runs) / len(self.runs) if self.runs else 0.0

    def summary(self) -> str:
        """One line per count: the share of runs that reached it, and the mean per run."""
        lines = [f"{self.name}: {len(self.runs)} runs"]
        for field in attrs.fields(RunStats):
            lines.append(
                f"  {field.name:<22} in {100 * self.share(field.name):5.1f} % of runs, "
                f"{self.mean(field.name):7.1f} per run"
            )
        return "\n".join(lines)

    def check(
        self, min_with_parents: float = MIN_RUNS_WITH_PARENTS, *, pushes: bool = True
    ) -> None:
        """Raise :class:`InvariantError` unless ``min_with_parents`` of the runs hand out
        parents and at least one run pushes.

        Pass ``pushes=False`` for a policy set that disables proactive pushes: then a
        run that pushes is the failure.
        """
        problems = []
        if self.share("with_parents") < min_with_parents:
            problems.append(
                f"only {100 * self.share('with_parents'):.0f} % of the runs hand out parents "
                f"(at least {100 * min_with_parents:.0f} % must)"
            )
        pushing = sum(1 for run in self.runs if run.pushes)
        if pushes and not pushing:
            problems.append("no run pushes a decision to a child that lost a parent")
        elif not pushes and pushing:
            problems.append(f"{pushing} runs push, but the policies disable pushes")
        if problems:
            raise InvariantError("; ".join(problems) + "\n" + self.summary())


def measure_coverage(
    machine: type[RuleBasedStateMachine], *, examples: settings | None = None
) -> Coverage:
    """Run ``machine`` and count what each run's ``self.sim`` reached.

    ``machine`` is a :class:`~._machine.SchedulerStateMachine` subclass, or any
    rule-based machine that keeps its :class:`~._simulation.Simulation` in ``self.sim``.
    By default it runs as many examples and steps as the loaded Hypothesis profile. The
    examples are derandomized (the same ones at every run of the same code, so a check
    on them is never flaky), not shrunk, and not saved to the example database.
    """
    runs: list[RunStats] = []

    def teardown(self: Any) -> None:
        sim = getattr(self, "sim", None)
        if isinstance(sim, Simulation):
            runs.append(RunStats.of(sim))
        machine.teardown(self)

    measured = type(machine.__name__, (machine,), {"teardown": teardown})
    base = examples if examples is not None else settings()
    run_state_machine_as_test(
        measured,
        settings=settings(
            base,
            database=None,
            derandomize=True,
            phases=[Phase.generate],
            deadline=None,
            suppress_health_check=[*base.suppress_health_check, HealthCheck.too_slow],
        ),
    )
    return Coverage(machine.__name__, tuple(runs))


#: Buckets of a count in the statistics Hypothesis prints.
_BUCKETS: Final = ((0, "0"), (1, "1-4"), (5, "5-19"), (20, "20+"))


def report(stats: RunStats) -> None:
    """Tell Hypothesis what a run reached: an ``event()`` per count (bucketed), so that
    ``pytest --hypothesis-show-statistics`` prints the share of runs in each bucket."""
    for field in attrs.fields(RunStats):
        count = getattr(stats, field.name)
        bucket = next(label for low, label in reversed(_BUCKETS) if count >= low)
        event(f"{field.name.replace('_', ' ')}: {bucket}")
