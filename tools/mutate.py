"""Mutation testing with a per-module budget: ``nox -s mutate [-- PATH ...]``.

Runs mutmut 3 over the core, the protocol codec and the built-in policies (or over
the modules given on the command line), then prints one row per module and every
surviving mutant with the line it changed. It exits non-zero when more than
``--max-surviving`` percent of the mutants of any module survive, or when
``tests/mutation-equivalents.toml`` lists a mutant that no longer exists or no
longer makes the change it was listed for.

A mutant *survives* when the tests pass with it in place, or when no selected
test runs its function ("no tests"). A timeout counts as killed. Mutants listed
as equivalent (they cannot change behaviour) are excluded from the percentage
and printed as such. See docs/testing.md.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
import tomllib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import mutmut.__main__ as mutmut_main
from mutmut.__main__ import _run
from mutmut.configuration import config
from mutmut.mutation.diff_apply import get_diff_for_mutant
from mutmut.stats import status_by_exit_code
from mutmut.utils.format_utils import get_module_from_key

ROOT = Path(__file__).resolve().parent.parent
MUTATED_ROOTS = ("scheduler/core", "scheduler/protocol", "scheduler/policies")
EQUIVALENTS_FILE = Path("tests/mutation-equivalents.toml")
#: Every test module except those that start real processes.
DEFAULT_TESTS = ("tests",)
DESELECT = ("-m", "not e2e")

#: The statements of the decision's rules (issue 8): filters, scores, limits, origin,
#: seeds, slots and pushes, at the unit level and through the facade.
_SCHEDULING_TESTS: tuple[str, ...] = (
    "tests/test_scheduling_rules.py",
    "tests/test_scheduling.py",
)
#: The peer ledger: registration, progress, the task state it moves, eviction.
_PEER_LEDGER_TESTS: tuple[str, ...] = (
    "tests/test_peers.py",
    "tests/test_ledgers.py",
    "tests/test_state.py",
    "tests/test_lifecycle.py",
)

#: The test files that state the behaviour of a module. When every requested module
#: is listed here, only these files run, which keeps ``-- PATH`` runs fast; any other
#: module brings in the whole suite (so a full run is never weaker than the suite).
TESTS_FOR_MODULE: dict[str, tuple[str, ...]] = {
    "scheduler/core/_deadlines.py": (
        "tests/test_deadlines.py",
        "tests/test_deadline_queue.py",
    ),
    "scheduler/core/_bitset.py": ("tests/test_bitset.py",),
    "scheduler/core/_errors.py": ("tests/test_errors.py",),
    "scheduler/core/_lifecycle.py": (
        "tests/test_lifecycle.py",
        "tests/test_lifecycle_tables.py",
    ),
    # --- the scheduling core (issue 8) and the peer ledger: the rules of a decision ---
    "scheduler/core/_badnode.py": ("tests/test_badnode.py",),
    "scheduler/core/_costs.py": ("tests/test_badnode.py", *_SCHEDULING_TESTS),
    "scheduler/core/_rendezvous.py": ("tests/test_rendezvous.py",),
    "scheduler/core/_candidates.py": _SCHEDULING_TESTS,
    "scheduler/core/_decision.py": _SCHEDULING_TESTS,
    "scheduler/core/_edges.py": _SCHEDULING_TESTS,
    "scheduler/core/_feeders.py": _SCHEDULING_TESTS,
    "scheduler/core/_origin.py": _SCHEDULING_TESTS,
    "scheduler/core/_scheduling.py": _SCHEDULING_TESTS,
    "scheduler/core/_peers.py": _PEER_LEDGER_TESTS,
    "scheduler/policies/_evaluator.py": ("tests/test_evaluator.py", *_SCHEDULING_TESTS),
}

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


def module_files(paths: Sequence[str]) -> list[str]:
    """The modules to mutate, as repository-relative paths; all of them by default."""
    if not paths:
        found = (p for root in MUTATED_ROOTS for p in (ROOT / root).rglob("*.py"))
        return sorted(p.relative_to(ROOT).as_posix() for p in found)
    result = []
    for raw in paths:
        path = Path(raw).resolve()
        if path.is_dir():
            result.extend(module_files_under(path))
            continue
        rel = path.relative_to(ROOT).as_posix() if path.is_relative_to(ROOT) else raw
        if not (path.is_file() and rel.endswith(".py")):
            raise SystemExit(f"mutate: {raw}: not a Python file")
        if not rel.startswith(tuple(f"{r}/" for r in MUTATED_ROOTS)):
            raise SystemExit(f"mutate: {raw}: outside {', '.join(MUTATED_ROOTS)}")
        result.append(rel)
    return sorted(set(result))


def module_files_under(directory: Path) -> list[str]:
    return module_files([str(p) for p in sorted(directory.rglob("*.py"))])


def tests_for(modules: Iterable[str]) -> list[str]:
    selected: list[str] = []
    for module in modules:
        files = TESTS_FOR_MODULE.get(module)
        if files is None:
            return [*DEFAULT_TESTS, *DESELECT]
        selected.extend(f for f in files if f not in selected)
    return [*selected, *DESELECT]


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


def _fastest_tests_first(get_runner: Callable[..., Any]) -> Callable[..., Any]:
    """mutmut hands a mutant its tests as a set, in no order, and pytest stops at the
    first failure: run the quickest first (by their clean duration), so a mutant a unit
    test kills never waits for the slow property machines."""

    def runner(*args: Any, **kwargs: Any) -> Any:
        wrapped = get_runner(*args, **kwargs)
        submit = wrapped.submit

        def submit_in_order(name: str, tests: list[str], limit: int, estimate: float) -> None:
            durations = mutmut_main.state().duration_by_test
            ordered = sorted(tests, key=lambda test: (durations.get(test, 0.0), test))
            submit(name, ordered, limit, estimate)

        wrapped.submit = submit_in_order
        return wrapped

    return runner


def run_mutmut(
    modules: list[str], tests: list[str], max_children: int | None, log: Path | None
) -> None:
    """Run mutmut in this process so the module and test selection need no config file.

    With ``log``, mutmut's progress output (and its workers') goes to that file; its
    last lines are printed if mutmut fails.
    """
    cfg = config()
    cfg.only_mutate = modules
    cfg.pytest_add_cli_args_test_selection = tests
    mutmut_main.get_mutant_runner = _fastest_tests_first(mutmut_main.get_mutant_runner)
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


def read_results(modules: list[str]) -> dict[str, ModuleResult]:
    results = {}
    for module in modules:
        meta = Path("mutants") / f"{module}.meta"
        codes = json.loads(meta.read_text("utf-8"))["exit_code_by_key"] if meta.exists() else {}
        statuses = {name: status_by_exit_code[code] for name, code in codes.items()}
        results[module] = ModuleResult(module, statuses)
    return results


def changed_lines(name: str, module: str) -> tuple[list[str], list[str]]:
    """The removed and added lines of a mutant's diff, stripped."""
    diff = get_diff_for_mutant(name, path=module).splitlines()[2:]
    removed = [line[1:].strip() for line in diff if line.startswith("-")]
    added = [line[1:].strip() for line in diff if line.startswith("+")]
    return removed, added


