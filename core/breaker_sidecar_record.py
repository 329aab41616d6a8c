"""The MCP-integration record kept beside the circuit breaker's trading state.

It records what the sidecar's checks saw (coverage, resources, enabled flag). By design nothing here can
change the trading state: the record holds no reference to the breaker's trip or counters.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from core.breaker_rules import fraction, positive, resource_figure, resource_violations
from core.integrations.rules import CoverageVerdict, coverage_verdict, critical_coverage_below

logger = logging.getLogger("core.circuit_breaker")


@dataclass(slots=True)
class McpRecord:
    """What the MCP checks saw; informational only."""

    enabled: bool = False
    test_coverage_threshold: float = 0.85
    enabled_at: str | None = None
    disabled_at: str | None = None
    coverage_checks: int = 0
    coverage_failures: int = 0
    critical_coverage_checks: int = 0
    resource_checks: int = 0
    resource_failures: int = 0
    last_coverage_check: dict[str, Any] | None = None
    last_resource_check: dict[str, Any] | None = None

    def record_coverage(self, coverage: float, threshold: float, now: datetime) -> bool:
        """Count one coverage check and keep its result; True iff coverage ≥ threshold."""
        coverage = fraction("coverage", coverage)
        threshold = fraction("threshold", threshold)
        verdict = coverage_verdict(coverage, threshold)
        ok = verdict is CoverageVerdict.OK
        self.coverage_checks += 1
        self.coverage_failures += 0 if ok else 1
        self.critical_coverage_checks += 1 if verdict is CoverageVerdict.CRITICAL else 0
        self.last_coverage_check = {
            "at": now.isoformat(),
            "coverage": coverage,
            "threshold": threshold,
            "ok": ok,
            "level": str(verdict),  # the persisted key stays "level"; its values are the verdict's
            "critical_below": critical_coverage_below(threshold),
        }
        if verdict is CoverageVerdict.CRITICAL:
            logger.warning(
                "MCP test coverage %.1f %% is critically low (below %.1f %%, threshold %.1f %%)",
                coverage * 100,
                critical_coverage_below(threshold) * 100,
                threshold * 100,
            )
        return ok

    def record_resources(
        self, cpu_percent: float, memory_mb: float, limit_mb: float, cpu_limit_percent: float, now: datetime
    ) -> bool:
        """Count one resource check and keep its result; False iff memory or CPU is over its limit."""
        cpu_percent = resource_figure("cpu_percent", cpu_percent)
        memory_mb = resource_figure("memory_mb", memory_mb)
        limit_mb = positive("limit_mb", limit_mb)
        problems = resource_violations(cpu_percent, memory_mb, limit_mb, cpu_limit_percent)
        self.resource_checks += 1
        self.resource_failures += 1 if problems else 0
        self.last_resource_check = {
            "at": now.isoformat(),
            "cpu_percent": cpu_percent,
            "memory_mb": memory_mb,
            "limit_mb": limit_mb,
            "cpu_limit_percent": cpu_limit_percent,
            "ok": not problems,
            "problems": problems,
        }
        if problems:
            logger.warning("MCP sidecar over its resource limits: %s", "; ".join(problems))
        return not problems

    def enable(self, test_coverage_threshold: float, now: datetime) -> None:
        """Mark the integration enabled with this coverage threshold."""
        self.test_coverage_threshold = fraction("test_coverage_threshold", test_coverage_threshold)
        self.enabled = True
        self.enabled_at = now.isoformat()

    def disable(self, now: datetime) -> None:
        """Mark the integration disabled."""
        self.enabled = False
        self.disabled_at = now.isoformat()

    def to_json(self) -> dict[str, Any]:
        """The JSON-safe form stored under `mcp_integration`."""
        return {
            "enabled": self.enabled,
            "test_coverage_threshold": self.test_coverage_threshold,
            "enabled_at": self.enabled_at,
            "disabled_at": self.disabled_at,
            "coverage_checks": self.coverage_checks,
            "coverage_failures": self.coverage_failures,
            "critical_coverage_checks": self.critical_coverage_checks,
            "resource_checks": self.resource_checks,
            "resource_failures": self.resource_failures,
            "last_coverage_check": self.last_coverage_check,
            "last_resource_check": self.last_resource_check,
        }
