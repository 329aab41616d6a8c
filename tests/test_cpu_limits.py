"""The sidecar's three CPU settings govern three different things (README "Configuration", issue 12).

MONITORING_MAX_CPU_PERCENT (1) makes the sidecar degraded; MCP_BREAKER_CPU_LIMIT_PERCENT (5) fails the
trading breaker's `check_mcp_resource_usage` record, which never trips anything; MCP_RESOURCE_LIMIT_CPU_PERCENT
(15) is the hard limit: critical, and the MCP breaker trips when the sidecar stays over it.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from config.settings import Settings
from core.breaker_rules import TradingState
from core.circuit_breaker import CircuitBreaker
from core.integrations.mcp_risk_integration import MCPRiskIntegrator
from mcp.monitoring.levels import Level
from mcp.monitoring.thresholds import MonitoringLimits
from tests.fakes.fake_psutil import FakeProc

OFF_HOURS = datetime(2026, 11, 21, 20, 0, tzinfo=UTC)


class MovableClock:
    """A UTC clock that moves only when told."""

    def __init__(self) -> None:
        self.now = OFF_HOURS

    def __call__(self) -> datetime:
        return self.now


async def no_alert(alert_type: str, message: str, severity: str) -> None:
    """The integrator's alert channel; these tests read the breaker's state instead."""


@pytest.mark.parametrize(
    ("cpu", "sidecar_level", "record_ok", "mcp_breaker"),
    [
        (0.5, Level.HEALTHY, True, "closed"),
        (3.0, Level.DEGRADED, True, "closed"),  # over MONITORING_MAX_CPU_PERCENT=1
        (8.0, Level.DEGRADED, False, "closed"),  # over MCP_BREAKER_CPU_LIMIT_PERCENT=5 too
        (20.0, Level.CRITICAL, False, "open"),  # over MCP_RESOURCE_LIMIT_CPU_PERCENT=15
    ],
)
async def test_one_sustained_cpu_figure_against_the_three_default_limits(
    tmp_path: Path, cpu: float, sidecar_level: Level, record_ok: bool, mcp_breaker: str
) -> None:
    settings = Settings(_env_file=None, state_dir=tmp_path / "state")

    assert MonitoringLimits.from_settings(settings).sidecar_cpu_percent.level(cpu) is sidecar_level

    breaker = CircuitBreaker.from_settings(settings)
    assert await breaker.check_mcp_resource_usage(cpu, 50.0, settings.mcp_resource_limit_mb) is record_ok
    assert breaker.state is TradingState.ACTIVE  # the record never touches trading

    clock = MovableClock()
    integrator = MCPRiskIntegrator(
        settings, clock=clock, process=FakeProc(pid=100, cpu=cpu, rss_mb=50.0).handle(), alert=no_alert
    )
    for _ in range(4):  # psutil's first reading primes it; then three checks 5 s apart: sustained
        result = await integrator.monitor_all()
        clock.now += timedelta(seconds=5)
    assert result["mcp_circuit_breaker"]["state"] == mcp_breaker
    assert result["resource_usage"]["within_limits"] is (cpu <= settings.mcp_resource_limit_cpu_percent)


def test_the_three_defaults_are_ordered_degraded_record_hard_limit() -> None:
    settings = Settings(_env_file=None)
    assert (
        settings.monitoring_max_cpu_percent,
        settings.mcp_breaker_cpu_limit_percent,
        settings.mcp_resource_limit_cpu_percent,
    ) == (1.0, 5.0, 15.0)
