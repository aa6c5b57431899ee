"""Service configuration: a TOML file, environment variables and flags, layered.

What each setting is (type, default, bounds, help) is declared once, in
:mod:`scheduler.config`; this module only turns the merged values
into a :class:`ServiceConfig`. A bad value raises :class:`ConfigError` naming
it (``liveness.ping_interval: expected a duration ...``, or the environment
variable); the CLI turns that into exit status 2.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final, final

import attrs

from .. import config as serve
from ..core import ConfigError, RecordLimits

#: ServiceConfig attribute -> (section.key, default), for every service-owned setting.
_ATTRS: Final = {
    setting.attr: (section.qualified(setting.key), setting.default)
    for section, setting in serve.entries()
    if setting.target is None
}
#: GC settings that live in a built-in policy's section: flag/key -> (plugin, key).
GC_POLICY_KEYS: Final = {
    setting.key: setting.target for setting in serve.GC if setting.target is not None
}


def _default(attr: str) -> Any:
    return _ATTRS[attr][1]


@final
@attrs.frozen(kw_only=True)
class ServiceConfig:
    """Every setting of ``scheduler serve``; defaults come from the declaration."""

    # [server]
    bind: str = _default("bind")
    port: int = _default("port")
    admin_bind: str | None = _default("admin_bind")
    admin_port: int = _default("admin_port")
    max_sessions: int = _default("max_sessions")
    max_message_size: int = _default("max_message_size")
    inbox_size: int = _default("inbox_size")
    outbox_size: int = _default("outbox_size")
    # [liveness]
    ping_interval: float = _default("ping_interval")
    ping_timeout: float = _default("ping_timeout")
    send_timeout: float = _default("send_timeout")
    close_timeout: float = _default("close_timeout")
    announce_timeout: float = _default("announce_timeout")
    reconnect_grace: float = _default("reconnect_grace")
    error_limit: int = _default("error_limit")
    error_window: float = _default("error_window")
    shutdown_timeout: float = _default("shutdown_timeout")
    # [gc]
    sweep_interval: float = _default("sweep_interval")
    # [plugins]
    enable: tuple[str, ...] = _default("enable")
    disable: tuple[str, ...] = _default("disable")
    entrypoints: bool = _default("entrypoints")
    plugin_config: Mapping[str, Mapping[str, Any]] = attrs.field(factory=dict)
    # [log]
    log_format: str = _default("log_format")
    log_level: str = _default("log_level")
    # [records]
    max_piece_count: int = _default("max_piece_count")
    max_peers_per_host: int = _default("max_peers_per_host")
    max_tasks_per_host: int = _default("max_tasks_per_host")
    max_back_to_source_per_host: int = _default("max_back_to_source_per_host")

    def policy_config(self) -> dict[str, dict[str, Any]]:
        """The ``[plugins.<name>]`` sections, as the operator wrote them."""
        return {name: dict(section) for name, section in self.plugin_config.items()}

    def policy_defaults(self) -> dict[str, dict[str, Any]]:
        """Service settings that a built-in policy applies (if it is loaded)."""
        return {"disconnect_grace": {"reconnect_grace": self.reconnect_grace}}

    def record_limits(self) -> RecordLimits:
        """The bounds the core applies to what one host can make it keep."""
        return RecordLimits(
            max_piece_count=self.max_piece_count,
            max_peers_per_host=self.max_peers_per_host,
            max_tasks_per_host=self.max_tasks_per_host,
            max_back_to_source_per_host=self.max_back_to_source_per_host,
        )

    @property
    def admin_host(self) -> str:
        return self.admin_bind or self.bind


def config_from_resolved(resolved: serve.Resolved) -> ServiceConfig:
    """The ServiceConfig of merged settings (see :func:`scheduler.config.resolve`)."""
    values = {attr: resolved.values[qualified] for attr, (qualified, _) in _ATTRS.items()}
    plugin_config = {name: dict(section) for name, section in resolved.plugin_sections.items()}
    return validate(ServiceConfig(plugin_config=plugin_config, **values))


def resolve_config(
    path: str | Path | None,
    environ: Mapping[str, str] | None = None,
    flags: Mapping[str, Any] | None = None,
) -> serve.Resolved:
    """Defaults < the TOML file at ``path`` < ``environ`` < ``flags``; validated."""
    resolved = serve.resolve(read_toml(path), environ, flags)
    config_from_resolved(resolved)  # the cross-field checks
    return resolved


def config_from_mapping(data: Mapping[str, Any]) -> ServiceConfig:
    """Build a ServiceConfig from the parsed TOML layout (see docs/operations.md)."""
    return config_from_resolved(serve.resolve(data))


def validate(config: ServiceConfig) -> ServiceConfig:
    """Cross-field checks that the per-key parsing cannot do."""
    if config.port == config.admin_port != 0 and config.admin_host == config.bind:
        raise ConfigError("server.admin_port", "must differ from server.port")
    return config


def read_toml(path: str | Path | None) -> dict[str, Any]:
    """The parsed TOML file (empty when ``path`` is None)."""
    if path is None:
        return {}
    try:
        with open(path, "rb") as handle:
            return tomllib.load(handle)
    except OSError as exc:
        raise ConfigError("--config", f"cannot read {str(path)!r}: {exc.strerror}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError("--config", f"{str(path)!r} is not valid TOML: {exc}") from exc


def load_config(path: str | Path | None) -> ServiceConfig:
    """Read a TOML config file (or the defaults when ``path`` is None)."""
    return config_from_mapping(read_toml(path))


def with_overrides(config: ServiceConfig, **overrides: Any) -> ServiceConfig:
    """Apply overrides by attribute or ``[gc]`` key (None means "not given").

    Each value is checked against its declaration; ``enable`` and ``disable`` add
    to the lists, as their flags do.
    """
    given: dict[str, Any] = {k: v for k, v in overrides.items() if v is not None}
    sections = {name: dict(s) for name, s in config.plugin_config.items()}
    for key, (plugin, plugin_key) in GC_POLICY_KEYS.items():
        if key in given:
            where = serve.GC.qualified(key)
            sections.setdefault(plugin, {})[plugin_key] = serve.GC[key].parse(given.pop(key), where)
    for attr, value in list(given.items()):
        if attr not in _ATTRS:
            raise TypeError(f"with_overrides() got an unexpected setting {attr!r}")
        qualified = _ATTRS[attr][0]
        given[attr] = serve.setting_named(qualified).parse(value, qualified)
    if "enable" in given:
        given["enable"] = (*config.enable, *given["enable"])
    if "disable" in given:
        given["disable"] = (*config.disable, *given["disable"])
    return validate(attrs.evolve(config, plugin_config=sections, **given))
