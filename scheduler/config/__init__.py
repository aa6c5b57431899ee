"""Every ``scheduler serve`` setting, declared once (the sections ``[server]``,
``[liveness]``, ``[limits]``, ``[records]``, ``[gc]``, ``[jobs]``, ``[plugins]``, ``[log]``,
``[auth]``, ``[tls]`` and ``[cluster]``), and what is generated from it: the TOML
reading, the environment variables, the flags and their help, and the docs' tables
(``python -m scheduler.config --markdown``).

The declaration mechanism itself is :mod:`scheduler.settings`.
"""

from ._serve import AUTH as AUTH
from ._serve import CLUSTER as CLUSTER
from ._serve import ENV_PREFIX as ENV_PREFIX
from ._serve import GC as GC
from ._serve import LIMITS as LIMITS
from ._serve import LIVENESS as LIVENESS
from ._serve import LOG as LOG
from ._serve import LOG_FORMATS as LOG_FORMATS
from ._serve import LOG_LEVELS as LOG_LEVELS
from ._serve import PLUGINS as PLUGINS
from ._serve import SECTIONS as SECTIONS
from ._serve import SERVER as SERVER
from ._serve import SOURCES as SOURCES
from ._serve import TLS as TLS
from ._serve import Resolved as Resolved
from ._serve import add_flags as add_flags
from ._serve import entries as entries
from ._serve import env_name as env_name
from ._serve import flag_values as flag_values
from ._serve import help_text as help_text
from ._serve import markdown_table as markdown_table
from ._serve import read_env as read_env
from ._serve import read_file as read_file
from ._serve import render as render
from ._serve import resolve as resolve
from ._serve import setting_named as setting_named

__all__ = [
    "AUTH",
    "CLUSTER",
    "ENV_PREFIX",
    "GC",
    "LIMITS",
    "LIVENESS",
    "LOG",
    "LOG_FORMATS",
    "LOG_LEVELS",
    "PLUGINS",
    "SECTIONS",
    "SERVER",
    "SOURCES",
    "TLS",
    "Resolved",
    "add_flags",
    "entries",
    "env_name",
    "flag_values",
    "help_text",
    "markdown_table",
    "read_env",
    "read_file",
    "render",
    "resolve",
    "setting_named",
]
