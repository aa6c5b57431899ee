"""The default evaluator: Dragonfly's six figures, their weights, and the decision limits.

Dragonfly's weights: finished pieces 0.2, upload success rate 0.2, free upload slots 0.15, host type
0.15 (seed preferred), IDC affinity 0.15, location affinity 0.15 (shared prefix of
``|``-separated elements, up to 5); ``candidate_parent_limit`` 4, ``filter_parent_limit``
15, ``retry_after`` 0.5 s, ``retry_back_to_source_limit`` 4, ``retry_limit`` 5.
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
)
from scheduler.policies import load_policies
from scheduler.policies._evaluator import (
    Evaluator,
    evaluate,
    finished_piece_score,
    free_upload_score,
    host_type_score,
    idc_affinity_score,
    location_affinity_score,
    score_candidates,
    upload_success_score,
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
) -> Host:
    info = HostInfo(
        "h", "10.0.0.1", concurrent_upload_limit=limit, type=type, idc=idc, location=location
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


def test_free_upload_slots_over_the_limit() -> None:
    assert free_upload_score(host(4)) == 1.0
    assert free_upload_score(host(4, used=1)) == 0.75
    assert free_upload_score(host(4, used=4)) == 0.0
    assert free_upload_score(host(1)) == 1.0
    assert free_upload_score(host(0)) == 0.0  # a host that uploads nothing


def test_seeds_are_preferred() -> None:
    assert host_type_score(host(type=HostType.SEED)) == 1.0
    assert host_type_score(host(type=HostType.NORMAL)) == 0.5


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
    used: int = 2,
    seed: bool = False,
    idc: bool = False,
    location: str = "",
) -> float:
    """evaluate() with every figure at its lowest, except those asked for."""
    parent_host = host(
        2,
        used=used,
        ok=ok,
        failed=failed,
        type=HostType.SEED if seed else HostType.NORMAL,
        idc="idc-1" if idc else "idc-p",
        location=location or "p",
    )
    child_host = host(idc="idc-1", location="a|b|c|d|e")
    return evaluate(peer("p", parent_pieces), parent_host, peer("c"), child_host, task(10))


def test_each_figure_has_its_weight() -> None:
    floor = 0.15 * 0.5  # a normal host's type figure is never below 0.5
    assert _score() == pytest.approx(floor)
    assert _score(parent_pieces=10) - floor == pytest.approx(0.2)
    assert _score(parent_pieces=5) - floor == pytest.approx(0.1)
    assert _score(ok=1, failed=0) - floor == pytest.approx(0.2)
    assert _score(ok=1, failed=1) - floor == pytest.approx(0.1)
    assert _score(used=0) - floor == pytest.approx(0.15)
    assert _score(used=1) - floor == pytest.approx(0.075)
    assert _score(seed=True) - floor == pytest.approx(0.075)
    assert _score(idc=True) - floor == pytest.approx(0.15)
    assert _score(location="a|b|c|d|e") - floor == pytest.approx(0.15)
    assert _score(location="a|b|x") - floor == pytest.approx(0.06)


def test_for_a_task_of_unknown_size_the_weight_applies_to_the_lead_on_the_child() -> None:
    parent_host, child_host = host(2, used=2, failed=1), host()
    ahead = evaluate(peer("p", 3), parent_host, peer("c", 2), child_host, task(-1))
    level = evaluate(peer("p", 2), parent_host, peer("c", 2), child_host, task(-1))
    assert level == pytest.approx(0.15 * 0.5)
    assert ahead - level == pytest.approx(0.2)


def test_the_best_parent_scores_one() -> None:
    best = _score(
        parent_pieces=10, ok=1, failed=0, used=0, seed=True, idc=True, location="a|b|c|d|e"
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
    (answer,) = Evaluator().scheduler_candidate_scores(view.peer("c"), [view.peer("p")], view)
    assert answer == evaluate(
        view.peer("p"),
        view.host(parent_host),
        view.peer("c"),
        view.host(child_host),
        view.task("t"),
    )
    # 2 of 4 pieces, never tried, 4 free of 4, a seed, same IDC, no location
    assert answer == pytest.approx(0.2 * 0.5 + 0.2 + 0.15 + 0.15 + 0.15)


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
        )
        state.announce_host(host_info, 0.0)
        state.register_peer(f"p{index}", host_info.id, info, 0.0)
        state.back_to_source(f"p{index}", 0.0)
        pieces = figures["pieces"] if total < 0 else min(figures["pieces"], total)
        state.finish_pieces(f"p{index}", range(pieces), 0.0)
        record = state.view.host(host_info.id)
        record.concurrent_upload_count = figures["used"]  # as if handed out
        record.upload_count, record.upload_failed_count = figures["ok"], figures["failed"]
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
        )
        for parent in candidates
    ]
    assert score_candidates(child_peer, candidates, view) == expected
    assert Evaluator().scheduler_candidate_scores(child_peer, candidates, view) == expected


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
        evaluate(p, view.host(p.host_id), child, view.host(child.host_id), view.task("t"))
        for p in parents
    ]
    return score_candidates(child, parents, view), reference


@pytest.mark.parametrize("total", [-1, 0])
def test_for_a_task_of_unknown_size_the_batch_scores_the_lead_on_the_child(total: int) -> None:
    state = _feeding_state(-1, 2, [1, 2, 3, 5])  # behind, level, one ahead, three ahead
    state.view.task("t").total_piece_count = total  # (a size of 0 takes no piece at all)
    batch, reference = _batch_and_reference(state)
    assert batch == reference
    behind, level, ahead, far_ahead = batch
    assert behind == level
    assert ahead - level == pytest.approx(0.2)  # the whole weight for any lead
    assert far_ahead == ahead


def test_the_batch_caps_the_share_of_pieces_at_the_whole_task() -> None:
    state = _feeding_state(8, 0, [4, 8])
    batch, reference = _batch_and_reference(state)
    assert batch == reference
    assert batch[1] - batch[0] == pytest.approx(0.2 * 0.5)
    state.view.task("t").total_piece_count = 4  # more pieces held than the task now counts
    batch, reference = _batch_and_reference(state)
    assert batch == reference
    assert batch[0] == batch[1]  # both hold the whole task: 1, not 2


def test_the_batch_gives_a_host_that_uploads_nothing_no_free_slot_score() -> None:
    state = _feeding_state(8, 0, [4, 4])
    view = state.view
    for peer_id, limit in (("p0", 0), ("p1", 2)):
        host = view.host(view.peer(peer_id).host_id)
        host.info = attrs.evolve(host.info, concurrent_upload_limit=limit)
        host.concurrent_upload_count = -1  # whatever the count says: nothing to divide by
    batch, reference = _batch_and_reference(state)
    assert batch == reference
    assert batch[1] - batch[0] == pytest.approx(0.15 * 1.5)
