"""Dragonfly's GC semantics as a scheduler plugin, for side-by-side comparison and migration.

Install the distribution and the ``dragonfly_compat`` plugin is loaded through
the ``scheduler.plugins`` entry point; it replaces the built-in
``announce_ttl``, ``disconnect_grace``, ``peer_lifetime`` and ``task_idle``
policies. The ``dragonfly_evaluator`` plugin is Dragonfly v2.4's load-aware
parent evaluator; it replaces the built-in ``evaluator``. See the README for the
exact semantics and the configuration.
"""

from ._evaluator import DragonflyEvaluator as DragonflyEvaluator
from ._plugin import ANNOUNCE_INTERVAL_MULTIPLIER as ANNOUNCE_INTERVAL_MULTIPLIER
from ._plugin import DEFAULT_HOST_SWEEP_INTERVAL as DEFAULT_HOST_SWEEP_INTERVAL
from ._plugin import DEFAULT_HOST_TTL as DEFAULT_HOST_TTL
from ._plugin import DEFAULT_PEER_SWEEP_INTERVAL as DEFAULT_PEER_SWEEP_INTERVAL
from ._plugin import DEFAULT_PEER_TTL as DEFAULT_PEER_TTL
from ._plugin import DEFAULT_PIECE_TIMEOUT as DEFAULT_PIECE_TIMEOUT
from ._plugin import DEFAULT_TASK_SWEEP_INTERVAL as DEFAULT_TASK_SWEEP_INTERVAL
from ._plugin import REPLACED_PLUGINS as REPLACED_PLUGINS
from ._plugin import SETTINGS as SETTINGS
from ._plugin import DragonflyCompat as DragonflyCompat
from ._ticks import next_sweep_tick as next_sweep_tick

__version__ = "0.1.0"

__all__ = [
    "ANNOUNCE_INTERVAL_MULTIPLIER",
    "DEFAULT_HOST_SWEEP_INTERVAL",
    "DEFAULT_HOST_TTL",
    "DEFAULT_PEER_SWEEP_INTERVAL",
    "DEFAULT_PEER_TTL",
    "DEFAULT_PIECE_TIMEOUT",
    "DEFAULT_TASK_SWEEP_INTERVAL",
    "REPLACED_PLUGINS",
    "SETTINGS",
    "DragonflyCompat",
    "DragonflyEvaluator",
    "__version__",
    "next_sweep_tick",
]
