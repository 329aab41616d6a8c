"""The sidecar's Prometheus metrics: one table (name, kind, unit, help) and a private registry built from it.

The eight `monitoring_*` names are the contract of the user's reference (§Prometheus Metrics) and are
kept exactly, even where Prometheus's naming lints would pick another name (docs/metrics.md lists what
`promtool check metrics` says about them and why). Everything else is ours and follows the lints.
`METRICS` feeds both `/metrics` and the dashboard (`metric_catalog()`), so a metric is described once.
"""

from __future__ import annotations

import math
import platform
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from functools import lru_cache
from importlib import metadata
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from config.settings import PROJECT_ROOT
from mcp.monitoring.levels import Level

DISTRIBUTION = "polymarket-copy-bot"


class Kind(StrEnum):
    COUNTER = "counter"
    GAUGE = "gauge"
    HISTOGRAM = "histogram"


@dataclass(frozen=True, slots=True)
class MetricSpec:
    """One metric: its exposed name (counters end in _total), kind, unit for people, help, labels."""

    name: str
    kind: Kind
    help: str
    unit: str = ""
    labels: tuple[str, ...] = ()
    required: bool = False  # named by the user's reference: the name is a contract
    buckets: tuple[float, ...] | None = None


CHECK_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
TOOL_BUCKETS = (0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0)

METRICS: tuple[MetricSpec, ...] = (
    # --- the user's reference, §Prometheus Metrics (names and labels exactly as written there) ---------
    MetricSpec("monitoring_health_checks_total", Kind.COUNTER, "Component health checks, by the level found",
               labels=("status",), required=True),
    MetricSpec("monitoring_alerts_sent_total", Kind.COUNTER, "Alerts sent by the sidecar, by severity",
               labels=("severity",), required=True),
    MetricSpec("monitoring_alerts_suppressed_total", Kind.COUNTER,
               "Alerts not sent: duplicates within the window, keys in cooldown, alerts disabled", required=True),
    MetricSpec("monitoring_cpu_usage_percent", Kind.GAUGE,
               "CPU used by the sidecar process since the previous check (100 = one core)", "%", required=True),
    MetricSpec("monitoring_memory_usage_mb", Kind.GAUGE, "Resident memory of the sidecar process in MiB", "MB",
               required=True),
    MetricSpec("monitoring_component_status", Kind.GAUGE,
               "Component health: 1 healthy, 0.5 starting, 0 degraded, -1 critical",
               labels=("component",), required=True),
    MetricSpec("monitoring_circuit_breaker", Kind.GAUGE,
               "Trading circuit breaker: 1 tripped (HALTED), 0 active (ACTIVE), NaN unknown", required=True),
    MetricSpec("monitoring_health_check_duration_seconds", Kind.HISTOGRAM, "Time one health check took", "s",
               required=True, buckets=CHECK_BUCKETS),
    # --- ours -------------------------------------------------------------------------------------------
    MetricSpec("mcp_test_coverage_ratio", Kind.GAUGE, "Line coverage of the last test run (0-1), NaN before one",
               "ratio"),
    MetricSpec("mcp_test_coverage_target_ratio", Kind.GAUGE, "Coverage target MCP_TESTING_COVERAGE_TARGET (0-1)",
               "ratio"),
    MetricSpec("mcp_trading_latency_p50_seconds", Kind.GAUGE,
               "Trading latency p50 (decision to order acknowledged) in the bot's risk snapshot, NaN unknown", "s"),
    MetricSpec("mcp_trading_latency_p99_seconds", Kind.GAUGE,
               "Trading latency p99 (decision to order acknowledged) in the bot's risk snapshot, NaN unknown", "s"),
    MetricSpec("mcp_trading_latency_budget_seconds", Kind.GAUGE, "Trading latency budget TRADING_LATENCY_BUDGET_MS",
               "s"),
    MetricSpec("mcp_gate_open", Kind.GAUGE, "1 when heavy work (scans, test runs) may start, 0 deferred, NaN unknown"),
    MetricSpec("mcp_circuit_breaker_state", Kind.GAUGE,
               "MCP circuit breaker (gates the sidecar's heavy work): 0 closed, 1 half-open, 2 open, NaN unknown"),
    MetricSpec("mcp_sidecar_build_info", Kind.GAUGE, "Always 1; the labels name the sidecar's version and Python",
               labels=("version", "python")),
    MetricSpec("mcp_tool_calls_total", Kind.COUNTER, "MCP tool calls", labels=("server", "tool")),
    MetricSpec("mcp_tool_duration_seconds", Kind.HISTOGRAM, "Duration of MCP tool calls", "s",
               labels=("server", "tool"), buckets=TOOL_BUCKETS),
    MetricSpec("mcp_tool_errors_total", Kind.COUNTER, "MCP tool calls that failed, by error type",
               labels=("server", "tool", "error_type")),
    MetricSpec("mcp_cache_hits_total", Kind.COUNTER, "Cache hits (scan cache, unchanged-code test runs)",
               labels=("server",)),
    MetricSpec("mcp_cache_requests_total", Kind.COUNTER, "Cache lookups", labels=("server",)),
)  # fmt: skip

