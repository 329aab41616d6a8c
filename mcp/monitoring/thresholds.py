"""Every threshold of the health checks, in one table, built from Settings.

Thresholds that are settings (the latency budget, the daily-loss percentages, the sidecar's resource
limits) come from Settings; the few that are not (host and bot memory, error rate, snapshot age) are the
constants below, so that an operator reading this file sees every number a level depends on.
"""

from __future__ import annotations

from dataclasses import dataclass

from config.settings import Settings
from mcp.monitoring.levels import Thresholds

# a recovery must clear its threshold by this fraction of the warning threshold (the hysteresis band)
MARGIN_FRACTION = 0.05
# a level change must be asked for by readings spanning this many check intervals
MIN_DURATION_INTERVALS = 1.5
# trading latency p99 this many times the budget is critical (at the budget: degraded)
LATENCY_CRITICAL_FACTOR = 1.5
# the bot rewrites its snapshot at least every 10 s (core.risk_snapshot heartbeat)
SNAPSHOT_AGE_WARNING_SECONDS = 30.0
SNAPSHOT_AGE_CRITICAL_SECONDS = 60.0
# failed / (executed + failed) orders over the error-rate window, judged once enough orders were tried
ERROR_RATE_WARNING = 0.05
ERROR_RATE_CRITICAL = 0.25
ERROR_RATE_WINDOW_SECONDS = 300.0
ERROR_RATE_MIN_ATTEMPTS = 5
BOT_MEMORY_WARNING_MB = 512.0
BOT_MEMORY_CRITICAL_MB = 1024.0
HOST_CPU_PERCENT = (85.0, 95.0)
HOST_MEMORY_PERCENT = (85.0, 95.0)
HOST_DISK_PERCENT = (85.0, 95.0)
# host figures are judged on their mean over this multiple of MONITOR_INTERVAL_SECONDS (a window, as Glances
# and Netdata do), sampled every HOST_SAMPLE_SECONDS (or MONITOR_INTERVAL_SECONDS when that is shorter)
HOST_WINDOW_FACTOR = 2.0
HOST_SAMPLE_SECONDS = 10.0


def rising(warning: float, critical: float) -> Thresholds:
    """Thresholds for a figure where higher is worse, with the standard hysteresis margin."""
    return Thresholds(warning, critical, higher_is_worse=True, margin=abs(warning) * MARGIN_FRACTION)


@dataclass(frozen=True, slots=True)
class MonitoringLimits:
    """The thresholds of every figure the checks judge (see the module docstring for their sources)."""

    latency_budget_ms: float
    latency_p99_ms: Thresholds
    error_rate: Thresholds
    bot_memory_mb: Thresholds
    daily_loss_fraction: Thresholds
    sidecar_cpu_percent: Thresholds
    sidecar_memory_mb: Thresholds
    host_cpu_percent: Thresholds
    host_memory_percent: Thresholds
    host_disk_percent: Thresholds
    snapshot_age_seconds: tuple[float, float] = (SNAPSHOT_AGE_WARNING_SECONDS, SNAPSHOT_AGE_CRITICAL_SECONDS)
    error_rate_window_seconds: float = ERROR_RATE_WINDOW_SECONDS
    error_rate_min_attempts: int = ERROR_RATE_MIN_ATTEMPTS

    @classmethod
    def from_settings(cls, settings: Settings) -> MonitoringLimits:
        """TRADING_LATENCY_BUDGET_MS, DAILY_LOSS_*_PERCENT, MONITORING_MAX_* (degraded) and MCP_RESOURCE_LIMIT_*
        (critical), plus the module's constants."""
        budget = settings.trading_latency_budget_ms
        # the sidecar is degraded past the monitoring limits and critical past the hard (systemd) limits;
        # a hard limit below its monitoring limit leaves no degraded band rather than an invalid pair
        cpu_warning = min(settings.monitoring_max_cpu_percent, settings.mcp_resource_limit_cpu_percent)
        memory_warning = min(settings.monitoring_max_memory_mb, settings.mcp_resource_limit_mb)
        return cls(
            latency_budget_ms=budget,
            latency_p99_ms=rising(budget, budget * LATENCY_CRITICAL_FACTOR),
            error_rate=rising(ERROR_RATE_WARNING, ERROR_RATE_CRITICAL),
            bot_memory_mb=rising(BOT_MEMORY_WARNING_MB, BOT_MEMORY_CRITICAL_MB),
            daily_loss_fraction=rising(settings.daily_loss_warning_percent, settings.daily_loss_critical_percent),
            sidecar_cpu_percent=rising(cpu_warning, settings.mcp_resource_limit_cpu_percent),
            sidecar_memory_mb=rising(memory_warning, settings.mcp_resource_limit_mb),
            host_cpu_percent=rising(*HOST_CPU_PERCENT),
            host_memory_percent=rising(*HOST_MEMORY_PERCENT),
            host_disk_percent=rising(*HOST_DISK_PERCENT),
        )
