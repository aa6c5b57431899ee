"""What a scheduler registers as, from its settings and bound URLs (no database)."""

from __future__ import annotations

import socket

import pytest

from scheduler.core import ConfigError
from scheduler.registry import Identity
from scheduler.service import ServiceConfig
from scheduler.service._cluster import cluster_identity, members_json, open_registrar


def make(**overrides: str | None) -> Identity:
    options: dict[str, str | None] = {
        "cluster_id": None,
        "name": None,
        "boot_id": "b1",
        "ws_url": "ws://127.0.0.1:8002/ws",
        "admin_url": "http://127.0.0.1:8000",
        "advertise": None,
        "advertise_admin": None,
    }
    return cluster_identity(**(options | overrides))  # type: ignore[arg-type]


def test_defaults_are_the_hostname_and_the_bound_urls() -> None:
    me = make()
    assert me.name == socket.gethostname()
    assert me.cluster_id == "default"
    assert (me.url, me.address, me.port) == ("ws://127.0.0.1:8002/ws", "127.0.0.1", 8002)
    assert (me.admin_url, me.admin_port) == ("http://127.0.0.1:8000", 8000)


def test_a_wildcard_bind_advertises_this_machine() -> None:
    me = make(ws_url="ws://0.0.0.0:8002/ws")
    assert me.url == f"ws://{socket.getfqdn()}:8002/ws"


def test_the_advertised_urls_win() -> None:
    me = make(
        name="s1",
        cluster_id="prod",
        advertise="wss://s1.example/ws",
        advertise_admin="https://s1.example:9000",
    )
    assert (me.name, me.cluster_id, me.port, me.admin_port) == ("s1", "prod", 443, 9000)


@pytest.mark.parametrize(
    ("field", "value", "key"),
    [
        ("advertise", "http://s1/ws", "cluster.advertise"),
        ("advertise", "ws:///ws", "cluster.advertise"),
        ("advertise", "ws://s1:99999/ws", "cluster.advertise"),
        ("advertise_admin", "ws://s1:8000", "cluster.advertise_admin"),
    ],
)
def test_a_bad_url_is_a_config_error(field: str, value: str, key: str) -> None:
    with pytest.raises(ConfigError, match=key):
        make(**{field: value})


def test_without_a_registry_the_list_is_this_process() -> None:
    me = make(name="solo")
    [entry] = members_json(None, me)
    assert entry["name"] == "solo"
    assert entry["url"] == "ws://127.0.0.1:8002/ws"
    assert entry["lease_expires_at"] is None


@pytest.mark.parametrize(
    ("url", "timeout", "message"),
    [
        ("mysql://db/x", 1.0, "expected postgresql://"),
        ("postgresql://db/x?nonsense=1", 1.0, "not a PostgreSQL URL"),
        ("postgresql://db/x", 6.0, "at most lease_interval"),
    ],
)
def test_a_bad_registry_setting_is_a_config_error(url: str, timeout: float, message: str) -> None:
    pytest.importorskip("psycopg", reason="the registry needs the cluster extra")
    config = ServiceConfig(registry=url, lease_interval=5.0, registry_timeout=timeout)
    with pytest.raises(ConfigError, match=message):
        open_registrar(config)


def test_a_bad_advertised_url_stops_serve_before_it_binds(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from scheduler.cli import main  # noqa: PLC0415 (the CLI imports lazily too)

    with pytest.raises(SystemExit) as stopped:
        main(["serve", "--advertise", "http://s1:8002/ws"])
    assert stopped.value.code == 2
    assert "cluster.advertise: expected ws://HOST[:PORT]/..." in capsys.readouterr().err
