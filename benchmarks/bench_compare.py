"""Three servers, the same load, one run: bittorrent-tracker, the bare floor, ``scheduler serve``.

``nox -s bench-compare`` runs this script (a benchmark that prints numbers, never a test):

1. installs bittorrent-tracker 11.2.3 with npm into a temporary directory
   (``--ignore-scripts``: no native builds; only its server module is loaded, which
   needs ``ws`` and nothing native) and checks that node can import the server;
2. starts, each on 127.0.0.1 and a port the kernel picks: the tracker
   (``benchmarks/node/tracker.js``), the floor (``benchmarks/floor_server.py``, a bare
   trio-websocket server that parses with orjson and sends a fixed reply) and
   ``scheduler serve`` (its defaults, admin on a free port);
3. drives each with the same node ``ws`` load generator (``benchmarks/node/loadgen.js``:
   N connections, one request in flight each; the scheduler and the floor get
   ``announce_host``, the tracker its WebTorrent announce), for every connection count
   in ``--connections``, measuring each server's CPU from ``/proc/PID/stat``;
4. the batch figure: ``--batch-size`` announces per ``batch`` frame to the scheduler
   (today's server answers ``error``: reported as unsupported) and to the floor;
5. idle RSS per connection (measured first, on the fresh servers after a 10-connection
   warm-up): ``--idle`` connections, each announced once, held open; VmRSS after minus
   before, over the connections;
6. ``scheduler loadgen`` (our Python generator) against the three, as a second view;
7. prints the table and the ratios (per frame, per update, memory); ``--plot FILE.png``
   draws throughput and p99 latency against connections; ``--json FILE`` writes every figure;
8. with ``--rounds N``: N more rounds at ``--main`` connections, each running the tracker,
   the floor, the scheduler and the scheduler's batch frames back to back (in the reverse
   order every other round), and the two ratios of each round with their median. On
   this 2-core machine one run moves by 15 % or more from one minute to the next, so a
   ratio of runs made minutes apart says little; the median of rounds says more.

Every process is started in its own process group and killed at the end, also on error.

    nox -s bench-compare                                       # defaults
    nox -s bench-compare -- --connections 10,100,500 --plot compare.png
    python benchmarks/bench_compare.py --duration 2 --idle 200 --connections 20   # quick
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# One reader of a child's lines for every benchmark script (run from benchmarks/).
from bench_sessions import Lines
from rich.console import Console
from rich.table import Table

from scheduler.loadgen._procfs import load_average, proc_cpu_seconds, proc_rss_kb, raise_fd_limit

ROOT = Path(__file__).resolve().parent.parent
NODE_DIR = ROOT / "benchmarks" / "node"
TRACKER_PACKAGE = "bittorrent-tracker@11.2.3"
SERVERS = ("bittorrent-tracker", "floor", "scheduler")


# --- child processes -------------------------------------------------------------------------


class Children:
    """Every process this run starts, each in its own group; ``stop_all`` kills them all."""

    def __init__(self) -> None:
        self.started: list[subprocess.Popen[str]] = []

    def start(
        self, command: list[str], name: str, **kwargs: Any
    ) -> tuple[subprocess.Popen[str], Lines]:
        process = subprocess.Popen(
            command,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=kwargs.pop("stderr", None),
            text=True,
            start_new_session=True,
            **kwargs,
        )
        self.started.append(process)
        assert process.stdout is not None
        return process, Lines(process.stdout, name)

    @staticmethod
    def stop(process: subprocess.Popen[str], grace: float = 5.0) -> None:
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=10)
        for pipe in (process.stdin, process.stdout):
            if pipe is not None:
                with contextlib.suppress(OSError):
                    pipe.close()

    def stop_all(self) -> None:
        for process in reversed(self.started):
            self.stop(process)


# --- the servers ---------------------------------------------------------------------------------


@dataclass
class Server:
    name: str
    url: str
    pid: int
    protocol: str  # what the load generators speak to it: "scheduler" or "tracker"


def npm_install(directory: Path) -> Path:
    """Install the tracker into ``directory``; returns its node_modules. Checks the import."""
    for tool in ("node", "npm"):
        if shutil.which(tool) is None:
            raise SystemExit(f"bench-compare needs {tool} on PATH")
    subprocess.run(
        ["npm", "install", "--ignore-scripts", "--no-audit", "--no-fund", TRACKER_PACKAGE],
        cwd=directory,
        check=True,
        stdout=subprocess.DEVNULL,
        timeout=600,
    )
    modules = directory / "node_modules"
    entry = json.dumps(str(modules / "bittorrent-tracker" / "server.js"))
    check = (
        "const {pathToFileURL}=require('url');"
        f"import(pathToFileURL({entry}).href)"
        ".then(m=>{if(typeof m.default!=='function')process.exit(3)})"
        ".catch(e=>{console.error(e.message);process.exit(4)})"
    )
    subprocess.run(["node", "-e", check], check=True, timeout=60)
    return modules


def start_servers(children: Children, modules: Path) -> dict[str, Server]:
    commands = {
        "bittorrent-tracker": (
            ["node", "--expose-gc", str(NODE_DIR / "tracker.js"), "--modules", str(modules)],
            "tracker listening:",
            "tracker",
        ),
        "floor": (
            [sys.executable, str(ROOT / "benchmarks" / "floor_server.py"), "--port", "0"],
            "floor listening:",
            "scheduler",
        ),
        "scheduler": (
            [
                *(sys.executable, "-m", "scheduler", "serve", "--bind", "127.0.0.1"),
                *("--port", "0", "--admin-port", "0", "--log-level", "warning"),
                *("--max-sessions", "60000"),
                # Every client is on 127.0.0.1: lift the per-address caps (1,000 by
                # default) above the load, as for the other two servers, which have none.
                *("--max-connections-per-address", "60000"),
                *("--max-sessions-per-address", "60000"),
            ],
            "scheduler listening: peers",
            "scheduler",
        ),
    }
    servers = {}
    for name, (command, prefix, protocol) in commands.items():
        process, lines = children.start(command, name)
        url = lines.get(60, prefix).split()[0]
        servers[name] = Server(name, url, process.pid, protocol)
    return servers


# --- the node load generator -------------------------------------------------------------------


@dataclass
class Run:
    server: str
    connections: int
    generator: str  # "node" or "python"
    rate: float = 0.0
    updates_rate: float = 0.0
    p50_ms: float | None = None
    p99_ms: float | None = None
    errors: int = 0
    first_error: str | None = None
    server_cpu_percent: float = 0.0
    generator_cpu_percent: float = 0.0
    batch_size: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


def node_run(
    children: Children,
    modules: Path,
    server: Server,
    *,
    connections: int,
    duration: float,
    warmup: float,
    batch_size: int = 0,
) -> Run:
    command = [
        *("node", str(NODE_DIR / "loadgen.js"), "--modules", str(modules)),
        *("--url", server.url, "--connections", str(connections)),
        *("--protocol", server.protocol, "--batch-size", str(batch_size)),
        *("--prefix", f"n{connections}b{batch_size}x{int(time.time()) % 100000}"),
    ]
    process, lines = children.start(command, f"node loadgen -> {server.name}")
    assert process.stdin is not None
    try:
        ready = json.loads(lines.get(120, "ready"))
        if ready["failed"]:
            print(f"  note: {ready['failed']} of {connections} connections to {server.name} failed")
        if warmup:
            process.stdin.write(json.dumps({"duration": warmup}).join(["go ", "\n"]))
            process.stdin.flush()
            lines.get(warmup + 30, "result")
        cpu0, wall0 = proc_cpu_seconds(server.pid), time.monotonic()
        process.stdin.write(json.dumps({"duration": duration}).join(["go ", "\n"]))
        process.stdin.flush()
        result = json.loads(lines.get(duration + 30, "result"))
        cpu = (proc_cpu_seconds(server.pid) - cpu0) / (time.monotonic() - wall0)
        process.stdin.write("quit\n")
        process.stdin.flush()
        lines.get(30, "closed")
    finally:
        children.stop(process)
    return Run(
        server=server.name,
        connections=connections,
        generator="node",
        rate=result["rate"],
        updates_rate=result["updates_rate"],
        p50_ms=result["p50_ms"],
        p99_ms=result["p99_ms"],
        errors=result["errors"],
        first_error=result.get("first_error"),
        server_cpu_percent=100 * cpu,
        generator_cpu_percent=result["cpu_percent"],
        batch_size=batch_size,
    )


def idle_rss(
    children: Children, modules: Path, server: Server, connections: int, settle: float
) -> dict[str, Any]:
    """VmRSS per connection: ``connections`` sessions, each announced once, held idle."""
    command = [
        *("node", str(NODE_DIR / "loadgen.js"), "--modules", str(modules)),
        *("--url", server.url, "--connections", str(connections)),
        *("--protocol", server.protocol, "--prefix", f"idle{int(time.time()) % 100000}"),
    ]
    time.sleep(settle)
    collect_garbage(server)
    before = proc_rss_kb(server.pid)
    process, lines = children.start(command, f"node idle -> {server.name}")
    try:
        ready = json.loads(lines.get(300, "ready"))
        time.sleep(settle)
        collect_garbage(server)
        after = proc_rss_kb(server.pid)
    finally:
        children.stop(process)
    opened = int(ready["opened"])
    return {
        "server": server.name,
        "connections": opened,
        "rss_before_kb": before,
        "rss_after_kb": after,
        "kb_per_connection": (after - before) / opened if opened else None,
    }


def collect_garbage(server: Server) -> None:
    """Ask node for a full GC first (tracker.js runs with --expose-gc; SIGUSR2 triggers it).

    Without it V8 may shrink its heap between the two readings and RSS per
    connection comes out negative at small counts.
    """
    if server.name == "bittorrent-tracker":
        os.kill(server.pid, signal.SIGUSR2)
        time.sleep(0.5)


def python_run(server: Server, connections: int, duration: float, workers: int) -> Run:
    """The same load from ``scheduler loadgen`` (the Python generator), as a second view."""
    with tempfile.NamedTemporaryFile(suffix=".json") as out:
        command = [
            *(sys.executable, "-m", "scheduler", "loadgen", "--url", server.url),
            *("--server-pid", str(server.pid), "--sessions", str(connections)),
            *("--workers", str(workers), "--duration", str(duration), "--warmup", "1"),
            *("--mix", "tracker" if server.protocol == "tracker" else "announce"),
            *("--json", out.name, "--no-progress"),
        ]
        done = subprocess.run(
            command,
            check=False,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            timeout=duration * 3 + 300,
        )
        summary = json.loads(Path(out.name).read_text() or "{}")
    if not summary.get("rate"):
        print(f"  scheduler loadgen -> {server.name} measured nothing:\n{done.stderr[-2000:]}")
    return Run(
        server=server.name,
        connections=connections,
        generator="python",
        rate=summary.get("rate", 0.0),
        updates_rate=summary.get("updates_rate", 0.0),
        p50_ms=summary.get("p50_ms"),
        p99_ms=summary.get("p99_ms"),
        server_cpu_percent=summary.get("server_cpu_percent") or 0.0,
        generator_cpu_percent=sum(summary.get("generator_cpu_percent", [])),
        extra={"rss_per_session_kb": summary.get("rss_per_session_kb")},
    )


# --- output --------------------------------------------------------------------------------------


def _ms(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1f}"


def _ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}" if b else "n/a"


def report(
    runs: list[Run], idle: list[dict[str, Any]], batch: list[Run], main_connections: int
) -> list[str]:
    console = Console(width=150)
    table = Table(title="Same load, one run (node `ws` load generator, one request in flight each)")
    for column in (
        "server",
        "connections",
        "announces/s",
        "p50 / p99 ms",
        "server CPU",
        "node CPU",
    ):
        table.add_column(column, justify="right")
    for run in (r for r in runs if r.generator == "node"):
        table.add_row(
            run.server,
            str(run.connections),
            f"{run.rate:,.0f}",
            f"{_ms(run.p50_ms)} / {_ms(run.p99_ms)}",
            f"{run.server_cpu_percent:.0f} %",
            f"{run.generator_cpu_percent:.0f} %",
        )
    console.print(table)
    python = [r for r in runs if r.generator == "python"]
    if python:
        view = Table(title="Second view: scheduler loadgen (Python generator), same connections")
        for column in (
            "server",
            "sessions",
            "replies/s",
            "p50 / p99 ms",
            "server CPU",
            "generator CPU",
        ):
            view.add_column(column, justify="right")
        for run in python:
            view.add_row(
                run.server,
                str(run.connections),
                f"{run.rate:,.0f}",
                f"{_ms(run.p50_ms)} / {_ms(run.p99_ms)}",
                f"{run.server_cpu_percent:.0f} %",
                f"{run.generator_cpu_percent:.0f} %",
            )
        console.print(view)
    if batch:
        table = Table(title="Batch frames (node generator)")
        for column in ("server", "items/frame", "frames/s", "updates/s", "errors"):
            table.add_column(column, justify="right")
        for run in batch:
            table.add_row(
                run.server,
                str(run.batch_size),
                f"{run.rate:,.0f}",
                f"{run.updates_rate:,.0f}",
                f"{run.errors} ({run.first_error})" if run.errors else "0",
            )
        console.print(table)
    if idle:
        table = Table(title="Idle RSS per connection (each announced once, then idle)")
        for column in ("server", "connections", "RSS before → after", "KB per connection"):
            table.add_column(column, justify="right")
        for row in idle:
            per = row["kb_per_connection"]
            table.add_row(
                row["server"],
                f"{row['connections']:,}",
                f"{row['rss_before_kb'] / 1024:.1f} → {row['rss_after_kb'] / 1024:.1f} MiB",
                "n/a" if per is None else f"{per:.1f}",
            )
        console.print(table)

    main = {
        r.server: r for r in runs if r.generator == "node" and r.connections == main_connections
    }
    lines = []
    sched, floor, tracker = (main.get(n) for n in ("scheduler", "floor", "bittorrent-tracker"))
    if sched and floor:
        lines.append(
            f"per frame: scheduler / floor = {_ratio(sched.rate, floor.rate)} (goal >= 0.85)"
        )
    if sched and tracker:
        lines.append(
            f"per frame: scheduler / bittorrent-tracker = {_ratio(sched.rate, tracker.rate)}"
        )
    sched_batch = next((r for r in batch if r.server == "scheduler"), None)
    if sched_batch and tracker:
        if sched_batch.first_error:
            lines.append(
                "per update: the scheduler does not support batch frames yet "
                f"({sched_batch.first_error}); no ratio"
            )
        else:
            lines.append(
                f"per update: scheduler updates/s ({sched_batch.batch_size} per frame) / "
                f"bittorrent-tracker announces/s = "
                f"{_ratio(sched_batch.updates_rate, tracker.rate)} (goal >= 1.0)"
            )
    rss = {row["server"]: row["kb_per_connection"] for row in idle}
    if rss.get("scheduler") is not None and rss.get("floor") is not None:
        lines.append(
            f"memory: scheduler {rss['scheduler']:.1f} KB vs floor {rss['floor']:.1f} KB per "
            f"connection: {rss['scheduler'] - rss['floor']:+.1f} KB (goal <= +4 KB)"
        )
    for line in lines:
        print("RATIO " + line)
    return lines


def plot(runs: list[Run], path: str) -> None:
    import matplotlib  # noqa: PLC0415 - only with --plot (the `plot` extra)

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    figure, (rate_axis, latency_axis) = plt.subplots(1, 2, figsize=(11, 4.2))
    counts: set[int] = set()
    for name, color in zip(SERVERS, ("tab:blue", "tab:orange", "tab:green"), strict=True):
        points = sorted(
            ((r.connections, r) for r in runs if r.server == name and r.generator == "node"),
            key=lambda point: point[0],
        )
        if not points:
            continue
        xs = [c for c, _ in points]
        counts.update(xs)
        rate_axis.plot(xs, [r.rate for _, r in points], marker="o", color=color, label=name)
        for field_name, style in (("p99_ms", "-"), ("p50_ms", "--")):
            latency_axis.plot(
                xs,
                [getattr(r, field_name) or float("nan") for _, r in points],
                marker="o" if style == "-" else ".",
                linestyle=style,
                color=color,
                label=f"{name} {field_name.removesuffix('_ms')}",
            )
    for axis in (rate_axis, latency_axis):
        axis.set_xscale("log")
        axis.set_xticks(sorted(counts), [str(c) for c in sorted(counts)])
        axis.minorticks_off()
        axis.set_xlabel("connections")
    rate_axis.set(ylabel="announces/s", title="throughput")
    latency_axis.set(ylabel="ms", title="reply latency (p99 solid, p50 dashed)")
    rate_axis.legend()
    latency_axis.legend(fontsize="small")
    figure.suptitle(
        f"same node ws load, one request in flight each (load avg {load_average():.1f})"
    )
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    print(f"plot written to {path}")


# --- main ----------------------------------------------------------------------------------------


def _counts(text: str) -> list[int]:
    values = [int(v) for v in text.split(",") if v.strip()]
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected connection counts like 10,100,500: {text}")
    return values


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument(
        "--connections", type=_counts, default=[100], help="counts, e.g. 10,100,500"
    )
    parser.add_argument(
        "--main",
        type=int,
        default=100,
        help="the connection count of the ratios, the batch run and the Python view (100); "
        "added to --connections if missing",
    )
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per run (10)")
    parser.add_argument("--warmup", type=float, default=2.0, help="unmeasured seconds first (2)")
    parser.add_argument("--batch-size", type=int, default=10, help="items per batch frame (10)")
    parser.add_argument("--idle", type=int, default=2000, help="idle connections for RSS (2000)")
    parser.add_argument("--settle", type=float, default=2.0, help="seconds before RSS readings")
    parser.add_argument("--python-workers", type=int, default=1, help="scheduler loadgen workers")
    parser.add_argument("--no-python-view", action="store_true", help="skip scheduler loadgen")
    parser.add_argument("--plot", metavar="FILE.png", help="throughput and latency vs connections")
    parser.add_argument("--json", metavar="FILE", help="write every figure as JSON")
    parser.add_argument(
        "--rounds",
        type=int,
        default=0,
        help="then this many alternating rounds at --main connections, and their median ratios",
    )
    parser.add_argument(
        "--npm-dir", metavar="DIR", help="reuse this npm directory (default: a temporary one)"
    )
    return parser


def main_run(
    children: Children,
    modules: Path,
    server: Server,
    args: argparse.Namespace,
    batch_size: int = 0,
) -> Run:
    """One node run at ``--main`` connections (the ratios' connection count)."""
    return node_run(
        children,
        modules,
        server,
        connections=args.main,
        duration=args.duration,
        warmup=args.warmup,
        batch_size=batch_size,
    )


def ratio_round(
    children: Children,
    modules: Path,
    servers: dict[str, Server],
    args: argparse.Namespace,
    number: int,
) -> dict[str, float]:
    """One round at ``args.main`` connections: the rates behind the two throughput ratios."""
    plan = [
        ("tracker", "bittorrent-tracker", 0),
        ("floor", "floor", 0),
        ("scheduler", "scheduler", 0),
        ("batch", "scheduler", args.batch_size),
    ]
    if number % 2:
        plan.reverse()  # so that a drift of the machine does not favour one server
    rates: dict[str, float] = {}
    for key, name, batch_size in plan:
        run = main_run(children, modules, servers[name], args, batch_size)
        rates[key] = run.updates_rate if batch_size else run.rate
        # Per CPU-second of the server: what a run's rate would be on a core of its own.
        rates[f"{key}_per_cpu"] = rates[key] / max(run.server_cpu_percent / 100, 1e-9)
    rates["per_frame"] = rates["scheduler"] / rates["floor"]
    rates["per_update"] = rates["batch"] / rates["tracker"]
    rates["per_frame_per_cpu"] = rates["scheduler_per_cpu"] / rates["floor_per_cpu"]
    rates["per_update_per_cpu"] = rates["batch_per_cpu"] / rates["tracker_per_cpu"]
    rates["load_average"] = load_average()
    print(
        f"  round {number + 1}: tracker {rates['tracker']:,.0f}, floor {rates['floor']:,.0f}, "
        f"scheduler {rates['scheduler']:,.0f} announces/s, batch {rates['batch']:,.0f} "
        f"updates/s: per frame {rates['per_frame']:.2f}, per update {rates['per_update']:.2f}; "
        f"per server CPU-second {rates['per_frame_per_cpu']:.2f} and "
        f"{rates['per_update_per_cpu']:.2f} (load average {rates['load_average']:.2f})",
        flush=True,
    )
    return rates


def report_rounds(rounds: list[dict[str, float]]) -> dict[str, float]:
    """The median of each ratio over the rounds, printed with its range."""
    medians: dict[str, float] = {}
    for key, label, goal in (
        ("per_frame", "per frame: scheduler / floor", 0.85),
        ("per_update", "per update: scheduler batch updates/s / tracker announces/s", 1.0),
        ("per_frame_per_cpu", "per frame, per server CPU-second", 0.85),
        ("per_update_per_cpu", "per update, per server CPU-second", 1.0),
    ):
        values = [r[key] for r in rounds]
        medians[f"{key}_median"] = median = statistics.median(values)
        print(
            f"RATIO {label}, median of {len(values)} rounds = {median:.2f} "
            f"(range {min(values):.2f}-{max(values):.2f}; goal >= {goal:g})"
        )
    return medians


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.main < 1:
        raise SystemExit("--main must be >= 1")
    args.connections = sorted({*args.connections, args.main})
    raise_fd_limit()
    load_before = load_average()
    children = Children()
    runs: list[Run] = []
    batch: list[Run] = []
    idle: list[dict[str, Any]] = []
    rounds: list[dict[str, float]] = []
    with tempfile.TemporaryDirectory(prefix="bench-compare-") as scratch:
        npm_dir = Path(args.npm_dir) if args.npm_dir else Path(scratch)
        npm_dir.mkdir(parents=True, exist_ok=True)
        print(f"npm install {TRACKER_PACKAGE} into {npm_dir} ...", flush=True)
        modules = npm_install(npm_dir)
        try:
            servers = start_servers(children, modules)
            for server in servers.values():
                print(f"{server.name}: {server.url} (pid {server.pid})", flush=True)
            if args.idle > 0:
                # First, on fresh servers: after the load runs their heaps have grown, and
                # the idle sessions would reuse that memory and look cheaper than they are.
                for server in servers.values():
                    node_run(children, modules, server, connections=10, duration=0.5, warmup=0)
                    idle.append(idle_rss(children, modules, server, args.idle, args.settle))
                    print(f"  idle RSS {server.name}: {idle[-1]['kb_per_connection']} KB/conn")
            for connections in args.connections:
                for server in servers.values():
                    run = node_run(
                        children,
                        modules,
                        server,
                        connections=connections,
                        duration=args.duration,
                        warmup=args.warmup,
                    )
                    runs.append(run)
                    print(
                        f"  node -> {server.name:<18} {connections:>6} conns "
                        f"{run.rate:>10,.0f}/s  p99 {_ms(run.p99_ms)} ms",
                        flush=True,
                    )
            if args.batch_size > 0:
                for name in ("floor", "scheduler"):
                    batch.append(main_run(children, modules, servers[name], args, args.batch_size))
            if not args.no_python_view:
                for server in servers.values():
                    runs.append(python_run(server, args.main, args.duration, args.python_workers))
            rounds = [
                ratio_round(children, modules, servers, args, number)
                for number in range(args.rounds)
            ]
        finally:
            children.stop_all()
    print(
        f"load average before / after: {load_before:.2f} / {load_average():.2f} "
        f"({os.cpu_count()} cores; the rates are low when it exceeds them)"
    )
    ratios = report(runs, idle, batch, args.main)
    medians = report_rounds(rounds) if rounds else {}
    if args.plot:
        plot(runs, args.plot)
    if args.json:
        data = {
            "runs": [r.__dict__ for r in runs],
            "batch": [r.__dict__ for r in batch],
            "idle": idle,
            "ratios": ratios,
            "rounds": rounds,
            "round_medians": medians,
            "load_average": [load_before, load_average()],
        }
        Path(args.json).write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
