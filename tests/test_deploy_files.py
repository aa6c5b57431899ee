"""The files under deploy/ are what their documentation says, and the tools accept them.

* **Alert rules** (``deploy/prometheus/alerts.yml``): rule for rule the alert tables of
  docs/operations.md (name, expression, ``for``, severity, description); ``promtool check
  rules``, ``promtool test rules`` on ``alerts.test.yml`` and ``promtool check config``
  pass. Every dashboard expression goes through ``promtool check rules`` too, as a
  recording rule, so it is PromQL Prometheus parses. Without promtool these tests skip,
  with the package to install; under ``CI=true`` they fail.
* **The Grafana dashboard** (``deploy/grafana/scheduler.json``): its shape (schema
  version, the ``datasource`` variable, no data source uid written in, unique ids, a
  grid without overlaps) and the panels it promises. Whether its metrics exist is
  tests/test_deploy_metrics.py's job.
* **The systemd unit** (``deploy/systemd/scheduler.service``): ``systemd-analyze
  verify`` finds no error nor warning in it and ``systemd-analyze security --offline``
  rates its exposure 2.0 or less; both run on a copy whose ``ExecStart`` names this
  checkout's ``scheduler`` instead of ``/opt/scheduler/bin/scheduler`` (verify checks the
  program exists). They skip, with the reason, where systemd-analyze is absent or cannot
  verify even a trivial unit. Whatever the machine: ``scheduler serve`` accepts the
  unit's command line with the example configuration, and the unit's limits fit the
  settings' defaults (open files, the stop timeout). Not checked: the service running
  under systemd in its sandbox (no systemd runs on the test machines).
* **Docker** (``deploy/docker/``): no engine runs here, so no image is built and no
  container started. What is checked: every path the Dockerfile copies exists, the
  copied tree holds what ``pip install`` reads (each project's pyproject.toml, readme,
  packages and package data), the compose file builds from the checkout with that
  Dockerfile and pulls no other image of ours, ``scheduler serve`` accepts each
  member's command line and environment (the Dockerfile's ``ENV`` included), and the
  docs show the compose file as it is.

The tests that run a program (promtool, systemd-analyze, ``scheduler serve``) are marked
``e2e``, as every test that starts a process is.
"""

from __future__ import annotations

import fnmatch
import os
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any, Final

import pytest
import yaml

from scheduler.config import setting_named
from scheduler.service._fds import RESERVED_FDS
from tests.deploy_files import (
    ALERT_TESTS,
    ALERTS,
    COMPOSE,
    DASHBOARD,
    DOCKERFILE,
    EXAMPLE_CONFIG,
    OPERATIONS,
    PROMETHEUS_CONFIG,
    REGISTRY_GROUP,
    REGISTRY_ROW,
    ROOT,
    UNIT,
    alert_groups,
    dashboard,
    dashboard_queries,
    plain_promql,
)

SEVERITIES: Final = frozenset({"critical", "warning", "info"})
ANNOTATIONS: Final = frozenset({"summary", "description", "action"})
#: The program the unit runs, replaced by this checkout's when the unit is verified.
UNIT_PROGRAM: Final = "/opt/scheduler/bin/scheduler"
#: Where the unit and the docs install the example configuration and its key.
CONFIG_DIR: Final = "/etc/scheduler/"


