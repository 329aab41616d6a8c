"""The monitoring server's MCP tools: plain typed coroutines over the monitoring service, the bot's risk
snapshot, the metrics registry and the risk integrator. All read-only: none changes anything, and what they
return has wallet addresses masked and no secret (the dispatcher scrubs again on the way out).

    tools = MonitoringTools(settings, health=server.health_report, registry=server.metrics.registry)
    tools.tools()   # [get_health, get_risk_state, get_metrics_summary, get_gate_state, get_performance_report]
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import math
import re
import time
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry

from config.settings import Settings
from core.integrations.gate_rules import MarketHours
from core.risk_snapshot import (
    SnapshotMissingError,
    SnapshotSchemaError,
    mask_payload,
    read_risk_snapshot,
    risk_snapshot_path,
)
from mcp.monitoring.gate_status import gate_summary
from mcp.protocol.clip import clip_repr
from mcp.protocol.results import ToolError
from mcp.tools.monitoring_results import (
    GateState,
    HealthReport,
    MetricsSummary,
    NoMetrics,
    NoRiskState,
    OneComponent,
    PerformanceReport,
    RiskState,
    Unavailable,
)
from utils.atomic import StateFileError

logger = logging.getLogger(__name__)

HealthSource = Callable[[], Mapping[str, Any] | Awaitable[Mapping[str, Any]]]
# keys of the risk snapshot an assistant may see; anything else the bot adds later stays out until listed here
RISK_STATE_KEYS = (
    "schema_version",
    "pid",
    "updated_at",
    "trading_mode",
    "trading_state",
    "wallet",
    "breaker",
    "risk_parameters",
    "exposure",
    "positions",
    "latency_ms",
    "errors",
    "trades",
    "rss_mb",
)
STATISTICS_KEYS = (
    "enabled",
    "mcp_circuit_breaker_state",
    "mcp_circuit_breaker_locked",
    "trips",
    "recoveries",
    "failed_recoveries",
    "last_trip_reason",
    "last_trip_at",
    "deferred",
    "deferred_by_kind",
)
DEFAULT_SNAPSHOT_MAX_AGE_SECONDS = 120.0
# a freshly started process has no health round yet: get_health waits this long for the first one
DEFAULT_READY_TIMEOUT_SECONDS = 10.0
METRIC_PREFIX = re.compile(r"^[A-Za-z_:][A-Za-z0-9_:]{0,99}$")


async def _call(source: Callable[[], Any]) -> Any:
    value = source()
    return await value if inspect.isawaitable(value) else value


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def summarize_registry(registry: CollectorRegistry, prefix: str | None = None) -> dict[str, Any]:
    """Every metric (optionally only names starting with `prefix`): counters and gauges by labels,
    histograms as _count and _sum (no buckets), NaN as null."""
    metrics: dict[str, Any] = {}
    for family in registry.collect():
        if prefix and not family.name.startswith(prefix):
            continue
        samples = []
        for sample in family.samples:
            if sample.name.endswith(("_created", "_bucket")):
                continue
            samples.append({"name": sample.name, "labels": dict(sample.labels), "value": _finite(sample.value)})
        metrics[family.name] = {"type": family.type, "help": family.documentation, "samples": samples}
    return metrics


class MonitoringTools:
    """get_health, get_risk_state, get_metrics_summary, get_gate_state (sources injected, production defaults)."""

    def __init__(
        self,
        settings: Settings,
        *,
        health: HealthSource,
        registry: CollectorRegistry | None = None,
        snapshot_path: Path | None = None,
        integrator: Any = None,
        clock: Callable[[], float] = time.time,
        snapshot_max_age: float = DEFAULT_SNAPSHOT_MAX_AGE_SECONDS,
        ready: asyncio.Event | None = None,
        ready_timeout: float = DEFAULT_READY_TIMEOUT_SECONDS,
        report: Callable[[], Awaitable[Mapping[str, Any]]] | None = None,
    ) -> None:
        self.settings = settings
        self._health = health
        self._registry = registry
        self._snapshot_path = snapshot_path if snapshot_path is not None else risk_snapshot_path(settings.state_dir)
        # the sidecar's MCPRiskIntegrator (get_gate_state); None: that tool answers "unavailable"
        self._integrator = integrator
        self._hours = MarketHours.from_settings(settings)
        self._clock = clock
        self._max_age = snapshot_max_age
        self._ready = ready
        self._ready_timeout = ready_timeout
        self._report = report

    def tools(self) -> list[Callable[..., Any]]:
        """The MCP tools: plain typed coroutines."""
        return [
            self.get_health,
            self.get_risk_state,
            self.get_metrics_summary,
            self.get_gate_state,
            self.get_performance_report,
        ]

    async def get_performance_report(self) -> PerformanceReport | Unavailable | ToolError:
        """The 📊 PERFORMANCE REPORT now, as text: trades copied and denied by reason, P&L, breaker trips,
        decision → ack latency p50/p99, the sidecar's CPU and RSS, coverage, alerts sent and suppressed."""
        if self._report is None:
            return {"status": "unavailable", "message": "no monitoring server in this process"}
        try:
            return dict(await self._report())
        except Exception as e:  # reported as the tool's result; the server goes on
            logger.exception("the performance report failed")
            return {"status": "error", "error": f"performance report unavailable: {type(e).__name__}: {e}"}

    async def get_health(self, component: str | None = None) -> HealthReport | OneComponent | ToolError:
        """The sidecar's latest health report: overall status (healthy/degraded/critical) and every component
        with its message and figures; pass `component` (e.g. "main_bot", "circuit_breaker") for just one."""
        if self._ready is not None and not self._ready.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._ready.wait(), self._ready_timeout)
        report = dict(await _call(self._health))
        if component is None:
            return report
        components = report.get("components") or {}
        if component not in components:
            known = ", ".join(components) or "none yet"
            return {"status": "error", "error": f"unknown component {clip_repr(component)}; known components: {known}"}
        return {
            **components[component],
            "component": component,
            "overall_status": report.get("status"),
            "generated_at": report.get("generated_at"),
        }

    async def get_risk_state(self) -> RiskState | NoRiskState | ToolError:
        """The bot's risk state from its published snapshot, read-only: trading state, breaker record, risk
        parameters, exposure, positions, latency, errors. Wallets are masked; status says if it is missing or stale."""
        try:
            payload = await asyncio.to_thread(read_risk_snapshot, self._snapshot_path)
        except SnapshotMissingError as e:
            return {"status": "no_snapshot", "message": str(e)}
        except SnapshotSchemaError as e:
            return {"status": "unsupported_schema", "message": str(e)}
        except StateFileError as e:
            return {"status": "error", "error": str(e)}
        view = mask_payload({key: payload[key] for key in RISK_STATE_KEYS if key in payload})
        updated = payload.get("updated_at_epoch")
        age = None
        if isinstance(updated, int | float) and not isinstance(updated, bool) and math.isfinite(updated):
            age = round(max(0.0, self._clock() - float(updated)), 3)
        stale = age is None or age > self._max_age
        return {
            "status": "stale" if stale else "ok",
            "snapshot_age_seconds": age,
            "max_age_seconds": self._max_age,
            **view,
        }

    async def get_metrics_summary(self, prefix: str | None = None) -> MetricsSummary | NoMetrics | ToolError:
        """Current values of the sidecar's Prometheus metrics (tool calls, cache hits, health, coverage, gate);
        histograms as count and sum. `prefix` keeps only metrics whose name starts with it (e.g. "mcp_tool")."""
        if prefix is not None and prefix != "" and not METRIC_PREFIX.match(prefix):
            message = f"expected a metric name prefix like 'mcp_tool', received {clip_repr(prefix, 60)}"
            return {"status": "error", "error": message}
        if self._registry is None:
            return {"status": "unavailable", "message": "no metrics registry in this process", "metrics": {}}
        metrics = summarize_registry(self._registry, prefix or None)
        return {"status": "ok", "prefix": prefix, "metric_count": len(metrics), "metrics": metrics}

    async def get_gate_state(self) -> GateState | Unavailable | ToolError:
        """The MCP risk integrator's gate: may heavy work (scans, test runs) start now and why not, market hours,
        the MCP circuit breaker's state, and how many heavy jobs were deferred."""
        if self._integrator is None:
            return {"status": "unavailable", "message": "no MCP risk integrator in this process"}
        try:
            statistics = self._integrator.get_statistics()
            breaker = self._integrator.get_mcp_circuit_breaker_state()
            now = datetime.fromtimestamp(self._clock(), UTC)
            summary = gate_summary(statistics, breaker, now, self._hours)
        except Exception as e:  # reported as the tool's result; the server goes on
            logger.exception("cannot read the integrator's gate state")
            return {"status": "error", "error": f"gate state unavailable: {type(e).__name__}: {e}"}
        return {
            "status": "ok",
            **summary,
            "mcp_circuit_breaker": breaker,
            "statistics": {key: statistics.get(key) for key in STATISTICS_KEYS if key in statistics},
        }
