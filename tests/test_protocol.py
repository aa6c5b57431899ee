"""Protocol v1: message classes and the strict JSON codec (scheduler.protocol)."""

from __future__ import annotations

import hashlib
import json
import math
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from scheduler import protocol
from scheduler.protocol import (
    CLIENT_MESSAGES,
    MAX_ANNOUNCE_INTERVAL,
    MAX_PIECES_PER_MESSAGE,
    MAX_UPLOAD_BANDWIDTH,
    MIN_ANNOUNCE_INTERVAL,
    SERVER_MESSAGES,
    SUBPROTOCOL,
    Ack,
    AnnounceHost,
    BackToSource,
    ClientMessage,
    CloseCode,
    DownloadFailed,
    DownloadFinished,
    DownloadStarted,
    ErrorCode,
    ErrorReply,
    Evicted,
    FetchTask,
    HostAccepted,
    HostPayload,
    LeaveHost,
    LeavePeer,
    ParentPayload,
    PiecesFinished,
    ProtocolError,
    RegisterPeer,
    Reschedule,
    Schedule,
    ServerMessage,
    TaskPayload,
    decode_client,
    decode_server,
    encode,
)
from scheduler.testing import ip_literals, rfc1123_hostnames

REPO = Path(__file__).resolve().parents[1]
PARENT = {
    "peer_id": "q",
    "host_id": "h",
    "ip": "10.0.0.9",
    "download_port": 1,
    "finished_piece_count": 1,
}
INTERVAL_RULE = "must be between 1 and 86400 seconds @ $.interval"
HOSTNAME_RULE = (
    "must be an RFC 1123 hostname: labels of letters, digits and hyphens separated by dots, "
    "at most 253 characters, not ending with '-seed'"
)
IP_RULE = "must be an IPv4 or IPv6 address in canonical form (e.g. 10.0.0.1, fe80::1)"

#: For the tests that state what the converter does: run them against a codec rebuilt
#: by its builder, so mutation testing judges the builder too (see the fixture).
fresh_codec = pytest.mark.usefixtures("fresh_codec")

# --- strategies ------------------------------------------------------------------
# orjson handles integers within 64 bits; the protocol never needs more.
ints = st.integers(min_value=-(2**63), max_value=2**63 - 1)
naturals = st.integers(min_value=0, max_value=2**63 - 1)
request_ids = st.none() | st.text(max_size=20) | ints
#: What a client may put in a name or id: no control characters (CONTROL_CHARACTERS).
plain = st.characters(exclude_categories=("Cc", "Cs", "Zl", "Zp"))
names = st.text(plain, min_size=1, max_size=30)
finite = st.floats(allow_nan=False, allow_infinity=False)
positive = st.floats(min_value=0, exclude_min=True, allow_infinity=False) | st.integers(1, 10**6)
non_negative = st.floats(min_value=0, allow_infinity=False)
intervals = st.floats(MIN_ANNOUNCE_INTERVAL, MAX_ANNOUNCE_INTERVAL) | st.integers(1, 86_400)
ports = st.integers(min_value=1, max_value=65535)
lengths = st.integers(min_value=-1, max_value=2**63 - 1)

host_payloads = st.builds(
    HostPayload,
    hostname=rfc1123_hostnames(),
    ip=ip_literals(),
    port=ports,
    download_port=ports,
    type=st.sampled_from(["normal", "seed"]),
    idc=st.text(plain, max_size=10),
    location=st.text(plain, max_size=10),
    concurrent_upload_limit=st.integers(min_value=0, max_value=10_000),
    upload_bandwidth=st.integers(min_value=0, max_value=MAX_UPLOAD_BANDWIDTH),
    stats=st.none() | st.dictionaries(st.text(plain, max_size=10), finite, max_size=5),
)


def _tasks(ids: st.SearchStrategy[str | None], urls: st.SearchStrategy[str]) -> Any:
    return st.builds(
        TaskPayload,
        id=ids,
        url=urls,
        piece_length=st.integers(min_value=1, max_value=2**40),
        content_length=lengths,
        total_piece_count=lengths,
    )


