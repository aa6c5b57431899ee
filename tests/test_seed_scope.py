"""Who may be a seed, whom seeds fetch for, and which cluster a token is for.

* With authentication on, only a token issued with ``--seed`` (scope ``host seed``)
  or a client certificate with ``OU=seed`` may announce ``type: seed``: a fake seed
  once became first parent for 50 of 50 honest children.
* The peers of one host cause at most ``seed_fetches_per_host`` seed fetches per
  ``seed_fetch_window``: any host could make the seeds fetch a URL of its choice.
* A token names its cluster (``aud``), so it cannot be replayed into another one.
"""

from __future__ import annotations

import random
import time
from pathlib import Path
from typing import Any

import attrs
import jwt
import pytest
import trio

from scheduler import cli
from scheduler.client import ConnectError, RequestError, open_scheduler_session
from scheduler.core import (
    HostInfo,
    HostType,
    PeerScheduled,
    RecordLimits,
    ScheduleAction,
    SchedulerState,
    SeedFetchRequested,
    TaskInfo,
)
from scheduler.core._quota import Quota
from scheduler.policies import load_policies
from scheduler.protocol import HostPayload
from scheduler.service import ServiceConfig
from scheduler.service._auth import (
    AuthError,
    AuthFailure,
    PeerGuard,
    Scope,
    TokenVerifier,
    certificate_is_seed,
    issue_token,
)
from scheduler.session import Identity, check_announce
from tests.service_support import LOOPBACK, Live, serving

KEY = b"s" * 32


@pytest.fixture
def key_file(tmp_path: Path) -> Path:
    path = tmp_path / "token.key"
    path.write_bytes(KEY)
    return path


def seed_host(hostname: str = "seed-a") -> HostPayload:
    return HostPayload(hostname=hostname, ip="10.0.9.1", port=8002, download_port=8001, type="seed")


async def announce(live: Live, payload: HostPayload, token: str) -> str:
    async with open_scheduler_session(
        live.ws_url, payload, interval=None, token=token, connect_timeout=5
    ) as session:
        host_id = session.host_id
        await session.leave(ack_timeout=5)
    return host_id


def auth_failures(live: Live, reason: str) -> float:
    value = live.service.metrics.registry.get_sample_value(
        "scheduler_auth_failures_total", {"listener": "peers", "reason": reason}
    )
    return value or 0.0


# --- the seed scope -------------------------------------------------------------------------------


def test_only_an_identity_with_the_seed_scope_announces_a_seed() -> None:
    nobody: dict[str, Identity] = {}
    check_announce(Identity("s1", seed=True), "s1", [], nobody.get, seed=True)
    check_announce(Identity(None, seed=True), "any", [], nobody.get, seed=True)
    check_announce(None, "s1", [], nobody.get, seed=True)  # authentication off
    check_announce(Identity("s1"), "s1", [], nobody.get, seed=False)
    with pytest.raises(Exception, match="without the seed scope; it may not announce a seed host"):
        check_announce(Identity("s1"), "s1", [], nobody.get, seed=True)
    # The scope does not make another identity: the same host, with or without it.
    assert Identity("s1", seed=True) == Identity("s1")


def test_a_seed_token_and_a_seed_certificate_carry_the_scope() -> None:
    verifier = TokenVerifier((KEY,))
    guard = PeerGuard(verifier)
    seed = issue_token(KEY, scopes=[Scope.HOST, Scope.SEED], hostname="s1")
    headers = [(b"authorization", f"Bearer {seed}".encode())]
    assert guard.authenticate(headers, None).seed
    plain = issue_token(KEY, hostname="s1")
    assert not guard.authenticate([(b"authorization", f"Bearer {plain}".encode())], None).seed
    with pytest.raises(ValueError, match="the seed scope extends a host token"):
        issue_token(KEY, scopes=[Scope.SEED])
    unit = {"subject": ((("organizationalUnitName", "seed"),), (("commonName", "s1"),))}
    assert certificate_is_seed(unit)
    assert not certificate_is_seed({"subject": ((("commonName", "s1"),),)})
    assert not certificate_is_seed({"subject": ((("organizationName", "seed"),),)})
    assert PeerGuard(None, certificates=True).authenticate([], unit) == Identity("s1")
    assert PeerGuard(None, certificates=True).authenticate([], unit).seed


async def test_a_host_token_cannot_announce_a_seed_and_a_seed_token_can(key_file: Path) -> None:
    config = attrs.evolve(LOOPBACK, auth_key_file=str(key_file))
    with trio.fail_after(20):
        async with serving(config) as live:
            with pytest.raises(RequestError) as info:
                await announce(live, seed_host(), issue_token(KEY, hostname="seed-a"))
            assert info.value.code == "forbidden"
            assert "seed scope" in str(info.value)
            assert live.service.state.host_count() == 0
            with pytest.raises(RequestError):
                await announce(live, seed_host(), issue_token(KEY))  # cluster-wide, no seed
            seed = issue_token(KEY, scopes=[Scope.HOST, Scope.SEED], hostname="seed-a")
            assert await announce(live, seed_host(), seed) == "10.0.9.1-seed-a-seed"


