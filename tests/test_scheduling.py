"""The decision: live parents only, the origin when nobody can feed, seeds, retries, pushes."""

from __future__ import annotations

import itertools
import random
from collections.abc import Sequence
from typing import Any, ClassVar

import attrs
import pytest
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule
from scheduler_dragonfly_compat import DragonflyCompat
from scheduler_phi_accrual import PhiAccrual

from scheduler import hookimpl
from scheduler.core import (
    Decision,
    Host,
    HostInfo,
    HostState,
    HostType,
    IllegalTransition,
    NotFound,
    Peer,
    PeerScheduled,
    PeerState,
    PolicySet,
    RecordKind,
    RecordLimits,
    ScheduleAction,
    ScheduleLimits,
    SchedulerState,
    SeedFetchRequested,
    StateView,
    TaskInfo,
    rendezvous_owner,
)
from scheduler.core._candidates import unfit_reason
from scheduler.core._edges import MAX_ANCESTOR_WALK, MAX_DESCENDANT_WALK
from scheduler.core._feeders import IndexedSet
from scheduler.policies import builtin_plugins, load_policies
from scheduler.testing import (
    Advance,
    Announce,
    Crash,
    DownloadSwarm,
    EveryoneObeys,
    HostProfile,
    InvariantError,
    Leave,
    PeerStep,
    ReportFailedParent,
    Simulation,
    Swarm,
    check_decision,
    measure_coverage,
    piece_costs,
)

TASK = TaskInfo("t1", url="https://example.invalid/x", total_piece_count=10)
HOSTS = [HostInfo(f"host-{i}", f"10.0.0.{i}", concurrent_upload_limit=3) for i in range(12)]
SEED = HostInfo("seed-0", "10.0.1.1", type=HostType.SEED)


#: Every slot of a host open to the peers of one other host (tests of other rules).
WHOLE_SLOTS = RecordLimits(max_upload_share=1.0)


def new_state(
    *plugins: object,
    config: dict[str, Any] | None = None,
    seed: int = 1,
    limits: RecordLimits | None = None,
) -> Any:
    policies = load_policies(entrypoints=False, plugins=plugins, config=config)
    state = SchedulerState(
        policies, now=0.0, rng=random.Random(seed), limits=limits or RecordLimits()
    )
    return state


def scheduled(events: Sequence[object]) -> list[PeerScheduled]:
    return [e for e in events if isinstance(e, PeerScheduled)]


def decide(state: SchedulerState, peer_id: str, now: float = 1.0) -> Decision:
    (event,) = scheduled(state.schedule_peer(peer_id, now))
    check_decision(state.view, peer_id, event.decision)
    return event.decision


def join(state: SchedulerState, host: HostInfo, peer_id: str, now: float = 1.0) -> Decision:
    if not state.has_host(host.id):
        state.announce_host(host, 0.0, interval=60)
    state.register_peer(peer_id, host.id, TASK, now)
    return decide(state, peer_id, now)


def feeding(state: SchedulerState, host: HostInfo, peer_id: str, pieces: int = 1) -> None:
    """A peer that went to the origin (on its own) and holds ``pieces`` pieces."""
    if not state.has_host(host.id):
        state.announce_host(host, 0.0, interval=60)
    state.register_peer(peer_id, host.id, TASK, 1.0)
    state.back_to_source(peer_id, 1.0)
    if pieces:
        state.finish_pieces(peer_id, list(range(pieces)), 1.0)


# --- no candidate ---------------------------------------------------------------------------


def test_the_first_peer_goes_to_the_origin_and_a_burst_waits_for_it() -> None:
    state = new_state()
    assert join(state, HOSTS[0], "first").action is ScheduleAction.BACK_TO_SOURCE
    for i in range(1, 6):
        decision = join(state, HOSTS[i], f"p{i}")
        assert decision.action is ScheduleAction.WAIT
        assert decision.retry_after is not None
        assert 0.4 <= decision.retry_after <= 0.6  # 0.5 s, jittered by 20 %
    state.back_to_source("first", 2.0)
    (event,) = scheduled(state.reschedule_peer("p1", [], 2.5))
    assert event.cause == "reschedule"
    assert not event.pushed
    assert event.decision.parents == ("first",)


def test_the_reservation_goes_when_the_peer_leaves_before_reporting() -> None:
    state = new_state()
    join(state, HOSTS[0], "first")
    assert join(state, HOSTS[1], "second").action is ScheduleAction.WAIT
    state.leave_peer("first", 2.0)
    (event,) = scheduled(state.reschedule_peer("second", [], 3.0))
    assert event.decision.action is ScheduleAction.BACK_TO_SOURCE


