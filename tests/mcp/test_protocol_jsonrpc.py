"""JSON-RPC parsing: every malformed message gets the right error code, every valid one the right type."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mcp.protocol.jsonrpc import (
    INVALID_PARAMS,
    INVALID_REQUEST,
    MAX_NESTING,
    PARSE_ERROR,
    Notification,
    ProtocolError,
    Request,
    Response,
    encode,
    json_safe,
    parse_message,
)

BAD_MESSAGES = [
    # (raw text, expected code, expected id, words the message must contain)
    (b"{bad json", PARSE_ERROR, None, "invalid JSON"),
    (b"", PARSE_ERROR, None, "empty"),
    (b"\xff\xfe{}", PARSE_ERROR, None, "UTF-8"),
    (b'{"jsonrpc":"2.0","id":1,"method":"ping","params":{"x":NaN}}', PARSE_ERROR, None, "NaN"),
    (b'[{"jsonrpc":"2.0","id":1,"method":"ping"}]', INVALID_REQUEST, None, "batch"),
    (b"[]", INVALID_REQUEST, None, "batch"),
    (b'"ping"', INVALID_REQUEST, None, "string"),
    (b"42", INVALID_REQUEST, None, "number"),
    (b'{"jsonrpc":"1.0","id":7,"method":"ping"}', INVALID_REQUEST, 7, '"jsonrpc": "2.0"'),
    (b'{"id":7,"method":"ping"}', INVALID_REQUEST, 7, '"jsonrpc": "2.0"'),
    (b'{"jsonrpc":"2.0","id":null,"method":"ping"}', INVALID_REQUEST, None, "string or an integer"),
    (b'{"jsonrpc":"2.0","id":true,"method":"ping"}', INVALID_REQUEST, None, "string or an integer"),
    (b'{"jsonrpc":"2.0","id":1.5,"method":"ping"}', INVALID_REQUEST, None, "string or an integer"),
    (b'{"jsonrpc":"2.0","id":{"a":1},"method":"ping"}', INVALID_REQUEST, None, "string or an integer"),
    (b'{"jsonrpc":"2.0","id":3}', INVALID_REQUEST, 3, '"method"'),
    (b'{"jsonrpc":"2.0","id":3,"method":""}', INVALID_REQUEST, 3, "non-empty string"),
    (b'{"jsonrpc":"2.0","id":3,"method":5}', INVALID_REQUEST, 3, "non-empty string"),
    (b'{"jsonrpc":"2.0","id":3,"method":"tools/list","params":[1]}', INVALID_PARAMS, 3, "object"),
    (b'{"jsonrpc":"2.0","id":3,"method":"tools/list","params":"x"}', INVALID_PARAMS, 3, "object"),
    (b'{"jsonrpc":"2.0","id":3,"result":{},"error":{}}', INVALID_REQUEST, 3, '"result"/"error"'),
]


@pytest.mark.parametrize(("raw", "code", "request_id", "words"), BAD_MESSAGES)
def test_bad_message_gets_the_right_error(raw: bytes, code: int, request_id: object, words: str) -> None:
    with pytest.raises(ProtocolError) as caught:
        parse_message(raw)
    assert caught.value.code == code
    assert caught.value.request_id == request_id
    assert words in caught.value.message
    response = caught.value.to_response()
    assert response["jsonrpc"] == "2.0"
    assert response["id"] == request_id
    assert response["error"]["code"] == code


def test_nesting_beyond_the_limit_is_a_parse_error() -> None:
    deep = "[" * (MAX_NESTING + 5) + "]" * (MAX_NESTING + 5)
    with pytest.raises(ProtocolError) as caught:
        parse_message('{"jsonrpc":"2.0","id":1,"method":"ping","params":{"x":' + deep + "}}")
    assert caught.value.code == PARSE_ERROR


def test_absurd_nesting_does_not_crash_the_parser() -> None:
    with pytest.raises(ProtocolError) as caught:
        parse_message("[" * 200_000)
    assert caught.value.code == PARSE_ERROR


@pytest.mark.parametrize("request_id", [0, -1, "0", "abc", 2**53])
def test_request_ids_that_are_strings_or_integers_including_zero(request_id: object) -> None:
    message = parse_message(json.dumps({"jsonrpc": "2.0", "id": request_id, "method": "ping"}))
    assert message == Request(request_id, "ping", {})  # type: ignore[arg-type]


def test_a_message_without_id_is_a_notification() -> None:
    message = parse_message('{"jsonrpc":"2.0","method":"notifications/initialized"}')
    assert message == Notification("notifications/initialized", {})


def test_a_malformed_notification_is_kept_as_a_notification_without_params() -> None:
    # a notification is never answered, so bad params cannot be reported: they are dropped
    message = parse_message('{"jsonrpc":"2.0","method":"notifications/cancelled","params":[1]}')
    assert message == Notification("notifications/cancelled", {})


def test_null_params_mean_no_params() -> None:
    assert parse_message('{"jsonrpc":"2.0","id":1,"method":"ping","params":null}') == Request(1, "ping", {})


@pytest.mark.parametrize(
    "raw",
    ['{"jsonrpc":"2.0","id":1,"result":{}}', '{"jsonrpc":"2.0","id":"a","error":{"code":1,"message":"x"}}'],
)
def test_client_responses_are_recognised(raw: str) -> None:
    assert isinstance(parse_message(raw), Response)


def test_encode_is_one_line_even_with_newlines_in_strings() -> None:
    line = encode({"jsonrpc": "2.0", "id": 1, "result": {"text": "a\nb\r\nc\u2028"}})
    assert b"\n" not in line
    assert json.loads(line)["result"]["text"] == "a\nb\r\nc\u2028"


def test_encode_turns_non_json_values_into_json() -> None:
    line = encode({"value": float("nan"), "inf": float("inf"), "items": (1, 2), "other": {1, 2} - {2}})
    assert json.loads(line) == {"value": None, "inf": None, "items": [1, 2], "other": [1]}


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.floats() | st.integers() | st.text(),
    lambda children: st.lists(children) | st.tuples(children) | st.dictionaries(st.text(), children),
    max_leaves=20,
)


@given(JSON_VALUES)
def test_json_safe_output_is_always_strict_json_on_one_line(value: object) -> None:
    safe = json_safe(value)
    json.dumps(safe, allow_nan=False)  # raises if a NaN or a tuple survived
    line = encode({"v": value})
    assert b"\n" not in line
    assert json.loads(line)["v"] == safe
