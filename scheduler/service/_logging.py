"""Structured logging: ``key=value`` text or one JSON object per line.

Log lines carry what peers sent (hostnames, ids, reasons), so the formatters are the
one place that makes such text harmless: no message or field can start a line of
its own, forge a ``key=value`` pair, reorder what follows it on screen, or send a
terminal control sequence. Client text belongs in fields, not in the message;
should it reach the message as a ``%s`` argument anyway, it is quoted as a field
is. In the text format every character :mod:`._text` calls unsafe (control
characters, U+2028, U+2029, bidirectional controls, noncharacters) and the
backslash are written as escapes (``\\n``, ``\\x00``, ``\\u202e``), and a
value holding a space, ``=`` or ``"`` is quoted; in the JSON format the encoder
escapes C0 and the formatter the rest. Tracebacks stay multi-line (they are the
server's own text).
"""

from __future__ import annotations

import logging
import re
import sys
import time
from typing import Any, Final

import orjson

from ..logfields import FIELDS
from ..logfields import log_fields as fields
from ._text import escape, escape_for_json, escape_unsafe

__all__ = ["FIELDS", "JsonFormatter", "TextFormatter", "configure_logging", "fields"]


#: A text-format value with one of these is quoted.
_NEEDS_QUOTES: Final = re.compile('[ ="]')


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        extra = getattr(record, FIELDS, {})
        pairs = " ".join(f"{k}={_text(v)}" for k, v in extra.items())
        line = f"{stamp}.{int(record.msecs):03d}Z {record.levelname:<7} {record.name}: "
        line += _message(record) + (f" {pairs}" if pairs else "")
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, Any] = {
            "ts": record.created,
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": _json_text(record.getMessage()),
        }
        for key, value in getattr(record, FIELDS, {}).items():
            payload[key] = _json_text(value) if isinstance(value, str) else value
        if record.exc_info:
            payload["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(payload, default=str).decode()


def _json_text(text: str) -> str:
    return escape_for_json(text)


def _message(record: logging.LogRecord) -> str:
    """The message on one line. A ``%s`` argument that is a string is escaped and
    quoted as a field value is, so an id holding ``" host_id=x"`` cannot forge a
    pair in the message text; in the rest only the unsafe characters are escaped."""
    args = record.args
    if args and isinstance(args, tuple):
        try:
            text = str(record.msg) % tuple(_text(a) if isinstance(a, str) else a for a in args)
        except (TypeError, ValueError):  # a format that wants the raw value
            pass
        else:
            return escape_unsafe(text)
    return escape(record.getMessage())


def _text(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3f}"
    text = escape(str(value))
    if not text or _NEEDS_QUOTES.search(text):
        return '"' + text.replace('"', '\\"') + '"'
    return text


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes each line to ``sys.stderr`` as it is when the line is logged.

    A handler that kept the stream current at configure time would write to a closed
    file once ``sys.stderr`` is replaced and the old one closed (an embedding program
    or a test runner capturing output), and print ``--- Logging error ---`` for every
    line instead.
    """

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = sys.stderr
        super().emit(record)


def configure_logging(log_format: str, level: str) -> None:
    """Send every ``scheduler.*`` log line to stderr in the chosen format."""
    handler = _StderrHandler()
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    root = logging.getLogger("scheduler")
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    root.propagate = False
