"""SchedulerState as a facade: each mutator hands `now`, the peer and the caller on, and the
decisions it causes (proactive pushes) carry the time of the change that caused them."""

from __future__ import annotations

import math
import random
from collections.abc import Callable

import pytest

from scheduler.core import (
    DEFAULT_SWEEP_INTERVAL,
    Event,
    Eviction,
    Expiry,
    HostInfo,
    NotFound,
    PeerScheduled,
    PolicySet,
    RecordKind,
    SchedulerState,
    TaskInfo,
    Verdict,
)
from scheduler.policies import builtin_plugins
from tests.scripted import A, B, C, Scripted

TASK = TaskInfo("t1", content_length=64 << 20, total_piece_count=16)
#: pb finished 3 pieces in one batch that cost 1 s: one entry, the cost per piece.
PB_COSTS = (1.0 / 3,)


def swarm(seed: int = 0) -> tuple[SchedulerState, Scripted]:
    """B's peer pb holds pieces; A's peer pa was handed pb as its parent."""
    script = Scripted()
    policies = PolicySet.from_plugins([*builtin_plugins(), script])
    state = SchedulerState(policies, now=0.0, rng=random.Random(seed))
    state.announce_host(A, 0.0, interval=30)
    state.announce_host(B, 0.0, interval=30)
    state.register_peer("pb", B.id, TASK, 0.0)
    state.start_download("pb", 0.0)
    state.finish_pieces("pb", [0, 1, 2], 0.0, cost=1.0)
    state.register_peer("pa", A.id, TASK, 1.0)
    state.start_download("pa", 1.0)
    (scheduled,) = state.schedule_peer("pa", 2.0, as_host=A.id)
    assert isinstance(scheduled, PeerScheduled)
    assert (scheduled.decision.parents, scheduled.at) == (("pb",), 2.0)
    return state, script


def pushes(events: list[Event]) -> list[tuple[str, float]]:
    return [(e.peer_id, e.at) for e in events if isinstance(e, PeerScheduled) and e.pushed]


def lose_by_superseding(state: SchedulerState, script: Scripted) -> list[Event]:
    script.supersede[C.id] = [B.id]
    return state.announce_host(C, 10.0)


def lose_by_deadline(state: SchedulerState, script: Scripted) -> list[Event]:
    script.expiries[B.id] = Expiry(9.0, "ttl")
    state.touch_host(B.id, 5.0)
    return state.collect_expired(10.0)


def lose_by_run_gc(state: SchedulerState, script: Scripted) -> list[Event]:
    script.expiries[B.id] = Expiry(9.0, "ttl")
    state.touch_host(B.id, 5.0)
    return state.run_gc(10.0)


def lose_by_sweep(state: SchedulerState, script: Scripted) -> list[Event]:
    script.verdicts[RecordKind.HOST] = [Verdict(RecordKind.HOST, B.id, "capacity")]
    return state.sweep(10.0, RecordKind.HOST)


LOSSES: dict[str, Callable[[SchedulerState, Scripted], list[Event]]] = {
    "disconnect": lambda state, _: state.disconnect_host(B.id, 10.0),
    "leave host": lambda state, _: state.leave_host(B.id, 10.0),
    "evict host": lambda state, _: state.evict(RecordKind.HOST, B.id, "admin", 10.0),
    "evict peer": lambda state, _: state.evict(RecordKind.PEER, "pb", "admin", 10.0),
    "leave peer": lambda state, _: state.leave_peer("pb", 10.0, as_host=B.id),
    "fail": lambda state, _: state.fail_download("pb", 10.0, as_host=B.id),
    "supersede": lose_by_superseding,
    "deadline": lose_by_deadline,
    "run_gc": lose_by_run_gc,
    "sweep": lose_by_sweep,
}


@pytest.mark.parametrize("how", sorted(LOSSES))
def test_a_child_that_loses_its_parent_is_pushed_a_decision_stamped_with_the_change(
    how: str,
) -> None:
    state, script = swarm()
    events = LOSSES[how](state, script)
    assert pushes(events) == [("pa", 10.0)]
    assert state.parents_of("pa") == ()
    assert state.invariant_violations() == []


def test_the_view_answers_about_edges_feeders_costs_and_indexes() -> None:
    state, _ = swarm()
    for view in (state, state.view):
        assert view.parents_of("pa") == ("pb",)
        assert view.children_of("pb") == ("pa",)
        assert view.feeder_count_of_task("t1") == 1
        assert view.piece_costs_of("pb") == PB_COSTS
        assert view.peer_count_of_task("t1") == 2
        assert [p.id for p in view.peers_of_host(B.id)] == ["pb"]
        assert view.peer_ids_of_host(A.id) == frozenset({"pa"})
        assert view.peer_ids_of_task("t1") == frozenset({"pa", "pb"})
        assert view.blocked_parents_of("pa") == frozenset()


