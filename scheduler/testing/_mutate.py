"""Mutation testing with a per-module budget, for this project and for plugin authors.

``python -m scheduler.testing.mutate [--project DIR] [PATH ...]`` runs mutmut 3 over the
modules a project names, then prints one row per module (mutants, killed, timeouts,
survived, no tests, equivalent, surviving %) and every surviving mutant with the line
it changed. It exits non-zero when more than ``--max-surviving`` percent (default 5) of
the mutants of any module survive, or when the equivalents file lists a mutant that no
longer exists or no longer makes the change it was listed for.

A project configures it in its ``pyproject.toml``, next to mutmut's own ``[tool.mutmut]``
(``source_paths``, ``also_copy``, ...)::

    [tool.scheduler-mutate]
    roots = ["src/my_plugin"]                  # what may be mutated (files or folders)
    tests = ["tests"]                          # the tests a module not mapped below gets
    equivalents = "tests/mutation-equivalents.toml"

    [tool.scheduler-mutate.tests-for-module]   # optional: faster runs
    "src/my_plugin/_rules.py" = ["tests/test_rules.py"]

The runner imports nothing of the scheduler: mutmut must import the *mutated* copies, so
``python -m scheduler.testing.mutate`` runs this file in a fresh interpreter.

A mutant *survives* when the tests pass with it in place, or when no selected test runs
its function ("no tests"). A timeout counts as killed. Mutants listed as equivalent (they
cannot change behaviour; each with a one-line reason) are excluded from the percentage and
printed as such. Runs use the ``mutation`` Hypothesis profile (no shrinking, a deadline per
example), so a slow shrink never decides a mutant. Requires the ``mutation`` extra (mutmut).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
import tomllib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["ModuleResult", "MutationProject", "main", "module_name"]


@dataclass(frozen=True)
class MutationProject:
    """What a project mutates and which tests judge each module."""

    root: Path
    #: Folders or files (relative to ``root``) whose modules may be mutated.
    roots: tuple[str, ...]
    #: The tests a module gets when it is not in :attr:`tests_for_module`.
    tests: tuple[str, ...] = ("tests",)
    #: Extra pytest arguments of every run (e.g. ``("-m", "not e2e")``).
    pytest_args: tuple[str, ...] = ()
    #: module path -> the test files that state its behaviour (runs only those).
    tests_for_module: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    equivalents: str = "tests/mutation-equivalents.toml"

    @classmethod
    def from_pyproject(cls, root: Path) -> MutationProject:
        """Read ``[tool.scheduler-mutate]`` from ``root/pyproject.toml``."""
        path = root / "pyproject.toml"
        try:
            data = tomllib.loads(path.read_text("utf-8"))["tool"]["scheduler-mutate"]
        except (OSError, KeyError) as exc:
            raise SystemExit(f"mutate: no [tool.scheduler-mutate] in {path} ({exc})") from None
        mapping = data.get("tests-for-module", {})
        return cls(
            root=root,
            roots=tuple(data["roots"]),
            tests=tuple(data.get("tests", ("tests",))),
            pytest_args=tuple(data.get("pytest-args", ())),
            tests_for_module={module: tuple(files) for module, files in mapping.items()},
            equivalents=str(data.get("equivalents", cls.equivalents)),
        )

    def module_files(self, paths: Sequence[str]) -> list[str]:
        """The modules to mutate, relative to the root; all of them by default."""
        if not paths:
            paths = [str(self.root / r) for r in self.roots]
        result: list[str] = []
        for raw in paths:
            path = Path(raw).resolve()
            if path.is_dir():
                result.extend(self.module_files([str(p) for p in sorted(path.rglob("*.py"))]))
                continue
            root = self.root.resolve()
            rel = path.relative_to(root).as_posix() if path.is_relative_to(root) else raw
            if not (path.is_file() and rel.endswith(".py")):
                raise SystemExit(f"mutate: {raw}: not a Python file")
            if not any(rel == r or rel.startswith(f"{r.rstrip('/')}/") for r in self.roots):
                raise SystemExit(f"mutate: {raw}: outside {', '.join(self.roots)}")
            result.append(rel)
        return sorted(set(result))

    def tests_for(self, modules: Iterable[str]) -> list[str]:
        """The mapped test files when every module is mapped, else the default tests."""
        selected: list[str] = []
        for module in modules:
            files = self.tests_for_module.get(module)
            if files is None:
                return [*self.tests, *self.pytest_args]
            selected.extend(f for f in files if f not in selected)
        return [*selected, *self.pytest_args]


#: How mutmut's exit codes read in the table (mutmut.stats.status_by_exit_code).
KILLED = "killed"
TIMEOUT = "timeout"
SURVIVED = "survived"
NO_TESTS = "no tests"


@dataclass
class ModuleResult:
    path: str
    statuses: dict[str, str] = field(default_factory=dict)  # mutant name -> status
    equivalent: dict[str, str] = field(default_factory=dict)  # mutant name -> reason

    def count(self, *statuses: str, equivalents: bool = False) -> int:
        return sum(
            1
            for name, status in self.statuses.items()
            if status in statuses and (name in self.equivalent) == equivalents
        )

    @property
    def total(self) -> int:
        return len(self.statuses)

    @property
    def surviving(self) -> int:
        return self.count(SURVIVED, NO_TESTS)

    @property
    def other(self) -> int:
        known = {KILLED, TIMEOUT, SURVIVED, NO_TESTS}
        return sum(
            1
            for name, status in self.statuses.items()
            if status not in known and name not in self.equivalent
        )

    @property
    def surviving_percent(self) -> float:
        judged = self.total - len(self.equivalent)
        return 100.0 * (self.surviving + self.other) / judged if judged else 0.0


def load_equivalents(path: Path) -> dict[str, tuple[str, str]]:
    """mutant name -> (the mutated line it was judged on, the reason)."""
    if not path.exists():
        return {}
    data = tomllib.loads(path.read_text("utf-8"))
    result = {}
    for name, entry in data.items():
        if not (isinstance(entry, dict) and {"mutation", "reason"} <= set(entry)):
            raise SystemExit(f"mutate: {path}: [{name!r}] needs `mutation` and `reason`")
        result[name] = (str(entry["mutation"]).strip(), str(entry["reason"]))
    return result


def run_mutmut(
    modules: list[str], tests: list[str], max_children: int | None, log: Path | None
) -> None:
    """Run mutmut in this process so the module and test selection need no config file.

    With ``log``, mutmut's progress output (and its workers') goes to that file; its
    last lines are printed if mutmut fails.
    """
    import mutmut.__main__ as mutmut_main  # noqa: PLC0415 - the optional `mutation` extra
    from mutmut.__main__ import _run  # noqa: PLC0415
    from mutmut.configuration import config  # noqa: PLC0415

    mutmut_main.get_mutant_runner = _fastest_tests_first(mutmut_main.get_mutant_runner)  # type: ignore[attr-defined]
    cfg = config()
    cfg.only_mutate = modules
    cfg.pytest_add_cli_args_test_selection = tests
    if log is None:
        _run([], max_children)
        return
    sys.stdout.flush()
    saved = os.dup(1), os.dup(2)
    finished = False
    with log.open("wb") as out:
        os.dup2(out.fileno(), 1)
        os.dup2(out.fileno(), 2)
        try:
            _run([], max_children)
            finished = True
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            if not finished:
                tail = log.read_text("utf-8", "replace").replace("\r", "\n").splitlines()[-40:]
                print(f"mutate: mutmut failed; the end of {log}:", *tail, sep="\n")


def _fastest_tests_first(get_runner: Callable[..., Any]) -> Callable[..., Any]:
    """mutmut runs a mutant's tests in no particular order and stops at the first
    failure: run the quickest first (by their clean duration), so a mutant a unit
    test kills never waits for the slow property machines."""
    import mutmut.__main__ as mutmut_main  # noqa: PLC0415

    def runner(*args: Any, **kwargs: Any) -> Any:
        wrapped = get_runner(*args, **kwargs)
        submit = wrapped.submit

        def submit_in_order(name: str, tests: list[str], limit: int, estimate: float) -> None:
            durations = mutmut_main.state().duration_by_test  # type: ignore[attr-defined]
            ordered = sorted(tests, key=lambda test: (durations.get(test, 0.0), test))
            submit(name, ordered, limit, estimate)

        wrapped.submit = submit_in_order
        return wrapped

    return runner


def read_results(modules: list[str]) -> dict[str, ModuleResult]:
    results = {}
    for module in modules:
        meta = Path("mutants") / f"{module}.meta"
        codes = json.loads(meta.read_text("utf-8"))["exit_code_by_key"] if meta.exists() else {}
        statuses = {name: _status_of(code) for name, code in codes.items()}
        results[module] = ModuleResult(module, statuses)
    return results


def _status_of(exit_code: int | None) -> str:
    from mutmut.stats import status_by_exit_code  # noqa: PLC0415

    return str(status_by_exit_code[exit_code])


def changed_lines(name: str, module: str) -> tuple[list[str], list[str]]:
    """The removed and added lines of a mutant's diff, stripped."""
    from mutmut.mutation.diff_apply import get_diff_for_mutant  # noqa: PLC0415

    diff = get_diff_for_mutant(name, path=module).splitlines()[2:]
    removed = [line[1:].strip() for line in diff if line.startswith("-")]
    added = [line[1:].strip() for line in diff if line.startswith("+")]
    return removed, added


