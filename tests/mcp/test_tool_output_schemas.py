"""Every registered MCP tool's outputSchema tells the truth (issue 12, item 7).

Each tool of the four servers (codebase search, testing, monitoring, trading) is called through a real MCP
client over real sources: a fixture project scanned and tested for real (a pytest subprocess), a real
monitoring server's health round, a real risk integrator, a real ledger. Every answer's structuredContent,
its normal results and its failures alike (the tool's own refusals and the protocol's errors), is validated
against the schema the tool published in tools/list. A schema that lies about a key or a type fails here.
Also the schema generator's additions: Any, Enum, unions as anyOf.
"""

from __future__ import annotations

import asyncio
import json
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal, NotRequired, TypedDict

import pytest

from config.settings import Settings
from core.integrations.mcp_risk_integration import MCPRiskIntegrator
from mcp.codebase_search import CodebaseSearchServer
from mcp.monitoring_server import MonitoringServer
from mcp.protocol.dispatcher import Dispatcher
from mcp.protocol.schema import SchemaError, ValidationFailure, schema_for, validate
from mcp.protocol.tool_registry import ToolDefinitionError, ToolRegistry
from mcp.testing_server import TestingServer
from mcp.tools.catalog import POLICIES, ToolSource, build_tool_registry
from mcp.tools.monitoring_tools import MonitoringTools
from mcp.tools.trading_tools import TradingTools
from mcp.trading.source import TradingSource
from mcp.trading.view import Limits
from tests.mcp.mcp_protocol_support import Client
from tests.trading_support import build_ledger, write_snapshot

PROJECT = Path(__file__).resolve().parents[1] / "fixtures" / "projects" / "mcp_project"

# (tool, arguments): the normal answers and the tools' own refusals, in an order that reaches each state
CALLS: list[tuple[str, dict[str, Any]]] = [
    ("get_coverage", {}),  # not_run: nothing recorded yet
    ("coverage_history", {"n": 3}),  # empty history
    ("search_code", {"pattern": "max_daily_loss"}),
    ("search_code", {"pattern": "max_daily_loss", "glob": "limits_kit/*.py", "regex": True}),
    ("search_code", {"pattern": "([", "regex": True}),  # the tool's own error, with the pattern
    ("find_risk_parameter_usages", {"name": "max_daily_loss"}),
    ("find_risk_parameter_usages", {"name": "not_configured_name"}),
    ("find_risk_parameter_usages", {"name": "no spaces allowed"}),
    ("risk_parameter_report", {}),
    ("run_tests", {"force": True}),  # a real run of the fixture project's tests
    ("run_tests", {}),  # unchanged since that run
    ("run_tests", {"paths": ["tests/missing_test_file.py"], "force": True}),
    ("get_coverage", {}),
    ("coverage_history", {"n": 5}),
    ("coverage_history", {"n": 0}),
    ("get_health", {}),
    ("get_health", {"component": "sidecar"}),
    ("get_health", {"component": "no_such_component"}),
    ("get_risk_state", {}),
    ("get_metrics_summary", {}),
    ("get_metrics_summary", {"prefix": "mcp_tool"}),
    ("get_metrics_summary", {"prefix": "not a prefix!"}),
    ("get_gate_state", {}),
    ("get_performance_report", {}),
    ("get_positions", {}),
    ("get_recent_trades", {"limit": 3}),
    ("get_recent_trades", {"limit": 0}),
    ("get_pnl", {}),
]


def make_settings(tmp_path: Path) -> Settings:
    return Settings(  # type: ignore[call-arg]
        _env_file=None,
        state_dir=tmp_path / "state",
        mcp_search_root=PROJECT,
        mcp_testing_project_root=PROJECT,
        mcp_testing_source_packages=["limits_kit"],
        mcp_market_hours_enabled=False,
    )


async def refusing_gate(kind: str) -> tuple[bool, str]:
    return False, f"{kind} deferred: market hours"