# A task needs an id or a url, so either the id is given or the url is non-empty.
task_payloads = _tasks(names, st.text(plain, max_size=40)) | _tasks(
    st.none(), st.text(plain, min_size=1, max_size=40)
)

parent_payloads = st.builds(
    ParentPayload,
    peer_id=names,
    host_id=names,
    ip=names,
    download_port=ports,
    finished_piece_count=naturals,
    type=st.sampled_from(["normal", "seed"]),
)

MESSAGE_STRATEGIES: dict[type[Any], st.SearchStrategy[Any]] = {
    AnnounceHost: st.builds(
        AnnounceHost, id=request_ids, host=host_payloads, interval=st.none() | intervals
    ),
    LeaveHost: st.builds(LeaveHost, id=request_ids),
    RegisterPeer: st.builds(RegisterPeer, id=request_ids, peer_id=names, task=task_payloads),
    DownloadStarted: st.builds(DownloadStarted, id=request_ids, peer_id=names),
    BackToSource: st.builds(BackToSource, id=request_ids, peer_id=names),
    PiecesFinished: st.builds(
        PiecesFinished,
        id=request_ids,
        peer_id=names,
        pieces=st.lists(naturals, min_size=1, max_size=50),
        parent_id=st.none() | names,
        cost=st.none() | non_negative,
    ),
    DownloadFinished: st.builds(DownloadFinished, id=request_ids, peer_id=names),
    DownloadFailed: st.builds(
        DownloadFailed, id=request_ids, peer_id=names, reason=st.text(max_size=40)
    ),
    LeavePeer: st.builds(LeavePeer, id=request_ids, peer_id=names),
    HostAccepted: st.builds(
        HostAccepted,
        id=request_ids,
        host_id=names,
        ttl=st.none() | positive,
        ping_interval=positive,
        ping_timeout=positive,
        reconnect_grace=st.none() | non_negative,
    ),
    Ack: st.builds(Ack, id=request_ids),
    ErrorReply: st.builds(
        ErrorReply,
        id=request_ids,
        code=st.sampled_from(list(ErrorCode)) | names,
        message=st.text(max_size=40),
    ),
    Evicted: st.builds(Evicted, reason=names, message=st.text(max_size=40)),
    Reschedule: st.builds(
        Reschedule,
        id=request_ids,
        peer_id=names,
        failed_parents=st.lists(names, max_size=5),
        reason=st.text(max_size=40),
    ),
    Schedule: st.one_of(
        st.builds(
            Schedule,
            id=request_ids,
            peer_id=names,
            action=st.just("parents"),
            parents=st.lists(parent_payloads, min_size=1, max_size=4),
            message=st.text(max_size=20),
        ),
        st.builds(
            Schedule,
            id=request_ids,
            peer_id=names,
            action=st.just("wait"),
            retry_after=non_negative,
        ),
        st.builds(
            Schedule,
            id=request_ids,
            peer_id=names,
            action=st.sampled_from(["back_to_source", "fail"]),
            message=st.text(max_size=20),
        ),
    ),
    FetchTask: st.builds(FetchTask, task=task_payloads, peer_id=names),
}
client_messages = st.one_of([MESSAGE_STRATEGIES[cls] for cls in CLIENT_MESSAGES.values()])
server_messages = st.one_of([MESSAGE_STRATEGIES[cls] for cls in SERVER_MESSAGES.values()])
json_values = st.recursive(
    st.none() | st.booleans() | ints | finite | st.text(max_size=10),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)

HOST: dict[str, Any] = {"hostname": "node-1", "ip": "10.0.0.1", "port": 8002, "download_port": 8001}


def frame(**fields: Any) -> str:
    return json.dumps(fields)


def announce(**fields: Any) -> str:
    return frame(type="announce_host", **{"host": HOST, **fields})


def decode_error(data: str | bytes) -> ProtocolError:
    with pytest.raises(ProtocolError) as info:
        decode_client(data)
    return info.value


