"""``scheduler hosts``, ``peers`` and ``tasks`` against a real in-process server."""

from __future__ import annotations

import json
from typing import Any

import pytest
import trio

from scheduler.cli import main
from scheduler.service import SchedulerService, ServiceConfig
from tests.service_support import announce, open_client, request

CONFIG = ServiceConfig(port=0, admin_port=0, entrypoints=False, ping_interval=30.0)
TASK = {"url": "https://example.invalid/file", "total_piece_count": 4}


async def run_cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    status = await trio.to_thread.run_sync(main, argv)
    out, err = capsys.readouterr()
    return status, out, err


async def test_peers_and_tasks_tables_and_json(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "200")
    with trio.fail_after(30):
        service = SchedulerService(CONFIG)
        async with trio.open_nursery() as nursery:
            ws_url, admin = await nursery.start(
                lambda task_status: service.run(task_status=task_status)
            )
            async with open_client(ws_url) as ws:
                await announce(ws, "alpha", "10.0.0.1", interval=30.0)
                await request(ws, {"type": "register_peer", "peer_id": "p1", "task": TASK})

                status, out, _ = await run_cli(["peers", "--admin", admin, "--json"], capsys)
                assert status == 0
                (peer,) = json.loads(out)
                assert (peer["id"], peer["host_id"]) == ("p1", "10.0.0.1-alpha")

                status, out, _ = await run_cli(["peers", "--admin", admin], capsys)
                assert status == 0
                for text in ("Peers", "p1", "10.0.0.1-alpha", "1 peer"):
                    assert text in out

                _, out, _ = await run_cli(["peers", "--admin", admin, "--task", "nope"], capsys)
                assert "0 peers" in out

                status, out, _ = await run_cli(["tasks", "--admin", admin, "--json"], capsys)
                assert status == 0
                tasks: list[dict[str, Any]] = json.loads(out)
                assert [t["url"] for t in tasks] == [TASK["url"]]

                status, out, _ = await run_cli(["tasks", "--admin", admin], capsys)
                assert status == 0
                for text in ("Tasks", TASK["url"], "1 task"):
                    assert text in out

                status, out, _ = await run_cli(["hosts", "--admin", admin], capsys)
                assert status == 0
                assert "10.0.0.1-alpha" in out
            nursery.cancel_scope.cancel()


async def test_an_unreachable_admin_api_is_status_1(capsys: pytest.CaptureFixture[str]) -> None:
    with trio.fail_after(30):
        listener = (await trio.open_tcp_listeners(0, host="127.0.0.1"))[0]
        port = listener.socket.getsockname()[1]
        await listener.aclose()  # nothing listens there now
        for command in ("peers", "tasks"):
            status, _, err = await run_cli([command, "--admin", f"http://127.0.0.1:{port}"], capsys)
            assert status == 1
            assert f"GET http://127.0.0.1:{port}/api/v1/{command}" in err
