"""The metric table, the private registry and the /metrics endpoint (a fresh registry in every test)."""

from __future__ import annotations

import math
import re
import socket
from pathlib import Path

import aiohttp
import prometheus_client
import pytest
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from mcp.monitoring.http import ServeError, metrics_app, start_site
from mcp.monitoring.levels import Level
from mcp.monitoring.metrics import (
    METRICS,
    REQUIRED_NAMES,
    Kind,
    MonitoringMetrics,
    metric_catalog,
    sidecar_version,
)
from tests.conftest import PROJECT_ROOT

REFERENCE_NAMES = {  # reference 000 §Prometheus Metrics, verbatim
    "monitoring_health_checks_total",
    "monitoring_alerts_sent_total",
    "monitoring_alerts_suppressed_total",
    "monitoring_cpu_usage_percent",
    "monitoring_memory_usage_mb",
    "monitoring_component_status",
    "monitoring_circuit_breaker",
    "monitoring_health_check_duration_seconds",
}


def families(metrics: MonitoringMetrics) -> dict[str, prometheus_client.Metric]:
    return {family.name: family for family in text_string_to_metric_families(metrics.exposition().decode())}


def value(metrics: MonitoringMetrics, name: str, **labels: str) -> float:
    for family in text_string_to_metric_families(metrics.exposition().decode()):
        for sample in family.samples:
            if sample.name == name and sample.labels == labels:
                return float(sample.value)
    raise AssertionError(f"no sample {name}{labels}")


def test_the_reference_names_are_all_there_and_marked_required() -> None:
    assert set(REQUIRED_NAMES) == REFERENCE_NAMES
    labels = {spec.name: spec.labels for spec in METRICS}
    assert labels["monitoring_health_checks_total"] == ("status",)
    assert labels["monitoring_alerts_sent_total"] == ("severity",)
    assert labels["monitoring_component_status"] == ("component",)


def test_the_exposition_has_exactly_the_table() -> None:
    metrics = MonitoringMetrics()
    exposed = {name: family.type for name, family in families(metrics).items() if not name.endswith("_created")}
    expected = {spec.name.removesuffix("_total"): spec.kind.value for spec in METRICS}
    assert exposed == expected


def test_our_names_follow_the_conventions() -> None:
    for spec in METRICS:
        assert re.fullmatch(r"(monitoring|mcp)_[a-z0-9_]+", spec.name), spec.name
        assert spec.name.endswith("_total") == (spec.kind is Kind.COUNTER), spec.name
        assert spec.help and not spec.help[0].islower(), spec.name
        if not spec.required and spec.kind is not Kind.COUNTER:
            assert not spec.name.endswith(("_mb", "_percent", "_ms")), f"{spec.name}: use base units"


def test_the_catalog_for_the_dashboard_is_the_table() -> None:
    catalog = metric_catalog()
    assert [entry["name"] for entry in catalog] == [spec.name for spec in METRICS]
    entry = next(entry for entry in catalog if entry["name"] == "monitoring_memory_usage_mb")
    assert entry == {
        "name": "monitoring_memory_usage_mb",
        "kind": "gauge",
        "unit": "MB",
        "help": "Resident memory of the sidecar process in MiB",
        "labels": [],
        "required": True,
    }


def test_every_registry_is_private() -> None:
    first, second = MonitoringMetrics(), MonitoringMetrics()
    first.record_check(Level.CRITICAL)
    assert value(first, "monitoring_health_checks_total", status="critical") == 1.0
    with pytest.raises(AssertionError):
        value(second, "monitoring_health_checks_total", status="critical")
    assert b"monitoring_" not in prometheus_client.generate_latest(prometheus_client.REGISTRY)


def test_a_shared_registry_refuses_a_second_set() -> None:
    registry = CollectorRegistry()
    MonitoringMetrics(registry)
    with pytest.raises(ValueError, match="Duplicated timeseries"):
        MonitoringMetrics(registry)


def test_asking_for_a_metric_that_is_not_in_the_table_says_which_exist() -> None:
    metrics = MonitoringMetrics()
    with pytest.raises(KeyError, match="no gauge named 'monitoring_health_checks_total'"):
        metrics.gauge("monitoring_health_checks_total")


def test_unknowns_are_nan_never_a_false_zero() -> None:
    metrics = MonitoringMetrics()
    for name in ("monitoring_circuit_breaker", "mcp_test_coverage_ratio", "mcp_gate_open", "mcp_circuit_breaker_state"):
        assert math.isnan(value(metrics, name)), name
    metrics.set_trading_breaker("HALTED")
    assert value(metrics, "monitoring_circuit_breaker") == 1.0
    metrics.set_trading_breaker("ACTIVE")
    assert value(metrics, "monitoring_circuit_breaker") == 0.0
    metrics.set_trading_breaker(None)
    assert math.isnan(value(metrics, "monitoring_circuit_breaker"))


@pytest.mark.parametrize(("level", "expected"), [(Level.HEALTHY, 1.0), (Level.DEGRADED, 0.0), (Level.CRITICAL, -1.0)])
def test_component_status_values(level: Level, expected: float) -> None:
    metrics = MonitoringMetrics()
    metrics.set_components({"main_bot": level})
    assert value(metrics, "monitoring_component_status", component="main_bot") == expected


