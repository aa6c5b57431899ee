"""Scenario 5, fuzzing: generated and mutated frames against a live ``scheduler serve``.

Each Hypothesis example opens a session on the real process, announces a host and
registers a peer (so that later frames reach deep states), then sends a batch of
frames, one at a time, each awaited with a deadline:

* generated messages: every client ``type`` (and unknown ones), every field name,
  with values of any JSON shape, near-valid hosts and tasks, piece lists;
* mutated valid frames: bytes flipped, inserted, deleted, the frame truncated
  (sent as text when still UTF-8, else binary);
* raw bytes and raw text as one message;
* and, on plain TCP after a real upgrade, raw bytes where frames belong.

Checked: the process never dies, every reply is a server message whose error
``code`` is documented (scheduler/protocol/_errors.py) and never ``internal``,
every close carries a documented close code other than 1011 (and a session never
just drops, 1006), the server counts no internal error (``/metrics``) and logs no
ERROR line or traceback (the cluster's log check), and RSS stays bounded.
"""

from __future__ import annotations

import json
import random
import string
from typing import Any

import attrs
import orjson
import pytest
import trio
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from trio_websocket import ConnectionClosed

from scheduler.protocol import CLIENT_MESSAGES, SERVER_MESSAGES, CloseCode, ErrorCode
from tests.service_support import open_client

from .cluster import FULL, Cluster, get, metric, rss_bytes, scaled
from .conftest import Figures

pytestmark = [pytest.mark.chaos, pytest.mark.e2e]

FRAMES = 100_000 if FULL else scaled(20_000, 1_000)
#: Frames per example (one session), of which ``DRAWN`` drawn by Hypothesis, the rest mutants.
BATCH = 200 if FULL else 50
DRAWN = 10
#: A close code the server may send: the documented ones, less 1011 (an internal
#: error: a bug). A session dropped without a close frame (1006, or none) fails too.
CLOSE_CODES = {int(code) for code in CloseCode} - {CloseCode.INTERNAL_ERROR}
ERROR_CODES = {code.value for code in ErrorCode}
RSS_GROWTH_LIMIT = 64 * 2**20
#: How long a raw-framing session waits for the server's answer to its garbage.
RAW_WAIT = 0.5


#: Piece numbers range over every integer: the server bounds them (`max_piece_count`).
MAX_PIECE = 2**62
TASK = {"url": "https://example.invalid/fuzz.iso", "total_piece_count": -1}
HOST = {"hostname": "fuzz", "ip": "127.0.0.3", "port": 1, "download_port": 2}


def json_values() -> st.SearchStrategy[Any]:
    scalars = (
        st.none()
        | st.booleans()
        | st.integers(min_value=-(2**70), max_value=2**70)
        | st.floats(allow_nan=False, allow_infinity=False)
        | st.text(max_size=40)
        | st.sampled_from(["", "\n", "\x00", "fuzz", "fuzz/p", "127.0.0.1", "normal", "seed"])
    )
    return st.recursive(
        scalars,
        lambda inner: (
            st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
        ),
        max_leaves=6,
    )


def hosts_() -> st.SearchStrategy[dict[str, Any]]:
    near = {key: st.just(value) | json_values() for key, value in HOST.items()}
    return st.fixed_dictionaries(near, optional={"type": st.sampled_from(["normal", "seed", "x"])})


def tasks_() -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries(
        {"url": st.just(TASK["url"]) | json_values()},
        optional={
            "total_piece_count": st.integers(-2, MAX_PIECE) | json_values(),
            "piece_length": st.integers(-1, 2**40),
            "content_length": st.integers(-1, 2**50),
        },
    )


FIELDS: dict[str, st.SearchStrategy[Any]] = {
    "id": st.integers(-(2**63), 2**63) | st.text(max_size=8) | json_values(),
    "host": hosts_() | json_values(),
    "interval": st.floats(min_value=5e-324, max_value=1e308) | json_values(),
    "peer_id": st.sampled_from(["fuzz/p", "fuzz/q", "other/p"]) | json_values(),
    "task": tasks_() | json_values(),
    "pieces": st.lists(st.integers(-1, MAX_PIECE), max_size=20) | json_values(),
    "parent_id": st.none() | st.sampled_from(["fuzz/p", "x/y"]) | json_values(),
    "cost": st.floats(min_value=0, max_value=1e9) | json_values(),
    "reason": st.text(max_size=20) | json_values(),
    "failed_parents": st.lists(st.text(max_size=8), max_size=3) | json_values(),
}


