"""The JSON codec of protocol v1: a strict cattrs converter behind our own tag dispatch.

Decoding a frame is ``orjson.loads``, one dict lookup on ``"type"`` and one call of a
structure hook that was generated once at import. We do not use cattrs' tagged
unions: an unknown tag there surfaces as a bare ``KeyError`` (rendered as
"required field missing"), and the extra dispatch layer costs about a third of
the throughput.

cattrs coerces by default (``"12"`` -> ``12``, ``1.9`` -> ``1``, ``true`` -> ``1``),
so strict hooks for the scalar types are registered first, before any hook that
captures them is generated.
"""

from __future__ import annotations

import typing
from collections.abc import Callable, Mapping
from typing import Any, Final, TypeVar

import attrs
import cattrs
import orjson
from cattrs.cols import list_structure_factory
from cattrs.gen import make_dict_unstructure_fn, override
from cattrs.preconf.orjson import make_converter
from cattrs.v import format_exception

from ._errors import ErrorCode, InvalidValue, ProtocolError
from ._messages import (
    CLIENT_MESSAGES,
    MAX_BATCH_MESSAGES,
    SERVER_MESSAGES,
    Batch,
    BatchReply,
    ClientMessage,
    HostPayload,
    ParentPayload,
    ServerMessage,
    TaskPayload,
)

__all__ = ["decode_client", "decode_server", "encode"]

_M = TypeVar("_M")
_StructureHook = Callable[[Any, Any], Any]
_UnstructureHook = Callable[[Any], dict[str, Any]]

# --- strict scalar hooks ----------------------------------------------------------
# The TypeErrors below are rendered by cattrs as "invalid value for type, expected
# <field type> @ <path>", so their own text never reaches the client.


def _structure_str(value: object, _: object) -> str:
    if type(value) is str:
        return value
    raise TypeError("not a string")


def _structure_int(value: object, _: object) -> int:
    # ``type(...) is int`` rejects bool (a subclass of int) and floats such as 1.0.
    if type(value) is int:
        return value
    raise TypeError("not an integer")


def _structure_float(value: object, _: object) -> float:
    if type(value) is float:
        return value
    if type(value) is int:
        return float(value)
    raise TypeError("not a number")


def _structure_bool(value: object, _: object) -> bool:
    if type(value) is bool:
        return value
    raise TypeError("not a boolean")


def _structure_request_id(value: object, _: object) -> str | int | None:
    if value is None or type(value) is str or type(value) is int:
        return value
    raise TypeError("not a string or an integer")


def _read_request_id(frame: dict[str, Any]) -> str | int | None:
    value = frame.get("id")
    return value if type(value) is str or type(value) is int else None


# --- hook factories ----------------------------------------------------------------


def _is_generic(origin: type) -> Callable[[Any], bool]:
    """A predicate for ``origin[...]``, e.g. ``list[int]``."""
    return lambda tp: typing.get_origin(tp) is origin


def _is_literal(tp: Any) -> bool:
    return typing.get_origin(tp) is typing.Literal


def _checked_type(expected: type, structure: _StructureHook) -> Callable[[Any, Any], Any]:
    """Run ``structure`` only on values of exactly the ``expected`` JSON type.

    Without this cattrs iterates a string as a list or reads a list as an object.
    """

    def structure_checked(value: Any, tp: Any) -> Any:
        if type(value) is not expected:
            raise TypeError(f"not a JSON {expected.__name__}")
        return structure(value, tp)

    return structure_checked


def _register_exact(converter: cattrs.Converter, tp: Any, hook: _StructureHook) -> None:
    """Register ``hook`` for a union or generic alias, which singledispatch cannot key on."""
    converter.register_structure_hook_func(lambda candidate: candidate == tp, hook)


