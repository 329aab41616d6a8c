"""JSON-RPC 2.0 as MCP uses it: parse and validate one incoming message, build answers, encode them.

Pure functions only: no I/O, no clock. A message that cannot be accepted raises `ProtocolError` carrying
the JSON-RPC error code and, when it could be read, the request id, so each transport can answer it the
same way. MCP narrows JSON-RPC: ids are strings or integers (never null), params are objects, and since
revision 2025-06-18 there are no batches, so a JSON array is refused as an invalid request.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from enum import Enum
from pathlib import PurePath
from typing import Any

PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
INTERNAL_ERROR = -32603
SERVER_BUSY = -32000  # implementation-defined server error: too many requests in progress on this session

JSONRPC_VERSION = "2.0"
MAX_NESTING = 64

RequestId = str | int


class ProtocolError(Exception):
    """A message or request that gets a JSON-RPC error answer: code, message, the request id when known."""

    def __init__(self, code: int, message: str, request_id: RequestId | None = None, data: Any = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.request_id = request_id
        self.data = data

    def to_response(self) -> dict[str, Any]:
        """The JSON-RPC error response (id null when the request's id could not be read)."""
        return error_response(self.request_id, self.code, self.message, self.data)


@dataclass(frozen=True, slots=True)
class Request:
    """A JSON-RPC request: it expects exactly one response carrying its id."""

    id: RequestId
    method: str
    params: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Notification:
    """A JSON-RPC notification: never answered."""

    method: str
    params: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Response:
    """A response sent by the client (to a server request); this server sends none, so these are ignored."""

    id: RequestId | None
    result: Any = None
    error: Any = None


Message = Request | Notification | Response


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _depth(value: Any, limit: int) -> int:
    """Nesting depth of a decoded JSON value, stopping once `limit` is exceeded."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > limit:
            return depth
        deepest = max(deepest, depth)
        if isinstance(item, dict):
            stack.extend((child, depth + 1) for child in item.values())
        elif isinstance(item, list):
            stack.extend((child, depth + 1) for child in item)
    return deepest


_JSON_STRING = re.compile(r'"(?:[^"\\]|\\.)*"', re.DOTALL)
_BRACKET = re.compile(r"[\[\]{}]")


def _bracket_depth(text: str) -> int:
    """The deepest bracket nesting of JSON text, strings ignored (cheap: only brackets are visited)."""
    if text.count("[") + text.count("{") <= MAX_NESTING:
        return 0
    depth = deepest = 0
    for match in _BRACKET.finditer(_JSON_STRING.sub("", text)):
        depth += 1 if match.group() in "[{" else -1
        deepest = max(deepest, depth)
        if deepest > MAX_NESTING:
            break
    return deepest


def decode(raw: bytes | str) -> Any:
    """UTF-8 JSON text → value; ProtocolError(-32700) for anything that is not valid JSON (NaN included)."""
    try:
        text = raw.decode("utf-8") if isinstance(raw, bytes | bytearray) else raw
    except UnicodeDecodeError as e:
        raise ProtocolError(
            PARSE_ERROR, f"parse error: expected UTF-8 encoded JSON, received invalid UTF-8 ({e})"
        ) from e
    if not text.strip():
        raise ProtocolError(PARSE_ERROR, "parse error: expected a JSON-RPC message, received an empty message")
    if _bracket_depth(text) > MAX_NESTING:
        # checked before json.loads: the C decoder recurses per level and deep enough input overflows the
        # C stack (a segfault, not a RecursionError) — one hostile message must not kill the server
        raise ProtocolError(PARSE_ERROR, f"parse error: JSON nested deeper than {MAX_NESTING} levels")
    try:
        value = json.loads(text, parse_constant=_reject_constant)
    except (ValueError, RecursionError) as e:
        raise ProtocolError(PARSE_ERROR, f"parse error: expected one JSON value, received invalid JSON ({e})") from e
    if _depth(value, MAX_NESTING) > MAX_NESTING:
        raise ProtocolError(PARSE_ERROR, f"parse error: JSON nested deeper than {MAX_NESTING} levels")
    return value


def _valid_id(value: Any) -> bool:
    return isinstance(value, str) or (isinstance(value, int) and not isinstance(value, bool))


def parse_message(raw: bytes | str) -> Message:
    """Decode and validate one JSON-RPC message; raises ProtocolError with the code to answer."""
    return validate_message(decode(raw))


def validate_message(value: Any) -> Message:
    """Validate a decoded JSON value as one MCP JSON-RPC message (request, notification or response)."""
    if isinstance(value, list):
        raise ProtocolError(
            INVALID_REQUEST, "invalid request: expected one JSON-RPC message object, received a batch (JSON array)"
        )
    if not isinstance(value, dict):
        raise ProtocolError(
            INVALID_REQUEST, f"invalid request: expected a JSON-RPC message object, received a JSON {_kind(value)}"
        )
    has_id = "id" in value
    raw_id = value.get("id")
    request_id = raw_id if _valid_id(raw_id) else None
    if value.get("jsonrpc") != JSONRPC_VERSION:
        raise ProtocolError(
            INVALID_REQUEST,
            f'invalid request: expected "jsonrpc": "2.0", received {json.dumps(value.get("jsonrpc"))[:40]}',
            request_id,
        )
    if has_id and not _valid_id(raw_id):
        raise ProtocolError(
            INVALID_REQUEST, f"invalid request: expected the id to be a string or an integer, received {raw_id!r:.40}"
        )
    if "method" not in value:
        if has_id and ("result" in value) != ("error" in value):
            return Response(raw_id, value.get("result"), value.get("error"))
        raise ProtocolError(
            INVALID_REQUEST,
            'invalid request: expected a "method" (request or notification) or one of "result"/"error" with an "id"',
            request_id,
        )
    method = value["method"]
    if not isinstance(method, str) or not method:
        raise ProtocolError(
            INVALID_REQUEST,
            f"invalid request: expected the method to be a non-empty string, received {method!r:.40}",
            request_id,
        )
    params = value.get("params", {})
    if params is None:
        params = {}
    if not isinstance(params, dict):
        if has_id:
            raise ProtocolError(
                INVALID_PARAMS,
                f"invalid params: expected params to be an object, received a JSON {_kind(params)}",
                request_id,
            )
        params = {}  # a malformed notification is ignored, never answered
    if has_id:
        return Request(raw_id, method, params)
    return Notification(method, params)


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def result_response(request_id: RequestId, result: Mapping[str, Any]) -> dict[str, Any]:
    """A JSON-RPC success response."""
    return {"jsonrpc": JSONRPC_VERSION, "id": request_id, "result": dict(result)}


def error_response(request_id: RequestId | None, code: int, message: str, data: Any = None) -> dict[str, Any]:
    """A JSON-RPC error response (id null when the request's id is unknown)."""
    error: dict[str, Any] = {"code": code, "message": message}
    if data is not None:
        error["data"] = data
    return {"jsonrpc": JSONRPC_VERSION, "id": request_id, "error": error}


def notification(method: str, params: Mapping[str, Any]) -> dict[str, Any]:
    """A JSON-RPC notification sent by the server."""
    return {"jsonrpc": JSONRPC_VERSION, "method": method, "params": dict(params)}


def json_safe(value: Any) -> Any:
    """A value JSON can carry: NaN/inf → None, tuples/sets → lists, paths/dates/enums → strings."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if value is None or isinstance(value, str | int | bool):
        return value
    if isinstance(value, Mapping):
        return {str(key): json_safe(item) for key, item in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [json_safe(item) for item in value]
    if isinstance(value, Enum):
        return json_safe(value.value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, PurePath):
        return str(value)
    return str(value)


def encode(message: Mapping[str, Any]) -> bytes:
    """Compact UTF-8 JSON on one line (JSON escapes every newline inside strings)."""
    try:
        text = json.dumps(message, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError):
        # a NaN or a non-JSON type somewhere in a tool's result: the slow path makes it JSON
        text = json.dumps(json_safe(message), separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    return text.encode("utf-8")
