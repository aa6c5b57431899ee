"""The kit for plugin authors: strategies, a simulation harness, a state machine, a settings check.

Every eviction policy, built-in or third-party, is tested with the same kit
(the model is chihaya's shared storage conformance suite). Requires the
``testing`` extra (Hypothesis).
"""

from ._machine import SchedulerStateMachine as SchedulerStateMachine
from ._profiles import PROFILES as PROFILES
from ._profiles import load_profile_from_env as load_profile_from_env
from ._settings_check import bad_values as bad_values
from ._settings_check import check_plugin_settings as check_plugin_settings
from ._simulation import CASCADE_REASONS as CASCADE_REASONS
from ._simulation import InvariantError as InvariantError
from ._simulation import Simulation as Simulation
from ._simulation import register_task as register_task
from ._strategies import HOSTNAMES as HOSTNAMES
from ._strategies import PEER_ACTIONS as PEER_ACTIONS
from ._strategies import Advance as Advance
from ._strategies import Announce as Announce
from ._strategies import Crash as Crash
from ._strategies import Hang as Hang
from ._strategies import HostProfile as HostProfile
from ._strategies import Leave as Leave
from ._strategies import NextAnnounce as NextAnnounce
from ._strategies import PeerStep as PeerStep
from ._strategies import Pong as Pong
from ._strategies import RegisterPeer as RegisterPeer
from ._strategies import Step as Step
from ._strategies import Sweep as Sweep
from ._strategies import announce_schedules as announce_schedules
from ._strategies import event_streams as event_streams
from ._strategies import host_infos as host_infos
from ._strategies import host_profiles as host_profiles
from ._strategies import hostnames as hostnames
from ._strategies import intervals as intervals
from ._strategies import ips as ips
from ._strategies import steps as steps
from ._strategies import task_infos as task_infos

__all__ = [
    "CASCADE_REASONS",
    "HOSTNAMES",
    "PEER_ACTIONS",
    "PROFILES",
    "Advance",
    "Announce",
    "Crash",
    "Hang",
    "HostProfile",
    "InvariantError",
    "Leave",
    "NextAnnounce",
    "PeerStep",
    "Pong",
    "RegisterPeer",
    "SchedulerStateMachine",
    "Simulation",
    "Step",
    "Sweep",
    "announce_schedules",
    "bad_values",
    "check_plugin_settings",
    "event_streams",
    "host_infos",
    "host_profiles",
    "hostnames",
    "intervals",
    "ips",
    "load_profile_from_env",
    "register_task",
    "steps",
    "task_infos",
]