@st.composite
def messages(draw: st.DrawFn) -> bytes:
    kind = draw(st.sampled_from([*CLIENT_MESSAGES, "pong", "", "ANNOUNCE_HOST"]))
    names = draw(st.sets(st.sampled_from(sorted(FIELDS)), max_size=5))
    body = {name: draw(FIELDS[name]) for name in sorted(names)}
    if draw(st.booleans()):
        body["type"] = kind
    # The standard library: integers past 64 bits too, and non-ASCII raw or escaped.
    return json.dumps(body, ensure_ascii=draw(st.booleans())).encode()


VALID = [
    orjson.dumps(m)
    for m in (
        {"type": "announce_host", "id": 1, "host": HOST, "interval": 30},
        {"type": "register_peer", "id": 2, "peer_id": "fuzz/q", "task": TASK},
        {"type": "download_started", "id": 3, "peer_id": "fuzz/p"},
        {"type": "back_to_source", "id": 4, "peer_id": "fuzz/p"},
        {"type": "pieces_finished", "id": 5, "peer_id": "fuzz/p", "pieces": [0, 1, 2]},
        {"type": "download_finished", "id": 6, "peer_id": "fuzz/p"},
        {"type": "download_failed", "id": 7, "peer_id": "fuzz/p", "reason": "x"},
        {"type": "reschedule", "id": 8, "peer_id": "fuzz/p", "failed_parents": []},
        {"type": "leave_peer", "id": 9, "peer_id": "fuzz/q"},
    )
]


def mutate(frame: bytes, rng: random.Random) -> bytes:
    """One to four byte-level mutations: flip, insert (bytes or digits), delete, truncate."""
    data = bytearray(frame)
    for _ in range(rng.randint(1, 4)):
        at = rng.randint(0, len(data))
        op = rng.choice(["flip", "insert", "digits", "delete", "truncate"])
        if op == "flip" and at < len(data):
            data[at] ^= 1 << rng.randrange(8)
        elif op == "insert":
            data[at:at] = rng.randbytes(rng.randint(1, 4))
        elif op == "digits":
            data[at:at] = "".join(rng.choices(string.digits + "-.e", k=rng.randint(1, 3))).encode()
        elif op == "delete":
            del data[at : at + rng.randint(1, 4)]
        elif op == "truncate":
            del data[at:]
    return bytes(data)


#: A frame drawn by Hypothesis: (bytes, send as binary). Sent as text when UTF-8 unless binary.
drawn = st.one_of(
    messages().map(lambda b: (b, False)),
    st.sampled_from(VALID).map(lambda b: (b, False)),
    st.binary(max_size=300).map(lambda b: (b, True)),
    st.text(max_size=300).map(lambda t: (t.encode(), False)),
)


@st.composite
def batches(draw: st.DrawFn) -> list[tuple[bytes, bool]]:
    """``DRAWN`` frames drawn by Hypothesis, then mutants of them and of valid frames.

    Drawing every frame with Hypothesis costs about 7 ms a frame; a seeded ``Random``
    (itself drawn) mutates the drawn ones cheaply, so a batch holds ``BATCH`` frames.
    """
    frames = draw(st.lists(drawn, min_size=DRAWN, max_size=DRAWN))
    rng = draw(st.randoms(use_true_random=False))
    parents = [data for data, binary in frames if not binary] + VALID
    mutants = [(mutate(rng.choice(parents), rng), False) for _ in range(BATCH - DRAWN)]
    return frames + mutants