def _make_converter() -> cattrs.Converter:
    converter = make_converter(forbid_extra_keys=True)
    # Scalars first: every hook generated later captures these.
    converter.register_structure_hook(str, _structure_str)
    converter.register_structure_hook(int, _structure_int)
    converter.register_structure_hook(float, _structure_float)
    converter.register_structure_hook(bool, _structure_bool)
    _register_exact(converter, str | int | None, _structure_request_id)
    # An optional field ``X | None`` needs no hook of its own: cattrs structures None
    # as None and anything else with the (strict) hook of X.

    def literal_factory(tp: Any) -> _StructureHook:
        allowed = frozenset(typing.get_args(tp))
        reason = "must be one of " + ", ".join(repr(v) for v in typing.get_args(tp))

        def structure_literal(value: Any, _: Any) -> Any:
            if type(value) is str and value in allowed:
                return value
            raise InvalidValue("", reason)

        return structure_literal

    converter.register_structure_hook_factory(_is_literal, literal_factory)

    # Containers and nested objects check their JSON type before cattrs walks them.
    def list_factory(tp: Any) -> _StructureHook:
        return _checked_type(list, list_structure_factory(tp, converter))

    def dict_factory(tp: Any) -> _StructureHook:
        return _checked_type(dict, converter.gen_structure_mapping(tp))

    converter.register_structure_hook_factory(_is_generic(list), list_factory)
    converter.register_structure_hook_factory(_is_generic(dict), dict_factory)
    for payload in (HostPayload, TaskPayload, ParentPayload):
        default = converter.get_structure_hook(payload)
        converter.register_structure_hook(payload, _checked_type(dict, default))

    # Encoding: leave out optional fields that are None, e.g. no ``"id": null``.
    for cls in (
        HostPayload,
        TaskPayload,
        ParentPayload,
        *CLIENT_MESSAGES.values(),
        *SERVER_MESSAGES.values(),
    ):
        omit_none: dict[str, Any] = {
            field.name: override(omit_if_default=True)
            for field in attrs.fields(cls)
            if field.default is None
        }
        converter.register_unstructure_hook(
            cls, make_dict_unstructure_fn(cls, converter, **omit_none)
        )
    return converter


_converter: Final = _make_converter()


def _structure_table(
    messages: Mapping[str, type[_M]],
) -> dict[str, tuple[type[_M], _StructureHook]]:
    return {tag: (cls, _converter.get_structure_hook(cls)) for tag, cls in messages.items()}


_CLIENT_DECODERS: Final = _structure_table(CLIENT_MESSAGES)
_SERVER_DECODERS: Final = _structure_table(SERVER_MESSAGES)
_ENCODERS: Final[dict[type[Any], tuple[str, _UnstructureHook]]] = {
    cls: (cls.tag, _converter.get_unstructure_hook(cls))
    for cls in (*CLIENT_MESSAGES.values(), *SERVER_MESSAGES.values())
}


# --- errors ------------------------------------------------------------------------


def _describe(exc: BaseException, tp: Any) -> str:
    # Our validators explain themselves; cattrs knows the rest.
    if isinstance(exc, InvalidValue):
        return exc.reason
    return format_exception(exc, tp)


def _explain(exc: BaseException) -> str:
    """Every problem of a frame, ``"; "``-joined, each as ``<what> @ <path>``."""
    return "; ".join(cattrs.transform_error(exc, path="$", format_exception=_describe))


# --- API -----------------------------------------------------------------------------


_NOT_AN_OBJECT: Final = "a frame must be a JSON object"


def _parse(data: str | bytes) -> dict[str, Any]:
    try:
        frame = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise ProtocolError(ErrorCode.INVALID_JSON, f"not valid JSON: {exc}") from None
    if type(frame) is not dict:
        raise ProtocolError(ErrorCode.INVALID_JSON, _NOT_AN_OBJECT)
    return frame


def _structure(
    frame: dict[str, Any], decoders: Mapping[str, tuple[type[_M], _StructureHook]], side: str
) -> _M:
    """One message from a JSON object that is ours to change (fresh from orjson)."""
    request_id = _read_request_id(frame)
    # The frame is ours, so the tag may be popped off in place.
    tag = frame.pop("type", None)
    entry = decoders.get(tag) if type(tag) is str else None
    if entry is None:
        if tag is None:
            problem = '"type" is missing'
        elif type(tag) is not str:
            problem = '"type" must be a string'
        else:
            problem = f'"type" is not a {side} message type: {tag!r}'
        raise ProtocolError(ErrorCode.UNKNOWN_TYPE, problem, request_id)
    cls, structure = entry
    try:
        message: _M = structure(frame, cls)
    except Exception as exc:
        # With detailed validation every input problem arrives as a ClassValidationError;
        # anything else is still caused by the input and must not end the session.
        raise ProtocolError(ErrorCode.INVALID_MESSAGE, _explain(exc), request_id) from None
    return message


