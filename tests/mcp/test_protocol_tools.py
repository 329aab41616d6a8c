"""The real servers' tools through the protocol: the catalog, the gate, path confinement, the monitoring
tools (read-only, masked, no secrets) and hostile inputs such as a pathological regex."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from config.settings import Settings
from core.integrations.mcp_risk_integration import MCPRiskIntegrator
from mcp.codebase_search import CodebaseSearchServer
from mcp.monitoring.metrics import MonitoringMetrics
from mcp.protocol.dispatcher import Dispatcher
from mcp.testing_server import TestingServer
from mcp.tools.catalog import POLICIES, ToolSource, build_tool_registry
from mcp.tools.monitoring_tools import MonitoringTools
from mcp.tools.runtime import make_scrubber
from tests.mcp.mcp_protocol_support import Client

PROJECT = Path(__file__).resolve().parents[1] / "fixtures" / "projects" / "mcp_project"
TOKEN_CANARY = "dash-token-canary-91c2e7"
WALLET = "0x" + "ab" * 19 + "c0ffee"  # 40 hex digits
EXPECTED_TOOLS = [
    "search_code",
    "find_risk_parameter_usages",
    "risk_parameter_report",
    "run_tests",
    "get_coverage",
    "coverage_history",
    "get_health",
    "get_risk_state",
    "get_metrics_summary",
    "get_gate_state",
    "get_performance_report",
]


def make_settings(tmp_path: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "state_dir": tmp_path / "state",
        "mcp_search_root": PROJECT,
        "mcp_testing_project_root": PROJECT,
        "mcp_testing_source_packages": ["limits_kit"],
        "mcp_market_hours_enabled": False,
        "dashboard_token": TOKEN_CANARY,
        "wallet_address": WALLET,
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


async def refusing_gate(kind: str) -> tuple[bool, str]:
    return False, f"{kind} deferred: market hours 09:00-16:00 UTC"


class StaticHealth:
    """A monitoring view with a fixed report (the real service is tested by the monitoring helper)."""

    def __init__(self, report: dict[str, Any]) -> None:
        self.report = report

    def health_report(self) -> dict[str, Any]:
        return self.report


HEALTH = {
    "status": "degraded",
    "generated_at": "2026-11-21T10:00:00+00:00",
    "components": {
        "main_bot": {"status": "healthy", "message": "snapshot fresh", "figures": {"pid": 1}},
        "sidecar": {"status": "degraded", "message": f"token {TOKEN_CANARY} leaked?", "figures": {}},
    },
}


class FixedIntegrator:
    """The integrator's two read methods, as a fake (the real one is used in test_gate_state_of_the_real_integrator)."""

    def get_statistics(self) -> dict[str, Any]:
        return {"enabled": True, "market_hours": True, "deferred": 4, "deferred_by_kind": {"scan": 4}, "trips": 0}

    def get_mcp_circuit_breaker_state(self) -> dict[str, Any]:
        return {"state": "closed", "reason": None, "failed_recoveries": 0}


def build(tmp_path: Path, *, gate: Any = None, health: Any = None, integrator: Any = None, **kw: Any) -> Client:
    settings = make_settings(tmp_path, **kw)
    search = CodebaseSearchServer(settings, root=PROJECT, cache_path=tmp_path / "scan.json", gate=gate)
    testing = TestingServer(
        settings, project_root=PROJECT, source_packages=["limits_kit"], history_path=tmp_path / "h.sqlite3", gate=gate
    )
    metrics = MonitoringMetrics()
    monitoring = MonitoringTools(
        settings,
        health=(health or StaticHealth(HEALTH)).health_report,
        registry=metrics.registry,
        integrator=integrator or FixedIntegrator(),
    )
    registry = build_tool_registry(
        {
            "codebase_search": ToolSource(search.tools(), search.root),
            "testing": ToolSource(testing.tools(), testing.project_root),
            "monitoring": ToolSource(monitoring.tools()),
        }
    )
    return Client(Dispatcher(registry, metrics=metrics, scrub=make_scrubber(settings)))


async def test_the_catalog_lists_the_three_servers_tools(tmp_path: Path) -> None:
    client = build(tmp_path)
    await client.initialize()
    tools = (await client.request("tools/list"))["result"]["tools"]
    assert [tool["name"] for tool in tools] == EXPECTED_TOOLS
    # the trading view's tools (issue 11) have their own test: tests/mcp/test_trading_tools.py
    assert set(POLICIES) == set(EXPECTED_TOOLS) | {"get_positions", "get_recent_trades", "get_pnl"}
    for tool in tools:
        # a typed result (issue 12): every shape the tool answers is an object that names its status
        schema = tool["outputSchema"]
        assert schema["type"] == "object"
        for shape in schema.get("anyOf", [schema]):
            assert "status" in shape["required"] and shape["additionalProperties"] is False, tool["name"]
        assert tool["inputSchema"]["additionalProperties"] is False
        assert tool["description"]
    by_name = {tool["name"]: tool for tool in tools}
    assert by_name["run_tests"]["annotations"]["readOnlyHint"] is False
    assert by_name["run_tests"]["inputSchema"]["properties"]["paths"]["type"] == ["array", "null"]
    registry = client.dispatcher.registry
    assert {spec.name for spec in registry.tools() if spec.gate_kind} == {
        "find_risk_parameter_usages",
        "risk_parameter_report",
        "run_tests",
    }


