"""Authenticated hosts and admin API, through the real listeners on loopback.

Regression tests for the findings "host takeover" and "the admin API has no
credential", and for protected mode. TLS is in tests/test_tls.py.
"""

from __future__ import annotations

import json
import logging
import re
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import attrs
import jwt
import pytest
import trio
import trio.testing

from scheduler import cli
from scheduler.client import (
    ConnectError,
    RequestError,
    SessionLost,
    open_scheduler_session,
    resolve_token,
)
from scheduler.core import ConfigError
from scheduler.protocol import HostPayload
from scheduler.service import ServiceConfig
from scheduler.service._auth import (
    AdminGuard,
    AuthError,
    AuthFailure,
    Scope,
    TokenVerifier,
    bearer_token,
    issue_token,
    read_key,
)
from scheduler.service._config import config_from_resolved, resolve_config, risky_modes, validate
from scheduler.service._throttle import AUTH_LOG_INTERVAL, OTHERS, Line, LogThrottle
from tests.service_support import LOOPBACK, Live, raw_http, serving, upgrade_head

KEY = b"k" * 32
OLD_KEY = b"o" * 32
STRANGER_KEY = b"s" * 32


@pytest.fixture
def key_file(tmp_path: Path) -> Path:
    path = tmp_path / "token.key"
    path.write_bytes(KEY + b"\n")
    return path


@pytest.fixture
def old_key_file(tmp_path: Path) -> Path:
    path = tmp_path / "token.key.old"
    path.write_bytes(OLD_KEY)
    return path


def auth_config(key_file: Path, **extra: Any) -> ServiceConfig:
    return attrs.evolve(LOOPBACK, auth_key_file=str(key_file), **extra)


def host(hostname: str = "alpha", ip: str = "10.0.0.1") -> HostPayload:
    return HostPayload(hostname=hostname, ip=ip, port=8002, download_port=8001)


def http(method: str, url: str, token: str | None = None, **headers: str) -> tuple[int, Any]:
    req = urllib.request.Request(url, method=method)
    if token is not None:
        req.add_header("Authorization", f"Bearer {token}")
    for name, value in headers.items():
        req.add_header(name, value)
    try:
        with urllib.request.urlopen(req, timeout=5) as response:
            body, status = response.read(), response.status
            kind = response.headers.get("content-type", "")
    except urllib.error.HTTPError as error:
        with error:
            body, status, kind = error.read(), error.code, error.headers.get("content-type", "")
    return status, json.loads(body) if kind.startswith("application/json") else body.decode()


async def call(method: str, url: str, token: str | None = None, **headers: str) -> tuple[int, Any]:
    return await trio.to_thread.run_sync(lambda: http(method, url, token, **headers))


def auth_failures(live: Live, listener: str, reason: str) -> float:
    value = live.service.metrics.registry.get_sample_value(
        "scheduler_auth_failures_total", {"listener": listener, "reason": reason}
    )
    return value or 0.0


# --- tokens -------------------------------------------------------------------------------


def test_a_token_verifies_with_its_key_and_carries_its_subject_and_scopes() -> None:
    verifier = TokenVerifier((KEY,))
    claims = verifier.verify(issue_token(KEY, hostname="node-1"), Scope.HOST)
    assert (claims.subject, claims.scopes) == ("node-1", frozenset({Scope.HOST}))
    cluster = verifier.verify(issue_token(KEY), Scope.HOST)
    assert cluster.subject is None
    write = verifier.verify(issue_token(KEY, scopes=[Scope.ADMIN_WRITE]), Scope.ADMIN_READ)
    assert write.scopes == {Scope.ADMIN_READ, Scope.ADMIN_WRITE}