def _batch_items(frame: dict[str, Any], field: str) -> tuple[str | int | None, list[Any]]:
    """The id and the items of a ``batch`` frame, after the checks of the whole frame.

    A frame that breaks them is refused whole (``invalid_message``): a missing or
    extra field, a bad id, more than :data:`MAX_BATCH_MESSAGES` items, a batch inside.
    """
    request_id = _read_request_id(frame)

    def refuse(problem: str) -> ProtocolError:
        return ProtocolError(ErrorCode.INVALID_MESSAGE, problem, request_id)

    extra = sorted(set(frame) - {"type", "id", field})
    if extra:
        raise refuse(f"extra fields found ({', '.join(extra)}) @ $")
    if "id" in frame and not (frame["id"] is None or type(frame["id"]) in (str, int)):
        raise refuse("invalid value for type, expected str | int | None @ $.id")
    items = frame.get(field)
    if type(items) is not list:
        problem = "required field missing" if items is None else "not a JSON list"
        raise refuse(f"{problem} @ $.{field}")
    if len(items) > MAX_BATCH_MESSAGES:
        raise refuse(f"must hold at most {MAX_BATCH_MESSAGES} messages @ $.{field}")
    for index, item in enumerate(items):
        if type(item) is dict and item.get("type") == Batch.tag:
            raise refuse(f"a batch cannot hold a batch @ $.{field}[{index}]")
    return request_id, items


def _client_item(item: Any) -> ClientMessage | ProtocolError:
    if type(item) is not dict:
        # The same error as for a frame of its own.
        return ProtocolError(ErrorCode.INVALID_JSON, _NOT_AN_OBJECT)
    try:
        return _structure(item, _CLIENT_DECODERS, "client")
    except ProtocolError as exc:
        return exc


def decode_client(data: str | bytes) -> ClientMessage | Batch:
    """Decode one client -> server frame.

    Raises :class:`ProtocolError` with code ``invalid_json`` (not JSON, or not an
    object), ``unknown_type`` (``"type"`` missing, not a string, or not a client
    message type) or ``invalid_message`` (a field missing, extra, of the wrong type
    or out of range; the message lists each problem with its path, e.g.
    ``invalid value for type, expected int @ $.host.port``). The error carries the
    frame's ``"id"`` when it could be read.

    A ``batch`` frame is checked as a whole (see :func:`_batch_items`); then each
    item is decoded on its own, and one that does not decode is kept in
    :attr:`Batch.messages` as its :class:`ProtocolError`.
    """
    frame = _parse(data)
    if frame.get("type") == Batch.tag:
        request_id, items = _batch_items(frame, "messages")
        return Batch(id=request_id, messages=[_client_item(item) for item in items])
    return _structure(frame, _CLIENT_DECODERS, "client")


def decode_server(data: str | bytes) -> ServerMessage:
    """Decode one server -> client frame; errors as in :func:`decode_client`.

    Every reply of a ``batch`` must decode, or the whole frame is refused.
    """
    frame = _parse(data)
    if frame.get("type") == BatchReply.tag:
        request_id, items = _batch_items(frame, "replies")
        replies: list[ServerMessage] = []
        for index, item in enumerate(items):
            if type(item) is not dict:
                raise ProtocolError(
                    ErrorCode.INVALID_JSON, f"replies[{index}] is not a JSON object", request_id
                )
            replies.append(_structure(item, _SERVER_DECODERS, "server"))
        return BatchReply(id=request_id, replies=replies)
    return _structure(frame, _SERVER_DECODERS, "server")


def _encode_dict(message: Any) -> dict[str, Any]:
    try:
        tag, unstructure = _ENCODERS[type(message)]
    except KeyError:
        raise TypeError(f"not a protocol message: {message!r}") from None
    return {"type": tag, **unstructure(message)}


def _encode_batch(batch: Batch | BatchReply) -> dict[str, Any]:
    items = batch.messages if isinstance(batch, Batch) else batch.replies
    field = "messages" if isinstance(batch, Batch) else "replies"
    head: dict[str, Any] = {"type": batch.tag}
    if batch.id is not None:
        head["id"] = batch.id
    head[field] = [_encode_dict(item) for item in items]
    return head


def encode(message: ClientMessage | ServerMessage | Batch) -> str:
    """The JSON text of ``message``, with its ``"type"`` and without ``None`` fields."""
    if isinstance(message, Batch | BatchReply):
        return orjson.dumps(_encode_batch(message)).decode()
    return orjson.dumps(_encode_dict(message)).decode()
