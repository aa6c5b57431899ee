"""The default evaluator: six figures, their weights, seeds last, and the decision limits.

Weights: finished pieces 0.15, upload success rate 0.15, upload load 0.4
(``1 / (1 + in flight + recent share of the uplink)``), host type 0.1 (normal hosts
first), IDC affinity 0.1, location affinity 0.1 (shared prefix of ``|``-separated
elements, up to 5). Seeds are left out when a normal host can feed the child. Limits
(Dragonfly's): ``candidate_parent_limit`` 4, ``filter_parent_limit`` 15, ``retry_after``
0.5 s, ``retry_back_to_source_limit`` 4, ``retry_limit`` 5.
"""

from __future__ import annotations

from typing import Any

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from scheduler.core import (
    ConfigError,
    Host,
    HostInfo,
    HostType,
    Peer,
    PeerState,
    ScheduleLimits,
    SchedulerState,
    Task,
    TaskInfo,
    UploadLoad,
)
from scheduler.policies import load_policies
from scheduler.policies._evaluator import (
    Evaluator,
    evaluate,
    finished_piece_score,
    host_type_score,
    idc_affinity_score,
    location_affinity_score,
    score_candidates,
    upload_load_score,
    upload_success_score,
    without_seeds,
)


def peer(peer_id: str, pieces: int = 0) -> Peer:
    record = Peer(peer_id, "t", f"h-{peer_id}", 0.0, 0.0, 0.0, state=PeerState.RUNNING)
    for piece in range(pieces):
        record.finished_pieces.add(piece)
    return record


def task(total: int) -> Task:
    return Task("t", "", -1, -1, total, 0.0, 0.0)


def host(
    limit: int = 4,
    *,
    used: int = 0,
    ok: int = 0,
    failed: int = 0,
    type: HostType = HostType.NORMAL,
    idc: str = "",
    location: str = "",
    bandwidth: int = 0,
) -> Host:
    info = HostInfo(
        "h",
        "10.0.0.1",
        concurrent_upload_limit=limit,
        type=type,
        idc=idc,
        location=location,
        upload_bandwidth=bandwidth,
    )
    record = Host("h", info, None, 0.0, 0.0, 0.0)
    record.concurrent_upload_count = used
    record.upload_count = ok
    record.upload_failed_count = failed
    return record


# --- the figures ------------------------------------------------------------------------------


def test_finished_pieces_are_the_share_of_the_task_the_parent_holds() -> None:
    child = peer("c", 5)
    assert finished_piece_score(peer("p", 3), child, task(10)) == 0.3
    assert finished_piece_score(peer("p", 0), child, task(10)) == 0.0
    assert finished_piece_score(peer("p", 10), child, task(10)) == 1.0
    assert finished_piece_score(peer("p", 12), child, task(10)) == 1.0  # never above 1
    assert finished_piece_score(peer("p", 1), peer("c", 1), task(1)) == 1.0


@pytest.mark.parametrize("total", [0, -1])
def test_for_a_task_of_unknown_size_pieces_score_the_lead_on_the_child(total: int) -> None:
    assert finished_piece_score(peer("p", 3), peer("c", 2), task(total)) == 1.0
    assert finished_piece_score(peer("p", 2), peer("c", 2), task(total)) == 0.0
    assert finished_piece_score(peer("p", 1), peer("c", 2), task(total)) == 0.0
    assert finished_piece_score(peer("p", 1), peer("c", 0), task(total)) == 1.0


def test_upload_success_rate_of_the_parents_host() -> None:
    assert upload_success_score(host()) == 1.0  # never tried: trusted
    assert upload_success_score(host(ok=3, failed=1)) == 0.75
    assert upload_success_score(host(ok=0, failed=2)) == 0.0
    assert upload_success_score(host(ok=1)) == 1.0
    assert upload_success_score(host(failed=1, ok=4)) == 0.8


GBIT = 10**9
#: What a 1 Gbit/s uplink carries in the 60 s window.
MINUTE_AT_GBIT = GBIT * 60 // 8