@pytest.mark.parametrize(
    ("token", "reason"),
    [
        (issue_token(STRANGER_KEY, hostname="alpha"), AuthFailure.BAD_SIGNATURE),
        (issue_token(KEY, hostname="alpha", now=time.time() - 3600, ttl=60), AuthFailure.EXPIRED),
        ("not.a.token", AuthFailure.MALFORMED),
        (issue_token(KEY, scopes=[Scope.ADMIN_READ]), AuthFailure.SCOPE),
        (jwt.encode({"scope": "host"}, KEY, algorithm="HS256"), AuthFailure.MALFORMED),  # no exp
        (
            jwt.encode({"scope": "host", "exp": 2**40}, KEY * 2, algorithm="HS512"),
            AuthFailure.MALFORMED,
        ),
    ],
    ids=["unknown-key", "expired", "garbage", "admin-scope", "no-exp", "other-algorithm"],
)
def test_a_bad_token_is_refused_with_its_reason(token: str, reason: AuthFailure) -> None:
    with pytest.raises(AuthError) as info:
        TokenVerifier((KEY,)).verify(token, Scope.HOST)
    assert info.value.reason is reason
    assert info.value.status == (403 if reason is AuthFailure.SCOPE else 401)


def test_rotation_accepts_the_previous_key_and_signs_with_the_new_one() -> None:
    verifier = TokenVerifier((KEY, OLD_KEY))
    assert verifier.verify(issue_token(OLD_KEY, hostname="a"), Scope.HOST).subject == "a"
    assert verifier.verify(issue_token(KEY, hostname="b"), Scope.HOST).subject == "b"
    after_rotation = TokenVerifier((KEY,))
    with pytest.raises(AuthError):
        after_rotation.verify(issue_token(OLD_KEY, hostname="a"), Scope.HOST)


def test_the_bearer_header_is_parsed_strictly() -> None:
    assert bearer_token([(b"authorization", b"Bearer abc ")]) == "abc"
    assert bearer_token([(b"Authorization", b"bearer abc")]) == "abc"
    for headers in ([], [(b"authorization", b"Basic abc")], [(b"authorization", b"Bearer ")]):
        with pytest.raises(AuthError):
            bearer_token(headers)


def test_a_short_or_missing_key_is_a_config_error(tmp_path: Path) -> None:
    short = tmp_path / "short.key"
    short.write_bytes(b"x" * 31)
    with pytest.raises(ConfigError, match="at least 32"):
        read_key(short, "auth.key_file")
    with pytest.raises(ConfigError, match="cannot read"):
        read_key(tmp_path / "missing", "auth.key_file")


# --- the peers' listener -------------------------------------------------------------------


async def connect(
    live: Live, token: str | None, hostname: str = "alpha", ip: str = "10.0.0.1"
) -> None:
    async with open_scheduler_session(
        live.ws_url, host(hostname, ip), interval=None, token=token, connect_timeout=5
    ) as session:
        await session.leave(ack_timeout=5)


@pytest.mark.parametrize(
    ("token", "reason"),
    [
        (None, "missing"),
        ("garbage", "malformed"),
        (issue_token(KEY, hostname="alpha", now=time.time() - 3600, ttl=60), "expired"),
        (issue_token(STRANGER_KEY, hostname="alpha"), "bad_signature"),
    ],
    ids=["missing", "bad", "expired", "unknown-key"],
)
async def test_a_handshake_without_a_valid_token_gets_401_before_the_upgrade(
    key_file: Path, token: str | None, reason: str
) -> None:
    with trio.fail_after(20):
        async with serving(auth_config(key_file)) as live:
            with pytest.raises(ConnectError) as info:
                await connect(live, token)
            assert info.value.status_code == 401
            assert auth_failures(live, "peers", reason) == 1
            assert live.service.state.host_count() == 0
            assert not live.service.sessions


async def test_a_raw_upgrade_without_a_token_reads_401_with_a_challenge(key_file: Path) -> None:
    with trio.fail_after(20):
        async with serving(auth_config(key_file)) as live:
            head = (
                "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
            )
            reply = await raw_http(live.ws_address, head)
            assert reply.status == 401
            assert reply.headers["www-authenticate"].startswith("Bearer")
            assert "Authorization header" in reply.body


