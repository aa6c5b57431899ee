"""Settings declared once: type, default, unit, bounds and help of every setting.

Sans-IO (no trio, no file or environment access of its own). :class:`Setting`
describes one setting and :class:`Section` a TOML table of them; the TOML
parsing, the validation, the ``serve`` flags, their help, the environment
variables and the docs tables are all generated from these declarations.

The ``scheduler serve`` declaration itself is :mod:`scheduler.config`
(a separate module: it reads the built-in policies' declarations, which import
this package).
"""

from ._section import Section as Section
from ._setting import Kind as Kind
from ._setting import Setting as Setting
from ._setting import boolean as boolean
from ._setting import choice as choice
from ._setting import duration as duration
from ._setting import format_duration as format_duration
from ._setting import integer as integer
from ._setting import number as number
from ._setting import str_list as str_list
from ._setting import string as string

__all__ = [
    "Kind",
    "Section",
    "Setting",
    "boolean",
    "choice",
    "duration",
    "format_duration",
    "integer",
    "number",
    "str_list",
    "string",
]
