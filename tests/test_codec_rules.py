"""The codec's rules stated exactly: the text of its errors, its strict scalar types,
and the validators of the message classes.

The tests of what the converter does run against a codec rebuilt by its builder
(``@fresh_codec``, see the fixture), so mutation testing judges the builder too; the
converter's tests come first, so that a mutant of the builder fails fast.
"""

from __future__ import annotations

import json
import math
import typing
from collections.abc import Callable
from typing import Any

import attrs
import cattrs
import pytest
from cattrs.errors import AttributeValidationNote
from hypothesis import example, given
from hypothesis import strategies as st

from scheduler.protocol import (
    CONTROL_CHARACTERS,
    AnnounceHost,
    ErrorCode,
    ErrorReply,
    HostAccepted,
    HostPayload,
    InvalidValue,
    PiecesFinished,
    ProtocolError,
    TaskPayload,
    _codec,
    _messages,
    decode_client,
    decode_server,
    encode,
)

fresh_codec = pytest.mark.usefixtures("fresh_codec")

HOST: dict[str, Any] = {"hostname": "node-1", "ip": "10.0.0.1", "port": 8002, "download_port": 8001}


def client_error(data: str | bytes) -> ProtocolError:
    with pytest.raises(ProtocolError) as info:
        decode_client(data)
    return info.value


def server_error(data: str | bytes) -> ProtocolError:
    with pytest.raises(ProtocolError) as info:
        decode_server(data)
    return info.value


# --- the converter: encoding, and the declared types of fields ----------------------------


@fresh_codec
def test_encoding_leaves_out_exactly_the_fields_that_are_none() -> None:
    bare = AnnounceHost(host=HostPayload(**HOST))
    assert json.loads(encode(bare)) == {
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
    full = AnnounceHost(id=0, host=HostPayload(**HOST, stats={}), interval=1.5)
    encoded = json.loads(encode(full))
    assert (encoded["id"], encoded["interval"], encoded["host"]["stats"]) == (0, 1.5, {})
    accepted = HostAccepted(host_id="h", ping_interval=1, ping_timeout=2, reconnect_grace=0)
    assert json.loads(encode(accepted)) == {
        "type": "host_accepted",
        "host_id": "h",
        "ping_interval": 1,
        "ping_timeout": 2,
        "reconnect_grace": 0,
    }
    assert json.loads(encode(PiecesFinished(peer_id="p", pieces=[3]))) == {
        "type": "pieces_finished",
        "peer_id": "p",
        "pieces": [3],
    }


@fresh_codec
@pytest.mark.parametrize("host_type", ["normal", "seed"])
def test_a_host_type_is_one_of_its_literal_values(host_type: str) -> None:
    data = json.dumps({"type": "announce_host", "host": {**HOST, "type": host_type}})
    message = decode_client(data)
    assert isinstance(message, AnnounceHost)
    assert message.host.type == host_type


@fresh_codec
@pytest.mark.parametrize("host_type", ["super", "", "Normal", 1, True, None, ["seed"]])
def test_any_other_host_type_is_rejected_with_the_allowed_values(host_type: object) -> None:
    error = client_error(json.dumps({"type": "announce_host", "host": {**HOST, "type": host_type}}))
    assert (error.code, error.message) == (
        ErrorCode.INVALID_MESSAGE,
        "must be one of 'normal', 'seed' @ $.host.type",
    )


# --- the frame and its "type" -------------------------------------------------------------


@pytest.mark.parametrize("data", ["[]", "null", "1", '"x"', "true"])
def test_a_frame_that_is_not_an_object_is_invalid_json(data: str) -> None:
    for error in (client_error(data), server_error(data)):
        assert (error.code, error.message) == (
            ErrorCode.INVALID_JSON,
            "a frame must be a JSON object",
        )
        assert str(error) == "invalid_json: a frame must be a JSON object"


def test_a_frame_that_is_not_json_quotes_the_parser() -> None:
    error = client_error("{")
    assert error.code is ErrorCode.INVALID_JSON
    assert error.message.startswith("not valid JSON: ")
    assert len(error.message) > len("not valid JSON: ")


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ('{"id": 3}', '"type" is missing'),
        ('{"id": 3, "type": null}', '"type" is missing'),
        ('{"id": 3, "type": 1}', '"type" must be a string'),
        ('{"id": 3, "type": {"name": "ack"}}', '"type" must be a string'),
    ],
)
def test_a_missing_or_non_string_type_is_named(data: str, message: str) -> None:
    for error in (client_error(data), server_error(data)):
        assert (error.code, error.message, error.request_id) == (ErrorCode.UNKNOWN_TYPE, message, 3)


