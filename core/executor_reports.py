"""Read-only reports of the trade executor: risk parameters, their usage, test-coverage impact.

Pure functions over figures the executor hands in; none of them touches trading state.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from core.integrations.rules import CoverageVerdict, coverage_verdict, critical_coverage_below

# Where each risk parameter comes from and who enforces it: one table feeds the snapshot's
# `risk_parameters`, the usage report and the sidecar's view (names are Settings fields; the env var is
# the upper-case name).
RISK_PARAMETERS: dict[str, str] = {
    "max_daily_loss": "circuit_breaker",
    "max_order_size": "trade_executor",
    "max_position_size": "trade_executor",
    "max_total_exposure": "trade_executor",
    "max_open_positions": "trade_executor",
    "max_slippage": "trade_executor",
    "min_order_size": "trade_executor",
    "max_orders_per_minute": "trade_executor",
    "stop_loss": "trade_executor",
    "consecutive_loss_limit": "circuit_breaker",
    "trading_latency_budget_ms": "monitoring",
}
EXTRA_USAGE_PARAMETERS: dict[str, str] = {
    "copy_ratio": "trade_executor",
    "error_burst_count": "circuit_breaker",
}
# A breaker trip blocks entries because of one parameter; denials are credited to it.
TRIP_KIND_PARAMETER: dict[str, str] = {
    "daily_loss": "max_daily_loss",
    "consecutive_losses": "consecutive_loss_limit",
    "error_burst": "error_burst_count",
}
# The files whose coverage matters most to trading safety (relative to the project root).
RISK_FILES: tuple[str, ...] = (
    "core/trade_executor.py",
    "core/pre_trade_checks.py",
    "core/portfolio.py",
    "core/latency.py",
    "core/circuit_breaker.py",
    "core/risk_snapshot.py",
)


def risk_parameter_values(settings: Any, max_daily_loss: float | None = None) -> dict[str, float | int]:
    """The current value of every risk parameter (the breaker's own daily-loss limit when known)."""
    values: dict[str, float | int] = {name: getattr(settings, name) for name in RISK_PARAMETERS}
    if max_daily_loss is not None:
        values["max_daily_loss"] = max_daily_loss
    return values


def usage_report(
    values: Mapping[str, float | int],
    extra_values: Mapping[str, float | int],
    usage: Mapping[str, tuple[int, int]],
) -> dict[str, Any]:
    """For each parameter: value, setting, env var, enforcer, checks that used it, denials it caused."""
    parameters: dict[str, dict[str, Any]] = {}
    for name, enforced_by in (RISK_PARAMETERS | EXTRA_USAGE_PARAMETERS).items():
        checks, denials = usage.get(name, (0, 0))
        value = values[name] if name in values else extra_values.get(name)
        parameters[name] = {
            "value": value,
            "source": f"settings.{name}",
            "env": name.upper(),
            "enforced_by": enforced_by,
            "checks": checks,
            "denials": denials,
        }
    breaker_checks, breaker_denials = usage.get("circuit_breaker", (0, 0))
    return {
        "parameters": parameters,
        "circuit_breaker": {"checks": breaker_checks, "denials": breaker_denials},
        "total_checks": sum(p["checks"] for p in parameters.values()) + breaker_checks,
        "total_denials": sum(p["denials"] for p in parameters.values()) + breaker_denials,
        "read_only": True,
    }


# The executor's word for each coverage verdict: the `impact` values of check_mcp_test_coverage_impact.
COVERAGE_IMPACT: dict[CoverageVerdict, str] = {
    CoverageVerdict.OK: "none",
    CoverageVerdict.BELOW_THRESHOLD: "warning",
    CoverageVerdict.CRITICAL: "critical",
}
_RECOMMENDATIONS: dict[CoverageVerdict, str] = {
    CoverageVerdict.OK: "coverage meets the threshold; no action",
    CoverageVerdict.BELOW_THRESHOLD: (
        "coverage is below the threshold: add tests for the risk files before changing them"
    ),
    CoverageVerdict.CRITICAL: (
        "coverage is below 0.8 x threshold: the sidecar trips its MCP breaker; do not deploy risk-core changes"
    ),
}


def _coverage_fraction(name: str, value: float) -> float:
    is_number = not isinstance(value, bool) and isinstance(value, int | float)
    if not (is_number and math.isfinite(value) and 0.0 <= value <= 1.0):
        raise ValueError(f"{name} must be a fraction within [0, 1] (0.85 means 85 %), received {value!r}")
    return float(value)


def coverage_impact_report(coverage: float, threshold: float) -> dict[str, Any]:
    """The executor's view of a coverage fraction against the threshold (both in [0, 1]); trading is never
    changed by it. The grading is core.integrations.rules.coverage_verdict, the sidecar's own rule."""
    coverage = _coverage_fraction("coverage", coverage)
    threshold = _coverage_fraction("threshold", threshold)
    verdict = coverage_verdict(coverage, threshold)
    return {
        "coverage": coverage,
        "threshold": threshold,
        "critical_below": critical_coverage_below(threshold),
        "meets_threshold": verdict is CoverageVerdict.OK,
        "impact": COVERAGE_IMPACT[verdict],
        "risk_files": list(RISK_FILES),
        "trading_affected": False,
        "recommendation": _RECOMMENDATIONS[verdict],
    }