# --- the public surface ------------------------------------------------------------


def test_protocol_never_imports_trio() -> None:
    code = "import sys, scheduler.protocol; sys.exit('trio' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, check=False, timeout=60)
    assert result.returncode == 0


def test_wire_constants() -> None:
    assert SUBPROTOCOL == "scheduler.v1"
    assert MAX_PIECES_PER_MESSAGE == 10_000
    assert {code.value for code in ErrorCode} == {
        "invalid_json",
        "unknown_type",
        "invalid_message",
        "forbidden",
        "not_found",
        "conflict",
        "illegal_state",
        "limit_exceeded",
        "not_announced",
        "too_many_errors",
        "rate_limited",
        "moved",
        "internal",
    }
    assert [int(code) for code in CloseCode] == [
        1000,
        1001,
        1002,
        1003,
        1007,
        1008,
        1009,
        1011,
        4001,
        4002,
    ]


def test_tags_are_the_wire_types() -> None:
    assert set(CLIENT_MESSAGES) == {
        "announce_host",
        "leave_host",
        "register_peer",
        "download_started",
        "back_to_source",
        "pieces_finished",
        "download_finished",
        "download_failed",
        "leave_peer",
        "reschedule",
    }
    assert set(SERVER_MESSAGES) == {
        "host_accepted",
        "ack",
        "error",
        "evicted",
        "schedule",
        "fetch_task",
    }
    assert set(MESSAGE_STRATEGIES) == {*CLIENT_MESSAGES.values(), *SERVER_MESSAGES.values()}


# --- round trips -------------------------------------------------------------------


@fresh_codec
@given(client_messages)
def test_client_messages_round_trip(message: ClientMessage) -> None:
    assert decode_client(encode(message)) == message
    assert decode_client(encode(message).encode()) == message


@fresh_codec
@given(server_messages)
def test_server_messages_round_trip(message: ServerMessage) -> None:
    assert decode_server(encode(message)) == message


@fresh_codec
@given(client_messages | server_messages)
def test_encoding_has_the_tag_and_no_nulls(message: ClientMessage | ServerMessage) -> None:
    def values(node: Any) -> list[Any]:
        if isinstance(node, dict):
            return [v for child in node.values() for v in [child, *values(child)]]
        return []

    fields = orjson.loads(encode(message))
    assert fields["type"] == message.tag
    assert None not in values(fields)


@fresh_codec
def test_encode_omits_none_but_keeps_other_defaults() -> None:
    assert encode(LeaveHost()) == '{"type":"leave_host"}'
    assert json.loads(encode(Ack(id=3))) == {"type": "ack", "id": 3}
    assert json.loads(encode(Evicted(reason="ttl_expired"))) == {
        "type": "evicted",
        "reason": "ttl_expired",
        "message": "",
    }
    fields = json.loads(encode(AnnounceHost(host=HostPayload(**HOST))))
    assert fields == {
        "type": "announce_host",
        "host": {
            **HOST,
            "type": "normal",
            "idc": "",
            "location": "",
            "concurrent_upload_limit": 50,
            "upload_bandwidth": 0,
        },
    }


def test_encode_rejects_other_objects() -> None:
    with pytest.raises(TypeError, match="not a protocol message"):
        encode(HostPayload(**HOST))  # type: ignore[arg-type]


@fresh_codec
def test_decodes_a_full_announce() -> None:
    message = decode_client(announce(id="a1", interval=5))
    assert message == AnnounceHost(id="a1", host=HostPayload(**HOST), interval=5.0)
    assert isinstance(message, AnnounceHost)
    assert type(message.interval) is float  # ints are accepted for float fields