def test_a_type_of_the_other_side_names_the_side_it_is_not_for() -> None:
    error = client_error('{"type": "ack", "id": "r"}')
    assert (error.code, error.message) == (
        ErrorCode.UNKNOWN_TYPE,
        "\"type\" is not a client message type: 'ack'",
    )
    assert str(error) == "unknown_type: \"type\" is not a client message type: 'ack'"
    error = server_error('{"type": "leave_host"}')
    assert error.message == "\"type\" is not a server message type: 'leave_host'"


@fresh_codec
def test_an_invalid_message_lists_its_problems_exactly() -> None:
    data = json.dumps({"type": "announce_host", "id": 9, "host": {**HOST, "port": 0}, "x": 1})
    error = client_error(data)
    assert (error.code, error.request_id) == (ErrorCode.INVALID_MESSAGE, 9)
    assert error.message == (
        "must be a port number in 1..65535 @ $.host.port; extra fields found (x) @ $"
    )


# --- the error classes --------------------------------------------------------------------


def test_a_protocol_error_reads_as_code_and_message() -> None:
    error = ProtocolError(ErrorCode.NOT_FOUND, "no peer 'p'", "r-1")
    assert str(error) == "not_found: no peer 'p'"
    assert (error.code, error.message, error.request_id) == (
        ErrorCode.NOT_FOUND,
        "no peer 'p'",
        "r-1",
    )
    assert ProtocolError(ErrorCode.INTERNAL, "bug").request_id is None
    reply = ErrorReply.from_error(error)
    assert json.loads(encode(reply)) == {
        "type": "error",
        "id": "r-1",
        "code": "not_found",
        "message": "no peer 'p'",
    }


def test_an_invalid_value_names_its_field_when_it_has_one() -> None:
    named = InvalidValue("port", "must be a port number in 1..65535")
    assert str(named) == "port: must be a port number in 1..65535"
    assert (named.field, named.reason) == ("port", "must be a port number in 1..65535")
    anonymous = InvalidValue("", "must be one of 'normal', 'seed'")
    assert str(anonymous) == "must be one of 'normal', 'seed'"
    assert (anonymous.field, anonymous.reason) == ("", "must be one of 'normal', 'seed'")


def test_error_codes_are_the_wire_values() -> None:
    assert {code.name: code.value for code in ErrorCode} == {
        "INVALID_JSON": "invalid_json",
        "UNKNOWN_TYPE": "unknown_type",
        "INVALID_MESSAGE": "invalid_message",
        "FORBIDDEN": "forbidden",
        "NOT_FOUND": "not_found",
        "CONFLICT": "conflict",
        "ILLEGAL_STATE": "illegal_state",
        "LIMIT_EXCEEDED": "limit_exceeded",
        "NOT_ANNOUNCED": "not_announced",
        "TOO_MANY_ERRORS": "too_many_errors",
        "RATE_LIMITED": "rate_limited",
        "MOVED": "moved",
        "INTERNAL": "internal",
    }


# --- strict scalars -----------------------------------------------------------------------


@fresh_codec
@pytest.mark.parametrize(
    ("tp", "good", "bad"),
    [
        (str, ["", "x"], [1, 1.5, True, None, ["x"], {"x": 1}]),
        (int, [0, -3, 2**63 - 1], ["1", 1.0, 1.5, True, False, None, [1]]),
        (float, [0.5, -2.0, 3], ["1.5", True, None, [1.0]]),
        (bool, [True, False], [1, 0, "true", "false", None, 1.0]),
        (str | int | None, ["r", 7, None], [True, 1.5, ["r"], {"r": 1}]),
        # Optional fields: None, or exactly what the inner type accepts.
        (str | None, [None, "", "x"], [1, True, ["x"]]),
        (int | None, [None, 0, 5], [True, 1.0, "5"]),
        (float | None, [None, 0.5, 2], [True, "0.5", [0.5]]),
        (bool | None, [None, False], [0, "false"]),
        (dict[str, float] | None, [None, {}, {"cpu": 0.5}], [[], "x", {"cpu": True}, {1: 0.5}]),
        (list[int], [[], [0, 1]], ["01", {"0": 1}, [True], [1.0]]),
    ],
)
def test_the_converter_never_coerces_a_json_scalar(
    tp: Any, good: list[Any], bad: list[Any]
) -> None:
    # No message has a bool field today; the converter is strict for bool all the same,
    # so a bool field added later cannot read 1 or "false" as a boolean.
    converter = _codec._converter
    for value in good:
        result = converter.structure(value, tp)
        assert result == value
        if type(value) is int and float in (tp, *typing.get_args(tp)):
            assert type(result) is float
        else:
            assert type(result) is type(value)
    for value in bad:
        with pytest.raises((TypeError, ValueError, cattrs.BaseValidationError)):
            converter.structure(value, tp)


