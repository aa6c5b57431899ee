"""Input hygiene: peer-supplied text never forges a log line, and a failed message changes nothing.

A hostname holding ``\\n`` once wrote a second, forged log line, and NUL went to the
log raw. Names and ids are now refused at the protocol level, and the log formatters
escape whatever reaches them anyway (a plugin's eviction reason, a future field).
"""

from __future__ import annotations

import io
import logging
import math
import re
import sys
from typing import Any
from xml.etree import ElementTree

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from scheduler import hookimpl
from scheduler.core import Expiry, SchedulerState
from scheduler.policies import load_policies
from scheduler.protocol import CONTROL_CHARACTERS, ErrorCode, ErrorReply, HostAccepted
from scheduler.service import configure_logging
from scheduler.service._graph import task_graph_svg
from scheduler.service._logging import JsonFormatter, TextFormatter, escape, fields
from scheduler.service._text import UNSAFE
from scheduler.session import HostSessions, SessionLimits, SessionProtocol

LIMITS = SessionLimits(
    ping_interval=5.0, ping_timeout=4.0, announce_timeout=10.0, error_limit=100, error_window=10.0
)
NASTY = "alpha\n2026-11-30T07:00:00.000Z ERROR   scheduler.gc: forged x=1\r\x00\x1b[31m\x85\u2028"
#: Every character a log line must not hold raw.
RAW_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def record(message: str, *args: object, **values: Any) -> logging.LogRecord:
    made = logging.LogRecord("scheduler.test", logging.INFO, __file__, 1, message, args, None)
    made.__dict__.update(fields(**values))
    return made


# --- the formatters ----------------------------------------------------------------------


