"""The churn simulator (``scheduler simulate``): the real core in deterministic virtual time.

Sans-IO like the core: no trio, no sockets. A discrete-event queue drives the
real :class:`~scheduler.core.SchedulerState`, the real policies and the
evaluator through a workload drawn from a seed (hosts joining, announcing,
downloading tasks of Zipf popularity from the parents they are given, and
leaving, crashing, hanging or going silent). The ground truth of who is alive
is the simulator's alone; the scheduler learns only what a real service would.
"""

from ._cli import add_simulate_parser as add_simulate_parser
from ._cli import cmd_simulate as cmd_simulate
from ._engine import ChurnSimulation as ChurnSimulation
from ._metrics import CAUSES as CAUSES
from ._metrics import SetResult as SetResult
from ._metrics import percentile as percentile
from ._queue import EventQueue as EventQueue
from ._report import results_table as results_table
from ._report import write_json as write_json
from ._report import write_plot as write_plot
from ._runner import simulate as simulate
from ._scenario import POLICY_SETS as POLICY_SETS
from ._scenario import PolicySetSpec as PolicySetSpec
from ._scenario import Scenario as Scenario
from ._scenario import ping_detection_at as ping_detection_at
from ._workload import Cause as Cause
from ._workload import HostPlan as HostPlan
from ._workload import ZipfSampler as ZipfSampler
from ._workload import build_workload as build_workload

__all__ = [
    "CAUSES",
    "POLICY_SETS",
    "Cause",
    "ChurnSimulation",
    "EventQueue",
    "HostPlan",
    "PolicySetSpec",
    "Scenario",
    "SetResult",
    "ZipfSampler",
    "add_simulate_parser",
    "build_workload",
    "cmd_simulate",
    "percentile",
    "ping_detection_at",
    "results_table",
    "simulate",
    "write_json",
    "write_plot",
]