def apply_equivalents(
    results: dict[str, ModuleResult],
    equivalents: dict[str, tuple[str, str]],
    project_modules: Iterable[str] = (),
) -> list[str]:
    """Mark listed equivalents; return the problems with the list, each naming its entry.

    An entry is a problem when its mutant no longer exists, now writes another line, or
    names a module that is none of ``project_modules`` (the project's module paths; an
    entry for a project module that is not in this run is left for a run that has it).
    """
    problems = []
    by_module = {module_name(r.path): r for r in results.values()}
    known = {module_name(path) for path in project_modules} | set(by_module)
    for name, (mutation, reason) in sorted(equivalents.items()):
        module = _module_of(name)
        result = by_module.get(module)
        if result is None:
            if module not in known:
                problems.append(
                    f"{name}: listed as equivalent, but the project has no module {module}"
                )
            continue
        if name not in result.statuses:
            problems.append(f"{name}: listed as equivalent but no such mutant exists")
            continue
        _, added = changed_lines(name, result.path)
        if mutation not in added:
            problems.append(
                f"{name}: listed as equivalent for `{mutation}`, but it now makes "
                f"`{' / '.join(added) or '(deletion)'}`; re-check it and update the entry"
            )
            continue
        result.equivalent[name] = reason
    return problems


