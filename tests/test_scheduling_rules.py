"""The rules of a scheduling decision, stated one at a time.

The first half states the plain parts on their own: why a candidate is unfit, the parent
edges and their upload slots, the feeders of a task, the back-to-source reservations and
seed fetches, and what a decision may say. The second half states the decision rules
through the facade: filters, limits, the origin / wait / fail rules at the exact attempt
boundaries, the jitter of ``retry_after``, seed fetches, slot accounting and pushes.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Sequence
from typing import Any

import attrs
import pytest

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
    Task,
    TaskInfo,
    rendezvous_owner,
)
from scheduler.core._candidates import PARENT_STATES, unfit_reason
from scheduler.core._decision import _at_least
from scheduler.core._edges import MAX_ANCESTOR_WALK, MAX_DESCENDANT_WALK, ParentEdges
from scheduler.core._feeders import FEEDING_STATES, Feeders, IndexedSet, can_feed
from scheduler.core._followup import FollowUp
from scheduler.core._origin import OriginBook, SeedFetch
from scheduler.core._pipeline import CHILD_STATES, DecisionPipeline
from scheduler.policies import load_policies
from scheduler.testing import check_decision

# --- records --------------------------------------------------------------------------------


def make_peer(
    peer_id: str,
    host_id: str = "",
    state: PeerState = PeerState.RUNNING,
    pieces: int = 1,
    task_id: str = "t",
) -> Peer:
    peer = Peer(peer_id, task_id, host_id or f"h-{peer_id}", 0.0, 0.0, 0.0, state=state)
    for piece in range(pieces):
        peer.finished_pieces.add(piece)
    return peer


def make_host(host_id: str, limit: int = 4, used: int = 0) -> Host:
    host = Host(
        host_id, HostInfo(host_id, "10.0.0.1", concurrent_upload_limit=limit), None, 0, 0, 0
    )
    host.concurrent_upload_count = used
    return host


def make_task(task_id: str = "t", limit: int = 1, count: int = 0) -> Task:
    task = Task(task_id, "", -1, -1, 4, 0.0, 0.0, back_to_source_limit=limit)
    task.back_to_source_count = count
    return task


# --- unfit_reason: every rule, its message, and which comes first ---------------------------


def unfit(
    candidate: Peer,
    host: Host | None = None,
    *,
    child: Peer | None = None,
    blocked: Sequence[str] = (),
    bad: Callable[[str], bool] = lambda _: False,
    cycle: Callable[[str, str], bool] = lambda a, b: False,
) -> str | None:
    return unfit_reason(
        child or make_peer("child", "hc"),
        candidate,
        make_host(candidate.host_id) if host is None else host,
        blocked=blocked,
        is_bad=bad,
        closes_cycle=cycle,
    )


def test_a_fit_candidate_has_no_reason() -> None:
    assert unfit(make_peer("p")) is None
    assert unfit(make_peer("p", state=PeerState.SUCCEEDED)) is None
    assert unfit(make_peer("p", state=PeerState.BACK_TO_SOURCE, pieces=0)) is None
    assert {PeerState.RUNNING, PeerState.BACK_TO_SOURCE, PeerState.SUCCEEDED} == PARENT_STATES


def test_never_the_child_nor_a_peer_of_another_task_nor_of_the_childs_host() -> None:
    child = make_peer("child", "hc")
    assert unfit(child, child=child) == "the child itself"
    assert unfit(make_peer("p", task_id="other"), child=child) == "a peer of another task"
    assert unfit(make_peer("p", "hc"), child=child) == "a peer on the child's host"


@pytest.mark.parametrize("state", [HostState.DISCONNECTED, HostState.LEFT])
def test_never_a_peer_whose_host_is_not_connected(state: HostState) -> None:
    peer = make_peer("p")
    host = make_host(peer.host_id)
    host.state = state
    assert unfit(peer, host) == "its host is not connected"
    assert unfit_reason(
        make_peer("child", "hc"),
        peer,
        None,  # evicted
        blocked=(),
        is_bad=lambda _: False,
        closes_cycle=lambda a, b: False,
    ) == ("its host is not connected")


@pytest.mark.parametrize(
    "state",
    [
        PeerState.PENDING,
        PeerState.RECEIVED_EMPTY,
        PeerState.RECEIVED_TINY,
        PeerState.RECEIVED_SMALL,
        PeerState.RECEIVED_NORMAL,
        PeerState.FAILED,
        PeerState.LEAVE,
    ],
)
def test_never_a_pending_received_failed_or_leaving_peer(state: PeerState) -> None:
    assert unfit(make_peer("p", state=state, pieces=3)) == f"it is {state.value}"


def test_never_a_running_peer_without_a_piece() -> None:
    assert unfit(make_peer("p", pieces=0)) == "it has no finished piece"
    assert unfit(make_peer("p", state=PeerState.SUCCEEDED, pieces=0)) == "it has no finished piece"


def test_never_a_blocklisted_peer() -> None:
    assert unfit(make_peer("p"), blocked=("x", "p")) == "blocklisted for this child"
    assert unfit(make_peer("p"), blocked=("x",)) is None


def test_never_a_peer_on_a_host_without_a_free_upload_slot() -> None:
    peer = make_peer("p")
    full = "its host has no free upload slot"
    assert unfit(peer, make_host(peer.host_id, limit=2, used=2)) == full
    assert unfit(peer, make_host(peer.host_id, limit=2, used=3)) == full
    assert unfit(peer, make_host(peer.host_id, limit=2, used=1)) is None
    assert unfit(peer, make_host(peer.host_id, limit=0)) == full


def test_never_a_bad_node_judged_on_the_candidates_own_costs() -> None:
    asked: list[str] = []

    def bad(peer_id: str) -> bool:
        asked.append(peer_id)
        return peer_id == "slow"

    assert unfit(make_peer("slow"), bad=bad) == "a bad node (its piece costs are outliers)"
    assert unfit(make_peer("fast"), bad=bad) is None
    assert asked == ["slow", "fast"]


def test_never_a_peer_that_would_close_a_cycle() -> None:
    asked: list[tuple[str, str]] = []

    def cycle(start: str, target: str) -> bool:
        asked.append((start, target))
        return start == "descendant"

    assert unfit(make_peer("descendant"), cycle=cycle) == "it would close a cycle"
    assert unfit(make_peer("other"), cycle=cycle) is None
    # asked whether the child is the candidate or one of the candidate's ancestors
    assert asked == [("descendant", "child"), ("other", "child")]


def test_the_first_rule_broken_is_named() -> None:
    always: Callable[[str], bool] = lambda _: True  # noqa: E731
    both: Callable[[str, str], bool] = lambda a, b: True  # noqa: E731
    peer = make_peer("p")
    full = make_host(peer.host_id, limit=1, used=1)
    assert unfit(peer, full, blocked=("p",), bad=always, cycle=both) == (
        "blocklisted for this child"
    )
    assert unfit(peer, full, bad=always, cycle=both) == "its host has no free upload slot"
    assert unfit(peer, bad=always, cycle=both) == "a bad node (its piece costs are outliers)"


# --- ParentEdges ------------------------------------------------------------------------------


class Hosts:
    """A host table for ParentEdges: hosts by id; a missing one is gone."""

    def __init__(self, *hosts: Host) -> None:
        self.by_id = {h.id: h for h in hosts}

    def __call__(self, host_id: str) -> Host | None:
        return self.by_id.get(host_id)


def test_handing_out_parents_takes_one_slot_per_edge_and_replaces_the_old_ones() -> None:
    ha, hb = make_host("ha"), make_host("hb")
    edges = ParentEdges(Hosts(ha, hb))
    a1, a2, b1 = make_peer("a1", "ha"), make_peer("a2", "ha"), make_peer("b1", "hb")
    edges.hand_out("c1", [a1, b1], child_host="hc")
    edges.hand_out("c2", [a1, a2], child_host="hc")
    assert edges.parents_of("c1") == ("a1", "b1")
    assert edges.parents_of("c2") == ("a1", "a2")
    assert edges.children_of("a1") == ("c1", "c2")
    assert edges.edge_count() == 4
    assert (ha.concurrent_upload_count, hb.concurrent_upload_count) == (3, 1)
    assert edges.slots_by_host() == {"ha": 3, "hb": 1}
    edges.hand_out("c1", [a2], child_host="hc")  # replaces a1 and b1
    assert edges.parents_of("c1") == ("a2",)
    assert edges.children_of("a1") == ("c2",)
    assert edges.children_of("b1") == ()
    assert not edges.has_children("b1")
    assert edges.has_children("a2")
    assert (ha.concurrent_upload_count, hb.concurrent_upload_count) == (3, 0)
    assert edges.slots_by_host() == {"ha": 3}
    edges.hand_out("c1", [], child_host="hc")  # no parents: none held
    assert edges.parents_of("c1") == ()
    assert edges.edge_count() == 2
    assert ha.concurrent_upload_count == 2
    assert edges.slots_by_host() == {"ha": 2}


def test_releasing_a_child_frees_its_slots_and_says_which_parents_it_had() -> None:
    ha = make_host("ha")
    edges = ParentEdges(Hosts(ha))
    edges.hand_out("c", [make_peer("a1", "ha"), make_peer("a2", "ha")], child_host="hc")
    assert edges.release_child("c") == ("a1", "a2")
    assert ha.concurrent_upload_count == 0
    assert edges.release_child("c") == ()
    assert edges.parents_of("c") == ()
    assert not edges.has_children("a1")
    assert edges.slots_by_host() == {}
    assert edges.edge_count() == 0


def test_dropping_a_parent_keeps_the_childrens_other_parents() -> None:
    ha, hb = make_host("ha"), make_host("hb")
    edges = ParentEdges(Hosts(ha, hb))
    dying, spare = make_peer("dying", "ha"), make_peer("spare", "hb")
    edges.hand_out("c2", [dying, spare], child_host="hc")
    edges.hand_out("c1", [dying], child_host="hc")
    assert edges.drop_parent("dying") == ("c1", "c2")  # sorted
    assert edges.parents_of("c2") == ("spare",)
    assert edges.parents_of("c1") == ()
    assert edges.children_of("dying") == ()
    assert not edges.has_children("dying")
    assert (ha.concurrent_upload_count, hb.concurrent_upload_count) == (0, 1)
    assert edges.slots_by_host() == {"hb": 1}
    assert edges.drop_parent("dying") == ()
    assert edges.edge_count() == 1


def test_the_slots_of_a_gone_host_are_not_counted_anywhere() -> None:
    hosts = Hosts(make_host("ha"))
    edges = ParentEdges(hosts)
    edges.hand_out("c", [make_peer("a", "ha")], child_host="hc")
    gone = hosts.by_id.pop("ha")
    assert edges.drop_parent("a") == ("c",)
    assert gone.concurrent_upload_count == 1  # the record went with its count


def chain(length: int) -> ParentEdges:
    """n0 <- n1 <- ... : node i has node i + 1 as its only parent."""
    edges = ParentEdges(Hosts())
    for i in range(length):
        edges.hand_out(f"n{i}", [make_peer(f"n{i + 1}", "hx")], child_host="hc")
    return edges


def test_reaches_finds_the_node_itself_and_its_ancestors_only() -> None:
    edges = chain(3)
    assert edges.reaches("n0", "n0")
    assert edges.reaches("n0", "n3")
    assert edges.reaches("n1", "n2")
    assert not edges.reaches("n2", "n0")
    assert not edges.reaches("n3", "n0")
    assert not edges.reaches("n0", "elsewhere")
    diamond = ParentEdges(Hosts())
    diamond.hand_out("c", [make_peer("l", "h1"), make_peer("r", "h2")], child_host="hc")
    diamond.hand_out("l", [make_peer("top", "h3")], child_host="hc")
    diamond.hand_out("r", [make_peer("top", "h3")], child_host="hc")
    assert diamond.reaches("c", "top")
    assert diamond.reaches("c", "r")
    assert not diamond.reaches("l", "r")


def test_a_walk_longer_than_the_limit_answers_yes() -> None:
    # n0 has 10 ancestors; a walk that may hold 11 nodes sees them all.
    assert not chain(10).reaches("n0", "elsewhere", limit=11)
    assert chain(10).reaches("n0", "elsewhere", limit=10)
    assert chain(10).reaches("n0", "n10", limit=11)
    assert MAX_ANCESTOR_WALK == 256
    assert not chain(MAX_ANCESTOR_WALK - 1).reaches("n0", "elsewhere")
    assert chain(MAX_ANCESTOR_WALK).reaches("n0", "elsewhere")


def test_a_diamond_counts_each_ancestor_once_towards_the_limit() -> None:
    diamond = ParentEdges(Hosts())
    diamond.hand_out("c", [make_peer("l", "h1"), make_peer("r", "h2")], child_host="hc")
    diamond.hand_out("l", [make_peer("top", "h3")], child_host="hc")
    diamond.hand_out("r", [make_peer("top", "h3")], child_host="hc")
    assert not diamond.reaches("c", "elsewhere", limit=4)  # c, l, r, top
    assert diamond.reaches("c", "elsewhere", limit=3)


def test_descendants_are_the_node_and_everyone_below_it() -> None:
    edges = chain(3)  # n0 <- n1 <- n2 <- n3
    assert edges.descendants("n3") == {"n3", "n2", "n1", "n0"}
    assert edges.descendants("n1") == {"n1", "n0"}
    assert edges.descendants("n0") == {"n0"}  # a leaf: one look-up
    assert edges.descendants("elsewhere") == {"elsewhere"}
    diamond = ParentEdges(Hosts())
    diamond.hand_out("c", [make_peer("l", "h1"), make_peer("r", "h2")], child_host="hc")
    diamond.hand_out("l", [make_peer("top", "h3")], child_host="hc")
    diamond.hand_out("r", [make_peer("top", "h3")], child_host="hc")
    assert diamond.descendants("top") == {"top", "l", "r", "c"}
    assert diamond.descendants("top", limit=4) == {"top", "l", "r", "c"}
    assert diamond.descendants("top", limit=3) is None  # unknown: the caller walks up instead
    assert MAX_DESCENDANT_WALK == 4096


def test_descendants_answer_every_cycle_check_as_the_walk_up_does() -> None:
    rng = random.Random(7)
    for _ in range(50):
        edges = ParentEdges(Hosts())
        nodes = [f"n{i}" for i in range(12)]
        for child in nodes:
            # Parents only among earlier nodes: a DAG, as decisions keep it.
            earlier = nodes[: nodes.index(child)]
            parents = rng.sample(earlier, min(len(earlier), rng.randint(0, 3)))
            edges.hand_out(child, [make_peer(p, f"h{p}") for p in parents], child_host="hc")
        for child in nodes:
            below = edges.descendants(child)
            assert below is not None
            for candidate in nodes:
                assert (candidate in below) == edges.reaches(candidate, child)


# --- feeders ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("state", "pieces", "feeds"),
    [
        (PeerState.RUNNING, 1, True),
        (PeerState.RUNNING, 0, False),
        (PeerState.BACK_TO_SOURCE, 0, True),
        (PeerState.SUCCEEDED, 0, True),
        (PeerState.SUCCEEDED, 2, True),
        (PeerState.PENDING, 1, False),
        (PeerState.RECEIVED_NORMAL, 1, False),
        (PeerState.RECEIVED_EMPTY, 0, False),
        (PeerState.FAILED, 1, False),
        (PeerState.LEAVE, 1, False),
    ],
)
def test_who_can_feed(state: PeerState, pieces: int, feeds: bool) -> None:
    assert can_feed(make_peer("p", state=state, pieces=pieces)) is feeds
    assert {PeerState.RUNNING, PeerState.BACK_TO_SOURCE, PeerState.SUCCEEDED} == FEEDING_STATES


def test_an_indexed_set_keeps_its_members_through_swap_removal() -> None:
    items = IndexedSet()
    assert items.add("a")
    assert items.add("b")
    assert items.add("c")
    assert not items.add("b")
    assert len(items) == 3
    assert items.discard("a")  # c moves into a's place
    assert list(items) == ["c", "b"]
    assert items.discard("b")  # the last one: nothing moves
    assert list(items) == ["c"]
    assert not items.discard("b")
    assert items.add("d")
    assert items.discard("c")
    assert list(items) == ["d"]
    assert "d" in items
    assert "c" not in items
    assert items.discard("d")
    assert len(items) == 0
    assert list(items) == []


def test_iterating_an_indexed_set_survives_changes_to_it() -> None:
    items = IndexedSet()
    for name in "abcd":
        items.add(name)
    for name in items:
        items.discard(name)
    assert len(items) == 0


class CountingRandom(random.Random):
    """Counts how the sampler draws (its cost): whole samples and single numbers."""

    def __init__(self, seed: int) -> None:
        super().__init__(seed)
        self.samples = 0
        self.draws = 0

    def sample(self, population: Any, k: int, **kwargs: Any) -> list[Any]:
        self.samples += 1
        return super().sample(population, k, **kwargs)

    def random(self) -> float:
        self.draws += 1
        return super().random()


def filled(count: int) -> IndexedSet:
    items = IndexedSet()
    for i in range(count):
        items.add(f"x{i}")
    return items


@pytest.mark.parametrize(("count", "k"), [(3, 5), (5, 5), (9, 5), (10, 5), (11, 5), (1000, 5)])
def test_a_sample_is_k_distinct_members_or_all_of_them(count: int, k: int) -> None:
    items = filled(count)
    for seed in range(20):
        sample = items.sample(random.Random(seed), k)
        assert len(sample) == min(k, count)
        assert len(set(sample)) == len(sample)
        assert all(s in items for s in sample)


def test_a_large_set_is_sampled_in_about_k_draws() -> None:
    # Up to twice k members: one random.sample over them.
    rng = CountingRandom(1)
    filled(10).sample(rng, 5)
    assert rng.samples == 1
    # More: k index draws (plus the rare repeat), whatever the size.
    for count in (11, 100_000):
        rng = CountingRandom(1)
        filled(count).sample(rng, 5)
        assert rng.samples == 0
        assert 5 <= rng.draws <= 7


def test_large_samples_reach_every_member_evenly() -> None:
    items = filled(40)
    rng = random.Random(5)
    seen: dict[str, int] = {}
    for _ in range(2000):
        for item in items.sample(rng, 3):
            seen[item] = seen.get(item, 0) + 1
    assert set(seen) == set(items)  # the last member too
    assert min(seen.values()) > 100  # 150 each on average


def test_feeders_follow_the_peer_and_its_host() -> None:
    feeders = Feeders()
    a, b = make_peer("a"), make_peer("b", pieces=0)
    assert feeders.refresh(a, True)
    assert not feeders.refresh(a, True)  # no change
    assert not feeders.refresh(b, True)  # nothing to feed with, and not a member
    assert feeders.count("t") == 1
    assert feeders.members("t") == {"a"}
    assert "a" in feeders
    assert "b" not in feeders
    assert feeders.refresh(a, False)  # its host went
    assert "a" not in feeders
    assert feeders.count("t") == 0
    assert feeders.members("t") == frozenset()
    assert feeders.sample("t", random.Random(1), 4) == []
    b.finished_pieces.add(0)
    assert feeders.refresh(b, True)
    assert feeders.sample("t", random.Random(1), 4) == [b]  # the record itself


def test_feeders_are_kept_per_task() -> None:
    feeders = Feeders()
    feeders.add(make_peer("a"))
    feeders.add(make_peer("b", task_id="u"))
    feeders.add(make_peer("c", task_id="u"))
    assert (feeders.count("t"), feeders.count("u"), feeders.count("v")) == (1, 2, 0)
    assert sorted(p.id for p in feeders.sample("u", random.Random(1), 5)) == ["b", "c"]
    assert feeders.discard("b")
    assert not feeders.discard("b")
    assert feeders.members("u") == {"c"}
    assert feeders.discard("a")
    assert feeders.members("t") == frozenset()
    # a task with no feeder left is not kept
    assert feeders._by_task.keys() == {"u"}


# --- OriginBook -------------------------------------------------------------------------------


def test_back_to_source_counts_reservations_against_the_tasks_limit() -> None:
    book = OriginBook(per_host=1000)
    task = make_task(limit=2)
    first, second, third = make_peer("a"), make_peer("b"), make_peer("c")
    assert book.back_to_source_allowed(task, first)
    book.reserve(first)
    assert book.reserved("t") == 1
    assert book.has_reservation("a")
    assert book.back_to_source_allowed(task, second)
    book.reserve(second)
    assert not book.back_to_source_allowed(task, third)  # 0 counted + 2 reserved = 2
    assert book.back_to_source_allowed(task, first)  # already holds one
    book.release("a")
    assert not book.has_reservation("a")
    assert book.reserved("t") == 1
    assert book.back_to_source_allowed(task, third)
    task.back_to_source_count = 1  # 1 counted + 1 reserved = 2
    assert not book.back_to_source_allowed(task, third)
    task.back_to_source_count = 0
    task.back_to_source_limit = 1
    assert not book.back_to_source_allowed(task, third)


def test_a_peer_already_at_the_origin_may_stay_and_holds_no_reservation() -> None:
    book = OriginBook(per_host=1000)
    task = make_task(limit=1, count=1)
    there = make_peer("a", state=PeerState.BACK_TO_SOURCE)
    assert book.back_to_source_allowed(task, there)
    book.reserve(there)  # the task counts it already
    assert not book.has_reservation("a")
    assert book.reserved("t") == 0
    assert not book.back_to_source_allowed(task, make_peer("b"))


def test_releasing_reservations() -> None:
    book = OriginBook(per_host=1000)
    book.reserve(make_peer("a"))
    book.reserve(make_peer("b", task_id="u"))
    book.release("nobody")
    book.release("a")
    book.release("a")
    assert (book.reserved("t"), book.reserved("u")) == (0, 1)
    assert book.violations({"b"}) == []
    assert book._reserved.keys() == {"u"}  # a task with no reservation left is not kept


def test_seed_fetches_end_with_their_peer_or_their_host() -> None:
    book = OriginBook(per_host=1000)
    f1 = SeedFetch("t1", "seed-a", "s1", 1.0)
    f2 = SeedFetch("t2", "seed-a", "s2", 2.0)
    f3 = SeedFetch("t3", "seed-b", "s3", 3.0)
    for fetch in (f1, f2, f3):
        book.start_fetch(fetch)
    assert book.fetch_of("t1") == f1
    assert book.fetch_of("t9") is None
    book.end_fetch_of_peer("s1")
    book.end_fetch_of_peer("s1")
    book.end_fetch_of_peer("nobody")
    assert book.fetch_of("t1") is None
    assert book.fetch_of("t2") == f2
    book.end_fetches_of_host("seed-a")
    assert book.fetch_of("t2") is None
    assert book.fetch_of("t3") == f3
    book.end_fetches_of_host("seed-a")
    book.end_fetches_of_host("seed-b")
    assert book.fetch_of("t3") is None
    # a task can be fetched again, by another peer and host
    again = SeedFetch("t1", "seed-b", "s4", 4.0)
    book.start_fetch(again)
    assert book.fetch_of("t1") == again
    book.end_fetches_of_host("seed-b")
    assert book.fetch_of("t1") is None
    assert (book._fetches, book._fetch_of_peer, book._fetches_of_host) == ({}, {}, {})


def test_violations_name_the_peer_holding_a_reservation_after_it_went() -> None:
    book = OriginBook(per_host=1000)
    book.reserve(make_peer("a"))
    book.reserve(make_peer("b"))
    assert book.violations({"a", "b"}) == []
    assert book.violations({"b"}) == ["peer a holds a back-to-source reservation but is gone"]
    book._reserved["t"].add("ghost")
    assert book.violations({"a", "b"}) == ["back-to-source reservations disagree with their index"]


# --- Decision and ScheduleLimits --------------------------------------------------------------


def test_a_decision_carries_parents_exactly_when_it_says_parents() -> None:
    assert Decision(ScheduleAction.PARENTS, ("p",)).parents == ("p",)
    with pytest.raises(
        ValueError, match=r"^parents must be non-empty exactly when the action is parents$"
    ):
        Decision(ScheduleAction.PARENTS)
    for action in (ScheduleAction.BACK_TO_SOURCE, ScheduleAction.FAIL):
        with pytest.raises(
            ValueError, match=r"^parents must be non-empty exactly when the action is parents$"
        ):
            Decision(action, ("p",))
    with pytest.raises(
        ValueError, match=r"^parents must be non-empty exactly when the action is parents$"
    ):
        Decision(ScheduleAction.WAIT, ("p",), retry_after=1.0)


def test_retry_after_comes_with_wait_and_only_with_it() -> None:
    assert Decision(ScheduleAction.WAIT, retry_after=0.5).retry_after == 0.5
    message = "^retry_after comes with wait, and only with it$"
    with pytest.raises(ValueError, match=message):
        Decision(ScheduleAction.WAIT)
    with pytest.raises(ValueError, match=message):
        Decision(ScheduleAction.FAIL, retry_after=1.0)
    with pytest.raises(ValueError, match=message):
        Decision(ScheduleAction.PARENTS, ("p",), retry_after=1.0)
    assert Decision(ScheduleAction.FAIL).retry_after is None
    assert Decision(ScheduleAction.BACK_TO_SOURCE, message="m").message == "m"


@pytest.mark.parametrize(
    ("key", "minimum"),
    [
        ("candidate_parent_limit", 1),
        ("filter_parent_limit", 1),
        ("retry_back_to_source_limit", 0),
        ("retry_limit", 0),
    ],
)
def test_limits_are_integers_from_their_minimum(key: str, minimum: int) -> None:
    assert getattr(ScheduleLimits(**{key: minimum}), key) == minimum
    for bad in (minimum - 1, True, 2.0, "3"):
        message = f"{key} must be an integer >= {minimum}, got {bad!r}"
        with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
            ScheduleLimits(**{key: bad})


def test_the_integer_check_is_built_for_each_minimum() -> None:
    # ScheduleLimits builds its checks at import: call the builder to state it.
    attribute = attrs.fields(ScheduleLimits).retry_limit
    check = _at_least(2)
    check(None, attribute, 2)
    check(None, attribute, 7)
    for bad in (1, -3, True, 2.5, "2", None):
        message = f"retry_limit must be an integer >= 2, got {bad!r}"
        with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
            check(None, attribute, bad)


@pytest.mark.parametrize("bad", [0, -0.5, float("inf"), float("nan"), "1", None])
def test_retry_after_is_a_positive_finite_number_of_seconds(bad: object) -> None:
    message = f"retry_after must be a positive number of seconds, got {bad!r}"
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        ScheduleLimits(retry_after=bad)  # type: ignore[arg-type]


def test_retry_after_may_be_tiny_or_whole() -> None:
    assert ScheduleLimits(retry_after=1e-9).retry_after == 1e-9
    assert ScheduleLimits(retry_after=3).retry_after == 3


# === the decision, through the facade =========================================================

TASK = TaskInfo("t1", url="https://example.invalid/x", total_piece_count=10)
HOSTS = [HostInfo(f"host-{i}", f"10.0.0.{i}", concurrent_upload_limit=3) for i in range(12)]
SEEDS = [HostInfo(f"seed-{i}", f"10.0.1.{i}", type=HostType.SEED) for i in range(3)]


#: Every slot of a host open to the peers of one other host (tests of other rules).
WHOLE_SLOTS = RecordLimits(max_upload_share=1.0)


def new_state(
    *plugins: object,
    config: dict[str, Any] | None = None,
    seed: int = 1,
    limits: RecordLimits | None = None,
) -> Any:
    policies = load_policies(entrypoints=False, plugins=plugins, config=config)
    return SchedulerState(
        policies, now=0.0, rng=random.Random(seed), limits=limits or RecordLimits()
    )


def only_decision(events: Sequence[object]) -> Decision:
    (event,) = [e for e in events if isinstance(e, PeerScheduled)]
    return event.decision


def fetches(events: Sequence[object]) -> list[SeedFetchRequested]:
    return [e for e in events if isinstance(e, SeedFetchRequested)]


def register(
    state: SchedulerState, host: HostInfo, peer_id: str, *, limit: int = 200, task: TaskInfo = TASK
) -> None:
    if not state.has_host(host.id):
        state.announce_host(host, 0.0, interval=60)
    state.register_peer(peer_id, host.id, task, 1.0, back_to_source_limit=limit)


def join(state: SchedulerState, host: HostInfo, peer_id: str, **kwargs: Any) -> Decision:
    register(state, host, peer_id, **kwargs)
    decision = only_decision(state.schedule_peer(peer_id, 1.0))
    check_decision(state.view, peer_id, decision)
    return decision


def again(
    state: SchedulerState, peer_id: str, failed: Sequence[str] = (), now: float = 2.0
) -> Decision:
    decision = only_decision(state.reschedule_peer(peer_id, list(failed), now))
    check_decision(state.view, peer_id, decision)
    return decision


def feeder(
    state: SchedulerState, host: HostInfo, peer_id: str, pieces: int = 1, limit: int = 200
) -> None:
    """A peer that went to the origin and holds ``pieces`` pieces."""
    register(state, host, peer_id, limit=limit)
    state.back_to_source(peer_id, 1.0)
    if pieces:
        state.finish_pieces(peer_id, list(range(pieces)), 1.0)


# --- wait, origin, fail at the exact attempt boundaries -----------------------------------------

WAIT, ORIGIN, FAIL, PARENTS = (
    ScheduleAction.WAIT,
    ScheduleAction.BACK_TO_SOURCE,
    ScheduleAction.FAIL,
    ScheduleAction.PARENTS,
)


def blocked_origin(config: dict[str, Any] | None = None) -> SchedulerState:
    """A task whose single origin slot is reserved by ``first`` (nobody feeds yet)."""
    state = new_state(config=config)
    assert join(state, HOSTS[0], "first", limit=1).action is ORIGIN
    return state


def test_a_child_fails_after_more_than_five_waits_when_the_origin_is_taken() -> None:
    state = blocked_origin()
    decisions = [join(state, HOSTS[1], "child")]
    decisions += [again(state, "child", now=2.0 + i) for i in range(6)]
    assert [d.action for d in decisions] == [WAIT] * 6 + [FAIL]
    assert decisions[-1].message == "no parent after every retry"
    assert decisions[0].message == "no parent can feed the child yet"


def test_a_child_goes_to_the_origin_after_more_than_four_waits_when_it_may() -> None:
    state = blocked_origin()
    decisions = [join(state, HOSTS[1], "child")]
    decisions += [again(state, "child", now=2.0 + i) for i in range(4)]
    assert [d.action for d in decisions] == [WAIT] * 5
    state.fail_download("first", 6.0)  # the slot is free again, nobody feeds
    state.leave_peer("first", 6.0)
    register(state, HOSTS[2], "other")  # takes the free slot: nobody can feed soon
    assert only_decision(state.schedule_peer("other", 6.0)).action is ORIGIN
    state.back_to_source("other", 6.0)  # ... and uses it
    state.leave_peer("other", 6.5)  # a slot free, and nobody feeding
    # 5 waits (> 4): the origin, for having retried too often
    final = again(state, "child", now=7.0)
    assert final.action is ORIGIN
    assert final.message == "retried too often; fetch from the origin"


@pytest.mark.parametrize(("waits", "expected"), [(3, WAIT), (4, ORIGIN)])
def test_the_origin_comes_only_past_the_back_to_source_retry_limit(
    waits: int, expected: ScheduleAction
) -> None:
    """With 2 origin slots, a feeder about to exist and one slot free, only retries decide."""
    state = new_state(config={"evaluator": {"retry_back_to_source_limit": 3, "retry_limit": 9}})
    assert join(state, HOSTS[0], "first", limit=2).action is ORIGIN  # slot 1 reserved
    decisions = [join(state, HOSTS[1], "child", limit=2)]
    decisions += [again(state, "child", now=2.0 + i) for i in range(waits)]
    assert [d.action for d in decisions[:-1]] == [WAIT] * waits
    assert decisions[-1].action is expected


@pytest.mark.parametrize(("retries", "expected"), [(2, WAIT), (3, FAIL)])
def test_fail_comes_only_past_the_retry_limit(retries: int, expected: ScheduleAction) -> None:
    state = blocked_origin({"evaluator": {"retry_back_to_source_limit": 0, "retry_limit": 2}})
    decisions = [join(state, HOSTS[1], "child")]
    decisions += [again(state, "child", now=2.0 + i) for i in range(retries)]
    assert [d.action for d in decisions[:-1]] == [WAIT] * retries
    assert decisions[-1].action is expected


def test_a_reschedule_away_from_parents_counts_as_an_attempt() -> None:
    state = new_state(config={"evaluator": {"retry_back_to_source_limit": 0, "retry_limit": 1}})
    feeder(state, HOSTS[0], "parent", limit=1)  # the task's only origin slot
    assert join(state, HOSTS[1], "child").parents == ("parent",)
    # blocklisted, no parent left, no origin: 1 attempt is not past the limit
    assert again(state, "child", ["parent"]).action is WAIT  # then 2 attempts
    assert again(state, "child").action is FAIL


def test_a_reschedule_that_answers_a_wait_is_not_counted_twice() -> None:
    state = blocked_origin({"evaluator": {"retry_back_to_source_limit": 9, "retry_limit": 2}})
    assert join(state, HOSTS[1], "child").action is WAIT  # 1 attempt
    assert again(state, "child").action is WAIT  # its retry: 2
    assert again(state, "child").action is WAIT  # 3
    assert again(state, "child").action is FAIL  # 3 > 2


def test_retry_after_is_the_configured_wait_jittered_by_twenty_percent() -> None:
    state = blocked_origin({"evaluator": {"retry_after": "2s", "retry_limit": 1000}})
    register(state, HOSTS[1], "child")
    waits = [only_decision(state.schedule_peer("child", 1.0)).retry_after]
    waits += [again(state, "child", now=2.0 + i).retry_after for i in range(300)]
    assert all(w is not None and 1.6 <= w <= 2.4 for w in waits)
    values = [w for w in waits if w is not None]
    assert min(values) < 1.65
    assert max(values) > 2.35
    assert len(set(values)) > 250


# --- the origin when nobody can feed soon -----------------------------------------------------


def test_a_child_already_at_the_origin_is_sent_there_again_not_told_to_wait_for_itself() -> None:
    state = new_state()
    assert join(state, HOSTS[0], "first", limit=1).action is ORIGIN
    state.back_to_source("first", 1.5)  # it feeds now (at the origin), the only feeder
    decision = again(state, "first")
    assert decision.action is ORIGIN
    assert decision.message == "nobody can feed the task yet"


def test_a_reservation_makes_others_wait_and_a_feeder_makes_the_first_peer_wait() -> None:
    state = new_state()
    assert join(state, HOSTS[0], "first").action is ORIGIN
    assert join(state, HOSTS[1], "second").action is WAIT  # a reservation: fed soon
    other = new_state()
    feeder(other, HOSTS[0], "busy", pieces=1)
    other.announce_host(attrs.evolve(HOSTS[0], concurrent_upload_limit=0), 0.5)  # full
    assert join(other, HOSTS[1], "child").action is WAIT  # a feeder exists: no origin


def test_a_full_task_origin_means_waiting_even_for_the_first_peer() -> None:
    state = new_state()
    assert join(state, HOSTS[0], "first", limit=0).action is WAIT


# --- seeds ------------------------------------------------------------------------------------


def test_a_seed_fetch_is_asked_of_the_rendezvous_owner_with_the_tasks_figures() -> None:
    state = new_state()
    for seed in SEEDS:
        state.announce_host(seed, 0.0)
    task = TaskInfo("t1", "https://example.invalid/x", 1024, 10 * 1024, 10)
    register(state, HOSTS[0], "child", task=task)
    events = state.schedule_peer("child", 3.0)
    (fetch,) = fetches(events)
    owner = rendezvous_owner("t1", [s.id for s in SEEDS])
    assert fetch == SeedFetchRequested(owner, "t1", "seed-1-t1", task.url, 1024, 10 * 1024, 10, 3.0)
    decision = only_decision(events)
    assert decision.action is WAIT
    assert decision.message == f"seed host {owner} is fetching the task"


def test_each_seed_fetch_names_a_fresh_peer() -> None:
    state = new_state()
    state.announce_host(SEEDS[0], 0.0)
    register(state, HOSTS[0], "c1", task=TaskInfo("a"))
    register(state, HOSTS[1], "c2", task=TaskInfo("b"))
    (first,) = fetches(state.schedule_peer("c1", 1.0))
    (second,) = fetches(state.schedule_peer("c2", 1.0))
    assert (first.peer_id, second.peer_id) == ("seed-1-a", "seed-2-b")


def test_a_child_on_a_seed_host_fetches_from_the_origin_itself() -> None:
    state = new_state()
    state.announce_host(SEEDS[0], 0.0)
    state.announce_host(SEEDS[1], 0.0)
    register(state, SEEDS[0], "own")
    events = state.schedule_peer("own", 1.0)
    assert fetches(events) == []
    assert only_decision(events).action is ORIGIN


def test_a_peer_a_seed_registers_unasked_counts_as_its_fetch() -> None:
    state = new_state()
    state.announce_host(SEEDS[0], 0.0)
    register(state, SEEDS[0], "seed-peer")  # in flight: nobody else is asked
    events = (register(state, HOSTS[0], "child"), state.schedule_peer("child", 1.0))[1]
    assert fetches(events) == []
    assert only_decision(events).action is WAIT
    # it holds a piece: the fetch is over, and it is the parent
    state.back_to_source("seed-peer", 2.0)
    state.finish_pieces("seed-peer", [0], 2.0)
    assert again(state, "child").parents == ("seed-peer",)


def test_a_seed_fetch_ends_when_the_seed_peer_fails_or_its_host_goes() -> None:
    state = new_state()
    state.announce_host(SEEDS[0], 0.0)
    register(state, HOSTS[0], "child")
    (fetch,) = fetches(state.schedule_peer("child", 1.0))
    state.register_peer(fetch.peer_id, SEEDS[0].id, TASK, 1.5)
    state.fail_download(fetch.peer_id, 2.0)
    (refetch,) = fetches(state.reschedule_peer("child", [], 3.0))  # asked again
    assert refetch.peer_id == "seed-2-t1"
    state.disconnect_host(SEEDS[0].id, 4.0)  # the fetch ends, and no seed is connected
    decision = again(state, "child", now=5.0)
    assert decision.action is ORIGIN
    state.announce_host(SEEDS[0], 6.0)  # reconnects: a seed again
    register(state, HOSTS[1], "late", task=TaskInfo("t2"))
    assert len(fetches(state.schedule_peer("late", 6.0))) == 1


def test_an_evicted_seed_host_is_asked_no_more() -> None:
    state = new_state()
    state.announce_host(SEEDS[0], 0.0)
    state.evict(RecordKind.HOST, SEEDS[0].id, "admin", 0.5)
    register(state, HOSTS[0], "child")
    events = state.schedule_peer("child", 1.0)
    assert fetches(events) == []
    assert only_decision(events).action is ORIGIN


# --- parents: limits, slots, uploads ----------------------------------------------------------


def test_at_most_candidate_parent_limit_parents_best_first() -> None:
    state = new_state(config={"evaluator": {"candidate_parent_limit": 2}})
    for i in range(4):
        feeder(state, HOSTS[i], f"p{i}", pieces=i + 1)
    assert join(state, HOSTS[5], "child").parents == ("p3", "p2")


def test_a_host_with_one_free_slot_gives_one_parent_of_a_decision() -> None:
    state = new_state()
    small = HostInfo("small", "10.0.9.1", concurrent_upload_limit=1)
    feeder(state, small, "a", pieces=3)
    state.register_peer("b", small.id, TaskInfo("t1"), 1.0)
    state.back_to_source("b", 1.0)
    state.finish_pieces("b", [0, 1], 1.0)
    feeder(state, HOSTS[0], "c", pieces=1)
    decision = join(state, HOSTS[1], "child")
    assert decision.parents == ("a", "c")
    assert state.host(small.id).concurrent_upload_count == 1


def test_upload_successes_count_new_pieces_from_a_parent_handed_out() -> None:
    state = new_state()
    feeder(state, HOSTS[0], "parent", pieces=3)
    join(state, HOSTS[1], "child")
    state.start_download("child", 2.0)
    state.finish_pieces("child", [0, 1], 2.0, parent_id="parent", cost=1.0)
    state.finish_pieces("child", [1, 2], 2.5, parent_id="parent")  # 1 new
    host = state.host(HOSTS[0].id)
    assert host.upload_count == 3
    assert state.view.piece_costs_of("child") == (0.5,)  # no cost: no sample


def test_a_failed_parent_is_charged_once_and_the_child_is_never_its_own_blocker() -> None:
    state = new_state()
    feeder(state, HOSTS[0], "parent")
    join(state, HOSTS[1], "child")
    again(state, "child", ["parent", "parent", "child"])
    assert state.host(HOSTS[0].id).upload_failed_count == 1
    assert state.view.blocked_parents_of("child") == {"parent"}
    assert state.host(HOSTS[0].id).concurrent_upload_count == 0


def test_failed_parents_must_be_peer_ids() -> None:
    state = new_state()
    register(state, HOSTS[1], "child")
    with pytest.raises(TypeError, match=r"^failed_parents must be peer ids$"):
        state.reschedule_peer("child", ["ok", 3], 1.0)  # type: ignore[list-item]
    assert state.view.blocked_parents_of("child") == frozenset()


def test_request_errors_name_the_peer() -> None:
    state = new_state()
    register(state, HOSTS[1], "child")
    with pytest.raises(NotFound, match=r"^peer 'child' not found$"):
        state.schedule_peer("child", 1.0, as_host=HOSTS[0].id)
    with pytest.raises(NotFound, match=r"^peer 'child' not found$"):
        state.reschedule_peer("child", [], 1.0, as_host=HOSTS[0].id)
    assert only_decision(state.schedule_peer("child", 1.0, as_host=HOSTS[1].id)).action is ORIGIN
    state.fail_download("child", 2.0)
    with pytest.raises(IllegalTransition) as caught:
        state.schedule_peer("child", 3.0)
    assert (caught.value.machine, caught.value.state, caught.value.event) == (
        "peer",
        "failed",
        "schedule",
    )
    with pytest.raises(IllegalTransition) as caught:
        state.reschedule_peer("child", [], 3.0)
    assert (caught.value.machine, caught.value.state, caught.value.event) == (
        "peer",
        "failed",
        "reschedule",
    )


def test_a_pending_peer_may_not_ask_but_every_downloading_state_may() -> None:
    assert {
        PeerState.RECEIVED_EMPTY,
        PeerState.RECEIVED_TINY,
        PeerState.RECEIVED_SMALL,
        PeerState.RECEIVED_NORMAL,
        PeerState.RUNNING,
        PeerState.BACK_TO_SOURCE,
    } == CHILD_STATES


# --- pushes -----------------------------------------------------------------------------------


def test_a_failed_parent_pushes_and_its_slots_are_freed() -> None:
    state = new_state()
    feeder(state, HOSTS[0], "dying")
    feeder(state, HOSTS[1], "spare")
    join(state, HOSTS[2], "child")
    state.fail_download("dying", 5.0)
    assert state.host(HOSTS[0].id).concurrent_upload_count == 0
    assert state.parents_of("child") == ("spare",)


def test_an_ended_child_gives_back_its_slots_and_its_reservation() -> None:
    state = new_state()
    assert join(state, HOSTS[0], "first", limit=1).action is ORIGIN
    state.fail_download("first", 2.0)  # reserved, never reported: the slot is free again
    assert join(state, HOSTS[1], "second", limit=1).action is ORIGIN
    feeder(state, HOSTS[2], "parent")
    join(state, HOSTS[3], "child")
    state.fail_download("child", 3.0)
    assert state.host(HOSTS[2].id).concurrent_upload_count == 0
    assert state.invariant_violations() == []


def test_no_push_to_a_child_whose_host_is_disconnected() -> None:
    state = new_state()
    feeder(state, HOSTS[0], "parent")
    feeder(state, HOSTS[3], "spare")
    join(state, HOSTS[1], "a-child")
    join(state, HOSTS[2], "b-child")
    state.disconnect_host(HOSTS[1].id, 2.0)
    pushes = [e for e in state.fail_download("parent", 3.0) if isinstance(e, PeerScheduled)]
    assert [p.peer_id for p in pushes] == ["b-child"]  # the other children still are


class Votes:
    """Votes on pushes and remembers every lost parent it was asked about."""

    name = "votes"

    def __init__(self, answer: bool) -> None:
        self.answer = answer
        self.asked: list[tuple[str, str]] = []
        self.seen: list[tuple[bool, float]] = []

    @hookimpl
    def scheduler_proactive_push(
        self, child: Peer, lost_parent: Peer, view: StateView, now: float
    ) -> bool:
        self.asked.append((child.id, lost_parent.id))
        self.seen.append((view.has_peer(child.id), now))
        return self.answer


@pytest.mark.parametrize("answer", [True, False])
def test_every_lost_parent_is_put_to_the_plugins_and_one_no_stops_the_push(answer: bool) -> None:
    votes = Votes(answer)
    state = new_state(votes, limits=WHOLE_SLOTS)
    feeder(state, HOSTS[0], "a")
    state.register_peer("b", HOSTS[0].id, TaskInfo("t1"), 1.0)
    state.back_to_source("b", 1.0)
    join(state, HOSTS[2], "child")
    events = state.disconnect_host(HOSTS[0].id, 5.0)
    assert sorted(votes.asked) == [("child", "a"), ("child", "b")]
    pushes = [e for e in events if isinstance(e, PeerScheduled)]
    assert len(pushes) == (1 if answer else 0)


def test_a_reconnected_host_feeds_again() -> None:
    state = new_state()
    feeder(state, HOSTS[0], "parent")
    state.disconnect_host(HOSTS[0].id, 2.0)
    assert state.view.feeder_count_of_task("t1") == 0
    state.announce_host(HOSTS[0], 3.0, interval=60)
    assert state.view.feeder_count_of_task("t1") == 1
    assert join(state, HOSTS[1], "child").parents == ("parent",)


# --- the bookkeeping is checked -----------------------------------------------------------------


def test_invariant_violations_name_what_disagrees() -> None:
    state = new_state()
    feeder(state, HOSTS[0], "parent")
    join(state, HOSTS[1], "child")
    assert state.invariant_violations() == []
    scheduling = state._pipeline
    host = state.host(HOSTS[0].id)
    host.concurrent_upload_count += 2
    assert f"host {host.id}: 3 upload slots held, 1 handed-out edges" in (
        state.invariant_violations()
    )
    host.concurrent_upload_count -= 2
    scheduling.feeders.discard("parent")
    assert state.invariant_violations() == ["peer parent: feeder index says False"]
    scheduling.feeders.add(state.peer("child"))
    assert "peer child: feeder index says True" in state.invariant_violations()
    scheduling.feeders.discard("child")
    scheduling.feeders.add(state.peer("parent"))
    scheduling.edges._parents["child"] = ("parent", "ghost")
    assert "child child holds evicted parent ghost" in state.invariant_violations()
    scheduling.edges._parents["child"] = ("parent",)
    scheduling.edges._pair_slots[(HOSTS[0].id, HOSTS[2].id)] = 1
    assert state.invariant_violations() == [
        "slots held per (parent host, child host) disagree with the edges"
    ]
    del scheduling.edges._pair_slots[(HOSTS[0].id, HOSTS[2].id)]
    scheduling.peers["ghost"] = state.peer("child")
    assert state.invariant_violations() == ["scheduling tracks other peers than the ledger holds"]


def test_a_slot_held_without_an_edge_is_named() -> None:
    state = new_state()
    state.announce_host(HOSTS[0], 0.0)
    host = state.host(HOSTS[0].id)
    host.concurrent_upload_count = 1
    assert state.invariant_violations() == [
        f"host {host.id}: 1 upload slots held, 0 handed-out edges"
    ]


# --- a peer that goes leaves nothing behind ---------------------------------------------------


def test_a_gone_peer_leaves_no_costs_blocklist_or_attempts() -> None:
    state = new_state(config={"evaluator": {"retry_back_to_source_limit": 0, "retry_limit": 0}})
    feeder(state, HOSTS[0], "parent", limit=1)
    join(state, HOSTS[1], "child")
    state.start_download("child", 2.0)
    state.finish_pieces("child", [0], 2.0, parent_id="parent", cost=1.0)
    again(state, "child", ["parent"])  # blocklisted, 1 attempt
    state.leave_peer("child", 3.0)
    assert state.view.piece_costs_of("child") == ()
    assert state.view.blocked_parents_of("child") == frozenset()
    # the same id registered again starts afresh: no attempt, no blocklist
    register(state, HOSTS[1], "child")
    assert only_decision(state.schedule_peer("child", 4.0)).parents == ("parent",)


def test_a_seed_peer_that_leaves_before_a_piece_ends_the_fetch() -> None:
    state = new_state()
    state.announce_host(SEEDS[0], 0.0)
    register(state, HOSTS[0], "child")
    (fetch,) = fetches(state.schedule_peer("child", 1.0))
    state.register_peer(fetch.peer_id, SEEDS[0].id, TASK, 1.5)
    state.leave_peer(fetch.peer_id, 2.0)
    (refetch,) = fetches(state.reschedule_peer("child", [], 3.0))
    assert refetch.peer_id == "seed-2-t1"


@pytest.mark.parametrize("how", ["leave", "evict", "fail"])
def test_the_plugins_are_told_which_parent_was_lost(how: str) -> None:
    votes = Votes(True)
    state = new_state(votes)
    feeder(state, HOSTS[0], "parent")
    feeder(state, HOSTS[1], "spare")
    join(state, HOSTS[2], "child")
    if how == "leave":
        state.leave_peer("parent", 5.0)
    elif how == "evict":
        state.evict(RecordKind.PEER, "parent", "admin", 5.0)
    else:
        state.fail_download("parent", 5.0)
    assert votes.asked == [("child", "parent")]
    assert votes.seen == [(True, 5.0)]
    assert state.policies.errors == {}
    assert state.parents_of("child") == ("spare",)


def test_a_peer_registered_again_under_a_gone_ids_name_has_no_attempts() -> None:
    state = blocked_origin({"evaluator": {"retry_back_to_source_limit": 9, "retry_limit": 1}})
    assert join(state, HOSTS[1], "child").action is WAIT  # 1 attempt
    assert again(state, "child").action is WAIT  # 2
    state.leave_peer("child", 3.0)
    assert join(state, HOSTS[1], "child").action is WAIT  # 0 > 1 is false: not fail


# --- attempts: what counts, exactly -----------------------------------------------------------


def test_the_first_decision_of_a_child_has_no_attempt_behind_it() -> None:
    state = new_state(config={"evaluator": {"retry_back_to_source_limit": 0}})
    decision = join(state, HOSTS[0], "first")
    assert decision.action is ORIGIN
    assert decision.message == "nobody can feed the task yet"  # not "retried too often"


def test_a_reschedule_away_from_parents_after_a_wait_counts_again() -> None:
    state = blocked_origin({"evaluator": {"retry_back_to_source_limit": 9, "retry_limit": 2}})
    actions = [join(state, HOSTS[1], "child").action]  # wait: 1 attempt
    state.back_to_source("first", 2.0)
    state.finish_pieces("first", [0], 2.0)
    actions.append(again(state, "child").action)  # the wait's retry: parents, still 1
    actions.append(again(state, "child", ["first"]).action)  # counted: 2, then wait: 3
    actions.append(again(state, "child").action)  # 3 > 2
    assert actions == [WAIT, PARENTS, WAIT, FAIL]


def test_every_reschedule_away_from_parents_counts() -> None:
    config = {"evaluator": {"candidate_parent_limit": 1, "retry_limit": 1}}
    state = new_state(config=config)
    feeder(state, HOSTS[0], "p0", pieces=4, limit=1)  # holds the task's only origin slot
    for i in (1, 2):
        register(state, HOSTS[i], f"p{i}")
        state.start_download(f"p{i}", 1.0)
        state.finish_pieces(f"p{i}", list(range(4 - i)), 1.0)
    decisions = [join(state, HOSTS[5], "child")]
    for _ in range(3):
        decisions.append(again(state, "child", decisions[-1].parents))
    assert [d.parents for d in decisions[:3]] == [("p0",), ("p1",), ("p2",)]
    assert decisions[3].action is FAIL  # 3 reschedules > 1


def test_a_child_registered_again_may_reschedule_before_its_first_decision() -> None:
    state = blocked_origin({"evaluator": {"retry_back_to_source_limit": 9, "retry_limit": 1}})
    assert join(state, HOSTS[1], "child").action is WAIT  # 1 attempt
    state.leave_peer("child", 2.0)
    register(state, HOSTS[1], "child")
    # no wait of its own to answer: the reschedule counts (1), and the wait (2)
    assert again(state, "child", now=3.0).action is WAIT
    assert again(state, "child", now=4.0).action is FAIL


def test_a_decision_event_names_the_child_its_host_task_time_and_cause() -> None:
    state = new_state()
    feeder(state, HOSTS[0], "parent")
    register(state, HOSTS[1], "child")
    (first,) = state.schedule_peer("child", 3.0)
    assert first == PeerScheduled(
        "child", HOSTS[1].id, "t1", Decision(PARENTS, ("parent",)), 3.0, "register", False
    )
    (second,) = state.reschedule_peer("child", ["parent"], 4.5)
    assert isinstance(second, PeerScheduled)
    assert (second.peer_id, second.host_id, second.task_id) == ("child", HOSTS[1].id, "t1")
    assert (second.at, second.cause, second.pushed) == (4.5, "reschedule", False)


def test_each_failure_of_a_parent_is_charged() -> None:
    state = new_state()
    feeder(state, HOSTS[0], "parent")
    join(state, HOSTS[1], "c1")
    join(state, HOSTS[2], "c2")
    again(state, "c1", ["parent"])
    again(state, "c2", ["parent"])
    assert state.host(HOSTS[0].id).upload_failed_count == 2


# --- the reservation and the seed fetch last exactly as long as they should -------------------


def test_a_reservation_is_held_until_the_child_reports_the_origin_or_ends() -> None:
    state = new_state()
    assert join(state, HOSTS[0], "first").action is ORIGIN
    state.start_download("first", 1.5)  # told the origin, but it started otherwise
    assert join(state, HOSTS[1], "second").action is WAIT  # still reserved: fed soon


def test_a_seed_peer_holding_a_piece_ends_its_fetch_and_the_next_seed_peer_starts_one() -> None:
    state = new_state()
    state.announce_host(SEEDS[0], 0.0)
    state.announce_host(SEEDS[1], 0.0)
    register(state, SEEDS[0], "s-a")  # unasked: its fetch is in flight
    state.back_to_source("s-a", 1.0)
    state.finish_pieces("s-a", [0], 1.0)  # done fetching
    register(state, SEEDS[1], "s-b")  # a new fetch: in flight
    state.fail_download("s-a", 2.0)
    register(state, HOSTS[0], "child")
    events = state.schedule_peer("child", 3.0)
    assert fetches(events) == []  # s-b is on its way
    assert only_decision(events).action is WAIT


# --- what the plugins are given ---------------------------------------------------------------


class Spy:
    """Records what the decision hooks receive; replaces the selection when told to."""

    name = "spy"

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, tuple[str, ...], bool, float]] = []
        self.selection: list[str] | None = None

    @hookimpl
    def scheduler_candidate_veto(
        self, child: Peer, parent: Peer, view: StateView, now: float
    ) -> None:
        self.calls.append(("veto", child.id, (parent.id,), view.has_peer(parent.id), now))

    @hookimpl
    def scheduler_select_parents(
        self, child: Peer, candidates: Sequence[Peer], view: StateView, now: float
    ) -> list[str] | None:
        ids = tuple(c.id for c in candidates)
        self.calls.append(("select", child.id, ids, view.has_peer(child.id), now))
        return self.selection


def test_the_hooks_get_the_child_the_candidates_best_first_the_view_and_the_time() -> None:
    spy = Spy()
    state = new_state(spy)
    feeder(state, HOSTS[0], "few", pieces=1)
    feeder(state, HOSTS[1], "many", pieces=5)
    register(state, HOSTS[2], "child")
    state.schedule_peer("child", 7.0)
    vetoes = sorted(c for c in spy.calls if c[0] == "veto")
    assert vetoes == [
        ("veto", "child", ("few",), True, 7.0),
        ("veto", "child", ("many",), True, 7.0),
    ]
    assert [c for c in spy.calls if c[0] == "select"] == [
        ("select", "child", ("many", "few"), True, 7.0)
    ]


def test_a_replaced_selection_is_cut_to_the_parent_limit() -> None:
    spy = Spy()
    state = new_state(spy, config={"evaluator": {"candidate_parent_limit": 2}})
    for i in range(3):
        feeder(state, HOSTS[i], f"p{i}")
    spy.selection = ["p0", "p1", "p2"]
    assert join(state, HOSTS[5], "child").parents == ("p0", "p1")


def test_a_host_gives_no_more_parents_in_one_decision_than_its_free_slots() -> None:
    state = new_state(limits=WHOLE_SLOTS)
    pair = HostInfo("pair", "10.0.9.2", concurrent_upload_limit=2)
    for name in ("x", "y", "z"):
        register(state, pair, name)
        state.back_to_source(name, 1.0)
        state.finish_pieces(name, [0], 1.0)
    decision = join(state, HOSTS[1], "child")
    assert len(decision.parents) == 2
    assert state.host(pair.id).concurrent_upload_count == 2


def test_a_seed_peer_registered_unasked_ends_its_fetch_when_its_host_goes() -> None:
    state = new_state()
    state.announce_host(SEEDS[0], 0.0)
    register(state, SEEDS[0], "s-a")  # its fetch is in flight
    state.disconnect_host(SEEDS[0].id, 2.0)
    register(state, HOSTS[0], "child")
    assert only_decision(state.schedule_peer("child", 3.0)).action is ORIGIN


def test_the_pipeline_and_its_follow_up_need_a_view_before_they_act() -> None:
    pipeline = DecisionPipeline(PolicySet.from_plugins([]), None, lambda host_id: None)
    with pytest.raises(RuntimeError, match=r"^the decision pipeline is not connected to a view$"):
        _ = pipeline.view
    with pytest.raises(RuntimeError, match=r"^the follow-up is not connected to a view$"):
        _ = FollowUp(pipeline).view


def waits_with(rng: random.Random | None) -> list[float | None]:
    policies = load_policies(entrypoints=False, config={"evaluator": {"retry_limit": 100}})
    state = SchedulerState(policies, now=0.0, rng=rng)
    assert join(state, HOSTS[0], "first", limit=1).action is ORIGIN
    waits = [join(state, HOSTS[1], "child").retry_after]
    return waits + [again(state, "child", now=2.0 + i).retry_after for i in range(5)]


def test_the_jitter_comes_from_the_random_source_given() -> None:
    assert waits_with(random.Random(7)) == waits_with(random.Random(7))
    assert waits_with(random.Random(7)) != waits_with(random.Random(8))
    unseeded = waits_with(None)  # a fresh source of its own
    assert all(w is not None and 0.4 <= w <= 0.6 for w in unseeded)


def test_a_wait_after_a_push_is_answered_by_the_next_reschedule() -> None:
    state = new_state(config={"evaluator": {"retry_back_to_source_limit": 9, "retry_limit": 1}})
    feeder(state, HOSTS[0], "parent", limit=1)  # the only origin slot, counted
    assert join(state, HOSTS[1], "child").parents == ("parent",)
    (push,) = [e for e in state.disconnect_host(HOSTS[0].id, 2.0) if isinstance(e, PeerScheduled)]
    assert push.decision.action is WAIT  # 1 attempt
    assert again(state, "child", now=3.0).action is WAIT  # its retry: then 2
    assert again(state, "child", now=4.0).action is FAIL


def test_one_decision_takes_no_more_of_a_hosts_slots_than_the_childs_host_may_hold() -> None:
    big = HostInfo("big", "10.0.2.1", concurrent_upload_limit=8)  # a quarter: 2 per host
    state = new_state()
    for peer_id in ("b1", "b2", "b3"):
        feeder(state, big, peer_id)
    decision = join(state, HOSTS[1], "child")
    assert decision.action is PARENTS
    assert len(decision.parents) == 2  # three could feed, the share stops the third
    assert state.host(big.id).concurrent_upload_count == 2
