"""Every setting declared once: the declaration drives parsing, env, flags, --help and docs."""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import attrs
import pytest

from scheduler import cli, hookimpl
from scheduler import config as serve
from scheduler.config import __main__ as generator
from scheduler.core import DEFAULT_SWEEP_INTERVAL, ConfigError, PolicySet
from scheduler.policies import BUILTIN_PLUGINS, load_policies
from scheduler.service import ServiceConfig
from scheduler.service._config import config_from_resolved
from scheduler.settings import Section, duration, format_duration, integer
from scheduler.testing import check_plugin_settings

ROOT = Path(__file__).resolve().parent.parent


def resolve(
    file: dict[str, Any] | None = None,
    env: dict[str, str] | None = None,
    argv: list[str] | None = None,
) -> serve.Resolved:
    flags = serve.flag_values(cli.parse_args(["serve", *(argv or [])]))
    return serve.resolve(file, env, flags)


# --- the declaration ------------------------------------------------------------------------


def test_service_config_has_one_attribute_per_declared_setting_with_its_default() -> None:
    fields = {f.name: f.default for f in attrs.fields(ServiceConfig)}
    fields.pop("plugin_config")
    declared = {s.attr: s.default for _, s in serve.entries() if s.target is None}
    assert fields == declared


def test_the_sweep_default_and_the_gc_aliases_come_from_their_owners() -> None:
    assert serve.GC["sweep_interval"].default is DEFAULT_SWEEP_INTERVAL
    assert ServiceConfig().sweep_interval == DEFAULT_SWEEP_INTERVAL
    aliases = {s.key: s.target for s in serve.GC if s.target is not None}
    assert aliases == {
        "host_ttl": ("announce_ttl", "host_ttl"),
        "peer_ttl": ("peer_lifetime", "peer_ttl"),
        "piece_timeout": ("peer_lifetime", "piece_timeout"),
        "start_timeout": ("peer_start", "start_timeout"),
        "task_idle_ttl": ("task_idle", "task_idle_ttl"),
    }
    for alias in serve.GC:
        if alias.target is not None:
            plugin, key = alias.target
            owner = next(p for p in BUILTIN_PLUGINS if getattr(p, "name", "") == plugin)
            assert alias.default == owner.settings[key].default  # type: ignore[attr-defined]
    grace = serve.LIVENESS["reconnect_grace"]
    assert grace.default == ServiceConfig().policy_defaults()["disconnect_grace"]["reconnect_grace"]


def test_format_duration_round_trips() -> None:
    setting = duration("d", 0, "a duration")
    for seconds in (0.0, 0.5, 1.0, 5.0, 60.0, 90.0, 600.0, 3600.0, 86400.0, 1.25):
        assert setting.parse(format_duration(seconds), "d") == seconds


def test_a_declaration_rejects_its_own_bad_default() -> None:
    with pytest.raises(ConfigError):
        integer("n", 0, "a count", minimum=1)
    with pytest.raises(ValueError, match="twice"):
        Section.plugin("x", integer("n", 1, "a"), integer("n", 2, "b"))


# --- layers: file < env < flag ----------------------------------------------------------------


def test_precedence_is_flag_then_env_then_file_then_default() -> None:
    file = {"server": {"port": 7000, "max_sessions": 5}, "liveness": {"ping_interval": "2s"}}
    env = {"SCHEDULER_SERVER_PORT": "9000", "SCHEDULER_LIVENESS_RECONNECT_GRACE": "1s"}
    resolved = resolve(file, env, ["--port", "9100"])
    assert resolved.values["server.port"] == 9100
    assert resolved.sources["server.port"] == "flag"
    assert (resolved.values["server.max_sessions"], resolved.sources["server.max_sessions"]) == (
        5,
        "file",
    )
    assert resolved.values["liveness.reconnect_grace"] == 1.0
    assert resolved.sources["liveness.reconnect_grace"] == "env"
    assert resolved.sources["liveness.ping_timeout"] == "default"
    config = config_from_resolved(resolve(file, env))
    assert (config.port, config.reconnect_grace, config.ping_interval) == (9000, 1.0, 2.0)


def test_environment_lists_are_comma_separated_and_flags_add_to_them() -> None:
    env = {
        "SCHEDULER_PLUGINS_DISABLE": "capacity, task_idle",
        "SCHEDULER_PLUGINS_ENTRYPOINTS": "no",
    }
    resolved = resolve(
        {"plugins": {"disable": ["x"]}}, env, ["--disable-plugin", "hostname_unique"]
    )
    assert resolved.values["plugins.disable"] == ("capacity", "task_idle", "hostname_unique")
    assert resolved.values["plugins.entrypoints"] is False


