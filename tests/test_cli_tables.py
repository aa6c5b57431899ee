"""``scheduler hosts``, ``peers`` and ``tasks`` against a real in-process server."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest
import trio
from rich.console import Console

from scheduler.cli import main
from scheduler.client import print_table, render_peers_table, render_tasks_table
from scheduler.client._hosts import ID_WIDTH, shorten_id
from scheduler.service import SchedulerService, ServiceConfig
from tests.service_support import announce, open_client, request, serving

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

                status, out, _ = await run_cli(["peers", "--admin", admin, "--wide"], capsys)
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
            assert "is `scheduler serve` running" in err
            assert "pass --admin URL" in err


async def test_an_admin_api_error_shows_what_the_server_said(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with trio.fail_after(30):
        async with serving(CONFIG) as live:
            status, _, err = await run_cli(["task", "nope", "--admin", live.admin_url], capsys)
    assert status == 1
    assert "HTTP 404: task 'nope' not found" in err


SEED_PEER = "seed-17-" + "0123456789abcdef" * 4  # 72 characters, as seed peer ids are


def test_the_peers_table_fits_100_columns_and_wide_shows_whole_ids() -> None:
    peers = [
        {
            "id": SEED_PEER,
            "task_id": "0123456789abcdef" * 4,
            "host_id": "10.0.0.9-seed-host-with-a-long-name-seed",
            "state": "succeeded",
            "finished_pieces": 64,
            "parents": ["p-" + "f" * 60],
            "updated_at": 100.0,
        }
    ]
    console = Console(width=100, record=True, file=io.StringIO())
    print_table(render_peers_table, peers, now=105.0, console=console)
    text = console.export_text()
    assert max(map(len, text.splitlines())) <= 100
    for header in ("peer id", "state", "pieces", "parents", "updated"):
        assert header in text
    assert "succeeded" in text
    assert " 64 " in text
    assert shorten_id(SEED_PEER) in text
    assert len(shorten_id(SEED_PEER)) == ID_WIDTH
    assert "host id" not in text
    wide = Console(width=400, record=True, file=io.StringIO())
    print_table(render_peers_table, peers, now=105.0, console=wide, wide=True)
    whole = wide.export_text()
    assert SEED_PEER in whole
    assert "10.0.0.9-seed-host-with-a-long-name-seed" in whole


def test_an_unknown_piece_count_is_a_question_mark() -> None:
    task = {"id": "t", "url": "u", "state": "running", "peers": 2, "total_piece_count": -1}
    console = Console(width=100, record=True, file=io.StringIO())
    print_table(render_tasks_table, [task], now=0.0, console=console)
    row = next(line for line in console.export_text().splitlines() if " t " in line)
    assert " ? " in row
    assert "-1" not in row


def test_shorten_id_keeps_both_ends() -> None:
    assert shorten_id("short") == "short"
    assert shorten_id("a" * 10 + "MIDDLE" + "b" * 20, width=12) == "aaaaa…bbbbbb"
    assert len(shorten_id("x" * 100)) == ID_WIDTH
