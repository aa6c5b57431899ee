"""The client's view of the cluster: parsing ``/api/v1/schedulers`` and keeping the list."""

from __future__ import annotations

import pytest

from scheduler.client._membership import (
    Membership,
    MembershipError,
    SchedulerMember,
    parse_members,
)


def member(name: str) -> SchedulerMember:
    return SchedulerMember(name, f"ws://{name}:8002/ws", "2026-01-01T00:00:15+00:00")


def test_a_list_of_members_is_parsed_by_name() -> None:
    payload = [
        {"name": "b", "url": "ws://b:8002/ws", "lease_expires_at": None, "extra": 1},
        {"name": "a", "url": "ws://a:8002/ws", "lease_expires_at": "2026-01-01T00:00:15+00:00"},
    ]
    parsed = parse_members(payload)
    assert [m.name for m in parsed] == ["a", "b"]
    assert parsed[1].lease_expires_at is None


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ({"name": "a"}, "JSON array"),
        (["a"], r"schedulers\[0\]: expected an object"),
        ([{"url": "ws://a/ws"}], r"schedulers\[0\]\.name"),
        ([{"name": "a", "url": ""}], r"schedulers\[0\]\.url"),
        ([{"name": "a", "url": "ws://a/ws", "boot_id": 3}], "boot_id"),
        ([{"name": "a", "url": "ws://a/ws"}, {"name": "a", "url": "ws://b/ws"}], "twice"),
    ],
)
def test_a_bad_answer_is_refused(payload: object, message: str) -> None:
    with pytest.raises(MembershipError, match=message):
        parse_members(payload)


def test_membership_is_replaced_and_trimmed() -> None:
    membership = Membership([member("a"), member("b")])
    assert membership.names == ["a", "b"]
    assert membership.drop("a") is True
    assert membership.drop("a") is False
    joined, left = membership.replace([member("a"), member("c")])
    assert (joined, left) == ({"a", "c"}, {"b"})
    assert [m.name for m in membership.members] == ["a", "c"]
    assert membership.get("c") == member("c")


def test_a_stale_list_is_read_and_routed_as_before() -> None:
    from scheduler.client._routing import ClusterRoutes  # noqa: PLC0415

    fresh = [
        {"name": "a", "url": "ws://a/ws", "lease_expires_at": "2026-01-01T00:00:15+00:00"},
        {"name": "b", "url": "ws://b/ws", "lease_expires_at": "2026-01-01T00:00:15+00:00"},
    ]
    routes = ClusterRoutes(parse_members(fresh))
    generation = routes.generation
    stale = [m | {"stale": True, "roster_age": 42.5} for m in fresh]
    parsed = parse_members(stale)
    assert [(m.stale, m.roster_age) for m in parsed] == [(True, 42.5), (True, 42.5)]
    assert routes.refreshed(parsed) == (set(), set())
    assert routes.generation == generation
    assert [m.stale for m in parse_members(fresh)] == [False, False]
    with pytest.raises(MembershipError, match=r"schedulers\[0\]\.stale"):
        parse_members([fresh[0] | {"stale": "yes"}])
    with pytest.raises(MembershipError, match=r"schedulers\[0\]\.roster_age"):
        parse_members([fresh[0] | {"roster_age": "old"}])
