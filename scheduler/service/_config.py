"""Service configuration: a TOML file, environment variables and flags, layered.

What each setting is (type, default, bounds, help) is declared once, in
:mod:`scheduler.config`; this module only turns the merged values
into a :class:`ServiceConfig`. A bad value raises :class:`ConfigError` naming
it (``liveness.ping_interval: expected a duration ...``, or the environment
variable); the CLI turns that into exit status 2.
"""

from __future__ import annotations

import ipaddress
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final, final

import attrs

from .. import config as serve
from ..core import ConfigError, RecordLimits
from ..jobs import JobLimits
from ..session import Network, parse_networks

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
    # [limits]
    max_connections: int = _default("max_connections")
    max_connections_per_address: int = _default("max_connections_per_address")
    max_sessions_per_address: int = _default("max_sessions_per_address")
    handshake_timeout: float = _default("handshake_timeout")
    message_rate: float = _default("message_rate")
    message_burst: int = _default("message_burst")
    rate_violation_limit: int = _default("rate_violation_limit")
    allowed_origins: tuple[str, ...] = _default("allowed_origins")
    refused_host_networks: tuple[str, ...] = _default("refused_host_networks")
    console_streams: int = _default("console_streams")
    # [gc]
    sweep_interval: float = _default("sweep_interval")
    evictions_per_slice: int = _default("evictions_per_slice")
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
    max_upload_share: float = _default("max_upload_share")
    failure_report_window: float = _default("failure_report_window")
    seed_fetches_per_host: int = _default("seed_fetches_per_host")
    seed_fetch_window: float = _default("seed_fetch_window")
    # [jobs]
    jobs_max_running: int = _default("jobs_max_running")
    jobs_max_jobs: int = _default("jobs_max_jobs")
    jobs_max_hosts: int = _default("jobs_max_hosts")
    jobs_deadline: float = _default("jobs_deadline")
    jobs_keep_finished: float = _default("jobs_keep_finished")
    jobs_finished_kept: int = _default("jobs_finished_kept")
    jobs_hosts_in_flight: int = _default("jobs_hosts_in_flight")
    jobs_origin_fetches: int = _default("jobs_origin_fetches")
    jobs_register_timeout: float = _default("jobs_register_timeout")
    # [auth]
    auth_key_file: str | None = _default("auth_key_file")
    auth_previous_key_file: str | None = _default("auth_previous_key_file")
    private_metrics: bool = _default("private_metrics")
    allowed_hosts: tuple[str, ...] = _default("allowed_hosts")
    insecure: bool = _default("insecure")
    # [tls]
    tls_cert_file: str | None = _default("tls_cert_file")
    tls_key_file: str | None = _default("tls_key_file")
    tls_client_ca_file: str | None = _default("tls_client_ca_file")
    # [cluster]
    registry: str | None = _default("registry")
    scheduler_name: str | None = _default("scheduler_name")
    cluster_id: str = _default("cluster_id")
    advertise: str | None = _default("advertise")
    advertise_admin: str | None = _default("advertise_admin")
    lease_interval: float = _default("lease_interval")
    registry_timeout: float = _default("registry_timeout")
    cluster_key_file: str | None = _default("cluster_key_file")
    cluster_previous_key_file: str | None = _default("cluster_previous_key_file")

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
            max_upload_share=self.max_upload_share,
            failure_report_window=self.failure_report_window,
            seed_fetches_per_host=self.seed_fetches_per_host,
            seed_fetch_window=self.seed_fetch_window,
        )

    def job_limits(self) -> JobLimits:
        """The bounds of the preheat jobs (``[jobs]``)."""
        return JobLimits(
            max_running=self.jobs_max_running,
            max_jobs=self.jobs_max_jobs,
            max_hosts=self.jobs_max_hosts,
            deadline=self.jobs_deadline,
            keep_finished=self.jobs_keep_finished,
            finished_kept=self.jobs_finished_kept,
            hosts_in_flight=self.jobs_hosts_in_flight,
            origin_fetches=self.jobs_origin_fetches,
            register_timeout=self.jobs_register_timeout,
        )

    def refused_networks(self) -> tuple[Network, ...]:
        """``limits.refused_host_networks``, with ``"auto"`` expanded for ``server.bind``."""
        return parse_networks(self.refused_host_networks, loopback_listener=is_loopback(self.bind))

    @property
    def admin_host(self) -> str:
        return self.admin_bind or self.bind

    @property
    def tls(self) -> bool:
        """True when both listeners speak TLS."""
        return self.tls_cert_file is not None


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
    if (config.tls_cert_file is None) != (config.tls_key_file is None):
        raise ConfigError("tls.key_file", "tls.cert_file and tls.key_file go together")
    if config.tls_client_ca_file is not None and config.tls_cert_file is None:
        raise ConfigError("tls.client_ca_file", "needs tls.cert_file and tls.key_file")
    if config.auth_previous_key_file is not None and config.auth_key_file is None:
        raise ConfigError("auth.previous_key_file", "needs auth.key_file")
    if config.cluster_previous_key_file is not None and config.cluster_key_file is None:
        raise ConfigError("cluster.previous_key_file", "needs cluster.key_file")
    if config.registry_timeout > config.lease_interval:
        raise ConfigError("cluster.timeout", "must be at most cluster.lease_interval")
    for key in ("scheduler_name", "cluster_id"):
        if getattr(config, key) == "":
            where = "cluster.name" if key == "scheduler_name" else "cluster.id"
            raise ConfigError(where, "must not be empty")
    try:
        config.refused_networks()
    except ValueError as exc:
        raise ConfigError("limits.refused_host_networks", str(exc)) from None
    check_protected_mode(config)
    return config


