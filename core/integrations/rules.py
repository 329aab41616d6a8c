"""Pure trip rules of the MCP circuit breaker: sidecar resources, trading latency, test coverage.

Each rule takes the figures and returns a verdict or the trip reason (None = no trip); the integrator
applies them. Reasons carry the figures and the limits so an operator reading an alert knows both.

The coverage rule here is the only one in the project: the integrator judges test runs with it, the
circuit breaker's MCP record grades `check_mcp_test_coverage` with it and the trade executor's
`check_mcp_test_coverage_impact` reports it.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

# a CPU figure averaged over less than this is too noisy to count towards a trip (psutil's window is the
# time since the previous sample; back-to-back checks give windows of milliseconds)
MIN_CPU_WINDOW_SECONDS = 1.0

# coverage below this fraction of the threshold trips the breaker; below the threshold alone only alerts
# (0.8 × 85 % = 68 %, the user's test plan)
CRITICAL_COVERAGE_FACTOR = 0.8


class CoverageVerdict(StrEnum):
    """How a coverage figure stands against its threshold; the values are the persisted/JSON spellings."""

    OK = "ok"
    BELOW_THRESHOLD = "below_threshold"  # alert
    CRITICAL = "critical"  # trip


def critical_coverage_below(threshold: float) -> float:
    """The coverage under which a figure is CRITICAL: 0.8 × threshold."""
    return CRITICAL_COVERAGE_FACTOR * threshold


def coverage_verdict(coverage: float, threshold: float) -> CoverageVerdict:
    """OK at or above the threshold, CRITICAL below 0.8 × threshold, BELOW_THRESHOLD in between."""
    if coverage >= threshold:
        return CoverageVerdict.OK
    if coverage < critical_coverage_below(threshold):
        return CoverageVerdict.CRITICAL
    return CoverageVerdict.BELOW_THRESHOLD


def coverage_trip_reason(coverage: float, threshold: float) -> str | None:
    """The trip reason when coverage is critically low, else None."""
    if coverage_verdict(coverage, threshold) is not CoverageVerdict.CRITICAL:
        return None
    return (
        f"test coverage {coverage:.1%} is below {CRITICAL_COVERAGE_FACTOR:.0%} of the {threshold:.1%} threshold "
        f"({critical_coverage_below(threshold):.1%})"
    )


@dataclass(frozen=True)
class ResourceLimits:
    # issue 10: the CPU figure judged against cpu_percent is the sidecar tree's non-idle CPU; SCHED_IDLE work
    # (test runs, heavy threads) runs only on otherwise idle cores and never trips the breaker by itself
    """MCP_RESOURCE_LIMIT_CPU_PERCENT (percent of one CPU, like systemd's CPUQuota) and MCP_RESOURCE_LIMIT_MB."""

    cpu_percent: float
    memory_mb: float


def within_limits(cpu_percent: float, memory_mb: float, limits: ResourceLimits) -> bool:
    """True when both figures are at or under their limit."""
    return cpu_percent <= limits.cpu_percent and memory_mb <= limits.memory_mb


def next_cpu_breaches(
    breaches_in_a_row: int, cpu_percent: float, limit_percent: float, window_seconds: float | None
) -> int:
    """The count of CPU checks over the limit in a row after this one; too short a window leaves it as is."""
    if window_seconds is None or window_seconds < MIN_CPU_WINDOW_SECONDS:
        return breaches_in_a_row
    return breaches_in_a_row + 1 if cpu_percent > limit_percent else 0


def resource_trip_reasons(
    cpu_percent: float,
    memory_mb: float,
    limits: ResourceLimits,
    *,
    cpu_breaches_in_a_row: int,
    cpu_breaches_required: int,
) -> list[str]:
    """Trip reasons for the sidecar's process tree. Memory over the limit trips at once; CPU must stay over
    it for `cpu_breaches_required` checks in a row, so one busy sample does not open the breaker."""
    reasons = []
    if memory_mb > limits.memory_mb:
        reasons.append(f"sidecar memory {memory_mb:.1f} MB is over MCP_RESOURCE_LIMIT_MB={limits.memory_mb:g}")
    if cpu_percent > limits.cpu_percent and cpu_breaches_in_a_row >= cpu_breaches_required:
        reasons.append(
            f"sidecar CPU {cpu_percent:.1f}% is over MCP_RESOURCE_LIMIT_CPU_PERCENT={limits.cpu_percent:g} "
            f"for {cpu_breaches_in_a_row} checks in a row"
        )
    return reasons


def latency_trip_reason(
    p99_ms: float | None, samples: int, budget_ms: float, what: str = "trading latency"
) -> str | None:
    """The trip reason when a latency p99 (decision -> ack, or arrival -> ack) is over budget; None with no
    samples or no figure."""
    if p99_ms is None or samples <= 0 or p99_ms <= budget_ms:
        return None
    return f"{what} p99 {p99_ms:.1f} ms is over the {budget_ms:g} ms budget ({samples} trades measured)"
