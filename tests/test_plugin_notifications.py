"""What a plugin hears: failed parents, peer state changes, and deadlines that follow them."""

from __future__ import annotations

import logging
import random
from typing import Any

from scheduler import hookimpl, log_fields
from scheduler.core import (
    Eviction,
    Expiry,
    Host,
    HostInfo,
    Peer,
    PeerState,
    RecordKind,
    SchedulerState,
    StateView,
    TaskInfo,
)
from scheduler.core._policy import MAX_VETO_REASONS, OTHER_REASON
from scheduler.policies import load_policies
from scheduler.service._logging import TextFormatter

TASK = TaskInfo("t1", url="https://example.invalid/x", total_piece_count=10)
PARENT = HostInfo("parent-host", "10.0.0.1")
CHILDREN = [HostInfo(f"child-{i}", f"10.0.1.{i}") for i in range(4)]


class Listener:
    """Records every notification, and quarantines a host after two charged failures."""

    name = "listener"

    def __init__(self) -> None:
        self.failed: list[tuple[str, str, str, bool, float]] = []
        self.states: list[tuple[str, PeerState, PeerState, float]] = []
        #: The view each failed-parent notification came with.
        self.views: list[StateView] = []
        #: ``(host id, now)`` of every host deadline asked for.
        self.host_asks: list[tuple[str, float]] = []
        #: ``(peer id, now)`` of every peer deadline asked for.
        self.peer_asks: list[tuple[str, float]] = []

    @hookimpl
    def scheduler_parent_failed(  # noqa: PLR0917 - hooks are called by keyword
        self,
        child: Peer,
        parent: Peer,
        reporter: Host,
        charged: bool,
        view: StateView,
        now: float,
    ) -> None:
        self.failed.append((child.id, parent.id, reporter.id, charged, now))
        self.views.append(view)

    @hookimpl
    def scheduler_peer_expiry(self, peer: Peer, now: float) -> Expiry | None:
        self.peer_asks.append((peer.id, now))
        return None

    @hookimpl
    def scheduler_peer_state_changed(
        self, peer: Peer, old_state: PeerState, view: StateView, now: float
    ) -> None:
        assert view.peer(peer.id) is peer
        self.states.append((peer.id, old_state, peer.state, now))

    @hookimpl
    def scheduler_host_expiry(self, host: Host, now: float) -> Expiry | None:
        self.host_asks.append((host.id, now))
        if host.upload_failed_count >= 2:
            return Expiry(now + 1.0, "quarantine")
        return None


def new_state(*plugins: object) -> Any:
    policies = load_policies(entrypoints=False, plugins=plugins)
    return SchedulerState(policies, now=0.0, rng=random.Random(1))


def parent_with_children(state: SchedulerState, count: int) -> None:
    state.announce_host(PARENT, 0.0, interval=60)
    state.register_peer("parent", PARENT.id, TASK, 1.0)
    state.back_to_source("parent", 1.0)
    state.finish_pieces("parent", [0], 1.0)
    for i in range(count):
        state.announce_host(CHILDREN[i], 0.0, interval=60)
        state.register_peer(f"c{i}", CHILDREN[i].id, TASK, 2.0)
        state.schedule_peer(f"c{i}", 2.0)


def test_a_failed_parent_reaches_the_plugins_with_its_reporter_and_whether_it_was_charged() -> None:
    listener = Listener()
    state = new_state(listener)
    parent_with_children(state, 2)
    state.reschedule_peer("c0", ["parent", "nobody"], 3.0)  # "nobody" is never heard
    state.reschedule_peer("c0", ["parent"], 3.5)  # the same reporting host: not charged again
    state.reschedule_peer("c1", ["parent"], 4.0)
    assert listener.failed == [
        ("c0", "parent", CHILDREN[0].id, True, 3.0),
        ("c0", "parent", CHILDREN[0].id, False, 3.5),
        ("c1", "parent", CHILDREN[1].id, True, 4.0),
    ]
    assert listener.views == [state.view] * 3
    # Only a charged report moves what a policy reads: the host's deadline is asked
    # again then, and not after the uncharged one.
    assert (PARENT.id, 3.0) in listener.host_asks
    assert (PARENT.id, 3.5) not in listener.host_asks


def test_handing_out_parents_asks_for_the_childs_deadline_again_then() -> None:
    listener = Listener()
    state = new_state(listener)
    parent_with_children(state, 0)
    state.announce_host(CHILDREN[0], 0.0, interval=60)
    state.register_peer("c0", CHILDREN[0].id, TASK, 2.0)
    state.schedule_peer("c0", 2.5)  # the start timeout counts from here
    assert listener.peer_asks[-1] == ("c0", 2.5)


def test_a_reported_parent_not_handed_out_again_is_heard_uncharged() -> None:
    listener = Listener()
    state = new_state(listener)
    parent_with_children(state, 1)
    state.reschedule_peer("c0", ["parent"], 3.0)  # blocklisted, the child holds no parent now
    state.reschedule_peer("c0", ["parent"], 3.5)  # still one handed to it earlier
    assert [entry[3] for entry in listener.failed] == [True, False]


