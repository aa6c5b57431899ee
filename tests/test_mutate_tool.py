"""The kit's mutation runner and this project's configuration of it (tools/mutate.py)."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

pytest.importorskip("mutmut", reason="the `mutation` extra is not installed")

import mutmut.__main__ as mutmut_main

from scheduler.testing._mutate import (
    ModuleResult,
    MutationProject,
    _fastest_tests_first,
    load_equivalents,
)

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def tool() -> ModuleType:
    spec = importlib.util.spec_from_file_location("mutate_tool", ROOT / "tools" / "mutate.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def test_surviving_percent_counts_no_tests_and_excludes_equivalents(tool: ModuleType) -> None:
    statuses = {f"m.x_f__mutmut_{i}": "killed" for i in range(17)}
    statuses |= {"m.x_f__mutmut_17": "timeout", "m.x_f__mutmut_18": "survived"}
    statuses |= {"m.x_f__mutmut_19": "no tests"}
    result = ModuleResult("m.py", statuses)
    assert (result.total, result.surviving) == (20, 2)
    assert result.surviving_percent == 10.0
    result.equivalent["m.x_f__mutmut_18"] = "reason"
    assert result.surviving == 1
    assert result.surviving_percent == pytest.approx(100 / 19)
    assert ModuleResult("empty.py").surviving_percent == 0.0


def test_named_modules_run_their_own_test_files_and_others_the_whole_suite(
    tool: ModuleType,
) -> None:
    fast = tool.PROJECT.tests_for(["scheduler/core/_bitset.py", "scheduler/core/_deadlines.py"])
    assert fast == [
        "tests/test_bitset.py",
        "tests/test_deadlines.py",
        "tests/test_deadline_queue.py",
        "tests/test_gc_slices.py",
        "-m",
        "not e2e and not postgres",
    ]
    unmapped = "scheduler/core/_not_in_the_map.py"
    assert unmapped not in tool.TESTS_FOR_MODULE
    assert tool.PROJECT.tests_for(["scheduler/core/_bitset.py", unmapped]) == [
        "tests",
        "-m",
        "not e2e and not postgres",
    ]
    for files in tool.TESTS_FOR_MODULE.values():
        for file in files:
            assert (ROOT / file).is_file(), file


def test_the_default_run_covers_the_core_codec_policies_and_session_rules_only(
    tool: ModuleType,
) -> None:
    modules = tool.PROJECT.module_files([])
    assert "scheduler/core/_deadlines.py" in modules
    assert "scheduler/protocol/_codec.py" in modules
    assert "scheduler/policies/_announce_ttl.py" in modules
    assert "scheduler/session/_protocol.py" in modules
    # Each session module runs the session rules' own tests, not the whole suite.
    assert tool.PROJECT.tests_for(["scheduler/session/_liveness.py"])[0] == (
        "tests/test_session_messages.py"
    )
    assert all(m.startswith(tool.MUTATED_ROOTS) for m in modules)
    assert tool.PROJECT.module_files([str(ROOT / "scheduler/core/_bitset.py")]) == [
        "scheduler/core/_bitset.py"
    ]
    with pytest.raises(SystemExit, match="outside"):
        tool.PROJECT.module_files([str(ROOT / "scheduler/service/_service.py")])


def test_every_listed_equivalent_has_its_mutation_and_a_reason(tool: ModuleType) -> None:
    equivalents = load_equivalents(ROOT / tool.PROJECT.equivalents)
    assert equivalents
    for name, (mutation, reason) in equivalents.items():
        assert "__mutmut_" in name
        assert mutation
        assert len(reason) > 10


def test_an_equivalent_without_a_reason_is_refused(tmp_path: Path) -> None:
    listing = tmp_path / "equivalents.toml"
    listing.write_text('["m.x_f__mutmut_1"]\nmutation = "x = 2"\n', encoding="utf-8")
    with pytest.raises(SystemExit, match="needs `mutation` and `reason`"):
        load_equivalents(listing)


@pytest.mark.parametrize("plugin", ["dragonfly-compat", "phi-accrual"])
def test_each_plugin_configures_the_kits_runner_in_its_pyproject(plugin: str) -> None:
    root = ROOT / "plugins" / plugin
    project = MutationProject.from_pyproject(root)
    modules = project.module_files([])
    assert modules
    assert all(m.startswith("src/") for m in modules)
    assert all((root / f).is_file() for files in project.tests_for_module.values() for f in files)


def test_a_project_without_a_configuration_is_told_so(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text("[project]\nname = 'x'\n", encoding="utf-8")
    with pytest.raises(SystemExit, match=r"no \[tool.scheduler-mutate\]"):
        MutationProject.from_pyproject(tmp_path)


def test_a_mutants_tests_run_fastest_first(monkeypatch: pytest.MonkeyPatch) -> None:

    submitted: list[list[str]] = []

    class Runner:
        def submit(self, name: str, tests: list[str], limit: int, estimate: float) -> None:
            submitted.append(tests)

    durations = {"slow::machine": 8.0, "b::unit": 0.1, "a::unit": 0.1, "mid": 1.0}
    monkeypatch.setattr(
        mutmut_main, "state", lambda: type("S", (), {"duration_by_test": durations})
    )
    runner = _fastest_tests_first(lambda *args, **kwargs: Runner())(2)
    runner.submit("m.x_f__mutmut_1", ["slow::machine", "mid", "b::unit", "new", "a::unit"], 9, 1.0)
    assert submitted == [["new", "a::unit", "b::unit", "mid", "slow::machine"]]


# --- a src-layout plugin project, run end to end ----------------------------------------

#: Both mutants mutmut makes of ``clamp`` (``<`` to ``<=``, ``>`` to ``>=``) are
#: equivalent: at the boundary both branches return the value itself.
_CLAMP = """\
def clamp(value: int, low: int, high: int) -> int:
    if value < low:
        return low
    if value > high:
        return high
    return value