def apply_equivalents(
    results: dict[str, ModuleResult], equivalents: dict[str, tuple[str, str]]
) -> list[str]:
    """Mark listed equivalents; return the problems with the list (stale entries)."""
    problems = []
    by_module = {r.path.removesuffix(".py").replace("/", "."): r for r in results.values()}
    for name, (mutation, reason) in sorted(equivalents.items()):
        module_name = get_module_from_key(name)
        result = by_module.get(module_name) or by_module.get(f"{module_name}.__init__")
        if result is None:
            continue  # a module not in this run
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


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("paths", nargs="*", help="modules (or folders) to mutate; default: all")
    parser.add_argument("--max-surviving", type=float, default=5.0, metavar="PERCENT")
    parser.add_argument("--max-children", type=int, default=None, help="parallel mutant workers")
    parser.add_argument("-v", "--verbose", action="store_true", help="show mutmut's own output")
    parser.add_argument(
        "--report-only", action="store_true", help="print the report of the last run in ./mutants"
    )
    args = parser.parse_args(argv)

    modules = module_files(args.paths)  # before chdir: paths may be relative to the caller
    os.chdir(ROOT)
    tests = tests_for(modules)
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
    problems = apply_equivalents(results, load_equivalents(EQUIVALENTS_FILE))
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
        print(f"mutate: {len(problems)} stale entr(y/ies) in {EQUIVALENTS_FILE}")
    return 1 if failing or problems else 0


if __name__ == "__main__":
    sys.exit(main())
