"""The core answers in one call: ``announce`` and ``register_and_schedule`` (and
``reschedule``) give typed results, and one GC driver runs the core's GC in any clock.

Each typed call is checked against the list-returning mutators it stands for, on a
twin state with the same seed: the same events, the same decision, and parents as
the view describes them in the decision's turn.
"""

from __future__ import annotations

import random

import pytest

from scheduler.core import (
    Announced,
    Eviction,
    Expiry,
    GcDriver,
    GcRun,
    HostInfo,
    HostType,
    NotFound,
    PeerScheduled,
    PolicySet,
    RecordKind,
    ScheduleAction,
    Scheduled,
    ScheduledParent,
    SchedulerState,
    SeedFetchRequested,
    TaskInfo,
    Verdict,
)
from scheduler.policies import builtin_plugins, load_policies
from tests.scripted import A, B, C, Scripted

TASK = TaskInfo(
    "t1", url="https://example.invalid/t1", content_length=64 << 20, total_piece_count=16
)
SEED = HostInfo("seed-1", "10.0.9.1", download_port=65002, type=HostType.SEED)
FAST = HostInfo("fast", "10.0.0.7", download_port=65001)


def state_with_feeder(seed: int = 3) -> SchedulerState:
    """FAST's peer pf holds 3 pieces of TASK; A and B are announced."""
    state = SchedulerState(load_policies(entrypoints=False), now=0.0, rng=random.Random(seed))
    for info in (A, B, FAST):
        state.announce_host(info, 0.0, interval=30)
    state.register_peer("pf", FAST.id, TASK, 0.0)
    state.start_download("pf", 0.0)
    state.finish_pieces("pf", [0, 1, 2], 0.0, cost=0.5)
    return state


def test_register_and_schedule_is_register_peer_then_schedule_peer_in_one_call() -> None:
    one, two = state_with_feeder(), state_with_feeder()
    scheduled = one.register_and_schedule("pa", A.id, TASK, 1.0)
    expected = [*two.register_peer("pa", A.id, TASK, 1.0), *two.schedule_peer("pa", 1.0)]
    assert isinstance(scheduled, Scheduled)
    assert list(scheduled.events) == expected
    assert scheduled.scheduled is scheduled.events[-1]
    assert scheduled.scheduled.cause == "register"
    assert scheduled.decision == scheduled.scheduled.decision
    assert scheduled.decision.action is ScheduleAction.PARENTS
    assert scheduled.decision.parents == ("pf",)
    assert scheduled.parents == (
        ScheduledParent("pf", FAST.id, "10.0.0.7", 65001, 3, HostType.NORMAL),
    )
    assert one.invariant_violations() == []


def test_a_decision_without_parents_names_none_and_carries_its_seed_fetch() -> None:
    state = SchedulerState(load_policies(entrypoints=False), now=0.0, rng=random.Random(1))
    state.announce_host(SEED, 0.0, interval=30)
    state.announce_host(A, 0.0, interval=30)
    scheduled = state.register_and_schedule("pa", A.id, TASK, 1.0)
    assert scheduled.decision.action is ScheduleAction.WAIT
    assert scheduled.parents == ()
    fetches = [e for e in scheduled.events if isinstance(e, SeedFetchRequested)]
    assert [f.seed_host_id for f in fetches] == [SEED.id]
    assert scheduled.events[-2:] == (scheduled.scheduled, fetches[0])
    # The seed's own registration: its parents are none, it goes to the origin.
    seed_peer = state.register_and_schedule(fetches[0].peer_id, SEED.id, TASK, 1.0)
    assert seed_peer.decision.action is ScheduleAction.BACK_TO_SOURCE
    assert seed_peer.parents == ()


def test_a_parent_on_a_seed_host_is_described_as_one() -> None:
    state = SchedulerState(load_policies(entrypoints=False), now=0.0, rng=random.Random(1))
    for info in (SEED, A):
        state.announce_host(info, 0.0, interval=30)
    state.register_peer("ps", SEED.id, TASK, 0.0)
    state.back_to_source("ps", 0.0)
    state.finish_pieces("ps", [0], 0.0)
    scheduled = state.register_and_schedule("pa", A.id, TASK, 1.0)
    assert scheduled.parents == (
        ScheduledParent("ps", SEED.id, "10.0.9.1", 65002, 1, HostType.SEED),
    )


