"""The health checks of SPEC §6, built from Settings, each on its own interval.

| component        | check                | judged on                                                   |
|------------------|----------------------|-------------------------------------------------------------|
| main_bot         | MainBotCheck         | snapshot present, valid and fresh; the bot's pid alive       |
| trade_executor   | TradeExecutorCheck   | latency p99 vs budget, order error rate, the bot's RSS       |
| circuit_breaker  | CircuitBreakerCheck  | trading state (HALTED critical), daily loss vs the percents  |
| <each server>    | ServersCheck         | the supervisor's state of it and its own health()            |
| sidecar          | SidecarCheck         | this process's CPU and RSS vs the monitoring / hard limits   |
| host             | HostCheck            | host CPU, memory, disk of STATE_DIR: means over a window     |

The `monitoring` component (the checks themselves on time?) is added by the service. Each check has a
`warmup` (its minimum duration): until it has run that long, the scheduler shows its components as
`starting`, whatever the first readings say.
"""

from __future__ import annotations

from pathlib import Path

from config.settings import Settings
from core.integrations.readonly import BREAKER_STATE_FILE_NAME
from core.risk_snapshot import risk_snapshot_path
from mcp.monitoring.base import Check, ComponentResult, Primable, Reading
from mcp.monitoring.bot_checks import CircuitBreakerCheck, ErrorRateWindow, MainBotCheck, TradeExecutorCheck
from mcp.monitoring.process_checks import HostCheck, ServersCheck, SidecarCheck
from mcp.monitoring.sources import BotStateReader, StatusFileServerStates
from mcp.monitoring.thresholds import (
    HOST_SAMPLE_SECONDS,
    HOST_WINDOW_FACTOR,
    MIN_DURATION_INTERVALS,
    MonitoringLimits,
)
from mcp.monitoring.wiring import MonitoringSources
from mcp.status import STATUS_FILE_NAME

__all__ = [
    "Check",
    "CircuitBreakerCheck",
    "ComponentResult",
    "ErrorRateWindow",
    "HostCheck",
    "MainBotCheck",
    "Primable",
    "Reading",
    "ServersCheck",
    "SidecarCheck",
    "TradeExecutorCheck",
    "build_checks",
]


def build_checks(settings: Settings, sources: MonitoringSources | None = None) -> list[Check]:
    """Every check of the table above, with intervals from MONITOR_INTERVAL_SECONDS (or `sources.interval`).

    Without `sources.server_states`, server states come from this process's supervisor status file.
    `sources.hold` is the minimum duration of every level and each check's warm-up (default:
    MIN_DURATION_INTERVALS intervals; tests of the ratings themselves pass 0, and 0 for `min_cpu_span`,
    the age a CPU baseline needs).
    """
    sources = MonitoringSources() if sources is None else sources
    psutil_like, pid_alive, clock = sources.psutil_like, sources.pid_exists, sources.clock
    state_dir, breaker_file, server_states = sources.state_dir, sources.breaker_file, sources.server_states
    interval, hold, min_cpu_span = sources.interval, sources.hold, sources.min_cpu_span
    base = float(interval if interval is not None else settings.monitor_interval_seconds)
    folder = Path(state_dir) if state_dir is not None else Path(settings.state_dir)
    limits = MonitoringLimits.from_settings(settings)
    reader = BotStateReader(
        risk_snapshot_path(folder), Path(breaker_file) if breaker_file is not None else folder / BREAKER_STATE_FILE_NAME
    )
    # every level, the first included, needs readings spanning `hold`: until then a component is `starting`
    hold = base * MIN_DURATION_INTERVALS if hold is None else float(hold)
    if server_states is None:
        # the supervisor rewrites its status file every MCP_HEALTH_LOOP_SECONDS; allow missing two ticks
        max_age = 3 * settings.mcp_health_loop_seconds + 5
        server_states = StatusFileServerStates(folder / STATUS_FILE_NAME, clock=clock, max_age=max_age)
    return [
        MainBotCheck(reader, pid_alive, limits, interval=base, warmup=hold),
        TradeExecutorCheck(reader, limits, interval=base, min_duration=hold),
        CircuitBreakerCheck(reader, limits, max_daily_loss=settings.max_daily_loss, interval=base, min_duration=hold),
        ServersCheck(server_states, interval=base, min_duration=hold),
        SidecarCheck(psutil_like, limits, interval=base, min_duration=hold, min_cpu_span=min_cpu_span),
        HostCheck(
            psutil_like,
            limits,
            folder,
            interval=min(base, HOST_SAMPLE_SECONDS),
            window=base * HOST_WINDOW_FACTOR,
            min_duration=hold,
            min_cpu_span=min_cpu_span,
        ),
    ]