async def build(tmp_path: Path, *, gate: Any = None, project: Path = PROJECT, snapshot: bool = True) -> Client:
    """A client over every server's tools, as the sidecar registers them (mcp.tools.catalog)."""
    settings = make_settings(tmp_path)
    state = tmp_path / "state"
    # files and SQLite off the event loop, as the product does
    await asyncio.to_thread(build_ledger, state)
    if snapshot:
        await asyncio.to_thread(write_snapshot, state)  # the bot has published its risk snapshot
    search = CodebaseSearchServer(settings, root=PROJECT, cache_path=tmp_path / "scan.json", gate=gate)
    testing = TestingServer(
        settings, project_root=project, source_packages=["limits_kit"], history_path=tmp_path / "h.sqlite3", gate=gate
    )
    monitoring = MonitoringServer(settings, serve_metrics=False, serve_dashboard=False)
    await monitoring.check_once()  # a real health round: every component with its figures
    integrator = await asyncio.to_thread(MCPRiskIntegrator, settings, state_file=tmp_path / "mcp_breaker.json")
    tools = MonitoringTools(
        settings,
        health=monitoring.health_report,
        registry=monitoring.metrics.registry,
        integrator=integrator,
        report=monitoring.performance_report,
    )
    trading = TradingTools(TradingSource(state, Limits(100.0, 200.0, 800.0)))
    registry = build_tool_registry(
        {
            "codebase_search": ToolSource(search.tools(), search.root),
            "testing": ToolSource(testing.tools(), testing.project_root),
            "monitoring": ToolSource([*tools.tools(), *trading.tools()]),
        }
    )
    client = Client(Dispatcher(registry, metrics=monitoring.metrics))
    await client.initialize()
    return client


async def schemas(client: Client) -> dict[str, dict[str, Any]]:
    listed = (await client.request("tools/list"))["result"]["tools"]
    return {tool["name"]: tool["outputSchema"] for tool in listed}


async def call_and_check(client: Client, published: dict[str, dict[str, Any]], name: str, args: dict[str, Any]) -> Any:
    """Call one tool; its structuredContent must match its published schema (and its text the same JSON)."""
    result = await client.call(name, args)
    structured = result["structuredContent"]
    try:
        validate(structured, published[name], name)
    except ValidationFailure as e:
        pytest.fail(f"{name}({args}) answered outside its outputSchema: {e}\n{json.dumps(structured)[:2000]}")
    assert result["isError"] is (structured["status"] == "error"), (name, args)
    return structured


async def test_every_tool_answers_what_its_output_schema_says(tmp_path: Path) -> None:
    client = await build(tmp_path)
    published = await schemas(client)
    assert set(published) == set(POLICIES)  # every tool of the catalog is registered, and only those
    statuses: dict[str, set[str]] = {name: set() for name in published}
    for name, args in CALLS:
        statuses[name].add((await call_and_check(client, published, name, args))["status"])
    # the protocol layer's refusal (an argument the tool does not take) is within every schema too
    for name in published:
        statuses[name].add((await call_and_check(client, published, name, {"unexpected_argument": 1}))["status"])
    # the states the calls above were meant to reach, so a schema is checked against each of them
    assert {"not_run", "passed", "unchanged", "error"} <= statuses["run_tests"] | statuses["get_coverage"]
    assert statuses["get_risk_state"] & {"ok", "stale"}
    assert all("error" in seen and len(seen) >= 2 for seen in statuses.values()), statuses


async def test_deferred_missing_project_and_no_snapshot_answers_match_their_schemas(tmp_path: Path) -> None:
    client = await build(tmp_path, gate=refusing_gate, snapshot=False)
    published = await schemas(client)
    assert (await call_and_check(client, published, "get_risk_state", {}))["status"] == "no_snapshot"
    for name, args in (
        ("risk_parameter_report", {}),  # no scan yet: the empty report
        ("find_risk_parameter_usages", {"name": "max_daily_loss"}),  # configured: no report yet
        ("find_risk_parameter_usages", {"name": "not_configured_name"}),  # one-off scan refused
        ("run_tests", {"force": True}),
    ):
        assert (await call_and_check(client, published, name, args))["status"] == "deferred"
    missing = await build(tmp_path / "other", project=tmp_path / "no_such_project")
    answer = await call_and_check(missing, await schemas(missing), "run_tests", {"force": True})
    assert answer["status"] == "missing_project"


