"""The two listeners on real loopback sockets: who may upgrade where, and bind failures."""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Iterator
from typing import TypeVar

import pytest
import trio
from trio_websocket import ConnectionRejected

from scheduler import cli
from scheduler.service import ListenError, SchedulerService, ServiceConfig
from scheduler.service._console import STREAM_PATH
from scheduler.service._gate import check_request
from tests.service_support import (
    LOOPBACK,
    announce,
    client_frame,
    open_client,
    raw_http,
    serving,
    upgrade_head,
)

E = TypeVar("E", bound=BaseException)
UPGRADE = ((b"Host", b"h:1"), (b"Upgrade", b"websocket"), (b"Connection", b"Upgrade"))


# --- the gate's decisions (no sockets) --------------------------------------------------


@pytest.mark.parametrize(
    ("method", "target", "headers", "status"),
    [
        ("GET", "/ws", UPGRADE, None),
        ("GET", "/ws?token=1", UPGRADE, None),
        ("GET", "/", UPGRADE, 404),
        ("GET", "/ws/", UPGRADE, 404),
        ("GET", "/metrics", (), 404),
        ("POST", "/ws", UPGRADE, 405),
        ("GET", "/ws", ((b"Host", b"h:1"),), 426),
    ],
)
def test_only_an_upgrade_on_ws_passes_the_gate(
    method: str, target: str, headers: tuple[tuple[bytes, bytes], ...], status: int | None
) -> None:
    refusal = check_request(method, target, headers)
    assert (None if refusal is None else refusal.status) == status
    if refusal is not None:
        assert refusal.body.endswith("\n")
        assert refusal.body.count("\n") == 1  # one line
        assert "ws://h:1/ws" in refusal.body or "ws://HOST:PORT/ws" in refusal.body


# --- the peers' listener ----------------------------------------------------------------


async def test_an_upgrade_on_another_path_gets_404() -> None:
    with trio.fail_after(10):
        async with serving() as live:
            reply = await raw_http(live.ws_address, upgrade_head("/other"))
            assert reply.status == 404
            assert (
                reply.body
                == "no endpoint at /other; peers connect to ws://scheduler.test:8002/ws\n"
            )
            host, port = live.ws_address
            rejected: list[int] = []
            try:
                async with open_client(f"ws://{host}:{port}/"):
                    pass
            except* ConnectionRejected as group:
                rejected += [e.status_code for e in _leaves(group, ConnectionRejected)]
            assert rejected == [404]
            metric = live.service.metrics.registry.get_sample_value(
                "scheduler_handshake_rejections_total", {"status": "404"}
            )
            assert metric == 2


async def test_a_plain_get_on_ws_gets_426_with_a_hint() -> None:
    with trio.fail_after(10):
        async with serving() as live:
            host, port = live.ws_address
            head = f"GET /ws HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n"
            reply = await raw_http(live.ws_address, head)
            assert reply.status == 426
            assert reply.headers["upgrade"] == "websocket"
            assert reply.body == (
                "this is the peers' WebSocket endpoint; "
                f"connect with a WebSocket client to ws://{host}:{port}/ws\n"
            )


async def test_a_malformed_request_head_gets_400() -> None:
    with trio.fail_after(10):
        async with serving() as live:
            reply = await raw_http(live.ws_address, "NOT HTTP AT ALL\r\n\r\n")
            assert reply.status == 400


async def test_an_upgrade_on_ws_still_opens_a_session() -> None:
    with trio.fail_after(10):
        async with serving() as live, open_client(live.ws_url + "?client=test") as ws:
            assert (await announce(ws))["type"] == "host_accepted"


# --- the admin listener -----------------------------------------------------------------


async def test_a_websocket_upgrade_on_the_admin_port_gets_400_naming_the_peers_url() -> None:
    with trio.fail_after(10):
        async with serving() as live:
            reply = await raw_http(live.admin_address, upgrade_head("/ws"))
            assert reply.status == 400
            assert reply.body == (
                "this is the admin HTTP API, not a WebSocket endpoint; "
                f"peers connect to {live.ws_url}\n"
            )


async def test_an_upgrade_that_speaks_before_its_answer_does_not_stop_the_scheduler() -> None:
    """A client's frame sent with its upgrade request, before any answer, makes hypercorn
    answer 400 on its own; when the app answers the upgrade at the same moment, the
    connection's task raises and ends hypercorn's whole server. The admin listener serves
    again on the same socket, and the sessions never notice."""
    frame = client_frame(0x1, b'{"type": "hello", "token": null}')
    with trio.fail_after(30):
        async with serving() as live, open_client(live.ws_url) as ws:
            await announce(ws)
            for path in ("/elsewhere", STREAM_PATH) * 10:
                stream = await trio.open_tcp_stream(*live.admin_address)
                async with stream:
                    await stream.send_all(upgrade_head(path).encode() + frame)
                    head = bytearray()
                    # Its own connection may be reset: the server it broke is gone.
                    with contextlib.suppress(trio.BrokenResourceError):
                        while b"\r\n\r\n" not in head and (chunk := await stream.receive_some()):
                            head += chunk
            reply = await raw_http(live.admin_address, "GET /healthz HTTP/1.0\r\n\r\n")
            assert (reply.status, reply.body) == (200, "ok\n")
            assert (await announce(ws))["type"] == "host_accepted"
            assert live.service.console.open == 0


# --- bind failures ----------------------------------------------------------------------


@pytest.fixture
def taken_port() -> Iterator[int]:
    """A loopback port with a listening socket on it."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


@pytest.mark.parametrize(("listener", "setting"), [("peers", "port"), ("admin", "admin_port")])
async def test_a_bind_failure_names_the_listener_and_the_address(
    taken_port: int, listener: str, setting: str
) -> None:
    config = ServiceConfig(**{**_ports(LOOPBACK), setting: taken_port}, entrypoints=False)
    errors: list[ListenError] = []
    with trio.fail_after(10):
        try:
            await SchedulerService(config).run()
        except* ListenError as group:
            errors += _leaves(group, ListenError)
    (error,) = errors
    assert str(error) == f"{listener} listener 127.0.0.1:{taken_port}: address already in use"
    assert (error.listener, error.address) == (listener, f"127.0.0.1:{taken_port}")


def test_serve_prints_which_listener_could_not_bind(
    taken_port: int, capsys: pytest.CaptureFixture[str]
) -> None:
    status = cli.main(["serve", "--port", str(taken_port), "--admin-port", "0"])
    assert status == 1
    assert capsys.readouterr().err.endswith(
        f"peers listener 127.0.0.1:{taken_port}: address already in use\n"
    )


def _ports(config: ServiceConfig) -> dict[str, int]:
    return {"port": config.port, "admin_port": config.admin_port}


def _leaves(group: BaseExceptionGroup[E], kind: type[E]) -> list[E]:
    found: list[E] = []
    for exc in group.exceptions:
        if isinstance(exc, BaseExceptionGroup):
            found += _leaves(exc, kind)
        elif isinstance(exc, kind):
            found.append(exc)
    return found