def test_a_reschedule_gives_up_the_reservation_too() -> None:
    state = new_state()
    join(state, HOSTS[0], "first")
    join(state, HOSTS[1], "second")
    (event,) = scheduled(state.reschedule_peer("first", [], 2.0))
    # Its own reservation was released, then taken again: still the only one.
    assert event.decision.action is ScheduleAction.BACK_TO_SOURCE
    (event,) = scheduled(state.reschedule_peer("second", [], 2.0))
    assert event.decision.action is ScheduleAction.WAIT


def test_retries_end_at_the_origin_then_in_failure() -> None:
    limits = {"evaluator": {"retry_back_to_source_limit": 2, "retry_limit": 3}}
    state = new_state(config=limits)
    state.announce_host(HOSTS[0], 0.0)
    state.register_peer("first", HOSTS[0].id, TASK, 0.0, back_to_source_limit=1)
    assert decide(state, "first").action is ScheduleAction.BACK_TO_SOURCE
    actions = [join(state, HOSTS[1], "child").action]
    for step in range(6):
        (event,) = scheduled(state.reschedule_peer("child", [], 2.0 + step))
        actions.append(event.decision.action)
    # The task's single origin slot is taken, so the child can only wait, then fail.
    wait, fail = ScheduleAction.WAIT, ScheduleAction.FAIL
    assert actions[:4] == [wait, wait, wait, wait]
    assert fail in actions

    state2 = new_state(config=limits)
    feeding(state2, HOSTS[0], "first", pieces=0)
    state2.announce_host(HOSTS[1], 0.0)
    state2.register_peer("child", HOSTS[1].id, TASK, 1.0)
    state2.fail_download("first", 1.0)  # nobody feeds, but an origin slot is free
    state2.leave_peer("first", 1.0)
    state2.announce_host(HOSTS[2], 0.0)
    state2.register_peer("other", HOSTS[2].id, TASK, 1.0)
    assert decide(state2, "other").action is ScheduleAction.BACK_TO_SOURCE
    seen = [decide(state2, "child").action]
    for step in range(4):
        (event,) = scheduled(state2.reschedule_peer("child", [], 2.0 + step))
        seen.append(event.decision.action)
    assert seen[0] is ScheduleAction.WAIT
    assert ScheduleAction.BACK_TO_SOURCE in seen  # more than 2 waits: the origin


def test_the_attempt_count_goes_past_the_limit_exactly() -> None:
    state = new_state(config={"evaluator": {"retry_back_to_source_limit": 1}})
    join(state, HOSTS[0], "first")  # holds the reservation
    actions = [join(state, HOSTS[1], "child").action]  # wait 1
    (event,) = scheduled(state.reschedule_peer("child", [], 2.0))  # after the wait: wait 2
    actions.append(event.decision.action)
    (event,) = scheduled(state.reschedule_peer("child", [], 3.0))  # 2 > 1: the origin
    actions.append(event.decision.action)
    assert actions == [ScheduleAction.WAIT, ScheduleAction.WAIT, ScheduleAction.BACK_TO_SOURCE]


# --- parents --------------------------------------------------------------------------------


def test_parents_are_live_best_first_and_at_most_the_limit() -> None:
    state = new_state()
    for i in range(6):
        feeding(state, HOSTS[i], f"p{i}", pieces=i + 1)
    decision = join(state, HOSTS[7], "child")
    assert decision.action is ScheduleAction.PARENTS
    assert len(decision.parents) == 4
    # More pieces score higher, everything else being equal.
    assert decision.parents == ("p5", "p4", "p3", "p2")
    assert state.parents_of("child") == decision.parents
    assert state.children_of("p5") == ("child",)


def test_upload_slots_follow_the_edges() -> None:
    state = new_state()
    feeding(state, HOSTS[0], "parent")
    host = state.host(HOSTS[0].id)
    join(state, HOSTS[1], "c1")
    join(state, HOSTS[2], "c2")
    assert host.concurrent_upload_count == 2
    state.start_download("c1", 2.0)
    state.finish_download("c1", 3.0)
    assert host.concurrent_upload_count == 1
    state.leave_peer("c2", 4.0)
    assert host.concurrent_upload_count == 0
    join(state, HOSTS[3], "c3")
    state.reschedule_peer("c3", ["parent"], 5.0)  # away from it: blocklisted
    assert host.concurrent_upload_count == 0
    assert host.upload_failed_count == 1
    assert state.view.blocked_parents_of("c3") == {"parent"}


def test_a_full_host_is_no_parent() -> None:
    state = new_state()
    feeding(state, HOSTS[0], "parent")
    for i in range(1, 4):
        assert join(state, HOSTS[i], f"c{i}").parents == ("parent",)
    assert state.host(HOSTS[0].id).concurrent_upload_count == 3  # its limit
    assert join(state, HOSTS[4], "c4").action is ScheduleAction.WAIT