def test_the_parent_hosts_deadline_follows_its_failure_count_at_once() -> None:
    state = new_state(Listener())
    parent_with_children(state, 2)
    before = state.deadline_of(RecordKind.HOST, PARENT.id)
    assert before.reason == "ttl_expired"
    state.reschedule_peer("c0", ["parent"], 3.0)
    assert state.deadline_of(RecordKind.HOST, PARENT.id) == before
    state.reschedule_peer("c1", ["parent"], 4.0)
    assert state.deadline_of(RecordKind.HOST, PARENT.id) == Expiry(5.0, "quarantine")
    evicted = [e for e in state.run_gc(5.0) if isinstance(e, Eviction)]
    assert (evicted[-1].record_id, evicted[-1].reason) == (PARENT.id, "quarantine")


def test_every_move_of_a_peers_lifecycle_is_heard() -> None:
    listener = Listener()
    state = new_state(listener)
    state.announce_host(PARENT, 0.0, interval=60)
    state.register_peer("a", PARENT.id, TASK, 1.0)
    state.start_download("a", 2.0)
    state.finish_download("a", 3.0)
    state.register_peer("b", PARENT.id, TaskInfo("t2"), 4.0)
    state.back_to_source("b", 5.0)
    state.fail_download("b", 6.0)
    assert listener.states == [
        ("a", PeerState.PENDING, PeerState.RECEIVED_NORMAL, 1.0),
        ("a", PeerState.RECEIVED_NORMAL, PeerState.RUNNING, 2.0),
        ("a", PeerState.RUNNING, PeerState.SUCCEEDED, 3.0),
        ("b", PeerState.PENDING, PeerState.RECEIVED_NORMAL, 4.0),
        ("b", PeerState.RECEIVED_NORMAL, PeerState.BACK_TO_SOURCE, 5.0),
        ("b", PeerState.BACK_TO_SOURCE, PeerState.FAILED, 6.0),
    ]
    state.leave_peer("a", 7.0)  # an eviction is scheduler_evicted's, not a state change
    assert len(listener.states) == 6


def test_a_listener_that_raises_is_contained() -> None:
    class Broken:
        name = "broken"

        @hookimpl
        def scheduler_parent_failed(self) -> None:
            raise RuntimeError("bug")

        @hookimpl
        def scheduler_peer_state_changed(self) -> None:
            raise RuntimeError("bug")

    state = new_state(Broken())
    parent_with_children(state, 1)
    state.reschedule_peer("c0", ["parent"], 3.0)
    errors = state.policies.errors
    assert errors[("broken", "scheduler_parent_failed")] == 1
    # The parent's register and back_to_source, the child's register.
    assert errors[("broken", "scheduler_peer_state_changed")] == 3
    assert state.host(PARENT.id).upload_failed_count == 1
    assert state.invariant_violations() == []


# --- vetoes are counted, wall time is one call away ------------------------------------------


class Vetoes:
    name = "vetoes"

    @hookimpl
    def scheduler_candidate_veto(self, parent: Peer) -> str | None:
        return f"refused {parent.id}"  # a reason per candidate: the count stays bounded


def test_every_veto_is_counted_by_plugin_and_reason_with_the_reasons_bounded() -> None:
    heard: list[tuple[str, str]] = []
    state = new_state(Vetoes())
    state.policies.on_veto = lambda plugin, reason: heard.append((plugin, reason))
    for i in range(MAX_VETO_REASONS + 5):
        host = HostInfo(f"feeder-{i}", f"10.0.2.{i}")
        state.announce_host(host, 0.0, interval=60)
        state.register_peer(f"f{i:02d}", host.id, TASK, 1.0)
        state.back_to_source(f"f{i:02d}", 1.0)
    state.announce_host(CHILDREN[0], 0.0, interval=60)
    state.register_peer("child", CHILDREN[0].id, TASK, 2.0)
    state.schedule_peer("child", 2.0)
    for n in range(1, 6):  # each decision samples up to 15 of the feeders
        state.reschedule_peer("child", [], 2.0 + n)
    vetoes = state.policies.vetoes
    assert sum(vetoes.values()) == len(heard) > MAX_VETO_REASONS
    assert {plugin for plugin, _ in vetoes} == {"vetoes"}
    assert len(vetoes) <= MAX_VETO_REASONS + 1
    assert all(r.startswith("refused f") or r == OTHER_REASON for _, r in vetoes)
    assert state.parents_of("child") == ()


def test_the_view_turns_now_into_wall_time() -> None:
    policies = load_policies(entrypoints=False)
    state = SchedulerState(policies, now=5.0, wall_offset=1_700_000_000.0)
    assert state.view.wall_time(5.0) == 1_700_000_005.0
    assert SchedulerState(policies).view.wall_time(12.5) == 12.5


def test_log_fields_is_public_and_the_formatters_write_it() -> None:
    record = logging.LogRecord("scheduler.plugins.q", logging.INFO, "f", 1, "quarantined", (), None)
    record.__dict__.update(log_fields(host_id="10.0.0.1-h a", failures=3))
    line = TextFormatter().format(record)
    assert line.endswith('scheduler.plugins.q: quarantined host_id="10.0.0.1-h a" failures=3')