async def test_a_valid_token_and_a_previous_key_token_are_accepted(
    key_file: Path, old_key_file: Path
) -> None:
    config = auth_config(key_file, auth_previous_key_file=str(old_key_file))
    with trio.fail_after(20):
        async with serving(config) as live:
            await connect(live, issue_token(KEY, hostname="alpha"))
            await connect(live, issue_token(OLD_KEY, hostname="bravo"), "bravo")
            await connect(live, issue_token(KEY), "charlie")  # cluster-wide


async def test_an_announce_for_another_hostname_is_forbidden_and_changes_nothing(
    key_file: Path,
) -> None:
    with trio.fail_after(20):
        async with serving(auth_config(key_file)) as live:
            with pytest.raises(RequestError) as info:
                await connect(live, issue_token(KEY, hostname="alpha"), "bravo")
            assert info.value.code == "forbidden"
            assert live.service.state.host_count() == 0


async def test_with_auth_another_identity_cannot_take_over_or_supersede(key_file: Path) -> None:
    cluster = issue_token(KEY)
    alpha = issue_token(KEY, hostname="alpha")
    with trio.fail_after(20):
        async with (
            serving(auth_config(key_file)) as live,
            open_scheduler_session(live.ws_url, host(), interval=None, token=alpha) as victim,
        ):
            for ip in ("10.0.0.1", "10.0.0.9"):  # take over; supersede
                with pytest.raises(RequestError) as info:
                    await connect(live, cluster, ip=ip)
                assert info.value.code == "forbidden"
            assert [h.id for h in live.service.state.view.hosts()] == ["10.0.0.1-alpha"]
            assert live.service.has_session("10.0.0.1-alpha")
            await victim.leave(ack_timeout=5)


async def hold_two_sessions(live: Live, token: str | None) -> None:
    """Open a session, then a second one for the same host; return when the first is lost."""
    async with (
        open_scheduler_session(live.ws_url, host(), interval=None, token=token) as first,
        open_scheduler_session(live.ws_url, host(), interval=None, token=token) as second,
    ):
        assert second.host_id == first.host_id == "10.0.0.1-alpha"
        await trio.sleep_forever()  # until the first session is lost


async def test_with_auth_the_same_identity_may_take_its_host_over(key_file: Path) -> None:
    with trio.fail_after(20):
        async with serving(auth_config(key_file)) as live:
            with pytest.raises(SessionLost) as info:
                await hold_two_sessions(live, issue_token(KEY, hostname="alpha"))
            assert info.value.close_code == 4002


async def test_without_auth_a_second_session_still_takes_the_host_over() -> None:
    with trio.fail_after(20):
        async with serving(LOOPBACK) as live:
            with pytest.raises(SessionLost) as info:
                await hold_two_sessions(live, None)
            assert info.value.close_code == 4002


# --- the admin API ------------------------------------------------------------------------


async def test_admin_scopes_guard_listings_and_eviction(key_file: Path) -> None:
    tokens = {
        "read": issue_token(KEY, scopes=[Scope.ADMIN_READ]),
        "write": issue_token(KEY, scopes=[Scope.ADMIN_WRITE]),
        "host": issue_token(KEY, hostname="alpha"),
    }
    with trio.fail_after(30):
        async with serving(auth_config(key_file)) as live:
            with pytest.raises(SessionLost, match="evicted by the scheduler: admin"):
                await admin_calls_during_a_session(live, tokens)
            assert auth_failures(live, "admin", "missing") == 2
            assert auth_failures(live, "admin", "malformed") == 1
            assert auth_failures(live, "admin", "scope") == 2


