"""``scheduler preheat``'s flags and ``scheduler peer --download-rate``, without a server."""

from __future__ import annotations

from typing import Any

import pytest

from scheduler.cli import _rate, parse_args
from scheduler.client import follow_job


@pytest.mark.parametrize(
    ("text", "rate"),
    [
        ("1048576", 1048576.0),
        ("32MiB", 32 * 1024**2),
        ("32 mib/s", 32 * 1024**2),
        ("100MB", 100e6),
        ("1.5GiB/s", 1.5 * 1024**3),
        ("2k", 2000.0),
        ("3KiB", 3072.0),
        ("1g", 1e9),
    ],
)
def test_a_download_rate_reads_its_units(text: str, rate: float) -> None:
    assert _rate(text) == rate


@pytest.mark.parametrize("text", ["0", "0MiB", "fast", "-1", "5TB", ""])
def test_a_bad_download_rate_says_what_is_expected(text: str) -> None:
    with pytest.raises(Exception, match="expected a positive rate such as 32MiB"):
        _rate(text)


def test_the_peer_takes_a_download_rate() -> None:
    args = parse_args(["peer", "--scheduler", "ws://x/ws", "--download-rate", "8MiB"])
    assert args.download_rate == 8 * 1024**2
    assert parse_args(["peer", "--scheduler", "ws://x/ws"]).download_rate == 32 * 1024**2


def test_preheat_reads_its_flags() -> None:
    args = parse_args(
        ["preheat", "https://o/x", "--scope", "all_peers", "--ip", "::1", "--ip", "10.0.0.1"]
    )
    assert (args.url, args.scope, args.ip, args.count, args.no_wait) == (
        "https://o/x",
        "all_peers",
        ["::1", "10.0.0.1"],
        None,
        False,
    )
    assert parse_args(["preheat", "u"]).scope == "single_seed"
    assert parse_args(["preheat", "u", "--percentage", "12.5"]).percentage == 12.5


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["preheat", "u", "--count", "2", "--percentage", "5"], "not allowed with argument"),
        (["preheat", "u", "--percentage", "0"], "the percentage must be in (0, 100], got 0"),
        (["preheat", "u", "--percentage", "x"], "expected a percentage, got 'x'"),
        (["preheat", "u", "--scope", "some"], "invalid choice: 'some'"),
        (["preheat", "u", "--content-length", "-5"], "bytes must be >= 0"),
    ],
)
def test_preheat_refuses_bad_flags_in_one_line(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        parse_args(argv)
    assert exited.value.code == 2
    assert message in capsys.readouterr().err


def test_follow_job_reads_until_the_job_has_finished() -> None:
    states = iter(["pending", "running", "running", "failed", "never read"])
    seen: list[str] = []
    naps: list[float] = []

    def read() -> dict[str, Any]:
        return {"id": "j", "state": next(states)}

    job = follow_job(read, lambda j: seen.append(j["state"]), interval=0.1, sleep=naps.append)
    assert job["state"] == "failed"
    assert seen == ["pending", "running", "running", "failed"]
    assert naps == [0.1, 0.1, 0.1]
