"""The console in a real browser: Debian's Chromium, driven by Playwright's Python API.

The service runs in this test's trio loop on real loopback listeners; the browser is
driven from a worker thread, which calls back into the loop to announce hosts and read
the service. Without Chromium or Playwright the tests are skipped, saying why, except
under ``CI=true``, where a missing browser fails them.
"""

from __future__ import annotations

import json
import os
import re
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs
import pytest
import trio

from scheduler.client import open_scheduler_session
from scheduler.protocol import HostPayload
from scheduler.service import Scope, issue_token
from tests.service_support import (
    LOOPBACK,
    Live,
    host_payload,
    open_client,
    request,
    serving,
)

if TYPE_CHECKING:
    from playwright.sync_api import Page

#: Debian's chromium package (``apt-get install chromium``); another path with
#: ``SCHEDULER_TEST_CHROMIUM``.
CHROMIUM = os.environ.get("SCHEDULER_TEST_CHROMIUM", "/usr/lib/chromium/chromium")
#: Headless, as root, and quiet: no connection leaves the machine.
ARGS = [
    "--no-sandbox",
    "--headless",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
#: How long the page may take to show a change: the console's promise.
LIVE_MS = 2000
#: How long a page may take to load and connect (a loaded machine starts Chromium slowly).
LOAD_MS = 20_000
KEY = b"b" * 32


def _missing() -> str | None:
    try:
        import playwright.sync_api  # noqa: F401, PLC0415
    except ImportError:
        return "playwright is not installed (pip install -e '.[testing]')"
    if not os.access(CHROMIUM, os.X_OK):
        return f"no Chromium at {CHROMIUM} (apt-get install chromium, or SCHEDULER_TEST_CHROMIUM)"
    return None


@pytest.fixture
def browser_ready() -> None:
    missing = _missing()
    if missing is None:
        return
    pytest.skip(missing)  # a failure under CI=true (tests/conftest.py)


@attrs.frozen
class Loop:
    """What the browser's thread may ask of the trio loop."""

    live: Live
    nursery: trio.Nursery

    def announce(self, hostname: str, ip: str, *, peer: str | None = None, **fields: Any) -> None:
        """Open a session in the loop and keep it open; announce the host (with ``fields``);
        register ``peer``."""
        host = host_payload(hostname, ip, **fields)
        trio.from_thread.run(self.nursery.start, _hold_session, self.live, host, peer)

    def announce_with(self, token: str, hostname: str, ip: str) -> None:
        """The same through the client library, with a host token (authentication on)."""
        trio.from_thread.run(self.nursery.start, _hold_client, self.live, token, hostname, ip)


async def _hold_client(
    live: Live,
    token: str,
    hostname: str,
    ip: str,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    payload = HostPayload(hostname=hostname, ip=ip, port=8002, download_port=8001)
    async with open_scheduler_session(live.ws_url, payload, interval=None, token=token):
        task_status.started()
        await trio.sleep_forever()


async def _hold_session(
    live: Live,
    host: dict[str, Any],
    peer: str | None,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    async with open_client(live.ws_url) as ws:
        message = {"type": "announce_host", "id": 1, "host": host, "interval": 3600.0}
        reply = await request(ws, message)
        assert reply["type"] == "host_accepted", reply
        if peer is not None:
            task = {"url": "https://example.invalid/image.iso", "total_piece_count": 8}
            reply = await request(
                ws, {"type": "register_peer", "id": 2, "peer_id": peer, "task": task}
            )
            assert reply["type"] == "schedule", reply
        task_status.started()
        await trio.sleep_forever()  # what it is sent (a fetch_task) waits unread


def admin_request(
    method: str, url: str, token: str | None = None, body: dict[str, Any] | None = None
) -> tuple[int, Any]:
    """The status and the decoded JSON answer of one admin request."""
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, method=method, data=data)
    if token is not None:
        req.add_header("Authorization", f"Bearer {token}")
    with urllib.request.urlopen(req, timeout=5) as response:
        return response.status, json.loads(response.read())


def text_of(element_id: str, needle: str) -> str:
    """A page expression: the element's text includes ``needle`` (passed as an argument)."""
    return f"(needle) => document.getElementById({element_id!r}).innerText.includes(needle)"


REFUSED = re.compile(r"Failed to load resource: the server responded with a status of 40[13] .*")
STATUS_LIVE = "() => document.getElementById('status').dataset.state === 'live'"


@attrs.define
class Watch:
    """What the page did that it should not: script errors, CSP refusals, foreign requests."""

    origin: str
    problems: list[str] = attrs.field(factory=list)

    def attach(self, page: Page) -> None:
        page.on("pageerror", lambda error: self.problems.append(f"page error: {error}"))
        page.on("console", lambda message: self.console(message.type, message.text))
        page.on("request", lambda request: self.check(request.url))

    def console(self, kind: str, text: str) -> None:
        """A console message: an error is a problem (a CSP refusal is one), except the
        browser's note of a refused token, which the token test provokes."""
        if kind == "error" and not REFUSED.fullmatch(text):
            self.problems.append(f"console {kind}: {text}")

    def check(self, url: str) -> None:
        """A request the page made: to its own origin, or from memory."""
        own = (self.origin, "ws://" + self.origin.removeprefix("http://"), "blob:", "data:")
        if not url.startswith(own):
            self.problems.append(f"request elsewhere: {url}")


def in_browser(steps: Callable[[Page], None], origin: str, screenshot: Path | None = None) -> None:
    """Run ``steps`` on a fresh page of a fresh headless Chromium (in a worker thread)."""
    from playwright.sync_api import sync_playwright  # noqa: PLC0415

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            watch = Watch(origin)
            watch.attach(page)
            steps(page)
            if screenshot is not None:
                page.screenshot(path=str(screenshot), full_page=True)
            assert watch.problems == []
        finally:
            browser.close()


async def run_in_browser(
    config: Any, steps: Callable[[Page, Loop], None], screenshot: Path | None = None
) -> None:
    with trio.fail_after(120):
        async with serving(config) as live, trio.open_nursery() as nursery:
            loop = Loop(live, nursery)
            await trio.to_thread.run_sync(
                in_browser, lambda page: steps(page, loop), live.admin_url, screenshot
            )
            nursery.cancel_scope.cancel()


@pytest.mark.usefixtures("browser_ready")
async def test_the_console_shows_a_new_host_and_its_eviction_without_a_reload(
    tmp_path: Path,
) -> None:
    def steps(page: Page, loop: Loop) -> None:
        admin = loop.live.admin_url
        page.goto(f"{admin}/", timeout=LOAD_MS)
        page.wait_for_function(STATUS_LIVE, timeout=LOAD_MS)
        assert page.locator("#token-form").is_hidden()
        assert "no hosts" in page.inner_text("#hosts")
        navigations = page.evaluate("performance.getEntriesByType('navigation').length")

        # A host announces over a real session: the page shows it, no reload.
        loop.announce("browser-host", "10.0.0.7", peer="p-browser")
        host_id = "10.0.0.7-browser-host"
        page.wait_for_function(text_of("hosts", host_id), arg=host_id, timeout=LIVE_MS)
        row = page.locator("#hosts tbody tr", has_text=host_id)
        assert "connected" in row.inner_text()
        assert "0 / 50" in row.inner_text()  # upload load: in use / limit
        page.wait_for_function(
            text_of("tasks", "https://example.invalid/image.iso"),
            arg="https://example.invalid/image.iso",
            timeout=LIVE_MS,
        )
        # The task's peers and its parent graph (an SVG fetched with the page's token).
        page.locator("#tasks button.link").first.click()
        page.wait_for_function(text_of("task-peers", "p-browser"), arg="p-browser", timeout=LIVE_MS)
        page.wait_for_function(
            "() => document.getElementById('task-graph').naturalWidth > 0", timeout=LIVE_MS
        )

        # An admin evicts it: it leaves the hosts and shows in the recent evictions.
        status, _ = admin_request("DELETE", f"{admin}/api/v1/hosts/{host_id}")
        assert status == 200
        page.wait_for_function(text_of("evictions", host_id), arg=host_id, timeout=LIVE_MS)
        page.wait_for_function(
            "(id) => !document.getElementById('hosts').innerText.includes(id)",
            arg=host_id,
            timeout=LIVE_MS,
        )
        eviction = page.locator("#evictions tbody tr", has_text=host_id)
        assert "admin" in eviction.inner_text()
        assert page.evaluate("performance.getEntriesByType('navigation').length") == navigations
        assert page.evaluate("window.location.href") == f"{admin}/"

    await run_in_browser(LOOPBACK, steps, tmp_path / "console.png")
    assert (tmp_path / "console.png").read_bytes().startswith(b"\x89PNG")


@pytest.mark.usefixtures("browser_ready")
async def test_the_console_shows_a_hosts_uplink_and_a_new_job_without_a_reload(
    tmp_path: Path,
) -> None:
    def steps(page: Page, loop: Loop) -> None:
        admin = loop.live.admin_url
        page.goto(f"{admin}/", timeout=LOAD_MS)
        page.wait_for_function(STATUS_LIVE, timeout=LOAD_MS)
        assert "no jobs" in page.inner_text("#jobs")

        # A host that announced its uplink: the page shows what it served against it.
        loop.announce("uplink-host", "10.0.0.9", upload_bandwidth=1_000_000_000)
        host_id = "10.0.0.9-uplink-host"
        page.wait_for_function(text_of("hosts", host_id), arg=host_id, timeout=LIVE_MS)
        row = page.locator("#hosts tbody tr", has_text=host_id)
        assert "0 bit/s of 1.0 Gbit/s" in row.inner_text()

        # A preheat job submitted through the admin API shows, running, with its hosts.
        body = {"type": "preheat", "url": "https://example.invalid/warm.iso", "scope": "all_peers"}
        status, job = admin_request(
            "POST", f"{admin}/api/v1/jobs", body=body | {"content_length": 8}
        )
        assert status == 202
        page.wait_for_function(text_of("jobs", job["id"]), arg=job["id"], timeout=LIVE_MS)
        job_row = page.locator("#jobs tbody tr", has_text=job["id"]).inner_text()
        assert "running" in job_row
        assert "0 ok, 0 failed of 1" in job_row
        assert "https://example.invalid/warm.iso" in job_row
        cards = page.inner_text("#summary")
        assert re.search(r"jobs running or queued\s+1", cards), cards

    await run_in_browser(LOOPBACK, steps, tmp_path / "jobs.png")
    assert (tmp_path / "jobs.png").read_bytes().startswith(b"\x89PNG")


@pytest.mark.usefixtures("browser_ready")
async def test_with_auth_the_console_asks_for_a_token_and_works_with_it(tmp_path: Path) -> None:
    key_file = tmp_path / "admin.key"
    key_file.write_bytes(KEY)
    reader = issue_token(KEY, scopes=[Scope.ADMIN_READ])
    host_token = issue_token(KEY, scopes=[Scope.HOST])

    def steps(page: Page, loop: Loop) -> None:
        admin = loop.live.admin_url
        page.goto(f"{admin}/", timeout=LOAD_MS)
        page.wait_for_selector("#token-form", state="visible", timeout=LOAD_MS)
        assert page.locator("#console").is_hidden()
        assert "needs a token" in page.inner_text("#token-message")

        # A token without admin:read is refused, and the page asks again.
        page.fill("#token-input", host_token)
        page.click("#token-submit")
        page.wait_for_function(text_of("token-message", "refused"), arg="refused", timeout=LOAD_MS)
        assert page.locator("#token-form").is_visible()

        page.fill("#token-input", reader)
        page.click("#token-submit")
        page.wait_for_function(STATUS_LIVE, timeout=LOAD_MS)
        assert page.locator("#token-form").is_hidden()
        # Kept for this tab only, and never in a URL.
        assert page.evaluate("sessionStorage.getItem('scheduler.console.token')") == reader
        assert page.evaluate("localStorage.length") == 0
        assert reader not in page.evaluate("window.location.href")

        loop.announce_with(issue_token(KEY, hostname="secure-host"), "secure-host", "10.0.0.8")
        host_id = "10.0.0.8-secure-host"
        page.wait_for_function(text_of("hosts", host_id), arg=host_id, timeout=LIVE_MS)

        # A reload keeps the token of the tab: no question asked again.
        page.reload(timeout=LOAD_MS)
        page.wait_for_function(STATUS_LIVE, timeout=LOAD_MS)
        page.wait_for_function(text_of("hosts", host_id), arg=host_id, timeout=LOAD_MS)

    config = attrs.evolve(LOOPBACK, auth_key_file=str(key_file))
    await run_in_browser(config, steps)
