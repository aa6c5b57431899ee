"""The rules of each built-in policy, stated one by one (and each setting's validation).

Each policy is asked directly, through its plain method, about records in a real
state (``state.view``) that no policy evicts, so a test reads as the policy's
documented rule. ``tests/test_policies.py`` covers loading and composition.
"""

from __future__ import annotations

from typing import Any, TypeVar

import pytest

from scheduler.core import (
    ConfigError,
    Expiry,
    Host,
    HostInfo,
    HostState,
    HostType,
    Peer,
    PeerState,
    PolicySet,
    Reason,
    RecordKind,
    SchedulerState,
    TaskInfo,
    Verdict,
)
from scheduler.policies import (
    BUILTIN_PLUGINS,
    AnnounceTTL,
    Capacity,
    DisconnectGrace,
    HostnameUnique,
    PeerLifetime,
    TaskIdleTTL,
)
from scheduler.testing import check_plugin_settings

P = TypeVar("P")

A = HostInfo("alpha", "10.0.0.1")


def configured(cls: type[P], **section: Any) -> P:
    """A fresh ``cls()`` configured through the real ``scheduler_configure`` hook."""
    plugin = cls()
    PolicySet.from_plugins([plugin], config={plugin.name: section})  # type: ignore[attr-defined]
    return plugin


def bare_state() -> SchedulerState:
    """A state with no policies: records stay until a test removes them."""
    return SchedulerState(PolicySet.from_plugins([]), now=0.0)


def make_host(state: HostState, disconnected_at: float | None) -> Host:
    return Host(
        id=A.id,
        info=A,
        announce_interval=None,
        created_at=0.0,
        last_announce_at=0.0,
        last_contact_at=0.0,
        state=state,
        disconnected_at=disconnected_at,
    )


def make_peer(state: PeerState, *, updated_at: float, piece_updated_at: float) -> Peer:
    return Peer(
        id="p",
        task_id="t",
        host_id=A.id,
        created_at=0.0,
        updated_at=updated_at,
        piece_updated_at=piece_updated_at,
        state=state,
    )


# --- announce_ttl ------------------------------------------------------------------------


def test_announce_ttl_is_multiplier_intervals_or_host_ttl_after_the_last_announce() -> None:
    policy = configured(AnnounceTTL, host_ttl=600, multiplier=3)
    state = bare_state()
    state.announce_host(A, 100.0, interval=20.0)
    assert policy.host_expiry(state.view.host(A.id)) == Expiry(160.0, Reason.TTL_EXPIRED)
    state.announce_host(A, 130.0)  # no interval: host_ttl
    assert policy.host_expiry(state.view.host(A.id)) == Expiry(730.0, Reason.TTL_EXPIRED)


# --- disconnect_grace ---------------------------------------------------------------------


def test_a_disconnected_host_expires_reconnect_grace_after_the_drop() -> None:
    policy = configured(DisconnectGrace, reconnect_grace=7)
    host = make_host(HostState.DISCONNECTED, disconnected_at=40.0)
    assert policy.host_expiry(host) == Expiry(47.0, Reason.DISCONNECTED)


@pytest.mark.parametrize("state", [HostState.CONNECTED, HostState.LEFT])
def test_only_the_disconnected_state_starts_the_grace(state: HostState) -> None:
    # The state decides, not a disconnect time left on the record (e.g. on a copy).
    policy = configured(DisconnectGrace, reconnect_grace=7)
    assert policy.host_expiry(make_host(state, disconnected_at=40.0)) is None
    assert policy.host_expiry(make_host(state, disconnected_at=None)) is None


def test_a_disconnected_host_with_no_drop_time_has_no_grace_deadline() -> None:
    policy = configured(DisconnectGrace, reconnect_grace=7)
    assert policy.host_expiry(make_host(HostState.DISCONNECTED, disconnected_at=None)) is None


# --- hostname_unique ----------------------------------------------------------------------


def test_a_new_address_supersedes_the_same_hostname_and_type_only() -> None:
    state = bare_state()
    old = HostInfo("alpha", "10.0.0.1")
    old_seed = HostInfo("alpha", "10.0.0.1", type=HostType.SEED)
    other_name = HostInfo("beta", "10.0.0.3")
    new = HostInfo("alpha", "10.0.0.2")
    for info in (old, old_seed, other_name, new):
        state.announce_host(info, 0.0)
    policy = HostnameUnique()
    assert policy.superseded_by(state.view.host(new.id), state.view) == [old.id]