@attrs.define
class Tally:
    examples: int = 0
    frames: int = 0
    #: Frames a session did not handle (it ended first) and that were sent again.
    resent: int = 0
    replies: int = 0
    errors: dict[str, int] = attrs.Factory(dict)
    closes: dict[int, int] = attrs.Factory(dict)
    raw_sessions: int = 0
    raw_closes: dict[str, int] = attrs.Factory(dict)
    bad: list[str] = attrs.Factory(list)
    crashes: int = 0

    def reply(self, text: str | bytes) -> None:
        self.replies += 1
        try:
            message = orjson.loads(text)
        except orjson.JSONDecodeError:
            self.bad.append(f"not JSON: {text!r:.80}")
            return
        kind = message.get("type") if isinstance(message, dict) else None
        if kind not in SERVER_MESSAGES:
            self.bad.append(f"not a server message: {text!r:.80}")
        elif kind == "error":
            code = message.get("code")
            self.errors[code] = self.errors.get(code, 0) + 1
            if code not in ERROR_CODES or code == ErrorCode.INTERNAL:
                self.bad.append(f"error code {code!r}: {message.get('message')!r:.200}")

    def close(self, code: int | None) -> None:
        key = -1 if code is None else code
        self.closes[key] = self.closes.get(key, 0) + 1
        if code not in CLOSE_CODES:
            self.bad.append(f"close code {code}")


def as_text(data: bytes) -> str | bytes:
    """The frame as text when it is UTF-8; else the bytes (a binary frame)."""
    try:
        return data.decode()
    except UnicodeDecodeError:
        return data


def is_binary(data: bytes, binary: bool) -> bool:
    """Whether the frame goes out as a binary frame (which the server closes with 1003)."""
    return binary or isinstance(as_text(data), bytes)


def segments(batch: list[tuple[bytes, bool]]) -> list[list[tuple[bytes, bool]]]:
    """The batch cut after each binary frame: the server ends a session on one (1003), so
    each goes last in a session of its own, and the text frames before it are answered."""
    cut: list[list[tuple[bytes, bool]]] = [[]]
    for data, binary in batch:
        cut[-1].append((data, binary))
        if is_binary(data, binary):
            cut.append([])
    return [segment for segment in cut if segment]


async def one_session(url: str, batch: list[tuple[bytes, bool]], tally: Tally) -> int:
    """Announce and register, then send the frames and read one reply per frame.

    The frames are pipelined (the server answers in order). Returns how many frames the
    server handled: every frame answered, plus the one that ended the session early (a
    binary frame, ``leave_host``), after which nothing more of this session is read.
    """
    answered = 0
    try:
        # The whole batch, connect and close included, on one deadline.
        with trio.fail_after(60):
            async with open_client(url) as ws:
                for setup in VALID[:2]:
                    await ws.send_message(setup.decode())
                    tally.reply(await ws.get_message())
                for data, binary in batch:
                    await ws.send_message(data if binary else as_text(data))
                for _ in batch:
                    tally.reply(await ws.get_message())
                    answered += 1
    except* ConnectionClosed as group:  # bare, or from the client's reader task
        closed = group.exceptions[0]
        while isinstance(closed, BaseExceptionGroup):
            closed = closed.exceptions[0]
        assert isinstance(closed, ConnectionClosed)
        tally.close(closed.reason.code)
        answered += 1  # the frame after the last answer ended the session
    tally.frames += answered
    return answered


async def sessions(url: str, batch: list[tuple[bytes, bool]], tally: Tally) -> None:
    """Every frame of the batch reaches a live session: each binary frame ends one of its
    own, and what a session left unhandled after another close (``leave_host``) is sent
    again in a new one."""
    for segment in segments(batch):
        left = segment
        while left:
            handled = await one_session(url, left, tally)
            if handled < len(left):
                tally.resent += len(left) - handled
            left = left[max(handled, 1) :]


async def raw_framing(address: tuple[str, int], garbage: bytes, tally: Tally) -> None:
    """Upgrade for real, then write bytes where frames belong; read what the server sends."""
    head = (
        "GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
        "Sec-WebSocket-Protocol: scheduler.v1\r\n\r\n"
    )
    tally.raw_sessions += 1
    received, ended = b"", False
    with trio.fail_after(15):
        stream = await trio.open_tcp_stream(*address)
        async with stream:
            await stream.send_all(head.encode())
            # A prefix of a valid frame leaves the server waiting for the rest: fine.
            with trio.move_on_after(RAW_WAIT):
                try:
                    await stream.send_all(garbage)
                    while chunk := await stream.receive_some():
                        received += chunk
                except trio.BrokenResourceError:
                    pass
                ended = True
    code = close_code(received)
    key = str(code) if code is not None else "TCP closed, no close frame" if ended else "open"
    tally.raw_closes[key] = tally.raw_closes.get(key, 0) + 1
    if code is not None or ended:  # a framing error must close with a documented code
        tally.close(code)