#: Names that always mean this machine.
LOOPBACK_NAMES: Final = frozenset({"localhost", "localhost.", "ip6-localhost"})


def is_loopback(address: str) -> bool:
    """True for a loopback address or name (``127.0.0.1``, ``::1``, ``localhost``)."""
    host = address.strip("[]").lower()
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_protected_mode(config: ServiceConfig) -> None:
    """Protected mode: no listener on a non-loopback address without a credential.

    The peers' listener needs a token key or client certificates, the admin
    listener a token key; ``auth.insecure`` lifts the rule.
    """
    if config.insecure:
        return
    peers_guarded = config.auth_key_file is not None or config.tls_client_ca_file is not None
    admin_hint = "" if config.admin_bind else ", keep admin on loopback (--admin-bind 127.0.0.1)"
    for key, address, guarded, hint in (
        ("server.bind", config.bind, peers_guarded, ""),
        ("server.admin_bind", config.admin_host, config.auth_key_file is not None, admin_hint),
    ):
        if not guarded and not is_loopback(address):
            raise ConfigError(
                key,
                f"refusing to listen on non-loopback {address} without authentication "
                f"(protected mode); set auth.key_file (--auth-key-file){hint}, "
                "or pass --insecure",
            )


def risky_modes(config: ServiceConfig) -> list[str]:
    """What a valid configuration leaves open, one sentence each (start-up warnings).

    * tokens on a non-loopback listener without TLS: bearer tokens cross the
      network in clear;
    * ``auth.insecure`` lifting protected mode: a non-loopback listener with no
      credential at all.
    """
    peers_guarded = config.auth_key_file is not None or config.tls_client_ca_file is not None
    listeners = (
        ("peers", config.bind, peers_guarded),
        ("admin", config.admin_host, config.auth_key_file is not None),
    )
    exposed = [(name, address, guarded) for name, address, guarded in listeners
               if not is_loopback(address)]  # fmt: skip
    risks = []
    clear = [f"{name} {address}" for name, address, guarded in exposed if guarded]
    if clear and config.auth_key_file is not None and config.tls_cert_file is None:
        risks.append(
            f"bearer tokens cross the network in clear to {' and '.join(clear)}: anyone on "
            "the path can read one and use it until it expires; set tls.cert_file and "
            "tls.key_file (--tls-cert-file, --tls-key-file)"
        )
    open_listeners = [f"{name} {address}" for name, address, guarded in exposed if not guarded]
    if open_listeners and config.insecure:
        risks.append(
            f"auth.insecure (--insecure): {' and '.join(open_listeners)} without "
            "authentication: anyone who can reach it may announce, take over or evict any "
            "host, and read or evict through the admin API; set auth.key_file "
            "(--auth-key-file)"
        )
    return risks


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