def test_uploads_count_only_for_parents_handed_out() -> None:
    state = new_state(config={"evaluator": {"candidate_parent_limit": 1}})
    feeding(state, HOSTS[0], "parent")
    feeding(state, HOSTS[1], "stranger")
    state.announce_host(HOSTS[2], 0.0)
    state.register_peer("child", HOSTS[2].id, TASK, 1.0)
    decision = decide(state, "child")
    handed, other = decision.parents[0], ({"parent", "stranger"} - set(decision.parents)).pop()
    state.start_download("child", 2.0)
    state.finish_pieces("child", [0, 1], 2.0, parent_id=handed, cost=0.2)
    state.finish_pieces("child", [2], 2.0, parent_id=other)
    assert state.host(state.peer(handed).host_id).upload_count == 2
    assert state.host(state.peer(other).host_id).upload_count == 0
    assert state.peer("child").parents == {handed}  # where its pieces came from
    assert state.view.piece_costs_of("child") == (0.1,)  # cost per piece of the report
    state.reschedule_peer("child", [other], 3.0)  # never handed out: no failure counted
    assert state.host(state.peer(other).host_id).upload_failed_count == 0


def test_no_cycle_and_no_peer_of_the_childs_own_host() -> None:
    state = new_state()
    feeding(state, HOSTS[0], "root")
    assert join(state, HOSTS[1], "a").parents == ("root",)
    state.start_download("a", 2.0)
    state.finish_pieces("a", [0], 2.0, parent_id="root")
    # root asks again: a is its descendant, so never its parent.
    (event,) = scheduled(state.reschedule_peer("root", [], 3.0))
    assert "a" not in event.decision.parents
    state.register_peer("twin", HOSTS[1].id, TASK, 3.0)
    assert "a" not in decide(state, "twin").parents


def test_a_bad_node_is_no_parent() -> None:
    state = new_state()
    feeding(state, HOSTS[0], "slow")
    state.finish_pieces("slow", [1], 1.0, cost=0.1)
    state.finish_pieces("slow", [2], 1.0, cost=5.0)  # 50 × the mean: an outlier
    assert join(state, HOSTS[1], "child").action is not ScheduleAction.PARENTS


def test_sampling_looks_at_no_more_than_filter_parent_limit_candidates() -> None:
    seen: list[str] = []

    class Spy:
        name = "spy"

        @hookimpl
        def scheduler_candidate_score(self, parent: Peer) -> None:
            seen.append(parent.id)

    state = new_state(Spy(), config={"evaluator": {"filter_parent_limit": 5}})
    hosts = [HostInfo(f"h{i}", f"10.1.{i // 250}.{i % 250}") for i in range(200)]
    for i, host in enumerate(hosts):
        state.announce_host(host, 0.0)
        state.register_peer(f"p{i}", host.id, TASK, 0.0)
        state.start_download(f"p{i}", 0.0)
        state.finish_pieces(f"p{i}", [0], 0.0)
    assert state.view.feeder_count_of_task(TASK.id) == 200
    join(state, HOSTS[0], "child")
    assert len(seen) == 5


# --- seeds ----------------------------------------------------------------------------------


def test_a_seed_fetches_the_task_and_is_preferred() -> None:
    state = new_state()
    state.announce_host(SEED, 0.0)
    state.announce_host(HOSTS[0], 0.0)
    state.register_peer("child", HOSTS[0].id, TASK, 1.0)
    events = state.schedule_peer("child", 1.0)
    (fetch,) = [e for e in events if isinstance(e, SeedFetchRequested)]
    (event,) = scheduled(events)
    assert event.decision.action is ScheduleAction.WAIT
    assert fetch.seed_host_id == SEED.id
    assert (fetch.task_id, fetch.url, fetch.total_piece_count) == ("t1", TASK.url, 10)
    # One fetch per task: the next child just waits.
    assert [
        e for e in join_events(state, HOSTS[1], "other") if isinstance(e, SeedFetchRequested)
    ] == []
    # The seed registers the peer it was asked for, and goes to the origin.
    state.register_peer(fetch.peer_id, SEED.id, TASK, 2.0)
    assert decide(state, fetch.peer_id, 2.0).action is ScheduleAction.BACK_TO_SOURCE
    state.back_to_source(fetch.peer_id, 2.0)
    state.finish_pieces(fetch.peer_id, [0], 3.0)
    feeding_normal = "normal"
    state.announce_host(HOSTS[2], 0.0)
    state.register_peer(feeding_normal, HOSTS[2].id, TASK, 3.0)
    state.start_download(feeding_normal, 3.0)
    state.finish_pieces(feeding_normal, [0], 3.0)
    (event,) = scheduled(state.reschedule_peer("child", [], 4.0))
    assert event.decision.parents[0] == fetch.peer_id  # seeds score higher


def join_events(state: SchedulerState, host: HostInfo, peer_id: str) -> list[object]:
    state.announce_host(host, 0.0)
    state.register_peer(peer_id, host.id, TASK, 1.0)
    return list(state.schedule_peer(peer_id, 1.0))


