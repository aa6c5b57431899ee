"""A section of settings: ``[server]``, ``[liveness]``, ... or a plugin's ``[plugins.<name>]``.

A plugin declares its settings as a :class:`Section` and uses it three times:
``section.init(self)`` in ``__init__`` (the defaults), ``section.configure(self,
config)`` in ``scheduler_configure`` (every key validated before any is
assigned), and ``scheduler.testing.check_plugin_settings`` in its tests.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, final

import attrs

from ..core._errors import ConfigError
from ._setting import Setting

PLUGIN_PREFIX = "plugins."


@final
@attrs.frozen
class Section:
    """Named settings; ``name`` is the TOML table (``"server"``, ``"plugins.capacity"``)."""

    name: str
    settings: tuple[Setting, ...]

    def __attrs_post_init__(self) -> None:
        keys = [s.key for s in self.settings]
        if len(set(keys)) != len(keys):
            raise ValueError(f"[{self.name}] declares a key twice: {keys}")

    @classmethod
    def plugin(cls, name: str, *settings: Setting) -> Section:
        """The ``[plugins.<name>]`` section of plugin ``name``."""
        return cls(PLUGIN_PREFIX + name, settings)

    @property
    def plugin_name(self) -> str:
        return self.name.removeprefix(PLUGIN_PREFIX)

    def __iter__(self) -> Iterator[Setting]:
        return iter(self.settings)

    def __getitem__(self, key: str) -> Setting:
        for setting in self.settings:
            if setting.key == key:
                return setting
        raise KeyError(key)

    def qualified(self, key: str) -> str:
        """``section.key``, the name errors and ``--print-config`` use."""
        return f"{self.name}.{key}"

    def defaults(self) -> dict[str, Any]:
        """``{attr: default}`` for every setting."""
        return {s.attr: s.default for s in self.settings}

    def read(self, table: object, *, ignore: frozenset[str] = frozenset()) -> dict[str, Any]:
        """Validate a TOML table: ``{key: value}`` for the keys it sets.

        Every key is checked (unknown keys included) before anything is returned,
        so a caller that assigns only after ``read`` changes nothing on error.
        Keys in ``ignore`` are left for the caller (sub-tables, say).
        """
        if not isinstance(table, Mapping):
            raise ConfigError(self.name, "must be a table of settings")
        known = {s.key for s in self.settings}
        for key in table:
            if key not in known and key not in ignore:
                raise ConfigError(
                    self.qualified(key),
                    f"unknown setting (known: {', '.join(sorted(known)) or 'none'})",
                )
        return {
            s.key: s.parse(table[s.key], self.qualified(s.key))
            for s in self.settings
            if s.key in table
        }

    # --- for plugins ----------------------------------------------------------------------

    def init(self, obj: object) -> None:
        """Set every declared attribute of ``obj`` to its default (a plugin's ``__init__``)."""
        for attr, value in self.defaults().items():
            setattr(obj, attr, value)

    def values(self, config: Mapping[str, Any], current: object) -> dict[str, Any]:
        """The plugin's settings after ``config``: ``{attr: value}``, the rest from ``current``.

        ``config`` is what ``scheduler_configure`` receives (``{plugin: {key: value}}``).
        Raises :class:`ConfigError` naming the first bad key; assigns nothing.
        """
        given = self.read(config.get(self.plugin_name, {}))
        return {
            s.attr: given[s.key] if s.key in given else getattr(current, s.attr)
            for s in self.settings
        }

    def assign(self, obj: object, values: Mapping[str, Any]) -> None:
        """Set the attributes from :meth:`values` (after any cross-checks of the caller)."""
        for attr, value in values.items():
            setattr(obj, attr, value)

    def configure(self, obj: object, config: Mapping[str, Any]) -> None:
        """``scheduler_configure`` for a plugin without cross-checks: validate all, then set."""
        self.assign(obj, self.values(config, obj))