# --- invalid frames --------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "code", "expected"),
    [
        pytest.param("not json", ErrorCode.INVALID_JSON, "not valid JSON", id="not-json"),
        pytest.param(b"\xff", ErrorCode.INVALID_JSON, "not valid JSON", id="not-utf8"),
        pytest.param("", ErrorCode.INVALID_JSON, "not valid JSON", id="empty"),
        pytest.param("[1, 2]", ErrorCode.INVALID_JSON, "JSON object", id="array"),
        pytest.param('"announce_host"', ErrorCode.INVALID_JSON, "JSON object", id="string"),
        pytest.param("null", ErrorCode.INVALID_JSON, "JSON object", id="null"),
        pytest.param('{"id": 1}', ErrorCode.UNKNOWN_TYPE, '"type" is missing', id="no-type"),
        pytest.param('{"type": null}', ErrorCode.UNKNOWN_TYPE, "missing", id="null-type"),
        pytest.param('{"type": 5}', ErrorCode.UNKNOWN_TYPE, "must be a string", id="int-type"),
        pytest.param('{"type": ["ack"]}', ErrorCode.UNKNOWN_TYPE, "string", id="list-type"),
        pytest.param('{"type": "hello"}', ErrorCode.UNKNOWN_TYPE, "'hello'", id="unknown"),
        pytest.param('{"type": "ack", "id": 1}', ErrorCode.UNKNOWN_TYPE, "'ack'", id="server-type"),
        pytest.param(
            '{"type": "error", "code": "x", "message": ""}',
            ErrorCode.UNKNOWN_TYPE,
            "'error'",
            id="server-error",
        ),
        pytest.param("1e999", ErrorCode.INVALID_JSON, "not valid JSON", id="infinite-number"),
        pytest.param(
            '{"type": "leave_host", "interval": NaN}',
            ErrorCode.INVALID_JSON,
            "not valid JSON",
            id="nan-literal",
        ),
    ],
)
def test_rejects_frames_that_are_not_messages(
    data: str | bytes, code: ErrorCode, expected: str
) -> None:
    error = decode_error(data)
    assert error.code is code
    assert expected in error.message


