"""What a registry row proves: safe text, signatures under the cluster key (sans-IO)."""

from __future__ import annotations

import datetime

import attrs
import pytest

from scheduler.registry import (
    ClusterKeys,
    HolderDecision,
    Member,
    RowFault,
    judge_holder,
    screen,
    text_problem,
    url_problem,
)
from scheduler.registry._trust import member_identity

KEY = b"k" * 32
OTHER = b"o" * 32
T0 = datetime.datetime(2026, 1, 1, 12, 0, 0, 123456, tzinfo=datetime.UTC)


def member(
    name: str = "s1", rid: int = 7, *, keys: ClusterKeys | None = None, **kw: object
) -> Member:
    row = Member(
        registration_id=rid,
        cluster_id="c1",
        name=name,
        boot_id="boot-1",
        url=f"ws://{name}.example:8002/ws",
        admin_url=f"http://{name}.example:8000",
        address=f"{name}.example",
        port=8002,
        admin_port=8000,
        registered_at=T0,
        renewed_at=T0,
        lease_expires_at=T0 + datetime.timedelta(seconds=15),
    )
    if keys is not None:
        row = attrs.evolve(row, signature=keys.sign_row(member_identity(row), rid, T0))
    return attrs.evolve(row, **kw)  # type: ignore[misc, arg-type]


def test_a_signed_row_verifies_and_every_signed_field_counts() -> None:
    keys = ClusterKeys(KEY)
    signed = member(keys=keys)
    assert keys.verifies_member(signed)
    # Read back in another time zone: the same instant, the same signature.
    moved = attrs.evolve(
        signed, registered_at=T0.astimezone(datetime.timezone(datetime.timedelta(hours=2)))
    )
    assert keys.verifies_member(moved)
    for field, value in [
        ("url", "ws://evil.example:8002/ws"),
        ("admin_url", "http://evil.example:8000"),
        ("name", "s2"),
        ("cluster_id", "c2"),
        ("boot_id", "boot-2"),
        ("address", "evil.example"),
        ("port", 9),
        ("admin_port", 9),
        ("registration_id", 8),
        ("registered_at", T0 + datetime.timedelta(microseconds=1)),
    ]:
        assert not keys.verifies_member(attrs.evolve(signed, **{field: value})), field
    assert not ClusterKeys(OTHER).verifies_member(signed)
    assert ClusterKeys(OTHER, (KEY,)).verifies_member(signed)  # during a rotation
    assert not keys.verifies_member(attrs.evolve(signed, signature=None))
    assert not keys.verifies_member(attrs.evolve(signed, signature="v1:" + "0" * 64))


def test_screen_keeps_only_what_may_be_served() -> None:
    keys = ClusterKeys(KEY)
    good = member("s1", 1, keys=keys)
    unsigned = member("s2", 2)
    forged = member("s3", 3, keys=keys, url="ws://evil.example/ws")
    unsafe = member("s4\x1b[2J", 4, keys=keys)
    screened = screen([good, unsigned, forged, unsafe], keys)
    assert screened.accepted == (good,)
    assert [(m.registration_id, why) for m, why in screened.ignored] == [
        (2, RowFault.UNSIGNED),
        (3, RowFault.BAD_SIGNATURE),
        (4, RowFault.UNSAFE),
    ]
    # Without a key nothing can be verified, but unsafe text is still never served.
    without = screen([good, unsigned, forged, unsafe], None)
    assert without.accepted == (good, unsigned, forged)
    assert [why for _, why in without.ignored] == [RowFault.UNSAFE]
    with_userinfo = member("s5", 5, url="ws://user:secret@s5.example/ws")
    assert screen([with_userinfo], None).ignored[0][1] is RowFault.UNSAFE


@pytest.mark.parametrize(
    ("keys", "signed", "takeover", "since", "decision"),
    [
        # With the key: a holder that proves nothing is ignored, whatever the step.
        (True, False, False, None, HolderDecision.IGNORE_FORGED),
        (True, False, True, None, HolderDecision.IGNORE_FORGED),
        # A genuine holder: taken over on a first start (the key is the proof) only.
        (True, True, True, None, HolderDecision.TAKE_OVER),
        (True, True, False, None, HolderDecision.REFUSE),
        (True, True, False, T0 + datetime.timedelta(seconds=1), HolderDecision.IGNORE_FORGED),
        (True, True, False, T0 - datetime.timedelta(seconds=1), HolderDecision.REFUSE),
        # Without the key: a signed holder is never displaced; an unsigned one as before.
        (False, True, True, None, HolderDecision.REFUSE),
        (False, False, True, None, HolderDecision.TAKE_OVER),
        (False, False, False, None, HolderDecision.REFUSE),
    ],
)
def test_who_may_end_a_live_holder(
    keys: bool,
    signed: bool,
    takeover: bool,
    since: datetime.datetime | None,
    decision: HolderDecision,
) -> None:
    holder = member(keys=ClusterKeys(KEY) if signed else None)
    mine = ClusterKeys(KEY) if keys else None
    assert judge_holder(holder, mine, takeover=takeover, rejoining_since=since) is decision


def test_probe_answers_are_proven_under_the_key() -> None:
    keys = ClusterKeys(KEY)
    proof = keys.prove("ab" * 16, b'{"a":1}')
    assert keys.proven("ab" * 16, b'{"a":1}', proof)
    assert not keys.proven("cd" * 16, b'{"a":1}', proof)
    assert not keys.proven("ab" * 16, b'{"a":2}', proof)
    assert not ClusterKeys(OTHER).proven("ab" * 16, b'{"a":1}', proof)
    assert not keys.proven("ab" * 16, b'{"a":1}', None)


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("s1", None),
        ("sched-a.example.com", None),
        ("", "empty"),
        ("s1\n", "control"),
        ("s 1", "whitespace"),
        ("s1\x1b[31m", "control"),
        ("s1\u202e", "control"),
        ("x" * 129, "at most 128"),
    ],
)
def test_names_with_unsafe_text_are_refused(value: str, problem: str | None) -> None:
    found = text_problem(value)
    assert found is None if problem is None else problem in str(found)


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("ws://s1.example:8002/ws", None),
        ("wss://[::1]:8002/ws", None),
        ("ws://user:pass@s1.example:8002/ws", "user:password@"),
        ("ws://token@s1.example/ws", "user:password@"),
        ("ws://s1.example/ws\r\nX: y", "printable"),
        ("ws://s1.example:99999/ws", "bad port"),
        ("http://s1.example/ws", "expected ws://"),
        ("ws:///ws", "expected ws://"),
    ],
)
def test_advertised_urls_with_userinfo_or_control_characters_are_refused(
    value: str, problem: str | None
) -> None:
    found = url_problem(value, ("ws", "wss"))
    assert found is None if problem is None else problem in str(found)