def test_a_seed_and_a_normal_daemon_on_one_machine_coexist() -> None:
    state = bare_state()
    normal = HostInfo("alpha", "10.0.0.1")
    seed = HostInfo("alpha", "10.0.0.1", type=HostType.SEED)
    state.announce_host(normal, 0.0)
    state.announce_host(seed, 0.0)
    policy = HostnameUnique()
    assert policy.superseded_by(state.view.host(seed.id), state.view) == []
    assert policy.superseded_by(state.view.host(normal.id), state.view) == []
    # And with the policy in force, announcing one never evicts the other.
    live = SchedulerState(PolicySet.from_plugins([HostnameUnique()]), now=0.0)
    live.announce_host(normal, 0.0)
    assert live.announce_host(seed, 1.0) != []
    live.announce_host(normal, 2.0)
    assert {h.id for h in live.view.hosts()} == {normal.id, seed.id}


# --- peer_lifetime -----------------------------------------------------------------------

LIFETIMES = {"peer_ttl": 1000, "piece_timeout": 100, "failed_peer_ttl": 30}


@pytest.mark.parametrize(
    "peer_state",
    [
        s
        for s in PeerState
        if s not in (PeerState.RUNNING, PeerState.BACK_TO_SOURCE, PeerState.FAILED)
    ],
)
def test_an_idle_peer_expires_peer_ttl_after_its_last_update(peer_state: PeerState) -> None:
    policy = configured(PeerLifetime, **LIFETIMES)
    peer = make_peer(peer_state, updated_at=50.0, piece_updated_at=0.0)
    assert policy.peer_expiry(peer) == Expiry(1050.0, Reason.TTL_EXPIRED)


def test_a_failed_peer_expires_failed_peer_ttl_after_it_failed() -> None:
    policy = configured(PeerLifetime, **LIFETIMES)
    peer = make_peer(PeerState.FAILED, updated_at=50.0, piece_updated_at=0.0)
    assert policy.peer_expiry(peer) == Expiry(80.0, Reason.FAILED)


@pytest.mark.parametrize("peer_state", [PeerState.RUNNING, PeerState.BACK_TO_SOURCE])
def test_a_downloading_peer_with_no_progress_expires_piece_timeout_after_its_last_piece(
    peer_state: PeerState,
) -> None:
    policy = configured(PeerLifetime, **LIFETIMES)
    peer = make_peer(peer_state, updated_at=500.0, piece_updated_at=200.0)
    assert policy.peer_expiry(peer) == Expiry(300.0, Reason.PIECE_TIMEOUT)


@pytest.mark.parametrize("peer_state", [PeerState.RUNNING, PeerState.BACK_TO_SOURCE])
def test_a_downloading_peer_expires_at_the_earlier_of_its_ttl_and_its_piece_timeout(
    peer_state: PeerState,
) -> None:
    policy = configured(PeerLifetime, peer_ttl=100, piece_timeout=1000)
    peer = make_peer(peer_state, updated_at=50.0, piece_updated_at=40.0)
    assert policy.peer_expiry(peer) == Expiry(150.0, Reason.TTL_EXPIRED)
    # On a tie the peer is reported as expired by its TTL, the general rule.
    tie = make_peer(peer_state, updated_at=50.0, piece_updated_at=-850.0)
    assert policy.peer_expiry(tie) == Expiry(150.0, Reason.TTL_EXPIRED)


# --- task_idle --------------------------------------------------------------------------


def test_a_task_without_peers_expires_task_idle_ttl_after_its_last_change() -> None:
    policy = configured(TaskIdleTTL, task_idle_ttl=60)
    state = bare_state()
    state.announce_host(A, 0.0)
    state.register_peer("p", A.id, TaskInfo("t"), 10.0)
    state.register_peer("q", A.id, TaskInfo("u"), 10.0)
    assert policy.task_expiry(state.view.task("t"), state.view) is None
    state.leave_peer("p", 25.0)
    task = state.view.task("t")
    assert policy.task_expiry(task, state.view) == Expiry(task.updated_at + 60.0, Reason.IDLE)
    assert policy.task_expiry(state.view.task("u"), state.view) is None  # "q" still there


# --- capacity ----------------------------------------------------------------------------


def crowded_state(peers_per_task: dict[str, int]) -> SchedulerState:
    """Tasks (in this order) with that many finished peers; peer ``t-i`` updated at ``i``."""
    state = bare_state()
    state.announce_host(A, 0.0)
    for task, count in peers_per_task.items():
        for i in range(count):
            peer = f"{task}-{i}"
            state.register_peer(peer, A.id, TaskInfo(task), float(i))
            state.start_download(peer, float(i))
            state.finish_download(peer, float(i))
    return state


def evicted(verdicts: list[Verdict]) -> list[str]:
    assert {(v.kind, v.reason) for v in verdicts} <= {(RecordKind.PEER, Reason.CAPACITY)}
    return [v.record_id for v in verdicts]