def test_the_seed_is_chosen_by_rendezvous_over_connected_seeds() -> None:
    seeds = [HostInfo(f"seed-{i}", f"10.0.2.{i}", type=HostType.SEED) for i in range(3)]
    state = new_state()
    for seed in seeds:
        state.announce_host(seed, 0.0)
    owner = rendezvous_owner(TASK.id, [s.id for s in seeds])
    state.disconnect_host(owner, 0.5)  # not connected: not asked
    events = join_events(state, HOSTS[0], "child")
    (fetch,) = [e for e in events if isinstance(e, SeedFetchRequested)]
    assert fetch.seed_host_id == rendezvous_owner(TASK.id, [s.id for s in seeds if s.id != owner])
    # The seed goes away: the fetch is no longer in flight, so another is asked.
    state.leave_host(fetch.seed_host_id, 2.0)
    (event,) = scheduled(state.reschedule_peer("child", [], 3.0))
    assert event.decision.action is ScheduleAction.WAIT


# --- pushes ---------------------------------------------------------------------------------


@pytest.mark.parametrize("how", ["disconnect", "leave_host", "fail", "leave_peer", "evict"])
def test_a_dead_parent_pushes_one_fresh_decision_to_each_child(how: str) -> None:
    state = new_state()
    feeding(state, HOSTS[0], "dying")
    feeding(state, HOSTS[1], "spare")
    join(state, HOSTS[2], "c1")
    join(state, HOSTS[3], "c2")
    assert state.children_of("dying") == ("c1", "c2")
    kill = {
        "disconnect": lambda: state.disconnect_host(HOSTS[0].id, 5.0),
        "leave_host": lambda: state.leave_host(HOSTS[0].id, 5.0),
        "fail": lambda: state.fail_download("dying", 5.0),
        "leave_peer": lambda: state.leave_peer("dying", 5.0),
        "evict": lambda: state.evict(RecordKind.PEER, "dying", "admin", 5.0),
    }
    pushes = scheduled(kill[how]())
    assert sorted(p.peer_id for p in pushes) == ["c1", "c2"]
    for push in pushes:
        assert push.pushed
        assert push.cause == "parent_lost"
        assert push.at == 5.0
        assert push.decision.parents == ("spare",)
        check_decision(state.view, push.peer_id, push.decision)
    assert state.children_of("spare") == ("c1", "c2")


def test_two_dead_parents_in_one_mutation_make_one_push() -> None:
    state = new_state(limits=WHOLE_SLOTS)
    feeding(state, HOSTS[0], "a")
    state.register_peer("b", HOSTS[0].id, TaskInfo("t1"), 1.0)  # a second peer, same host
    state.back_to_source("b", 1.0)
    join(state, HOSTS[2], "child")
    assert set(state.parents_of("child")) == {"a", "b"}
    pushes = scheduled(state.disconnect_host(HOSTS[0].id, 5.0))
    assert [p.peer_id for p in pushes] == ["child"]


def test_deferred_disconnects_push_once_per_child_in_bounded_slices() -> None:
    state = new_state()
    feeding(state, HOSTS[0], "dying")
    feeding(state, HOSTS[1], "dying-too")
    feeding(state, HOSTS[4], "spare")
    for i in (5, 6, 7):
        join(state, HOSTS[i], f"c{i}")
    held = {child: set(state.parents_of(child)) for child in ("c5", "c6", "c7")}
    assert all(parents & {"dying", "dying-too"} for parents in held.values())
    # Two hosts drop: both are unschedulable at once, and nobody is pushed yet.
    assert scheduled(state.disconnect_host(HOSTS[0].id, 5.0, defer_pushes=True)) == []
    assert scheduled(state.disconnect_host(HOSTS[1].id, 5.0, defer_pushes=True)) == []
    assert not state.is_schedulable(HOSTS[0].id)
    assert not state.is_schedulable(HOSTS[1].id)
    assert state.pushes_pending
    # Then one push per child, in slices, none naming a dropped host.
    first = scheduled(state.flush_pushes(6.0, max_children=2))
    assert len(first) == 2
    assert state.pushes_pending
    rest = scheduled(state.flush_pushes(6.0, max_children=2))
    assert len(rest) == 1
    assert not state.pushes_pending
    assert state.flush_pushes(6.0) == []
    assert sorted(p.peer_id for p in first + rest) == ["c5", "c6", "c7"]
    for push in first + rest:
        assert push.pushed
        assert push.at == 6.0
        assert push.decision.parents == ("spare",)
        check_decision(state.view, push.peer_id, push.decision)
    assert state.invariant_violations() == []


