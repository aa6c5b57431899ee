"""Rendezvous hashing: which seed host is asked to fetch a task .

The weights are part of the contract between processes: every scheduler (and every
version of it) must pick the same seed for a task, so they are pinned to literal values.
"""

from __future__ import annotations

import string

import pytest

from scheduler import rendezvous as _rendezvous
from scheduler.rendezvous import rendezvous_owner, rendezvous_weight


@pytest.mark.parametrize(
    ("key", "member", "weight"),
    [
        ("t1", "seed-0", 13010635116937217163),
        ("t1", "seed-1", 18161702955525795969),
        ("task-a", "h", 17444271983351829270),
        ("", "", 10734006239897485896),
    ],
)
def test_weights_are_stable_64_bit_values(key: str, member: str, weight: int) -> None:
    assert rendezvous_weight(key, member) == weight
    assert 0 <= weight < 2**64


def test_the_owner_is_the_member_of_highest_weight_in_any_order() -> None:
    members = [f"seed-{i}" for i in range(3)]
    assert rendezvous_owner("t1", members) == "seed-1"
    assert rendezvous_owner("t1", reversed(members)) == "seed-1"
    for key in ("a", "b", "task-7", "x" * 40):
        best = max(members, key=lambda m: rendezvous_weight(key, m))
        assert rendezvous_owner(key, members) == best
        assert rendezvous_owner(key, iter(members)) == best  # any iterable, read once


def test_no_member_owns_nothing() -> None:
    assert rendezvous_owner("t1", []) is None
    assert rendezvous_owner("t1", set()) is None


def test_one_member_owns_every_key() -> None:
    for key in string.ascii_lowercase:
        assert rendezvous_owner(key, ["only"]) == "only"


def test_removing_a_member_moves_only_its_own_keys() -> None:
    members = [f"h{i}" for i in range(5)]
    keys = [f"task-{i}" for i in range(200)]
    before = {key: rendezvous_owner(key, members) for key in keys}
    after = {key: rendezvous_owner(key, members[1:]) for key in keys}
    moved = {key for key in keys if before[key] != after[key]}
    assert moved == {key for key in keys if before[key] == "h0"}
    assert moved  # h0 owned some keys
    # and every member owns some of them (the weights spread the keys)
    assert set(before.values()) == set(members)


def test_ties_go_to_the_smaller_member_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_rendezvous, "rendezvous_weight", lambda key, member: 0)
    assert rendezvous_owner("t1", ["b", "a", "c"]) == "a"
    assert rendezvous_owner("t1", ["c", "b"]) == "b"
    assert rendezvous_owner("t1", ["z"]) == "z"
    weights = {"b": 7, "a": 3, "c": 7}
    monkeypatch.setattr(_rendezvous, "rendezvous_weight", lambda key, member: weights[member])
    assert rendezvous_owner("t1", ["a", "c", "b"]) == "b"  # the smaller of the heaviest
    assert rendezvous_owner("t1", ["a", "b", "c"]) == "b"
