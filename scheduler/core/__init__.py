"""The sans-IO core: model, lifecycles, one ledger per record kind, decisions and the GC engine.

Nothing here imports trio or does I/O. Every mutation takes ``now`` and
returns events; the service layer owns the clock and the sockets.
"""

from ._badnode import is_bad_node as is_bad_node
from ._bitset import PieceSet as PieceSet
from ._candidates import PARENT_STATES as PARENT_STATES
from ._config import parse_duration as parse_duration
from ._config import section_reader as section_reader
from ._deadlines import DeadlineQueue as DeadlineQueue
from ._decision import Decision as Decision
from ._decision import ScheduleAction as ScheduleAction
from ._decision import ScheduleCause as ScheduleCause
from ._decision import ScheduleLimits as ScheduleLimits
from ._driver import GcDriver as GcDriver
from ._driver import GcRun as GcRun
from ._errors import BackToSourceLimitReached as BackToSourceLimitReached
from ._errors import ConfigError as ConfigError
from ._errors import Conflict as Conflict
from ._errors import Forbidden as Forbidden
from ._errors import IllegalTransition as IllegalTransition
from ._errors import LimitExceeded as LimitExceeded
from ._errors import NotFound as NotFound
from ._errors import SchedulerError as SchedulerError
from ._events import ContactSource as ContactSource
from ._events import Event as Event
from ._events import Eviction as Eviction
from ._events import Expiry as Expiry
from ._events import HostDisconnected as HostDisconnected
from ._events import HostReconnected as HostReconnected
from ._events import HostRegistered as HostRegistered
from ._events import PeerRegistered as PeerRegistered
from ._events import PeerScheduled as PeerScheduled
from ._events import Reason as Reason
from ._events import SeedFetchRequested as SeedFetchRequested
from ._events import TaskCreated as TaskCreated
from ._events import Verdict as Verdict
from ._gc import DEFAULT_SWEEP_INTERVAL as DEFAULT_SWEEP_INTERVAL
from ._lifecycle import ACTIVE_PEER_STATES as ACTIVE_PEER_STATES
from ._lifecycle import HOST_TRANSITIONS as HOST_TRANSITIONS
from ._lifecycle import PEER_TRANSITIONS as PEER_TRANSITIONS
from ._lifecycle import RECEIVED_PEER_STATES as RECEIVED_PEER_STATES
from ._lifecycle import TASK_TRANSITIONS as TASK_TRANSITIONS
from ._lifecycle import HostEvent as HostEvent
from ._lifecycle import HostState as HostState
from ._lifecycle import PeerEvent as PeerEvent
from ._lifecycle import PeerState as PeerState
from ._lifecycle import TaskEvent as TaskEvent
from ._lifecycle import TaskState as TaskState
from ._lifecycle import transition as transition
from ._limits import RecordLimits as RecordLimits
from ._model import Host as Host
from ._model import HostInfo as HostInfo
from ._model import HostType as HostType
from ._model import Peer as Peer
from ._model import RecordKind as RecordKind
from ._model import Task as Task
from ._model import TaskInfo as TaskInfo
from ._model import host_id_for as host_id_for
from ._pipeline import CHILD_STATES as CHILD_STATES
from ._policy import PolicySet as PolicySet
from ._policy import new_plugin_manager as new_plugin_manager
from ._policy import plugin_name as plugin_name
from ._rendezvous import rendezvous_owner as rendezvous_owner
from ._results import Announced as Announced
from ._results import Scheduled as Scheduled
from ._results import ScheduledParent as ScheduledParent
from ._state import SchedulerState as SchedulerState
from ._view import StateView as StateView

__all__ = [
    "ACTIVE_PEER_STATES",
    "CHILD_STATES",
    "DEFAULT_SWEEP_INTERVAL",
    "HOST_TRANSITIONS",
    "PARENT_STATES",
    "PEER_TRANSITIONS",
    "RECEIVED_PEER_STATES",
    "TASK_TRANSITIONS",
    "Announced",
    "BackToSourceLimitReached",
    "ConfigError",
    "Conflict",
    "ContactSource",
    "DeadlineQueue",
    "Decision",
    "Event",
    "Eviction",
    "Expiry",
    "Forbidden",
    "GcDriver",
    "GcRun",
    "Host",
    "HostDisconnected",
    "HostEvent",
    "HostInfo",
    "HostReconnected",
    "HostRegistered",
    "HostState",
    "HostType",
    "IllegalTransition",
    "LimitExceeded",
    "NotFound",
    "Peer",
    "PeerEvent",
    "PeerRegistered",
    "PeerScheduled",
    "PeerState",
    "PieceSet",
    "PolicySet",
    "Reason",
    "RecordKind",
    "RecordLimits",
    "ScheduleAction",
    "ScheduleCause",
    "ScheduleLimits",
    "Scheduled",
    "ScheduledParent",
    "SchedulerError",
    "SchedulerState",
    "SeedFetchRequested",
    "StateView",
    "Task",
    "TaskCreated",
    "TaskEvent",
    "TaskInfo",
    "TaskState",
    "Verdict",
    "host_id_for",
    "is_bad_node",
    "new_plugin_manager",
    "parse_duration",
    "plugin_name",
    "rendezvous_owner",
    "section_reader",
    "transition",
]
