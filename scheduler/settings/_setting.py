"""One setting: its type, default, unit, bounds and help, and how to read it.

A :class:`Setting` is the single place a setting is described. Everything a user
sees about it (the TOML key, the ``serve`` flag, the environment variable, the
``--help`` line, the docs table, the error for a bad value) is generated from it.
Values arrive from TOML as Python objects (:meth:`Setting.parse`) or from flags
and environment variables as text (:meth:`Setting.parse_text`); both give the
same typed value or raise :class:`ConfigError` naming where the value came from.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Sequence
from typing import Any, final

import attrs

from ..core._config import parse_duration
from ..core._errors import ConfigError


class Kind(enum.Enum):
    """What a setting's value is; decides parsing, formatting and the flag's metavar."""

    DURATION = "duration"
    INT = "int"
    FLOAT = "float"
    BOOL = "bool"
    STR = "str"
    CHOICE = "choice"
    STR_LIST = "str-list"


_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})


def format_duration(seconds: float) -> str:
    """The shortest exact spelling of a duration: ``500ms``, ``5s``, ``90s``, ``10m``, ``24h``.

    >>> [format_duration(s) for s in (0.5, 0, 5, 90, 600, 3600, 86400)]
    ['500ms', '0s', '5s', '90s', '10m', '1h', '24h']
    """
    if seconds != int(seconds):
        return f"{seconds * 1000:g}ms"
    whole = int(seconds)
    if whole and whole % 3600 == 0:
        return f"{whole // 3600}h"
    if whole and whole % 60 == 0:
        return f"{whole // 60}m"
    return f"{whole}s"


def _is_int(value: object) -> bool:
    return type(value) is int


def _is_number(value: object) -> bool:
    return type(value) in (int, float)


@final
@attrs.frozen(kw_only=True)
class Setting:
    """A declared setting. Build one with :func:`duration`, :func:`integer`, ... below.

    ``key`` is the TOML key inside its section; ``attr`` the attribute that holds
    the value (the key unless given); ``flag`` the ``serve`` flag (``--`` plus the
    key with dashes unless given; ``""`` for none). ``optional`` allows ``None``
    (unset), shown in docs as ``unset`` (e.g. "off"). ``details`` extends ``help``
    in the docs table only. ``target`` marks an alias of a plugin's setting:
    ``(plugin, key)``.
    """

    key: str
    kind: Kind
    default: Any
    help: str
    unit: str = ""
    details: str = ""
    minimum: float | None = None
    maximum: float | None = None
    positive: bool = False
    choices: tuple[str, ...] = ()
    optional: bool = False
    unset: str = "unset"
    attr: str = ""
    flag: str | None = None
    metavar: str | None = None
    target: tuple[str, str] | None = None

    def __attrs_post_init__(self) -> None:
        if not self.attr:
            object.__setattr__(self, "attr", self.key)
        if self.flag is None:
            object.__setattr__(self, "flag", "--" + self.key.replace("_", "-"))
        # A default that its own checks reject is a bug in the declaration.
        self.parse(self.default, f"default of {self.key}")

    # --- reading values -------------------------------------------------------------------

    def parse(self, value: object, where: str) -> Any:
        """Check a value as TOML (or Python) gives it; ``where`` names it in the error."""
        if value is None and self.optional:
            return None
        parsed = self._typed(value, where)
        self._check_bounds(parsed, value, where)
        return parsed

    def parse_text(self, text: str, where: str) -> Any:
        """Check a value given as text (a flag or an environment variable)."""
        value: object = text
        if self.kind is Kind.INT:
            try:
                value = int(text.strip())
            except ValueError:
                raise ConfigError(where, f"expected an integer, got {text!r}") from None
        elif self.kind is Kind.FLOAT:
            try:
                value = float(text.strip())
            except ValueError:
                raise ConfigError(where, f"expected a number, got {text!r}") from None
        elif self.kind is Kind.BOOL:
            word = text.strip().lower()
            if word not in _TRUE | _FALSE:
                raise ConfigError(where, f"expected true or false, got {text!r}")
            value = word in _TRUE
        elif self.kind is Kind.STR_LIST:
            value = [item.strip() for item in text.split(",") if item.strip()]
        return self.parse(value, where)

    def _typed(self, value: object, where: str) -> Any:
        kind = self.kind
        if kind is Kind.DURATION:
            return parse_duration(value, where)
        if kind is Kind.INT:
            if not _is_int(value):
                raise ConfigError(where, f"expected an integer, got {value!r}")
            return value
        if kind is Kind.FLOAT:
            if not _is_number(value) or not math.isfinite(value):  # type: ignore[arg-type]
                raise ConfigError(where, f"expected a number, got {value!r}")
            return float(value)  # type: ignore[arg-type]
        if kind is Kind.BOOL:
            if not isinstance(value, bool):
                raise ConfigError(where, f"expected true or false, got {value!r}")
            return value
        if kind is Kind.STR:
            if not isinstance(value, str) or not value:
                raise ConfigError(where, f"expected a non-empty string, got {value!r}")
            return value
        if kind is Kind.CHOICE:
            if value not in self.choices:
                raise ConfigError(where, f"expected one of {self.choices}, got {value!r}")
            return value
        if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
            raise ConfigError(where, f"expected a list of strings, got {value!r}")
        return tuple(value)

    def _check_bounds(self, parsed: Any, given: object, where: str) -> None:
        if self.kind not in (Kind.DURATION, Kind.INT, Kind.FLOAT):
            return
        if self.positive and parsed <= 0:
            raise ConfigError(where, "must be greater than zero")
        low, high = self.minimum, self.maximum
        if (low is not None and parsed < low) or (high is not None and parsed > high):
            raise ConfigError(where, f"must be {self.bounds_text()}, got {given!r}")

    # --- describing ------------------------------------------------------------------------

    def bounds_text(self) -> str:
        """The allowed range in words (``0-65535``, ``>= 1``, ``> 0``), or ``""``."""
        low, high = self.minimum, self.maximum
        show = self.format if self.kind is Kind.DURATION else _number
        if low is not None and high is not None:
            return f"{show(low)}-{show(high)}"
        parts = []
        if self.positive:
            parts.append("> 0")
        if low is not None:
            parts.append(f">= {show(low)}")
        if high is not None:
            parts.append(f"<= {show(high)}")
        return ", ".join(parts)

    def format(self, value: Any) -> str:
        """``value`` as a human writes it in TOML: ``"5s"``, ``8002``, ``["a"]``, ``true``."""
        if value is None:
            return self.unset
        if self.kind is Kind.DURATION:
            return format_duration(value)
        if self.kind is Kind.BOOL:
            return "true" if value else "false"
        if self.kind in (Kind.STR, Kind.CHOICE):
            return f'"{value}"'
        if self.kind is Kind.STR_LIST:
            return "[" + ", ".join(f'"{item}"' for item in value) + "]"
        return _number(value)

    def toml(self, value: Any) -> str:
        """``value`` as a TOML literal (durations quoted); ``None`` has no literal."""
        text = self.format(value)
        return f'"{text}"' if self.kind is Kind.DURATION else text

    @property
    def flag_metavar(self) -> str:
        if self.metavar is not None:
            return self.metavar
        return {Kind.DURATION: "DURATION", Kind.INT: "N", Kind.FLOAT: "NUMBER"}.get(
            self.kind, self.key.upper()
        )

    def alias(self, plugin: str, *, help: str | None = None, details: str = "") -> Setting:
        """This plugin setting, offered under another section (type, default, bounds kept)."""
        return attrs.evolve(
            self, target=(plugin, self.key), help=help or self.help, details=details
        )


def _number(value: float) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def _make(kind: Kind, key: str, default: Any, help: str, **options: Any) -> Setting:
    return Setting(key=key, kind=kind, default=default, help=help, **options)


def duration(key: str, default: float, help: str, **options: Any) -> Setting:
    """A duration in seconds, written ``500ms``, ``5s``, ``5m``, ``1h``, ``1d`` or a number."""
    return _make(Kind.DURATION, key, float(default), help, **options)


def integer(key: str, default: int | None, help: str, **options: Any) -> Setting:
    """An integer (a TOML integer; ``"80"`` and ``1.5`` are errors)."""
    return _make(Kind.INT, key, default, help, **options)


def number(key: str, default: float, help: str, **options: Any) -> Setting:
    """A finite number (integer or float)."""
    return _make(Kind.FLOAT, key, float(default), help, **options)


def boolean(key: str, default: bool, help: str, **options: Any) -> Setting:
    """``true`` or ``false`` (as text also ``1``/``0``, ``yes``/``no``, ``on``/``off``)."""
    return _make(Kind.BOOL, key, default, help, **options)


def string(key: str, default: str | None, help: str, **options: Any) -> Setting:
    """A non-empty string."""
    return _make(Kind.STR, key, default, help, **options)


def choice(key: str, default: str, choices: Sequence[str], help: str, **options: Any) -> Setting:
    """One of ``choices``."""
    return _make(Kind.CHOICE, key, default, help, choices=tuple(choices), **options)


def str_list(key: str, help: str, *, default: Sequence[str] = (), **options: Any) -> Setting:
    """A list of strings (default empty); as text, comma-separated."""
    return _make(Kind.STR_LIST, key, tuple(default), help, **options)
