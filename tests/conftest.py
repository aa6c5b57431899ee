"""Shared fixtures, and the Hypothesis profile chosen by HYPOTHESIS_PROFILE (`dev`, `ci`)."""

from __future__ import annotations

import logging
import os
import ssl
from collections.abc import AsyncIterator, Iterator
from typing import Final

import pytest
import trio
import trio.testing
import trustme

from scheduler.core import PolicySet
from scheduler.policies import builtin_plugins
from scheduler.protocol import CLIENT_MESSAGES, SERVER_MESSAGES, _codec
from scheduler.testing import load_profile_from_env
from tests.service_support import FAST, Harness, running_service
from tests.test_e2e import Processes

load_profile_from_env()

#: Under ``CI=true`` a skipped test fails (a missing tool, package or service must not
#: let CI pass without running what needs it), unless it carries the ``hardware``
#: marker: a test that needs hardware the CI machine lacks, listed in docs/testing.md.
IN_CI: Final = os.environ.get("CI") == "true"

#: Every harness test fails after this much (mock-clock) time.
HARNESS_DEADLINE = 60.0


def _fail_a_skip_in_ci(report: pytest.CollectReport | pytest.TestReport, hardware: bool) -> None:
    if IN_CI and report.skipped and not hardware and not hasattr(report, "wasxfail"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longrepr
        report.outcome = "failed"
        report.longrepr = f"skipped under CI=true, where every test must run: {reason}"


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item) -> Iterator[None]:
    report = yield
    _fail_a_skip_in_ci(report, item.get_closest_marker("hardware") is not None)
    return report


@pytest.hookimpl(wrapper=True)
def pytest_make_collect_report(collector: pytest.Collector) -> Iterator[None]:
    """A module skipped as a whole (``pytest.importorskip`` at its top) is a skip too."""
    report = yield
    _fail_a_skip_in_ci(report, hardware=False)
    return report


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    """Put the ``scheduler`` logger back as it was after each test.

    ``scheduler serve`` and ``scheduler peer`` run in-process by some tests configure
    it (a handler, a level, no propagation); left in place, the next tests' ``caplog``
    would see none of its lines.
    """
    logger = logging.getLogger("scheduler")
    saved = (logger.handlers[:], logger.level, logger.propagate)
    try:
        yield
    finally:
        logger.handlers[:], logger.level, logger.propagate = saved


@pytest.fixture(scope="session")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str, ssl.SSLContext]:
    """A server certificate for 127.0.0.1 from a throwaway CA: its file, its key's file,
    and a client context that trusts the CA."""
    root = tmp_path_factory.mktemp("tls")
    ca = trustme.CA()
    server = ca.issue_cert("127.0.0.1", "localhost")
    cert_file, key_file = root / "server.pem", root / "server.key"
    cert_file.write_bytes(b"".join(blob.bytes() for blob in server.cert_chain_pems))
    server.private_key_pem.write_to_path(str(key_file))
    context = ssl.create_default_context()
    ca.configure_trust(context)
    return str(cert_file), str(key_file), context


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


@pytest.fixture
def fresh_codec() -> Iterator[None]:
    """The protocol codec rebuilt from its builder, for the tests of a module.

    The codec's converter and dispatch tables are built once, at import. Mutation
    testing forks its workers from a process that has already imported them, so a
    test that uses the import-time codec never meets a mutant of the builder
    (``_make_converter`` and the hooks it generates). This fixture builds them again
    and puts them in place for the module's tests, so the codec's tests judge the
    builder as well. The result must match the import-time tables (checked here).
    """
    converter = _codec._make_converter()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(_codec, "_converter", converter)
        client = _codec._structure_table(CLIENT_MESSAGES)
        server = _codec._structure_table(SERVER_MESSAGES)
        # As `_codec._ENCODERS` is built at import (it is module-level code).
        encoders = {cls: (cls.tag, converter.get_unstructure_hook(cls)) for cls in _codec._ENCODERS}
        assert {t: c for t, (c, _) in client.items()} == dict(CLIENT_MESSAGES)
        assert {t: c for t, (c, _) in server.items()} == dict(SERVER_MESSAGES)
        assert {c: t for c, (t, _) in encoders.items()} == {
            c: t for c, (t, _) in _codec._ENCODERS.items()
        }
        patch.setattr(_codec, "_CLIENT_DECODERS", client)
        patch.setattr(_codec, "_SERVER_DECODERS", server)
        patch.setattr(_codec, "_ENCODERS", encoders)
        yield


@pytest.fixture
def processes(request: pytest.FixtureRequest) -> Iterator[Processes]:
    """Real ``python -m scheduler`` processes, each killed and reaped at the end; the
    test fails at teardown if one logged a traceback or an ERROR line, unless the
    ``server_errors(*patterns)`` marker lists it (a regular expression per line)."""
    marker = request.node.get_closest_marker("server_errors")
    started = Processes(allowed=() if marker is None else marker.args)
    yield started
    started.stop_all()
