"""The session protocol, sans-IO: what one WebSocket session may do, and what follows.

Nothing here imports trio or does I/O. :class:`SessionProtocol` takes a frame
and ``now`` and returns an :class:`Outcome` (replies, a close, core events); the
trio shell in :mod:`scheduler.service` moves the bytes and runs the timers.
"""

from ._causes import CLOSE_FOR as CLOSE_FOR
from ._causes import HOST_SETTLED as HOST_SETTLED
from ._causes import EndCause as EndCause
from ._protocol import ERROR_CODE_FOR as ERROR_CODE_FOR
from ._protocol import INVALID as INVALID
from ._protocol import Outcome as Outcome
from ._protocol import SessionLimits as SessionLimits
from ._protocol import SessionProtocol as SessionProtocol
from ._protocol import error_code_for as error_code_for
from ._protocol import host_info_from as host_info_from
from ._protocol import task_info_from as task_info_from
from ._registry import HostRegistry as HostRegistry
from ._registry import HostSessions as HostSessions
from ._registry import SessionOwner as SessionOwner

__all__ = [
    "CLOSE_FOR",
    "ERROR_CODE_FOR",
    "HOST_SETTLED",
    "INVALID",
    "EndCause",
    "HostRegistry",
    "HostSessions",
    "Outcome",
    "SessionLimits",
    "SessionOwner",
    "SessionProtocol",
    "error_code_for",
    "host_info_from",
    "task_info_from",
]