@fresh_codec
def test_an_integer_in_a_float_field_becomes_a_float() -> None:
    message = decode_client(json.dumps({"type": "announce_host", "host": HOST, "interval": 5}))
    assert isinstance(message, AnnounceHost)
    assert type(message.interval) is float
    assert message.interval == 5.0


# --- the message validators ---------------------------------------------------------------

PORT = attrs.fields(HostPayload).port


def test_a_checked_validator_rejects_exactly_what_its_predicate_rejects() -> None:
    seen: list[object] = []

    def at_most_two(value: int) -> bool:
        seen.append(value)
        return value <= 2

    validate = _messages._check(at_most_two, "must be <= 2")
    validate(None, PORT, 2)
    with pytest.raises(InvalidValue) as info:
        validate(None, PORT, 3)
    assert seen == [2, 3]
    assert (info.value.field, info.value.reason, str(info.value)) == (
        "port",
        "must be <= 2",
        "port: must be <= 2",
    )


@given(st.text())
@example("")
@example("host-1.example")
@example("caf\u00e9 \u00a0nbsp")  # printable but for the no-break space: the pattern decides
@example("a\u2028b")
@example("\x85")
def test_plain_is_exactly_no_control_character(value: str) -> None:
    # The isprintable() shortcut must never change the pattern's verdict.
    assert _messages._is_plain(value) is (CONTROL_CHARACTERS.search(value) is None)


def test_checked_rules_run_in_order_and_the_first_broken_one_gives_the_reason() -> None:
    seen: list[tuple[str, object]] = []

    def rule(name: str, ok: bool) -> Callable[[object], bool]:
        def check(value: object) -> bool:
            seen.append((name, value))
            return ok

        return check

    passes = _messages._checks((rule("a", True), "not a"), (rule("b", True), "not b"))
    passes(None, PORT, 7)
    assert seen == [("a", 7), ("b", 7)]
    seen.clear()
    fails = _messages._checks(
        (rule("a", True), "not a"), (rule("b", False), "not b"), (rule("c", False), "not c")
    )
    with pytest.raises(InvalidValue) as info:
        fails(None, PORT, 8)
    assert seen == [("a", 8), ("b", 8)]  # c is never asked
    assert (info.value.field, info.value.reason) == ("port", "not b")


def test_an_optional_validator_skips_none_and_passes_everything_else_on() -> None:
    calls: list[tuple[object, object, object]] = []

    def inner(instance: object, attribute: object, value: object) -> None:
        calls.append((instance, attribute, value))

    validate = _messages._optional(inner)
    owner = object()
    validate(owner, PORT, None)
    assert calls == []
    validate(owner, PORT, 0)
    assert calls == [(owner, PORT, 0)]


def test_a_validation_error_carries_the_note_cattrs_reads_for_the_path() -> None:
    with pytest.raises(InvalidValue) as info:
        HostPayload(**{**HOST, "port": 0})
    assert info.value.__notes__ == ["Validating field port"]
    (note,) = info.value.__notes__
    assert isinstance(note, AttributeValidationNote)
    assert (note.name, note.type) == ("port", int)


@pytest.mark.parametrize("port", [1, 2, 8080, 65534, 65535])
def test_a_port_is_1_to_65535(port: int) -> None:
    assert HostPayload(**{**HOST, "port": port, "download_port": port}).port == port


