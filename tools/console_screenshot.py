"""Take the screenshot of the web console in docs/console.png.

Runs a scheduler on loopback (ports picked by the OS), starts reference peers
(``scheduler peer --hosts N --task URL``) against it, evicts one host through the
admin API and stops a rack of peers so that its hosts are evicted after the
reconnect grace, then opens the console in headless Chromium (Debian's
``chromium`` package, driven by Playwright), opens a task, and saves a PNG.

    python tools/console_screenshot.py docs/console.png
"""

from __future__ import annotations

import argparse
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import trio
from playwright.sync_api import sync_playwright

from scheduler.service import SchedulerService, ServiceConfig

CHROMIUM = "/usr/lib/chromium/chromium"
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
TASK = "https://example.com/releases/image-2026.12.iso"


def peers(ws_url: str, hostname: str, hosts: int, *tasks: str) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "scheduler", "peer", "--scheduler", ws_url]
    command += ["--hostname", hostname, "--hosts", str(hosts), "--log-level", "warning"]
    for task in tasks:
        command += ["--task", task]
    return subprocess.Popen(command)


def shoot(admin_url: str, path: Path) -> None:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.goto(f"{admin_url}/")
            # Functions, not strings: the page's policy forbids eval.
            page.wait_for_function(
                "() => document.getElementById('status').dataset.state === 'live'"
            )
            page.wait_for_function(
                "() => document.querySelectorAll('#tasks button.link').length > 0"
            )
            page.locator("#tasks button.link").first.click()
            page.wait_for_function("() => document.getElementById('task-graph').naturalWidth > 0")
            page.wait_for_timeout(500)  # let the last update settle before the picture
            page.screenshot(path=str(path), full_page=True)
        finally:
            browser.close()


async def main(path: Path) -> None:
    config = ServiceConfig(port=0, admin_port=0, entrypoints=False, reconnect_grace=2.0)
    service = SchedulerService(config)
    async with trio.open_nursery() as nursery:
        ws_url, admin_url = await nursery.start(
            lambda task_status: service.run(task_status=task_status)
        )
        racks = [
            peers(ws_url, "rack-a", 6, TASK),
            peers(ws_url, "rack-b", 5, TASK, "https://example.com/models/weights.tar"),
            peers(ws_url, "rack-c", 3),
        ]
        try:
            while service.state.view.host_count() < 14:  # noqa: ASYNC110 - the peers start
                await trio.sleep(0.1)
            await trio.sleep(2)
            request = urllib.request.Request(f"{admin_url}/api/v1/hosts/127.0.0.1-rack-a-5")
            request.method = "DELETE"
            await trio.to_thread.run_sync(urllib.request.urlopen, request)
            racks[2].send_signal(signal.SIGKILL)  # a rack lost: evicted after the grace
            await trio.sleep(4)
            await trio.to_thread.run_sync(shoot, admin_url, path)
        finally:
            for rack in racks:
                rack.terminate()
                await trio.to_thread.run_sync(rack.wait)
            nursery.cancel_scope.cancel()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path", type=Path, help="where to write the PNG")
    trio.run(main, parser.parse_args().path)