@pytest.mark.parametrize(
    ("env", "name"),
    [
        ({"SCHEDULER_SERVER_PORT": "x"}, "SCHEDULER_SERVER_PORT"),
        ({"SCHEDULER_SERVER_PORT": "70000"}, "SCHEDULER_SERVER_PORT"),
        ({"SCHEDULER_LIVENESS_RECONNECT_GRACE": "soon"}, "SCHEDULER_LIVENESS_RECONNECT_GRACE"),
        ({"SCHEDULER_LIVENESS_PING_INTERVAL": "0"}, "SCHEDULER_LIVENESS_PING_INTERVAL"),
        ({"SCHEDULER_PLUGINS_ENTRYPOINTS": "maybe"}, "SCHEDULER_PLUGINS_ENTRYPOINTS"),
        ({"SCHEDULER_LOG_FORMAT": "xml"}, "SCHEDULER_LOG_FORMAT"),
        ({"SCHEDULER_SERVER_PROT": "1"}, "SCHEDULER_SERVER_PROT"),
    ],
)
def test_a_bad_environment_variable_is_a_config_error_naming_it(
    env: dict[str, str], name: str
) -> None:
    with pytest.raises(ConfigError) as info:
        resolve(None, env)
    assert info.value.key == name


def test_other_environment_variables_are_ignored() -> None:
    assert resolve(None, {"SCHEDULER_HOME": "/x", "PATH": "/bin"}).values["server.port"] == 8002


def test_gc_aliases_show_and_pass_the_value_in_force() -> None:
    file = {"plugins": {"announce_ttl": {"host_ttl": "30m"}, "task_idle": {"task_idle_ttl": 5}}}
    resolved = resolve(file)
    assert resolved.values["gc.host_ttl"] == 1800.0
    assert resolved.sources["gc.host_ttl"] == "file"
    file["gc"] = {"host_ttl": "10m"}
    env = {"SCHEDULER_GC_TASK_IDLE_TTL": "1m"}
    config = config_from_resolved(resolve(file, env, ["--peer-ttl", "2h"]))
    assert config.plugin_config["announce_ttl"] == {"host_ttl": 600.0}
    assert config.plugin_config["task_idle"] == {"task_idle_ttl": 60.0}
    assert config.plugin_config["peer_lifetime"] == {"peer_ttl": 7200.0}
    assert config_from_resolved(resolve()).plugin_config == {}


# --- the kit's settings check, on every built-in ----------------------------------------------


@pytest.mark.parametrize(
    "plugin",
    [p for p in BUILTIN_PLUGINS if hasattr(p, "settings")],
    ids=lambda p: p.name,
)
def test_every_builtin_setting_rejects_bad_values_by_name(plugin: type) -> None:
    check_plugin_settings(plugin)


def test_every_builtin_declares_its_settings_even_when_it_has_none() -> None:
    assert [p.name for p in BUILTIN_PLUGINS if not hasattr(p, "settings")] == []  # type: ignore[attr-defined]
    with pytest.raises(ConfigError, match=r"plugins\.hostname_unique\.x"):
        load_policies(config={"hostname_unique": {"x": 1}})


class AssignsAsItGoes:
    """A plugin that sets each key as it validates it: a bad key leaves earlier ones set."""

    name = "assigns_as_it_goes"
    settings = Section.plugin(
        name, integer("a", 1, "a", minimum=1), integer("b", 1, "b", minimum=1)
    )

    def __init__(self) -> None:
        self.settings.init(self)

    @hookimpl
    def scheduler_configure(self, config: dict[str, dict[str, Any]]) -> None:
        section = config.get(self.name, {})
        for key in section:  # unknown keys are rejected up front...
            if key not in {s.key for s in self.settings}:
                raise ConfigError(self.settings.qualified(key), "unknown setting")
        for setting in self.settings:  # ...but each key is set as soon as it is checked
            value = section.get(setting.key, setting.default)
            setattr(self, setting.attr, setting.parse(value, self.settings.qualified(setting.key)))


def test_the_check_catches_a_plugin_that_assigns_before_validating_all() -> None:
    PolicySet.from_plugins([AssignsAsItGoes()])  # a well-formed plugin otherwise
    with pytest.raises(AssertionError, match="changed"):
        check_plugin_settings(AssignsAsItGoes)


# --- generated surfaces agree with the declaration -------------------------------------------


