"""``scheduler loadgen`` and the floor server: the instrument works (figures are never asserted).

The mixes' frames are checked against the project's own strict codec, the latency
histogram against exact percentiles, and the tool end to end against a real
``scheduler serve`` and a real floor server for one short window, under ``fail_after``.
Every process started is stopped (the tool stops its own; the floor by the fixture).
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import trio
from trio_websocket import open_websocket_url

from scheduler.cli import main, parse_args
from scheduler.loadgen import LatencyHistogram, LoadOptions, MixSpec, SessionScript, run_load
from scheduler.loadgen._mixes import Verdict
from scheduler.protocol import (
    SUBPROTOCOL,
    AnnounceHost,
    PiecesFinished,
    RegisterPeer,
    decode_client,
)

FLOOR = Path(__file__).resolve().parent.parent / "benchmarks" / "floor_server.py"
SUMMARY_KEYS = {
    "url",
    "mix",
    "sessions",
    "sessions_opened",
    "open_failures",
    "rate",
    "updates_rate",
    "p50_ms",
    "p99_ms",
    "server_cpu_percent",
    "generator_cpu_percent",
    "rss_before_kb",
    "rss_after_kb",
    "rss_per_session_kb",
    "batch_unsupported",
    "windows",
    "load_average_before",
    "load_average_after",
}


# --- no I/O ------------------------------------------------------------------------------------


def test_histogram_percentiles_are_within_one_percent() -> None:
    histogram = LatencyHistogram()
    samples = [k / 1000 for k in range(1, 1001)]  # 1 ms .. 1 s
    for seconds in samples:
        histogram.record(seconds)
    for fraction in (0.5, 0.9, 0.99):
        exact_ms = samples[math.ceil(fraction * len(samples)) - 1] * 1000
        assert histogram.percentile(fraction) == pytest.approx(exact_ms, rel=0.011)
    again = LatencyHistogram.from_json(json.loads(json.dumps(histogram.to_json())))
    assert again.count == 1000
    assert again.percentile(0.99) == histogram.percentile(0.99)
    assert LatencyHistogram().percentile(0.5) is None


@pytest.mark.parametrize(
    ("mix", "kind"),
    [("announce", AnnounceHost), ("register", RegisterPeer), ("pieces", PiecesFinished)],
)
def test_the_frames_of_each_mix_pass_the_servers_codec(mix: str, kind: type) -> None:
    script = SessionScript(MixSpec(mix=mix, prefix="t"), 7)
    for frame, _ in script.setup_frames():
        decode_client(frame)
    for request_id in (1, 2, 3):
        message = decode_client(script.request(request_id))
        assert isinstance(message, kind)
        assert message.id == request_id


def test_batch_frames_hold_the_items_and_an_error_reply_means_unsupported() -> None:
    script = SessionScript(MixSpec(mix="batch", batch_size=3, batch_items="announce"), 0)
    frame = json.loads(script.request(5))
    assert frame["type"] == "batch"
    assert frame["id"] == 5
    assert len(frame["messages"]) == 3
    for item in frame["messages"]:
        assert isinstance(decode_client(json.dumps(item)), AnnounceHost)
    refused = json.dumps({"type": "error", "id": 5, "code": "unknown_type", "message": "no"})
    judgement = script.judge(refused, 5)
    assert judgement.verdict is Verdict.UNSUPPORTED
    assert "unknown_type" in judgement.detail
    replies = [{"type": "host_accepted", "id": k} for k in range(3)]
    ok = json.dumps({"type": "batch", "id": 5, "replies": replies})
    assert script.judge(ok, 5).verdict is Verdict.OK
    short = json.dumps({"type": "batch", "id": 5, "replies": replies[:2]})
    assert script.judge(short, 5).verdict is Verdict.UNEXPECTED


def test_pushes_are_not_taken_for_the_reply() -> None:
    script = SessionScript(MixSpec(mix="register"), 0)
    push = json.dumps({"type": "schedule", "peer_id": "x", "action": "wait", "retry_after": 1})
    assert script.judge(push, 4).verdict is Verdict.OTHER
    assert script.judge(json.dumps({"type": "ack", "id": 3}), 4).verdict is Verdict.OTHER


def test_hostnames_are_unique_per_session() -> None:
    spec = MixSpec(prefix="p")
    names = {SessionScript(spec, i).hostname for i in range(1000)}
    ips = {SessionScript(spec, i).ip for i in range(1000)}
    assert len(names) == len(ips) == 1000


def test_bad_options_are_refused() -> None:
    with pytest.raises(ValueError, match="mix must be one of"):
        MixSpec(mix="nope")
    with pytest.raises(ValueError, match="batch size"):
        MixSpec(batch_size=0)
    with pytest.raises(ValueError, match="too many"):
        LoadOptions(sessions=1, workers=2)
    with pytest.raises(ValueError, match="sweep"):
        LoadOptions(sweep=(1.5,))


# --- end to end ----------------------------------------------------------------------------------


@pytest.fixture
def floor_url() -> Iterator[tuple[str, int]]:
    process = subprocess.Popen(
        [sys.executable, str(FLOOR), "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()  # the server prints it at once, or exits (EOF)
        assert line.startswith("floor listening: "), line
        yield line.split()[-1], process.pid
    finally:
        process.kill()
        process.wait(timeout=10)
        if process.stdout is not None:
            process.stdout.close()


@pytest.mark.e2e
async def test_the_floor_server_answers_with_the_request_id(floor_url: tuple[str, int]) -> None:
    url, _ = floor_url
    with trio.fail_after(20):
        async with open_websocket_url(url, subprotocols=[SUBPROTOCOL]) as ws:
            assert ws.subprotocol == SUBPROTOCOL
            await ws.send_message(SessionScript(MixSpec(), 0).announce(7))
            reply = json.loads(await ws.get_message())
            assert reply["type"] == "host_accepted"
            assert reply["id"] == 7
            batch = {"type": "batch", "id": 8, "messages": [{"type": "x", "id": 1}, {"id": 2}]}
            await ws.send_message(json.dumps(batch))
            reply = json.loads(await ws.get_message())
            assert reply == {
                "type": "batch",
                "id": 8,
                "replies": [{"type": "ack", "id": 1}, {"type": "ack", "id": 2}],
            }


@pytest.mark.e2e
async def test_loadgen_against_a_scheduler_it_starts() -> None:
    options = LoadOptions(
        sessions=4, workers=2, duration=1.0, warmup=0.0, crash_rate=0.5, settle=0.1
    )
    with trio.fail_after(90):
        summary = await run_load(options)
    assert set(summary) >= SUMMARY_KEYS
    assert summary["server_started"] is True
    assert summary["sessions_opened"] == 4
    assert summary["open_failures"] == {}
    assert summary["batch_unsupported"] is None
    (window,) = summary["windows"]
    assert window["replies"] > 0  # replies came back and were judged the expected ones
    assert window["errors"] == {}
    assert window["unexpected"] == {}
    assert len(window["generator_cpu_percent"]) == 2
    assert summary["server_exit_status"] == 0
    assert summary["server_stderr"] == ""


@pytest.mark.e2e
async def test_batch_frames_are_answered_by_the_server() -> None:
    # Two sessions flat out on a quiet machine pass the default message rate (each
    # batch item is a message): lift it, this test is about the batch frames.
    options = LoadOptions(
        sessions=2,
        duration=0.5,
        warmup=0.0,
        mix=MixSpec(mix="batch"),
        settle=0.1,
        serve_args=("--message-rate", "1000000", "--message-burst", "1000000"),
    )
    with trio.fail_after(90):
        summary = await run_load(options)
    assert summary["sessions_opened"] == 2
    assert summary["batch_unsupported"] is None  # the server speaks batch frames
    window = summary["windows"][0]
    assert window["replies"] > 0
    assert window["errors"] == {}
    assert window["unexpected"] == {}
    assert summary["updates_rate"] == pytest.approx(10 * summary["rate"], abs=1.0)  # rounded
    assert summary["server_exit_status"] == 0


@pytest.mark.e2e
async def test_loadgen_measures_a_server_given_by_url_and_pid(
    floor_url: tuple[str, int],
) -> None:
    url, pid = floor_url
    options = LoadOptions(
        url=url, server_pid=pid, sessions=3, duration=0.5, warmup=0.0, sweep=(0.5,), settle=0.1
    )
    with trio.fail_after(90):
        summary = await run_load(options)
    assert summary["server_started"] is False
    assert summary["sessions_opened"] == 3
    assert summary["server_cpu_percent"] is not None
    assert [w["label"] for w in summary["windows"]] == ["main", "50% of max"]
    assert summary["windows"][1]["offered_rate"] > 0


def test_the_cli_registers_loadgen() -> None:
    args = parse_args(["loadgen", "--sessions", "5", "--mix", "batch", "--sweep", "50,90,100"])
    assert args.command == "loadgen"
    assert args.sweep == (0.5, 0.9, 1.0)
    with pytest.raises(SystemExit):
        parse_args(["loadgen", "--sweep", "150"])


@pytest.mark.e2e
def test_the_command_prints_tables_and_writes_the_summary(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "summary.json"
    argv = ["loadgen", "--sessions", "2", "--duration", "0.5", "--warmup", "0"]
    # cmd_loadgen runs its own trio loop; its deadlines (connect, request, open) bound it.
    status = main([*argv, "--no-progress", "--json", str(out)])
    assert status == 0
    summary = json.loads(out.read_text())
    assert set(summary) >= SUMMARY_KEYS
    assert summary["sessions_opened"] == 2
    printed = capsys.readouterr().out
    assert "server RSS per session" in printed
    assert "replies/s" in printed