def test_a_reschedule_blocks_the_failed_parents_and_answers_at_the_time_given() -> None:
    state, _ = swarm()
    (answer,) = state.reschedule_peer("pa", ["pb"], 12.0, as_host=A.id)
    assert isinstance(answer, PeerScheduled)
    assert (answer.peer_id, answer.cause, answer.at, answer.pushed) == (
        "pa",
        "reschedule",
        12.0,
        False,
    )
    assert "pb" not in answer.decision.parents
    assert state.view.blocked_parents_of("pa") == frozenset({"pb"})
    with pytest.raises(NotFound):
        state.reschedule_peer("pa", [], 13.0, as_host=B.id)
    with pytest.raises(NotFound):
        state.schedule_peer("pa", 13.0, as_host=B.id)


@pytest.mark.parametrize(
    "act",
    [
        lambda state: state.start_download("pa", 5.0, as_host=B.id),
        lambda state: state.back_to_source("pa", 5.0, as_host=B.id),
        lambda state: state.finish_pieces("pa", [0], 5.0, as_host=B.id),
        lambda state: state.finish_download("pa", 5.0, as_host=B.id),
        lambda state: state.fail_download("pa", 5.0, as_host=B.id),
        lambda state: state.leave_peer("pa", 5.0, as_host=B.id),
    ],
)
def test_a_host_cannot_act_for_another_hosts_peer(
    act: Callable[[SchedulerState], object],
) -> None:
    state, _ = swarm()
    with pytest.raises(NotFound):
        act(state)
    assert state.has_peer("pa")
    assert state.parents_of("pa") == ("pb",)


def test_a_changed_peer_is_followed_by_the_feeders_and_edges() -> None:
    state, _ = swarm()
    state.finish_pieces("pa", [3], 5.0, parent_id="pb", cost=2.0, as_host=A.id)
    assert state.feeder_count_of_task("t1") == 2
    assert state.piece_costs_of("pa")[-1] == 2.0
    assert state.peer("pa").updated_at == 5.0
    assert state.invariant_violations() == []
    state.finish_download("pa", 6.0, as_host=A.id)
    assert state.parents_of("pa") == ()  # a finished child gives its parents back
    assert state.peer("pa").updated_at == 6.0
    assert state.invariant_violations() == []


def test_a_failed_child_gives_its_parents_back() -> None:
    state, _ = swarm()
    state.fail_download("pa", 6.0, as_host=A.id)
    assert state.parents_of("pa") == ()
    assert state.children_of("pb") == ()
    assert state.invariant_violations() == []


def test_going_back_to_source_is_recorded_at_the_time_given() -> None:
    state, _ = swarm()
    state.back_to_source("pa", 7.0, as_host=A.id)
    assert state.peer("pa").updated_at == 7.0
    assert state.task("t1").back_to_source_count == 1
    assert state.invariant_violations() == []


def test_defaults_of_a_new_state() -> None:
    policies = PolicySet.from_plugins([])
    state = SchedulerState(policies)
    assert state.policies is policies
    assert state.sweep_interval == DEFAULT_SWEEP_INTERVAL
    assert state.next_sweep_at(RecordKind.HOST) == DEFAULT_SWEEP_INTERVAL
    other = SchedulerState(policies, now=5.0, sweep_interval=7.0)
    assert other.sweep_interval == 7.0
    assert other.next_sweep_at(RecordKind.TASK) == 12.0
    state.announce_host(HostInfo("alpha", "10.0.0.1"), 0.0)
    state.register_peer("p1", "10.0.0.1-alpha", TaskInfo("t1"), 0.0)
    assert state.task("t1").back_to_source_limit == 200


def test_the_rng_given_decides_the_jitter_of_a_wait() -> None:
    def retry_after(seed: int) -> float | None:
        state = SchedulerState(PolicySet.from_plugins(builtin_plugins()), rng=random.Random(seed))
        state.announce_host(A, 0.0, interval=30)
        state.announce_host(B, 0.0, interval=30)
        state.register_peer("p1", A.id, TASK, 0.0)
        state.schedule_peer("p1", 1.0)  # the origin: reserved for p1
        state.register_peer("p2", B.id, TASK, 0.0)
        (answer,) = state.schedule_peer("p2", 1.0)  # nobody feeds yet, p1 soon will: wait
        assert isinstance(answer, PeerScheduled)
        return answer.decision.retry_after

    assert retry_after(1) == retry_after(1)
    assert len({retry_after(seed) for seed in range(4)}) > 1


def test_a_peer_that_leaves_is_evicted_at_the_time_given() -> None:
    state, _ = swarm()
    events = state.leave_peer("pa", 8.0, as_host=A.id)
    (eviction,) = [e for e in events if isinstance(e, Eviction)]
    assert (eviction.record_id, eviction.reason, eviction.at) == ("pa", "leave", 8.0)


@pytest.mark.parametrize("cost", [-1.0, math.inf, math.nan])
def test_a_bad_piece_cost_is_refused_and_nothing_is_recorded(cost: float) -> None:
    state, _ = swarm()
    with pytest.raises(ValueError, match=r"^cost must be a non-negative number of seconds"):
        state.finish_pieces("pa", [3], 5.0, parent_id="pb", cost=cost, as_host=A.id)
    assert not state.peer("pa").finished_pieces
    assert state.piece_costs_of("pa") == ()
