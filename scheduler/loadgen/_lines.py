"""Lines over a trio byte stream: how the orchestrator and its workers talk (JSON lines)."""

from __future__ import annotations

import json
from typing import Any, final

import trio


@final
class LineReader:
    """``await reader.line()`` returns the next line without its newline, or None at EOF."""

    def __init__(self, stream: trio.abc.ReceiveStream) -> None:
        self._stream = stream
        self._buffer = bytearray()
        self._eof = False

    async def line(self) -> str | None:
        while True:
            end = self._buffer.find(b"\n")
            if end >= 0:
                text = self._buffer[:end].decode()
                del self._buffer[: end + 1]
                return text
            if self._eof:
                return None
            chunk = await self._stream.receive_some(65536)
            self._buffer.extend(chunk)
            if not chunk:
                self._eof = True
                if self._buffer:
                    self._buffer.extend(b"\n")


def command(line: str) -> tuple[str, dict[str, Any]]:
    """``"word {json}"`` → (word, payload); a bare word has an empty payload."""
    word, _, rest = line.partition(" ")
    payload = json.loads(rest) if rest.strip() else {}
    if not isinstance(payload, dict):
        raise TypeError(f"expected a JSON object after {word!r}, got {rest[:80]!r}")
    return word, payload


def render(word: str, payload: dict[str, Any] | None = None) -> bytes:
    return (word + (" " + json.dumps(payload) if payload is not None else "") + "\n").encode()
