"""The settings check every plugin passes: a bad value is a ConfigError naming the key.

``check_plugin_settings(MyPlugin)`` takes the plugin's declared
:class:`scheduler.settings.Section` (its ``settings`` attribute) and, through
the real ``scheduler_configure`` hook, asserts that

* a fresh instance holds the declared defaults, and the defaults are accepted;
* an unknown key, and for every setting a value of the wrong type or out of
  bounds, raises :class:`ConfigError` whose ``key`` is ``plugins.<name>.<key>``;
* such an error changes nothing, even when the same section also holds a good
  value for another key (validate every key before assigning any).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

from ..core import ConfigError, PolicySet, plugin_name
from ..settings import Kind, Section, Setting

__all__ = ["bad_values", "check_plugin_settings"]


def bad_values(setting: Setting) -> list[object]:
    """Values ``setting`` must reject: the wrong type, and each side of its bounds."""
    wrong_type: dict[Kind, list[object]] = {
        Kind.DURATION: ["soon", True, [1], -1],
        Kind.INT: ["3", 1.5, True],
        Kind.FLOAT: ["high", True, math.nan, math.inf],
        Kind.BOOL: ["yes", 1],
        Kind.STR: [1, ""],
        Kind.CHOICE: ["no-such-choice", 1],
        Kind.STR_LIST: ["a", [1]],
    }
    values = list(wrong_type[setting.kind])
    if setting.kind in (Kind.DURATION, Kind.INT, Kind.FLOAT):
        if setting.positive:
            values.append(0)
        if setting.minimum is not None and setting.minimum > 0:
            values.append(setting.minimum - 1)
        if setting.maximum is not None:
            values.append(setting.maximum + 1)
    return values


def _another_valid(setting: Setting, where: str) -> object | None:
    """A value ``setting`` accepts that differs from its default (None if none is found)."""
    default = setting.default
    if setting.kind is Kind.BOOL:
        return not default
    if setting.kind is Kind.CHOICE:
        return next((c for c in setting.choices if c != default), None)
    if setting.kind is Kind.STR:
        return f"{default or ''}x"
    if setting.kind is Kind.STR_LIST:
        return ["x"]
    base = 1 if default is None else default
    for number in (base + 1, base * 2, base / 2, setting.minimum, setting.maximum):
        if number is None or number == default:
            continue
        candidate = int(number) if setting.kind is Kind.INT else number
        try:
            setting.parse(candidate, where)
        except ConfigError:
            continue
        return candidate
    return None


def _configure(factory: Callable[[], object], section: Mapping[str, Any]) -> object:
    plugin = factory()
    PolicySet.from_plugins([plugin], config={plugin_name(plugin): dict(section)})
    return plugin


def check_plugin_settings(factory: Callable[[], object]) -> None:
    """Assert the settings contract for the plugin ``factory()`` builds (a class, usually)."""
    plugin = factory()
    declared = getattr(plugin, "settings", None)
    assert isinstance(declared, Section), f"{plugin!r} declares no `settings` Section"
    name = plugin_name(plugin)
    assert declared.plugin_name == name, f"settings of [{declared.name}] on plugin {name!r}"
    for setting in declared:
        held = getattr(plugin, setting.attr)
        assert held == setting.default, f"{name}.{setting.attr} is {held!r}, not the default"
    defaults = {s.key: s.default for s in declared if s.default is not None}
    _configure(factory, defaults)  # the declared defaults are valid settings

    def expect_error(section: Mapping[str, Any], key: str) -> None:
        fresh = factory()
        before = {s.attr: getattr(fresh, s.attr) for s in declared}
        error: ConfigError | None = None
        try:
            PolicySet.from_plugins([fresh], config={name: dict(section)})
        except ConfigError as exc:
            error = exc
        assert error is not None, f"[{declared.name}] {section!r} was accepted"
        assert error.key == declared.qualified(key), (
            f"{section!r}: the error names {error.key!r}, not {declared.qualified(key)!r}"
        )
        after = {s.attr: getattr(fresh, s.attr) for s in declared}
        assert after == before, f"[{declared.name}] {section!r} changed {before} to {after}"

    expect_error({"no_such_setting": 1}, "no_such_setting")
    for setting in declared:
        others = {
            other.key: value
            for other in declared
            if other is not setting
            and (value := _another_valid(other, declared.qualified(other.key))) is not None
        }
        for bad in bad_values(setting):
            expect_error({setting.key: bad}, setting.key)
            # A good value next to the bad one must not be applied either.
            expect_error({**others, setting.key: bad}, setting.key)