"""
_CLAMP_TEST = """\
from scheduler_clamp import clamp


def test_clamp() -> None:
    assert (clamp(-1, 0, 9), clamp(10, 0, 9), clamp(5, 0, 9)) == (0, 9, 5)
"""
_CLAMP_PYPROJECT = """\
[project]
name = "scheduler-clamp"
version = "0.1.0"

[tool.mutmut]
source_paths = ["src"]
pytest_add_cli_args = ["-p", "no:cacheprovider"]

[tool.scheduler-mutate]
roots = ["src/scheduler_clamp"]
tests = ["tests"]
equivalents = "tests/mutation-equivalents.toml"
"""
_LOW = "scheduler_clamp._rules.x_clamp__mutmut_1"
_HIGH = "scheduler_clamp._rules.x_clamp__mutmut_2"


def _src_layout_plugin(root: Path, equivalents: dict[str, str]) -> Path:
    """The layout docs/plugins.md prescribes: ``src/<package>/`` and ``tests/``."""
    package = root / "src" / "scheduler_clamp"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("from ._rules import clamp as clamp\n", "utf-8")
    (package / "_rules.py").write_text(_CLAMP, "utf-8")
    (root / "tests").mkdir()
    (root / "tests" / "test_rules.py").write_text(_CLAMP_TEST, "utf-8")
    (root / "pyproject.toml").write_text(_CLAMP_PYPROJECT, "utf-8")
    listing = "".join(
        f'["{name}"]\nmutation = "{mutation}"\nreason = "at the boundary both return value"\n'
        for name, mutation in equivalents.items()
    )
    (root / "tests" / "mutation-equivalents.toml").write_text(listing, "utf-8")
    return root


def _mutate(project: Path) -> subprocess.CompletedProcess[str]:
    # A run inside a mutmut worker must not hand its mutant switch to the inner run.
    env = {k: v for k, v in os.environ.items() if not k.startswith("MUTANT")}
    return subprocess.run(
        [sys.executable, "-m", "scheduler.testing.mutate", "--project", str(project)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env=env,
    )


def test_a_src_layout_plugins_equivalents_are_honoured(tmp_path: Path) -> None:
    project = _src_layout_plugin(tmp_path, {_LOW: "if value <= low:", _HIGH: "if value >= high:"})
    run = _mutate(project)
    assert run.returncode == 0, run.stdout + run.stderr
    assert f"equivalent  {_LOW}: at the boundary" in run.stdout
    assert f"equivalent  {_HIGH}: at the boundary" in run.stdout
    [row] = [line for line in run.stdout.splitlines() if line.startswith("src/scheduler_clamp/_r")]
    assert row.split() == ["src/scheduler_clamp/_rules.py", "2", "0", "0", "0", "0", "2", "0.0"]


@pytest.mark.parametrize(
    ("entry", "mutation", "problem"),
    [
        # A mutant the module no longer has.
        ("scheduler_clamp._rules.x_clamp__mutmut_9", "if value < high:", "no such mutant"),
        # A mutant that now writes another line.
        (_HIGH, "if value > high + 1:", "now makes `if value >= high:`"),
        # A module the project does not have (renamed, or spelled with the folder).
        ("src.scheduler_clamp._rules.x_clamp__mutmut_1", "if value <= low:", "has no module"),
        ("scheduler_clamp._gone.x_clamp__mutmut_1", "if value <= low:", "has no module"),
    ],
)
def test_a_stale_or_unmatched_equivalent_fails_the_run_and_is_named(
    tmp_path: Path, entry: str, mutation: str, problem: str
) -> None:
    project = _src_layout_plugin(tmp_path, {_LOW: "if value <= low:", entry: mutation})
    run = _mutate(project)
    assert run.returncode == 1, run.stdout + run.stderr
    [line] = [line for line in run.stdout.splitlines() if line.startswith("stale equivalent")]
    assert entry in line
    assert problem in line
