"""The Trio service layer: listeners, sessions, GC loops and the admin HTTP API."""

from ..session import CLOSE_FOR as CLOSE_FOR
from ..session import EndCause as EndCause
from ._auth import Scope as Scope
from ._auth import issue_token as issue_token
from ._config import ServiceConfig as ServiceConfig
from ._config import config_from_mapping as config_from_mapping
from ._config import load_config as load_config
from ._config import with_overrides as with_overrides
from ._gate import WS_PATH as WS_PATH
from ._listeners import ListenError as ListenError
from ._logging import configure_logging as configure_logging
from ._service import SchedulerService as SchedulerService
from ._service import build_policies as build_policies
from ._session import Session as Session

__all__ = [
    "CLOSE_FOR",
    "WS_PATH",
    "EndCause",
    "ListenError",
    "SchedulerService",
    "Scope",
    "ServiceConfig",
    "Session",
    "build_policies",
    "config_from_mapping",
    "configure_logging",
    "issue_token",
    "load_config",
    "with_overrides",
]