METRIC_BY_NAME: dict[str, MetricSpec] = {spec.name: spec for spec in METRICS}
REQUIRED_NAMES: tuple[str, ...] = tuple(spec.name for spec in METRICS if spec.required)
STATUS_VALUE = {Level.HEALTHY: 1.0, Level.STARTING: 0.5, Level.DEGRADED: 0.0, Level.CRITICAL: -1.0}
MCP_BREAKER_VALUE = {"closed": 0.0, "half_open": 1.0, "open": 2.0}
NAN = float("nan")


def metric_catalog() -> list[dict[str, Any]]:
    """The table as JSON for the dashboard: name, kind, unit, help, labels, required."""
    return [
        {
            "name": spec.name,
            "kind": spec.kind.value,
            "unit": spec.unit,
            "help": spec.help,
            "labels": list(spec.labels),
            "required": spec.required,
        }
        for spec in METRICS
    ]


@lru_cache(maxsize=1)
def sidecar_version() -> str:
    """The installed distribution's version, else pyproject.toml's, else "unknown"."""
    try:
        return metadata.version(DISTRIBUTION)
    except metadata.PackageNotFoundError:
        pass  # running from a source tree that was never pip-installed: ask pyproject.toml
    try:
        with (PROJECT_ROOT / "pyproject.toml").open("rb") as handle:
            return str(tomllib.load(handle)["project"]["version"])
    except (OSError, KeyError, tomllib.TOMLDecodeError):
        return "unknown"


def _build(spec: MetricSpec, registry: CollectorRegistry) -> Counter | Gauge | Histogram:
    if spec.kind is Kind.COUNTER:
        return Counter(spec.name, spec.help, spec.labels, registry=registry)
    if spec.kind is Kind.GAUGE:
        return Gauge(spec.name, spec.help, spec.labels, registry=registry)
    return Histogram(spec.name, spec.help, spec.labels, registry=registry, buckets=spec.buckets or CHECK_BUCKETS)


def _gauge_value(value: float | None) -> float:
    return NAN if value is None or not math.isfinite(value) else float(value)


