"""The built-in policies under the plugin-author kit's state machine."""

from __future__ import annotations

from scheduler.testing import SchedulerStateMachine


class BuiltinPoliciesMachine(SchedulerStateMachine):
    """Default plugin list, default config."""


class ShortTimersMachine(SchedulerStateMachine):
    """Short TTLs so that every kind of deadline fires within a run."""

    config = {
        "announce_ttl": {"host_ttl": "30s"},
        "disconnect_grace": {"reconnect_grace": "1s"},
        "peer_lifetime": {"peer_ttl": "5m", "piece_timeout": "20s", "failed_peer_ttl": "2s"},
        "task_idle": {"task_idle_ttl": "0s"},
        "capacity": {"max_peers_per_task": 2},
    }
    sweep_interval = 5.0


TestBuiltinPolicies = BuiltinPoliciesMachine.TestCase
TestShortTimers = ShortTimersMachine.TestCase