def run(*command: str | Path, cwd: Path = ROOT, env: dict[str, str] | None = None) -> str:
    """Run a command to its end (at most a minute); its output, stdout then stderr."""
    done = subprocess.run(
        [str(part) for part in command],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, f"{command[0]} exited {done.returncode}:\n{output}"
    return output


def tool(name: str, package: str) -> str:
    """The path of ``name``: skip without it, but fail under ``CI=true``."""
    path = shutil.which(name)
    if path is None:
        # A failure under CI=true (tests/conftest.py).
        pytest.skip(f"{name} is not installed (Debian: apt-get install {package})")
    return path


# --- the alert rules and the docs' tables --------------------------------------------


def markdown_section(text: str, heading: str) -> str:
    """The body of the one section titled ``heading`` (``### Alerts``), to the next
    heading of the same or a higher level."""
    level = heading.split(" ", 1)[0]
    lines = text.splitlines()
    starts = [index for index, line in enumerate(lines) if line == heading]
    assert len(starts) == 1, f"{heading!r} appears {len(starts)} times"
    body: list[str] = []
    fenced = False  # a '#' line inside a code block is no heading
    for line in lines[starts[0] + 1 :]:
        if line.startswith("```"):
            fenced = not fenced
        mark = line.split(" ", 1)[0]
        if not fenced and set(mark) == {"#"} and len(mark) <= len(level):
            break
        body.append(line)
    return "\n".join(body)


def table_cells(line: str) -> list[str]:
    """The cells of one Markdown table row; ``\\|`` is a pipe inside a cell."""
    cells = re.split(r"(?<!\\)\|", line.strip().strip("|"))
    return [cell.strip().replace("\\|", "|") for cell in cells]


def table_under(section: str, header: list[str]) -> list[list[str]]:
    """The rows of the table in ``section`` whose header is ``header``."""
    lines = section.splitlines()
    for index, line in enumerate(lines):
        if line.startswith("|") and table_cells(line) == header:
            rows = []
            for row in lines[index + 2 :]:
                if not row.startswith("|"):
                    break
                rows.append(table_cells(row))
            return rows
    raise AssertionError(f"no table with the header {header}")


def code_span(cell: str) -> str:
    assert re.fullmatch(r"`[^`]+`", cell), f"not one code span: {cell!r}"
    return cell[1:-1]


ALERT_TABLE: Final = ["alert", "expression", "for", "severity", "what it means"]


def documented_alerts(heading: str) -> list[tuple[str, str, str, str, str]]:
    section = markdown_section(OPERATIONS.read_text(encoding="utf-8"), heading)
    return [
        (code_span(alert), code_span(expr), wait, severity, meaning)
        for alert, expr, wait, severity, meaning in table_under(section, ALERT_TABLE)
    ]


def shipped_alerts(group_name: str) -> list[tuple[str, str, str, str, str]]:
    (group,) = [group for group in alert_groups() if group["name"] == group_name]
    return [
        (
            rule["alert"],
            " ".join(rule["expr"].split()),
            rule["for"],
            rule["labels"]["severity"],
            rule["annotations"]["description"],
        )
        for rule in group["rules"]
    ]


def test_the_alert_tables_of_the_docs_are_the_rules_of_alerts_yml() -> None:
    assert documented_alerts("### Suggested alerts") == shipped_alerts("scheduler")
    assert documented_alerts("### Alerts") == shipped_alerts(REGISTRY_GROUP)


def test_every_rule_has_for_a_severity_and_what_to_do() -> None:
    groups = alert_groups()
    assert [group["name"] for group in groups] == ["scheduler", REGISTRY_GROUP]
    rules = [rule for group in groups for rule in group["rules"]]
    names = [rule["alert"] for rule in rules]
    assert len(names) == len(set(names)), "two rules share a name"
    for rule in rules:
        assert set(rule) == {"alert", "expr", "for", "labels", "annotations"}, rule["alert"]
        assert re.fullmatch(r"\d+[smh]", rule["for"]), rule["alert"]
        assert rule["labels"] == {"severity": rule["labels"]["severity"]}, rule["alert"]
        assert rule["labels"]["severity"] in SEVERITIES, rule["alert"]
        assert set(rule["annotations"]) == ANNOTATIONS, rule["alert"]
        assert all(text.strip() for text in rule["annotations"].values()), rule["alert"]


@pytest.mark.e2e
def test_promtool_checks_and_unit_tests_the_rules() -> None:
    promtool = tool("promtool", "prometheus")
    rules = sum(len(group["rules"]) for group in alert_groups())
    assert f"SUCCESS: {rules} rules found" in run(promtool, "check", "rules", ALERTS)
    assert "SUCCESS" in run(promtool, "test", "rules", ALERT_TESTS)
    assert "is valid prometheus config file syntax" in run(
        promtool, "check", "config", PROMETHEUS_CONFIG
    )


@pytest.mark.e2e
def test_promtool_refuses_a_broken_rule(tmp_path: Path) -> None:
    """The check above would fail: promtool exits non-zero on a bad expression."""
    promtool = tool("promtool", "prometheus")
    broken = tmp_path / "broken.yml"
    broken.write_text(
        "groups:\n- name: g\n  rules:\n  - alert: A\n    expr: rate(up[5m]\n", encoding="utf-8"
    )
    done = subprocess.run(
        [promtool, "check", "rules", str(broken)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode != 0


@pytest.mark.e2e
def test_every_dashboard_expression_is_promql_that_promtool_parses(tmp_path: Path) -> None:
    promtool = tool("promtool", "prometheus")
    queries = dashboard_queries()
    rules = [
        {"record": f"dashboard:query_{index}", "expr": plain_promql(query.expr)}
        for index, query in enumerate(queries)
    ]
    path = tmp_path / "dashboard-rules.yml"
    path.write_text(
        yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}), encoding="utf-8"
    )
    assert f"SUCCESS: {len(rules)} rules found" in run(promtool, "check", "rules", path)


# --- the Grafana dashboard -------------------------------------------------------------

DATASOURCE: Final = {"type": "prometheus", "uid": "${datasource}"}


def _uids(value: Any) -> list[object]:
    """Every ``uid`` anywhere in a JSON value."""
    if isinstance(value, dict):
        own = [value["uid"]] if "uid" in value else []
        return own + [uid for item in value.values() for uid in _uids(item)]
    if isinstance(value, list):
        return [uid for item in value for uid in _uids(item)]
    return []


def test_the_dashboard_reads_prometheus_through_its_datasource_variable() -> None:
    model = dashboard()
    assert model["schemaVersion"] == 39
    assert model["id"] is None
    variables = {variable["name"]: variable for variable in model["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    assert {"job", "instance"} <= set(variables)
    # The dashboard's own uid, then the variable everywhere a data source is named.
    assert _uids(model) == [model["uid"], *[DATASOURCE["uid"]] * (len(_uids(model)) - 1)]
    for panel in model["panels"]:
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == DATASOURCE, panel["title"]
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["datasource"] == DATASOURCE, panel["title"]
    for name in ("job", "instance"):
        assert variables[name]["datasource"] == DATASOURCE


def test_the_dashboard_panels_have_ids_and_places_of_their_own() -> None:
    panels = dashboard()["panels"]
    ids = [panel["id"] for panel in panels]
    assert len(ids) == len(set(ids))
    taken: set[tuple[int, int]] = set()
    for panel in panels:
        grid = panel["gridPos"]
        assert grid["x"] >= 0, panel["title"]
        assert grid["w"] > 0, panel["title"]
        assert grid["x"] + grid["w"] <= 24, panel["title"]
        cells = {
            (x, y)
            for x in range(grid["x"], grid["x"] + grid["w"])
            for y in range(grid["y"], grid["y"] + grid["h"])
        }
        assert not cells & taken, f"{panel['title']!r} overlaps another panel"
        taken |= cells
        assert panel.get("description") or panel["type"] == "row", panel["title"]


def test_the_dashboard_has_the_promised_panels() -> None:
    """Hosts by state, sessions, evictions by reason, detection latency, decisions,
    dead-parent pushes, decision latency, event-loop lag and the registry's health."""
    by_title: dict[str, list[str]] = {}
    row = ""
    for panel in dashboard()["panels"]:
        if panel["type"] == "row":
            row = panel["title"]
            continue
        exprs = [target["expr"] for target in panel["targets"]]
        by_title[panel["title"]] = exprs
        assert (row == REGISTRY_ROW) == any("registry" in expr for expr in exprs), panel["title"]

    def shows(title: str, *needles: str) -> None:
        text = " ".join(by_title[title])
        for needle in needles:
            assert needle in text, f"{title!r} does not show {needle!r}"

    shows("Hosts by state", "sum by (state) (scheduler_hosts")
    shows("Sessions", "scheduler_sessions")
    shows("Host evictions by reason", "sum by (reason)", "scheduler_host_evictions_total")
    shows("Detection latency", "histogram_quantile(0.99", "scheduler_detection_latency_seconds")
    shows(
        "Scheduling decisions by action and cause",
        "sum by (action, cause)",
        "scheduler_schedule_decisions_total",
    )
    shows("Dead-parent pushes, seed fetches and dropped pushes", "dead_parent_pushes_total")
    shows("Decision latency", "scheduler_schedule_decision_seconds_bucket")
    shows("Event-loop lag", "scheduler_event_loop_lag_seconds_bucket")
    shows("Registry up and lease held", "registry_up", "scheduler_registry_lease_held")
    shows("Registry errors by operation and reason", "scheduler_registry_errors_total")
    shows("Registry outage and cut-off", "scheduler_registry_outage", "scheduler_registry_cut_off")
    shows("Member list age", "scheduler_registry_roster_age_seconds")


# --- the systemd unit ----------------------------------------------------------------


def unit_entries(text: str) -> list[tuple[str, str, str]]:
    """``(section, key, value)`` of a unit file, in order (keys may repeat)."""
    entries: list[tuple[str, str, str]] = []
    section = ""
    pending = ""
    for raw in text.splitlines():
        line = pending + raw.strip()
        pending = ""
        if line.endswith("\\"):
            pending = line[:-1] + " "
            continue
        if not line or line[0] in "#;":
            continue
        if line.startswith("["):
            section = line.strip("[]")
            continue
        key, _, value = line.partition("=")
        entries.append((section, key.strip(), value.strip()))
    return entries


def unit_value(key: str) -> str:
    (value,) = [v for section, k, v in unit_entries(UNIT.read_text()) if k == key]
    return value


def systemd_analyze(tmp_path: Path) -> str:
    """The path of systemd-analyze, once it has verified a trivial unit here."""
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed (Debian: apt-get install systemd)")
    probe = tmp_path / "probe" / "probe.service"
    probe.parent.mkdir()
    probe.write_text("[Service]\nType=oneshot\nExecStart=/bin/true\n", encoding="utf-8")
    done = subprocess.run(
        [analyze, "verify", "--man=no", str(probe)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if done.returncode != 0 or done.stdout + done.stderr:
        pytest.skip(f"systemd-analyze cannot verify units here: {done.stdout}{done.stderr}")
    return analyze


def unit_for_this_machine(tmp_path: Path) -> Path:
    """A copy of the unit whose ExecStart runs this checkout's ``scheduler``."""
    program = Path(sys.executable).with_name("scheduler")
    assert program.exists(), f"no {program}: install the project (pip install -e .)"
    text = UNIT.read_text(encoding="utf-8")
    assert text.count(UNIT_PROGRAM) == 1
    copy = tmp_path / "unit" / UNIT.name
    copy.parent.mkdir()
    copy.write_text(text.replace(UNIT_PROGRAM, str(program)), encoding="utf-8")
    return copy


@pytest.mark.e2e
def test_systemd_analyze_verify_finds_nothing_to_say_about_the_unit(tmp_path: Path) -> None:
    analyze = systemd_analyze(tmp_path)
    # An unknown key is only a warning (exit status 0): any output counts as a failure.
    assert run(analyze, "verify", "--man=no", unit_for_this_machine(tmp_path)) == ""


@pytest.mark.e2e
def test_systemd_analyze_rates_the_sandbox_ok(tmp_path: Path) -> None:
    analyze = systemd_analyze(tmp_path)
    unit = unit_for_this_machine(tmp_path)
    report = run(analyze, "security", "--offline=yes", "--threshold=20", unit)
    assert re.search(r"Overall exposure level for scheduler\.service: [01]\.\d OK", report)


@pytest.mark.e2e
def test_the_unit_runs_scheduler_serve_with_the_example_configuration(tmp_path: Path) -> None:
    program, *arguments = shlex.split(unit_value("ExecStart"))
    assert program == UNIT_PROGRAM
    assert arguments == ["serve", "--config", f"{CONFIG_DIR}{EXAMPLE_CONFIG.name}"]
    # The example configuration, its files moved from /etc/scheduler/ to tmp_path.
    (tmp_path / "auth.key").write_text("k" * 64, encoding="utf-8")
    config = tmp_path / EXAMPLE_CONFIG.name
    config.write_text(
        EXAMPLE_CONFIG.read_text(encoding="utf-8").replace(CONFIG_DIR, f"{tmp_path}/"),
        encoding="utf-8",
    )
    moved = [argument.replace(CONFIG_DIR, f"{tmp_path}/") for argument in arguments]
    printed = run(sys.executable, "-m", "scheduler", *moved, "--print-config", cwd=tmp_path)
    assert re.search(r'^bind = "0\.0\.0\.0" +# file$', printed, re.M)
    assert re.search(rf'^key_file = "{re.escape(str(tmp_path))}/auth\.key" +# file$', printed, re.M)


def test_the_unit_fits_the_defaults_of_the_settings() -> None:
    max_connections = setting_named("limits.max_connections").default
    assert isinstance(max_connections, int)
    assert int(unit_value("LimitNOFILE")) >= max_connections + RESERVED_FDS
    example = tomllib.loads(EXAMPLE_CONFIG.read_text(encoding="utf-8"))
    assert example["limits"]["max_connections"] + RESERVED_FDS <= int(unit_value("LimitNOFILE"))
    # SIGTERM: leave the cluster (cluster.timeout), then close the sessions
    # (liveness.shutdown_timeout); systemd must not SIGKILL before both ran out.
    leave = setting_named("cluster.timeout").default
    close = setting_named("liveness.shutdown_timeout").default
    assert isinstance(leave, float)
    assert isinstance(close, float)
    graceful = leave + close
    assert unit_value("KillSignal") == "SIGTERM"
    stop = re.fullmatch(r"(\d+)s", unit_value("TimeoutStopSec"))
    assert stop is not None, "TimeoutStopSec: write whole seconds (20s)"
    assert int(stop[1]) >= 2 * graceful
    assert unit_value("Restart") == "on-failure"
    assert unit_value("RestartPreventExitStatus") == "2"  # a bad configuration
    assert (unit_value("User"), unit_value("Group")) == ("scheduler", "scheduler")
    for key, value in {
        "NoNewPrivileges": "yes",
        "ProtectSystem": "strict",
        "ProtectHome": "yes",
        "PrivateTmp": "yes",
        "CapabilityBoundingSet": "",
    }.items():
        assert unit_value(key) == value, key


# --- Docker ---------------------------------------------------------------------------


def dockerfile_instructions() -> list[tuple[str, str]]:
    """``(INSTRUCTION, arguments)`` with continuation lines joined and comments dropped."""
    instructions: list[tuple[str, str]] = []
    pending = ""
    for raw in DOCKERFILE.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line = pending + line
        pending = ""
        if line:
            keyword, _, arguments = line.partition(" ")
            instructions.append((keyword.upper(), arguments.strip()))
    assert not pending, "the Dockerfile ends inside a continued line"
    return instructions


def copied_tree(destination: Path) -> Path:
    """Copy what the Dockerfile's COPY lines copy (from the checkout, its build context)
    into ``destination``, as the image's filesystem; return it."""
    workdir = "/"
    for keyword, arguments in dockerfile_instructions():
        if keyword == "WORKDIR":
            workdir = arguments
        if keyword != "COPY":
            continue
        *sources, target = [word for word in shlex.split(arguments) if not word.startswith("--")]
        into = destination / (target if target.startswith("/") else f"{workdir}/{target}")[1:]
        for source in sources:
            origin = ROOT / source
            assert origin.exists(), f"COPY {source}: no such path in the checkout"
            if origin.is_dir():
                shutil.copytree(origin, into, dirs_exist_ok=True)
            else:
                into.mkdir(parents=True, exist_ok=True)
                shutil.copy2(origin, into / origin.name)
    return destination


def test_what_the_dockerfile_copies_is_what_pip_install_reads(tmp_path: Path) -> None:
    image = copied_tree(tmp_path)
    (run_line,) = [args for keyword, args in dockerfile_instructions() if keyword == "RUN"]
    installing = shlex.split(run_line.split("&&")[0])
    assert installing[:4] == ["python", "-m", "pip", "install"]
    targets = [word for word in installing[4:] if not word.startswith("-")]
    projects = [word.split("[")[0] for word in targets]
    assert projects == [".", "./plugins/phi-accrual", "./plugins/dragonfly-compat"]
    extras = set(re.findall(r"\w+", targets[0].partition("[")[2]))
    assert extras == {"cluster"}
    root_meta = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert extras <= set(root_meta["project"]["optional-dependencies"])
    workdir = next(args for keyword, args in dockerfile_instructions() if keyword == "WORKDIR")
    for project in projects:
        where = image / workdir.lstrip("/") / project
        meta = tomllib.loads((where / "pyproject.toml").read_text(encoding="utf-8"))
        readme = meta["project"]["readme"]
        assert (where / readme).is_file(), f"{project}: {readme} is not copied"
        find = meta["tool"]["setuptools"]["packages"]["find"]
        for root in find.get("where", ["."]):
            # Top-level packages, as setuptools' find directive finds them.
            found = [
                path.name
                for path in (where / root).iterdir()
                if (path / "__init__.py").is_file()
                and any(fnmatch.fnmatch(path.name, p) for p in find.get("include", ["*"]))
            ]
            assert found, f"{project}: no package under {root}"
            for package, patterns in meta["tool"]["setuptools"].get("package-data", {}).items():
                for pattern in patterns:
                    matches = list((where / root / package.replace(".", "/")).glob(pattern))
                    assert matches, f"{project}: no {package}/{pattern}"


def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    return loaded


def test_the_compose_file_builds_the_scheduler_from_the_checkout() -> None:
    services = compose()["services"]
    schedulers = {name: s for name, s in services.items() if name.startswith("sched-")}
    assert len(schedulers) == 3
    for name, service in schedulers.items():
        build = service["build"]
        assert (COMPOSE.parent / build["context"]).resolve() == ROOT, name
        assert (ROOT / build["dockerfile"]).resolve() == DOCKERFILE, name
    # Every other image is a public one; none of ours is pulled.
    pulled = {s["image"] for s in services.values() if "build" not in s}
    assert pulled == {"postgres:16"}


@pytest.mark.e2e
def test_each_member_of_the_compose_file_is_a_configuration_serve_accepts() -> None:
    image_env: dict[str, str] = {}
    for keyword, arguments in dockerfile_instructions():
        if keyword == "ENV":
            image_env.update(word.split("=", 1) for word in shlex.split(arguments))
    instructions = dict(dockerfile_instructions())
    assert instructions["CMD"] == '["scheduler", "serve"]'
    # The ports it exposes and asks for its health are serve's defaults.
    ports = [setting_named(f"server.{key}").default for key in ("port", "admin_port")]
    assert instructions["EXPOSE"].split() == [str(port) for port in ports]
    assert f"http://127.0.0.1:{ports[1]}/readyz" in instructions["HEALTHCHECK"]
    base = {k: v for k, v in os.environ.items() if not k.startswith("SCHEDULER_")}
    for name, service in compose()["services"].items():
        if "build" not in service:
            continue
        env = {**base, **image_env, **{k: str(v) for k, v in service["environment"].items()}}
        program, *arguments = shlex.split(service["command"])
        assert program == "scheduler", name
        printed = run(sys.executable, "-m", "scheduler", *arguments, "--print-config", env=env)
        assert re.search(rf'^name = "{name}" +# flag \(--name\)$', printed, re.M), name
    # The image alone, without a credential, refuses to start on 0.0.0.0 and says why.
    done = subprocess.run(
        [sys.executable, "-m", "scheduler", "serve", "--print-config"],
        env={**base, **image_env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert "protected mode" in done.stderr


def test_the_docs_show_the_compose_file_as_it_is() -> None:
    section = markdown_section(
        OPERATIONS.read_text(encoding="utf-8"), "### An example with Docker Compose"
    )
    blocks = re.findall(r"^```yaml\n(.*?)^```$", section, re.M | re.S)
    assert blocks == [COMPOSE.read_text(encoding="utf-8")]
    assert "trio-p2p-scheduler:latest" not in OPERATIONS.read_text(encoding="utf-8")


def test_the_docs_name_every_deploy_file() -> None:
    text = OPERATIONS.read_text(encoding="utf-8")
    for path in (DASHBOARD, ALERTS, ALERT_TESTS, PROMETHEUS_CONFIG, UNIT, EXAMPLE_CONFIG):
        assert f"`{path.relative_to(ROOT).as_posix()}`" in text, path
