"""Who may announce what: the identity rules of the session, sans-IO.

Regression tests for the "host takeover" finding: without authentication a
second session announcing the same ip and hostname takes the host over (the
victim ends ``replaced``), and the same hostname from another ip supersedes it.
With authentication, only the identity that announced a host may do either; a
forbidden announce changes nothing.
"""

from __future__ import annotations

import pytest

from scheduler.core import HostState, RecordKind
from scheduler.protocol import ErrorCode, HostAccepted
from scheduler.session import EndCause, HostSessions, Identity, SessionProtocol, check_announce
from tests.test_session_rules import LIMITS, World, announce, error_of, frame, only_reply

A_ID = "10.0.0.1-alpha"


def open_as(world: World, identity: Identity | None, now: float = 0.0) -> SessionProtocol:
    return SessionProtocol(world.state, world.hosts, LIMITS, opened_at=now, identity=identity)


def snapshot(world: World) -> list[tuple[str, str, float, float]]:
    return sorted(
        (h.id, h.state.value, h.last_announce_at, h.last_contact_at)
        for h in world.state.view.hosts()
    )


def register(session: SessionProtocol, peer_id: str, now: float) -> None:
    task = {"url": "https://example.invalid/f", "total_piece_count": 4}
    message = {"type": "register_peer", "id": 9, "peer_id": peer_id, "task": task}
    session.receive(frame(message), now)


# --- without authentication: behaviour as before ----------------------------------------


def test_without_auth_the_same_ip_and_hostname_take_the_host_over() -> None:
    world = World()
    victim = open_as(world, None)
    victim.receive(announce(), 0.0)
    attacker = open_as(world, None, 1.0)
    assert isinstance(only_reply(attacker.receive(announce(), 1.0)), HostAccepted)
    assert victim.cause is EndCause.REPLACED
    assert world.hosts.owns(attacker, A_ID)


def test_without_auth_the_same_hostname_from_another_ip_supersedes() -> None:
    world = World()
    victim = open_as(world, None)
    victim.receive(announce(), 0.0)
    other = open_as(world, None, 1.0)
    outcome = other.receive(announce(ip="10.0.0.9"), 1.0)
    assert isinstance(only_reply(outcome), HostAccepted)
    assert not world.state.has_host(A_ID)


# --- with authentication -------------------------------------------------------------------


def test_a_named_identity_announces_only_its_own_hostname() -> None:
    world = World()
    session = open_as(world, Identity("alpha"))
    error = error_of(session.receive(announce(hostname="bravo", ip="10.0.0.2"), 0.0))
    assert error.code == ErrorCode.FORBIDDEN
    assert "may not announce hostname 'bravo'" in error.message
    assert world.state.host_count() == 0
    assert session.host_id is None
    # The same session may still announce its own name.
    assert isinstance(only_reply(session.receive(announce(), 1.0)), HostAccepted)


def test_another_identity_cannot_take_a_host_over_and_changes_nothing() -> None:
    world = World()
    victim = open_as(world, Identity(None))  # a cluster-wide token
    victim.receive(announce(), 0.0)
    register(victim, "p1", 0.5)
    before = snapshot(world)
    attacker = open_as(world, Identity("alpha"), 1.0)  # a token for the same hostname
    error = error_of(attacker.receive(announce(), 2.0))
    assert error.code == ErrorCode.FORBIDDEN
    assert "announced by another identity" in error.message
    assert victim.cause is None
    assert world.hosts.owns(victim, A_ID)
    assert snapshot(world) == before
    assert world.state.has_peer("p1")
    assert attacker.host_id is None


def test_another_identity_cannot_supersede_by_hostname() -> None:
    world = World()
    victim = open_as(world, Identity("alpha", via="certificate"))
    victim.receive(announce(), 0.0)
    intruder = open_as(world, Identity(None), 1.0)
    error = error_of(intruder.receive(announce(ip="10.0.0.9"), 1.0))
    assert error.code == ErrorCode.FORBIDDEN
    assert world.state.has_host(A_ID)
    assert not world.state.has_host("10.0.0.9-alpha")
    assert victim.cause is None


def test_the_same_identity_reconnects_takes_over_and_supersedes() -> None:
    world = World()
    first = open_as(world, Identity("alpha"))
    first.receive(announce(), 0.0)
    # A token and a certificate for the same name are the same identity.
    second = open_as(world, Identity("alpha", via="certificate"), 1.0)
    assert isinstance(only_reply(second.receive(announce(), 1.0)), HostAccepted)
    assert first.cause is EndCause.REPLACED
    # Dropped, then reconnected within the grace period.
    second.on_closed(2.0)
    assert world.state.host(A_ID).state is HostState.DISCONNECTED
    third = open_as(world, Identity("alpha"), 2.5)
    assert isinstance(only_reply(third.receive(announce(), 2.5)), HostAccepted)
    assert world.state.host(A_ID).state is HostState.CONNECTED
    # The restarted pod with a new ip supersedes its old record.
    fourth = open_as(world, Identity("alpha"), 3.0)
    assert isinstance(only_reply(fourth.receive(announce(ip="10.0.0.9"), 3.0)), HostAccepted)
    assert not world.state.has_host(A_ID)
    assert world.state.has_host("10.0.0.9-alpha")


def test_a_disconnected_host_keeps_its_identity_until_evicted() -> None:
    world = World()
    owner = open_as(world, Identity("alpha"))
    owner.receive(announce(), 0.0)
    owner.on_closed(1.0)
    cluster = open_as(world, Identity(None), 1.5)
    assert error_of(cluster.receive(announce(), 1.5)).code == ErrorCode.FORBIDDEN
    assert world.state.host(A_ID).state is HostState.DISCONNECTED
    # Once the grace ran out the record is gone, and with it the claim.
    deadline = world.state.deadline_of(RecordKind.HOST, A_ID)
    assert deadline is not None
    world.state.run_gc(deadline.at)
    assert not world.state.has_host(A_ID)
    assert world.hosts.identity_of(A_ID) is None
    late = open_as(world, Identity(None), deadline.at + 1)
    assert isinstance(only_reply(late.receive(announce(), deadline.at + 1)), HostAccepted)


def test_the_registry_forgets_an_identity_with_its_host() -> None:
    world = World()
    hosts: HostSessions = world.hosts
    session = open_as(world, Identity("alpha"))
    session.receive(announce(), 0.0)
    assert hosts.identity_of(A_ID) == Identity("alpha")
    hosts.evicted(A_ID, "admin")
    assert hosts.identity_of(A_ID) is None


def test_check_announce_allows_everything_without_authentication() -> None:
    check_announce(None, "anything", ["x"], lambda _: Identity("other"))
    with pytest.raises(Exception, match="may not announce"):
        check_announce(Identity("a"), "b", [], lambda _: None)
    assert Identity(None).cluster_wide
    assert Identity("a") == Identity("a", via="certificate")
