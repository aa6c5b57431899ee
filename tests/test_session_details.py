"""The session rules' smaller promises, stated at their edges.

Identities and what they are told, the refused networks' parsing, the liveness
heap's order, bounds and boundaries, the host registry's bookkeeping, the
admission and rate counters, and the messages and log records that routing
unsolicited messages produces.
"""

from __future__ import annotations

import ipaddress
import logging

import pytest

from scheduler.core import (
    Decision,
    Forbidden,
    HostInfo,
    PeerScheduled,
    ScheduleAction,
    SchedulerState,
    SeedFetchRequested,
)
from scheduler.policies import load_policies
from scheduler.protocol import FetchTask, Schedule, TaskPayload
from scheduler.session import (
    Admission,
    AdmissionLimits,
    Check,
    EndCause,
    HostSessions,
    Identity,
    Liveness,
    MessageRate,
    Verdict,
    check_announce,
    fetch_task_message,
    parse_networks,
    route_unsolicited,
    schedule_message,
)
from tests.test_liveness import Watch, heap

A_ID = "10.0.0.1-alpha"

# --- identities -------------------------------------------------------------------------


def test_an_identity_describes_itself_by_how_it_was_proven() -> None:
    assert Identity(None).describe() == "a cluster-wide token"
    assert Identity("alpha").describe() == "token 'alpha'"
    assert Identity("alpha", via="certificate").describe() == "certificate 'alpha'"


def test_a_refused_announce_says_who_the_client_is_and_what_it_may_not_do() -> None:
    with pytest.raises(Forbidden) as refused:
        check_announce(Identity("alpha", via="certificate"), "bravo", [], lambda _: None)
    assert str(refused.value) == (
        "authenticated as certificate 'alpha'; it may not announce hostname 'bravo'"
    )
    with pytest.raises(Forbidden) as taken:
        check_announce(Identity(None), "alpha", [A_ID], lambda _: Identity("alpha"))
    assert str(taken.value) == (
        f"host {A_ID!r} was announced by another identity; "
        "only that identity may reconnect to, take over or supersede it"
    )


# --- refused networks -------------------------------------------------------------------------


def test_auto_on_a_loopback_listener_skips_only_itself() -> None:
    assert parse_networks(["auto", "192.0.2.0/24"], loopback_listener=True) == (
        ipaddress.ip_network("192.0.2.0/24"),
    )


def test_a_network_written_with_host_bits_is_its_network() -> None:
    assert parse_networks(["10.1.2.3/8"], loopback_listener=False) == (
        ipaddress.ip_network("10.0.0.0/8"),
    )


# --- the liveness wheel --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "times",
    [(0.0, 1.0, 1.0), (1.0, 0.0, 1.0), (1.0, 1.0, 0.0), (-1.0, 1.0, 1.0)],
)
def test_every_liveness_period_must_be_positive(times: tuple[float, float, float]) -> None:
    interval, timeout, send = times
    with pytest.raises(
        ValueError, match=r"^ping_interval, ping_timeout and send_timeout must be > 0$"
    ):
        Liveness(ping_interval=interval, ping_timeout=timeout, send_timeout=send)


def test_sessions_due_together_come_out_in_the_order_they_were_watched() -> None:
    liveness = heap()
    sessions = [Watch() for _ in range(5)]
    for session in sessions:
        liveness.watch(session)
    assert [s for s, _ in liveness.expire(2.0)] == sessions


def test_watching_a_session_again_at_the_same_due_time_adds_no_entry() -> None:
    liveness, session = heap(), Watch()
    liveness.watch(session)
    liveness.watch(session)
    assert len(liveness) == 1


def test_a_frame_arriving_with_the_ping_answers_it() -> None:
    liveness, session = heap(), Watch()
    liveness.watch(session)
    assert liveness.expire(2.0) == [(session, Check.PING)]
    session.heard_at = 2.0  # in the same instant as the ping
    assert liveness.expire(3.0) == []


