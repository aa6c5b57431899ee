"""``phi_accrual`` under the plugin-author kit's state machine."""

from __future__ import annotations

from collections.abc import Sequence

import pytest
from scheduler_phi_accrual import PhiAccrual

from scheduler.policies import builtin_plugins
from scheduler.testing import SchedulerStateMachine, measure_coverage


class PhiAccrualMachine(SchedulerStateMachine):
    """The built-ins plus the detector, at its defaults."""

    @classmethod
    def make_plugins(cls) -> Sequence[object]:
        return [*builtin_plugins(), PhiAccrual()]


class TwitchyPhiAccrualMachine(PhiAccrualMachine):
    """A low threshold and a tiny window, so that the detector fires within a run."""

    config = {
        "phi_accrual": {
            "threshold": 1.0,
            "min_std_deviation": "100ms",
            "max_samples": 4,
            "min_samples": 1,
        },
        "announce_ttl": {"host_ttl": "30s"},
        "disconnect_grace": {"reconnect_grace": "1s"},
        "peer_lifetime": {"peer_ttl": "5m", "piece_timeout": "20s", "failed_peer_ttl": "2s"},
        "task_idle": {"task_idle_ttl": "0s"},
    }
    sweep_interval = 5.0


TestPhiAccrual = PhiAccrualMachine.TestCase
TestTwitchyPhiAccrual = TwitchyPhiAccrualMachine.TestCase


@pytest.mark.parametrize("machine", [PhiAccrualMachine, TwitchyPhiAccrualMachine])
def test_the_machine_hands_out_parents_and_pushes(machine: type[PhiAccrualMachine]) -> None:
    """Most runs schedule, and some push, so decisions and pushes are checked."""
    coverage = measure_coverage(machine)
    coverage.check()
    assert coverage.share("evictions") > 0