async def admin_calls_during_a_session(live: Live, tokens: dict[str, str]) -> None:
    admin, read, write = live.admin_url, tokens["read"], tokens["write"]
    async with open_scheduler_session(live.ws_url, host(), interval=None, token=tokens["host"]):
        hosts = f"{admin}/api/v1/hosts"
        one = f"{hosts}/10.0.0.1-alpha"
        assert await call("GET", f"{admin}/healthz") == (200, "ok\n")
        assert await call("GET", f"{admin}/readyz") == (200, "ready\n")
        assert (await call("GET", f"{admin}/metrics"))[0] == 200  # open by default
        status, body = await call("GET", hosts)
        assert status == 401
        assert "Authorization" in body["error"]
        assert (await call("GET", hosts, "garbage"))[0] == 401
        assert (await call("GET", hosts, tokens["host"]))[0] == 403
        assert (await call("GET", f"{admin}/api/v1/tasks", read))[0] == 200
        status, listed = await call("GET", hosts, read)
        assert (status, [h["id"] for h in listed]) == (200, ["10.0.0.1-alpha"])
        assert (await call("GET", hosts, write))[0] == 200  # write includes read
        # Eviction needs write; a refused one changes nothing.
        assert (await call("DELETE", one))[0] == 401
        assert (await call("DELETE", one, read))[0] == 403
        assert live.service.state.has_host("10.0.0.1-alpha")
        assert (await call("DELETE", one, write))[0] == 200
        assert not live.service.state.has_host("10.0.0.1-alpha")
        await trio.sleep_forever()  # until the eviction closes the session


async def test_metrics_can_require_a_read_token(key_file: Path) -> None:
    read = issue_token(KEY, scopes=[Scope.ADMIN_READ])
    with trio.fail_after(20):
        async with serving(auth_config(key_file, private_metrics=True)) as live:
            assert (await call("GET", f"{live.admin_url}/metrics"))[0] == 401
            status, body = await call("GET", f"{live.admin_url}/metrics", read)
            assert status == 200
            assert "scheduler_auth_failures_total" in body
            assert (await call("GET", f"{live.admin_url}/healthz"))[0] == 200


async def test_the_admin_api_refuses_a_foreign_host_header() -> None:
    """DNS rebinding: a page on evil.example resolves its name to 127.0.0.1."""
    config = attrs.evolve(LOOPBACK, allowed_hosts=("scheduler.example.com",))
    with trio.fail_after(20):
        async with serving(config) as live:
            admin = live.admin_url
            port = live.admin_address[1]
            hosts = f"{admin}/api/v1/hosts"
            status, body = await call("GET", hosts, Host=f"evil.example:{port}")
            assert status == 403
            assert "auth.allowed_hosts" in body["error"]
            assert (await call("DELETE", f"{hosts}/x", Host="evil.example"))[0] == 403
            assert (await call("GET", f"{admin}/metrics", Host="evil.example"))[0] == 403
            # Health probes use any address; loopback names, IPs and listed names are fine.
            assert (await call("GET", f"{admin}/healthz", Host="evil.example"))[0] == 200
            for name in (f"localhost:{port}", "127.0.0.1", "[::1]:80", "10.1.2.3", "LOCALHOST."):
                assert (await call("GET", hosts, Host=name))[0] == 200, name
            assert (await call("GET", hosts, Host="scheduler.example.com"))[0] == 200
            assert auth_failures(live, "admin", "host") == 3


def test_the_host_check_can_be_switched_off_and_knows_the_bind_address() -> None:
    guard = AdminGuard.from_config(attrs.evolve(LOOPBACK, admin_bind="sched.internal"), None)
    assert guard.host_allowed("sched.internal:8000")
    assert not guard.host_allowed("evil.example")
    anything = AdminGuard.from_config(attrs.evolve(LOOPBACK, allowed_hosts=("*",)), None)
    assert anything.host_allowed("evil.example")


# --- protected mode -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "overrides",
    [{"bind": "0.0.0.0"}, {"bind": "::"}, {"admin_bind": "10.0.0.5"}, {"bind": "sched.example"}],
)
def test_protected_mode_refuses_a_non_loopback_bind_without_auth(overrides: dict[str, str]) -> None:
    with pytest.raises(ConfigError, match="protected mode"):
        validate(attrs.evolve(LOOPBACK, **overrides))
    validate(attrs.evolve(LOOPBACK, insecure=True, **overrides))


