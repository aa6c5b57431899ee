"""Real WebSocket clients no one here wrote, against the real server.

Each announces a host, registers a peer and gets its ``schedule``: the ``websockets``
library (over ``ws://`` and ``wss://``), Node's ``ws`` package (installed with npm into
a temporary directory) and Chromium's ``WebSocket`` (Debian's ``chromium``, driven by
Playwright). A browser sends ``Origin`` (``null`` for a blank page): that case runs
with the origin allowed. Without node, npm, Chromium or Playwright a test is skipped,
saying why, except under ``CI=true``, where it fails.
"""

from __future__ import annotations

import json
import os
import shutil
import ssl
import subprocess
from pathlib import Path
from typing import Any

import attrs
import pytest
import trio

from scheduler.protocol import SUBPROTOCOL

from .service_support import LOOPBACK, host_payload, serving
from .test_console_browser import ARGS, CHROMIUM, _missing

ANNOUNCE = {"type": "announce_host", "id": 1, "host": host_payload("interop"), "interval": 30}
REGISTER = {
    "type": "register_peer",
    "id": 2,
    "peer_id": "peer-1",
    "task": {"url": "https://example.com/base.tar", "total_piece_count": 4},
}
#: What each client must see: the two replies, in order.
EXPECTED = [("host_accepted", 1), ("schedule", 2)]


def _skip_or_fail(reason: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI runs the interop tests: {reason}")
    pytest.skip(reason)


def websockets_session(url: str, context: ssl.SSLContext | None) -> list[tuple[str, object]]:
    """The ``websockets`` library's own synchronous client (in a worker thread)."""
    from websockets.sync.client import connect  # noqa: PLC0415

    with connect(url, subprotocols=[SUBPROTOCOL], ssl=context, open_timeout=10) as ws:  # type: ignore[list-item]
        assert ws.subprotocol == SUBPROTOCOL
        seen = []
        for message in (ANNOUNCE, REGISTER):
            ws.send(json.dumps(message))
            reply = json.loads(ws.recv(timeout=10))
            seen.append((reply["type"], reply.get("id")))
        ws.close()
    assert ws.close_code == 1000
    return seen


@pytest.mark.parametrize("secure", [False, True], ids=["ws", "wss"])
async def test_the_websockets_library(
    secure: bool, tls_files: tuple[str, str, ssl.SSLContext]
) -> None:
    cert, key, context = tls_files
    config = attrs.evolve(LOOPBACK, tls_cert_file=cert, tls_key_file=key) if secure else LOOPBACK
    with trio.fail_after(30):
        async with serving(config) as live:
            seen = await trio.to_thread.run_sync(
                websockets_session, live.ws_url, context if secure else None
            )
    assert seen == EXPECTED


NODE_CLIENT = """
const WebSocket = require("ws");
const [url, announce, register] = process.argv.slice(2);
const ws = new WebSocket(url, ["scheduler.v1"]);
const seen = [];
ws.on("open", () => ws.send(announce));
ws.on("message", (data) => {
  const reply = JSON.parse(data.toString());
  seen.push([reply.type, reply.id]);
  if (reply.type === "host_accepted") ws.send(register);
  else ws.close(1000);
});
ws.on("close", (code) => { console.log(JSON.stringify({seen, code})); });
ws.on("error", (err) => { console.error(err.message); process.exit(1); });
"""


@pytest.fixture(scope="session")
def node_ws(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory with Node's ``ws`` package installed (npm) and the client script."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        _skip_or_fail("node and npm are needed for the Node client")
    root = tmp_path_factory.mktemp("node-ws")
    done = subprocess.run(
        ["npm", "install", "--no-audit", "--no-fund", "--ignore-scripts", "ws@8"],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if done.returncode != 0:
        _skip_or_fail(f"npm install ws failed: {done.stderr.strip()[-200:]}")
    (root / "client.js").write_text(NODE_CLIENT, encoding="utf-8")
    return root


async def test_nodes_ws_package(node_ws: Path) -> None:
    messages = [json.dumps(ANNOUNCE), json.dumps(REGISTER)]
    with trio.fail_after(60):
        async with serving() as live:
            done = await trio.run_process(
                ["node", str(node_ws / "client.js"), live.ws_url, *messages],
                cwd=node_ws,
                capture_stdout=True,
                capture_stderr=True,
                check=False,
            )
    assert done.returncode == 0, done.stderr.decode()
    result = json.loads(done.stdout)
    assert [tuple(pair) for pair in result["seen"]] == EXPECTED
    assert result["code"] == 1000


BROWSER_CLIENT = """
([url, announce, register]) => new Promise((resolve, reject) => {
  const ws = new WebSocket(url, ["scheduler.v1"]);
  const seen = [];
  ws.onopen = () => ws.send(announce);
  ws.onmessage = (event) => {
    const reply = JSON.parse(event.data);
    seen.push([reply.type, reply.id]);
    if (reply.type === "host_accepted") ws.send(register);
    else ws.close(1000);
  };
  ws.onclose = (event) => resolve({seen, code: event.code, protocol: ws.protocol});
  ws.onerror = () => reject(new Error("WebSocket error"));
})
"""


def browser_session(url: str) -> dict[str, Any]:
    """Chromium's WebSocket, from a blank page (its ``Origin`` is ``null``)."""
    from playwright.sync_api import sync_playwright  # noqa: PLC0415

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            page = browser.new_page()
            result: dict[str, Any] = page.evaluate(
                BROWSER_CLIENT, [url, json.dumps(ANNOUNCE), json.dumps(REGISTER)]
            )
            return result
        finally:
            browser.close()


async def test_chromium() -> None:
    missing = _missing()
    if missing is not None:
        _skip_or_fail(missing)
    config = attrs.evolve(LOOPBACK, allowed_origins=("null",))
    with trio.fail_after(120):
        async with serving(config) as live:
            result = await trio.to_thread.run_sync(browser_session, live.ws_url)
    assert [tuple(pair) for pair in result["seen"]] == EXPECTED
    assert (result["code"], result["protocol"]) == (1000, SUBPROTOCOL)