@pytest.mark.parametrize(
    ("bandwidth", "load", "score"),
    [
        (0, UploadLoad(), 1.0),
        (0, UploadLoad(in_flight=1), 0.5),
        (0, UploadLoad(in_flight=3), 0.25),
        (0, UploadLoad(window_bytes=10**12), 1.0),  # no bandwidth: the bytes say nothing
        (GBIT, UploadLoad(window_bytes=MINUTE_AT_GBIT), 0.5),  # a full minute: a child's worth
        (GBIT, UploadLoad(window_bytes=MINUTE_AT_GBIT // 2), 1 / 1.5),
        (GBIT, UploadLoad(window_bytes=MINUTE_AT_GBIT, in_flight=2), 0.25),
        (10 * GBIT, UploadLoad(window_bytes=MINUTE_AT_GBIT), 1 / 1.1),
        (GBIT, UploadLoad(rate=1e9), 1.0),  # the rate is not a figure of this score
        (1, UploadLoad(window_bytes=15), 1 / 3),  # 1 bit/s is a bandwidth: 120 bits, 2 minutes
    ],
)
def test_upload_load_is_what_the_children_report(
    bandwidth: int, load: UploadLoad, score: float
) -> None:
    assert upload_load_score(host(bandwidth=bandwidth), load) == pytest.approx(score, abs=1e-12)


def test_normal_hosts_are_preferred_to_seeds() -> None:
    assert host_type_score(host(type=HostType.SEED)) == 0.5
    assert host_type_score(host(type=HostType.NORMAL)) == 1.0


def test_idc_affinity_needs_the_same_named_idc() -> None:
    assert idc_affinity_score("idc-1", "idc-1") == 1.0
    assert idc_affinity_score("idc-1", "idc-2") == 0.0
    assert idc_affinity_score("", "") == 0.0  # no IDC is not an IDC in common
    assert idc_affinity_score("idc-1", "") == 0.0


@pytest.mark.parametrize(
    ("parent", "child", "score"),
    [
        ("", "", 0.0),
        ("a|b", "", 0.0),
        ("", "a|b", 0.0),
        ("", "|x", 0.0),  # no location shares nothing, not even an empty first element
        ("|x", "", 0.0),
        ("a", "a", 1.0),
        ("a|b|c|d|e|f|g", "a|b|c|d|e|f|g", 1.0),
        ("a|b|x", "a|b|y", 0.4),
        ("a|b", "a|b|c", 0.4),
        ("a|b|c", "a|b", 0.4),
        ("a", "b", 0.0),
        ("x|b|c", "y|b|c", 0.0),  # only a shared prefix counts
        ("a|b|c|d|x", "a|b|c|d|y", 0.8),
        ("a|b|c|d|e|x", "a|b|c|d|e|y", 1.0),  # at most 5 elements are compared
        ("a|b|c|d|e|f|x", "a|b|c|d|e|f|y", 1.0),
    ],
)
def test_location_affinity_is_the_shared_prefix_over_five(
    parent: str, child: str, score: float
) -> None:
    assert location_affinity_score(parent, child) == pytest.approx(score)


# --- the weights ------------------------------------------------------------------------------


def _score(
    *,
    parent_pieces: int = 0,
    ok: int = 0,
    failed: int = 1,
    in_flight: int = 3,
    seed: bool = True,
    idc: bool = False,
    location: str = "",
) -> float:
    """evaluate() with every figure low (the load at 1/4, a seed's type at 0.5), except
    those asked for."""
    parent_host = host(
        2,
        ok=ok,
        failed=failed,
        type=HostType.SEED if seed else HostType.NORMAL,
        idc="idc-1" if idc else "idc-p",
        location=location or "p",
    )
    child_host = host(idc="idc-1", location="a|b|c|d|e")
    load = UploadLoad(in_flight=in_flight)
    return evaluate(
        peer("p", parent_pieces), parent_host, peer("c"), child_host, task(10), load=load
    )


def test_each_figure_has_its_weight() -> None:
    floor = 0.4 * 0.25 + 0.1 * 0.5  # the load and the host type are never 0
    assert _score() == pytest.approx(floor)
    assert _score(parent_pieces=10) - floor == pytest.approx(0.15)
    assert _score(parent_pieces=5) - floor == pytest.approx(0.075)
    assert _score(ok=1, failed=0) - floor == pytest.approx(0.15)
    assert _score(ok=1, failed=1) - floor == pytest.approx(0.075)
    assert _score(in_flight=0) - floor == pytest.approx(0.3)
    assert _score(in_flight=1) - floor == pytest.approx(0.1)
    assert _score(seed=False) - floor == pytest.approx(0.05)
    assert _score(idc=True) - floor == pytest.approx(0.1)
    assert _score(location="a|b|c|d|e") - floor == pytest.approx(0.1)
    assert _score(location="a|b|x") - floor == pytest.approx(0.04)


def test_for_a_task_of_unknown_size_the_weight_applies_to_the_lead_on_the_child() -> None:
    parent_host, child_host = host(2, used=2, failed=1), host()
    ahead = evaluate(peer("p", 3), parent_host, peer("c", 2), child_host, task(-1))
    level = evaluate(peer("p", 2), parent_host, peer("c", 2), child_host, task(-1))
    assert level == pytest.approx(0.4 + 0.1)  # nobody reported a load: the whole weight
    assert ahead - level == pytest.approx(0.15)


def test_the_best_parent_scores_one() -> None:
    best = _score(
        parent_pieces=10, ok=1, failed=0, in_flight=0, seed=False, idc=True, location="a|b|c|d|e"
    )
    assert best == pytest.approx(1.0)


# --- the limits -------------------------------------------------------------------------------


def test_the_default_limits_are_dragonflys() -> None:
    evaluator = Evaluator()
    expected = ScheduleLimits(
        candidate_parent_limit=4,
        filter_parent_limit=15,
        retry_after=0.5,
        retry_back_to_source_limit=4,
        retry_limit=5,
    )
    assert evaluator.limits() == expected
    assert evaluator.scheduler_schedule_limits() == expected
    assert ScheduleLimits() == expected


def test_configured_limits_are_the_ones_every_decision_gets() -> None:
    evaluator = Evaluator()
    evaluator.scheduler_configure(
        {
            "evaluator": {
                "candidate_parent_limit": 2,
                "filter_parent_limit": 7,
                "retry_after": "2s",
                "retry_back_to_source_limit": 0,
                "retry_limit": 9,
            }
        }
    )
    expected = ScheduleLimits(
        candidate_parent_limit=2,
        filter_parent_limit=7,
        retry_after=2.0,
        retry_back_to_source_limit=0,
        retry_limit=9,
    )
    assert evaluator.limits() == expected
    assert evaluator.scheduler_schedule_limits() == expected


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("candidate_parent_limit", 0),
        ("filter_parent_limit", 0),
        ("retry_after", 0),
        ("retry_back_to_source_limit", -1),
        ("retry_limit", -1),
    ],
)
def test_limits_out_of_range_are_refused_by_name(key: str, value: object) -> None:
    evaluator = Evaluator()
    with pytest.raises(ConfigError, match=key):
        evaluator.scheduler_configure({"evaluator": {key: value}})
    assert evaluator.scheduler_schedule_limits() == ScheduleLimits()


