"""What one host can do to the parents of others: bounded reports, held slots, reputation.

* A ``reschedule``'s ``failed_parents`` count only for live peers of the child's task
  that were handed to that child; the blocklist is bounded and goes with the child.
* A failure is charged to a parent's host at most once per reporting host in the
  window, however many of that host's peers report it.
* A peer that takes parents and never starts gives their slots back (``start_timeout``),
  and the peers of one host hold at most a share of another host's slots.
"""

from __future__ import annotations

import gc
import random
import tracemalloc
from typing import Any

from scheduler.core import (
    Decision,
    Eviction,
    HostInfo,
    PeerScheduled,
    PeerState,
    RecordKind,
    RecordLimits,
    ScheduleAction,
    SchedulerState,
    TaskInfo,
)
from scheduler.core._failures import MAX_BLOCKED_PARENTS, MAX_OFFERED_PARENTS, FailureReports
from scheduler.policies import load_policies
from scheduler.testing import check_decision

TASK = TaskInfo("t1", url="https://example.invalid/x", total_piece_count=10)


def new_state(limits: RecordLimits | None = None, config: dict[str, Any] | None = None) -> Any:
    policies = load_policies(entrypoints=False, config=config)
    return SchedulerState(policies, now=0.0, rng=random.Random(1), limits=limits or RecordLimits())


def host(i: int, limit: int = 50) -> HostInfo:
    return HostInfo(f"host-{i}", f"10.0.{i >> 8}.{i & 255}", concurrent_upload_limit=limit)


def announce(state: SchedulerState, info: HostInfo, now: float = 0.0) -> None:
    if not state.has_host(info.id):
        state.announce_host(info, now, interval=3600)


def feeder(state: SchedulerState, info: HostInfo, peer_id: str, task: TaskInfo = TASK) -> None:
    """A peer that went to the origin and holds a piece."""
    announce(state, info)
    state.register_peer(peer_id, info.id, task, 1.0)
    state.back_to_source(peer_id, 1.0)
    state.finish_pieces(peer_id, [0], 1.0)


def join(
    state: SchedulerState, info: HostInfo, peer_id: str, now: float = 1.0, task: TaskInfo = TASK
) -> Decision:
    announce(state, info)
    state.register_peer(peer_id, info.id, task, now)
    (event,) = [e for e in state.schedule_peer(peer_id, now) if isinstance(e, PeerScheduled)]
    check_decision(state.view, peer_id, event.decision)
    return event.decision


def again(state: SchedulerState, peer_id: str, failed: list[str], now: float = 2.0) -> Decision:
    events = state.reschedule_peer(peer_id, failed, now)
    (event,) = [e for e in events if isinstance(e, PeerScheduled)]
    return event.decision


# --- failed_parents: only parents handed to the child, bounded, freed ---------------------------


def test_made_up_failed_parents_are_kept_nowhere() -> None:
    state = new_state()
    feeder(state, host(0), "parent")
    assert join(state, host(1), "child").parents == ("parent",)
    made_up = [f"{i:03d}" + "x" * 608 for i in range(100)]  # 611 characters each
    again(state, "child", made_up)
    assert state.view.blocked_parents_of("child") == frozenset()
    assert state._pipeline.offered.sizes() == (1, 0)  # the one parent handed out
    assert state.host(host(0).id).upload_failed_count == 0
    assert state.invariant_violations() == []


def test_a_thousand_five_hundred_attack_frames_keep_no_memory() -> None:
    # 1,500 reschedules naming 100 made-up 611-character ids each once kept ~70 KB a frame.
    state = new_state()
    feeder(state, host(0), "parent")
    join(state, host(1), "child")
    frames = [[f"{n:04d}-{i:03d}" + "y" * 603 for i in range(100)] for n in range(1500)]
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for n, names in enumerate(frames):
            again(state, "child", names, now=2.0 + n * 0.001)
        gc.collect()  # what is only waiting for the collector is not kept
        kept = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert kept < 16 * 1024, f"{kept} bytes kept after 1,500 frames"
    assert state.view.blocked_parents_of("child") == frozenset()


