"""get_positions, get_recent_trades, get_pnl through a real MCP client, over a real ledger.

Also the schema generator's TypedDict support: a tool returning a TypedDict publishes it as outputSchema.
"""

from __future__ import annotations

from pathlib import Path
from typing import NotRequired, TypedDict

import pytest

from mcp.monitoring.metrics import MonitoringMetrics
from mcp.protocol.dispatcher import Dispatcher
from mcp.protocol.schema import ValidationFailure, schema_for, validate
from mcp.protocol.tool_registry import ToolRegistry
from mcp.tools.catalog import ToolSource, build_tool_registry
from mcp.tools.trading_tools import TradingTools
from mcp.trading.source import MAX_TRADES, TradingSource
from mcp.trading.view import Limits
from tests.mcp.mcp_protocol_support import Client
from tests.trading_support import RAIN_TITLE, WALLET_A, WALLET_B, build_ledger, write_snapshot


class Inner(TypedDict):
    """An inner object."""

    size: float | None


class Outer(TypedDict):
    status: str
    items: list[Inner]
    note: NotRequired[str]


def test_a_typed_dict_becomes_an_object_schema_with_its_keys() -> None:
    schema = schema_for(Outer, "test")
    assert schema["type"] == "object" and schema["additionalProperties"] is False
    assert schema["required"] == ["status", "items"]
    assert schema["properties"]["items"]["items"] == {
        "type": "object",
        "properties": {"size": {"type": ["number", "null"]}},
        "additionalProperties": False,
        "required": ["size"],
        "description": "An inner object.",
    }
    assert validate({"status": "ok", "items": [{"size": 1}]}, schema, "x") == {"status": "ok", "items": [{"size": 1.0}]}
    with pytest.raises(ValidationFailure, match=r"missing \['items'\], unknown \['extra'\]"):
        validate({"status": "ok", "extra": 1}, schema, "x")


def test_a_tool_returning_a_typed_dict_publishes_it() -> None:
    async def tool() -> Outer:
        """A typed tool."""
        return {"status": "ok", "items": []}

    registry = ToolRegistry()
    registry.register(tool, server="s", read_only=True)
    spec = registry.get("tool")
    assert spec is not None and spec.output_schema == schema_for(Outer, "tool")


@pytest.fixture
async def client(tmp_path: Path) -> Client:
    build_ledger(tmp_path)
    write_snapshot(tmp_path)
    tools = TradingTools(TradingSource(tmp_path, Limits(100.0, 200.0, 800.0)))
    registry = build_tool_registry({"monitoring": ToolSource(tools.tools())})
    mcp_client = Client(Dispatcher(registry, metrics=MonitoringMetrics()))
    await mcp_client.initialize()
    return mcp_client


async def test_the_tools_are_listed_read_only_with_typed_output(client: Client) -> None:
    tools = {tool["name"]: tool for tool in (await client.request("tools/list"))["result"]["tools"]}
    assert set(tools) == {"get_positions", "get_recent_trades", "get_pnl"}
    for tool in tools.values():
        assert tool["annotations"]["readOnlyHint"] is True
        # the tool's own result, or the protocol's {"status": "error", "error": ...} (mcp.protocol.results)
        shapes = tool["outputSchema"]["anyOf"]
        assert all("status" in shape["required"] for shape in shapes)
        assert shapes[-1]["properties"]["status"] == {"enum": ["error"], "type": "string"}
    positions_schema = tools["get_positions"]["outputSchema"]["anyOf"][0]["properties"]["positions"]["items"]
    assert {"market_title", "unrealized_pnl", "exposure_limit"} <= set(positions_schema["properties"])
    assert tools["get_recent_trades"]["inputSchema"]["properties"]["limit"]["default"] == 10


async def test_the_tools_answer_masked_structured_figures(client: Client) -> None:
    positions = await client.call("get_positions", {})
    assert positions["isError"] is False
    content = positions["structuredContent"]
    assert content["status"] == "ok" and content["positions"][0]["market_title"] == RAIN_TITLE
    trades = await client.call("get_recent_trades", {"limit": 3})
    assert [t["decision"] for t in trades["structuredContent"]["trades"]] == ["denied", "copied", "copied"]
    text = trades["content"][0]["text"]
    assert WALLET_A not in text and WALLET_B not in text and "…a1a1a1" in text
    pnl = (await client.call("get_pnl", {}))["structuredContent"]
    assert pnl["trading_mode"] == "paper" and pnl["pnl"]["realized_pnl"] == 0.5


@pytest.mark.parametrize("limit", [0, MAX_TRADES + 1])
async def test_an_out_of_range_limit_is_an_error_result(client: Client, limit: int) -> None:
    result = await client.call("get_recent_trades", {"limit": limit})
    assert result["isError"] is True
    assert result["structuredContent"]["message"] == f"expected limit between 1 and {MAX_TRADES}, received {limit}"


async def test_a_non_integer_limit_is_refused_by_the_schema(client: Client) -> None:
    result = await client.call("get_recent_trades", {"limit": "ten"})
    assert result["isError"] is True and "expected integer" in result["content"][0]["text"]
