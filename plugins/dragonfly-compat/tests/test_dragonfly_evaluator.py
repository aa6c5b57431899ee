"""Dragonfly v2.4's load-aware evaluator: each term on exact numbers, then in a real core.

The formula is Dragonfly's ``scheduler/scheduling/evaluator/evaluator_default.go``:
0.6 load quality (0.5 peak bandwidth usage + 0.3 bandwidth duration + 0.2
concurrency) + 0.2 IDC affinity + 0.1 location affinity + 0.1 host type.
"""

from __future__ import annotations

import random

import pytest
from scheduler_dragonfly_compat import DragonflyEvaluator
from scheduler_dragonfly_compat._evaluator import (
    DURATION_WINDOW,
    bandwidth_duration_score,
    concurrency_score,
    evaluate,
    host_type_score,
    idc_affinity_score,
    load_quality_score,
    location_affinity_score,
    peak_bandwidth_usage_score,
)

from scheduler.core import (
    UPLOAD_WINDOW,
    ConfigError,
    Host,
    HostInfo,
    HostType,
    Peer,
    PeerScheduled,
    PeerState,
    SchedulerState,
    TaskInfo,
    UploadLoad,
)
from scheduler.policies import load_policies

GBIT = 1e9
#: A capacity of exactly four 16 MiB pieces in flight.
FOUR_PIECES = 4 * 16 * 1024 * 1024 * 8


# --- the terms ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("capacity", "rate", "score"),
    [
        (GBIT, 0.0, 1.0),
        (1.0, 0.0, 1.0),  # 1 bit/s is a capacity
        (1.0, 0.5, 0.5),
        (GBIT, 0.25 * GBIT, 0.75),
        (GBIT, GBIT, 0.0),
        (GBIT, 2 * GBIT, 0.0),
        (0.0, 0.0, 0.0),
    ],
)
def test_peak_bandwidth_usage(capacity: float, rate: float, score: float) -> None:
    assert peak_bandwidth_usage_score(capacity, rate) == score


@pytest.mark.parametrize(
    ("capacity", "window_bytes", "score"),
    [
        (GBIT, 0, 1.0),
        (GBIT, 3_750_000_000, 0.5),  # 3.75 GB × 8 / 1 Gbit/s / 60 s = 0.5
        (GBIT, 7_500_000_000, 0.0),  # exactly saturated
        (GBIT, 9_000_000_000, 0.0),
        (GBIT, 750_000_000, 0.9),
        (1.0, 0, 1.0),  # 1 bit/s is a capacity
        (480.0, 1, 1 - 8 / 480 / 60),  # one byte counts
        (0.0, 0, 0.0),  # unknown capacity: 0, even when nothing was uploaded
        (0.0, 100, 0.0),
    ],
)
def test_bandwidth_duration(capacity: float, window_bytes: int, score: float) -> None:
    assert bandwidth_duration_score(capacity, window_bytes) == pytest.approx(score, abs=1e-12)


def test_the_duration_window_is_the_core_s() -> None:
    assert DURATION_WINDOW == UPLOAD_WINDOW == 60.0


@pytest.mark.parametrize(
    ("capacity", "in_flight", "score"),
    [
        (FOUR_PIECES, 0, 1.0),
        (FOUR_PIECES, 1, 1.0),
        (FOUR_PIECES, 4, 1.0),
        (FOUR_PIECES, 5, 0.8),
        (FOUR_PIECES, 8, 0.5),
        (FOUR_PIECES / 4, 0, 0.0),  # one piece's worth: never enough
        (FOUR_PIECES / 2, 2, 1.0),
        (FOUR_PIECES / 2, 4, 0.5),
        (FOUR_PIECES / 2, 3, 2 / 3),
        (0.0, 0, 0.0),
    ],
)
def test_concurrency(capacity: float, in_flight: int, score: float) -> None:
    assert concurrency_score(capacity, in_flight) == score


def test_load_quality_weighs_the_three_terms() -> None:
    idle = UploadLoad()
    assert load_quality_score(FOUR_PIECES, idle) == 1.0
    busy = UploadLoad(rate=FOUR_PIECES / 2, window_bytes=int(FOUR_PIECES * 60 / 8 / 4), in_flight=8)
    assert load_quality_score(FOUR_PIECES, busy) == pytest.approx(
        0.5 * 0.5 + 0.3 * 0.75 + 0.2 * 0.5
    )
    assert load_quality_score(0.0, busy) == 0.0


