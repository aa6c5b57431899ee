"""Instructions per message through the session rules: a figure machine noise cannot move.

A script that prints numbers, never a test. On a shared 2-core machine a timed run moves
by 15 % or more from one minute to the next, more than most changes to the per-message
path. This counts the CPU instructions instead, under valgrind's ``callgrind`` (about 50
times slower, and the same count every run): ``SessionProtocol.receive`` and ``encode``
of the reply, for 100 announced sessions sending re-announces (``--batch`` items per
``batch`` frame, or single frames with ``--batch 0``), with the built-in policies at
their defaults. The count of one round is the count of three rounds minus that of one,
so the set-up and the interpreter's start cancel out.

    python benchmarks/bench_instructions.py                        # the working tree
    python benchmarks/bench_instructions.py --baseline-src /tmp/base --batch 0

``--baseline-src DIR``: a directory holding another ``scheduler`` package (e.g.
``git archive REV scheduler | tar -x -C DIR``), counted the same way, and the ratio.
Needs ``valgrind`` on the PATH.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SESSIONS = 100

#: The measured program, run as ``python -P -c`` with the tree to count first on sys.path.
PROGRAM = """
import sys
import orjson
from scheduler.core import SchedulerState
from scheduler.policies import load_policies
from scheduler.protocol import encode
from scheduler.session import HostSessions, SessionLimits, SessionProtocol

batch, rounds, sessions = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
limits = SessionLimits(
    ping_interval=5.0, ping_timeout=4.0, announce_timeout=10.0, error_limit=10**6,
    error_window=1.0, message_rate=1e9, message_burst=10**9,
)
state = SchedulerState(load_policies(entrypoints=False), now=0.0)
hosts = HostSessions(state)
protocols = [
    SessionProtocol(state, hosts, limits, opened_at=0.0, owner=object()) for _ in range(sessions)
]

def announce(i, request_id):
    host = {"hostname": f"h-{i}", "ip": f"10.0.{i // 250}.{i % 250}", "port": 8002,
            "download_port": 8001}
    return {"type": "announce_host", "id": request_id, "host": host, "interval": 3600}

if batch:
    frames = [
        orjson.dumps({"type": "batch", "id": 1,
                      "messages": [announce(i, 10 + k) for k in range(batch)]}).decode()
        for i in range(sessions)
    ]
else:
    frames = [orjson.dumps(announce(i, 5)).decode() for i in range(sessions)]
now = 1.0
for _ in range(1 + rounds):  # the first round announces every host
    for protocol, frame in zip(protocols, frames):
        now += 1e-5
        outcome = protocol.receive(frame, now)
        assert outcome.close is None and outcome.replies, outcome
        encode(outcome.replies[0])
"""


def count(src: Path, batch: int, rounds: int) -> int:
    """Instructions callgrind collects for the program with ``rounds`` measured rounds."""
    env = {**os.environ, "PYTHONPATH": str(src)}
    result = subprocess.run(
        [
            "valgrind",
            "--tool=callgrind",
            "--callgrind-out-file=/dev/null",
            sys.executable,
            "-P",
            "-c",
            PROGRAM,
            str(batch),
            str(rounds),
            str(SESSIONS),
        ],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    found = re.search(r"Collected : (\d+)", result.stderr)
    if found is None:
        raise RuntimeError(f"no callgrind total in:\n{result.stderr[-2000:]}")
    return int(found.group(1))


def per_message(src: Path, batch: int) -> float:
    messages = 2 * SESSIONS * max(batch, 1)
    return (count(src, batch, 3) - count(src, batch, 1)) / messages


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, default=10, help="items per batch frame (0: none)")
    parser.add_argument("--baseline-src", type=Path, help="another tree's scheduler package")
    args = parser.parse_args()
    if shutil.which("valgrind") is None:
        raise SystemExit("bench_instructions: valgrind is not on the PATH")
    unit = f"re-announce ({args.batch} per batch frame)" if args.batch else "re-announce frame"
    trees = [("tree", ROOT)]
    if args.baseline_src is not None:
        if not (args.baseline_src / "scheduler").is_dir():
            raise SystemExit(f"bench_instructions: no scheduler package in {args.baseline_src}")
        trees.insert(0, ("baseline", args.baseline_src))
    figures: dict[str, float] = {}
    for name, src in trees:
        figures[name] = per_message(src, args.batch)
        print(f"{name:<9} {figures[name]:>10,.0f} instructions per {unit}  ({src})", flush=True)
    if "baseline" in figures:
        print(f"SUMMARY tree / baseline = {figures['tree'] / figures['baseline']:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