def test_the_batch_score_hook_reads_the_records_from_the_view() -> None:
    state = SchedulerState(load_policies(entrypoints=False), now=0.0)
    info = TaskInfo("t", total_piece_count=4)
    state.announce_host(HostInfo("parent", "10.0.0.1", idc="x", type=HostType.SEED), 0.0)
    state.announce_host(HostInfo("child", "10.0.0.2", idc="x"), 0.0)
    parent_host, child_host = (h.id for h in state.view.hosts())
    state.register_peer("p", parent_host, info, 0.0)
    state.register_peer("c", child_host, info, 0.0)
    state.back_to_source("p", 0.0)
    state.finish_pieces("p", [0, 1], 0.0)
    view = state.view
    (answer,) = Evaluator().scheduler_candidate_scores(view.peer("c"), [view.peer("p")], view, 0.0)
    assert answer == evaluate(
        view.peer("p"),
        view.host(parent_host),
        view.peer("c"),
        view.host(child_host),
        view.task("t"),
        load=view.upload_load(parent_host, 0.0),
    )
    # 2 of 4 pieces, never tried, feeding nobody, a seed, same IDC, no location
    assert answer == pytest.approx(0.15 * 0.5 + 0.15 + 0.4 + 0.1 * 0.5 + 0.1)


# --- one pass over a decision's candidates -----------------------------------------------------

_LOCATIONS = st.sampled_from(["", "a", "a|b", "a|b|c", "a|x", "a|b|c|d|e|f", "b|b"])
_HOSTS = st.fixed_dictionaries(
    {
        "idc": st.sampled_from(["", "idc-1", "idc-2"]),
        "location": _LOCATIONS,
        "seed": st.booleans(),
        "limit": st.integers(0, 4),
        "used": st.integers(0, 5),
        "ok": st.integers(0, 3),
        "failed": st.integers(0, 3),
        "pieces": st.integers(0, 9),
        "bandwidth": st.sampled_from([0, 10**6, 10**9]),
        "served": st.integers(0, 10**9),
    }
)


