"""The ``scheduler`` command: ``serve``, ``peer``, ``token``, ``preheat``, and the admin tables.

Exit status: 0 on a clean stop, 2 for a bad flag or a bad configuration
(the message names the key), 1 for anything unexpected. ``preheat``: 0 when the
job succeeded, 1 when it failed, 2 for a bad flag or a request the scheduler
refused as invalid (400), 3 when no job ran (the admin API unreachable, a token
refused, no host in scope, too many jobs).
"""

from __future__ import annotations

import argparse
import difflib
import importlib.metadata
import logging
import re
import signal
import sys
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

import trio

from . import config as settings
from .core import ConfigError, parse_duration
from .settings import Section

EXIT_CONFIG = 2
#: ``preheat``: the job failed; no job ran.
EXIT_JOB_FAILED = 1
EXIT_NO_JOB = 3
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


_RATE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(|k|ki|m|mi|g|gi)b?(?:/s)?\s*$", re.IGNORECASE)
_RATE_UNITS = {"": 1, "k": 1e3, "ki": 1024, "m": 1e6, "mi": 1024**2, "g": 1e9, "gi": 1024**3}


def _rate(value: str) -> float:
    """An argparse type: bytes per second, ``33554432``, ``32MiB``, ``32MiB/s``, ``50MB``."""
    match = _RATE.match(value)
    if match is None or float(match[1]) <= 0:
        raise argparse.ArgumentTypeError(
            f"expected a positive rate such as 32MiB, 100MB or 1048576 (bytes/s), got {value!r}"
        )
    return float(match[1]) * _RATE_UNITS[match[2].lower()]


_port = _int_between(0, 65535, "port")
_positive_int = _int_between(1, sys.maxsize, "the value")


def installed_version() -> str:
    """The version of the installed distribution (the package's own when not installed)."""
    try:
        return importlib.metadata.version("trio-p2p-scheduler")
    except importlib.metadata.PackageNotFoundError:
        from . import __version__

        return __version__


