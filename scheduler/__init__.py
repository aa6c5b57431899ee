"""A Trio-based, single-process P2P scheduler with pluggable, deadline-driven GC policies.

The package is layered:

* :mod:`scheduler.core`: the sans-IO model, managers and GC engine;
* :mod:`scheduler.policies`: the built-in eviction policies (pluggy plugins);
* :mod:`scheduler.hookspecs`: every hook a plugin can implement;
* :mod:`scheduler.testing`: Hypothesis strategies and a state machine for plugin authors;
* :func:`scheduler.log_fields`: structured fields on a log line (for plugins too).
"""

from .hookspecs import hookimpl as hookimpl
from .logfields import log_fields as log_fields

__version__ = "0.2.0"

__all__ = ["__version__", "hookimpl", "log_fields"]