@given(
    parents=st.lists(_HOSTS, max_size=6),
    child=_HOSTS,
    total=st.sampled_from([-1, 0, 1, 5, 8]),
)
def test_the_batch_scores_each_candidate_exactly_as_evaluate_does(
    parents: list[dict[str, Any]], child: dict[str, Any], total: int
) -> None:
    """score_candidates (the hook's one pass) equals evaluate() bit for bit, in order."""
    state = SchedulerState(load_policies(entrypoints=False), now=0.0)
    info = TaskInfo("t", total_piece_count=total)
    peers = []
    for index, figures in enumerate([child, *parents]):
        host_info = HostInfo(
            f"h{index}",
            f"10.0.0.{index}",
            idc=figures["idc"],
            location=figures["location"],
            type=HostType.SEED if figures["seed"] else HostType.NORMAL,
            concurrent_upload_limit=figures["limit"],
            upload_bandwidth=figures["bandwidth"],
        )
        state.announce_host(host_info, 0.0)
        state.register_peer(f"p{index}", host_info.id, info, 0.0)
        state.back_to_source(f"p{index}", 0.0)
        pieces = figures["pieces"] if total < 0 else min(figures["pieces"], total)
        state.finish_pieces(f"p{index}", range(pieces), 0.0)
        record = state.view.host(host_info.id)
        record.concurrent_upload_count = figures["used"]  # as if handed out
        record.upload_count, record.upload_failed_count = figures["ok"], figures["failed"]
        state._pipeline.uploads.record(host_info.id, figures["served"], 1, 0.0)
        peers.append(state.view.peer(f"p{index}"))
    view = state.view
    child_peer, candidates = peers[0], peers[1:]
    expected = [
        evaluate(
            parent,
            view.host(parent.host_id),
            child_peer,
            view.host(child_peer.host_id),
            view.task("t"),
            load=view.upload_load(parent.host_id, 1.0),
        )
        for parent in candidates
    ]
    assert score_candidates(child_peer, candidates, view, 1.0) == expected
    assert Evaluator().scheduler_candidate_scores(child_peer, candidates, view, 1.0) == expected


def _feeding_state(total: int, child_pieces: int, parent_pieces: list[int]) -> SchedulerState:
    """A child (peer "c") and one parent per entry ("p0", "p1", ...), each on its own host."""
    state = SchedulerState(load_policies(entrypoints=False), now=0.0)
    info = TaskInfo("t", total_piece_count=total)
    for name, pieces in [("c", child_pieces), *((f"p{i}", n) for i, n in enumerate(parent_pieces))]:
        host_info = HostInfo(f"host-{name}", f"10.1.0.{len(state.view.peer_ids_of_task('t'))}")
        state.announce_host(host_info, 0.0)
        state.register_peer(name, host_info.id, info, 0.0)
        state.back_to_source(name, 0.0)
        state.finish_pieces(name, range(pieces), 0.0)
    return state


def _batch_and_reference(state: SchedulerState) -> tuple[list[float], list[float]]:
    view = state.view
    child = view.peer("c")
    parents = sorted((p for p in view.peers() if p.id != "c"), key=lambda p: p.id)
    reference = [
        evaluate(
            p,
            view.host(p.host_id),
            child,
            view.host(child.host_id),
            view.task("t"),
            load=view.upload_load(p.host_id, 0.0),
        )
        for p in parents
    ]
    return score_candidates(child, parents, view, 0.0), reference


@pytest.mark.parametrize("total", [-1, 0])
def test_for_a_task_of_unknown_size_the_batch_scores_the_lead_on_the_child(total: int) -> None:
    state = _feeding_state(-1, 2, [1, 2, 3, 5])  # behind, level, one ahead, three ahead
    state.view.task("t").total_piece_count = total  # (a size of 0 takes no piece at all)
    batch, reference = _batch_and_reference(state)
    assert batch == reference
    behind, level, ahead, far_ahead = batch
    assert behind == level
    assert ahead - level == pytest.approx(0.15)  # the whole weight for any lead
    assert far_ahead == ahead


