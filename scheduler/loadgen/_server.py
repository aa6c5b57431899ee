"""Start and stop a ``scheduler serve`` subprocess on loopback for a load run."""

from __future__ import annotations

import signal
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from typing import IO, final

import trio

from ._lines import LineReader

_READY_PREFIX = "scheduler listening:"


@final
@dataclass
class ServerProcess:
    """A server this tool started: its pid, its URLs, and its stderr (kept in a file)."""

    process: trio.Process
    url: str
    admin_url: str
    command: list[str]
    stderr: IO[bytes]

    @property
    def pid(self) -> int:
        return self.process.pid

    async def stop(self, grace: float = 10.0) -> str:
        """SIGTERM, up to ``grace`` seconds, then SIGKILL; returns what it wrote to stderr."""
        await stop_process(self.process, grace)
        self.stderr.seek(0)
        text = self.stderr.read().decode(errors="replace")
        self.stderr.close()
        return text


async def stop_process(process: trio.Process, grace: float) -> None:
    """Stop a child for good: SIGTERM, wait ``grace`` s, SIGKILL, reap. Safe to repeat."""
    with trio.CancelScope(shield=True):
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
            with trio.move_on_after(grace):
                await process.wait()
            if process.returncode is None:
                process.kill()
                await process.wait()
        if process.stdout is not None:
            await process.stdout.aclose()
        if process.stdin is not None:
            await process.stdin.aclose()


async def start_scheduler(extra: Sequence[str] = (), start_within: float = 30.0) -> ServerProcess:
    """``python -m scheduler serve`` on 127.0.0.1, ports picked by the kernel.

    ``extra`` flags come last, so they override these defaults (for example
    ``--max-sessions``). Raises RuntimeError with the server's stderr if it does not
    print its ``scheduler listening:`` line within ``start_within`` seconds.
    """
    command = [
        *(sys.executable, "-m", "scheduler", "serve", "--bind", "127.0.0.1"),
        *("--port", "0", "--admin-port", "0", "--log-level", "warning"),
        *extra,
    ]
    stderr = tempfile.TemporaryFile()  # noqa: SIM115 - closed by ServerProcess.stop
    process = await trio.lowlevel.open_process(
        command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=stderr
    )
    assert process.stdout is not None
    lines = LineReader(process.stdout)
    line: str | None = ""
    try:
        with trio.move_on_after(start_within):
            while line is not None and not line.startswith(_READY_PREFIX):
                line = await lines.line()
    finally:
        if not line or not line.startswith(_READY_PREFIX):
            await stop_process(process, 5)
            stderr.seek(0)
            text = stderr.read().decode(errors="replace")
            stderr.close()
            raise RuntimeError(f"scheduler serve did not start; its stderr:\n{text[-3000:]}")
    words = line.split()
    url = words[words.index("peers") + 1]
    admin_url = words[words.index("admin") + 1].rstrip("/")
    return ServerProcess(process, url, admin_url, command, stderr)
