"""Fixtures of the chaos suite: the processes of a scenario, and the figures it prints.

``CHAOS_SCALE`` (see :mod:`tests.chaos.cluster`) sizes the scenarios; every figure a
scenario records is printed at the end of the run, one table per scenario.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .cluster import SCALE, Cluster, new_workdir

#: (scenario, figure, value) in the order recorded; printed by pytest_terminal_summary.
FIGURES: list[tuple[str, str, str]] = []


class Figures:
    """What one scenario measured: ``figures.add("detection p100", "12 ms")``."""

    def __init__(self, scenario: str) -> None:
        self.scenario = scenario

    def add(self, figure: str, value: object) -> None:
        FIGURES.append((self.scenario, figure, str(value)))


@pytest.fixture
def figures(request: pytest.FixtureRequest) -> Figures:
    return Figures(request.node.name)


@pytest.fixture
def cluster() -> Iterator[Cluster]:
    """The scenario's processes; all of them killed and reaped at the end."""
    procs = Cluster(new_workdir())
    try:
        yield procs
    finally:
        procs.stop_all()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not FIGURES:
        return
    terminalreporter.section(f"chaos suite figures (CHAOS_SCALE={SCALE:g})")
    width = max(len(figure) for _, figure, _ in FIGURES)
    scenario = None
    for name, figure, value in FIGURES:
        if name != scenario:
            scenario = name
            terminalreporter.write_line(name)
        terminalreporter.write_line(f"  {figure:<{width}}  {value}")
