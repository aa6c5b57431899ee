"""Under ``CI=true`` a skip is a failure, unless the test needs hardware CI lacks."""

from __future__ import annotations

import pytest

from tests import conftest


def report(outcome: str, **extra: object) -> pytest.TestReport:
    longrepr = ("tests/test_x.py", 1, "Skipped: promtool is not installed") if outcome else None
    made = pytest.TestReport("tests/test_x.py::t", ("tests/test_x.py", 1, "t"), {}, outcome,
                             longrepr, "setup")  # type: ignore[arg-type]  # fmt: skip
    for name, value in extra.items():
        setattr(made, name, value)
    return made


@pytest.mark.parametrize("in_ci", [True, False])
def test_a_skip_fails_in_ci_and_says_why(monkeypatch: pytest.MonkeyPatch, in_ci: bool) -> None:
    monkeypatch.setattr(conftest, "IN_CI", in_ci)
    skipped = report("skipped")
    conftest._fail_a_skip_in_ci(skipped, hardware=False)
    if in_ci:
        assert skipped.outcome == "failed"
        assert skipped.longrepr == (
            "skipped under CI=true, where every test must run: Skipped: promtool is not installed"
        )
    else:
        assert skipped.outcome == "skipped"


def test_in_ci_hardware_xfail_and_passes_stay_as_they_are(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(conftest, "IN_CI", True)
    hardware, xfailed, passed = report("skipped"), report("skipped", wasxfail=""), report("passed")
    conftest._fail_a_skip_in_ci(hardware, hardware=True)
    conftest._fail_a_skip_in_ci(xfailed, hardware=False)
    conftest._fail_a_skip_in_ci(passed, hardware=False)
    assert [r.outcome for r in (hardware, xfailed, passed)] == ["skipped", "skipped", "passed"]
