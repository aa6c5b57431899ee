"""The ``scheduler`` command: ``serve``, ``peer`` and ``hosts``.

Exit status: 0 on a clean stop, 2 for a bad flag or a bad configuration
(the message names the key), 1 for anything unexpected.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

import trio

from .core import ConfigError, parse_duration

EXIT_CONFIG = 2
_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def _duration(value: str) -> float:
    try:
        return parse_duration(value, "duration")
    except ConfigError as exc:
        raise argparse.ArgumentTypeError(str(exc).removeprefix("duration: ")) from None


def _int_between(low: int, high: int, what: str) -> Callable[[str], int]:
    """An argparse type: an integer in ``[low, high]``, with a message naming the range."""

    def parse(value: str) -> int:
        try:
            number = int(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what}, got {value!r}") from None
        if not low <= number <= high:
            bound = f"{low}-{high}" if high < sys.maxsize else f">= {low}"
            raise argparse.ArgumentTypeError(f"{what} must be {bound}, got {number}")
        return number

    return parse


_port = _int_between(0, 65535, "port")
_positive_int = _int_between(1, sys.maxsize, "the value")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="scheduler",
        description="A Trio-based P2P scheduler with pluggable, deadline-driven GC policies.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = commands.add_parser(
        "serve",
        help="run the scheduler (WebSocket for peers, admin HTTP + /metrics)",
        description="Run the scheduler. Flags override the TOML file given with --config. "
        "Durations accept 500ms, 5s, 5m, 1h. See docs/operations.md.",
    )
    serve.add_argument("--config", metavar="FILE", help="TOML configuration file")
    net = serve.add_argument_group("listeners")
    net.add_argument("--bind", help="address to listen on (default 127.0.0.1)")
    net.add_argument("--port", type=_port, help="WebSocket port for peers (default 8002; 0: any)")
    net.add_argument("--admin-bind", help="admin HTTP address (default: --bind)")
    net.add_argument("--admin-port", type=_port, help="admin HTTP port (default 8000; 0: any)")
    net.add_argument("--max-sessions", type=_positive_int, help="session cap (default 10000)")
    net.add_argument(
        "--max-message-size", type=_positive_int, help="largest frame, characters (default 65536)"
    )
    net.add_argument(
        "--inbox-size", type=_positive_int, help="frames queued per session (default 256)"
    )
    live = serve.add_argument_group("liveness")
    live.add_argument(
        "--ping-interval", type=_duration, metavar="DURATION", help="ping every (default 5s)"
    )
    live.add_argument(
        "--ping-timeout", type=_duration, metavar="DURATION", help="pong deadline (default 5s)"
    )
    live.add_argument(
        "--send-timeout",
        type=_duration,
        metavar="DURATION",
        help="bound on every send (default 5s)",
    )
    live.add_argument(
        "--reconnect-grace",
        type=_duration,
        metavar="DURATION",
        help="evict a dropped host after (default 5s)",
    )
    live.add_argument(
        "--announce-timeout",
        type=_duration,
        metavar="DURATION",
        help="first announce_host deadline (default 10s)",
    )
    live.add_argument(
        "--close-timeout", type=_duration, metavar="DURATION", help="bound on a close (default 2s)"
    )
    live.add_argument(
        "--error-limit", type=_positive_int, help="errors per window before 1008 (default 20)"
    )
    live.add_argument(
        "--error-window", type=_duration, metavar="DURATION", help="error window (default 10s)"
    )
    live.add_argument(
        "--shutdown-timeout",
        type=_duration,
        metavar="DURATION",
        help="wait for sessions to close (default 4s)",
    )
    gc = serve.add_argument_group("gc")
    gc.add_argument(
        "--sweep-interval", type=_duration, metavar="DURATION", help="periodic sweep (default 60s)"
    )
    gc.add_argument(
        "--host-ttl",
        type=_duration,
        metavar="DURATION",
        help="TTL without an interval (default 1h)",
    )
    gc.add_argument(
        "--peer-ttl", type=_duration, metavar="DURATION", help="peer TTL since update (default 24h)"
    )
    gc.add_argument(
        "--piece-timeout", type=_duration, metavar="DURATION", help="stalled download (default 30m)"
    )
    gc.add_argument(
        "--task-idle-ttl",
        type=_duration,
        metavar="DURATION",
        help="task with no peers (default 10m)",
    )
    plugins = serve.add_argument_group("plugins")
    plugins.add_argument(
        "--plugin",
        action="append",
        metavar="NAME|MODULE:OBJECT",
        help="enable an installed plugin by name, or import one (repeatable)",
    )
    plugins.add_argument(
        "--disable-plugin", action="append", metavar="NAME", help="block a plugin by name"
    )
    plugins.add_argument(
        "--all-plugins",
        action="store_true",
        help="enable every plugin installed under the 'scheduler.plugins' entry point",
    )
    logs = serve.add_argument_group("logging")
    logs.add_argument("--log-format", choices=["text", "json"], help="default text")
    logs.add_argument("--log-level", choices=["debug", "info", "warning", "error"])

    peer = commands.add_parser(
        "peer",
        help="run the reference peer daemon",
        description="Announce this host to a scheduler and keep the session alive; "
        "reconnect with backoff; leave on SIGINT/SIGTERM.",
    )
    peer.add_argument("--scheduler", required=True, metavar="URL", help="ws://HOST:PORT/ws")
    peer.add_argument("--hostname", help="default: this machine's hostname")
    peer.add_argument("--ip", default="127.0.0.1", help="default 127.0.0.1")
    peer.add_argument("--port", type=_port, default=65001, help="default 65001")
    peer.add_argument("--download-port", type=_port, default=65002, help="default 65002")
    peer.add_argument("--announce-interval", type=_duration, default=30.0, help="default 30s")
    peer.add_argument(
        "--task",
        action="append",
        default=[],
        metavar="URL",
        help="keep a peer of this task registered and downloading (repeatable)",
    )
    peer.add_argument("--idc", default="")
    peer.add_argument("--location", default="")
    peer.add_argument("--log-format", choices=["text", "json"], default="text")
    peer.add_argument("--log-level", choices=["debug", "info", "warning", "error"], default="info")

    hosts = commands.add_parser("hosts", help="print the scheduler's hosts as a table")
    hosts.add_argument("--admin", required=True, metavar="URL", help="http://HOST:PORT")
    hosts.add_argument("--state", choices=["connected", "disconnected"])
    hosts.add_argument("--json", action="store_true", help="print the raw JSON instead")
    return parser


def _fail(message: str) -> NoReturn:
    print(f"scheduler: error: {message}", file=sys.stderr)
    raise SystemExit(EXIT_CONFIG)


async def _until_signal(main: Callable[[trio.Event], Any]) -> None:
    """Run ``main(shutdown)``; the first SIGINT/SIGTERM sets ``shutdown``."""
    shutdown = trio.Event()
    async with trio.open_nursery() as nursery:

        async def watch() -> None:
            with trio.open_signal_receiver(*_SIGNALS) as signals:
                async for _ in signals:
                    shutdown.set()

        nursery.start_soon(watch)
        await main(shutdown)
        nursery.cancel_scope.cancel()


def cmd_serve(args: argparse.Namespace) -> int:
    from .service import (
        SchedulerService,
        build_policies,
        configure_logging,
        load_config,
        with_overrides,
    )

    try:
        config = with_overrides(
            load_config(args.config),
            bind=args.bind,
            port=args.port,
            admin_bind=args.admin_bind,
            admin_port=args.admin_port,
            max_sessions=args.max_sessions,
            max_message_size=args.max_message_size,
            ping_interval=args.ping_interval,
            ping_timeout=args.ping_timeout,
            send_timeout=args.send_timeout,
            reconnect_grace=args.reconnect_grace,
            announce_timeout=args.announce_timeout,
            close_timeout=args.close_timeout,
            error_limit=args.error_limit,
            error_window=args.error_window,
            shutdown_timeout=args.shutdown_timeout,
            inbox_size=args.inbox_size,
            sweep_interval=args.sweep_interval,
            host_ttl=args.host_ttl,
            peer_ttl=args.peer_ttl,
            piece_timeout=args.piece_timeout,
            task_idle_ttl=args.task_idle_ttl,
            enable=tuple(args.plugin) if args.plugin else None,
            disable=tuple(args.disable_plugin) if args.disable_plugin else None,
            entrypoints=True if args.all_plugins else None,
            log_format=args.log_format,
            log_level=args.log_level,
        )
    except ConfigError as exc:
        _fail(str(exc))
    configure_logging(config.log_format, config.log_level)
    try:
        policies = build_policies(config)
    except ConfigError as exc:
        _fail(str(exc))
    except Exception as exc:  # a plugin that fails to import or register
        _fail(f"plugins: {exc}")

    async def main(shutdown: trio.Event) -> None:
        service = SchedulerService(config, policies)
        async with trio.open_nursery() as nursery:
            ws_url, admin_url = await nursery.start(
                lambda task_status: service.run(shutdown=shutdown, task_status=task_status)
            )
            print(f"scheduler listening: peers {ws_url} admin {admin_url}", flush=True)

    try:
        trio.run(_until_signal, main)
    except BaseExceptionGroup as group:
        _, rest = group.split(OSError)
        if rest is not None:
            raise
        bind_error = _first_leaf(group)
        print(f"scheduler: error: cannot listen: {bind_error}", file=sys.stderr)
        return 1
    return 0


def _first_leaf(error: BaseException) -> BaseException:
    while isinstance(error, BaseExceptionGroup):
        error = error.exceptions[0]
    return error


def cmd_peer(args: argparse.Namespace) -> int:
    from .client import PeerConfig, run_peer
    from .service import configure_logging

    configure_logging(args.log_format, args.log_level)
    options: dict[str, Any] = {
        "scheduler_url": args.scheduler,
        "ip": args.ip,
        "port": args.port,
        "download_port": args.download_port,
        "announce_interval": args.announce_interval,
        "idc": args.idc,
        "location": args.location,
        "tasks": tuple(args.task),
    }
    if args.hostname:
        options["hostname"] = args.hostname
    try:
        config = PeerConfig(**options)
    except ValueError as exc:
        _fail(str(exc))

    async def main(shutdown: trio.Event) -> None:
        await run_peer(config, shutdown=shutdown)

    trio.run(_until_signal, main)
    return 0


def cmd_hosts(args: argparse.Namespace) -> int:
    import json

    from .client import fetch_hosts, print_hosts

    try:
        hosts = fetch_hosts(args.admin, state=args.state)
    except Exception as exc:
        print(f"scheduler: error: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(hosts, indent=2))
    else:
        print_hosts(hosts)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.captureWarnings(True)
    commands: dict[str, Callable[[argparse.Namespace], int]] = {
        "serve": cmd_serve,
        "peer": cmd_peer,
        "hosts": cmd_hosts,
    }
    return commands[args.command](args)


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