class MonitoringMetrics:
    """Every metric of `METRICS`, in a private registry (pass one to share it; never the global REGISTRY)."""

    def __init__(self, registry: CollectorRegistry | None = None, *, version: str | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        self._metrics = {spec.name: _build(spec, self.registry) for spec in METRICS}
        self._components: set[str] = set()
        self._alert_totals: dict[str, float] = {}
        self._cache_totals: dict[tuple[str, str], float] = {}
        self.gauge("mcp_sidecar_build_info").labels(version or sidecar_version(), platform.python_version()).set(1)
        for name in (
            "monitoring_circuit_breaker",
            "mcp_test_coverage_ratio",
            "mcp_trading_latency_p50_seconds",
            "mcp_trading_latency_p99_seconds",
            "mcp_gate_open",
            "mcp_circuit_breaker_state",
        ):
            self.gauge(name).set(NAN)  # unknown until the first check says otherwise, never a false 0

    def _metric(self, name: str, kind: Kind) -> Any:
        spec = METRIC_BY_NAME.get(name)
        if spec is None or spec.kind is not kind:
            raise KeyError(f"no {kind.value} named {name!r} in METRICS (known: {sorted(METRIC_BY_NAME)})")
        return self._metrics[name]

    def counter(self, name: str) -> Counter:
        """The counter `name` of the table."""
        return self._metric(name, Kind.COUNTER)  # type: ignore[no-any-return]

    def gauge(self, name: str) -> Gauge:
        """The gauge `name` of the table."""
        return self._metric(name, Kind.GAUGE)  # type: ignore[no-any-return]

    def histogram(self, name: str) -> Histogram:
        """The histogram `name` of the table."""
        return self._metric(name, Kind.HISTOGRAM)  # type: ignore[no-any-return]

    # --- health checks ------------------------------------------------------------------------------

    def record_check(self, level: Level) -> None:
        """One component checked: count it by the level found."""
        self.counter("monitoring_health_checks_total").labels(level.value).inc()

    def observe_check_duration(self, seconds: float) -> None:
        """One check ran (covering one or more components): observe how long it took."""
        self.histogram("monitoring_health_check_duration_seconds").observe(max(0.0, seconds))

    def set_components(self, levels: Mapping[str, Level]) -> None:
        """Every component's status (1/0/-1); components no longer reported lose their series."""
        gauge = self.gauge("monitoring_component_status")
        for component, level in levels.items():
            gauge.labels(component).set(STATUS_VALUE[level])
        for gone in self._components - set(levels):
            gauge.remove(gone)
        self._components = set(levels)

    def set_sidecar_usage(self, cpu_percent: float | None, memory_mb: float | None) -> None:
        """The sidecar's own CPU and RSS as last sampled."""
        self.gauge("monitoring_cpu_usage_percent").set(_gauge_value(cpu_percent))
        self.gauge("monitoring_memory_usage_mb").set(_gauge_value(memory_mb))

    def set_trading_breaker(self, trading_state: str | None) -> None:
        """The trading breaker: HALTED → 1, ACTIVE → 0, unknown → NaN."""
        value = {"HALTED": 1.0, "ACTIVE": 0.0}.get(trading_state or "", NAN)
        self.gauge("monitoring_circuit_breaker").set(value)

    def set_trading_latency(self, p50_ms: float | None, p99_ms: float | None, budget_ms: float) -> None:
        """Trading latency seen in the snapshot (ms in, seconds out)."""
        self.gauge("mcp_trading_latency_p50_seconds").set(_gauge_value(None if p50_ms is None else p50_ms / 1000))
        self.gauge("mcp_trading_latency_p99_seconds").set(_gauge_value(None if p99_ms is None else p99_ms / 1000))
        self.gauge("mcp_trading_latency_budget_seconds").set(budget_ms / 1000)

    def set_coverage(self, fraction: float | None, target: float) -> None:
        """The last test run's coverage (0-1) and the target."""
        self.gauge("mcp_test_coverage_ratio").set(_gauge_value(fraction))
        self.gauge("mcp_test_coverage_target_ratio").set(target)

    def set_gate(self, heavy_work_allowed: bool | None, mcp_breaker_state: str | None) -> None:
        """The integrator's gate and MCP breaker (unknown → NaN)."""
        self.gauge("mcp_gate_open").set(NAN if heavy_work_allowed is None else float(heavy_work_allowed))
        self.gauge("mcp_circuit_breaker_state").set(MCP_BREAKER_VALUE.get(mcp_breaker_state or "", NAN))

    # --- running totals kept elsewhere (alert manager, caches) --------------------------------------

    def _sync(self, counter: Any, totals: dict[Any, float], key: Any, total: float) -> None:
        previous = totals.get(key, 0.0)
        # a total that went down was reset (a new alert manager, a restarted server): count it from zero
        delta = total - previous if total >= previous else total
        if delta > 0:
            counter.inc(delta)
        totals[key] = total

    def sync_alerts(self, sent_by_severity: Mapping[str, float], suppressed: float) -> None:
        """Bring the alert counters up to the alert manager's running totals."""
        sent = self.counter("monitoring_alerts_sent_total")
        for severity, total in sent_by_severity.items():
            self._sync(sent.labels(severity), self._alert_totals, ("sent", severity), float(total))
        self._sync(self.counter("monitoring_alerts_suppressed_total"), self._alert_totals, "suppressed", suppressed)

    def sync_cache(self, server: str, hits: float, requests: float) -> None:
        """Bring a server's cache counters up to its running totals."""
        self._sync(self.counter("mcp_cache_hits_total").labels(server), self._cache_totals, (server, "h"), hits)
        self._sync(self.counter("mcp_cache_requests_total").labels(server), self._cache_totals, (server, "r"), requests)

    # --- MCP tool calls -----------------------------------------------------------------------------

    def record_tool_call(self, server: str, tool: str, duration_seconds: float, error_type: str | None = None) -> None:
        """One tool call: counted, timed, and counted as an error of `error_type` when it failed."""
        self.counter("mcp_tool_calls_total").labels(server, tool).inc()
        self.histogram("mcp_tool_duration_seconds").labels(server, tool).observe(max(0.0, duration_seconds))
        if error_type is not None:
            self.counter("mcp_tool_errors_total").labels(server, tool, error_type).inc()

    def exposition(self) -> bytes:
        """The registry in Prometheus text format (what GET /metrics serves)."""
        return generate_latest(self.registry)
