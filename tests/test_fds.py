"""The service raises RLIMIT_NOFILE at start-up as far as the hard limit allows."""

from __future__ import annotations

import logging
import resource

import pytest

from scheduler.service import SchedulerService, ServiceConfig
from scheduler.service._fds import (
    RESERVED_FDS,
    UNLIMITED_TARGET,
    FileLimit,
    raise_open_files_limit,
    target_soft_limit,
)

INF = resource.RLIM_INFINITY


@pytest.mark.parametrize(
    ("soft", "hard", "target"),
    [
        (1024, 20_000, 20_000),
        (20_000, 20_000, 20_000),
        (1024, INF, UNLIMITED_TARGET),
        (2 * UNLIMITED_TARGET, INF, 2 * UNLIMITED_TARGET),  # never lowered
        (INF, INF, INF),
    ],
)
def test_the_soft_limit_goes_to_the_hard_limit(soft: int, hard: int, target: int) -> None:
    assert target_soft_limit(soft, hard) == target


def test_sessions_are_the_limit_minus_what_the_process_keeps() -> None:
    assert FileLimit(before=1024, soft=20_000, hard=20_000).sessions == 20_000 - RESERVED_FDS
    assert FileLimit(before=10, soft=10, hard=10).sessions == 0


def test_the_raise_reaches_the_hard_limit() -> None:
    limit = raise_open_files_limit()
    assert resource.getrlimit(resource.RLIMIT_NOFILE) == (limit.soft, limit.hard)
    assert limit.soft >= limit.before
    if limit.hard != INF:
        assert limit.soft == limit.hard


async def test_start_up_logs_how_many_sessions_fit(caplog: pytest.LogCaptureFixture) -> None:
    service = SchedulerService(ServiceConfig(entrypoints=False, max_sessions=1))
    with caplog.at_level(logging.INFO, logger="scheduler.service"):
        service._raise_open_files_limit()
    [record] = [r for r in caplog.records if "open files limit" in r.getMessage()]
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    assert f"room for {soft - RESERVED_FDS} sessions" in record.getMessage()
    assert record.levelno == logging.INFO