def test_a_deferred_push_skips_a_child_gone_meanwhile_and_reaches_the_others() -> None:
    state = new_state()
    feeding(state, HOSTS[0], "dying")
    feeding(state, HOSTS[4], "spare")
    for i in (5, 6, 7):
        join(state, HOSTS[i], f"c{i}")
    assert [c for c in ("c5", "c6", "c7") if "dying" in state.parents_of(c)] == ["c5", "c6", "c7"]
    state.disconnect_host(HOSTS[0].id, 5.0, defer_pushes=True)
    state.leave_peer("c5", 5.5)  # the first child leaves before the flush
    pushes = scheduled(state.flush_pushes(6.0))
    assert sorted(p.peer_id for p in pushes) == ["c6", "c7"]
    assert state.invariant_violations() == []


#: A task that lets every peer go to the origin, for the long chains below.
CHAIN_TASK = TaskInfo("chain", url="https://example.invalid/chain", total_piece_count=10)


def origin_peer(state: SchedulerState, peer_id: str, host: HostInfo) -> Peer:
    """A peer of CHAIN_TASK that went to the origin and holds piece 0."""
    if not state.has_host(host.id):
        state.announce_host(host, 0.0, interval=60)
    state.register_peer(peer_id, host.id, CHAIN_TASK, 1.0, back_to_source_limit=10**6)
    state.back_to_source(peer_id, 1.0)
    state.finish_pieces(peer_id, [0], 1.0)
    return state.peer(peer_id)


def long_chain(state: SchedulerState, prefix: str, length: int) -> list[str]:
    """``length`` peers, p0 <- p1 <- ... (each the parent of the one before), each on its
    own host with room for every upload."""
    ids = [f"{prefix}{i}" for i in range(length)]
    for i, peer_id in enumerate(ids):
        ip = f"10.9.{i >> 8}.{i & 255}"
        origin_peer(state, peer_id, HostInfo(f"{prefix}-{i}", ip, concurrent_upload_limit=10**6))
    edges = state._pipeline.edges
    for child_id, parent_id in itertools.pairwise(ids):
        edges.hand_out(child_id, [state.peer(parent_id)], child_host=state.peer(child_id).host_id)
    return ids


def test_a_candidate_with_a_long_ancestry_is_a_parent_when_the_child_is_not_in_it() -> None:
    # The walk up a candidate's ancestry gives up after 256 peers (and refuses it); the
    # walk down from the child knows at once that the child is not among them.
    state = new_state()
    chain = long_chain(state, "a", MAX_ANCESTOR_WALK + 44)
    child = origin_peer(state, "child", HOSTS[11])
    candidate = state.peer(chain[0])  # 299 ancestors, none of them the child
    assert state._pipeline._fit(child, [candidate]) == [candidate]
    assert state.invariant_violations() == []


def test_a_child_with_too_many_descendants_is_checked_by_walking_up() -> None:
    state = new_state()
    # child <- d_last <- ... <- d0: every d is below the child (the child is their ancestor).
    child = origin_peer(state, "child", HOSTS[11])
    chain = long_chain(state, "d", MAX_DESCENDANT_WALK + 10)
    state._pipeline.edges.hand_out(chain[-1], [child], child_host=state.peer(chain[-1]).host_id)
    assert state._pipeline.edges.descendants("child") is None  # past the bound
    below, stranger = state.peer(chain[-1]), origin_peer(state, "stranger", HOSTS[3])
    # The one right below the child closes a cycle; a stranger does not.
    assert state._pipeline._fit(child, [below, stranger]) == [stranger]


def test_a_stale_record_in_the_feeder_index_is_a_violation() -> None:
    state = new_state()
    feeding(state, HOSTS[0], "p")
    feeders = state._pipeline.feeders
    feeders.discard("p")
    feeders.add(attrs.evolve(state.peer("p")))  # a copy: not the ledger's record
    assert "peer p: the feeder index holds a stale record" in state.invariant_violations()


def test_no_push_to_a_child_that_is_done_or_gone() -> None:
    state = new_state()
    feeding(state, HOSTS[0], "parent")
    join(state, HOSTS[1], "done")
    state.start_download("done", 2.0)
    state.finish_download("done", 2.0)
    join(state, HOSTS[2], "dropped")
    state.disconnect_host(HOSTS[2].id, 3.0)
    assert scheduled(state.disconnect_host(HOSTS[0].id, 4.0)) == []


def test_a_child_that_goes_to_the_origin_gives_up_its_parents_and_is_not_pushed() -> None:
    state = new_state()
    feeding(state, HOSTS[0], "parent")
    join(state, HOSTS[1], "child")
    assert state.parents_of("child") == ("parent",)
    slots = state.host(HOSTS[0].id).concurrent_upload_count
    state.back_to_source("child", 2.0)
    assert state.parents_of("child") == ()
    assert state.children_of("parent") == ()
    assert state.host(HOSTS[0].id).concurrent_upload_count == slots - 1
    assert scheduled(state.disconnect_host(HOSTS[0].id, 3.0)) == []