@fresh_codec
@pytest.mark.parametrize(
    ("data", "expected"),
    [
        pytest.param(
            announce(host={**HOST, "port": "8002"}),
            "invalid value for type, expected int @ $.host.port",
            id="string-for-int",
        ),
        pytest.param(
            announce(host={**HOST, "port": 8002.9}),
            "invalid value for type, expected int @ $.host.port",
            id="float-for-int",
        ),
        pytest.param(
            announce(host={**HOST, "port": 8002.0}),
            "invalid value for type, expected int @ $.host.port",
            id="integral-float-for-int",
        ),
        pytest.param(
            announce(host={**HOST, "port": True}),
            "invalid value for type, expected int @ $.host.port",
            id="bool-for-int",
        ),
        pytest.param(
            announce(interval=True),
            "invalid value for type, expected float | None @ $.interval",
            id="bool-for-float",
        ),
        pytest.param(
            announce(interval="5"),
            "invalid value for type, expected float | None @ $.interval",
            id="string-for-float",
        ),
        pytest.param(
            announce(host={**HOST, "hostname": 7}),
            "invalid value for type, expected str @ $.host.hostname",
            id="int-for-str",
        ),
        pytest.param(announce(id=True), "expected str | int | None @ $.id", id="bool-id"),
        pytest.param(announce(id=1.5), "expected str | int | None @ $.id", id="float-id"),
        pytest.param(announce(extra=1), "extra fields found (extra) @ $", id="extra-key"),
        pytest.param(
            announce(host={**HOST, "cpu": 1}),
            "extra fields found (cpu) @ $.host",
            id="nested-extra-key",
        ),
        pytest.param(
            frame(type="announce_host"), "required field missing @ $.host", id="missing-field"
        ),
        pytest.param(
            announce(host={"hostname": "h", "ip": "10.0.0.1", "port": 1}),
            "required field missing @ $.host.download_port",
            id="nested-missing-field",
        ),
        pytest.param(announce(host=[HOST]), "expected HostPayload @ $.host", id="list-for-object"),
        pytest.param(
            announce(host="node-1"), "expected HostPayload @ $.host", id="string-for-object"
        ),
        pytest.param(
            announce(host={**HOST, "type": "super"}),
            "must be one of 'normal', 'seed' @ $.host.type",
            id="bad-literal",
        ),
        pytest.param(
            announce(host={**HOST, "port": 0}),
            "must be a port number in 1..65535 @ $.host.port",
            id="port-zero",
        ),
        pytest.param(
            announce(host={**HOST, "stats": {"cpu": "high"}}),
            "expected float @ $.host.stats['cpu']",
            id="stats-value",
        ),
        pytest.param(
            announce(host={**HOST, "stats": [1.0]}),
            "@ $.host.stats",
            id="stats-not-object",
        ),
        pytest.param(announce(interval=-5), INTERVAL_RULE, id="neg"),
        pytest.param(announce(interval=0), INTERVAL_RULE, id="zero"),
        pytest.param(announce(interval=1e308), INTERVAL_RULE, id="huge"),
        pytest.param(announce(interval=5e-324), INTERVAL_RULE, id="tiny"),
        pytest.param(announce(interval=0.999), INTERVAL_RULE, id="under-a-second"),
        pytest.param(announce(interval=86_400.5), INTERVAL_RULE, id="over-a-day"),
        pytest.param(
            announce(host={**HOST, "hostname": "evil\nlevel=ERROR forged"}),
            f"{HOSTNAME_RULE} @ $.host.hostname",
            id="hostname-newline",
        ),
        pytest.param(
            announce(host={**HOST, "ip": "10.0.0.1\u0000"}), f"{IP_RULE} @ $.host.ip", id="ip-nul"
        ),
        *[
            pytest.param(announce(host={**HOST, "ip": ip}), f"{IP_RULE} @ $.host.ip", id=f"ip-{ip}")
            for ip in (
                "10.0.0.5-eu",  # once made the id of eu-worker-1 at 10.0.0.5
                "scheduler.example.com",
                "010.0.0.1",
                "10.0.0",
                "FE80::1",
                "fe80:0::1",
                "fe80::1%eth0",
                " 10.0.0.1",
                "",
            )
        ],
        *[
            pytest.param(
                announce(host={**HOST, "hostname": name}),
                f"{HOSTNAME_RULE} @ $.host.hostname",
                id=f"hostname-{name[:20]}",
            )
            for name in (
                "node-1-seed",  # a seed host's id ends with -seed
                "NODE-SEED",
                "-node",
                "node-",
                "a..b",
                "a.",
                "under_score",
                "x" * 64,
                ".".join(["x" * 63] * 4),  # 255 characters
                "naïve",
                "node 1",
                "",
            )
        ],
        pytest.param(
            frame(type="reschedule", peer_id="p", failed_parents=[f"q{i}" for i in range(101)]),
            "must name at most 100 parents @ $.failed_parents",
            id="too-many-failed-parents",
        ),
        pytest.param(
            frame(type="reschedule", peer_id="p", failed_parents=["q", ""]),
            "parent ids must not be empty @ $.failed_parents",
            id="empty-failed-parent",
        ),
        pytest.param(
            frame(type="reschedule", peer_id="p", failed_parents=["q", "r\n"]),
            "parent ids must not hold control characters @ $.failed_parents",
            id="control-failed-parent",
        ),
        pytest.param(
            frame(type="register_peer", peer_id="p", task={"url": "https://x.test/\r\nHost: y"}),
            "must not hold control characters @ $.task.url",
            id="control-url",
        ),
        pytest.param(
            frame(type="pieces_finished", peer_id="p", pieces=[1], parent_id="q\x00"),
            "must not hold control characters @ $.parent_id",
            id="control-parent-id",
        ),
        pytest.param(
            announce(host={**HOST, "stats": {"cpu\n": 1.0}}),
            "keys must not hold control characters @ $.host.stats",
            id="control-stats-key",
        ),
        pytest.param(
            frame(type="pieces_finished", peer_id="p", pieces=[]),
            "must not be empty @ $.pieces",
            id="empty-pieces",
        ),
        pytest.param(
            frame(type="pieces_finished", peer_id="p", pieces=list(range(10_001))),
            "at most 10000 piece numbers @ $.pieces",
            id="too-many-pieces",
        ),
        pytest.param(
            frame(type="pieces_finished", peer_id="p", pieces=[0, -1]),
            "piece numbers must be >= 0 (got -1 at [1]) @ $.pieces",
            id="negative-piece",
        ),
        pytest.param(
            frame(type="pieces_finished", peer_id="p", pieces=[0, "1", True]),
            "expected int @ $.pieces[1]; invalid value for type, expected int @ $.pieces[2]",
            id="piece-types",
        ),
        pytest.param(
            frame(type="pieces_finished", peer_id="p", pieces="12"),
            "expected list @ $.pieces",
            id="string-for-list",
        ),
        pytest.param(
            frame(type="pieces_finished", peer_id="p", pieces=[1], cost=-0.5),
            "must be finite and >= 0 @ $.cost",
            id="negative-cost",
        ),
        pytest.param(
            frame(type="register_peer", peer_id="p", task={}),
            "a task needs an id or a url @ $.task.url",
            id="task-without-id-or-url",
        ),
        pytest.param(
            frame(type="register_peer", peer_id="p", task={"url": "u", "piece_length": 0}),
            "must be > 0 @ $.task.piece_length",
            id="zero-piece-length",
        ),
        pytest.param(
            frame(type="download_started", peer_id=""),
            "must not be empty @ $.peer_id",
            id="empty-peer-id",
        ),
    ],
)
def test_rejects_invalid_messages_with_field_paths(data: str, expected: str) -> None:
    error = decode_error(data)
    assert error.code is ErrorCode.INVALID_MESSAGE
    assert expected in error.message


