"""The method table and the tool-call pipeline, driven in-process the way a transport drives them."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from mcp.protocol.cache import TTLCache
from mcp.protocol.dispatcher import decode_cursor, encode_cursor
from mcp.protocol.jsonrpc import INVALID_PARAMS, INVALID_REQUEST, METHOD_NOT_FOUND, SERVER_BUSY, ProtocolError
from mcp.protocol.session import LATEST_VERSION, SUPPORTED_VERSIONS, Phase, Session
from tests.mcp.mcp_protocol_support import CANARY_SECRET, Client, FakeClock, ToyTools, make_dispatcher


@pytest.fixture
def toys(tmp_path: Path) -> ToyTools:
    (tmp_path / "notes.txt").write_text("hello\n")
    return ToyTools(tmp_path)


@pytest.fixture
def client(toys: ToyTools) -> Client:
    dispatcher, _ = make_dispatcher(toys)
    return Client(dispatcher)


def sample(registry: CollectorRegistry, name: str, labels: dict[str, str]) -> float:
    value = registry.get_sample_value(name, labels)
    return 0.0 if value is None else value


# --- lifecycle and version negotiation -------------------------------------------------------------------


@pytest.mark.parametrize("version", SUPPORTED_VERSIONS)
async def test_a_supported_version_is_echoed(client: Client, version: str) -> None:
    result = await client.initialize(version)
    assert result["protocolVersion"] == version
    assert result["capabilities"] == {"tools": {"listChanged": False}}
    assert result["serverInfo"]["name"] == "polymarket-mcp"
    assert client.session.phase is Phase.READY


@pytest.mark.parametrize("version", ["1999-01-01", "2026-07-28", "latest"])
async def test_an_unknown_version_gets_our_latest(client: Client, version: str) -> None:
    assert (await client.initialize(version))["protocolVersion"] == LATEST_VERSION


@pytest.mark.parametrize(
    "params", [{}, {"protocolVersion": 20250618}, {"protocolVersion": "2025-06-18", "capabilities": []}]
)
async def test_malformed_initialize_params_are_invalid_params(client: Client, params: dict[str, Any]) -> None:
    response = await client.request("initialize", params)
    assert response["error"]["code"] == INVALID_PARAMS
    assert client.session.phase is Phase.NEW


async def test_initialize_twice_is_an_invalid_request(client: Client) -> None:
    await client.initialize()
    again = await client.request("initialize", {"protocolVersion": LATEST_VERSION})
    assert again["error"]["code"] == INVALID_REQUEST


async def test_requests_before_initialize_are_refused_but_ping_works(client: Client) -> None:
    assert (await client.request("ping"))["result"] == {}
    refused = await client.request("tools/list")
    assert refused["error"]["code"] == INVALID_REQUEST
    assert "send initialize first" in refused["error"]["message"]


@pytest.mark.parametrize("method", ["server/discover", "resources/list", "prompts/list", "logging/setLevel", "x" * 500])
async def test_unknown_methods_are_method_not_found_before_and_after_initialize(client: Client, method: str) -> None:
    before = await client.request(method)
    await client.initialize()
    after = await client.request(method)
    for response in (before, after):
        assert response["error"]["code"] == METHOD_NOT_FOUND
        assert len(response["error"]["message"]) < 300


async def test_id_zero_is_a_valid_id(client: Client) -> None:
    response = await client.request("ping", request_id=0)
    assert response == {"jsonrpc": "2.0", "id": 0, "result": {}}
    string_zero = await client.request("ping", request_id="0")
    assert string_zero["id"] == "0"


@pytest.mark.parametrize(
    "method",
    ["notifications/initialized", "notifications/cancelled", "notifications/progress", "notifications/whatever"],
)
async def test_notifications_are_never_answered(client: Client, method: str) -> None:
    assert await client.notify(method, {"requestId": 99}) is None
    await client.initialize()
    assert await client.notify(method, {"requestId": "nope", "reason": 5}) is None


async def test_a_request_method_without_id_is_an_invalid_request(client: Client) -> None:
    response = await client.notify("tools/list")
    assert response is not None
    assert response["id"] is None
    assert response["error"]["code"] == INVALID_REQUEST
    assert "needs an id" in response["error"]["message"]


async def test_client_responses_are_ignored(client: Client) -> None:
    assert await client.raw({"jsonrpc": "2.0", "id": 5, "result": {}}) is None


# --- tools/list -------------------------------------------------------------------------------------------


async def test_tools_list_pages_through_every_tool(toys: ToyTools) -> None:
    dispatcher, _ = make_dispatcher(toys, page_size=3)
    client = Client(dispatcher)
    await client.initialize()
    names: list[str] = []
    cursor = None
    pages = 0
    while True:
        result = (await client.request("tools/list", {} if cursor is None else {"cursor": cursor}))["result"]
        pages += 1
        assert len(result["tools"]) <= 3
        names += [tool["name"] for tool in result["tools"]]
        cursor = result.get("nextCursor")
        if cursor is None:
            break
    assert pages == 4
    assert names == dispatcher.registry.names()


@pytest.mark.parametrize("cursor", ["garbage", "dG9vbHM6OTk5", encode_cursor(0), 42, "", "x" * 100])
async def test_an_invalid_cursor_is_invalid_params(client: Client, cursor: Any) -> None:
    await client.initialize()
    response = await client.request("tools/list", {"cursor": cursor})
    assert response["error"]["code"] == INVALID_PARAMS


def test_cursors_round_trip_and_reject_out_of_range_offsets() -> None:
    assert decode_cursor(encode_cursor(3), total=10) == 3
    with pytest.raises(ProtocolError):
        decode_cursor(encode_cursor(10), total=10)


async def test_tool_definitions_follow_the_negotiated_version(client: Client) -> None:
    await client.initialize("2025-11-25")
    new = {tool["name"]: tool for tool in (await client.request("tools/list"))["result"]["tools"]}
    assert new["echo"]["title"] == "Echo"
    assert new["echo"]["outputSchema"] == {"type": "object"}
    assert new["echo"]["annotations"]["readOnlyHint"] is True
    assert new["reset"]["annotations"]["readOnlyHint"] is False
    assert new["echo"]["inputSchema"]["additionalProperties"] is False
    assert "progress" not in new["count"]["inputSchema"]["properties"]

    old = Client(client.dispatcher)
    await old.initialize("2024-11-05")
    tools = (await old.request("tools/list"))["result"]["tools"]
    assert all(set(tool) == {"name", "description", "inputSchema"} for tool in tools)

    middle = Client(client.dispatcher)
    await middle.initialize("2025-03-26")
    echo = next(tool for tool in (await middle.request("tools/list"))["result"]["tools"] if tool["name"] == "echo")
    assert set(echo) == {"name", "description", "inputSchema", "annotations"}


# --- tools/call -------------------------------------------------------------------------------------------


async def test_a_call_returns_text_and_structured_content(client: Client) -> None:
    await client.initialize()
    result = await client.call("echo", {"text": "hi", "times": 2})
    assert result["isError"] is False
    assert result["structuredContent"] == {"status": "ok", "text": "hi hi"}
    assert json.loads(result["content"][0]["text"]) == result["structuredContent"]


async def test_old_protocol_versions_get_text_only(client: Client) -> None:
    await client.initialize("2025-03-26")
    result = await client.call("echo", {"text": "hi"})
    assert "structuredContent" not in result
    assert json.loads(result["content"][0]["text"])["text"] == "hi"


async def test_an_unknown_tool_is_invalid_params(client: Client) -> None:
    await client.initialize()
    response = await client.request("tools/call", {"name": "nope", "arguments": {}})
    assert response["error"]["code"] == INVALID_PARAMS
    assert "unknown tool 'nope'" in response["error"]["message"]


@pytest.mark.parametrize(
    "params", [{}, {"name": 5}, {"name": "echo", "arguments": [1]}, {"name": "echo", "arguments": "x"}]
)
async def test_a_malformed_call_request_is_invalid_params(client: Client, params: dict[str, Any]) -> None:
    await client.initialize()
    assert (await client.request("tools/call", params))["error"]["code"] == INVALID_PARAMS


@pytest.mark.parametrize(
    "arguments",
    [{}, {"text": 5}, {"text": "x", "times": "2"}, {"text": "x", "nope": 1}, {"text": "x", "shout": "yes"}],
)
async def test_bad_arguments_are_a_tool_error_and_the_tool_never_runs(
    client: Client, toys: ToyTools, arguments: dict[str, Any]
) -> None:
    await client.initialize()
    result = await client.call("echo", arguments)
    assert result["isError"] is True
    assert result["content"][0]["text"].startswith("echo: invalid arguments:")
    assert result["structuredContent"]["status"] == "error"
    assert toys.calls.get("echo", 0) == 0


async def test_missing_arguments_mean_no_arguments(client: Client) -> None:
    await client.initialize()
    assert (await client.call("pick"))["structuredContent"] == {"status": "ok", "mode": "fast", "limit": None}
    assert (await client.call("pick", None))["isError"] is False


async def test_path_traversal_is_refused_before_the_tool_runs(client: Client, toys: ToyTools, tmp_path: Path) -> None:
    await client.initialize()
    assert (await client.call("read_file", {"path": "notes.txt"}))["structuredContent"]["text"] == "hello\n"
    for bad in ("../etc/passwd", "/etc/passwd", "notes.txt/../../x", "-rf"):
        result = await client.call("read_file", {"path": bad})
        assert result["isError"] is True, bad
        assert "read_file: argument 'path'" in result["content"][0]["text"]
    assert toys.calls["read_file"] == 1


async def test_a_failing_tool_is_an_error_result_and_the_server_keeps_serving(client: Client) -> None:
    await client.initialize()
    result = await client.call("explode")
    assert result["isError"] is True
    assert "RuntimeError" in result["content"][0]["text"]
    assert CANARY_SECRET not in json.dumps(result)
    assert (await client.request("ping"))["result"] == {}
    assert (await client.call("echo", {"text": "still here"}))["isError"] is False


async def test_a_result_with_status_error_is_flagged(client: Client) -> None:
    await client.initialize()
    result = await client.call("refuse")
    assert result["isError"] is True
    assert result["structuredContent"] == {"status": "error", "error": "nothing to do"}


async def test_sync_tools_run_and_nan_becomes_null(client: Client) -> None:
    await client.initialize()
    result = await client.call("total", {"values": [1, 2.5]})
    assert result["structuredContent"] == {"status": "ok", "total": 3.5, "nan": None}


async def test_literal_and_optional_arguments(client: Client) -> None:
    await client.initialize()
    assert (await client.call("pick", {"mode": "slow", "limit": 3}))["structuredContent"]["limit"] == 3
    assert (await client.call("pick", {"mode": "medium"}))["isError"] is True


# --- progress ---------------------------------------------------------------------------------------------


async def test_progress_is_sent_only_with_a_token_and_always_increases(client: Client) -> None:
    await client.initialize()
    await client.call("count", {"steps": 3})
    assert client.sent == []
    await client.call("count", {"steps": 3}, _meta={"progressToken": 0})
    progress = [message["params"] for message in client.sent]
    assert [p["progress"] for p in progress] == [0.0, 1.0, 2.0, 3.0]
    assert all(p["progressToken"] == 0 and p["total"] == 3.0 for p in progress)
    assert progress[2]["message"] == "step 2"
    assert all(message["method"] == "notifications/progress" and "id" not in message for message in client.sent)


async def test_progress_messages_are_left_out_for_2024_11_05(client: Client) -> None:
    await client.initialize("2024-11-05")
    await client.call("count", {"steps": 1}, _meta={"progressToken": "t"})
    assert client.sent and all("message" not in message["params"] for message in client.sent)


@pytest.mark.parametrize("token", [None, True, 1.5, {"a": 1}])
async def test_invalid_progress_tokens_are_ignored(client: Client, token: Any) -> None:
    await client.initialize()
    result = await client.call("count", {"steps": 1}, _meta={"progressToken": token})
    assert result["isError"] is False
    assert client.sent == []


# --- cancellation -----------------------------------------------------------------------------------------


async def test_a_cancelled_request_gets_no_response_and_the_tool_is_stopped(client: Client, toys: ToyTools) -> None:
    await client.initialize()
    call = asyncio.create_task(
        client.raw({"jsonrpc": "2.0", "id": "slow-1", "method": "tools/call", "params": {"name": "wait_forever"}})
    )
    await asyncio.wait_for(toys.started.wait(), 5)
    assert client.session.in_flight() == ["slow-1"]
    assert await client.notify("notifications/cancelled", {"requestId": "slow-1", "reason": "user gave up"}) is None
    assert await asyncio.wait_for(call, 5) is None
    assert toys.cancelled.is_set()
    assert client.session.in_flight() == []
    assert (await client.request("ping"))["result"] == {}


async def test_cancelling_unknown_or_finished_requests_is_ignored(client: Client) -> None:
    await client.initialize()
    await client.call("echo", {"text": "done"})
    assert await client.notify("notifications/cancelled", {"requestId": 1}) is None
    assert await client.notify("notifications/cancelled", {"requestId": {"weird": True}}) is None
    assert await client.notify("notifications/cancelled", {}) is None
    assert client.session.cancellations == 0


async def test_a_transport_cancellation_still_propagates(client: Client, toys: ToyTools) -> None:
    await client.initialize()
    call = asyncio.create_task(
        client.raw({"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": {"name": "wait_forever"}})
    )
    await asyncio.wait_for(toys.started.wait(), 5)
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call
    assert toys.cancelled.is_set()


async def test_a_reused_in_flight_id_is_refused(client: Client, toys: ToyTools) -> None:
    await client.initialize()
    first = asyncio.create_task(
        client.raw({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "wait_forever"}})
    )
    await asyncio.wait_for(toys.started.wait(), 5)
    second = await client.request("ping", request_id=1)
    assert second["error"]["code"] == INVALID_REQUEST
    client.session.cancel(1)
    assert await first is None


# --- metrics and cache ------------------------------------------------------------------------------------


async def test_calls_errors_and_durations_are_counted(toys: ToyTools) -> None:
    dispatcher, metrics = make_dispatcher(toys)
    client = Client(dispatcher)
    await client.initialize()
    await client.call("echo", {"text": "a"})
    await client.call("echo", {"text": 1})
    await client.call("explode")
    await client.call("refuse")
    registry = metrics.registry
    labels = {"server": "toys", "tool": "echo"}
    assert sample(registry, "mcp_tool_calls_total", labels) == 2
    assert sample(registry, "mcp_tool_duration_seconds_count", labels) == 2
    assert sample(registry, "mcp_tool_errors_total", {**labels, "error_type": "invalid_arguments"}) == 1
    assert (
        sample(registry, "mcp_tool_errors_total", {"server": "toys", "tool": "explode", "error_type": "RuntimeError"})
        == 1
    )
    assert (
        sample(registry, "mcp_tool_errors_total", {"server": "toys", "tool": "refuse", "error_type": "tool_error"}) == 1
    )
    await client.request("tools/call", {"name": "nope"})  # unknown tools never become label values
    assert "nope" not in metrics.exposition().decode()


async def test_read_only_results_are_cached_per_arguments_until_the_ttl(toys: ToyTools) -> None:
    clock = FakeClock()
    dispatcher, metrics = make_dispatcher(toys, cache=TTLCache(clock=clock))
    client = Client(dispatcher)
    await client.initialize()
    first = await client.call("snapshot")
    second = await client.call("snapshot")
    assert first == second
    assert toys.calls["snapshot"] == 1
    clock.advance(5.1)
    await client.call("snapshot")
    assert toys.calls["snapshot"] == 2
    assert sample(metrics.registry, "mcp_cache_requests_total", {"server": "toys"}) == 3
    assert sample(metrics.registry, "mcp_cache_hits_total", {"server": "toys"}) == 1
    assert sample(metrics.registry, "mcp_tool_calls_total", {"server": "toys", "tool": "snapshot"}) == 3


async def test_a_writing_tool_invalidates_its_servers_cache(toys: ToyTools) -> None:
    dispatcher, _ = make_dispatcher(toys)
    client = Client(dispatcher)
    await client.initialize()
    await client.call("snapshot")
    await client.call("snapshot")
    await client.call("reset")
    await client.call("snapshot")
    assert toys.calls["snapshot"] == 2


async def test_error_results_are_not_cached(toys: ToyTools) -> None:
    dispatcher, _ = make_dispatcher(toys)
    client = Client(dispatcher)
    await client.initialize()
    await client.call("snapshot", {"unexpected": 1})
    await client.call("snapshot", {"unexpected": 1})
    assert len(dispatcher.cache) == 0


async def test_too_many_requests_in_progress_are_refused_until_one_ends(toys: ToyTools) -> None:
    dispatcher, _ = make_dispatcher(toys)
    client = Client(dispatcher, Session(max_in_flight=2))
    await client.initialize()
    calls = [
        asyncio.create_task(
            client.raw({"jsonrpc": "2.0", "id": f"w{n}", "method": "tools/call", "params": {"name": "wait_forever"}})
        )
        for n in range(2)
    ]
    for _ in range(3):  # let both calls reach the session
        await asyncio.sleep(0)
    assert len(client.session.in_flight()) == 2
    busy = await client.request("ping")
    assert busy["error"]["code"] == SERVER_BUSY
    assert "limit 2" in busy["error"]["message"]
    client.session.cancel("w0")
    assert await calls[0] is None
    assert (await client.request("ping"))["result"] == {}
    client.session.cancel("w1")
    assert await calls[1] is None
