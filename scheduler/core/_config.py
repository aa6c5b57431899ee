"""Parsing helpers for configuration values (sans-IO, shared by core, plugins and CLI)."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

from ._errors import ConfigError

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?|\.\d+)\s*(ms|s|m|h|d)?\s*$")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}


def parse_duration(value: object, key: str = "duration") -> float:
    """Seconds from ``500ms``, ``5s``, ``5m``, ``1h``, ``1d`` or a plain number of seconds.

    >>> parse_duration("500ms"), parse_duration("5m"), parse_duration(2)
    (0.5, 300.0, 2.0)
    """
    if isinstance(value, bool):
        raise ConfigError(key, f"expected a duration such as '5s', got {value!r}")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str):
        match = _DURATION.match(value)
        if match is None:
            raise ConfigError(
                key, f"expected a duration such as 500ms, 5s, 5m or 1h, got {value!r}"
            )
        seconds = float(match.group(1)) * _UNITS[match.group(2)]
    else:
        raise ConfigError(key, f"expected a duration such as '5s', got {value!r}")
    if not math.isfinite(seconds) or seconds < 0:
        raise ConfigError(key, f"must be a non-negative finite duration, got {value!r}")
    return seconds


def section_reader(
    config: Mapping[str, Mapping[str, Any]], name: str, known: set[str]
) -> Mapping[str, Any]:
    """Return plugin ``name``'s section, raising ConfigError for any key not in ``known``."""
    section = config.get(name, {})
    if not isinstance(section, Mapping):
        raise ConfigError(f"plugins.{name}", "must be a table of settings")
    for key in section:
        if key not in known:
            raise ConfigError(
                f"plugins.{name}.{key}", f"unknown setting (known: {', '.join(sorted(known))})"
            )
    return section
