"""``scheduler peer`` stops on what no retry can fix, and retries what time can fix.

A real ``scheduler peer`` process against a real scheduler on loopback (in this
process): a rejected token, a forbidden hostname and an untrusted certificate each
end it with status 2 and one line; a scheduler that is not there yet is retried with
backoff.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import attrs
import pytest
import trio
import trustme

from scheduler.client import ConnectError, PermanentError, RequestError
from scheduler.client._connection import _connect_error
from scheduler.client._errors import permanent_error
from scheduler.service import Scope, issue_token
from tests.service_support import LOOPBACK, serving
from tests.test_e2e import Processes, poll

pytestmark = pytest.mark.e2e

KEY = b"0123456789abcdef" * 4
#: How long a peer process may take to do what a test waits for: generous, since
#: starting Python on a loaded machine alone can take seconds.
WAIT = 60.0


def peer(*args: str, timeout: float) -> subprocess.CompletedProcess[str]:
    """``scheduler peer ARGS`` to its end (TimeoutExpired if it runs past ``timeout``)."""
    return subprocess.run(
        [sys.executable, "-m", "scheduler", "peer", "--announce-interval", "30s", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


async def run_peer_process(*args: str, within: float = WAIT) -> subprocess.CompletedProcess[str]:
    return await trio.to_thread.run_sync(lambda: peer(*args, timeout=within))


def the_one_error_line(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 2, result.stderr
    errors = [line for line in result.stderr.splitlines() if "error" in line.lower()]
    assert len(errors) == 1, result.stderr
    assert "reconnecting" not in result.stderr
    return errors[0]


@pytest.fixture
def key_file(tmp_path: Path) -> Path:
    path = tmp_path / "token.key"
    path.write_bytes(KEY)
    return path


async def test_a_rejected_token_stops_the_peer_with_one_line(key_file: Path) -> None:
    config = attrs.evolve(LOOPBACK, auth_key_file=str(key_file))
    stranger = issue_token(b"another key of thirty-two bytes!", hostname="h1")
    with trio.fail_after(30):
        async with serving(config) as live:
            result = await run_peer_process(
                "--scheduler", live.ws_url, "--hostname", "h1", "--token", stranger
            )
    line = the_one_error_line(result)
    assert "HTTP 401" in line
    assert "check the token" in line


async def test_a_forbidden_hostname_stops_the_peer_with_one_line(key_file: Path) -> None:
    config = attrs.evolve(LOOPBACK, auth_key_file=str(key_file))
    token = issue_token(KEY, scopes=[Scope.HOST], hostname="h1")
    with trio.fail_after(30):
        async with serving(config) as live:
            result = await run_peer_process(
                "--scheduler", live.ws_url, "--hostname", "h2", "--token", token
            )
            assert live.service.state.host_count() == 0
    line = the_one_error_line(result)
    assert "forbidden: authenticated as token 'h1'; it may not announce hostname 'h2'" in line
    assert "use the token issued for this hostname" in line


async def test_an_untrusted_certificate_stops_the_peer_with_one_line(tmp_path: Path) -> None:
    ca = trustme.CA()
    server = ca.issue_cert("127.0.0.1")
    cert, key = tmp_path / "tls.pem", tmp_path / "tls.key"
    server.cert_chain_pems[0].write_to_path(str(cert))
    server.private_key_pem.write_to_path(str(key))
    config = attrs.evolve(LOOPBACK, tls_cert_file=str(cert), tls_key_file=str(key))
    with trio.fail_after(30):
        async with serving(config) as live:
            result = await run_peer_process("--scheduler", live.ws_url, "--hostname", "h1")
    line = the_one_error_line(result)
    assert "CERTIFICATE_VERIFY_FAILED" in line
    assert "--ca-file" in line


async def test_a_scheduler_that_is_not_there_yet_is_retried(processes: Processes) -> None:
    with trio.socket.socket() as sock:  # a port nobody listens on
        await sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"ws://127.0.0.1:{port}/ws"
    peer = processes.start("peer", "--scheduler", url, "--announce-interval", "30s")

    def retried_twice() -> bool:
        return sum("reconnecting in" in line for line in processes.stderr(peer)) >= 2

    await poll(retried_twice, WAIT, "the peer to retry twice")
    assert peer.poll() is None  # still trying, not stopped


def test_which_errors_are_permanent() -> None:
    url = "wss://scheduler.example/ws"
    assert permanent_error(ConnectError(url, "HTTP 401", 401), announcing=True) is not None
    assert permanent_error(ConnectError(url, "HTTP 503", 503), announcing=True) is None
    assert permanent_error(ConnectError(url, "timed out"), announcing=True) is None
    refused = RequestError("forbidden", "not yours")
    assert isinstance(permanent_error(refused, announcing=True), PermanentError)
    assert permanent_error(refused, announcing=False) is None  # a later request: not the host's
    assert permanent_error(RequestError("limit_exceeded", "full"), announcing=True) is None


def test_a_plain_url_against_a_tls_port_hints_at_wss() -> None:
    slow = _connect_error("ws://127.0.0.1:8002/ws", trio.TooSlowError(), 5.0)
    assert "no handshake within 5 s (if the scheduler serves TLS, use wss://)" in str(slow)
    assert not slow.permanent
    secure = _connect_error("wss://127.0.0.1:8002/ws", trio.TooSlowError(), 5.0)
    assert "wss://" not in secure.detail
