"""The service's side of a cluster: who it is in the registry, and the members it lists.

``serve --registry URL`` makes a `Registrar` (``_registrar.py``) out of the ``[cluster]``
settings; without it there is no registrar, and ``GET /api/v1/schedulers`` lists this
process alone.
"""

from __future__ import annotations

import logging
import socket
import urllib.parse
from typing import Any, Final

from ..core import ConfigError
from ..registry import DEFAULT_CLUSTER, ClusterKeys, Identity, text_problem, url_problem
from ._auth import read_key
from ._config import ServiceConfig, is_loopback
from ._logging import fields
from ._registrar import Registrar

log = logging.getLogger("scheduler.registry")

_WILDCARDS: Final = frozenset({"0.0.0.0", "::", "[::]", ""})


def default_name() -> str:
    """The scheduler's name when ``--name`` is not given: this machine's hostname."""
    return socket.gethostname()


def check_url(value: str, schemes: tuple[str, ...], where: str) -> urllib.parse.SplitResult:
    """``value`` parsed, if it is an absolute URL of one of ``schemes`` with a host, no
    ``user:password@`` and no control characters or whitespace."""
    problem = url_problem(value, schemes)
    if problem is not None:
        raise ConfigError(where, problem)
    return urllib.parse.urlsplit(value)


def check_name(value: str, where: str) -> str:
    """``value``, if it may be a scheduler name or cluster id (printable, no whitespace)."""
    problem = text_problem(value)
    if problem is not None:
        raise ConfigError(where, problem)
    return value


def _reachable(url: str) -> str:
    """A bound URL as other machines can use it: a wildcard host becomes the hostname."""
    parts = urllib.parse.urlsplit(url)
    if (parts.hostname or "") not in _WILDCARDS:
        return url
    port = f":{parts.port}" if parts.port else ""
    return parts._replace(netloc=f"{socket.getfqdn()}{port}").geturl()


def cluster_identity(
    *,
    cluster_id: str | None,
    name: str | None,
    boot_id: str,
    ws_url: str,
    admin_url: str,
    advertise: str | None,
    advertise_admin: str | None,
) -> Identity:
    """The row this process registers, from its settings and its bound URLs."""
    url = advertise or _reachable(ws_url)
    parts = check_url(url, ("ws", "wss"), "cluster.advertise")
    admin = advertise_admin or (_reachable(admin_url) if admin_url else None)
    admin_port = None
    if admin is not None:
        admin_port = check_url(admin, ("http", "https"), "cluster.advertise_admin").port
    return Identity(
        cluster_id=check_name(cluster_id or DEFAULT_CLUSTER, "cluster.id"),
        name=check_name(name or default_name(), "cluster.name"),
        boot_id=boot_id,
        url=url,
        address=str(parts.hostname),
        port=parts.port or (443 if parts.scheme == "wss" else 80),
        admin_url=admin,
        admin_port=admin_port,
    )


def check_cluster(config: ServiceConfig) -> None:
    """The ``[cluster]`` settings that can be checked before anything starts; ConfigError."""
    check_name(config.cluster_id, "cluster.id")
    check_name(config.scheduler_name or default_name(), "cluster.name")
    if config.advertise is not None:
        check_url(config.advertise, ("ws", "wss"), "cluster.advertise")
    if config.advertise_admin is not None:
        check_url(config.advertise_admin, ("http", "https"), "cluster.advertise_admin")
    cluster_keys(config)
    if config.registry is not None:
        _check_registry(config.registry, config.lease_interval, config.registry_timeout)


def cluster_keys(config: ServiceConfig) -> ClusterKeys | None:
    """The cluster key and the previous one, read from their files (None without a key)."""
    if config.cluster_key_file is None:
        return None
    previous = config.cluster_previous_key_file
    return ClusterKeys(
        read_key(config.cluster_key_file, "cluster.key_file"),
        () if previous is None else (read_key(previous, "cluster.previous_key_file"),),
    )


def registry_is_local(registry: str) -> bool:
    """Whether every host of a PostgreSQL URL is this machine (loopback or a Unix socket)."""
    hosts = _registry_host(registry)
    return all(h.startswith("/") or is_loopback(h) for h in hosts.split(",") if h)


def open_registrar(config: ServiceConfig) -> Registrar | None:
    """The registrar ``--registry`` asks for (None without it); ConfigError without psycopg."""
    if config.registry is None:
        return None
    check_cluster(config)
    from ..registry._store import RegistryStore  # noqa: PLC0415 (psycopg is optional)

    keys = cluster_keys(config)
    if keys is None and not registry_is_local(config.registry):
        log.warning(
            "no cluster.key_file: every row of the registry is trusted as read; whoever can "
            "write its database can list schedulers to clients and take names over",
            extra=fields(registry_host=_registry_host(config.registry)),
        )
    timeout = config.registry_timeout
    store = RegistryStore(config.registry, timeout=timeout, max_connections=2, keys=keys)
    return Registrar(
        store,
        interval=config.lease_interval,
        timeout=timeout,
        max_threads=2,
        owns_store=True,
        keys=keys,
        admin_key=None
        if config.auth_key_file is None
        else read_key(config.auth_key_file, "auth.key_file"),
    )


def _registry_host(registry: str) -> str:
    """The ``host`` of a PostgreSQL URL (hosts, comma-separated; "" for the default socket)."""
    from psycopg.conninfo import conninfo_to_dict  # noqa: PLC0415 (psycopg is optional)

    return str(conninfo_to_dict(registry).get("host") or "")


def _check_registry(registry: str, lease_interval: float, timeout: float) -> None:
    if not registry.startswith(("postgresql://", "postgres://")) and "=" not in registry:
        raise ConfigError(
            "cluster.registry", f"expected postgresql://USER@HOST/DATABASE, got {registry!r}"
        )
    if not 0 < timeout <= lease_interval:
        raise ConfigError(
            "cluster.timeout",
            f"must be at most lease_interval ({lease_interval:g} s), got {timeout:g} s",
        )
    try:
        from psycopg.conninfo import conninfo_to_dict  # noqa: PLC0415 (psycopg is optional)
    except ImportError:
        raise ConfigError(
            "cluster.registry",
            "needs psycopg 3: pip install 'trio-p2p-scheduler[cluster]'",
        ) from None
    try:
        conninfo_to_dict(registry)
    except Exception as exc:  # psycopg.ProgrammingError: the URL does not parse
        raise ConfigError("cluster.registry", f"not a PostgreSQL URL: {exc}") from None


def members_json(registrar: Registrar | None, me: Identity) -> list[dict[str, Any]]:
    """``GET /api/v1/schedulers``: the active members, or this process alone.

    With a registry each member also carries ``stale`` (true while this process serves
    on the member list it read before the registry went down for everyone, and for a
    member of that list not registered again within a lease after) and ``roster_age``
    (seconds since the list was read); clients that do not know the two keys read the
    list as before.
    """
    if registrar is None:
        return [
            {
                "name": me.name,
                "url": me.url,
                "admin_url": me.admin_url,
                "cluster_id": me.cluster_id,
                "boot_id": me.boot_id,
                "lease_expires_at": None,
            }
        ]
    age = registrar.roster_age()
    rounded = None if age is None else round(age, 3)
    return [
        member.to_json() | {"stale": stale, "roster_age": rounded}
        for member, stale in registrar.listing()
    ]