@fresh_codec
def test_lists_every_problem_of_a_frame() -> None:
    error = decode_error(announce(host={**HOST, "port": "1", "download_port": None}, extra=1))
    assert error.message.split("; ") == [
        "invalid value for type, expected int @ $.host.port",
        "invalid value for type, expected int @ $.host.download_port",
        "extra fields found (extra) @ $",
    ]


@fresh_codec
def test_accepts_the_limits() -> None:
    pieces = list(range(MAX_PIECES_PER_MESSAGE))
    message = decode_client(frame(type="pieces_finished", peer_id="p", pieces=pieces, cost=0))
    assert message == PiecesFinished(peer_id="p", pieces=pieces, cost=0.0)
    host = {**HOST, "port": 65535, "download_port": 1, "concurrent_upload_limit": 0}
    assert decode_client(announce(host=host)) == AnnounceHost(host=HostPayload(**host))


# --- the request id on errors ----------------------------------------------------------


@pytest.mark.parametrize("request_id", ["req-1", 42, 0, "", -(2**63)])
@pytest.mark.parametrize(
    "fields",
    [
        pytest.param({"type": "announce_host"}, id="invalid-message"),
        pytest.param({"type": "nope"}, id="unknown-type"),
        pytest.param({}, id="missing-type"),
        pytest.param({"type": "ack"}, id="server-type"),
    ],
)
def test_error_echoes_the_request_id(request_id: str | int, fields: dict[str, Any]) -> None:
    error = decode_error(json.dumps({**fields, "id": request_id}))
    assert error.request_id == request_id
    assert type(error.request_id) is type(request_id)
    reply = ErrorReply.from_error(error)
    assert reply == ErrorReply(id=request_id, code=error.code.value, message=error.message)
    assert decode_server(encode(reply)) == reply


@pytest.mark.parametrize("request_id", [None, True, 1.5, [1], {"a": 1}])
def test_error_has_no_id_when_it_cannot_be_read(request_id: object) -> None:
    error = decode_error(json.dumps({"type": "announce_host", "id": request_id}))
    assert error.request_id is None
    assert "id" not in json.loads(encode(ErrorReply.from_error(error)))


