"""Every command of the README's "Run it" section runs as written, on a fresh install.

The test copies the checkout's files into a temporary directory, makes a new
virtualenv there, and runs each ``$`` line of the section in order, from that
directory, with the virtualenv first on ``PATH``, exactly as a newcomer would type it:
``pip install .`` first, then the rest. ``scheduler serve`` and ``scheduler peer`` keep
running (in the background, as "in other terminals" says): a later ``serve`` stops the
one before, as the README asks. Every other command must exit with status 0. The
servers' stderr is kept and must hold no traceback.

It needs the package index (``pip install .`` fetches the dependencies), ``openssl``,
``curl`` and the ports the README names (8000 and 8002) free on loopback.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[1]


def run_it_commands(readme: str) -> list[str]:
    """The ``$`` lines of the console blocks of the README's "Run it" section, in order."""
    section = readme.split("\n## Run it\n", 1)[1].split("\n## ", 1)[0]
    commands: list[str] = []
    for block in re.findall(r"```console\n(.*?)```", section, re.S):
        commands.extend(line[2:] for line in block.splitlines() if line.startswith("$ "))
    return commands


def test_the_section_is_what_this_test_runs() -> None:
    commands = run_it_commands((ROOT / "README.md").read_text(encoding="utf-8"))
    assert commands[:2] == ["pip install .", "scheduler serve"]
    assert sum(c.startswith("scheduler serve") for c in commands) >= 2
    assert all("example.com" not in c for c in commands)  # nothing that cannot run here


class Background:
    """A long-running command: its output lines, collected by a thread."""

    def __init__(self, command: str, cwd: Path, env: dict[str, str]) -> None:
        self.command = command
        self.lines: list[str] = []
        #: Notified at each line and at the end of the output.
        self._changed = threading.Condition()
        self._ended = False
        self.process = subprocess.Popen(
            ["bash", "-c", f"exec {command}"],
            cwd=cwd,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            with self._changed:
                self.lines.append(line.rstrip("\n"))
                self._changed.notify_all()
        with self._changed:
            self._ended = True
            self._changed.notify_all()

    def wait_for(self, text: str, within: float) -> None:
        def printed() -> bool:
            return any(text in line for line in self.lines)

        with self._changed:
            self._changed.wait_for(lambda: self._ended or printed(), timeout=within)
            if printed():
                return
        output = "\n".join(self.lines[-40:])
        pytest.fail(f"`{self.command}` did not print {text!r} within {within} s:\n{output}")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._reader.join(timeout=5)
        if self.process.stdout is not None:
            self.process.stdout.close()


@pytest.fixture
def fresh_checkout(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """The checkout's files (tracked and new, not ignored) and a new virtualenv."""
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    )
    copy = tmp_path / "checkout"
    for name in filter(None, listed.stdout.decode().split("\0")):
        source = ROOT / name
        if source.is_file():
            target = copy / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("VIRTUAL_ENV", "PYTHON", "SCHEDULER_"))
    }
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    env["VIRTUAL_ENV"] = str(venv)
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    env["COLUMNS"] = "100"
    return copy, env


def test_every_command_of_run_it_runs_as_written(
    fresh_checkout: tuple[Path, dict[str, str]],
) -> None:
    cwd, env = fresh_checkout
    commands = run_it_commands((cwd / "README.md").read_text(encoding="utf-8"))
    servers: list[Background] = []
    peers: list[Background] = []
    outputs: dict[str, str] = {}
    try:
        for command in commands:
            if command.startswith("scheduler serve"):
                for server in servers:
                    server.stop()  # "stop the first serve before"
                server = Background(command, cwd, env)
                servers.append(server)
                server.wait_for("scheduler listening: peers ws://127.0.0.1:8002/ws", 60)
            elif command.startswith("scheduler peer"):
                for peer in peers:
                    peer.stop()
                peer = Background(command, cwd, env)
                peers.append(peer)
                peer.wait_for("announced as 127.0.0.1-h1", 60)
            else:
                result = subprocess.run(
                    ["bash", "-o", "pipefail", "-c", command],
                    cwd=cwd,
                    env=env,
                    capture_output=True,
                    text=True,
                    timeout=900,
                    check=False,
                )
                assert result.returncode == 0, (
                    f"`{command}` exited with {result.returncode}:\n"
                    f"{result.stdout[-2000:]}\n{result.stderr[-2000:]}"
                )
                outputs[command] = result.stdout
    finally:
        for background in (*peers, *servers):
            background.stop()
    hosts = next(out for cmd, out in outputs.items() if cmd.startswith("scheduler hosts"))
    assert "h1" in hosts
    assert any(cmd.startswith("scheduler preheat") for cmd in outputs)  # it exited 0: succeeded
    simulated = next(out for cmd, out in outputs.items() if cmd.startswith("scheduler simulate"))
    assert "left out:" in simulated  # the base install has no plugin distribution
    assert "default" in simulated
    metrics = next(out for cmd, out in outputs.items() if cmd.startswith("curl"))
    assert "scheduler_hosts" in metrics
    for background in (*servers, *peers):
        text = "\n".join(background.lines)
        assert "Traceback" not in text, f"`{background.command}`:\n{text[-3000:]}"