async def test_a_schema_that_lies_is_caught(tmp_path: Path) -> None:
    client = await build(tmp_path)
    published = await schemas(client)
    pnl = (await client.call("get_pnl", {}))["structuredContent"]
    validate(pnl, published["get_pnl"], "get_pnl")
    for broken in (
        {key: value for key, value in pnl.items() if key != "pnl"},  # a promised key missing
        {**pnl, "pnl": {**pnl["pnl"], "realized_pnl": "0.5"}},  # a number sent as text
        {**pnl, "extra": 1},  # a key the schema does not name
        {**pnl, "status": "maybe"},  # a status outside the published ones
    ):
        with pytest.raises(ValidationFailure, match="get_pnl"):
            validate(broken, published["get_pnl"], "get_pnl")


def test_a_listed_tool_with_an_untyped_result_is_refused() -> None:
    async def get_pnl() -> dict[str, Any]:
        """Untyped."""
        return {"status": "ok"}

    with pytest.raises(ToolDefinitionError, match="'get_pnl' of server 'monitoring': expected a TypedDict"):
        build_tool_registry({"monitoring": ToolSource([get_pnl])})


# --- the schema generator's additions --------------------------------------------------------------------


class Colour(StrEnum):
    RED = "red"
    BLUE = "blue"


class Done(TypedDict):
    """Finished."""

    status: Literal["ok"]
    figures: dict[str, Any]
    colour: Colour | None


class Failed(TypedDict):
    status: Literal["error"]
    error: str
    hint: NotRequired[str]


def test_results_may_be_unions_any_and_enums_arguments_only_enums() -> None:
    assert schema_for(Any, "x", result=True) == {}
    assert schema_for(Colour, "x") == {"enum": ["red", "blue"], "type": "string"}
    assert schema_for(Colour | None, "x") == {"enum": ["red", "blue", None], "type": ["string", "null"]}
    assert schema_for(int | str, "x", result=True) == {"anyOf": [{"type": "integer"}, {"type": "string"}]}
    assert schema_for(int | str | None, "x", result=True)["anyOf"][-1] == {"type": "null"}
    # an argument typed Any or A | B would reach the tool unvalidated: refused
    with pytest.raises(SchemaError, match="unsupported type hint Any for an argument"):
        schema_for(dict[str, Any], "x")
    with pytest.raises(SchemaError, match=r"only `X \| None` unions are supported for arguments"):
        schema_for(Done | Failed, "x")
    union = schema_for(Done | Failed, "x", result=True)
    assert [option["properties"]["status"]["enum"] for option in union["anyOf"]] == [["ok"], ["error"]]
    assert union["anyOf"][1]["required"] == ["status", "error"]
    assert validate({"status": "ok", "figures": {"a": [1, {"b": None}]}, "colour": "red"}, union, "x")
    assert validate({"status": "error", "error": "boom"}, union, "x") == {"status": "error", "error": "boom"}
    with pytest.raises(ValidationFailure, match=r"x: matches none of 2 allowed shapes: .*expected one of 'red'"):
        validate({"status": "ok", "figures": {}, "colour": "green"}, union, "x")
    with pytest.raises(ValidationFailure, match="missing \\['error'\\]"):
        validate({"status": "error", "hint": "retry"}, union, "x")


def test_a_tool_with_several_result_shapes_publishes_an_object_schema_of_any_of_them() -> None:
    async def tool() -> Done | Failed:
        """A tool that answers its result or an error."""
        return {"status": "error", "error": "boom"}

    registry = ToolRegistry()
    registry.register(tool, server="s")
    spec = registry.get("tool")
    assert spec is not None and spec.output_schema is not None
    assert spec.output_schema["type"] == "object"  # MCP wants an object schema at the top
    assert len(spec.output_schema["anyOf"]) == 2
    with pytest.raises(ValidationFailure, match="expected object, received array"):
        validate([], spec.output_schema, "tool")
