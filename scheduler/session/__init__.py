"""The session protocol, sans-IO: what one WebSocket session may do, and what follows.

Nothing here imports trio or does I/O. :class:`SessionProtocol` takes a frame
and ``now`` and returns an :class:`Outcome` (replies, a close, core events); the
trio shell in :mod:`scheduler.service` moves the bytes and runs the timers.
:func:`route_unsolicited` hands the core's proactive pushes and seed fetches to
the sessions of the hosts they are for (through :class:`HostSessions`).
"""

from ._admission import Admission as Admission
from ._admission import AdmissionLimits as AdmissionLimits
from ._admission import Refused as Refused
from ._causes import CLOSE_FOR as CLOSE_FOR
from ._causes import HOST_SETTLED as HOST_SETTLED
from ._causes import EndCause as EndCause
from ._identity import Identity as Identity
from ._identity import check_announce as check_announce
from ._liveness import Check as Check
from ._liveness import Liveness as Liveness
from ._liveness import Watched as Watched
from ._networks import AUTO_REFUSED as AUTO_REFUSED
from ._networks import Network as Network
from ._networks import parse_networks as parse_networks
from ._networks import refused_network as refused_network
from ._placement import Placement as Placement
from ._placement import owner_elsewhere as owner_elsewhere
from ._protocol import ERROR_CODE_FOR as ERROR_CODE_FOR
from ._protocol import INVALID as INVALID
from ._protocol import Outcome as Outcome
from ._protocol import SessionLimits as SessionLimits
from ._protocol import SessionProtocol as SessionProtocol
from ._protocol import error_code_for as error_code_for
from ._protocol import host_info_from as host_info_from
from ._protocol import task_info_from as task_info_from
from ._rate import MessageRate as MessageRate
from ._rate import TokenBucket as TokenBucket
from ._rate import Verdict as Verdict
from ._registry import Delivery as Delivery
from ._registry import HostRegistry as HostRegistry
from ._registry import HostSessions as HostSessions
from ._registry import SessionOwner as SessionOwner
from ._schedule import Routed as Routed
from ._schedule import fetch_task_message as fetch_task_message
from ._schedule import parent_payload as parent_payload
from ._schedule import route_unsolicited as route_unsolicited
from ._schedule import schedule_message as schedule_message
from ._schedule import unsolicited as unsolicited

__all__ = [
    "AUTO_REFUSED",
    "CLOSE_FOR",
    "ERROR_CODE_FOR",
    "HOST_SETTLED",
    "INVALID",
    "Admission",
    "AdmissionLimits",
    "Check",
    "Delivery",
    "EndCause",
    "HostRegistry",
    "HostSessions",
    "Identity",
    "Liveness",
    "MessageRate",
    "Network",
    "Outcome",
    "Placement",
    "Refused",
    "Routed",
    "SessionLimits",
    "SessionOwner",
    "SessionProtocol",
    "TokenBucket",
    "Verdict",
    "Watched",
    "check_announce",
    "error_code_for",
    "fetch_task_message",
    "host_info_from",
    "owner_elsewhere",
    "parent_payload",
    "parse_networks",
    "refused_network",
    "route_unsolicited",
    "schedule_message",
    "task_info_from",
    "unsolicited",
]
