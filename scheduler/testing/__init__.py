"""The kit for plugin authors: strategies, a simulation, a state machine, and checks.

Every eviction policy, built-in or third-party, is tested with the same kit
(the model is chihaya's shared storage conformance suite). Requires the
``testing`` extra (Hypothesis).
"""

from ._coverage import MIN_RUNS_WITH_PARENTS as MIN_RUNS_WITH_PARENTS
from ._coverage import Coverage as Coverage
from ._coverage import RunStats as RunStats
from ._coverage import measure_coverage as measure_coverage
from ._decisions import InvariantError as InvariantError
from ._decisions import PushCheck as PushCheck
from ._decisions import ancestors as ancestors
from ._decisions import check_decision as check_decision
from ._decisions import check_decisions as check_decisions
from ._decisions import parent_problems as parent_problems
from ._machine import SchedulerStateMachine as SchedulerStateMachine
from ._profiles import PROFILES as PROFILES
from ._profiles import load_profile_from_env as load_profile_from_env
from ._settings_check import bad_values as bad_values
from ._settings_check import check_plugin_settings as check_plugin_settings
from ._simulation import CASCADE_REASONS as CASCADE_REASONS
from ._simulation import Simulation as Simulation
from ._simulation import register_task as register_task
from ._strategies import ELAPSE_SECONDS as ELAPSE_SECONDS
from ._strategies import HOSTNAMES as HOSTNAMES
from ._strategies import PEER_ACTIONS as PEER_ACTIONS
from ._strategies import SILENCE_SECONDS as SILENCE_SECONDS
from ._strategies import Advance as Advance
from ._strategies import Announce as Announce
from ._strategies import Crash as Crash
from ._strategies import DownloadSwarm as DownloadSwarm
from ._strategies import Elapse as Elapse
from ._strategies import EveryoneObeys as EveryoneObeys
from ._strategies import Hang as Hang
from ._strategies import HostProfile as HostProfile
from ._strategies import Leave as Leave
from ._strategies import NextAnnounce as NextAnnounce
from ._strategies import PeerStep as PeerStep
from ._strategies import Pong as Pong
from ._strategies import RegisterPeer as RegisterPeer
from ._strategies import ReportFailedParent as ReportFailedParent
from ._strategies import Step as Step
from ._strategies import Swarm as Swarm
from ._strategies import Sweep as Sweep
from ._strategies import announce_schedules as announce_schedules
from ._strategies import event_streams as event_streams
from ._strategies import host_fleets as host_fleets
from ._strategies import host_infos as host_infos
from ._strategies import host_profiles as host_profiles
from ._strategies import hostnames as hostnames
from ._strategies import intervals as intervals
from ._strategies import ip_literals as ip_literals
from ._strategies import ips as ips
from ._strategies import piece_costs as piece_costs
from ._strategies import rfc1123_hostnames as rfc1123_hostnames
from ._strategies import steps as steps
from ._strategies import task_infos as task_infos

__all__ = [
    "CASCADE_REASONS",
    "ELAPSE_SECONDS",
    "HOSTNAMES",
    "MIN_RUNS_WITH_PARENTS",
    "PEER_ACTIONS",
    "PROFILES",
    "SILENCE_SECONDS",
    "Advance",
    "Announce",
    "Coverage",
    "Crash",
    "DownloadSwarm",
    "Elapse",
    "EveryoneObeys",
    "Hang",
    "HostProfile",
    "InvariantError",
    "Leave",
    "NextAnnounce",
    "PeerStep",
    "Pong",
    "PushCheck",
    "RegisterPeer",
    "ReportFailedParent",
    "RunStats",
    "SchedulerStateMachine",
    "Simulation",
    "Step",
    "Swarm",
    "Sweep",
    "ancestors",
    "announce_schedules",
    "bad_values",
    "check_decision",
    "check_decisions",
    "check_plugin_settings",
    "event_streams",
    "host_fleets",
    "host_infos",
    "host_profiles",
    "hostnames",
    "intervals",
    "ip_literals",
    "ips",
    "load_profile_from_env",
    "measure_coverage",
    "parent_problems",
    "piece_costs",
    "register_task",
    "rfc1123_hostnames",
    "steps",
    "task_infos",
]