def test_protected_mode_is_satisfied_by_a_key_or_by_client_certificates() -> None:
    validate(attrs.evolve(LOOPBACK, bind="0.0.0.0", auth_key_file="k"))
    tls = {"tls_cert_file": "c", "tls_key_file": "k", "tls_client_ca_file": "ca"}
    validate(attrs.evolve(LOOPBACK, bind="0.0.0.0", admin_bind="127.0.0.1", **tls))
    # Client certificates do not guard the admin API.
    with pytest.raises(ConfigError, match=r"server\.admin_bind"):
        validate(attrs.evolve(LOOPBACK, bind="0.0.0.0", **tls))
    for host_name in ("127.0.0.1", "::1", "[::1]", "localhost", "127.0.0.2"):
        validate(attrs.evolve(LOOPBACK, bind=host_name))


def test_serve_refuses_in_one_line_and_insecure_lifts_it(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as info:
        cli.main(["serve", "--bind", "0.0.0.0"])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith("scheduler: error: server.bind: refusing to listen on non-loopback")
    assert "--insecure" in err
    assert cli.main(["serve", "--bind", "0.0.0.0", "--insecure", "--print-config"]) == 0
    assert re.search(r"^insecure = true +# flag \(--insecure\)$", capsys.readouterr().out, re.M)


def test_serve_checks_the_key_file_before_starting(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as info:
        cli.main(["serve", "--auth-key-file", str(tmp_path / "nope"), "--print-config"])
    assert info.value.code == 2
    assert "auth.key_file: cannot read" in capsys.readouterr().err


def test_settings_that_go_together_are_checked() -> None:
    with pytest.raises(ConfigError, match="go together"):
        validate(attrs.evolve(LOOPBACK, tls_cert_file="c"))
    with pytest.raises(ConfigError, match=r"tls\.client_ca_file"):
        validate(attrs.evolve(LOOPBACK, tls_client_ca_file="ca"))
    with pytest.raises(ConfigError, match=r"auth\.previous_key_file"):
        validate(attrs.evolve(LOOPBACK, auth_previous_key_file="old"))


def test_the_auth_key_file_comes_from_the_environment_too(key_file: Path) -> None:
    environ = {"SCHEDULER_AUTH_KEY_FILE": str(key_file), "SCHEDULER_AUTH_INSECURE": "false"}
    config = config_from_resolved(resolve_config(None, environ, {"server.bind": "0.0.0.0"}))
    assert config.auth_key_file == str(key_file)


# --- the command line ---------------------------------------------------------------------


def test_token_issue_prints_a_token_the_server_accepts(
    key_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    verifier = TokenVerifier((KEY,))
    args = ["token", "issue", "--key-file", str(key_file)]
    assert cli.main([*args, "--hostname", "node-1", "--ttl", "1h"]) == 0
    token = capsys.readouterr().out.strip()
    assert verifier.verify(token, Scope.HOST).subject == "node-1"
    claims = jwt.decode(token, KEY, algorithms=["HS256"], audience="default")
    assert abs(claims["exp"] - (time.time() + 3600)) < 60
    assert claims["aud"] == "default"
    assert cli.main([*args, "--scope", "admin:write"]) == 0
    admin = verifier.verify(capsys.readouterr().out.strip(), Scope.ADMIN_WRITE)
    assert admin.subject is None
    assert cli.main([*args, "--cluster"]) == 0
    assert verifier.verify(capsys.readouterr().out.strip(), Scope.HOST).subject is None


def test_token_issue_needs_a_kind_and_a_usable_key(
    tmp_path: Path, key_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as info:
        cli.main(["token", "issue", "--key-file", str(key_file)])
    assert info.value.code == 2
    short = tmp_path / "short"
    short.write_text("tiny")
    with pytest.raises(SystemExit) as info:
        cli.main(["token", "issue", "--key-file", str(short), "--cluster"])
    assert info.value.code == 2
    assert "at least 32" in capsys.readouterr().err


async def test_the_tables_send_a_token_from_a_flag_a_file_or_the_environment(
    key_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: Any
) -> None:
    token_file = tmp_path / "admin.token"
    token_file.write_text(issue_token(KEY, scopes=[Scope.ADMIN_READ]) + "\n")
    with trio.fail_after(30):
        async with serving(auth_config(key_file)) as live:
            admin = ["--admin", live.admin_url, "--json"]

            def run(*argv: str) -> int:
                return cli.main(list(argv))

            assert await trio.to_thread.run_sync(run, "hosts", *admin) == 1
            err = capsys.readouterr().err
            assert "HTTP 401" in err
            assert "pass --token or --token-file" in err
            assert (
                await trio.to_thread.run_sync(run, "hosts", *admin, "--token-file", str(token_file))
                == 0
            )
            assert json.loads(capsys.readouterr().out) == []
            token = token_file.read_text().strip()
            assert await trio.to_thread.run_sync(run, "tasks", *admin, "--token", token) == 0
            capsys.readouterr()
            monkeypatch.setenv("SCHEDULER_TOKEN_FILE", str(token_file))
            assert await trio.to_thread.run_sync(run, "peers", *admin) == 0
            assert json.loads(capsys.readouterr().out) == []
            assert await trio.to_thread.run_sync(run, "task", "nope", *admin) == 1
            assert "HTTP 404" in capsys.readouterr().err


def test_resolve_token_prefers_flags_then_the_environment(tmp_path: Path) -> None:
    token_file = tmp_path / "t"
    token_file.write_text(" abc \n")
    assert resolve_token("xyz", None, {}) == "xyz"
    assert resolve_token(None, token_file, {"SCHEDULER_TOKEN": "env"}) == "abc"
    assert resolve_token(None, None, {"SCHEDULER_TOKEN": "env"}) == "env"
    assert resolve_token(None, None, {"SCHEDULER_TOKEN_FILE": str(token_file)}) == "abc"
    assert resolve_token(None, None, {}) is None
    with pytest.raises(ValueError, match="cannot read the token file"):
        resolve_token(None, tmp_path / "missing", {})
    (tmp_path / "empty").write_text("\n")
    with pytest.raises(ValueError, match="is empty"):
        resolve_token(None, tmp_path / "empty", {})


def test_the_peer_command_checks_its_credential_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = ["peer", "--scheduler", "wss://127.0.0.1:1/ws", "--hostname", "a"]
    for extra, message in (
        (["--token-file", str(tmp_path / "missing")], "cannot read the token file"),
        (["--ca-file", str(tmp_path / "missing.pem")], "cannot load the CA file"),
    ):
        with pytest.raises(SystemExit) as info:
            cli.main([*base, *extra])
        assert info.value.code == 2
        assert message in capsys.readouterr().err


# --- failed authentication is logged, throttled per address --------------------------------


def test_the_throttle_writes_one_line_per_address_per_interval_and_counts_the_rest() -> None:
    throttle = LogThrottle(10.0, max_addresses=3)
    assert throttle.event("10.0.0.1", 0.0) == [Line("10.0.0.1", 0)]
    for t in range(1, 100):
        assert throttle.event("10.0.0.1", t * 0.1) == []
    assert throttle.event("10.0.0.1", 10.0) == [Line("10.0.0.1", 99)]
    assert throttle.event("10.0.0.1", 10.5) == []


def test_the_throttle_table_is_bounded_whatever_the_addresses() -> None:
    throttle = LogThrottle(10.0, max_addresses=3)
    lines = [line for n in range(1000) for line in throttle.event(f"10.1.{n // 250}.{n}", 1.0)]
    # Three addresses get their own line, the other 997 share one: 4 lines, 4 entries.
    assert [line.address for line in lines] == ["10.1.0.0", "10.1.0.1", "10.1.0.2", OTHERS]
    assert len(throttle) == 4
    # Once the interval ran out, a new address takes the room of the old ones, whose
    # held-back counts are written as closing lines.
    assert throttle.event("10.0.0.9", 11.0) == [
        Line(OTHERS, 996, current=False),
        Line("10.0.0.9", 0),
    ]
    assert len(throttle) == 1


async def test_a_flood_of_bad_handshakes_from_one_address_is_one_log_line_per_interval(
    key_file: Path, mock_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="scheduler.service")
    bad = upgrade_head("/ws").replace("\r\n\r\n", "\r\nAuthorization: Bearer nope\r\n\r\n")
    async with serving(auth_config(key_file)) as live:
        for _ in range(25):
            assert (await raw_http(live.ws_address, bad)).status == 401
        mock_clock.jump(AUTH_LOG_INTERVAL)
        for _ in range(5):
            assert (await raw_http(live.ws_address, bad)).status == 401
        assert auth_failures(live, "peers", "malformed") == 30
    refused = [r for r in caplog.records if r.getMessage() == "handshake refused"]
    assert [r.fields for r in refused] == [  # type: ignore[attr-defined]
        {"address": "127.0.0.1", "suppressed": 0, "status": 401, "reason": "malformed"},
        {"address": "127.0.0.1", "suppressed": 24, "status": 401, "reason": "malformed"},
    ]


async def test_refused_admin_requests_are_logged_throttled_with_the_address(
    key_file: Path, mock_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="scheduler.admin")
    async with serving(auth_config(key_file)) as live:
        for _ in range(20):
            assert (await call("GET", f"{live.admin_url}/api/v1/hosts"))[0] == 401
        assert auth_failures(live, "admin", "missing") == 20
    refused = [r for r in caplog.records if r.getMessage() == "admin request refused"]
    assert [r.fields for r in refused] == [  # type: ignore[attr-defined]
        {"address": "127.0.0.1", "suppressed": 0, "reason": "missing"}
    ]


# --- risky modes are said at start-up ------------------------------------------------------


def test_tokens_without_tls_off_loopback_and_insecure_are_each_one_warning() -> None:
    tokens = attrs.evolve(LOOPBACK, bind="0.0.0.0", auth_key_file="k")
    (risk,) = risky_modes(tokens)
    assert risk.startswith("bearer tokens cross the network in clear to peers 0.0.0.0 and admin")
    assert "--tls-cert-file" in risk
    (risk,) = risky_modes(attrs.evolve(LOOPBACK, bind="::", insecure=True))
    assert risk.startswith("auth.insecure (--insecure): peers :: and admin :: without auth")
    assert "--auth-key-file" in risk
    # Nothing to say: loopback, TLS with tokens, or insecure where it lifts nothing.
    tls = {"tls_cert_file": "c", "tls_key_file": "k"}
    assert risky_modes(attrs.evolve(tokens, **tls)) == []
    assert risky_modes(attrs.evolve(LOOPBACK, auth_key_file="k")) == []
    assert risky_modes(attrs.evolve(LOOPBACK, insecure=True)) == []
    # Client certificates guard the peers' port; the open admin port is the risk.
    admin_only = attrs.evolve(
        LOOPBACK, bind="0.0.0.0", insecure=True, tls_client_ca_file="ca", **tls
    )
    (risk,) = risky_modes(admin_only)
    assert risk.startswith("auth.insecure (--insecure): admin 0.0.0.0 without")


async def test_serve_logs_one_warning_per_risky_mode(
    key_file: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="scheduler.service")
    config = auth_config(key_file, bind="0.0.0.0", insecure=False)
    with trio.fail_after(20):
        async with serving(config):
            pass
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert [w for w in warnings if "in clear" in w] == risky_modes(config)
    caplog.clear()
    with trio.fail_after(20):
        async with serving(attrs.evolve(LOOPBACK, bind="0.0.0.0", insecure=True)):
            pass
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert [w for w in warnings if w.startswith("auth.insecure")] == [
        "auth.insecure (--insecure): peers 0.0.0.0 and admin 0.0.0.0 without authentication: "
        "anyone who can reach it may announce, take over or evict any host, and read or evict "
        "through the admin API; set auth.key_file (--auth-key-file)"
    ]