def test_neither_timeout_fires_a_moment_early() -> None:
    liveness = heap()
    pinged = Watch(ping_sent_at=10.0, heard_at=9.0)
    assert liveness.check(pinged, 10.99) is None
    assert liveness.check(pinged, 11.0) is Check.PING_TIMEOUT
    sending = Watch(heard_at=14.0, sending_since=10.0)
    assert liveness.check(sending, 14.99) is None
    assert liveness.check(sending, 15.0) is Check.SEND_TIMEOUT


def test_expire_handles_at_most_a_thousand_sessions_by_default() -> None:
    liveness = heap()
    sessions = [Watch() for _ in range(1_001)]
    for session in sessions:
        liveness.watch(session)
    assert len(liveness.expire(2.0)) == 1_000
    assert [s for s, _ in liveness.expire(2.0)] == sessions[-1:]


def test_a_stale_entry_does_not_stop_the_sessions_due_after_it() -> None:
    liveness = heap()
    moved, other = Watch(), Watch()
    liveness.watch(moved)  # due at 2.0
    liveness.watch(other)  # due at 2.0, after it
    moved.sending_since = -4.5  # a send started: now due at 0.5; its 2.0 entry is stale
    liveness.watch(moved)
    assert liveness.expire(0.5) == [(moved, Check.SEND_TIMEOUT)]
    assert liveness.expire(2.0) == [(other, Check.PING)]


def test_sessions_ending_together_are_all_reported() -> None:
    liveness = heap()
    sessions = [Watch(announce_by=1.0) for _ in range(3)]
    for session in sessions:
        liveness.watch(session)
    assert liveness.expire(1.0) == [(s, Check.ANNOUNCE_TIMEOUT) for s in sessions]


# --- the host registry ----------------------------------------------------------------------


class Owner:
    def __init__(self) -> None:
        self.ended: list[tuple[EndCause, str | None]] = []

    def end(self, cause: EndCause, evicted_reason: str | None = None) -> None:
        self.ended.append((cause, evicted_reason))

    def deliver(self, message: object) -> bool:
        return True


def registry() -> tuple[SchedulerState, HostSessions]:
    state = SchedulerState(load_policies(), now=0.0)
    state.announce_host(HostInfo("alpha", "10.0.0.1"), 0.0)
    return state, HostSessions(state)


def test_the_registry_lists_the_hosts_it_holds_sessions_for() -> None:
    _, hosts = registry()
    assert list(hosts) == []
    hosts.claim(A_ID, Owner())
    assert list(hosts) == [A_ID]


def test_a_claim_without_an_identity_forgets_the_previous_one() -> None:
    _, hosts = registry()
    owner = Owner()
    hosts.claim(A_ID, owner, Identity("alpha"))
    hosts.claim(A_ID, owner)
    assert hosts.identity_of(A_ID) is None


def test_an_identity_is_forgotten_with_its_host() -> None:
    state, hosts = registry()
    hosts.claim(A_ID, Owner(), Identity("alpha"))
    state.leave_host(A_ID, 1.0)
    assert hosts.identity_of(A_ID) is None
    # The same host announced anew (by no one this registry saw) has no identity.
    state.announce_host(HostInfo("alpha", "10.0.0.1"), 2.0)
    assert hosts.identity_of(A_ID) is None
    assert hosts.identity_of("10.0.0.9-nobody") is None


def test_only_the_owner_releases_a_host() -> None:
    _, hosts = registry()
    owner, stranger = Owner(), Owner()
    hosts.claim(A_ID, owner)
    assert hosts.release(stranger, A_ID) is False
    assert hosts.owner_of(A_ID) is owner
    assert hosts.release(owner, A_ID) is True
    assert hosts.owner_of(A_ID) is None


def test_an_eviction_of_a_host_without_a_session_is_harmless() -> None:
    _, hosts = registry()
    hosts.evicted(A_ID, "ttl_expired")
    assert list(hosts) == []