def test_dragonfly_compat_pushes_nothing() -> None:
    state = new_state(DragonflyCompat())
    feeding(state, HOSTS[0], "dying")
    join(state, HOSTS[2], "child")
    assert scheduled(state.disconnect_host(HOSTS[0].id, 5.0)) == []
    assert state.parents_of("child") == ("dying",)  # until the child asks again
    (event,) = scheduled(state.reschedule_peer("child", ["dying"], 6.0))
    assert "dying" not in event.decision.parents


# --- plugins --------------------------------------------------------------------------------


class Picky:
    """Vetoes p1, boosts p3, and replaces the selection when told to."""

    name = "picky"
    selection: ClassVar[list[str] | None] = None

    @hookimpl
    def scheduler_candidate_veto(self, parent: Peer) -> str | None:
        return "not p1" if parent.id == "p1" else None

    @hookimpl
    def scheduler_candidate_score(self, parent: Peer) -> float:
        return 10.0 if parent.id == "p3" else 0.0

    @hookimpl
    def scheduler_select_parents(self, candidates: Sequence[Peer]) -> list[str] | None:
        return None if self.selection is None else list(self.selection)


def test_vetoes_scores_and_selection_replacement() -> None:
    picky = Picky()
    state = new_state(picky)
    for i in range(1, 5):
        feeding(state, HOSTS[i], f"p{i}")
    decision = join(state, HOSTS[0], "child")
    assert decision.parents[0] == "p3"
    assert "p1" not in decision.parents
    # A replacement is re-filtered: the child itself, a stranger and a repeat are dropped.
    picky.selection = ["child", "nobody", "p2", "p2", "p1"]
    (event,) = scheduled(state.reschedule_peer("child", [], 2.0))
    assert event.decision.parents == ("p2", "p1")
    picky.selection = []
    (event,) = scheduled(state.reschedule_peer("child", [], 3.0))
    assert event.decision.action is ScheduleAction.WAIT


class Broken:
    name = "broken"

    @hookimpl
    def scheduler_candidate_score(self) -> float:
        raise RuntimeError("boom")

    @hookimpl
    def scheduler_candidate_veto(self) -> object:
        return 42

    @hookimpl
    def scheduler_proactive_push(self) -> object:
        raise RuntimeError("boom")

    @hookimpl
    def scheduler_schedule_limits(self) -> object:
        return "four"


def test_a_raising_plugin_is_contained_and_counted() -> None:
    state = new_state(Broken())
    feeding(state, HOSTS[0], "parent")
    assert join(state, HOSTS[1], "child").parents == ("parent",)
    assert len(scheduled(state.disconnect_host(HOSTS[0].id, 2.0))) == 1
    errors = state.policies.errors
    for hook in (
        "scheduler_candidate_score",
        "scheduler_candidate_veto",
        "scheduler_proactive_push",
    ):
        assert errors[("broken", hook)] >= 1, hook
    # The built-in evaluator answered first, so the malformed limits were never needed.
    assert state.policies.schedule_limits() == ScheduleLimits()


def test_phi_accrual_ranks_a_quiet_host_last() -> None:
    phi = PhiAccrual()
    state = new_state(phi, config={"phi_accrual": {"min_samples": 2}})
    for host in HOSTS[:3]:
        for t in (0.0, 10.0, 20.0, 30.0):
            state.announce_host(host, t, interval=10)
    for i in (0, 1):
        state.register_peer(f"p{i}", HOSTS[i].id, TASK, 30.0)
        state.back_to_source(f"p{i}", 30.0)
        state.finish_pieces(f"p{i}", [0, 1, 2] if i == 0 else [0], 30.0)
    state.announce_host(HOSTS[1], 38.0, interval=10)  # p1's host is punctual, p0's is quiet
    state.announce_host(HOSTS[2], 38.0, interval=10)
    state.register_peer("child", HOSTS[2].id, TASK, 38.0)
    (event,) = scheduled(state.schedule_peer("child", 41.0))
    assert phi.phi(state.host(HOSTS[0].id), 41.0) > 1.0 > phi.phi(state.host(HOSTS[1].id), 41.0)
    assert event.decision.parents == ("p1", "p0")  # more pieces, but suspected


# --- errors change nothing ------------------------------------------------------------------


def test_errors_change_nothing() -> None:
    state = new_state()
    feeding(state, HOSTS[0], "parent")
    state.announce_host(HOSTS[1], 0.0)
    state.register_peer("child", HOSTS[1].id, TASK, 1.0)
    with pytest.raises(NotFound):
        state.schedule_peer("nobody", 1.0)
    with pytest.raises(NotFound):
        state.schedule_peer("child", 1.0, as_host=HOSTS[0].id)
    with pytest.raises(NotFound):
        state.reschedule_peer("child", ["parent"], 1.0, as_host=HOSTS[0].id)
    state.finish_download("parent", 1.0)
    with pytest.raises(IllegalTransition):
        state.schedule_peer("parent", 1.0)
    assert state.parents_of("child") == ()
    assert state.view.blocked_parents_of("child") == frozenset()
    assert state.host(HOSTS[0].id).concurrent_upload_count == 0
    assert state.invariant_violations() == []