def test_a_parent_of_another_task_or_never_handed_out_is_not_blocked() -> None:
    state = new_state()
    other_task = TaskInfo("t2", url="https://example.invalid/y", total_piece_count=10)
    feeder(state, host(0), "handed")
    feeder(state, host(2), "elsewhere", task=other_task)
    join(state, host(1), "child")
    assert set(state.parents_of("child")) == {"handed"}
    feeder(state, host(3), "never-handed")
    again(state, "child", ["elsewhere", "never-handed", "child", "handed"])
    assert state.view.blocked_parents_of("child") == {"handed"}
    assert state.host(host(0).id).upload_failed_count == 1
    assert state.host(host(3).id).upload_failed_count == 0


def test_a_parent_handed_out_in_an_earlier_decision_may_still_be_reported() -> None:
    state = new_state(config={"evaluator": {"candidate_parent_limit": 1}})
    feeder(state, host(0), "a")
    first = join(state, host(1), "child").parents
    feeder(state, host(2), "b")
    second = again(state, "child", []).parents  # may move to the other parent
    assert set(first) | set(second) <= {"a", "b"}
    again(state, "child", list(first))
    assert first[0] in state.view.blocked_parents_of("child")


def test_the_blocklist_is_bounded_and_keeps_the_newest() -> None:
    state = new_state()
    count = MAX_BLOCKED_PARENTS + 6
    for i in range(count):
        feeder(state, host(100 + i), f"p{i:03d}")
    join(state, host(1), "child")
    offered = state._pipeline.offered
    # Hand every feeder to the child in turn (as successive decisions would), then report.
    for i in range(count):
        offered.hand_out("child", [f"p{i:03d}"])
        again(state, "child", [f"p{i:03d}"], now=2.0 + i)
    blocked = state.view.blocked_parents_of("child")
    assert len(blocked) == MAX_BLOCKED_PARENTS
    assert blocked == {f"p{i:03d}" for i in range(count - MAX_BLOCKED_PARENTS, count)}
    assert offered.sizes()[0] <= MAX_OFFERED_PARENTS


def test_the_blocklist_and_the_parents_handed_out_go_with_the_child() -> None:
    state = new_state()
    feeder(state, host(0), "parent")
    join(state, host(1), "child")
    again(state, "child", ["parent"])
    assert state._pipeline.offered.sizes() == (1, 1)
    state.leave_peer("child", 3.0)
    assert state._pipeline.offered.sizes() == (0, 0)
    assert state.invariant_violations() == []


# --- reputation: one failure per reporting host in the window --------------------------------


def test_sixty_peers_of_one_host_charge_an_honest_parent_once() -> None:
    state = new_state(limits=RecordLimits(max_upload_share=1.0))
    honest = host(0, limit=200)
    feeder(state, honest, "honest")
    for i in range(60):
        task = TaskInfo("t1")
        announce(state, host(1))
        state.register_peer(f"attacker-{i}", host(1).id, task, 1.0)
        state.schedule_peer(f"attacker-{i}", 1.0)
        again(state, f"attacker-{i}", ["honest"], now=2.0 + i)
    assert state.host(honest.id).upload_failed_count == 1
    # Another host's report counts; the same host again within the window does not.
    join(state, host(2), "other")
    again(state, "other", ["honest"], now=70.0)
    assert state.host(honest.id).upload_failed_count == 2


def test_the_honest_parent_stays_first_choice_after_the_attack() -> None:
    # 60 peers of one host once took an honest parent from first choice for 11 of 20 new
    # children to 0 of 20.
    state = new_state(limits=RecordLimits(max_upload_share=1.0))
    honest, plain = host(0, limit=500), host(1, limit=500)
    feeder(state, honest, "honest")
    state.finish_pieces("honest", list(range(10)), 1.0)  # the whole task
    feeder(state, plain, "plain")
    for i in range(60):
        join(state, host(2), f"attacker-{i}")
        again(state, f"attacker-{i}", ["honest", "plain"], now=2.0 + i)
    firsts = [join(state, host(10 + i), f"new-{i}", now=70.0).parents[0] for i in range(20)]
    assert firsts.count("honest") == 20