def test_token_issue_seed_prints_a_seed_token(
    key_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["token", "issue", "--key-file", str(key_file), "--hostname", "s1"]
    assert cli.main([*args, "--seed"]) == 0
    claims = TokenVerifier((KEY,)).verify(capsys.readouterr().out.strip(), Scope.HOST)
    assert claims.scopes == {Scope.HOST, Scope.SEED}
    with pytest.raises(SystemExit) as info:
        cli.main(["token", "issue", "--key-file", str(key_file), "--scope", "admin:read", "--seed"])
    assert info.value.code == 2
    assert "--seed goes with a host token" in capsys.readouterr().err


# --- seed fetches per requesting host -------------------------------------------------------------


def seeded_state(limits: RecordLimits) -> SchedulerState:
    state = SchedulerState(
        load_policies(entrypoints=False), now=0.0, rng=random.Random(3), limits=limits
    )
    state.announce_host(HostInfo("seed-a", "10.0.9.1", type=HostType.SEED), 0.0, interval=3600)
    state.announce_host(HostInfo("asker", "10.0.0.1"), 0.0, interval=3600)
    return state


def first_peer_of(state: SchedulerState, n: int, now: float) -> list[Any]:
    task = TaskInfo(f"t{n}", url=f"https://attacker.invalid/{n}")
    state.register_peer(f"p{n}", "10.0.0.1-asker", task, now)
    return state.schedule_peer(f"p{n}", now)


def test_one_host_causes_at_most_its_quota_of_seed_fetches() -> None:
    state = seeded_state(RecordLimits(seed_fetches_per_host=20, seed_fetch_window=60.0))
    fetched, origin = 0, 0
    for n in range(25):
        events = first_peer_of(state, n, now=1.0 + n)
        fetched += sum(isinstance(e, SeedFetchRequested) for e in events)
        (decision,) = [e.decision for e in events if isinstance(e, PeerScheduled)]
        origin += decision.action is ScheduleAction.BACK_TO_SOURCE
    assert (fetched, origin) == (20, 5)  # past the quota, the asker goes to the origin itself
    # The quota is the asker's own: another host's peer still has a seed fetch.
    state.announce_host(HostInfo("other", "10.0.0.2"), 30.0, interval=3600)
    other = TaskInfo("tq", url="https://example.invalid/q")
    state.register_peer("q", "10.0.0.2-other", other, 30.0)
    assert any(isinstance(e, SeedFetchRequested) for e in state.schedule_peer("q", 30.0))
    # A minute after the first fetches, the window has room again.
    events = first_peer_of(state, 99, now=62.0)
    assert any(isinstance(e, SeedFetchRequested) for e in events)
    assert state.invariant_violations() == []


def test_a_quota_slides_and_forgets_idle_keys() -> None:
    quota = Quota(limit=2, window=10.0)
    assert quota.take("a", 0.0)
    assert quota.take("a", 1.0)
    assert not quota.take("a", 9.9)
    assert quota.used("a", 9.9) == 2
    assert quota.take("a", 10.0)  # the use at 0 left the window
    for n in range(200):
        quota.take(f"k{n}", 100.0 + n * 0.01)
    quota.purge(200.0)
    assert len(quota) == 0


# --- a token is for one cluster -------------------------------------------------------------------


def test_a_token_for_another_cluster_or_for_none_is_refused() -> None:
    verifier = TokenVerifier((KEY,), audience="eu")
    assert verifier.verify(issue_token(KEY, hostname="h1", cluster_id="eu"), Scope.HOST)
    with pytest.raises(AuthError) as info:
        verifier.verify(issue_token(KEY, hostname="h1", cluster_id="us"), Scope.HOST)
    assert info.value.reason is AuthFailure.AUDIENCE
    assert "not for cluster 'eu'" in str(info.value)
    claims = {"scope": "host", "sub": "h1", "exp": int(time.time()) + 60}
    with pytest.raises(AuthError) as info:
        verifier.verify(jwt.encode(claims, KEY, algorithm="HS256"), Scope.HOST)
    assert info.value.reason is AuthFailure.AUDIENCE


async def test_a_server_refuses_a_token_of_another_cluster(key_file: Path) -> None:
    config = attrs.evolve(LOOPBACK, auth_key_file=str(key_file), cluster_id="eu")
    payload = HostPayload(hostname="h1", ip="10.0.0.1", port=8002, download_port=8001)
    with trio.fail_after(20):
        async with serving(config) as live:
            with pytest.raises(ConnectError) as info:
                await announce(live, payload, issue_token(KEY, hostname="h1", cluster_id="us"))
            assert info.value.status_code == 401
            assert auth_failures(live, "audience") == 1
            token = issue_token(KEY, hostname="h1", cluster_id="eu")
            assert await announce(live, payload, token) == "10.0.0.1-h1"


def test_the_verifier_takes_the_cluster_id_of_the_config(key_file: Path) -> None:
    config = ServiceConfig(auth_key_file=str(key_file), cluster_id="eu")
    verifier = TokenVerifier.from_config(config)
    assert verifier is not None
    assert verifier.audience == "eu"