# --- plain parts ----------------------------------------------------------------------------


def test_indexed_set_swap_removes_and_samples_distinct_items() -> None:
    items = IndexedSet()
    for i in range(100):
        items.add(f"x{i}")
    assert not items.add("x5")
    assert items.discard("x5")
    assert not items.discard("x5")
    assert len(items) == 99
    assert "x99" in items
    assert "x5" not in items
    sample = items.sample(random.Random(3), 10)
    assert len(set(sample)) == 10
    assert all(s in items for s in sample)
    assert sorted(items.sample(random.Random(3), 500)) == sorted(items)


def _peer(peer_id: str, host_id: str, state: PeerState, pieces: int = 1) -> Peer:
    peer = Peer(peer_id, "t", host_id, 0.0, 0.0, 0.0, state=state)
    for piece in range(pieces):
        peer.finished_pieces.add(piece)
    return peer


@pytest.mark.parametrize(
    ("candidate", "host_ok", "blocked", "bad", "cycle", "reason"),
    [
        (_peer("c", "hc", PeerState.RUNNING), True, (), False, False, "the child itself"),
        (_peer("p", "hc", PeerState.RUNNING), True, (), False, False, "child's host"),
        (_peer("p", "hp", PeerState.RUNNING), False, (), False, False, "not connected"),
        (_peer("p", "hp", PeerState.RECEIVED_NORMAL), True, (), False, False, "received"),
        (_peer("p", "hp", PeerState.FAILED), True, (), False, False, "failed"),
        (_peer("p", "hp", PeerState.RUNNING, 0), True, (), False, False, "no finished piece"),
        (_peer("p", "hp", PeerState.RUNNING), True, ("p",), False, False, "blocklisted"),
        (_peer("p", "hp", PeerState.RUNNING), True, (), True, False, "bad node"),
        (_peer("p", "hp", PeerState.RUNNING), True, (), False, True, "cycle"),
        (_peer("p", "hp", PeerState.BACK_TO_SOURCE, 0), True, (), False, False, None),
        (_peer("p", "hp", PeerState.SUCCEEDED), True, (), False, False, None),
    ],
)
def test_unfit_reason_names_the_first_rule_broken(  # noqa: PLR0917
    candidate: Peer,
    host_ok: bool,
    blocked: tuple[str, ...],
    bad: bool,
    cycle: bool,
    reason: str | None,
) -> None:
    child = _peer("c", "hc", PeerState.RUNNING)
    host = Host("hp", HostInfo("p", "1.1.1.1"), None, 0.0, 0.0, 0.0)
    if not host_ok:
        host.state = HostState.DISCONNECTED
    answer = unfit_reason(
        child,
        candidate,
        host,
        blocked=blocked,
        is_bad=lambda _: bad,
        closes_cycle=lambda a, b: cycle,
    )
    assert (answer is None) == (reason is None)
    if reason is not None:
        assert answer is not None
        assert reason in answer


def test_unfit_reason_refuses_a_full_host() -> None:
    host = Host("hp", HostInfo("p", "1.1.1.1", concurrent_upload_limit=1), None, 0.0, 0.0, 0.0)
    host.concurrent_upload_count = 1
    answer = unfit_reason(
        _peer("c", "hc", PeerState.RUNNING),
        _peer("p", "hp", PeerState.RUNNING),
        host,
        blocked=(),
        is_bad=lambda _: False,
        closes_cycle=lambda a, b: False,
    )
    assert answer is not None
    assert "upload slot" in answer


def test_check_decision_catches_a_dead_parent() -> None:
    state = new_state()
    feeding(state, HOSTS[0], "parent")
    decision = join(state, HOSTS[1], "child")
    state_dc = new_state(DragonflyCompat())
    feeding(state_dc, HOSTS[0], "parent")
    join(state_dc, HOSTS[1], "child")
    state_dc.disconnect_host(HOSTS[0].id, 2.0)  # no push: the edge stays
    with pytest.raises(InvariantError, match="not connected"):
        check_decision(state_dc.view, "child", decision)
    with pytest.raises(InvariantError, match="hands out"):
        check_decision(state.view, "child", Decision(ScheduleAction.PARENTS, ("other",)))


# --- properties: a state machine over distinct hosts ----------------------------------------

PROFILES = [HostProfile(host, 30.0) for host in HOSTS[:8]] + [
    HostProfile(HostInfo(f"seed-{i}", f"10.0.3.{i}", type=HostType.SEED), 30.0) for i in range(2)
]
TASKS = [
    TaskInfo(f"task-{i}", f"https://example.invalid/{i}", total_piece_count=4) for i in range(2)
]
_INDEX = st.integers(0, len(PROFILES) - 1)