def test_a_failure_is_charged_again_once_the_window_has_passed() -> None:
    reports = FailureReports(window=300.0)
    assert reports.charge("parent-host", "reporter", 0.0)
    assert not reports.charge("parent-host", "reporter", 299.9)
    assert reports.charge("parent-host", "other-reporter", 10.0)
    assert reports.charge("parent-host", "reporter", 300.0)
    assert len(reports) == 2  # the first pair expired and was charged anew; the other stays
    assert reports.charge("other-parent", "reporter", 300.0)


# --- held slots: the start timeout and the share per host ------------------------------------


def test_a_peer_that_takes_parents_and_never_starts_gives_them_back() -> None:
    state = new_state()
    feeder(state, host(0), "parent")
    assert join(state, host(1), "idle", now=5.0).parents == ("parent",)
    assert state.peer("idle").handed_parents_at == 5.0
    expiry = state.deadline_of(RecordKind.PEER, "idle")
    assert (expiry.at, expiry.reason) == (35.0, "start_timeout")
    assert state.host(host(0).id).concurrent_upload_count == 1
    evictions = [e for e in state.run_gc(35.0) if isinstance(e, Eviction)]
    assert [(e.record_id, e.reason) for e in evictions] == [("idle", "start_timeout")]
    assert state.host(host(0).id).concurrent_upload_count == 0
    assert state.invariant_violations() == []


def test_a_peer_that_starts_in_time_keeps_its_parents() -> None:
    state = new_state(config={"peer_start": {"start_timeout": "10s"}})
    feeder(state, host(0), "parent")
    join(state, host(1), "child", now=5.0)
    assert state.deadline_of(RecordKind.PEER, "child").reason == "start_timeout"
    state.start_download("child", 14.0)
    expiry = state.deadline_of(RecordKind.PEER, "child")
    assert expiry.reason != "start_timeout"
    assert not [e for e in state.run_gc(15.0) if isinstance(e, Eviction)]
    assert state.peer("child").state is PeerState.RUNNING
    assert state.parents_of("child") == ("parent",)


def test_a_peer_told_to_wait_has_no_start_timeout() -> None:
    state = new_state()
    announce(state, host(0))
    state.register_peer("first", host(0).id, TASK, 1.0)
    state.schedule_peer("first", 1.0)  # the origin: it is the task's first peer
    assert join(state, host(1), "waiting").action is ScheduleAction.WAIT
    assert state.peer("waiting").handed_parents_at is None
    assert state.deadline_of(RecordKind.PEER, "waiting").reason == "ttl_expired"


def test_one_hosts_peers_hold_at_most_a_quarter_of_a_feeders_slots() -> None:
    # 60 register_peer of one host that never start once held 100 of 100 upload slots,
    # and a legitimate child got `wait`.
    state = new_state()
    feeders = [host(i, limit=25) for i in range(4)]  # 100 slots in all
    for i, info in enumerate(feeders):
        feeder(state, info, f"f{i}")
    attacker = host(50)
    for i in range(60):
        join(state, attacker, f"a{i}")
    for info in feeders:
        assert state._pipeline.edges.pair_slots(info.id, attacker.id) <= 6
        assert state.host(info.id).concurrent_upload_count <= 6
    decision = join(state, host(51), "legit")
    assert decision.action is ScheduleAction.PARENTS
    assert state.invariant_violations() == []


def test_the_share_is_at_least_one_slot() -> None:
    limits = RecordLimits(max_upload_share=0.25)
    assert [limits.upload_slots_for_one_host(n) for n in (1, 3, 4, 50, 100)] == [1, 1, 1, 12, 25]
    assert RecordLimits(max_upload_share=1.0).upload_slots_for_one_host(7) == 7
