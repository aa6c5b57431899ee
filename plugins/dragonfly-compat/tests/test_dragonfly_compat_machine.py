"""``dragonfly_compat`` under the plugin-author kit's state machine."""

from __future__ import annotations

from collections.abc import Sequence

import pytest
from scheduler_dragonfly_compat import DragonflyCompat

from scheduler.policies import builtin_plugins
from scheduler.testing import SchedulerStateMachine, measure_coverage


class DragonflyCompatMachine(SchedulerStateMachine):
    """The built-ins plus dragonfly_compat, which blocks the four it replaces."""

    @classmethod
    def make_plugins(cls) -> Sequence[object]:
        return [*builtin_plugins(), DragonflyCompat()]


class DragonflyShortTimersMachine(DragonflyCompatMachine):
    """Short TTLs and sweep periods, so that every kind of deadline fires within a run."""

    config = {
        "dragonfly_compat": {
            "host_sweep_interval": "20s",
            "host_ttl": "45s",
            "peer_sweep_interval": "2s",
            "peer_ttl": "5m",
            "piece_timeout": "20s",
            "task_sweep_interval": "7s",
        },
        "capacity": {"max_peers_per_task": 2},
    }
    sweep_interval = 5.0


TestDragonflyCompat = DragonflyCompatMachine.TestCase
TestDragonflyShortTimers = DragonflyShortTimersMachine.TestCase


@pytest.mark.parametrize("machine", [DragonflyCompatMachine, DragonflyShortTimersMachine])
def test_the_machine_hands_out_parents_and_never_pushes(
    machine: type[DragonflyCompatMachine],
) -> None:
    """Most runs schedule, so decisions are checked; dragonfly_compat disables pushes."""
    coverage = measure_coverage(machine)
    coverage.check(pushes=False)
    assert coverage.share("evictions") > 0
