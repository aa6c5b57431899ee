"""Shared fixtures, and the Hypothesis profile chosen by HYPOTHESIS_PROFILE (`dev`, `ci`)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import trio
import trio.testing

from scheduler.core import PolicySet
from scheduler.policies import builtin_plugins
from scheduler.testing import load_profile_from_env
from tests.service_support import FAST, Harness, running_service

load_profile_from_env()

#: Every harness test fails after this much (mock-clock) time.
HARNESS_DEADLINE = 60.0


@pytest.fixture
async def harness(
    request: pytest.FixtureRequest, autojump_clock: trio.testing.MockClock
) -> AsyncIterator[Harness]:
    """A running in-process service under the autojumping mock clock.

    The test requests ``autojump_clock`` as well (pytest-trio runs a test on a
    clock only if the test function itself takes it).

    Sessions connect over memory streams through the service's real connection
    handler (``await harness.connect()``). ``@pytest.mark.harness(config=...,
    plugins=[...])`` changes the service; the test fails after
    :data:`HARNESS_DEADLINE` seconds of mock time.
    """
    if trio.lowlevel.current_clock() is not autojump_clock:
        pytest.fail("request `autojump_clock` in the test too: pytest-trio takes the test's clock")
    marker = request.node.get_closest_marker("harness")
    options = {} if marker is None else marker.kwargs
    plugins = list(options.get("plugins", ()))
    policies = PolicySet.from_plugins([*builtin_plugins(), *plugins]) if plugins else None
    async with running_service(options.get("config", FAST), policies) as running:
        running.nursery.start_soon(_fail_after, HARNESS_DEADLINE)
        yield running


async def _fail_after(seconds: float) -> None:
    await trio.sleep(seconds)
    raise trio.TooSlowError(f"the test did not finish within {seconds:g} s (mock clock)")