class SchedulingMachine(RuleBasedStateMachine):
    """Swarms on distinct hosts, under churn; the Simulation checks every decision and push."""

    plugins: ClassVar[tuple[type, ...]] = ()

    @initialize(seed=st.integers(0, 2**16))
    def start(self, seed: int) -> None:
        policies = PolicySet.from_plugins([*builtin_plugins(), *(p() for p in self.plugins)])
        self.sim = Simulation(policies, PROFILES, seed=seed)
        self.pushes = 0
        for index in range(len(PROFILES)):
            self.sim.apply(Announce(index))
        # A first swarm: one peer at the origin, the others on the parents they are handed.
        self.apply(DownloadSwarm(TASKS[seed % len(TASKS)], len(PROFILES), seed, 0.1))

    def apply(self, step: Any) -> None:
        before = len(self.sim.events)
        self.sim.apply(step)
        self.pushes += sum(
            1 for e in self.sim.events[before:] if isinstance(e, PeerScheduled) and e.pushed
        )

    @rule(task=st.sampled_from(TASKS), size=st.integers(1, 6), start=_INDEX)
    def swarm(self, task: TaskInfo, size: int, start: int) -> None:
        self.apply(Swarm(task, size, start))

    @rule(task=st.sampled_from(TASKS), size=st.integers(2, 6), start=_INDEX, cost=piece_costs)
    def download_swarm(self, task: TaskInfo, size: int, start: int, cost: float | None) -> None:
        self.apply(DownloadSwarm(task, size, start, cost))

    @rule(cost=piece_costs)
    def everyone_obeys(self, cost: float | None) -> None:
        self.apply(EveryoneObeys(cost))

    @rule(peer=st.integers(0, 40), parent=st.integers(0, 3))
    def report_failed_parent(self, peer: int, parent: int) -> None:
        self.apply(ReportFailedParent(peer, parent))

    @rule(
        peer=st.integers(0, 40), action=st.sampled_from(["reschedule", "fail", "leave", "finish"])
    )
    def peer_step(self, peer: int, action: str) -> None:
        self.apply(PeerStep(peer, action))

    @rule(host=_INDEX)
    def crash(self, host: int) -> None:
        self.apply(Crash(host))

    @rule(host=_INDEX)
    def announce(self, host: int) -> None:
        self.apply(Announce(host))

    @rule(host=_INDEX)
    def leave(self, host: int) -> None:
        self.apply(Leave(host))

    @rule(seconds=st.sampled_from([0.5, 3.0, 10.0]))
    def advance(self, seconds: float) -> None:
        self.apply(Advance(seconds))

    @invariant()
    def slots_are_the_edges_and_never_negative(self) -> None:
        view = self.sim.state.view
        for host in view.hosts():
            assert host.concurrent_upload_count >= 0
            edges = sum(len(view.children_of(p.id)) for p in view.peers_of_host(host.id))
            assert host.concurrent_upload_count == edges

    @invariant()
    def pushes_match_the_policy(self) -> None:
        if DragonflyCompat in self.plugins:
            assert self.pushes == 0


class CompatSchedulingMachine(SchedulingMachine):
    plugins = (DragonflyCompat,)


class PhiSchedulingMachine(SchedulingMachine):
    plugins = (PhiAccrual,)


TestScheduling = SchedulingMachine.TestCase
TestCompatScheduling = CompatSchedulingMachine.TestCase
TestPhiScheduling = PhiSchedulingMachine.TestCase


def test_the_machine_hands_out_parents_and_pushes() -> None:
    """The property machine reaches the interesting cases (not only waits)."""
    sim = Simulation(PolicySet.from_plugins(builtin_plugins()), PROFILES[:8], seed=7)
    for index in range(8):
        sim.apply(Announce(index))
    sim.apply(Swarm(TASKS[0], 6))
    for _ in range(3):
        sim.apply(EveryoneObeys(0.1))
    sim.apply(Crash(0))
    actions = {e.decision.action for e in sim.events if isinstance(e, PeerScheduled)}
    assert ScheduleAction.PARENTS in actions
    assert any(isinstance(e, PeerScheduled) and e.pushed for e in sim.events)


@pytest.mark.parametrize(
    ("machine", "pushes"),
    [(SchedulingMachine, True), (CompatSchedulingMachine, False), (PhiSchedulingMachine, True)],
)
def test_each_scheduling_machine_reaches_parents_and_pushes(
    machine: type[SchedulingMachine], pushes: bool
) -> None:
    """Over the profile's examples, the machine's runs schedule (and push, where allowed)."""
    measure_coverage(machine).check(pushes=pushes)


def test_view_is_read_only_for_scheduling() -> None:
    view: StateView = new_state().view
    assert view.parents_of("x") == ()
    assert view.children_of("x") == ()
