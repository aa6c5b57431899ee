"""End to end with authentication and TLS: real ``serve``, ``peer``, ``token`` and
``hosts`` processes on loopback, as an operator would run them."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import trio
import trustme

from tests.test_e2e import Processes, poll

pytestmark = pytest.mark.e2e


def scheduler(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "scheduler", *args],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


async def test_a_secured_deployment_end_to_end(processes: Processes, tmp_path: Path) -> None:
    ca = trustme.CA()
    server = ca.issue_cert("127.0.0.1")
    ca_file, cert, key = tmp_path / "ca.pem", tmp_path / "tls.pem", tmp_path / "tls.key"
    ca.cert_pem.write_to_path(str(ca_file))
    server.cert_chain_pems[0].write_to_path(str(cert))
    server.private_key_pem.write_to_path(str(key))
    signing_key = tmp_path / "token.key"
    signing_key.write_text("0123456789abcdef" * 4 + "\n")

    def issue(*args: str) -> Path:
        result = scheduler("token", "issue", "--key-file", str(signing_key), *args)
        assert result.returncode == 0, result.stderr
        path = tmp_path / f"token-{len(list(tmp_path.glob('token-*')))}"
        path.write_text(result.stdout)
        return path

    host_token, admin_token = issue("--hostname", "node-1"), issue("--scope", "admin:read")
    serve = processes.start(
        "serve", "--port", "0", "--admin-port", "0",
        "--auth-key-file", str(signing_key),
        "--tls-cert-file", str(cert), "--tls-key-file", str(key),
    )  # fmt: skip
    assert serve.stdout is not None
    with trio.fail_after(20):
        line = await trio.to_thread.run_sync(serve.stdout.readline, abandon_on_cancel=True)
    match = re.search(r"(wss://\S+).*(https://\S+)", line)
    assert match, line
    ws_url, admin = match.groups()
    processes.start(
        "peer", "--scheduler", ws_url, "--hostname", "node-1",
        "--token-file", str(host_token), "--ca-file", str(ca_file),
    )  # fmt: skip

    def listed() -> list[str] | None:
        result = scheduler(
            "hosts", "--admin", admin, "--json",
            "--token-file", str(admin_token), "--ca-file", str(ca_file),
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        names = [h["hostname"] for h in json.loads(result.stdout)]
        return names or None

    assert await poll(listed, 30, "node-1 to announce over wss") == ["node-1"]
    refused = await trio.to_thread.run_sync(
        lambda: scheduler("hosts", "--admin", admin, "--ca-file", str(ca_file))
    )
    assert refused.returncode == 1
    assert "HTTP 401" in refused.stderr
