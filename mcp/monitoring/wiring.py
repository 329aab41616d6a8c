"""`MonitoringSources`: everything the monitoring checks read, and how they are timed, in one value.

The monitoring server, its service and the checks each took the same dozen keywords and passed them on
unchanged (issue 12). They now take one `MonitoringSources`; every field has its production default (the
gate block's source excepted: only the sidecar's graph has the integrator, mcp.sidecar_builder wires it), so
a test replaces only what it fakes:

    MonitoringServer(settings, sources=MonitoringSources(psutil_like=FakeHost(), clock=clock, hold=0.0))
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import psutil

from config.settings import Settings
from mcp.containment.runtime import process_isolation
from mcp.monitoring.gate_status import GateStatusSource
from mcp.monitoring.process_checks import MIN_CPU_SPAN_SECONDS
from mcp.monitoring.sources import PsutilLike, ServerStatesSource
from utils.alerts import get_alert_manager


@dataclass(frozen=True, slots=True)
class AlertTotals:
    """The alert manager's running totals: alerts sent by severity, alerts suppressed."""

    sent_by_severity: Mapping[str, float]
    suppressed: float


AlertStatsSource = Callable[[], AlertTotals | None]


def alert_totals_from_manager() -> AlertTotals | None:
    """The process's alert manager's totals (`sent_by_severity` when it keeps them, `suppressed_count`)."""
    manager = get_alert_manager()
    sent = getattr(manager, "sent_by_severity", None)
    return AlertTotals(dict(sent) if isinstance(sent, Mapping) else {}, float(getattr(manager, "suppressed_count", 0)))


@dataclass(frozen=True, slots=True)
class MonitoringSources:
    """What the checks read (processes, the bot's files, the servers, the gate, the alerts, the clock) and
    their timing. None means the production default named on the field."""

    # host and processes
    psutil_like: PsutilLike = psutil  # type: ignore[assignment]
    pid_exists: Callable[[int], bool] = psutil.pid_exists
    clock: Callable[[], float] = time.time
    sleep: Callable[[float], Any] = asyncio.sleep
    # None: the supervisor's status file in STATE_DIR (the sidecar wires the supervisor's own records)
    server_states: ServerStatesSource | None = None
    # None: no MCP risk integrator wired in; /health's gate block says so (the sidecar wires its integrator)
    gate_status: GateStatusSource | None = None
    # None: the process's alert manager (alert_totals_from_manager)
    alert_stats: AlertStatsSource | None = None
    # None: STATE_DIR, and circuit_breaker_state.json in it
    state_dir: Path | None = None
    breaker_file: Path | None = None
    # None: the process's containment for STATE_DIR (issue 10: which isolation keeps heavy work off trading)
    isolation: Callable[[], Mapping[str, Any]] | None = None
    # timing: None is MONITOR_INTERVAL_SECONDS, and MIN_DURATION_INTERVALS of it for every level's hold;
    # tests of the ratings themselves pass hold=0 and min_cpu_span=0 (the age a CPU baseline needs)
    interval: float | None = None
    hold: float | None = None
    min_cpu_span: float = MIN_CPU_SPAN_SECONDS

    @classmethod
    def production(cls, settings: Settings, **changes: Any) -> MonitoringSources:
        """Every default made explicit for `settings` (see `resolved`), with `changes` applied first."""
        return replace(cls(), **changes).resolved(settings)

    def resolved(self, settings: Settings) -> MonitoringSources:
        """These sources with the None defaults that have a production value filled in for `settings`."""
        folder = Path(self.state_dir) if self.state_dir is not None else Path(settings.state_dir)
        return replace(
            self,
            state_dir=folder,
            alert_stats=alert_totals_from_manager if self.alert_stats is None else self.alert_stats,
            isolation=functools.partial(process_isolation, folder) if self.isolation is None else self.isolation,
        )