def test_a_registration_that_raises_decides_nothing_and_changes_nothing() -> None:
    state = state_with_feeder()
    before = (state.peer_count(), state.task_count(), state.host(FAST.id).concurrent_upload_count)
    with pytest.raises(NotFound):
        state.register_and_schedule("pa", "no-such-host", TASK, 1.0)
    after = (state.peer_count(), state.task_count(), state.host(FAST.id).concurrent_upload_count)
    assert after == before
    assert state.parents_of("pa") == ()


def test_reschedule_is_reschedule_peer_as_a_typed_answer() -> None:
    one, two = state_with_feeder(), state_with_feeder()
    for state in (one, two):
        state.register_peer("pa", A.id, TASK, 1.0)
        state.schedule_peer("pa", 1.0)
    scheduled = one.reschedule("pa", ["pf"], 2.0, as_host=A.id)
    expected = two.reschedule_peer("pa", ["pf"], 2.0, as_host=A.id)
    assert list(scheduled.events) == expected
    assert scheduled.scheduled.cause == "reschedule"
    assert scheduled.parents == ()  # its only feeder is blocklisted now
    with pytest.raises(NotFound):
        one.reschedule("pa", [], 3.0, as_host=B.id)


def test_announce_answers_the_deadline_and_grace_the_session_replies_with() -> None:
    script = Scripted()
    state = SchedulerState(PolicySet.from_plugins([*builtin_plugins(), script]), now=0.0)
    twin = SchedulerState(PolicySet.from_plugins([*builtin_plugins(), Scripted()]), now=0.0)
    script.expiries[A.id] = Expiry(40.0, "ttl_expired")
    announced = state.announce(A, 5.0, interval=30)
    assert isinstance(announced, Announced)
    assert announced.host_id == A.id
    assert list(announced.events) == twin.announce_host(A, 5.0, interval=30)
    assert (
        announced.expiry == state.deadline_of(RecordKind.HOST, A.id) == Expiry(40.0, "ttl_expired")
    )
    assert announced.reconnect_grace == state.reconnect_grace(A.id, 5.0)
    del script.expiries[A.id]
    again = state.announce(A, 6.0, interval=30)
    assert again.expiry == state.deadline_of(RecordKind.HOST, A.id)
    assert again.reconnect_grace == state.reconnect_grace(A.id, 6.0)


# --- the GC driver ------------------------------------------------------------------------------


def scripted_state(sweep_interval: float = 100.0) -> tuple[SchedulerState, Scripted]:
    script = Scripted()
    policies = PolicySet.from_plugins([*builtin_plugins(), script])
    return SchedulerState(policies, now=0.0, sweep_interval=sweep_interval), script


def test_the_driver_wakes_at_the_cores_next_deadline_and_runs_the_gc_then() -> None:
    state, script = scripted_state()
    script.expiries[A.id] = Expiry(10.0, "ttl_expired")
    state.announce_host(A, 0.0)
    driver = GcDriver(state)
    assert driver.next_wake() == state.next_deadline() == 10.0
    assert not driver.is_due(9.9)
    assert driver.is_due(10.0)
    assert driver.run_due(0.0, 9.9) is None
    assert state.has_host(A.id)
    run = driver.run_due(0.0, 10.0)  # due at the bound itself
    assert isinstance(run, GcRun)
    assert run.at == 10.0
    assert [(e.record_id, e.reason) for e in run.events if isinstance(e, Eviction)] == [
        (A.id, "ttl_expired")
    ]
    assert run.swept == ()
    assert not state.has_host(A.id)
    # Never before the caller's now.
    script.expiries[B.id] = Expiry(20.0, "ttl_expired")
    state.announce_host(B, 15.0)
    late = driver.run_due(30.0, 50.0)
    assert late is not None
    assert late.at == 30.0
    script.expiries[C.id] = Expiry(40.0, "ttl_expired")
    state.announce_host(C, 30.0)
    next_run = driver.run_due(30.0, 50.0)
    assert next_run is not None
    assert next_run.at == 40.0  # the deadline, not the bound


