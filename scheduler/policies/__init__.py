"""The built-in eviction policies, and the loader that composes them with third-party plugins.

Built-ins are ordinary pluggy plugins registered from :data:`BUILTIN_PLUGINS`,
so any of them can be disabled by name and replaced by a plugin found
through the ``scheduler.plugins`` entry-point group or named in config as
``module:object``.
"""

from ._announce_ttl import AnnounceTTL as AnnounceTTL
from ._capacity import Capacity as Capacity
from ._disconnect_grace import DisconnectGrace as DisconnectGrace
from ._evaluator import Evaluator as Evaluator
from ._evaluator import evaluate as evaluate
from ._hostname_unique import HostnameUnique as HostnameUnique
from ._loader import BUILTIN_PLUGINS as BUILTIN_PLUGINS
from ._loader import ENTRYPOINT_GROUP as ENTRYPOINT_GROUP
from ._loader import builtin_plugins as builtin_plugins
from ._loader import import_object as import_object
from ._loader import installed_plugins as installed_plugins
from ._loader import instantiate as instantiate
from ._loader import load_policies as load_policies
from ._loader import plugins_in_force as plugins_in_force
from ._peer_lifetime import PeerLifetime as PeerLifetime
from ._peer_start import PeerStart as PeerStart
from ._task_idle import TaskIdleTTL as TaskIdleTTL

__all__ = [
    "BUILTIN_PLUGINS",
    "ENTRYPOINT_GROUP",
    "AnnounceTTL",
    "Capacity",
    "DisconnectGrace",
    "Evaluator",
    "HostnameUnique",
    "PeerLifetime",
    "PeerStart",
    "TaskIdleTTL",
    "builtin_plugins",
    "evaluate",
    "import_object",
    "installed_plugins",
    "instantiate",
    "load_policies",
    "plugins_in_force",
]