@pytest.mark.parametrize(
    ("mine", "theirs", "score"),
    [("idc-a", "IDC-A", 1.0), ("idc-a", "idc-b", 0.0), ("", "", 0.0), ("a", "", 0.0)],
)
def test_idc_affinity(mine: str, theirs: str, score: float) -> None:
    assert idc_affinity_score(mine, theirs) == score


@pytest.mark.parametrize(
    ("mine", "theirs", "score"),
    [
        # Dragonfly's own example.
        ("China|Beijing|Haidian|Zone-A|Cluster-1", "China|Beijing|Chaoyang|Zone-B|Cluster-2", 0.4),
        ("a|b", "A|B", 1.0),
        ("a|b|c|d|e|f", "a|b|c|d|e|g", 1.0),  # five elements at most
        ("a|b|c|d|e|f|g", "a|b|c|d|e|f|h", 1.0),
        ("", "|x", 0.0),  # no location shares nothing, not even an empty first element
        ("|x", "", 0.0),
        ("a|b|c", "a|b", 0.4),
        ("a|b", "a|b|c", 0.4),
        ("x|b", "a|b", 0.0),
        ("a", "", 0.0),
        ("", "a", 0.0),
    ],
)
def test_location_affinity(mine: str, theirs: str, score: float) -> None:
    assert location_affinity_score(mine, theirs) == pytest.approx(score)


def host(name: str, **info: object) -> Host:
    return Host(name, HostInfo(name, "10.0.0.1", **info), None, 0.0, 0.0, 0.0)  # type: ignore[arg-type]


def peer(state: PeerState) -> Peer:
    return Peer("p", "t", "h", 0.0, 0.0, 0.0, state=state)


@pytest.mark.parametrize(
    ("state", "seed_score"),
    [
        (PeerState.RECEIVED_NORMAL, 1.0),
        (PeerState.RUNNING, 1.0),
        (PeerState.SUCCEEDED, 0.0),
        (PeerState.BACK_TO_SOURCE, 0.0),
        (PeerState.RECEIVED_SMALL, 0.0),
    ],
)
def test_host_type(state: PeerState, seed_score: float) -> None:
    assert host_type_score(peer(state), host("s", type=HostType.SEED)) == seed_score
    assert host_type_score(peer(state), host("n")) == 0.5


def test_the_whole_score() -> None:
    parent_host = host("p", idc="a", location="x|y", upload_bandwidth=FOUR_PIECES)
    child_host = host("c", idc="a", location="x|z")
    running = peer(PeerState.RUNNING)
    assert evaluate(running, parent_host, child_host, UploadLoad()) == pytest.approx(
        0.6 * 1.0 + 0.2 * 1.0 + 0.1 * 0.2 + 0.1 * 0.5
    )
    busy = UploadLoad(rate=FOUR_PIECES, window_bytes=0, in_flight=8)
    assert evaluate(running, parent_host, child_host, busy) == pytest.approx(
        0.6 * (0.5 * 0.0 + 0.3 * 1.0 + 0.2 * 0.5) + 0.2 + 0.1 * 0.2 + 0.1 * 0.5
    )
    seed = host("s", idc="a", location="x|y", type=HostType.SEED, upload_bandwidth=FOUR_PIECES)
    assert evaluate(running, seed, child_host, UploadLoad()) == pytest.approx(
        0.6 + 0.2 + 0.1 * 0.2 + 0.1 * 1.0
    )
    done = peer(PeerState.SUCCEEDED)
    assert evaluate(done, seed, child_host, UploadLoad()) == pytest.approx(0.6 + 0.2 + 0.02)
    unknown = host("u", idc="a", location="x|y")
    assert evaluate(running, unknown, child_host, UploadLoad()) == pytest.approx(
        0.2 + 0.1 * 0.2 + 0.1 * 0.5
    )


# --- in a real core --------------------------------------------------------------------------

TASK = TaskInfo("t", url="https://example.invalid/t", piece_length=4 * 2**20, total_piece_count=8)


def new_state() -> SchedulerState:
    policies = load_policies(enable=["dragonfly_evaluator"])
    return SchedulerState(policies, now=0.0, rng=random.Random(3))