async def test_heavy_tools_say_when_they_were_deferred_and_why(tmp_path: Path) -> None:
    client = build(tmp_path, gate=refusing_gate)
    await client.initialize()
    for name, arguments in (("run_tests", {"force": True}), ("risk_parameter_report", {})):
        result = await client.call(name, arguments)
        assert result["isError"] is False, result
        structured = result["structuredContent"]
        assert structured["status"] == "deferred"
        assert "market hours 09:00-16:00 UTC" in json.dumps(structured)
    usages = (await client.call("find_risk_parameter_usages", {"name": "not_configured_name"}))["structuredContent"]
    assert usages["status"] == "deferred"


async def test_run_tests_paths_are_confined_to_the_project(tmp_path: Path) -> None:
    client = build(tmp_path, gate=refusing_gate)
    await client.initialize()
    for paths in (["../../../etc"], ["/etc/passwd"], ["tests", "--cov-report=html:/tmp/x"], ["-p", "evil"]):
        result = await client.call("run_tests", {"paths": paths})
        assert result["isError"] is True, paths
        assert "run_tests: argument 'paths'" in result["content"][0]["text"]
    ok = await client.call("run_tests", {"paths": ["tests/test_limits.py::test_remaining_capacity"]})
    assert ok["structuredContent"]["status"] == "deferred"  # accepted, then deferred by the gate


async def test_search_glob_traversal_and_pathological_regex_are_errors_and_the_server_keeps_serving(
    tmp_path: Path,
) -> None:
    client = build(tmp_path)
    await client.initialize()
    escaped = await client.call("search_code", {"pattern": "x", "glob": "../**"})
    assert escaped["isError"] is True
    assert "search_code: argument 'glob'" in escaped["content"][0]["text"]
    slow = await client.call("search_code", {"pattern": "(a+)+$", "regex": True})
    assert slow["isError"] is True
    assert "too slow" in slow["structuredContent"]["error"]
    invalid = await client.call("search_code", {"pattern": "([", "regex": True})
    assert invalid["isError"] is True
    found = await client.call("search_code", {"pattern": "max_daily_loss", "glob": "limits_kit/*.py"})
    assert found["isError"] is False
    assert found["structuredContent"]["match_count"] >= 2


async def test_get_health_whole_and_per_component_without_secrets(tmp_path: Path) -> None:
    client = build(tmp_path)
    await client.initialize()
    whole = await client.call("get_health")
    assert whole["structuredContent"]["status"] == "degraded"
    assert TOKEN_CANARY not in json.dumps(whole)
    one = (await client.call("get_health", {"component": "main_bot"}))["structuredContent"]
    assert one["component"] == "main_bot" and one["status"] == "healthy" and one["overall_status"] == "degraded"
    unknown = await client.call("get_health", {"component": "nope"})
    assert unknown["isError"] is True
    assert "main_bot, sidecar" in unknown["content"][0]["text"]


def write_snapshot(state_dir: Path, **fields: Any) -> Path:
    state_dir.mkdir(parents=True, exist_ok=True)
    payload = {
        "schema_version": 1,
        "pid": 4242,
        "updated_at": datetime.now(UTC).isoformat(),
        "updated_at_epoch": time.time(),
        "trading_mode": "paper",
        "trading_state": "ACTIVE",
        "wallet": WALLET,
        "breaker": {"state": "ACTIVE", "wallet": WALLET, "daily_loss": 1.5},
        "risk_parameters": {"max_daily_loss": 100.0},
        "exposure": {"total": 10.0, "by_market": {"tok": 10.0}},
        "positions": [{"token_id": "tok", "market": f"copied from {WALLET}", "size": 5.0}],
        "latency_ms": {"p50": 1.0, "p99": 2.0},
        "secret_field_added_later": TOKEN_CANARY,
    }
    payload.update(fields)
    path = state_dir / "risk_state.json"
    path.write_text(json.dumps(payload))
    return path


async def test_get_risk_state_is_masked_and_whitelisted(tmp_path: Path) -> None:
    client = build(tmp_path)
    await client.initialize()
    assert (await client.call("get_risk_state"))["structuredContent"]["status"] == "no_snapshot"
    write_snapshot(tmp_path / "state")
    client.dispatcher.cache.invalidate("monitoring")
    result = await client.call("get_risk_state")
    state = result["structuredContent"]
    assert state["status"] == "ok"
    assert state["trading_state"] == "ACTIVE"
    assert state["wallet"] == "***c0ffee"
    assert state["risk_parameters"] == {"max_daily_loss": 100.0}
    text = json.dumps(result)
    assert WALLET not in text
    assert TOKEN_CANARY not in text
    assert "secret_field_added_later" not in text