class CommandParser(argparse.ArgumentParser):
    """An argument parser whose errors are short: the error first, a suggestion, no usage.

    It keeps the flags it was given (``flags``: flag -> takes a value), so that a
    mistyped flag gets the closest ones as a suggestion, and a value that starts with
    ``-`` (``--reconnect-grace -1s``) reaches the flag's own check.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.flags: dict[str, bool] = {}  # before super(): it adds --help
        #: The subcommands' parsers by name (set by :func:`build_parser` on the root).
        self.commands: dict[str, CommandParser] = {}
        super().__init__(*args, **kwargs)

    def add_argument(self, *args: Any, **kwargs: Any) -> argparse.Action:
        action = super().add_argument(*args, **kwargs)
        self.note(action)
        return action

    def add_argument_group(self, *args: Any, **kwargs: Any) -> Any:
        return _NotingGroup(self, super().add_argument_group(*args, **kwargs))

    def note(self, action: argparse.Action) -> None:
        for flag in action.option_strings:
            self.flags[flag] = action.nargs != 0

    def error(self, message: str) -> NoReturn:
        unknown = message.removeprefix("unrecognized arguments: ")
        if unknown != message:
            close = [
                match
                for word in unknown.split()
                for match in difflib.get_close_matches(word.split("=")[0], self.flags, n=2)
            ]
            if close:
                message += f" (did you mean {' or '.join(dict.fromkeys(close))}?)"
        print(f"{self.prog}: error: {message}", file=sys.stderr)
        print(f"run `{self.prog} --help` for every flag", file=sys.stderr)
        raise SystemExit(EXIT_CONFIG)

    def join_dash_values(self, argv: Sequence[str]) -> list[str]:
        """``FLAG -VALUE`` as ``FLAG=-VALUE`` for a flag that takes a value, when
        ``-VALUE`` is no flag of this parser (argparse would read it as one)."""
        joined: list[str] = []
        index = 0
        while index < len(argv):
            word = argv[index]
            following = argv[index + 1] if index + 1 < len(argv) else None
            if (
                self.flags.get(word)
                and following is not None
                and following.startswith("-")
                and following != "--"
                and following.split("=")[0] not in self.flags
            ):
                joined.append(f"{word}={following}")
                index += 2
                continue
            joined.append(word)
            index += 1
        return joined


class _NotingGroup:
    """An argument group whose flags its parser notes (argparse's groups are private)."""

    def __init__(self, parser: CommandParser, group: Any) -> None:
        self._parser = parser
        self._group = group

    def add_argument(self, *args: Any, **kwargs: Any) -> argparse.Action:
        action: argparse.Action = self._group.add_argument(*args, **kwargs)
        self._parser.note(action)
        return action

    def __getattr__(self, name: str) -> Any:
        return getattr(self._group, name)


def _default_admin_url() -> str:
    """The admin API of a ``scheduler serve`` started with the declared defaults."""
    server = settings.SERVER
    host = server["admin_bind"].default or server["bind"].default
    return f"http://{host}:{server['admin_port'].default}"


def build_parser() -> CommandParser:
    parser = CommandParser(
        prog="scheduler",
        description="A Trio-based P2P scheduler with pluggable, deadline-driven GC policies.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {installed_version()}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = commands.add_parser(
        "serve",
        help="run the scheduler (WebSocket for peers, admin HTTP + /metrics)",
        description="Run the scheduler. Precedence: flag > environment variable > "
        "the TOML file given with --config > default. Durations accept 500ms, 5s, 5m, 1h. "
        "See docs/operations.md.",
    )
    serve.add_argument("--config", metavar="FILE", help="TOML configuration file")
    serve.add_argument(
        "--print-config",
        action="store_true",
        help="print the configuration in force, with the source of each value, and exit",
    )
    settings.add_flags(serve)

    peer = commands.add_parser(
        "peer",
        help="run the reference peer daemon",
        description="Announce this host to a scheduler and keep the session alive; "
        "reconnect with backoff; leave on SIGINT/SIGTERM.",
    )
    peer.add_argument(
        "--scheduler",
        required=True,
        metavar="URL",
        help="ws://HOST:PORT/ws (one scheduler), or http://HOST:ADMIN_PORT of any member "
        "of a cluster: announce to every member, each task to its owner",
    )
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
    peer.add_argument(
        "--seed",
        action="store_true",
        help="announce a seed host: fetch tasks from the origin when the scheduler asks",
    )
    peer.add_argument(
        "--download-rate",
        type=_rate,
        default=32 * 1024**2,
        metavar="RATE",
        help="bytes per second at which a fetch_task (a seed fetch or a preheat) is simulated: "
        "32MiB (the default), 100MB, 1GiB/s; the reference peer moves no real bytes",
    )
    peer.add_argument(
        "--batch-linger",
        type=_duration,
        default=0.005,
        help="send the requests of this long as one batch frame (default 5ms; 0: no batching)",
    )
    peer.add_argument(
        "--batch-max",
        type=_positive_int,
        default=100,
        help="the most requests in one batch frame (default 100, at most 1000; 1: no batching)",
    )
    peer.add_argument(
        "--hosts",
        type=_positive_int,
        default=1,
        metavar="N",
        help="run N hosts in this process, named HOSTNAME-0 ... HOSTNAME-<N-1> "
        "(load and chaos tests; default 1: the hostname as given)",
    )
    _add_credential_flags(peer, client_certificate=True)
    peer.add_argument("--idc", default="")
    peer.add_argument("--location", default="")
    peer.add_argument("--log-format", choices=["text", "json"], default="text")
    peer.add_argument("--log-level", choices=["debug", "info", "warning", "error"], default="info")

    admin = _default_admin_url()
    hosts = commands.add_parser("hosts", help="print the scheduler's hosts as a table")
    hosts.add_argument("--state", choices=["connected", "disconnected"])
    peers = commands.add_parser("peers", help="print the scheduler's peers as a table")
    peers.add_argument("--task", metavar="ID", help="only the peers of this task")
    peers.add_argument("--limit", type=_positive_int, help="at most this many (server: 1000)")
    tasks = commands.add_parser("tasks", help="print the scheduler's tasks as a table")
    task = commands.add_parser(
        "task", help="print one task: its peers and the parents each was handed"
    )
    task.add_argument("task_id", metavar="ID", help="the task id")
    task.add_argument(
        "--tree", action="store_true", help="draw the parent edges as a tree (the default)"
    )
    for table in (hosts, peers, tasks, task):
        table.add_argument(
            "--admin", default=admin, metavar="URL", help=f"admin API (default {admin})"
        )
        table.add_argument("--json", action="store_true", help="print the raw JSON instead")
        table.add_argument(
            "--wide",
            action="store_true",
            help="show ids whole (by default a long id is cut in the middle, so that the "
            "table fits 100 columns)",
        )
        _add_credential_flags(table, client_certificate=False)
    _add_preheat_parser(commands, admin)
    _add_token_parser(commands)

    from .loadgen import add_loadgen_parser
    from .registry._cli import add_registry_parser
    from .simulate import add_simulate_parser

    add_simulate_parser(commands)
    add_loadgen_parser(commands)
    add_registry_parser(commands)
    parser.commands = dict(commands.choices)  # every subparser is a CommandParser
    return parser


def _add_credential_flags(
    parser: argparse.ArgumentParser, *, client_certificate: bool, scope: str = "admin:read"
) -> None:
    """``--token``/``--token-file`` and ``--ca-file`` (and a client certificate for peers)."""
    what = "a host token" if client_certificate else f"an {scope} token"
    parser.add_argument(
        "--token",
        metavar="TOKEN",
        help=f"{what}, sent as Authorization: Bearer [env SCHEDULER_TOKEN]",
    )
    parser.add_argument(
        "--token-file",
        metavar="FILE",
        help="read the token from FILE (safer than --token) [env SCHEDULER_TOKEN_FILE]",
    )
    parser.add_argument(
        "--ca-file", metavar="FILE", help="CA that signed the scheduler's TLS certificate"
    )
    if client_certificate:
        parser.add_argument("--cert-file", metavar="FILE", help="client certificate (PEM)")
        parser.add_argument("--key-file", metavar="FILE", help="the client certificate's key")


def _add_preheat_parser(commands: Any, admin: str) -> None:
    preheat = commands.add_parser(
        "preheat",
        help="warm the swarm: have hosts fetch a URL now, and follow the job",
        description="Submit a preheat job (POST /api/v1/jobs, an admin:write token when "
        "authentication is on) and show its progress until it finishes. Exit status: 0 "
        "succeeded, 1 failed (each failed host on stderr), 2 bad flag or refused as invalid, "
        "3 no job ran (admin API unreachable, token refused, no host in scope, too many jobs).",
    )
    preheat.add_argument("url", metavar="URL", help="the URL to fetch (the task's id is its hash)")
    preheat.add_argument(
        "--scope",
        choices=["single_seed", "all_seeds", "all_peers"],
        default="single_seed",
        help="which hosts fetch it: the task's seed (the default), every seed, or every host",
    )
    which = preheat.add_mutually_exclusive_group()
    which.add_argument("--count", type=_positive_int, help="only the first N hosts of the scope")
    which.add_argument(
        "--percentage", type=_percentage, metavar="P", help="only P %% of the scope's hosts"
    )
    which.add_argument(
        "--ip", action="append", metavar="IP", help="only the host with this address (repeatable)"
    )
    preheat.add_argument(
        "--piece-length", type=_positive_int, metavar="BYTES", help="default 4194304 (4 MiB)"
    )
    preheat.add_argument(
        "--content-length",
        type=_int_between(0, sys.maxsize, "bytes"),
        metavar="BYTES",
        help="the URL's size, when known: the hosts report pieces of it",
    )
    preheat.add_argument(
        "--no-wait", action="store_true", help="print the job's id once it is accepted, and exit"
    )
    preheat.add_argument(
        "--json", action="store_true", help="print the finished job as JSON (no progress bar)"
    )
    preheat.add_argument(
        "--admin", default=admin, metavar="URL", help=f"admin API (default {admin})"
    )
    _add_credential_flags(preheat, client_certificate=False, scope="admin:write")


def _percentage(value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a percentage, got {value!r}") from None
    if not 0 < number <= 100:
        raise argparse.ArgumentTypeError(f"the percentage must be in (0, 100], got {value}")
    return number


def _add_token_parser(commands: Any) -> None:
    token = commands.add_parser("token", help="issue tokens for hosts and the admin API")
    actions = token.add_subparsers(dest="token_command", required=True, metavar="ACTION")
    issue = actions.add_parser(
        "issue",
        help="print a signed token",
        description="Print a token signed with the key in --key-file (the server's "
        "auth.key_file). A host token names the one hostname it may announce; a "
        "cluster-wide token (--cluster) may announce any hostname and is weaker; an "
        "admin token carries a scope. See docs/security.md.",
    )
    issue.add_argument("--key-file", required=True, metavar="FILE", help="the signing key")
    kind = issue.add_mutually_exclusive_group(required=True)
    kind.add_argument("--hostname", help="a host token for this hostname")
    kind.add_argument(
        "--cluster", action="store_true", help="a cluster-wide host token (any hostname)"
    )
    kind.add_argument(
        "--scope", choices=["admin:read", "admin:write"], help="an admin token with this scope"
    )
    issue.add_argument(
        "--seed",
        action="store_true",
        help="with --hostname or --cluster: the token may also announce seed hosts",
    )
    issue.add_argument(
        "--cluster-id",
        default="default",
        metavar="ID",
        help="the cluster the token is for: the schedulers' cluster.id (default: default)",
    )
    issue.add_argument("--ttl", type=_duration, default=30 * 86400.0, help="lifetime (default 30d)")


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
    import os

    from .client._errors import first_leaf
    from .service import SchedulerService, build_policies, configure_logging
    from .service._auth import check_credential_files
    from .service._cluster import check_cluster
    from .service._config import config_from_resolved, resolve_config

    try:
        resolved = resolve_config(args.config, os.environ, settings.flag_values(args))
        config = config_from_resolved(resolved)
        check_credential_files(config)
        check_cluster(config)
    except ConfigError as exc:
        _fail(str(exc))
    configure_logging(config.log_format, config.log_level)
    for line in resolved.deprecated:
        logging.getLogger("scheduler.config").warning(line)  # our own words: not quoted
    try:
        policies = build_policies(config)
    except ConfigError as exc:
        _fail(str(exc))
    except Exception as exc:  # a plugin that fails to import or register
        _fail(f"plugins: {exc}")
    if args.print_config:
        print(settings.render(resolved, _plugin_settings(policies.pm.list_name_plugin())), end="")
        return 0

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
        bind_error = first_leaf(group)
        print(f"scheduler: error: cannot listen: {bind_error}", file=sys.stderr)
        return 1
    return 0


def _plugin_settings(
    plugins: Sequence[tuple[str, object]],
) -> list[tuple[Section, dict[str, Any]]]:
    """The declared settings of the loaded plugins, with the values each one holds."""
    found = []
    for _, plugin in plugins:
        section = getattr(plugin, "settings", None)
        if isinstance(section, Section):
            found.append((section, {s.attr: getattr(plugin, s.attr) for s in section}))
    return found


def cmd_token(args: argparse.Namespace) -> int:
    """``token issue``: print a signed token."""
    from .service._auth import Scope, issue_token, read_key

    try:
        key = read_key(args.key_file, "--key-file")
    except ConfigError as exc:
        _fail(str(exc))
    scopes: tuple[Scope, ...] = (Scope(args.scope),) if args.scope else (Scope.HOST,)
    if args.seed:
        if args.scope:
            _fail("--seed goes with a host token (--hostname or --cluster), not --scope")
        scopes = (Scope.HOST, Scope.SEED)
    if args.ttl <= 0:
        _fail("--ttl must be positive")
    token = issue_token(
        key, scopes=scopes, hostname=args.hostname, ttl=args.ttl, cluster_id=args.cluster_id
    )
    print(token)
    return 0


def _token(args: argparse.Namespace) -> str | None:
    from .client import resolve_token

    try:
        return resolve_token(args.token, args.token_file)
    except ValueError as exc:
        _fail(str(exc))


def cmd_peer(args: argparse.Namespace) -> int:
    import functools

    import attrs

    from .client import PeerConfig, PermanentError, run_peer
    from .client._errors import first_leaf
    from .service import configure_logging

    configure_logging(args.log_format, args.log_level)
    options: dict[str, Any] = {
        "token": _token(args),
        "ca_file": args.ca_file,
        "cert_file": args.cert_file,
        "key_file": args.key_file,
        "scheduler_url": args.scheduler,
        "ip": args.ip,
        "port": args.port,
        "download_port": args.download_port,
        "announce_interval": args.announce_interval,
        "idc": args.idc,
        "location": args.location,
        "tasks": tuple(args.task),
        "seed": args.seed,
        "download_rate": args.download_rate,
        "batch_linger": args.batch_linger,
        "batch_max": args.batch_max,
    }
    if args.hostname:
        options["hostname"] = args.hostname
    try:
        config = PeerConfig(**options)
        config.ssl_context()  # a bad CA or certificate file is a usage error
        config.batching()  # so is a batch max out of range
    except ValueError as exc:
        _fail(str(exc))

    configs = [config]
    if args.hosts > 1:
        configs = [
            attrs.evolve(config, hostname=f"{config.hostname}-{i}") for i in range(args.hosts)
        ]

    async def main(shutdown: trio.Event) -> None:
        async with trio.open_nursery() as nursery:
            for each in configs:
                nursery.start_soon(functools.partial(run_peer, each, shutdown=shutdown))

    try:
        trio.run(_until_signal, main)
    except* PermanentError as refused:
        # No retry can fix it (a refused token, a forbidden hostname, an untrusted
        # certificate): one line, and a status a supervisor will not restart on.
        _fail(str(first_leaf(refused)))
    return 0


def cmd_table(args: argparse.Namespace) -> int:
    """``hosts``, ``peers`` and ``tasks``: one admin API listing, as a table or JSON."""
    import json

    from . import client

    auth: dict[str, Any] = {"token": _token(args), "ca_file": args.ca_file}
    fetch: dict[str, Callable[[], list[dict[str, Any]]]] = {
        "hosts": lambda: client.fetch_hosts(args.admin, state=args.state, **auth),
        "peers": lambda: client.fetch_peers(args.admin, task=args.task, limit=args.limit, **auth),
        "tasks": lambda: client.fetch_tasks(args.admin, **auth),
    }
    render = {
        "hosts": client.render_hosts_table,
        "peers": client.render_peers_table,
        "tasks": client.render_tasks_table,
    }
    try:
        records = fetch[args.command]()
    except client.HostsFetchError as exc:
        print(f"scheduler: error: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(records, indent=2))
    else:
        client.print_table(render[args.command], records, wide=args.wide)
    return 0


def cmd_task(args: argparse.Namespace) -> int:
    """``task ID``: the task's peers under the parents they were handed, or the raw JSON."""
    import json

    from rich.console import Console

    from . import client

    try:
        record = client.fetch_task(
            args.admin, args.task_id, token=_token(args), ca_file=args.ca_file
        )
    except client.HostsFetchError as exc:
        print(f"scheduler: error: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(record, indent=2))
    else:
        Console().print(client.render_task_tree(record, wide=args.wide))
    return 0


def cmd_preheat(args: argparse.Namespace) -> int:
    """``preheat URL``: submit the job, follow it with a progress bar, exit by its outcome."""
    import json

    from . import client

    auth: dict[str, Any] = {"token": _token(args), "ca_file": args.ca_file}
    request: dict[str, Any] = {"url": args.url, "scope": args.scope}
    for key in ("count", "percentage", "piece_length", "content_length"):
        if getattr(args, key) is not None:
            request[key] = getattr(args, key)
    if args.ip:
        request["ips"] = args.ip
    try:
        job = client.submit_preheat(args.admin, request, **auth)
    except client.HostsFetchError as exc:
        print(f"scheduler: error: {exc}", file=sys.stderr)
        return EXIT_CONFIG if exc.status == 400 else EXIT_NO_JOB
    if args.no_wait:
        print(job["id"])
        return 0
    try:
        job = _follow(args, job["id"], auth)
    except client.HostsFetchError as exc:
        print(f"scheduler: error: job {job['id']}: {exc}", file=sys.stderr)
        return EXIT_NO_JOB
    if args.json:
        print(json.dumps(job, indent=2))
    done = job["hosts_by_state"]["succeeded"]
    print(
        f"job {job['id']} {job['state']}: {done} of {job['host_count']} hosts hold {args.url}",
        file=sys.stderr,
    )
    for reason in job["reasons"]:
        print(f"  failed: {reason}", file=sys.stderr)
    return 0 if job["state"] == "succeeded" else EXIT_JOB_FAILED


def _follow(args: argparse.Namespace, job_id: str, auth: dict[str, Any]) -> dict[str, Any]:
    """Follow the job to its end, drawing hosts done and pieces fetched on stderr."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from . import client

    def read() -> dict[str, Any]:
        return client.fetch_job(args.admin, job_id, **auth)

    if args.json:
        return client.follow_job(read, lambda _job: None)
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn())
    with Progress(*columns, console=Console(stderr=True), transient=False) as progress:
        hosts = progress.add_task(f"job {job_id}: hosts", total=None)
        pieces = progress.add_task("pieces", total=None)

        def update(job: dict[str, Any]) -> None:
            states = job["hosts_by_state"]
            progress.update(
                hosts,
                completed=states["succeeded"] + states["failed"],
                total=job["host_count"],
                description=f"job {job_id} {job['state']}: hosts",
            )
            fetched = sum(h["finished_pieces"] for h in job.get("hosts", ()))
            known = [h["total_pieces"] for h in job.get("hosts", ())]
            total = sum(known) if known and min(known) >= 0 else None
            progress.update(pieces, completed=fetched, total=total)

        return client.follow_job(read, update)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Parse the command line; an error is one line, the command's, with a suggestion."""
    parser = build_parser()
    words = list(sys.argv[1:] if argv is None else argv)
    command = next((word for word in words if not word.startswith("-")), None)
    sub = parser.commands.get(command or "")
    if sub is not None:
        words = sub.join_dash_values(words)
    args, unknown = parser.parse_known_args(words)
    if unknown:
        (sub or parser).error(f"unrecognized arguments: {' '.join(unknown)}")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    from .loadgen import cmd_loadgen
    from .registry._cli import cmd_registry
    from .simulate import cmd_simulate

    args = parse_args(argv)
    logging.captureWarnings(True)
    commands: dict[str, Callable[[argparse.Namespace], int]] = {
        "serve": cmd_serve,
        "peer": cmd_peer,
        "token": cmd_token,
        "hosts": cmd_table,
        "peers": cmd_table,
        "tasks": cmd_table,
        "task": cmd_task,
        "preheat": cmd_preheat,
        "simulate": cmd_simulate,
        "loadgen": cmd_loadgen,
        "registry": cmd_registry,
    }
    return commands[args.command](args)


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