def module_name(path: str) -> str:
    """The dotted module name in the names mutmut gives the mutants of the file ``path``.

    mutmut drops a leading ``src/`` (the layout docs/plugins.md prescribes) and names
    a package's ``__init__.py`` by the package.
    """
    from mutmut.utils.format_utils import get_mutant_name  # noqa: PLC0415

    return _module_of(get_mutant_name(Path(path), "x_f__mutmut_1"))


def _module_of(mutant: str) -> str:
    from mutmut.utils.format_utils import get_module_from_key  # noqa: PLC0415

    return str(get_module_from_key(mutant))


def print_report(results: dict[str, ModuleResult], limit: float) -> None:
    columns = ["module", "mutants", "killed", "timeout", "survived", "no tests", "equivalent"]
    columns.append("surviving %")
    rows = []
    for r in results.values():
        rows.append(
            (
                r.path,
                str(r.total),
                str(r.count(KILLED)),
                str(r.count(TIMEOUT)),
                str(r.count(SURVIVED)),
                str(r.count(NO_TESTS)),
                str(len(r.equivalent)),
                f"{r.surviving_percent:.1f}" + (" FAIL" if r.surviving_percent > limit else ""),
            )
        )
    widths = [max(len(c), *(len(row[i]) for row in rows)) for i, c in enumerate(columns)]

    def fmt(row: Sequence[str]) -> str:
        cells = [row[0].ljust(widths[0])]
        cells += [c.rjust(w) for c, w in zip(row[1:], widths[1:], strict=True)]
        return "  ".join(cells)

    print()
    print(fmt(columns))
    print("-" * len(fmt(columns)))
    for row in rows:
        print(fmt(row))
    print()
    for r in results.values():
        for name, status in sorted(r.statuses.items()):
            if name in r.equivalent:
                print(f"equivalent  {name}: {r.equivalent[name]}")
            elif status not in (KILLED, TIMEOUT):
                removed, added = changed_lines(name, r.path)
                print(f"{status:<10}  {name}")
                for text in removed:
                    print(f"              - {text}")
                for text in added:
                    print(f"              + {text}")