def test_invalid_json_has_no_id() -> None:
    assert decode_error('{"type": "leave_host", "id": 1').request_id is None


# --- decode_server ---------------------------------------------------------------------


@fresh_codec
def test_decode_server_is_as_strict() -> None:
    accepted = {
        "type": "host_accepted",
        "id": 1,
        "host_id": "10.0.0.1-node-1",
        "ttl": 10,
        "ping_interval": 5,
        "ping_timeout": 5,
        "reconnect_grace": 0,
    }
    assert decode_server(json.dumps(accepted)) == HostAccepted(
        id=1,
        host_id="10.0.0.1-node-1",
        ttl=10.0,
        ping_interval=5.0,
        ping_timeout=5.0,
        reconnect_grace=0.0,
    )
    with pytest.raises(ProtocolError) as info:
        decode_server(json.dumps({**accepted, "ping_interval": "5"}))
    assert info.value.code is ErrorCode.INVALID_MESSAGE
    assert info.value.request_id == 1
    assert "@ $.ping_interval" in info.value.message
    with pytest.raises(ProtocolError) as info:
        decode_server(json.dumps({"type": "leave_host"}))
    assert info.value.code is ErrorCode.UNKNOWN_TYPE
    # A client must accept error codes it does not know yet.
    unknown = decode_server('{"type": "error", "code": "rate_limited", "message": "slow down"}')
    assert unknown == ErrorReply(code="rate_limited", message="slow down")


# --- validation in Python ------------------------------------------------------------


@pytest.mark.parametrize(
    "interval", [math.nan, math.inf, -math.inf, -1.0, 0, 5e-324, 0.999, 86_400.001, 1e308]
)
def test_announce_interval_must_be_finite_and_positive(interval: float) -> None:
    with pytest.raises(ValueError, match="interval: must be between 1 and 86400 seconds"):
        AnnounceHost(host=HostPayload(**HOST), interval=interval)


@pytest.mark.parametrize("interval", [1, 1.0, 30, 86_400, 86_400.0])
def test_announce_interval_bounds_are_inclusive(interval: float) -> None:
    assert (MIN_ANNOUNCE_INTERVAL, MAX_ANNOUNCE_INTERVAL) == (1.0, 86_400.0)
    assert AnnounceHost(host=HostPayload(**HOST), interval=interval).interval == interval


def test_non_finite_floats_are_rejected_everywhere() -> None:
    with pytest.raises(ValueError, match="stats: values must be finite"):
        HostPayload(**HOST, stats={"cpu": math.nan})
    with pytest.raises(ValueError, match="cost"):
        PiecesFinished(peer_id="p", pieces=[1], cost=math.inf)
    with pytest.raises(ValueError, match="ttl"):
        HostAccepted(host_id="h", ttl=math.nan, ping_interval=5, ping_timeout=5, reconnect_grace=5)


def test_task_needs_an_id_or_a_url() -> None:
    with pytest.raises(ValueError, match="a task needs an id or a url"):
        TaskPayload()
    with pytest.raises(ValueError, match="must not be empty"):
        TaskPayload(id="", url="https://example.com/a")


def test_task_id_is_derived_from_the_url() -> None:
    url = "https://example.com/blob.tar"
    expected = hashlib.sha256(url.encode()).hexdigest()
    message = decode_client(frame(type="register_peer", peer_id="p", task={"url": url}))
    assert isinstance(message, RegisterPeer)
    assert message.task.id is None
    assert message.task.task_id == expected == protocol.task_id_for_url(url)
    assert TaskPayload(url=url).task_id == TaskPayload(url=url).task_id  # deterministic
    assert TaskPayload(id="t-1", url=url).task_id == "t-1"
    assert TaskPayload(id="t-1").task_id == "t-1"


# --- the spec ------------------------------------------------------------------------


