"""The typed results of the monitoring tools: their outputSchemas are built from these (mcp/protocol/schema.py).

Top-level keys are exact; the open parts (a check's figures, the breaker record, the risk parameters of the
bot's snapshot) are objects whose keys belong to their writers, so they are typed as objects of any values.
A test validates every tool's real answers against its schema (tests/mcp/test_tool_output_schemas.py).
"""

from __future__ import annotations

from typing import Any, Literal, NotRequired, TypedDict

from mcp.health import HealthStatus


class Unavailable(TypedDict):
    """This process has no such source (no monitoring server, no metrics registry, no integrator)."""

    status: Literal["unavailable"]
    message: str


class ComponentHealth(TypedDict):
    """One component of the health report: its status, why, its figures, since when."""

    status: HealthStatus
    message: str
    figures: dict[str, Any]
    checked_at: str | None
    since: str | None
    error: NotRequired[str]


class VerdictBlock(TypedDict):
    """The overall verdict: PASS unless a component is critical."""

    status: HealthStatus
    passed: bool
    label: Literal["PASS", "FAIL"]
    problems: list[str]


class TradingBreakerBrief(TypedDict):
    """The trading circuit breaker as the bot last published it."""

    trading_state: Any
    trip_reason: Any


class HealthReport(TypedDict):
    """The sidecar's latest health report: overall status, every component, the breaker and the gate."""

    status: HealthStatus
    verdict: VerdictBlock
    generated_at: str | None
    uptime_seconds: float
    environment: str
    components: dict[str, ComponentHealth]
    circuit_breaker: TradingBreakerBrief
    gate: dict[str, Any]
    isolation: dict[str, Any] | None


class OneComponent(ComponentHealth):
    """One component of the health report, with the overall status it belongs to."""

    component: str
    overall_status: HealthStatus
    generated_at: str | None


class RiskState(TypedDict):
    """The bot's published risk snapshot (wallets masked), its age, and whether it is fresh."""

    status: Literal["ok", "stale"]
    snapshot_age_seconds: float | None
    max_age_seconds: float
    # the snapshot's keys: each may be missing from a bot of another release
    schema_version: NotRequired[int]
    pid: NotRequired[int]
    updated_at: NotRequired[str]
    trading_mode: NotRequired[str]
    trading_state: NotRequired[str]
    wallet: NotRequired[str]
    breaker: NotRequired[dict[str, Any]]
    risk_parameters: NotRequired[dict[str, Any]]
    exposure: NotRequired[dict[str, Any]]
    positions: NotRequired[list[dict[str, Any]]]
    latency_ms: NotRequired[dict[str, Any]]
    errors: NotRequired[dict[str, Any]]
    trades: NotRequired[dict[str, Any]]
    rss_mb: NotRequired[float]


class NoRiskState(TypedDict):
    """No usable snapshot: none published yet, or one of another schema version."""

    status: Literal["no_snapshot", "unsupported_schema"]
    message: str


class MetricSample(TypedDict):
    """One sample: its name, labels and value (NaN as null)."""

    name: str
    labels: dict[str, str]
    value: float | None


class MetricFamily(TypedDict):
    """One metric: its Prometheus type, help text and samples (histograms as _count and _sum)."""

    type: str
    help: str
    samples: list[MetricSample]


class MetricsSummary(TypedDict):
    """Current values of the sidecar's metrics, by name."""

    status: Literal["ok"]
    prefix: str | None
    metric_count: int
    metrics: dict[str, MetricFamily]


class NoMetrics(TypedDict):
    """No metrics registry in this process."""

    status: Literal["unavailable"]
    message: str
    metrics: dict[str, MetricFamily]


class GateState(TypedDict):
    """The MCP risk integrator's gate for heavy work, the MCP circuit breaker record and the deferral counts."""

    status: Literal["ok"]
    market_hours: bool
    mcp_circuit_breaker: dict[str, Any]
    mcp_circuit_breaker_locked: bool
    heavy_work_allowed: bool
    reason: str
    code: str
    statistics: dict[str, Any]


class PerformanceReport(TypedDict):
    """The 📊 PERFORMANCE REPORT as text."""

    status: Literal["ok"]
    text: str
