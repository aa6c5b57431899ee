"""Service configuration: a TOML file, with command-line flags layered on top.

Every key is validated here and a bad one raises :class:`ConfigError` naming
it (``liveness.ping_interval: expected a duration ...``); the CLI turns that
into exit status 2.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final, final

import attrs

from ..core import ConfigError, parse_duration

LOG_FORMATS: Final = ("text", "json")
LOG_LEVELS: Final = ("debug", "info", "warning", "error")


@final
@attrs.frozen(kw_only=True)
class ServiceConfig:
    """Every setting of ``scheduler serve``; defaults are the embedded default deployment."""

    # [server]
    bind: str = "127.0.0.1"
    port: int = 8002
    admin_bind: str | None = None
    admin_port: int = 8000
    max_sessions: int = 10_000
    max_message_size: int = 64 * 1024
    inbox_size: int = 256
    # [liveness]
    ping_interval: float = 5.0
    ping_timeout: float = 5.0
    send_timeout: float = 5.0
    close_timeout: float = 2.0
    announce_timeout: float = 10.0
    reconnect_grace: float = 5.0
    error_limit: int = 20
    error_window: float = 10.0
    shutdown_timeout: float = 4.0
    # [gc]
    sweep_interval: float = 60.0
    # [plugins]
    enable: tuple[str, ...] = ()
    disable: tuple[str, ...] = ()
    entrypoints: bool = False
    plugin_config: Mapping[str, Mapping[str, Any]] = attrs.field(factory=dict)
    # [log]
    log_format: str = "text"
    log_level: str = "info"

    def policy_config(self) -> dict[str, dict[str, Any]]:
        """The ``[plugins.<name>]`` sections, as the operator wrote them."""
        return {name: dict(section) for name, section in self.plugin_config.items()}

    def policy_defaults(self) -> dict[str, dict[str, Any]]:
        """Service settings that a built-in policy applies (if it is loaded)."""
        return {"disconnect_grace": {"reconnect_grace": self.reconnect_grace}}

    @property
    def admin_host(self) -> str:
        return self.admin_bind or self.bind


_DURATIONS: Final = {
    "liveness": (
        "ping_interval",
        "ping_timeout",
        "send_timeout",
        "close_timeout",
        "announce_timeout",
        "reconnect_grace",
        "error_window",
        "shutdown_timeout",
    ),
    "gc": ("sweep_interval",),
}
_INTS: Final = {
    "server": ("port", "admin_port", "max_sessions", "max_message_size", "inbox_size"),
    "liveness": ("error_limit",),
}
_STRINGS: Final = {"server": ("bind", "admin_bind")}
_POSITIVE_DURATIONS: Final = frozenset(
    {"ping_interval", "ping_timeout", "send_timeout", "close_timeout", "announce_timeout"}
) | {"sweep_interval", "error_window", "shutdown_timeout"}
#: GC settings that live in a built-in policy's section: flag/key -> (plugin, key).
GC_POLICY_KEYS: Final = {
    "host_ttl": ("announce_ttl", "host_ttl"),
    "peer_ttl": ("peer_lifetime", "peer_ttl"),
    "piece_timeout": ("peer_lifetime", "piece_timeout"),
    "task_idle_ttl": ("task_idle", "task_idle_ttl"),
}


def _table(data: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = data.get(key, {})
    if not isinstance(value, Mapping):
        raise ConfigError(key, "must be a table")
    return value


def _int(value: object, key: str, minimum: int) -> int:
    if type(value) is not int:
        raise ConfigError(key, f"expected an integer, got {value!r}")
    if value < minimum:
        raise ConfigError(key, f"must be >= {minimum}, got {value}")
    return value


def _str_list(value: object, key: str) -> tuple[str, ...]:
    if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
        raise ConfigError(key, f"expected a list of strings, got {value!r}")
    return tuple(value)


def config_from_mapping(data: Mapping[str, Any]) -> ServiceConfig:
    """Build a ServiceConfig from the parsed TOML layout (see docs/operations.md)."""
    known_tables = {"server", "liveness", "gc", "plugins", "log"}
    for key in data:
        if key not in known_tables:
            raise ConfigError(key, f"unknown section (known: {', '.join(sorted(known_tables))})")
    values: dict[str, Any] = {}
    allowed: dict[str, set[str]] = {
        "server": set(_INTS["server"]) | set(_STRINGS["server"]),
        "liveness": set(_DURATIONS["liveness"]) | set(_INTS["liveness"]),
        "gc": set(_DURATIONS["gc"]) | set(GC_POLICY_KEYS),
        "log": {"format", "level"},
    }
    for section, known in allowed.items():
        table = _table(data, section)
        for key in table:
            if key not in known:
                raise ConfigError(f"{section}.{key}", "unknown setting")
    for section, keys in _DURATIONS.items():
        table = _table(data, section)
        for key in keys:
            if key in table:
                values[key] = parse_duration(table[key], f"{section}.{key}")
    for section, keys in _INTS.items():
        table = _table(data, section)
        for key in keys:
            if key in table:
                minimum = 0 if key.endswith("port") else 1
                values[key] = _int(table[key], f"{section}.{key}", minimum)
    for key in _STRINGS["server"]:
        server = _table(data, "server")
        if key in server:
            if not isinstance(server[key], str) or not server[key]:
                raise ConfigError(f"server.{key}", f"expected a host address, got {server[key]!r}")
            values[key] = server[key]
    log = _table(data, "log")
    if "format" in log:
        values["log_format"] = log["format"]
    if "level" in log:
        values["log_level"] = log["level"]
    plugins = dict(_table(data, "plugins"))
    if "enable" in plugins:
        values["enable"] = _str_list(plugins.pop("enable"), "plugins.enable")
    if "disable" in plugins:
        values["disable"] = _str_list(plugins.pop("disable"), "plugins.disable")
    if "entrypoints" in plugins:
        entrypoints = plugins.pop("entrypoints")
        if not isinstance(entrypoints, bool):
            raise ConfigError("plugins.entrypoints", f"expected true or false, got {entrypoints!r}")
        values["entrypoints"] = entrypoints
    sections: dict[str, dict[str, Any]] = {}
    for name, section in plugins.items():
        if not isinstance(section, Mapping):
            raise ConfigError(f"plugins.{name}", "must be a table of settings")
        sections[name] = dict(section)
    # reconnect_grace is one setting: the service reports it to clients, the
    # disconnect-grace policy applies it. It may be written in either place, once.
    grace_section = sections.get("disconnect_grace", {})
    if "reconnect_grace" in grace_section:
        if "reconnect_grace" in values:
            raise ConfigError(
                "plugins.disconnect_grace.reconnect_grace",
                "also set as liveness.reconnect_grace; set it in one place",
            )
        values["reconnect_grace"] = parse_duration(
            grace_section.pop("reconnect_grace"), "plugins.disconnect_grace.reconnect_grace"
        )
    gc = _table(data, "gc")
    for key, (plugin, plugin_key) in GC_POLICY_KEYS.items():
        if key in gc:
            sections.setdefault(plugin, {})[plugin_key] = parse_duration(gc[key], f"gc.{key}")
    values["plugin_config"] = sections
    return validate(ServiceConfig(**values))


def validate(config: ServiceConfig) -> ServiceConfig:
    """Cross-field checks that the per-key parsing cannot do."""
    if config.log_format not in LOG_FORMATS:
        raise ConfigError("log.format", f"expected one of {LOG_FORMATS}, got {config.log_format!r}")
    if config.log_level not in LOG_LEVELS:
        raise ConfigError("log.level", f"expected one of {LOG_LEVELS}, got {config.log_level!r}")
    for key in _POSITIVE_DURATIONS:
        if getattr(config, key) <= 0:
            section = "gc" if key == "sweep_interval" else "liveness"
            raise ConfigError(f"{section}.{key}", "must be greater than zero")
    for key in ("port", "admin_port"):
        if not 0 <= getattr(config, key) <= 65535:
            raise ConfigError(f"server.{key}", f"must be 0-65535, got {getattr(config, key)}")
    if config.port == config.admin_port != 0 and config.admin_host == config.bind:
        raise ConfigError("server.admin_port", "must differ from server.port")
    return config


def load_config(path: str | Path | None) -> ServiceConfig:
    """Read a TOML config file (or the defaults when ``path`` is None)."""
    if path is None:
        return ServiceConfig()
    try:
        with open(path, "rb") as handle:
            data = tomllib.load(handle)
    except OSError as exc:
        raise ConfigError("--config", f"cannot read {str(path)!r}: {exc.strerror}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError("--config", f"{str(path)!r} is not valid TOML: {exc}") from exc
    return config_from_mapping(data)


def with_overrides(config: ServiceConfig, **overrides: Any) -> ServiceConfig:
    """Apply command-line overrides (None means "not given")."""
    given: dict[str, Any] = {k: v for k, v in overrides.items() if v is not None}
    sections = {name: dict(s) for name, s in config.plugin_config.items()}
    for key, (plugin, plugin_key) in GC_POLICY_KEYS.items():
        if key in given:
            sections.setdefault(plugin, {})[plugin_key] = given.pop(key)
    if "enable" in given:
        given["enable"] = (*config.enable, *given["enable"])
    if "disable" in given:
        given["disable"] = (*config.disable, *given["disable"])
    return validate(attrs.evolve(config, plugin_config=sections, **given))