def test_every_json_example_in_the_spec_decodes() -> None:
    spec = (REPO / "docs" / "protocol.md").read_text(encoding="utf-8")
    examples = re.findall(r"```json\n(.*?)```", spec, flags=re.DOTALL)
    seen = set()
    for example in examples:
        tag = json.loads(example)["type"]
        # "batch" goes both ways: a client's holds messages, the server's replies.
        from_client = tag in CLIENT_MESSAGES or "messages" in json.loads(example)
        decode = decode_client if from_client else decode_server
        assert decode(example).tag == tag
        seen.add((tag, from_client))
    assert seen == {
        *((tag, True) for tag in CLIENT_MESSAGES),
        *((tag, False) for tag in SERVER_MESSAGES),
        ("batch", True),
        ("batch", False),
    }


def test_at_most_100_failed_parents_is_allowed() -> None:
    parents = [f"q{i}" for i in range(100)]
    message = decode_client(frame(type="reschedule", peer_id="p", failed_parents=parents))
    assert isinstance(message, Reschedule)
    assert len(message.failed_parents) == 100


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        (
            {"action": "parents"},
            "parents must be non-empty exactly when action is parents @ $.action",
        ),
        (
            {"action": "fail", "parents": [PARENT]},
            "parents must be non-empty exactly when action is parents @ $.action",
        ),
        (
            {"action": "fail", "retry_after": 1.0},
            "retry_after comes with action wait, and only with it @ $.action",
        ),
        ({"action": "wait"}, "retry_after comes with action wait, and only with it @ $.action"),
    ],
)
def test_a_schedule_must_be_consistent(fields: dict[str, Any], expected: str) -> None:
    with pytest.raises(ProtocolError) as info:
        decode_server(json.dumps({"type": "schedule", "peer_id": "p", **fields}))
    assert info.value.code is ErrorCode.INVALID_MESSAGE
    assert info.value.message == expected


def test_the_spec_lists_every_error_code_once() -> None:
    spec = (REPO / "docs" / "protocol.md").read_text(encoding="utf-8")
    section = spec.split("## Error codes", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| `([a-z_]+)` \|", section, flags=re.MULTILINE)
    assert sorted(rows) == sorted(code.value for code in ErrorCode)


# --- robustness ----------------------------------------------------------------------


def decode_or_error(
    decode: Callable[[bytes], ClientMessage | ServerMessage], data: bytes
) -> ClientMessage | ServerMessage | ProtocolError:
    try:
        return decode(data)
    except ProtocolError as error:
        return error


@fresh_codec
@given(json_values)
def test_arbitrary_json_decodes_or_raises_protocol_error(value: Any) -> None:
    data = orjson.dumps(value)
    for decode in (decode_client, decode_server):
        result = decode_or_error(decode, data)
        if isinstance(result, ProtocolError):
            assert result.message
        else:
            assert decode(encode(result).encode()) == result


@fresh_codec
@given(client_messages, st.data())
def test_corrupted_fields_decode_or_raise_protocol_error(
    message: ClientMessage, data: st.DataObject
) -> None:
    fields = orjson.loads(encode(message))
    key = data.draw(st.sampled_from(sorted(fields)))
    fields[key] = data.draw(json_values)
    result = decode_or_error(decode_client, orjson.dumps(fields))
    if isinstance(result, ProtocolError):
        assert result.code in {ErrorCode.UNKNOWN_TYPE, ErrorCode.INVALID_MESSAGE}
        if key != "id":
            assert result.request_id == getattr(message, "id", None)
    else:
        assert decode_client(encode(result)) == result


def test_the_spec_lists_every_error_code_and_close_code() -> None:
    spec = (REPO / "docs" / "protocol.md").read_text(encoding="utf-8")
    errors = spec.split("## Error codes", 1)[1].split("\n## ", 1)[0]
    documented = set(re.findall(r"^\| `([a-z_]+)` \|", errors, flags=re.MULTILINE))
    assert documented == {code.value for code in ErrorCode}
    closes = spec.split("## Close codes", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| (\d{4}) \| `([A-Z_]+)` \|", closes, flags=re.MULTILINE)
    assert {(int(code), name) for code, name in rows} == {(c.value, c.name) for c in CloseCode}