def serve_parser() -> argparse.ArgumentParser:
    parser = cli.build_parser()
    (commands,) = (a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    serve_command: argparse.ArgumentParser = commands.choices["serve"]
    return serve_command


def test_serve_flags_are_exactly_the_declared_ones_with_their_defaults_in_help() -> None:
    parser = serve_parser()
    flags = {o for a in parser._actions for o in a.option_strings}
    declared = {s.flag for _, s in serve.entries() if s.flag}
    assert flags == declared | {"-h", "--help", "--config", "--print-config"}
    help_text = " ".join(parser.format_help().split())
    for section, setting in serve.entries():
        line = " ".join(serve.help_text(section, setting).replace("%%", "%").split())
        assert line in help_text
        assert f"default {setting.format(setting.default)}" in line
        assert serve.env_name(section, setting) in line


def test_the_contract_flags_and_keys_are_all_there() -> None:
    flags = {s.flag for _, s in serve.entries()}
    assert flags >= {
        "--bind", "--port", "--admin-bind", "--admin-port", "--max-sessions",
        "--max-message-size", "--ping-interval", "--ping-timeout",
        "--send-timeout", "--reconnect-grace", "--announce-timeout", "--close-timeout",
        "--error-limit", "--error-window", "--shutdown-timeout", "--sweep-interval",
        "--host-ttl", "--peer-ttl", "--piece-timeout", "--task-idle-ttl", "--plugin",
        "--disable-plugin", "--all-plugins", "--log-format", "--log-level",
    }  # fmt: skip
    example = re.search(r"```toml\n(# /etc/scheduler.*?)```", read_doc(), re.S)
    assert example is not None
    data = tomllib.loads(example[1])
    data["plugins"] = {k: v for k, v in data["plugins"].items() if not isinstance(v, dict)}
    written = {f"{name}.{key}" for name, table in data.items() for key in table}
    assert written == {section.qualified(s.key) for section, s in serve.entries()}


def read_doc() -> str:
    return (ROOT / "docs" / "operations.md").read_text(encoding="utf-8")


def test_the_docs_settings_tables_are_the_generated_ones() -> None:
    written = generator.blocks(read_doc())
    assert written == generator.tables(), (
        "run: python -m scheduler.config --update docs/operations.md"
    )
    env_names = set(re.findall(r"`(SCHEDULER_[A-Z_]+)`", "\n".join(written.values())))
    assert env_names == {serve.env_name(sec, s) for sec, s in serve.entries()}


def test_the_generator_prints_the_tables() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "scheduler.config", "--markdown"],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    for table in generator.tables().values():
        assert table in result.stdout


def test_settings_do_not_import_trio() -> None:
    code = "import scheduler.config, sys; assert 'trio' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


# --- scheduler serve --print-config ----------------------------------------------------------


def test_print_config_shows_every_value_with_its_source(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "scheduler.toml"
    config.write_text('[liveness]\nping_interval = "2s"\n[plugins.phi_accrual]\nthreshold = 10\n')
    monkeypatch.setenv("SCHEDULER_SERVER_PORT", "9000")
    argv = ["serve", "--config", str(config), "--print-config", "--plugin", "phi_accrual"]
    assert cli.main([*argv, "--host-ttl", "2h"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"^port = 9000 +# env \(SCHEDULER_SERVER_PORT\)$", out, re.M)
    assert re.search(r'^ping_interval = "2s" +# file$', out, re.M)
    assert re.search(r'^ping_timeout = "2900ms" +# default$', out, re.M)
    assert re.search(r'^host_ttl = "2h" +# flag \(--host-ttl\)$', out, re.M)
    assert "[plugins.announce_ttl]" in out
    assert re.search(r"^threshold = 10 +# file$", out, re.M)
    assert re.search(r"^min_samples = 3 +# default$", out, re.M)
    printed = tomllib.loads(out)  # the output is a valid configuration file
    assert printed["server"]["port"] == 9000


def test_print_config_of_a_bad_value_exits_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SCHEDULER_LIVENESS_RECONNECT_GRACE", "soon")
    with pytest.raises(SystemExit) as info:
        cli.main(["serve", "--print-config"])
    assert info.value.code == 2
    assert "SCHEDULER_LIVENESS_RECONNECT_GRACE: expected a duration" in capsys.readouterr().err


def test_the_builtin_plugins_table_quotes_the_declared_defaults() -> None:
    text = (ROOT / "docs" / "plugins.md").read_text(encoding="utf-8")
    for plugin in BUILTIN_PLUGINS:
        section = getattr(plugin, "settings", None)
        (row,) = [line for line in text.splitlines() if line.startswith(f"| `{plugin.name}` (")]  # type: ignore[attr-defined]
        quoted = dict(re.findall(r"`(\w+)` \(`?([^`),]+)", row.rsplit("|", 2)[1]))
        declared = {} if section is None else {s.key: s.format(s.default) for s in section}
        assert quoted == declared, plugin