# --- admission and rate -------------------------------------------------------------------------


def test_sessions_from_one_address_add_up() -> None:
    admission = Admission(
        AdmissionLimits(
            max_connections=10,
            max_connections_per_address=10,
            max_sessions=10,
            max_sessions_per_address=2,
        )
    )
    assert admission.open_session("10.0.0.1") is None
    assert admission.open_session("10.0.0.1") is None
    assert admission.sessions_from("10.0.0.1") == 2
    assert admission.open_session("10.0.0.1") == "address_sessions"


def test_a_refusal_exactly_one_window_old_no_longer_counts() -> None:
    rate = MessageRate(rate=0.001, burst=1, violation_limit=1, violation_window=10.0, now=0.0)
    assert rate.admit(0.0) is Verdict.ALLOW
    assert rate.admit(0.0) is Verdict.REFUSE
    assert rate.admit(10.0) is Verdict.REFUSE  # the first refusal left the window
    assert rate.admit(10.0) is Verdict.CLOSE


# --- routing unsolicited messages ---------------------------------------------------------------


def test_a_seed_is_asked_for_the_task_as_the_child_described_it() -> None:
    request = SeedFetchRequested(
        "10.0.0.9-seed-seed",
        "t",
        "seed-peer",
        "https://example.invalid/blob",
        1024,
        4096,
        4,
        1.0,
    )
    assert fetch_task_message(request) == FetchTask(
        task=TaskPayload(
            id="t",
            url="https://example.invalid/blob",
            piece_length=1024,
            content_length=4096,
            total_piece_count=4,
        ),
        peer_id="seed-peer",
    )


def test_a_decision_whose_parents_all_vanished_becomes_wait_and_is_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    state = SchedulerState(load_policies(), now=0.0)
    with caplog.at_level(logging.WARNING, logger="scheduler.session"):
        message = schedule_message(
            state.view, "pc", Decision(ScheduleAction.PARENTS, ("gone",)), request_id=7
        )
    assert message == Schedule(
        id=7,
        peer_id="pc",
        action="wait",
        retry_after=0.0,
        message="the parents chosen are gone; ask again",
    )
    [record] = caplog.records
    assert record.getMessage() == "every parent vanished before the reply"
    assert record.fields == {"peer_id": "pc"}  # type: ignore[attr-defined]


def test_routing_counts_each_delivery_and_logs_each_drop(
    caplog: pytest.LogCaptureFixture,
) -> None:
    state = SchedulerState(load_policies(), now=0.0)
    hosts = HostSessions(state)
    hosts.claim("h-1", Owner())
    hosts.claim("h-2", Owner())
    decision = Decision(ScheduleAction.WAIT, retry_after=1.0)

    def push(peer_id: str, host_id: str) -> PeerScheduled:
        return PeerScheduled(peer_id, host_id, "t", decision, 1.0, "parent_lost", True)

    def fetch(host_id: str, peer_id: str) -> SeedFetchRequested:
        return SeedFetchRequested(host_id, "t", peer_id, "https://example.invalid/x", 1, 1, 1, 1.0)

    events = [
        push("p1", "h-1"),
        push("p2", "h-2"),
        push("p3", "h-none"),
        fetch("h-1", "s1"),
        fetch("h-2", "s2"),
        push("p4", "h-none"),
    ]
    with caplog.at_level(logging.INFO, logger="scheduler.session"):
        routed = route_unsolicited(state.view, hosts, events)
    assert (routed.pushes, routed.fetch_tasks) == (2, 2)
    assert routed.dropped == {("schedule", "no_session"): 2}
    drops = [r for r in caplog.records if r.name == "scheduler.session"]
    assert [r.getMessage() for r in drops] == ["schedule dropped", "schedule dropped"]
    assert [r.fields for r in drops] == [  # type: ignore[attr-defined]
        {"host_id": "h-none", "reason": "no_session"},
        {"host_id": "h-none", "reason": "no_session"},
    ]
