"""The churn simulator: its pieces on their own, then small end-to-end runs of the real core.

Everything is deterministic (virtual time, seeded); nothing here asserts on wall-clock time.
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs
import pytest

from scheduler.cli import main
from scheduler.core import HostInfo, PeerScheduled
from scheduler.service import ServiceConfig
from scheduler.simulate import (
    CAUSES,
    POLICY_SETS,
    Cause,
    ChurnSimulation,
    EventQueue,
    Scenario,
    SetResult,
    ZipfSampler,
    build_workload,
    percentile,
    ping_detection_at,
    results_table,
    simulate,
    write_json,
)
from scheduler.simulate import _cli as simulate_cli
from scheduler.simulate._cli import parse_rate, parse_rates
from scheduler.simulate._metrics import Metrics
from scheduler.simulate._truth import Batch, GroundTruth, Mode, SimHost, SimPeer
from scheduler.simulate._workload import draw_death

#: Small enough for a unit test, big enough that every churn mode happens.
SMALL = Scenario(
    seed=7,
    hosts=50,
    seeds=2,
    tasks=10,
    pieces=16,
    duration=600.0,
    announce_interval=60.0,
    crash_rate=1.0,
    hang_rate=0.5,
    leave_rate=1.0,
    stop_rate=0.5,
    request_interval=60.0,
)

JSON_KEYS = {
    "policy",
    "churn",
    "success",
    "dead_handouts_per_1000",
    "dead_handouts_by_cause",
    "downloads_completed",
    "download_time_p99",
}


# --- the event queue -----------------------------------------------------------------------------


def test_the_queue_pops_in_time_order_and_first_in_first_out_among_equals() -> None:
    queue = EventQueue()
    seen: list[str] = []

    def note(name: str) -> Callable[[float], None]:
        return lambda _now: seen.append(name)

    for at, name in [(2.0, "c"), (1.0, "a"), (2.0, "d"), (1.0, "b"), (0.5, "first")]:
        queue.schedule(at, note(name))
    times = []
    while len(queue):
        at, action = queue.pop()
        times.append(at)
        action(at)
    assert seen == ["first", "a", "b", "c", "d"]
    assert times == sorted(times)
    assert queue.now == 2.0
    assert queue.peek() is None


def test_the_queue_refuses_the_past() -> None:
    queue = EventQueue()
    queue.schedule(5.0, lambda _now: None)
    queue.pop()
    with pytest.raises(ValueError, match="before now"):
        queue.schedule(4.0, lambda _now: None)
    queue.schedule(5.0, lambda _now: None)  # now itself is fine
    assert len(queue) == 1


# --- the workload --------------------------------------------------------------------------------


def test_zipf_draws_are_in_range_and_favour_the_first_tasks() -> None:
    sampler = ZipfSampler(20, 1.0)
    rng = random.Random(1)
    counts = Counter(sampler.draw(rng) for _ in range(20_000))
    assert set(counts) <= set(range(20))
    assert counts[0] > counts[1] > counts[9] > 0
    # Weight 1/(k+1): task 0 is about twice as popular as task 1.
    assert 1.7 < counts[0] / counts[1] < 2.3
    with pytest.raises(ValueError, match="at least one task"):
        ZipfSampler(0, 1.0)


def test_a_zero_rate_never_kills_and_competing_risks_pick_the_first() -> None:
    calm = attrs.evolve(SMALL, crash_rate=0.0, hang_rate=0.0, leave_rate=0.0, stop_rate=0.0)
    rng = random.Random(3)
    assert all(draw_death(rng, 0.0, calm) is None for _ in range(100))
    only_crashes = attrs.evolve(calm, crash_rate=100.0)
    deaths = [draw_death(rng, 10.0, only_crashes) for _ in range(100)]
    assert all(d is not None and d.cause is Cause.CRASH and d.at >= 10.0 for d in deaths)


def test_the_workload_is_a_function_of_the_seed() -> None:
    plans = build_workload(SMALL)
    assert plans == build_workload(SMALL)
    assert plans != build_workload(attrs.evolve(SMALL, seed=8))


def test_the_workload_keeps_its_population_and_its_rules() -> None:
    plans = build_workload(SMALL)
    initial = [p for p in plans if p.index < SMALL.hosts]
    assert len(initial) == SMALL.hosts
    assert sum(p.seed for p in plans) == SMALL.seeds  # seeds are never replaced...
    assert all(p.death is None and not p.requests for p in plans if p.seed)  # ...nor churn
    assert len({p.hostname for p in plans}) == len(plans)  # every incarnation is a new host
    causes = Counter(p.death.cause for p in plans if p.death is not None)
    assert set(causes) == set(Cause)  # the small scenario exercises every mode
    for plan in plans:
        end = SMALL.duration if plan.death is None else plan.death.at
        assert plan.joined_at <= end <= SMALL.duration
        assert all(plan.joined_at <= r.at < end for r in plan.requests)
        assert all(0 <= r.task < SMALL.tasks for r in plan.requests)
    # The population stays about constant: every death before the end is replaced.
    alive_at_end = sum(1 for p in plans if p.death is None)
    assert SMALL.hosts * 0.8 <= alive_at_end <= SMALL.hosts


def test_a_scenario_rejects_nonsense() -> None:
    with pytest.raises(ValueError, match="more hosts than seeds"):
        Scenario(hosts=3, seeds=3)
    with pytest.raises(ValueError, match="churn rates"):
        Scenario(crash_rate=-0.1)
    with pytest.raises(ValueError, match="must be > 0"):
        Scenario(duration=0.0)


# --- the session model ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("connected", "hung", "detected"),
    [
        (0.0, 0.1, 10.0),  # pings at 5, 10, ...: the ping at 5 gets no pong, times out at 10
        (0.0, 4.9, 10.0),
        (0.0, 5.0, 15.0),  # the ping at 5 was answered; the one at 10 is not
        (2.0, 8.0, 17.0),  # the session's own ticks: 7, 12, ...
    ],
)
def test_a_hang_is_detected_at_the_first_ping_after_it_plus_the_timeout(
    connected: float, hung: float, detected: float
) -> None:
    scenario = Scenario(ping_interval=5.0, ping_timeout=5.0)
    assert ping_detection_at(connected, hung, scenario) == detected


def test_the_simulated_service_pings_as_the_shipped_one() -> None:
    config = ServiceConfig()
    assert (Scenario().ping_interval, Scenario().ping_timeout) == (
        config.ping_interval,
        config.ping_timeout,
    )


def test_the_policy_sets_are_the_issues() -> None:
    assert list(POLICY_SETS) == [
        "dragonfly-2.0",
        "dragonfly-compat",
        "dragonfly-2.4",
        "default",
        "phi-accrual",
    ]
    before, after = POLICY_SETS["dragonfly-2.0"], POLICY_SETS["dragonfly-compat"]
    assert not (before.disconnect_signal)
    assert not (before.pings)
    assert not (before.announce_with_interval)
    assert before.config["dragonfly_compat"] == {
        "host_ttl": 6 * 3600.0,
        "host_sweep_interval": 6 * 3600.0,
    }
    assert not (after.disconnect_signal)
    assert not (after.pings)
    assert after.announce_with_interval
    assert after.config == {}  # the plugin's own defaults
    assert POLICY_SETS["default"].disconnect_signal
    assert POLICY_SETS["default"].pings
    assert POLICY_SETS["phi-accrual"].enable == ("phi_accrual",)
    current = POLICY_SETS["dragonfly-2.4"]
    assert current.enable == ("dragonfly_compat", "dragonfly_evaluator")
    assert not (current.disconnect_signal)
    assert not (current.pings)


# --- ground truth and metrics --------------------------------------------------------------------


def _host(name: str) -> SimHost:
    plan = build_workload(attrs.evolve(SMALL, hosts=3, seeds=0))[0]
    return SimHost(plan=plan, info=HostInfo(hostname=name, ip="10.0.0.1"), connected_at=0.0)


def test_the_ground_truth_names_why_a_parent_cannot_serve() -> None:
    truth = GroundTruth()
    alive, dead = _host("alive"), _host("dead")
    for host in (alive, dead):
        truth.add_host(host)
    truth.add_peer(SimPeer("p1", alive, 0, "task-0000", 0.0, seed=False))
    truth.add_peer(SimPeer("p2", dead, 0, "task-0000", 0.0, seed=False))
    dead.dead, dead.cause, dead.died_at = True, Cause.HANG, 3.0
    assert truth.death_cause("p1") is None
    assert truth.death_cause("p2") == "hang"
    assert truth.death_cause("nobody") == "unknown"
    truth.peers["p1"].mode = Mode.FAILED
    assert truth.death_cause("p1") == "other"
    with pytest.raises(ValueError, match="already exists"):
        truth.add_peer(SimPeer("p1", alive, 1, "task-0001", 0.0, seed=False))


def test_a_batch_counts_the_pieces_fetched_by_a_time() -> None:
    batch = Batch("p", started_at=10.0, count=8, piece_time=0.5)
    assert [batch.done_by(t) for t in (9.0, 10.0, 10.49, 10.5, 11.0, 14.0, 99.0)] == [
        0,
        0,
        0,
        1,
        2,
        8,
        8,
    ]


def test_percentile() -> None:
    assert percentile([], 50) is None
    assert percentile([3.0], 99) == 3.0
    assert percentile([1.0, 2.0, 3.0, 4.0], 50) == 2.5
    assert percentile(list(map(float, range(101))), 99) == 99.0
    with pytest.raises(ValueError, match="q must be"):
        percentile([1.0], 101)


def test_metrics_count_each_decision_once_and_each_dead_parent_by_cause() -> None:
    metrics = Metrics()
    metrics.record_decision("parents", "register", [None, None])
    metrics.record_decision("parents", "reschedule", [None, "crash", "crash"])
    metrics.record_decision("wait", "register", [])
    metrics.record_decision("parents", "parent_lost", ["stale"])
    result = SetResult.from_metrics("default", 0.05, metrics, elapsed=0.0)
    assert result.decisions == 4
    assert result.parent_decisions == 3
    assert result.success == pytest.approx(1 / 3)
    assert result.dead_handouts_by_cause == {"crash": 2, "hang": 0, "leave": 0, "stale": 1}
    assert result.dead_handouts_per_1000 == pytest.approx(1000 * 3 / 3)
    assert result.pushes == 1
    assert set(result.to_json()) >= JSON_KEYS


def test_an_empty_run_reports_no_ratios() -> None:
    result = SetResult.from_metrics("default", 0.0, Metrics(), elapsed=0.0)
    assert result.success is None
    assert result.download_time_p99 is None
    assert result.back_to_source_share is None
    assert result.reschedules_per_download is None


# --- end to end: the real core -------------------------------------------------------------------


Run = tuple[ChurnSimulation, SetResult, list[PeerScheduled]]


def _run(spec: str, scenario: Scenario = SMALL) -> Run:
    """Run one set, keeping every decision event the engine recorded (alive, so ids differ)."""
    sim = ChurnSimulation(scenario, POLICY_SETS[spec], build_workload(scenario))
    recorded: list[PeerScheduled] = []
    record = sim._record

    def spy(event: PeerScheduled) -> None:
        recorded.append(event)
        record(event)

    sim._record = spy  # type: ignore[method-assign]
    result = sim.run()
    return sim, result, recorded


@pytest.fixture(scope="module")
def small_results() -> dict[str, Run]:
    return {name: _run(name) for name in POLICY_SETS}


@pytest.mark.parametrize("name", list(POLICY_SETS))
def test_a_run_keeps_its_invariants(name: str, small_results: dict[str, Run]) -> None:
    sim, result, recorded = small_results[name]
    metrics = sim.metrics
    # No decision is counted twice, and every one is counted.
    assert len(recorded) == len({id(e) for e in recorded}) == result.decisions > 0
    assert sum(metrics.decisions_by_action.values()) == result.decisions
    assert sum(metrics.decisions_by_cause.values()) == result.decisions
    assert set(metrics.decisions_by_cause) <= {"register", "reschedule", "parent_lost"}
    # Each schedule_peer / reschedule_peer call was answered by exactly one decision.
    registered = result.downloads_started + sum(1 for p in sim.truth.peers.values() if p.seed)
    refused = sum(result.errors.values())
    assert metrics.decisions_by_cause["register"] == registered
    assert metrics.reschedules - refused <= metrics.decisions_by_cause["reschedule"]
    assert metrics.decisions_by_cause["reschedule"] <= metrics.reschedules
    # Figures in range.
    assert 0 < result.parent_decisions <= result.decisions
    assert result.success is not None
    assert 0.0 <= result.success <= 1.0
    dead = sum(result.dead_handouts_by_cause.values())
    assert result.dead_handouts_per_1000 == pytest.approx(1000 * dead / result.parent_decisions)
    assert set(CAUSES) <= set(result.dead_handouts_by_cause)
    assert 0 < result.downloads_completed <= result.downloads_started
    assert result.download_time_p50 is not None
    assert result.download_time_p99 is not None
    assert SMALL.pieces * SMALL.piece_time * 0.3 < result.download_time_p50
    assert result.download_time_p50 <= result.download_time_p99 <= SMALL.duration
    assert result.back_to_source_share is not None
    assert 0.0 <= result.back_to_source_share <= 1.0
    assert result.peak_records >= SMALL.hosts
    # The core's own bookkeeping is sound at the end of the run.
    assert sim.state.invariant_violations() == []


def test_the_default_set_never_hands_out_a_parent_that_crashed_or_left(
    small_results: dict[str, Run],
) -> None:
    for name in ("default", "phi-accrual"):
        by_cause = small_results[name][1].dead_handouts_by_cause
        assert by_cause["crash"] == 0
        assert by_cause["leave"] == 0
    assert small_results["dragonfly-compat"][1].pushes == 0
    assert small_results["dragonfly-2.0"][1].pushes == 0


def test_same_seed_same_figures(
    small_results: dict[str, Run],
) -> None:
    for name in ("dragonfly-compat", "default"):
        again = _run(name)[1]
        assert again.figures() == small_results[name][1].figures()


def test_simulate_runs_every_set_at_every_churn_rate() -> None:
    tiny = attrs.evolve(SMALL, hosts=20, tasks=4, duration=300.0)
    seen: list[SetResult] = []
    results = simulate(tiny, ["default", "dragonfly-compat"], [0.1, 0.5], progress=seen.append)
    assert [(r.churn, r.policy) for r in results] == [
        (0.1, "default"),
        (0.1, "dragonfly-compat"),
        (0.5, "default"),
        (0.5, "dragonfly-compat"),
    ]
    assert seen == results
    with pytest.raises(ValueError, match="unknown policy"):
        simulate(tiny, ["nope"])


# --- output and the command ----------------------------------------------------------------------


def test_the_table_and_the_json(tmp_path: Path) -> None:
    metrics = Metrics()
    metrics.record_decision("parents", "register", [None])
    results = [
        SetResult.from_metrics(name, churn, metrics, elapsed=0.1)
        for churn in (0.05, 0.1)
        for name in ("default", "dragonfly-compat")
    ]
    table = results_table(results, title="t")
    assert table.row_count == 4
    assert table.columns[0].header == "crash/h"
    assert results_table(results[:2]).columns[0].header == "policy set"
    path = tmp_path / "out.json"
    write_json(results, path)
    rows: list[dict[str, Any]] = json.loads(path.read_text())
    assert [(r["policy"], r["churn"]) for r in rows] == [(r.policy, r.churn) for r in results]
    assert all(
        set(r) >= JSON_KEYS and set(CAUSES) <= set(r["dead_handouts_by_cause"]) for r in rows
    )


@pytest.mark.parametrize(
    ("text", "rate"), [("5%", 0.05), ("5%/h", 0.05), ("0.05", 0.05), (" 10 % ", 0.1), ("0", 0.0)]
)
def test_rates_are_per_host_hour(text: str, rate: float) -> None:
    assert parse_rate(text) == pytest.approx(rate)


@pytest.mark.parametrize("text", ["fast", "-1%", ""])
def test_a_bad_rate_is_a_usage_error(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError):
        parse_rate(text)


def test_a_churn_list() -> None:
    assert parse_rates("1%,5%, 10%") == pytest.approx([0.01, 0.05, 0.1])


def test_the_command_writes_json_and_a_plot(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("matplotlib")
    monkeypatch.setenv("COLUMNS", "200")
    out_json, out_png = tmp_path / "sim.json", tmp_path / "sim.png"
    argv = ["simulate", "--hosts", "20", "--tasks", "4", "--pieces", "8", "--duration", "5m"]
    argv += ["--policy", "default", "--policy", "dragonfly-compat", "--churn", "10%,50%"]
    status = main([*argv, "--json", str(out_json), "--plot", str(out_png)])
    out = capsys.readouterr().out
    assert status == 0
    assert "elapsed" in out
    assert "peak records" in out
    assert "dragonfly-compat" in out
    rows = json.loads(out_json.read_text())
    assert [(r["policy"], r["churn"]) for r in rows] == [
        ("default", 0.1),
        ("dragonfly-compat", 0.1),
        ("default", 0.5),
        ("dragonfly-compat", 0.5),
    ]
    assert out_png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_command_rejects_a_bad_scenario(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["simulate", "--hosts", "3", "--seeds", "3"]) == 2
    assert "more hosts than seeds" in capsys.readouterr().out


def test_the_simulator_is_sans_io() -> None:
    code = "import sys, scheduler.simulate; sys.exit('trio' in sys.modules)"
    subprocess.run([sys.executable, "-c", code], check=True)


# --- policy sets of one's own ----------------------------------------------------------------


def test_a_policy_set_of_ones_own_runs_beside_the_built_in_ones(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "200")
    out = tmp_path / "sim.json"
    config = tmp_path / "sets.toml"
    config.write_text(
        "[policy_sets.patient]\n"
        'enable = ["phi_accrual"]\n'
        'description = "phi with a high threshold"\n'
        "[policy_sets.patient.plugins.phi_accrual]\n"
        "threshold = 16.0\n"
    )
    argv = ["simulate", "--hosts", "20", "--tasks", "4", "--pieces", "8", "--duration", "5m"]
    argv += ["--policy", "default", "--policy-set", "mine=phi_accrual"]
    assert main([*argv, "--config", str(config), "--json", str(out)]) == 0
    rows = json.loads(out.read_text())
    assert [r["policy"] for r in rows] == ["default", "mine", "patient"]
    assert "patient" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("flag", "message"),
    [
        ("mine", "expected NAME=PLUGIN[,PLUGIN...]"),
        ("default=phi_accrual", "a policy set needs a new name"),
        ("mine=", "names no plugin"),
    ],
)
def test_a_bad_policy_set_is_a_usage_error(
    flag: str, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as info:
        main(["simulate", "--policy-set", flag])
    assert info.value.code == 2
    assert message in capsys.readouterr().err


def test_a_policy_set_naming_no_installed_plugin_says_so(
    capsys: pytest.CaptureFixture[str],
) -> None:
    argv = ["simulate", "--hosts", "20", "--tasks", "2", "--duration", "1m"]
    assert main([*argv, "--policy-set", "mine=not_installed"]) == 2
    assert "no plugin named 'not_installed'" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[other]\nx = 1\n", "unknown table(s) ['other']"),
        ("[policy_sets.a]\nenable = 'phi_accrual'\n", "enable and disable are lists"),
        ("[policy_sets.a]\nenable = ['phi_accrual']\nwhat = 1\n", "unknown key(s) ['what']"),
        ("[policy_sets.default]\nenable = ['phi_accrual']\n", "needs a new name"),
        ("not toml", "Expected"),
    ],
)
def test_a_bad_policy_file_names_what_is_wrong(
    tmp_path: Path, text: str, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "sets.toml"
    config.write_text(text)
    assert main(["simulate", "--config", str(config)]) == 2
    assert message in capsys.readouterr().out


def test_the_sets_whose_plugins_are_missing_are_left_out_in_one_line(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # A machine with the base install only: no plugin distribution.
    monkeypatch.setattr(simulate_cli, "installed_plugins", dict)
    monkeypatch.setenv("COLUMNS", "300")
    assert simulate_cli.left_out_sets() == {
        "dragonfly-2.0": ["dragonfly_compat"],
        "dragonfly-compat": ["dragonfly_compat"],
        "dragonfly-2.4": ["dragonfly_compat", "dragonfly_evaluator"],
        "phi-accrual": ["phi_accrual"],
    }
    argv = ["simulate", "--hosts", "20", "--tasks", "2", "--duration", "1m"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    (line,) = [line for line in out.splitlines() if line.startswith("left out:")]
    assert line == (
        "left out: dragonfly-2.0, dragonfly-compat, dragonfly-2.4, phi-accrual (they need "
        "the dragonfly_compat, dragonfly_evaluator, phi_accrual plugins: from a checkout, "
        "pip install "
        "./plugins/dragonfly-compat ./plugins/phi-accrual)"
    )
