"""Service configuration: TOML layout, flags on top, errors that name the key."""

from __future__ import annotations

import importlib.metadata
import logging
import tomllib

import pytest

from scheduler.cli import main, parse_args
from scheduler.config import _serve as serve
from scheduler.core import ConfigError
from scheduler.service import ServiceConfig, build_policies, config_from_mapping, with_overrides

EXAMPLE = """
[server]
bind = "127.0.0.1"
port = 0
admin_port = 0

[liveness]
ping_interval = "2s"
reconnect_grace = "3s"

[gc]
sweep_interval = "30s"
host_ttl = "10m"

[plugins]
enable = ["phi_accrual"]
disable = ["capacity"]

[plugins.phi_accrual]
threshold = 10.0

[log]
format = "json"
"""


def test_a_full_file_and_flags_on_top() -> None:
    config = config_from_mapping(tomllib.loads(EXAMPLE))
    assert config.ping_interval == 2.0
    assert config.reconnect_grace == 3.0
    assert config.plugin_config["announce_ttl"] == {"host_ttl": 600.0}
    config = with_overrides(config, ping_interval=0.5, host_ttl=60.0, disable=("x",))
    assert config.ping_interval == 0.5
    assert config.plugin_config["announce_ttl"] == {"host_ttl": 60.0}
    assert config.disable == ("capacity", "x")
    policies = build_policies(with_overrides(config, disable=()))
    assert "phi_accrual" in policies.names
    assert "capacity" not in policies.names


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("[liveness]\nping_intervl = '5s'", "liveness.ping_intervl"),
        ("[liveness]\nping_interval = 'soon'", "liveness.ping_interval"),
        ("[liveness]\nping_interval = 0", "liveness.ping_interval"),
        ("[server]\nport = '80'", "server.port"),
        ("[server]\nport = 70000", "server.port"),
        ("[log]\nformat = 'xml'", "log.format"),
        ("[plugins]\nenable = 'phi_accrual'", "plugins.enable"),
        ("[nope]\nx = 1", "nope"),
        (
            "[liveness]\nreconnect_grace = '1s'\n"
            "[plugins.disconnect_grace]\nreconnect_grace = '2s'",
            "plugins.disconnect_grace.reconnect_grace",
        ),
    ],
)
def test_bad_config_names_the_key(text: str, key: str) -> None:
    with pytest.raises(ConfigError) as info:
        config_from_mapping(tomllib.loads(text))
    assert info.value.key == key


def test_reconnect_grace_is_one_setting_wherever_it_is_written() -> None:
    in_section = config_from_mapping(
        tomllib.loads("[plugins.disconnect_grace]\nreconnect_grace = '7s'")
    )
    assert in_section.reconnect_grace == 7.0
    assert with_overrides(in_section, reconnect_grace=2.0).reconnect_grace == 2.0


def test_replacing_disconnect_grace_logs_no_spurious_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    config = ServiceConfig(disable=("disconnect_grace",))
    with caplog.at_level(logging.WARNING, logger="scheduler.plugins"):
        policies = build_policies(config)
    assert "disconnect_grace" not in policies.names
    assert "have no effect" not in caplog.text


def test_an_unknown_flag_is_one_line_with_a_suggestion(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["serve", "--prot", "1"])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert err.splitlines() == [
        "scheduler serve: error: unrecognized arguments: --prot 1 (did you mean --port or "
        "--peer-ttl?)",
        "run `scheduler serve --help` for every flag",
    ]


def test_a_bad_flag_value_is_one_line_naming_the_rule(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["serve", "--port", "99999"])
    err = capsys.readouterr().err
    assert err.splitlines()[0] == (
        "scheduler serve: error: argument --port: port must be 0-65535, got 99999"
    )
    assert "usage:" not in err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["serve", "--reconnect-grace", "-1s"], "argument --reconnect-grace: expected a duration"),
        (["serve", "--port", "-5"], "argument --port: port must be 0-65535, got -5"),
        (["peer", "--scheduler", "ws://x/ws", "--announce-interval", "-3s"], "expected a duration"),
        (
            ["peer", "--scheduler", "ws://x/ws", "--upload-bandwidth", "fast"],
            "argument --upload-bandwidth: expected bits per second like 1G",
        ),
        (
            ["peer", "--scheduler", "ws://x/ws", "--upload-bandwidth", "20T"],
            "bandwidth must be > 0 and at most 10 Tbit/s",
        ),
    ],
)
def test_a_value_that_starts_with_a_dash_reaches_the_flags_own_check(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2
    assert message in capsys.readouterr().err


def test_version_prints_the_installed_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0
    assert (
        capsys.readouterr().out == f"scheduler {importlib.metadata.version('trio-p2p-scheduler')}\n"
    )


def test_the_tables_default_to_the_local_admin_address() -> None:
    for command in ("hosts", "peers", "tasks"):
        assert parse_args([command]).admin == "http://127.0.0.1:8000"


def test_a_removed_setting_still_loads_with_one_warning_line() -> None:
    resolved = serve.resolve({"server": {"inbox_size": 256, "port": 9}}, {})
    assert resolved.values["server.port"] == 9
    assert "server.inbox_size" not in resolved.values
    (line,) = resolved.deprecated
    assert line.startswith("server.inbox_size in the configuration file is no longer used")
    from_env = serve.resolve({}, {"SCHEDULER_SERVER_INBOX_SIZE": "4"})
    assert from_env.deprecated == (
        "SCHEDULER_SERVER_INBOX_SIZE (server.inbox_size) is "
        + serve.REMOVED["server.inbox_size"]
        + "; unset it",
    )
    assert serve.resolve({}, {}).deprecated == ()


def test_a_removed_setting_is_no_flag(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["serve", "--inbox-size", "3"])
    assert "unrecognized arguments: --inbox-size 3" in capsys.readouterr().err
