"""A client (MCP session) may run only so many calls of a CPU-heavy tool at once: one more is refused at once
with an isError result saying to retry, never queued; other clients are not affected. Driven through the real
dispatcher, first with a toy tool that blocks until cancelled, then with the real search_code."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from mcp.codebase_search import CodebaseSearchServer
from mcp.monitoring.metrics import MonitoringMetrics
from mcp.protocol.dispatcher import Dispatcher
from mcp.protocol.toolcall import PerClientLimit, ToolCaller
from mcp.tools.catalog import ToolSource, build_tool_registry
from mcp.tools.runtime import tool_limits
from tests.mcp.mcp_protocol_support import Client, ToyTools, make_dispatcher
from tests.mcp.test_protocol_tools import PROJECT, make_settings

LIMIT = PerClientLimit(2, "TEST_LIMIT_SETTING")


async def until(condition: Any) -> None:
    """Let the loop run until `condition()` holds (bounded: no wall-clock wait)."""
    for _ in range(1000):
        if condition():
            return
        await asyncio.sleep(0)
    raise AssertionError("condition never held")


async def test_a_call_beyond_the_clients_limit_is_refused_with_retry_and_others_go_on(tmp_path: Path) -> None:
    toys = ToyTools(tmp_path)
    dispatcher, metrics = make_dispatcher(toys, limits={"wait_forever": LIMIT})
    alice, bob = Client(dispatcher), Client(dispatcher)
    await alice.initialize()
    await bob.initialize()
    running = [asyncio.create_task(alice.call("wait_forever", {})) for _ in range(2)]
    await until(lambda: toys.calls.get("wait_forever") == 2)

    refused = await alice.call("wait_forever", {})
    assert refused["isError"] is True
    text = refused["content"][0]["text"]
    assert "already runs 2 wait_forever call(s)" in text and "TEST_LIMIT_SETTING=2" in text and "retry" in text
    assert toys.calls["wait_forever"] == 2  # the refused call never ran
    labels = {"server": "toys", "tool": "wait_forever", "error_type": "busy"}
    assert metrics.registry.get_sample_value("mcp_tool_errors_total", labels) == 1

    other = asyncio.create_task(bob.call("wait_forever", {}))  # another client: its own count
    await until(lambda: toys.calls["wait_forever"] == 3)

    running[0].cancel()  # one of alice's calls ends: she may start one again
    await asyncio.gather(running[0], return_exceptions=True)
    again = asyncio.create_task(alice.call("wait_forever", {}))
    await until(lambda: toys.calls["wait_forever"] == 4)
    for task in (running[1], other, again):
        task.cancel()
    await asyncio.gather(running[1], other, again, return_exceptions=True)
    # every slot was given back: two new calls of alice both start
    fresh = [asyncio.create_task(alice.call("wait_forever", {})) for _ in range(2)]
    await until(lambda: toys.calls["wait_forever"] == 6)
    for task in fresh:
        task.cancel()
    await asyncio.gather(*fresh, return_exceptions=True)


async def test_other_tools_and_in_process_calls_are_not_limited(tmp_path: Path) -> None:
    toys = ToyTools(tmp_path)
    dispatcher, _ = make_dispatcher(toys, limits={"echo": PerClientLimit(1, "X")})
    client = Client(dispatcher)
    await client.initialize()
    results = await asyncio.gather(*(client.call("pick", {}) for _ in range(5)))
    assert not any(result["isError"] for result in results)
    spec = dispatcher.registry.get("echo")
    assert spec is not None
    direct = await asyncio.gather(*(dispatcher.call(spec, {"text": "x"}) for _ in range(3)))  # no client: no limit
    assert not any(result["isError"] for result in direct)


def test_a_limit_below_one_is_refused() -> None:
    with pytest.raises(ValueError, match="per-client limit >= 1 for tool 'search_code'"):
        ToolCaller(limits={"search_code": PerClientLimit(0, "X")})


async def test_parallel_search_code_calls_of_one_client_beyond_the_setting_get_a_retry_error(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, mcp_search_max_concurrent_per_client=1)
    assert tool_limits(settings)["search_code"] == PerClientLimit(1, "MCP_SEARCH_MAX_CONCURRENT_PER_CLIENT")
    search = CodebaseSearchServer(settings, root=PROJECT, cache_path=tmp_path / "scan.json")
    registry = build_tool_registry({"codebase_search": ToolSource(search.tools(), search.root)})
    dispatcher = Dispatcher(registry, metrics=MonitoringMetrics(), limits=tool_limits(settings))
    one, two = Client(dispatcher), Client(dispatcher)
    await one.initialize()
    await two.initialize()
    arguments = {"pattern": r"max_\w+", "regex": True}
    # the first call holds its slot while its search runs in a worker thread; the second arrives meanwhile
    same_client = await asyncio.gather(one.call("search_code", arguments), one.call("search_code", arguments))
    assert [result["isError"] for result in same_client] == [False, True]
    assert "MCP_SEARCH_MAX_CONCURRENT_PER_CLIENT=1" in same_client[1]["content"][0]["text"]
    two_clients = await asyncio.gather(one.call("search_code", arguments), two.call("search_code", arguments))
    assert [result["isError"] for result in two_clients] == [False, False]
