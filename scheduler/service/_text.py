"""Client text made harmless for the logs and the admin API's SVG.

Hosts and peers name themselves: a hostname, a peer id or a task id is free
text (the protocol refuses only control characters). Before such text is shown
to a person, every character that could change how the *rest* of a line or a
document reads is written as a visible escape:

* control characters (C0, DEL, C1) and the line and paragraph separators
  (U+2028, U+2029), which start lines of their own or drive a terminal;
* bidirectional formatting characters (U+061C, U+200E, U+200F, U+202A to
  U+202E, U+2066 to U+2069), which reorder the text after them on screen
  (a U+202E makes ``gpj.exe`` read ``exe.jpg``);
* Unicode noncharacters (U+FDD0 to U+FDEF and the last two code points of every
  plane, U+FFFE and U+FFFF among them), which XML forbids;
* lone surrogates, which no UTF-8 encoder writes.

What is left is valid in XML 1.0 and in UTF-8, and reads in order.
"""

from __future__ import annotations

import re
from typing import Final

_NONCHARACTERS: Final = "\ufdd0-\ufdef\ufffe\uffff" + "".join(
    f"{chr(plane * 0x10000 + 0xFFFE)}{chr(plane * 0x10000 + 0xFFFF)}" for plane in range(1, 17)
)
#: Bidirectional formatting characters (Unicode's Bidi_Control property).
BIDI_CONTROLS: Final = "\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069"
_BEYOND_C0: Final = f"\x7f-\x9f\u2028\u2029{BIDI_CONTROLS}{_NONCHARACTERS}\ud800-\udfff"
#: Every character :func:`escape` writes as an escape, the backslash aside.
UNSAFE: Final = re.compile(f"[\x00-\x1f{_BEYOND_C0}]")
_TEXT_UNSAFE: Final = re.compile(f"[\x00-\x1f{_BEYOND_C0}\\\\]")
#: What a JSON encoder writes raw (it escapes C0, the quote and the backslash itself).
_JSON_UNSAFE: Final = re.compile(f"[{_BEYOND_C0}]")
_SHORT: Final = {"\n": "\\n", "\r": "\\r", "\t": "\\t", "\\": "\\\\"}


def _escape_one(match: re.Match[str]) -> str:
    char = match[0]
    short = _SHORT.get(char)
    if short is not None:
        return short
    code = ord(char)
    if code < 0x100:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def escape(text: str) -> str:
    """``text`` with every unsafe character, and the backslash, written as an escape.

    The result is one line, reads in its own order, and never holds a character
    :data:`UNSAFE` matches; a text with none of them (and no backslash) is
    returned as it is.
    """
    return _TEXT_UNSAFE.sub(_escape_one, text)


def escape_for_json(text: str) -> str:
    """As :func:`escape`, for text a JSON encoder writes next: C0 and the backslash
    are left to the encoder's own escapes, the rest is written as :func:`escape` does."""
    return _JSON_UNSAFE.sub(_escape_one, text)


def escape_unsafe(text: str) -> str:
    """As :func:`escape`, but a backslash stays as it is (for text whose client
    parts were escaped already)."""
    return UNSAFE.sub(_escape_one, text)