def test_capacity_evicts_exactly_the_excess_least_recently_updated_first() -> None:
    policy = configured(Capacity, max_peers_per_task=3)
    assert evicted(policy.sweep(RecordKind.PEER, crowded_state({"t": 3}).view)) == []
    assert evicted(policy.sweep(RecordKind.PEER, crowded_state({"t": 4}).view)) == ["t-0"]
    assert evicted(policy.sweep(RecordKind.PEER, crowded_state({"t": 6}).view)) == [
        "t-0",
        "t-1",
        "t-2",
    ]


def test_capacity_judges_every_task_on_its_own() -> None:
    policy = configured(Capacity, max_peers_per_task=2)
    state = crowded_state({"a": 1, "b": 3, "c": 2, "d": 4})
    assert sorted(evicted(policy.sweep(RecordKind.PEER, state.view))) == ["b-0", "d-0", "d-1"]


def test_capacity_never_evicts_a_downloading_peer() -> None:
    policy = configured(Capacity, max_peers_per_task=1)
    state = crowded_state({"t": 2})
    state.register_peer("t-run", A.id, TaskInfo("t"), -5.0)
    state.start_download("t-run", -5.0)
    state.register_peer("t-bts", A.id, TaskInfo("t"), -4.0)
    state.back_to_source("t-bts", -4.0)
    # Three over the cap, but only the two finished peers may go.
    assert evicted(policy.sweep(RecordKind.PEER, state.view)) == ["t-0", "t-1"]


def test_capacity_breaks_update_time_ties_by_peer_id() -> None:
    policy = configured(Capacity, max_peers_per_task=1)
    state = bare_state()
    state.announce_host(A, 0.0)
    for peer in ("z", "m", "a"):
        state.register_peer(peer, A.id, TaskInfo("t"), 1.0)
    assert evicted(policy.sweep(RecordKind.PEER, state.view)) == ["a", "m"]


@pytest.mark.parametrize("kind", [RecordKind.HOST, RecordKind.TASK])
def test_capacity_only_judges_in_the_peer_sweep(kind: RecordKind) -> None:
    policy = configured(Capacity, max_peers_per_task=1)
    assert policy.sweep(kind, crowded_state({"t": 3}).view) == []


def test_capacity_is_off_by_default() -> None:
    assert Capacity().sweep(RecordKind.PEER, crowded_state({"t": 50}).view) == []


# --- every setting of every built-in, validated by name ----------------------------------

SETTINGS_PLUGINS = [p for p in BUILTIN_PLUGINS if hasattr(p, "settings")]


@pytest.mark.parametrize("plugin", SETTINGS_PLUGINS, ids=lambda p: p.name)
def test_every_builtin_setting_passes_the_kit_check(plugin: type) -> None:
    check_plugin_settings(plugin)


# (plugin, key, accepted value -> the attribute it sets, rejected values)
LIMITS: list[tuple[type, str, list[tuple[object, object]], list[object]]] = [
    (AnnounceTTL, "host_ttl", [("1h", 3600.0), (0, 0.0)], [-1, "soon", True]),
    (AnnounceTTL, "multiplier", [(1, 1.0), (1.5, 1.5)], [0.99, 0, -2, "2", True]),
    (DisconnectGrace, "reconnect_grace", [(0, 0.0), ("500ms", 0.5)], [-0.001, "later", False]),
    (PeerLifetime, "peer_ttl", [("2h", 7200.0), (0, 0.0)], [-1, "forever"]),
    (PeerLifetime, "piece_timeout", [("1m", 60.0)], [-1, [30]]),
    (PeerLifetime, "failed_peer_ttl", [(0, 0.0), ("10s", 10.0)], [-1, None]),
    (TaskIdleTTL, "task_idle_ttl", [("10m", 600.0), (0, 0.0)], [-1, "idle"]),
    (Capacity, "max_peers_per_task", [(1, 1), (None, None)], [0, -1, 1.5, "3", True]),
]


@pytest.mark.parametrize(
    ("plugin", "key", "good", "bad"),
    LIMITS,
    ids=[f"{p.name}.{k}" for p, k, _, _ in LIMITS],  # type: ignore[attr-defined]
)
def test_each_setting_accepts_its_range_and_names_itself_when_rejecting(
    plugin: type, key: str, good: list[tuple[object, object]], bad: list[object]
) -> None:
    for value, held in good:
        assert getattr(configured(plugin, **{key: value}), key) == held
    for value in bad:
        with pytest.raises(ConfigError) as info:
            configured(plugin, **{key: value})
        assert info.value.key == f"plugins.{plugin.name}.{key}", value  # type: ignore[attr-defined]