def feeder(state: SchedulerState, name: str, ip: str, bandwidth: int) -> str:
    info = HostInfo(name, ip, upload_bandwidth=bandwidth)
    state.announce_host(info, 0.0, interval=3600)
    state.register_peer(f"{name}-peer", info.id, TASK, 0.0)
    state.back_to_source(f"{name}-peer", 0.0)
    state.finish_pieces(f"{name}-peer", range(8), 0.0)
    return f"{name}-peer"


def test_it_replaces_the_built_in_evaluator_and_hands_out_three_parents() -> None:
    state = new_state()
    assert state.policies.schedule_limits().candidate_parent_limit == 3
    assert "dragonfly_evaluator" in state.policies.names
    assert "evaluator" not in state.policies.names
    for i in range(5):
        feeder(state, f"f{i}", f"10.0.1.{i + 1}", 10**9)
    child = HostInfo("child", "10.0.2.1")
    state.announce_host(child, 0.0, interval=3600)
    state.register_peer("c", child.id, TASK, 1.0)
    (event,) = [e for e in state.schedule_peer("c", 1.0) if isinstance(e, PeerScheduled)]
    assert len(event.decision.parents) == 3


def test_a_parent_its_children_report_busy_ranks_below_an_idle_one() -> None:
    state = new_state()
    busy = feeder(state, "busy", "10.0.1.1", 10**9)
    idle = feeder(state, "idle", "10.0.1.2", 10**9)
    # Children report 1 GB from "busy" in the last seconds: its load, not its word.
    for n in range(3):
        info = HostInfo(f"c{n}", f"10.0.3.{n + 1}")
        state.announce_host(info, 0.0, interval=3600)
        state.register_peer(f"c{n}", info.id, TASK, 1.0)
        state.schedule_peer(f"c{n}", 1.0)
        state.start_download(f"c{n}", 1.0)
        parents = state.view.parents_of(f"c{n}")
        if busy in parents:
            state.finish_pieces(f"c{n}", range(8), 2.0, parent_id=busy)
    plugin = DragonflyEvaluator()
    child = state.view.peer("c0")
    scores = plugin.scores(child, [state.view.peer(busy), state.view.peer(idle)], state.view, 2.0)
    assert scores[1] > scores[0]


def test_the_scores_are_evaluate_s_for_each_candidate() -> None:
    state = new_state()
    normal = feeder(state, "normal", "10.0.1.1", 10**9)
    seed_info = HostInfo("seed", "10.0.1.9", type=HostType.SEED, upload_bandwidth=10**10)
    state.announce_host(seed_info, 0.0, interval=3600)
    state.register_peer("seed-peer", seed_info.id, TASK, 0.0)
    state.back_to_source("seed-peer", 0.0)
    state.finish_pieces("seed-peer", range(4), 0.0)
    child = HostInfo("child", "10.0.2.1")
    state.announce_host(child, 0.0, interval=3600)
    state.register_peer("c", child.id, TASK, 1.0)
    view = state.view
    candidates = [view.peer(normal), view.peer("seed-peer")]
    expected = [
        evaluate(p, view.host(p.host_id), view.host(child.id), view.upload_load(p.host_id, 1.0))
        for p in candidates
    ]
    assert DragonflyEvaluator().scores(view.peer("c"), candidates, view, 1.0) == expected
    assert (
        DragonflyEvaluator().scheduler_candidate_scores(view.peer("c"), candidates, view, 1.0)
        == expected
    )
    # A seed's peer fetching from the origin is not running: its type scores 0.
    assert expected[1] == pytest.approx(0.6 * 1.0)


def test_a_fresh_plugin_answers_its_own_limits() -> None:
    assert DragonflyEvaluator().scheduler_schedule_limits().candidate_parent_limit == 3


def test_the_parent_limit_is_a_setting() -> None:
    policies = load_policies(
        enable=["dragonfly_evaluator"],
        config={"dragonfly_evaluator": {"candidate_parent_limit": 5}},
    )
    assert policies.schedule_limits().candidate_parent_limit == 5
    with pytest.raises(ConfigError, match="candidate_parent_limit"):
        load_policies(
            enable=["dragonfly_evaluator"],
            config={"dragonfly_evaluator": {"candidate_parent_limit": 0}},
        )