def main(argv: Sequence[str] | None = None, project: MutationProject | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m scheduler.testing.mutate", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("paths", nargs="*", help="modules (or folders) to mutate; default: all")
    parser.add_argument(
        "--project", type=Path, default=None, help="the project's root (default: the cwd)"
    )
    parser.add_argument("--max-surviving", type=float, default=5.0, metavar="PERCENT")
    parser.add_argument("--max-children", type=int, default=None, help="parallel mutant workers")
    parser.add_argument("-v", "--verbose", action="store_true", help="show mutmut's own output")
    parser.add_argument(
        "--report-only", action="store_true", help="print the report of the last run in ./mutants"
    )
    args = parser.parse_args(argv)
    if project is None:
        project = MutationProject.from_pyproject((args.project or Path.cwd()).resolve())

    modules = project.module_files(args.paths)  # before chdir: paths may be relative
    os.chdir(project.root)
    tests = project.tests_for(modules)
    # Mutation runs are judged by a small, derandomized Hypothesis run with no shrinking
    # and a per-example deadline (the `mutation` profile of scheduler.testing).
    os.environ["HYPOTHESIS_PROFILE"] = "mutation"
    started = time.monotonic()
    if not args.report_only:
        print(f"mutate: {len(modules)} module(s); tests: {' '.join(tests)}", flush=True)
        shutil.rmtree("mutants", ignore_errors=True)  # results are never reused across runs
        Path("mutants").mkdir()
        log = None if args.verbose else Path("mutants/mutmut.log")
        run_mutmut(modules, tests, args.max_children, log)

    results = read_results(modules)
    equivalents_file = Path(project.equivalents)
    equivalents = load_equivalents(equivalents_file)
    problems = apply_equivalents(results, equivalents, project.module_files([]))
    print_report(results, args.max_surviving)
    failing = [r.path for r in results.values() if r.surviving_percent > args.max_surviving]
    for problem in problems:
        print(f"stale equivalent  {problem}")
    if not args.report_only:
        print(f"\nmutate: {time.monotonic() - started:.0f} s")
    if failing:
        limit = args.max_surviving
        print(f"mutate: more than {limit:g} % of the mutants survive in: {', '.join(failing)}")
    if problems:
        print(f"mutate: {len(problems)} stale entr(y/ies) in {equivalents_file}")
    return 1 if failing or problems else 0


if __name__ == "__main__":
    # Run as a script (see scheduler/testing/mutate.py): this folder is not a package root.
    here = Path(__file__).resolve().parent
    sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != here]
    sys.exit(main())