def test_the_batch_caps_the_share_of_pieces_at_the_whole_task() -> None:
    state = _feeding_state(8, 0, [4, 8])
    batch, reference = _batch_and_reference(state)
    assert batch == reference
    assert batch[1] - batch[0] == pytest.approx(0.15 * 0.5)
    state.view.task("t").total_piece_count = 4  # more pieces held than the task now counts
    batch, reference = _batch_and_reference(state)
    assert batch == reference
    assert batch[0] == batch[1]  # both hold the whole task: 1, not 2


def test_the_batch_reads_the_children_reports_over_the_announced_bandwidth() -> None:
    state = _feeding_state(8, 0, [4, 4, 4])
    view = state.view
    for peer_id, bandwidth in (("p0", 0), ("p1", GBIT), ("p2", 1)):
        host = view.host(view.peer(peer_id).host_id)
        host.info = attrs.evolve(host.info, upload_bandwidth=bandwidth)
        state._pipeline.uploads.record(host.id, MINUTE_AT_GBIT, 1, 0.0)
    batch, reference = _batch_and_reference(state)
    assert batch == reference
    # Unknown bandwidth: the bytes count nothing; 1 Gbit/s full for a minute: halved.
    assert batch[0] - batch[1] == pytest.approx(0.4 * 0.5)
    # 1 bit/s: 7.5 GB is a thousand million minutes' worth.
    assert batch[2] == pytest.approx(batch[0] - 0.4, abs=1e-6)


# --- seeds last --------------------------------------------------------------------------------


def _seeded_state(child_pieces: int, normal_pieces: list[int]) -> SchedulerState:
    """A child "c", a seed peer "s" with the whole task, and normal peers "n0", "n1", ..."""
    state = SchedulerState(load_policies(entrypoints=False), now=0.0)
    info = TaskInfo("t", total_piece_count=8)
    members = [("c", child_pieces, False), ("s", 8, True)]
    members += [(f"n{i}", n, False) for i, n in enumerate(normal_pieces)]
    for index, (name, pieces, seed) in enumerate(members):
        host_info = HostInfo(
            f"host-{name}", f"10.2.0.{index + 1}", type=HostType.SEED if seed else HostType.NORMAL
        )
        state.announce_host(host_info, 0.0)
        state.register_peer(name, host_info.id, info, 0.0)
        state.back_to_source(name, 0.0)
        state.finish_pieces(name, range(pieces), 0.0)
    return state


def _ranked(state: SchedulerState, *names: str) -> list[Peer]:
    return [state.view.peer(name) for name in names]


def test_seeds_are_left_out_when_a_normal_host_holds_a_piece_the_child_lacks() -> None:
    state = _seeded_state(2, [3, 1])
    ranked = _ranked(state, "n1", "s", "n0")
    assert without_seeds(state.view.peer("c"), ranked, state.view) == ["n1", "n0"]


def test_seeds_stay_when_no_normal_host_is_ahead_of_the_child() -> None:
    state = _seeded_state(2, [2, 1])
    ranked = _ranked(state, "s", "n0", "n1")
    assert without_seeds(state.view.peer("c"), ranked, state.view) is None
    # A child holding nothing: any piece is one it lacks.
    state = _seeded_state(0, [1])
    assert without_seeds(state.view.peer("c"), _ranked(state, "s", "n0"), state.view) == ["n0"]
    state = _seeded_state(0, [0])
    assert without_seeds(state.view.peer("c"), _ranked(state, "s", "n0"), state.view) is None


def test_without_a_seed_among_the_candidates_the_ranking_stands() -> None:
    state = _seeded_state(0, [3, 1])
    ranked = _ranked(state, "n0", "n1")
    assert without_seeds(state.view.peer("c"), ranked, state.view) is None
    assert without_seeds(state.view.peer("c"), [], state.view) is None


def test_a_decision_hands_out_the_seed_only_as_the_last_resort() -> None:
    state = _seeded_state(0, [])
    events = state.schedule_peer("c", 1.0)
    (decision,) = [e.decision for e in events if hasattr(e, "decision")]
    assert decision.parents == ("s",)  # nobody else holds a piece: the seed
    state = _seeded_state(0, [1])
    events = state.schedule_peer("c", 1.0)
    (decision,) = [e.decision for e in events if hasattr(e, "decision")]
    assert decision.parents == ("n0",)