def test_log_lines_go_to_the_stderr_of_the_moment_even_after_the_first_is_closed(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A test runner (or an embedding program) replaces ``sys.stderr`` and closes the
    one it replaced; the log goes on to the new one, with no ``Logging error``."""
    first, second = io.StringIO(), io.StringIO()
    monkeypatch.setattr(sys, "stderr", first)
    configure_logging("text", "info")
    logging.getLogger("scheduler.test").info("one")
    first.close()
    monkeypatch.setattr(sys, "stderr", second)
    logging.getLogger("scheduler.test").info("two")
    assert second.getvalue().endswith(" two\n")
    assert "Logging error" not in second.getvalue() + capsys.readouterr().err


def test_text_lines_escape_control_characters_in_the_message_and_every_field() -> None:
    line = TextFormatter().format(record("evicted %s", NASTY, hostname=NASTY, reason="ok"))
    assert "\n" not in line
    assert RAW_CONTROL.search(line) is None
    tail = line.split(": ", 1)[1]
    escaped = (
        "alpha\\n2026-11-30T07:00:00.000Z ERROR   scheduler.gc: forged x=1\\r\\x00\\x1b[31m"
        "\\x85\\u2028"
    )
    assert tail == f'evicted "{escaped}" hostname="{escaped}" reason=ok'


@pytest.mark.parametrize(
    ("value", "written"),
    [
        ("plain", "plain"),
        ("", '""'),
        ("two words", '"two words"'),
        ("k=v", '"k=v"'),
        ('say "hi"', '"say \\"hi\\""'),
        ("back\\slash", "back\\\\slash"),
        ("tab\there", "tab\\there"),
        ("\x7f", "\\x7f"),
        ("\u2029", "\\u2029"),
    ],
)
def test_a_text_field_cannot_forge_a_pair(value: str, written: str) -> None:
    line = TextFormatter().format(record("m", host_id=value, n=1))
    assert line.endswith(f"scheduler.test: m host_id={written} n=1")


def test_json_lines_escape_control_characters_and_round_trip() -> None:
    line = JsonFormatter().format(record("evicted %s", NASTY, hostname=NASTY, count=3))
    assert "\n" not in line
    assert RAW_CONTROL.search(line) is None
    payload = orjson.loads(line)
    # C0 round-trips through JSON's own escapes; DEL, C1 and U+2028/9 are written as text.
    expected = NASTY.replace("\x85", "\\x85").replace("\u2028", "\\u2028")
    assert payload["hostname"] == expected
    assert payload["msg"] == f"evicted {expected}"
    assert payload["count"] == 3


@given(st.text())
def test_no_text_escapes_to_more_than_one_line(text: str) -> None:
    escaped = escape(text)
    assert RAW_CONTROL.search(escaped) is None
    assert escaped == text or "\\" in escaped
    for formatter in (TextFormatter(), JsonFormatter()):
        line = formatter.format(record("%s", text, value=text))
        assert RAW_CONTROL.search(line) is None


def test_the_protocol_and_the_log_agree_on_what_a_control_character_is() -> None:
    for code in [*range(0x20), *range(0x7F, 0xA0), 0x2028, 0x2029]:
        assert CONTROL_CHARACTERS.search(chr(code)), hex(code)
        assert escape(chr(code)) != chr(code)
    for char in " ~\xa0é\u2027\U0001f600":
        assert CONTROL_CHARACTERS.search(char) is None
        assert escape(char) == char
    # Free text in ids, but written as escapes in logs: they reorder or break a line.
    for char in "\u202a\u202e\u2066\u200f\ufffe\uffff\ufdd0\U0010ffff":
        assert CONTROL_CHARACTERS.search(char) is None
        assert escape(char) == f"\\u{ord(char):04x}" if ord(char) < 0x10000 else "\\U0010ffff"


@pytest.mark.parametrize("char", ["\u202e", "\u2067", "\u061c", "\ufffe", "\uffff", "\U0001fffe"])
def test_bidi_controls_and_noncharacters_never_reach_a_log_raw(char: str) -> None:
    hostname = f"evil{char}gpj.exe"
    for formatter in (TextFormatter(), JsonFormatter()):
        line = formatter.format(record("refused %s", hostname, hostname=hostname))
        assert char not in line
        assert f"\\u{ord(char):04x}" in line or f"\\U{ord(char):08x}" in line


def test_a_client_string_in_the_message_text_cannot_forge_a_pair() -> None:
    """An id passed as a ``%s`` argument is quoted like a field value."""
    forged = "p1 host_id=10.0.0.9-victim reason=admin"
    line = TextFormatter().format(record("every parent of %s vanished", forged, n=1))
    tail = line.split(": ", 1)[1]
    assert tail == f'every parent of "{forged}" vanished n=1'
    assert TextFormatter().format(record("%s left", "p1")).endswith(": p1 left")
    assert TextFormatter().format(record("%d peers", 3)).endswith(": 3 peers")


# --- a failed message changes nothing (the session rules) ---------------------------------


def session() -> tuple[SchedulerState, SessionProtocol]:
    state = SchedulerState(load_policies(entrypoints=False), now=0.0)
    return state, SessionProtocol(state, HostSessions(state), LIMITS, opened_at=0.0)


def announce(interval: float, hostname: str = "alpha") -> str:
    host = {"hostname": hostname, "ip": "10.0.0.1", "port": 1, "download_port": 2}
    return orjson.dumps(
        {"type": "announce_host", "id": 7, "host": host, "interval": interval}
    ).decode()


@pytest.mark.parametrize(
    ("interval", "hostname"), [(1e308, "alpha"), (5e-324, "alpha"), (30, "a\nb")]
)
def test_an_announce_that_fails_validation_changes_nothing(interval: float, hostname: str) -> None:
    state, protocol = session()
    outcome = protocol.receive(announce(interval, hostname), 1.0)
    (reply,) = outcome.replies
    assert isinstance(reply, ErrorReply)
    assert (reply.id, reply.code) == (7, ErrorCode.INVALID_MESSAGE)
    assert outcome.events == ()
    assert state.host_count() == 0
    assert protocol.host_id is None


class Never:
    """Answers an infinite deadline (as 2 x 1e308 once made the TTL)."""

    name = "never"

    @hookimpl
    def scheduler_host_expiry(self) -> Expiry:
        return Expiry(math.inf, "never")


def test_host_accepted_is_built_even_when_a_policy_answers_an_infinite_time() -> None:
    """The announce is applied before the reply is built, so building it must not fail."""
    policies = load_policies(
        plugins=[Never()], disable=("announce_ttl", "disconnect_grace"), entrypoints=False
    )
    state = SchedulerState(policies, now=0.0)
    protocol = SessionProtocol(state, HostSessions(state), LIMITS, opened_at=0.0)
    outcome = protocol.receive(announce(30), 1.0)
    (reply,) = outcome.replies
    assert isinstance(reply, HostAccepted)
    assert (reply.ttl, reply.reconnect_grace) == (None, None)  # "never", not inf
    assert protocol.host_id == "10.0.0.1-alpha"


# --- the task graph (SVG) ------------------------------------------------------------------

#: Any code point, surrogates and noncharacters included: ids are free text.
ANY_TEXT = st.text(st.characters(exclude_categories=()), max_size=40)


@given(
    task_id=ANY_TEXT,
    peers=st.lists(st.tuples(ANY_TEXT, ANY_TEXT), max_size=8, unique_by=lambda peer: peer[0]),
    picks=st.lists(st.tuples(st.integers(0, 7), st.integers(0, 7)), max_size=12),
    note=ANY_TEXT,
)
def test_the_task_graph_always_parses_as_xml(
    task_id: str, peers: list[tuple[str, str]], picks: list[tuple[int, int]], note: str
) -> None:
    ids = [peer_id for peer_id, _ in peers]
    edges = [(ids[a], ids[b]) for a, b in picks if a < len(ids) and b < len(ids)]
    svg = task_graph_svg(task_id, peers, edges, note=note).encode()
    tree = ElementTree.fromstring(svg)
    for element in tree.iter():
        shown = element.text if element.tag.endswith(("title", "text")) else ""
        for text in (shown or "", *element.attrib.values()):
            assert UNSAFE.search(text) is None
    assert len(tree.findall("{http://www.w3.org/2000/svg}g")) == len(peers)


def test_a_bidi_override_in_a_peer_id_is_shown_as_an_escape_in_the_graph() -> None:
    svg = task_graph_svg("t", [("evil\u202egpj.exe", "running"), ("p\ufffe", "x\uffff")], [])
    assert "\u202e" not in svg
    assert "\ufffe" not in svg
    assert "evil\\u202egpj.exe (running)" in svg
    ElementTree.fromstring(svg.encode())