@pytest.mark.parametrize(
    ("content", "status", "is_error"),
    [
        ({"schema_version": 2}, "unsupported_schema", False),
        ({"updated_at_epoch": time.time() - 3600}, "stale", False),
        ("{not json", "error", True),
    ],
)
async def test_get_risk_state_says_what_is_wrong(tmp_path: Path, content: Any, status: str, is_error: bool) -> None:
    client = build(tmp_path)
    await client.initialize()
    path = write_snapshot(tmp_path / "state")
    if isinstance(content, dict):
        write_snapshot(tmp_path / "state", **content)
    else:
        path.write_text(content)
    result = await client.call("get_risk_state")
    assert result["isError"] is is_error
    assert result["structuredContent"]["status"] == status


async def test_get_metrics_summary_reports_tool_calls(tmp_path: Path) -> None:
    client = build(tmp_path)
    await client.initialize()
    await client.call("get_health")
    summary = (await client.call("get_metrics_summary", {"prefix": "mcp_tool_calls"}))["structuredContent"]
    assert list(summary["metrics"]) == ["mcp_tool_calls"]
    samples = summary["metrics"]["mcp_tool_calls"]["samples"]
    assert {
        "name": "mcp_tool_calls_total",
        "labels": {"server": "monitoring", "tool": "get_health"},
        "value": 1.0,
    } in samples
    everything = (await client.call("get_metrics_summary"))["structuredContent"]
    assert "monitoring_health_checks" in everything["metrics"]
    assert not any(s["name"].endswith("_bucket") for m in everything["metrics"].values() for s in m["samples"])
    bad = await client.call("get_metrics_summary", {"prefix": "mcp tool; drop"})
    assert bad["isError"] is True


async def test_get_gate_state_reads_the_integrator_without_deferring_anything(tmp_path: Path) -> None:
    client = build(tmp_path)
    await client.initialize()
    gate = (await client.call("get_gate_state"))["structuredContent"]
    assert gate["status"] == "ok"
    assert gate["heavy_work_allowed"] is True
    assert gate["statistics"]["deferred_by_kind"] == {"scan": 4}


async def test_gate_state_of_the_real_integrator(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, mcp_market_hours_enabled=True)
    noon = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)  # a Friday, inside 09:00-16:00 UTC
    integrator = MCPRiskIntegrator(settings, clock=lambda: noon, state_file=tmp_path / "mcp_breaker.json")
    tools = MonitoringTools(
        settings,
        health=StaticHealth(HEALTH).health_report,
        integrator=integrator,
        clock=noon.timestamp,
    )
    gate = await tools.get_gate_state()
    assert gate["status"] == "ok"
    assert gate["market_hours"] is True
    assert gate["heavy_work_allowed"] is False
    assert "market hours" in gate["reason"]
    assert integrator.get_statistics()["deferred"] == 0  # reading the gate is not a deferral


async def test_a_broken_integrator_is_an_error_result(tmp_path: Path) -> None:
    class Broken:
        def get_statistics(self) -> Any:
            raise OSError("state file unreadable")

    settings = make_settings(tmp_path)
    tools = MonitoringTools(settings, health=StaticHealth(HEALTH).health_report, integrator=Broken())
    answer = await tools.get_gate_state()
    assert answer == {"status": "error", "error": "gate state unavailable: OSError: state file unreadable"}
    no_integrator = MonitoringTools(settings, health=StaticHealth(HEALTH).health_report, integrator=None)
    assert (await no_integrator.get_gate_state())["status"] == "unavailable"


async def test_the_sidecar_dispatcher_serves_only_the_registry_servers_tools(tmp_path: Path) -> None:
    from mcp.monitoring_server import MonitoringServer
    from mcp.tools.runtime import build_dispatcher

    class OtherService:
        name = "risk_watch"

        def tools(self) -> list[Any]:
            raise AssertionError("a service that is not an MCP server must not be asked for tools")

    settings = make_settings(tmp_path)
    servers: list[Any] = [
        CodebaseSearchServer(settings, cache_path=tmp_path / "scan.json"),
        TestingServer(settings, history_path=tmp_path / "h.sqlite3"),
        MonitoringServer(settings, serve_metrics=False, serve_dashboard=False),
        OtherService(),
    ]
    dispatcher = build_dispatcher(settings, servers)
    assert dispatcher.registry.names() == [*EXPECTED_TOOLS, "get_positions", "get_recent_trades", "get_pnl"]
    assert dispatcher.page_size == settings.mcp_tools_page_size
    client = Client(dispatcher)
    await client.initialize()
    result = await client.call("get_metrics_summary", {"prefix": "monitoring_component"})
    assert result["structuredContent"]["status"] == "ok"  # the monitoring server's own registry
