"""The kit's mutation runner and this project's configuration of it (tools/mutate.py)."""

from __future__ import annotations

import importlib.util
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


def test_the_default_run_covers_the_core_codec_and_policies_only(tool: ModuleType) -> None:
    modules = tool.PROJECT.module_files([])
    assert "scheduler/core/_deadlines.py" in modules
    assert "scheduler/protocol/_codec.py" in modules
    assert "scheduler/policies/_announce_ttl.py" in modules
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