@pytest.mark.parametrize("port", [0, -1, 65536, 70000])
def test_a_port_outside_1_to_65535_is_rejected(port: int) -> None:
    for field in ("port", "download_port"):
        with pytest.raises(InvalidValue) as info:
            HostPayload(**{**HOST, field: port})
        assert str(info.value) == f"{field}: must be a port number in 1..65535"


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (
            lambda: HostPayload(**{**HOST, "hostname": ""}),
            "hostname: must be an RFC 1123 hostname: labels of letters, digits and hyphens "
            "separated by dots, at most 253 characters, not ending with '-seed'",
        ),
        (
            lambda: HostPayload(**{**HOST, "ip": ""}),
            "ip: must be an IPv4 or IPv6 address in canonical form (e.g. 10.0.0.1, fe80::1)",
        ),
        (
            lambda: HostPayload(**HOST, concurrent_upload_limit=-1),
            "concurrent_upload_limit: must be >= 0",
        ),
        (lambda: HostPayload(**HOST, stats={"cpu": math.inf}), "stats: values must be finite"),
        (lambda: TaskPayload(id="t", piece_length=0), "piece_length: must be > 0"),
        (
            lambda: TaskPayload(id="t", content_length=-2),
            "content_length: must be >= -1 (-1: unknown)",
        ),
        (
            lambda: TaskPayload(id="t", total_piece_count=-2),
            "total_piece_count: must be >= -1 (-1: unknown)",
        ),
        (
            lambda: PiecesFinished(peer_id="p", pieces=[1], parent_id=""),
            "parent_id: must not be empty",
        ),
        (
            lambda: PiecesFinished(peer_id="p", pieces=[1], cost=-0.1),
            "cost: must be finite and >= 0",
        ),
        (
            lambda: HostAccepted(host_id="h", ping_interval=0, ping_timeout=1),
            "ping_interval: must be finite and > 0",
        ),
        (
            lambda: HostAccepted(host_id="h", ping_interval=1, ping_timeout=1, reconnect_grace=-1),
            "reconnect_grace: must be finite and >= 0",
        ),
    ],
)
def test_each_range_check_names_the_field_and_the_rule(build: Any, message: str) -> None:
    with pytest.raises(InvalidValue) as info:
        build()
    assert str(info.value) == message


def test_the_range_checks_accept_their_limits() -> None:
    assert (
        HostPayload(**HOST, concurrent_upload_limit=0, stats={"cpu": 0.0}).concurrent_upload_limit
        == 0
    )
    task = TaskPayload(id="t", piece_length=1, content_length=-1, total_piece_count=-1)
    assert (task.piece_length, task.content_length, task.total_piece_count) == (1, -1, -1)
    assert PiecesFinished(peer_id="p", pieces=[0], cost=0.0).cost == 0.0
    accepted = HostAccepted(host_id="h", ping_interval=1e-9, ping_timeout=1, reconnect_grace=0)
    assert accepted.reconnect_grace == 0


@fresh_codec
@pytest.mark.parametrize(
    ("fields", "message"),
    [
        (
            {"type": "announce_host", "host": {**HOST, "stats": [1.0]}},
            "invalid value for type, expected dict[str, float] | None @ $.host.stats",
        ),
        (
            {"type": "announce_host", "host": {**HOST, "stats": "cpu"}},
            "invalid value for type, expected dict[str, float] | None @ $.host.stats",
        ),
        (
            {"type": "pieces_finished", "peer_id": "p", "pieces": {"0": 1}},
            "invalid value for type, expected list @ $.pieces",
        ),
        (
            {"type": "announce_host", "host": [HOST]},
            "invalid value for type, expected HostPayload @ $.host",
        ),
        (
            {"type": "register_peer", "peer_id": "p", "task": "t"},
            "invalid value for type, expected TaskPayload @ $.task",
        ),
    ],
)
def test_a_value_of_the_wrong_json_container_type_is_named_by_the_declared_type(
    fields: dict[str, Any], message: str
) -> None:
    error = client_error(json.dumps(fields))
    assert (error.code, error.message) == (ErrorCode.INVALID_MESSAGE, message)


# --- the rules' own words: each validator's reason, on the path of its field -----------------


@pytest.mark.parametrize(
    ("decode", "frame", "expected"),
    [
        (
            "server",
            {"type": "schedule", "id": 3, "peer_id": "p", "action": "parents"},
            "parents must be non-empty exactly when action is parents @ $.action",
        ),
        (
            "server",
            {"type": "schedule", "id": 3, "peer_id": "p", "action": "wait"},
            "retry_after comes with action wait, and only with it @ $.action",
        ),
        (
            "client",
            {"type": "reschedule", "id": 3, "peer_id": "p", "failed_parents": ["x"] * 101},
            "must name at most 100 parents @ $.failed_parents",
        ),
        (
            "client",
            {"type": "reschedule", "id": 3, "peer_id": "p", "failed_parents": ["x", ""]},
            "parent ids must not be empty @ $.failed_parents",
        ),
    ],
)
def test_each_validator_explains_itself_on_its_field(
    decode: str, frame: dict[str, object], expected: str
) -> None:
    decoder = decode_server if decode == "server" else decode_client
    with pytest.raises(ProtocolError) as caught:
        decoder(json.dumps(frame))
    assert (caught.value.code, caught.value.message, caught.value.request_id) == (
        ErrorCode.INVALID_MESSAGE,
        expected,
        3,
    )


def test_a_reschedule_may_name_exactly_the_most_parents() -> None:
    frame = {"type": "reschedule", "id": 3, "peer_id": "p", "failed_parents": ["x"] * 100}
    message = decode_client(json.dumps(frame))
    assert len(message.failed_parents) == 100  # type: ignore[union-attr]
