"""``dragonfly_compat`` under the plugin-author kit's state machine."""

from __future__ import annotations

from collections.abc import Sequence

from scheduler_dragonfly_compat import DragonflyCompat

from scheduler.policies import builtin_plugins
from scheduler.testing import SchedulerStateMachine


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