def close_code(received: bytes) -> int | None:
    """The code of the first close frame after the 101 response, if any (server frames are
    unmasked)."""
    at = received.find(b"\r\n\r\n")
    if at < 0:
        return None
    data, at = received[at + 4 :], 0
    while at + 2 <= len(data):
        opcode, length, at = data[at] & 0x0F, data[at + 1] & 0x7F, at + 2
        if length == 126:
            length, at = int.from_bytes(data[at : at + 2]), at + 2
        elif length == 127:
            length, at = int.from_bytes(data[at : at + 8]), at + 8
        if opcode == 0x8:
            return int.from_bytes(data[at : at + 2]) if length >= 2 else 1005
        at += length
    return None


def test_fuzz_live_server(cluster: Cluster, figures: Figures) -> None:
    # The error and message-rate limits are lifted, so that every frame is judged on
    # its own rather than ending its session early (both are tested elsewhere).
    scheduler = trio.run(
        cluster.start_scheduler,
        "--error-limit", "1000000",
        "--message-rate", "1000000",
        "--message-burst", "1000000",
    )  # fmt: skip
    pid = scheduler.process.pid
    tally = Tally()
    examples = FRAMES // BATCH

    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(batches(), st.binary(min_size=1, max_size=64))
    def fuzz(batch: list[tuple[bytes, bool]], garbage: bytes) -> None:
        trio.run(sessions, scheduler.ws_url, batch, tally)
        tally.examples += 1
        if tally.examples % 10 == 0:  # one in ten examples also fuzzes the framing
            trio.run(raw_framing, ("127.0.0.1", scheduler.port), garbage, tally)
        if scheduler.process.poll() is not None:
            tally.crashes += 1
        assert tally.crashes == 0, "the scheduler died"

    trio.run(one_session, scheduler.ws_url, [(VALID[4], False)] * BATCH, tally)  # warm-up
    baseline = rss_bytes(pid)
    fuzz()
    peak = rss_bytes(pid)
    admin = scheduler.admin
    assert get(f"{admin}/healthz") is not None

    drawn = tally.examples * DRAWN
    figures.add("frames sent: drawn by Hypothesis / mutants", f"{tally.frames} "
                f"({drawn} / {tally.frames - drawn - BATCH})")  # fmt: skip
    figures.add("frames handled / replies read / sent again after a close", f"{tally.frames} / "
                f"{tally.replies} / {tally.resent}")  # fmt: skip
    figures.add("error codes", ", ".join(f"{k} {v}" for k, v in sorted(tally.errors.items())))
    figures.add("close codes", ", ".join(f"{k} {v}" for k, v in sorted(tally.closes.items())))
    raw = ", ".join(f"{k} {v}" for k, v in sorted(tally.raw_closes.items()))
    figures.add("raw framing sessions / closes", f"{tally.raw_sessions}: {raw}")
    figures.add("scheduler RSS after warm-up / at the end", f"{baseline / 2**20:.1f} MB / "
                f"{peak / 2**20:.1f} MB")  # fmt: skip
    internal = {
        "error replies `internal`": metric(
            admin, "scheduler_message_errors_total", code="internal"
        ),
        "sessions ended `internal`": metric(
            admin, "scheduler_session_ends_total", cause="internal"
        ),
    }
    figures.add("crashes / undocumented replies", f"{tally.crashes} / {len(tally.bad)}")
    figures.add(
        "internal errors counted (server)", ", ".join(f"{k} {v:.0f}" for k, v in internal.items())
    )
    assert tally.frames >= FRAMES
    assert tally.crashes == 0
    assert tally.bad == [], tally.bad[:10]
    assert set(internal.values()) == {0.0}, internal
    assert peak - baseline <= RSS_GROWTH_LIMIT
