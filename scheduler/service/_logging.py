"""Structured logging: ``key=value`` text or one JSON object per line.

Log lines carry what peers sent (hostnames, ids, reasons), so the formatters are the
one place that makes such text harmless: no message or field can start a line of
its own, forge a ``key=value`` pair, or send a terminal control sequence. In the
text format every control character (C0, DEL, C1, U+2028, U+2029) and the
backslash are written as escapes (``\\n``, ``\\x00``, ``\\u2028``), and a
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

FIELDS = "fields"

#: What the text format escapes: every control character, the line separators, "\".
_TEXT_UNSAFE: Final = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\\]")
#: What orjson writes raw and the JSON format escapes itself.
_JSON_UNSAFE: Final = re.compile(r"[\x7f-\x9f\u2028\u2029]")
_SHORT: Final = {"\n": "\\n", "\r": "\\r", "\t": "\\t", "\\": "\\\\"}
#: A text-format value with one of these is quoted.
_NEEDS_QUOTES: Final = re.compile('[ ="]')


def _escape_one(match: re.Match[str]) -> str:
    char = match[0]
    short = _SHORT.get(char)
    if short is not None:
        return short
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def escape(text: str) -> str:
    """``text`` on one line, with no control character: each is written as an escape."""
    return _TEXT_UNSAFE.sub(_escape_one, text)


def fields(**values: Any) -> dict[str, Any]:
    """``log.info("msg", extra=fields(host_id=..., reason=...))``."""
    return {FIELDS: values}


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        extra = getattr(record, FIELDS, {})
        pairs = " ".join(f"{k}={_text(v)}" for k, v in extra.items())
        line = f"{stamp}.{int(record.msecs):03d}Z {record.levelname:<7} {record.name}: "
        line += escape(record.getMessage()) + (f" {pairs}" if pairs else "")
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
    return _JSON_UNSAFE.sub(_escape_one, text)


def _text(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3f}"
    text = escape(str(value))
    if not text or _NEEDS_QUOTES.search(text):
        return '"' + text.replace('"', '\\"') + '"'
    return text


def configure_logging(log_format: str, level: str) -> None:
    """Send every ``scheduler.*`` log line to stderr in the chosen format."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    root = logging.getLogger("scheduler")
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    root.propagate = False