def test_advancing_runs_every_deadline_on_the_way_in_order() -> None:
    state, script = scripted_state()
    for info, at in ((A, 5.0), (B, 7.0), (C, 60.0)):
        script.expiries[info.id] = Expiry(at, "ttl_expired")
        state.announce_host(info, 0.0)
    runs = list(GcDriver(state).advance(0.0, 50.0))
    assert [r.at for r in runs] == [5.0, 7.0]
    assert state.has_host(C.id)
    assert GcDriver(state).next_wake() == 60.0


def test_advancing_sees_what_the_caller_did_between_two_runs() -> None:
    state, script = scripted_state()
    script.expiries[A.id] = Expiry(5.0, "ttl_expired")
    state.announce_host(A, 0.0)
    seen = []
    for run in GcDriver(state).advance(0.0, 50.0):
        seen.append(run.at)
        if run.at == 5.0:  # a host announced in between, due before the bound
            script.expiries[B.id] = Expiry(8.0, "ttl_expired")
            state.announce_host(B, 5.0)
    assert seen == [5.0, 8.0]


def test_a_run_says_which_kinds_were_swept() -> None:
    state, script = scripted_state(sweep_interval=100.0)
    state.announce_host(A, 0.0)
    script.verdicts[RecordKind.HOST] = [Verdict(RecordKind.HOST, A.id, "capacity")]
    driver = GcDriver(state)
    assert driver.run(50.0).swept == ()
    run = driver.run(100.0)
    assert run.swept == tuple(RecordKind)
    assert [(e.record_id, e.reason) for e in run.events if isinstance(e, Eviction)] == [
        (A.id, "capacity")
    ]
    peers_only = GcDriver(state, (RecordKind.PEER,))
    assert peers_only.kinds == (RecordKind.PEER,)
    assert peers_only.run(200.0).swept == (RecordKind.PEER,)
    assert state.next_sweep_at(RecordKind.HOST) == 200.0  # not swept by the peers' driver


def test_a_driver_collects_at_most_max_count_records_per_run() -> None:
    state, script = scripted_state()
    for info in (A, B, C):
        script.expiries[info.id] = Expiry(5.0, "ttl_expired")
        state.announce_host(info, 0.0)
    driver = GcDriver(state, max_count=2)
    first = driver.run(5.0)
    assert len([e for e in first.events if isinstance(e, Eviction)]) == 2
    assert driver.is_due(5.0)
    second = driver.run(5.0)
    assert len([e for e in second.events if isinstance(e, Eviction)]) == 1
    assert not driver.is_due(5.0)
    with pytest.raises(ValueError, match=r"^max_count must be >= 1, got 0$"):
        GcDriver(state, max_count=0)
    assert GcDriver(state, max_count=1).max_count == 1


def test_a_run_carries_the_pushes_its_evictions_call_for() -> None:
    state, script = scripted_state()
    for info in (A, FAST):
        state.announce_host(info, 0.0, interval=30)
    state.register_peer("pf", FAST.id, TASK, 0.0)
    state.start_download("pf", 0.0)
    state.finish_pieces("pf", [0], 0.0)
    assert state.register_and_schedule("pa", A.id, TASK, 1.0).decision.parents == ("pf",)
    script.expiries[FAST.id] = Expiry(5.0, "ttl_expired")
    state.announce_host(FAST, 2.0, interval=30)
    run = GcDriver(state).run(5.0)
    pushes = [e for e in run.events if isinstance(e, PeerScheduled) and e.pushed]
    assert [(p.peer_id, p.at, p.cause) for p in pushes] == [("pa", 5.0, "parent_lost")]
    evicted = [i for i, e in enumerate(run.events) if isinstance(e, Eviction)]
    assert max(evicted) < run.events.index(pushes[0])  # the evictions, then the push