def test_a_component_no_longer_reported_loses_its_series() -> None:
    metrics = MonitoringMetrics()
    metrics.set_components({"testing": Level.HEALTHY, "host": Level.HEALTHY})
    metrics.set_components({"host": Level.DEGRADED})
    with pytest.raises(AssertionError):
        value(metrics, "monitoring_component_status", component="testing")
    assert value(metrics, "monitoring_component_status", component="host") == 0.0


@pytest.mark.parametrize(
    ("state", "expected"), [("closed", 0.0), ("half_open", 1.0), ("open", 2.0), (None, math.nan), ("weird", math.nan)]
)
def test_gate_and_mcp_breaker(state: str | None, expected: float) -> None:
    metrics = MonitoringMetrics()
    metrics.set_gate(state == "closed", state)
    found = value(metrics, "mcp_circuit_breaker_state")
    assert (math.isnan(found) and math.isnan(expected)) or found == expected
    assert value(metrics, "mcp_gate_open") == (1.0 if state == "closed" else 0.0)


def test_running_totals_become_counter_increments() -> None:
    metrics = MonitoringMetrics()
    metrics.sync_alerts({"warning": 3}, 10)
    metrics.sync_alerts({"warning": 5, "critical": 1}, 10)
    assert value(metrics, "monitoring_alerts_sent_total", severity="warning") == 5.0
    assert value(metrics, "monitoring_alerts_sent_total", severity="critical") == 1.0
    metrics.sync_alerts({"warning": 2}, 1)  # a new alert manager started from zero: its totals are new
    assert value(metrics, "monitoring_alerts_sent_total", severity="warning") == 7.0
    assert value(metrics, "monitoring_alerts_suppressed_total") == 11.0
    metrics.sync_cache("codebase_search", hits=40, requests=50)
    metrics.sync_cache("codebase_search", hits=90, requests=100)
    assert value(metrics, "mcp_cache_hits_total", server="codebase_search") == 90.0
    assert value(metrics, "mcp_cache_requests_total", server="codebase_search") == 100.0


def test_tool_calls() -> None:
    metrics = MonitoringMetrics()
    metrics.record_tool_call("codebase_search", "search_code", 0.02)
    metrics.record_tool_call("codebase_search", "search_code", 0.5, error_type="invalid_arguments")
    labels = {"server": "codebase_search", "tool": "search_code"}
    assert value(metrics, "mcp_tool_calls_total", **labels) == 2.0
    assert value(metrics, "mcp_tool_duration_seconds_count", **labels) == 2.0
    assert value(metrics, "mcp_tool_duration_seconds_sum", **labels) == pytest.approx(0.52)
    assert value(metrics, "mcp_tool_errors_total", error_type="invalid_arguments", **labels) == 1.0


def test_trading_latency_is_exposed_in_seconds() -> None:
    metrics = MonitoringMetrics()
    metrics.set_trading_latency(4.0, 87.5, 100.0)
    assert value(metrics, "mcp_trading_latency_p50_seconds") == pytest.approx(0.004)
    assert value(metrics, "mcp_trading_latency_p99_seconds") == pytest.approx(0.0875)
    assert value(metrics, "mcp_trading_latency_budget_seconds") == pytest.approx(0.1)


def test_build_info_names_the_version_and_python() -> None:
    import platform

    metrics = MonitoringMetrics(version="9.9.9")
    assert value(metrics, "mcp_sidecar_build_info", version="9.9.9", python=platform.python_version()) == 1.0
    assert sidecar_version() not in {"", "unknown"}


def test_docs_describe_every_metric_as_the_table_does() -> None:
    doc = (PROJECT_ROOT / "docs" / "metrics.md").read_text()
    for spec in METRICS:
        labels = ", ".join(spec.labels) or "-"
        row = f"| `{spec.name}` | {spec.kind.value} | {spec.unit or '-'} | {labels} | {spec.help} |"
        assert row in doc, f"docs/metrics.md is out of date; expected the row:\n{row}"


# --- HTTP ----------------------------------------------------------------------------------------------


@pytest.mark.integration
async def test_metrics_app_over_http() -> None:
    metrics = MonitoringMetrics()
    metrics.record_check(Level.HEALTHY)
    async with TestClient(TestServer(metrics_app(metrics.registry))) as client:
        response = await client.get("/metrics")
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        assert 'monitoring_health_checks_total{status="healthy"} 1.0' in await response.text()
        assert (await client.post("/metrics")).status == 405
        assert (await client.get("/")).status == 404


@pytest.mark.integration
async def test_start_site_binds_port_zero_and_cleans_up(tmp_path: Path) -> None:
    metrics = MonitoringMetrics()
    runner, port = await start_site(metrics_app(metrics.registry), "127.0.0.1", 0, setting="METRICS_PORT", what="m")
    try:
        async with aiohttp.ClientSession() as session, session.get(f"http://127.0.0.1:{port}/metrics") as response:
            assert response.status == 200
    finally:
        await runner.cleanup()


@pytest.mark.integration
async def test_start_site_in_use_and_unbindable_hosts_say_what_to_change() -> None:
    metrics = MonitoringMetrics()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(ServeError, match=rf"127.0.0.1:{port}: the port is already in use; .* set METRICS_PORT"):
            await start_site(metrics_app(metrics.registry), "127.0.0.1", port, setting="METRICS_PORT", what="metrics")
    with pytest.raises(ServeError, match="check DASHBOARD_HOST and METRICS_PORT"):
        await start_site(metrics_app(metrics.registry), "192.0.2.1", 0, setting="METRICS_PORT", what="metrics")
