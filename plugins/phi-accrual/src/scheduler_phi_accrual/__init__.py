"""A φ-accrual failure detector over host heartbeats, as a scheduler plugin.

Install the distribution and the ``phi_accrual`` plugin is loaded through the
``scheduler.plugins`` entry point. It adds a ``phi_suspect`` deadline next to
the announce TTL; the engine takes the earliest. See the README.
"""

from ._detector import MAX_THRESHOLD as MAX_THRESHOLD
from ._detector import HeartbeatWindow as HeartbeatWindow
from ._detector import phi as phi
from ._detector import suspicion_delay as suspicion_delay
from ._detector import suspicion_penalty as suspicion_penalty
from ._detector import suspicion_quantile as suspicion_quantile
from ._plugin import DEFAULT_ACCEPTABLE_HEARTBEAT_PAUSE as DEFAULT_ACCEPTABLE_HEARTBEAT_PAUSE
from ._plugin import DEFAULT_MAX_SAMPLES as DEFAULT_MAX_SAMPLES
from ._plugin import DEFAULT_MIN_SAMPLES as DEFAULT_MIN_SAMPLES
from ._plugin import DEFAULT_MIN_STD_DEVIATION as DEFAULT_MIN_STD_DEVIATION
from ._plugin import DEFAULT_SUSPICION_PENALTY as DEFAULT_SUSPICION_PENALTY
from ._plugin import DEFAULT_THRESHOLD as DEFAULT_THRESHOLD
from ._plugin import HEARTBEAT_SOURCES as HEARTBEAT_SOURCES
from ._plugin import PHI_SUSPECT as PHI_SUSPECT
from ._plugin import SETTINGS as SETTINGS
from ._plugin import PhiAccrual as PhiAccrual

__version__ = "0.1.0"

__all__ = [
    "DEFAULT_ACCEPTABLE_HEARTBEAT_PAUSE",
    "DEFAULT_MAX_SAMPLES",
    "DEFAULT_MIN_SAMPLES",
    "DEFAULT_MIN_STD_DEVIATION",
    "DEFAULT_SUSPICION_PENALTY",
    "DEFAULT_THRESHOLD",
    "HEARTBEAT_SOURCES",
    "MAX_THRESHOLD",
    "PHI_SUSPECT",
    "SETTINGS",
    "HeartbeatWindow",
    "PhiAccrual",
    "__version__",
    "phi",
    "suspicion_delay",
    "suspicion_penalty",
    "suspicion_quantile",
]
