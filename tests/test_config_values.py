"""Configuration values: durations and plugin sections, with errors that name the key."""

from __future__ import annotations

import math
from types import MappingProxyType

import pytest

from scheduler.core import ConfigError, parse_duration, section_reader


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("500ms", 0.5),
        ("1.5s", 1.5),
        (".5s", 0.5),
        ("5m", 300.0),
        ("2h", 7200.0),
        ("1d", 86400.0),
        (" 7 ", 7.0),
        ("0", 0.0),
        (3, 3.0),
        (0.25, 0.25),
    ],
)
def test_a_duration_is_read_in_seconds(value: object, seconds: float) -> None:
    assert parse_duration(value, "k") == seconds


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (True, "expected a duration such as '5s', got True"),
        (None, "expected a duration such as '5s', got None"),
        ([5], "expected a duration such as '5s', got [5]"),
        ("5 parsecs", "expected a duration such as 500ms, 5s, 5m or 1h, got '5 parsecs'"),
        ("-1s", "expected a duration such as 500ms, 5s, 5m or 1h, got '-1s'"),
        (-1, "must be a non-negative finite duration, got -1"),
        (math.inf, "must be a non-negative finite duration, got inf"),
        (math.nan, "must be a non-negative finite duration, got nan"),
    ],
)
def test_a_bad_duration_names_the_key_and_the_value(value: object, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_duration(value, "gc.sweep_interval")
    assert info.value.key == "gc.sweep_interval"
    assert str(info.value) == f"gc.sweep_interval: {message}"


def test_a_duration_without_a_key_is_called_duration() -> None:
    with pytest.raises(ConfigError, match=r"^duration: expected"):
        parse_duration("soon")


def test_a_plugin_section_is_read_when_every_key_is_known() -> None:
    config = {"ttl": {"ttl": "5s", "grace": 1}, "other": {"x": 1}}
    assert section_reader(config, "ttl", {"ttl", "grace", "unused"}) == {"ttl": "5s", "grace": 1}
    assert dict(section_reader(config, "absent", {"ttl"})) == {}
    frozen = MappingProxyType({"ttl": 1})
    assert section_reader({"ttl": frozen}, "ttl", {"ttl"}) is frozen


def test_an_unknown_key_in_a_plugin_section_is_named_with_the_known_ones() -> None:
    with pytest.raises(ConfigError) as info:
        section_reader({"ttl": {"ttl": 1, "tll": 2}}, "ttl", {"ttl", "grace"})
    assert info.value.key == "plugins.ttl.tll"
    assert str(info.value) == "plugins.ttl.tll: unknown setting (known: grace, ttl)"


def test_a_plugin_section_must_be_a_table() -> None:
    with pytest.raises(ConfigError) as info:
        section_reader({"ttl": "5s"}, "ttl", {"ttl"})  # type: ignore[dict-item]
    assert str(info.value) == "plugins.ttl: must be a table of settings"
