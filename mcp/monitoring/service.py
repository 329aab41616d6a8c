"""MonitoringService: runs the checks on their intervals and serves what they found, cheaply.

After every round it updates the metrics and the history rings; `health_report()` and `history()` only
read those caches (no psutil, no file I/O), so /health, /metrics and the dashboard cost next to nothing
however often they are polled.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from config.settings import Settings
from mcp.health import verdict
from mcp.monitoring.base import Check, ComponentResult, Primable, iso
from mcp.monitoring.checks import build_checks
from mcp.monitoring.gate_status import GateStatusSource
from mcp.monitoring.levels import Level
from mcp.monitoring.metrics import MonitoringMetrics
from mcp.monitoring.process_checks import ServersCheck
from mcp.monitoring.scheduler import DEFAULT_CHECK_TIMEOUT_SECONDS, Scheduler
from mcp.monitoring.sources import ServerStatesSource, number
from mcp.monitoring.wiring import AlertStatsSource, AlertTotals, MonitoringSources, alert_totals_from_manager

logger = logging.getLogger(__name__)

__all__ = ["AlertStatsSource", "AlertTotals", "History", "MonitoringService", "alert_totals_from_manager"]

HISTORY_SIZE = 360
_NOTHING_CHARTED = object()
HISTORY_SERIES = ("trade_latency_p99_ms", "trade_latency_p50_ms", "sidecar_cpu_percent", "sidecar_rss_mb", "coverage")
# never spin, never sleep past the base interval (a check added or re-timed is picked up within one)
MIN_SLEEP_SECONDS = 0.05
# the gate block of /health (the MCP breaker) is re-read this often, so a trip or reset made by another
# process shows within a second (the dashboard caches /health for 0.25 s on top)
GATE_REFRESH_SECONDS = 0.5
FIRST_COMPONENTS = ("main_bot", "trade_executor", "circuit_breaker")
LAST_COMPONENTS = ("monitoring", "sidecar", "host")


def unknown_gate(reason: str) -> dict[str, Any]:
    """The gate block of /health when the gate's state cannot be read: every field unknown, and why."""
    return {"market_hours": None, "mcp_circuit_breaker": None, "heavy_work_allowed": None, "reason": reason}


class History:
    """Bounded rings of (epoch, value) points for the dashboard's charts."""

    def __init__(self, size: int = HISTORY_SIZE) -> None:
        self._series: dict[str, deque[list[float]]] = {name: deque(maxlen=size) for name in HISTORY_SERIES}

    def add(self, series: str, epoch: float, value: float | None) -> None:
        """Append a point (unknown values are skipped, not charted as zero)."""
        if value is not None:
            self._series[series].append([round(epoch, 3), value])

    def as_dict(self) -> dict[str, list[list[float]]]:
        """Every series, oldest point first."""
        return {name: list(points) for name, points in self._series.items()}


class MonitoringService:
    """Owns the checks, their cached results, the history and the metrics (see the module docstring)."""

    def __init__(
        self,
        settings: Settings,
        checks: Sequence[Check],
        *,
        metrics: MonitoringMetrics | None = None,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Any] = asyncio.sleep,
        interval: float | None = None,
        gate_status: GateStatusSource | None = None,
        alert_stats: AlertStatsSource | None = None,
        check_timeout: float = DEFAULT_CHECK_TIMEOUT_SECONDS,
        history_size: int = HISTORY_SIZE,
        on_round: Callable[[MonitoringService], None] | None = None,
        isolation: Callable[[], Mapping[str, Any]] | None = None,
    ) -> None:
        self.settings = settings
        self._isolation = isolation  # issue 10: which isolation keeps heavy work from hurting trading
        self.scheduler = Scheduler(checks, timeout=check_timeout)
        self.metrics = metrics if metrics is not None else MonitoringMetrics()
        self.interval = float(interval if interval is not None else settings.monitor_interval_seconds)
        self._clock = clock
        self._sleep = sleep
        self._gate_source = gate_status
        self._alert_stats = alert_stats
        self._on_round = on_round
        self._history = History(history_size)
        self._charted_coverage_run: object = _NOTHING_CHARTED
        self._servers = next((check for check in checks if isinstance(check, ServersCheck)), None)
        self.started_at = clock()
        self.rounds = 0
        self.last_round_at: float | None = None
        self._gate = unknown_gate("gate state not read yet")
        self._self_level: tuple[Level, float] | None = None
        self._alert_problem: str | None = None

    @classmethod
    def from_settings(
        cls, settings: Settings, sources: MonitoringSources | None = None, **kw: Any
    ) -> MonitoringService:
        """The standard checks (mcp.monitoring.checks.build_checks) over `sources` (used as given: None is
        none here; MonitoringServer fills the production defaults) around a new service; `kw` go to __init__."""
        sources = MonitoringSources() if sources is None else sources
        return cls(
            settings,
            build_checks(settings, sources),
            clock=sources.clock,
            sleep=sources.sleep,
            interval=sources.interval,
            gate_status=sources.gate_status,
            alert_stats=sources.alert_stats,
            isolation=sources.isolation,
            **kw,
        )

    def set_server_states(self, source: ServerStatesSource) -> None:
        """Judge the sidecar's servers from `source` (the supervisor's per-server states) from now on."""
        if self._servers is None:
            raise RuntimeError("this service has no ServersCheck to feed; build it with build_checks()")
        self._servers.source = source

    # --- running --------------------------------------------------------------------------------

    async def start(self) -> None:
        """Prime the checks that need a reference measurement (psutil CPU); a failure is left to the check."""
        for check in self.scheduler.checks.values():
            if isinstance(check, Primable):
                try:
                    await check.prime()
                except Exception:
                    logger.exception("priming health check %r failed; its first run will say why", check.name)

    async def run_round(self) -> list[ComponentResult]:
        """Run the checks that are due now and publish their results (metrics, history, gate)."""
        now = self._clock()
        results = await self.scheduler.run_due(now)
        if results:
            await self._after_round(results, now)
        return results

    async def run(self, ready: asyncio.Event | None = None) -> None:
        """Prime, run a first round, set `ready`, then run each check when due until cancelled."""
        await self.start()
        await self.run_round()
        if ready is not None:
            ready.set()
        while True:
            wait = self.scheduler.seconds_until_due(self._clock())
            await self._sleep(min(max(wait, MIN_SLEEP_SECONDS), self.interval, GATE_REFRESH_SECONDS))
            if not await self.run_round():
                await self._refresh_gate()

    async def _after_round(self, results: list[ComponentResult], now: float) -> None:
        self.rounds += 1
        self.last_round_at = now
        await self._refresh_gate()
        durations = {result.check: result.duration_seconds for result in results}
        for result in results:
            self.metrics.record_check(result.level)
        for duration in durations.values():
            self.metrics.observe_check_duration(duration)
        fresh = {result.component: result for result in results}
        self._publish(fresh, now)
        self._sync_alerts()
        if self._on_round is not None:
            try:
                self._on_round(self)
            except Exception:
                # a listener (the terminal printer: stdout may be a closed pipe) must not stop the checks
                logger.exception("the after-round listener failed; the checks go on")

    def _publish(self, fresh: Mapping[str, ComponentResult], now: float) -> None:
        levels = {name: result.level for name, result in self.scheduler.results().items()}
        levels["monitoring"] = self._self_component(now)[0]
        self.metrics.set_components(levels)
        if "sidecar" in fresh:
            figures = fresh["sidecar"].figures
            cpu, memory = number(figures.get("cpu_percent")), number(figures.get("memory_mb"))
            self.metrics.set_sidecar_usage(cpu, memory)
            self._history.add("sidecar_cpu_percent", now, cpu)
            self._history.add("sidecar_rss_mb", now, memory)
        if "trade_executor" in fresh:
            figures = fresh["trade_executor"].figures
            p50, p99 = number(figures.get("latency_p50_ms")), number(figures.get("latency_p99_ms"))
            self.metrics.set_trading_latency(p50, p99, self.settings.trading_latency_budget_ms)
            self._history.add("trade_latency_p50_ms", now, p50)
            self._history.add("trade_latency_p99_ms", now, p99)
        if "circuit_breaker" in fresh:
            state = fresh["circuit_breaker"].figures.get("trading_state")
            self.metrics.set_trading_breaker(state if isinstance(state, str) else None)
        for name, result in fresh.items():
            hits, requests = number(result.figures.get("cache_hits")), number(result.figures.get("cache_requests"))
            if result.check == "servers" and hits is not None and requests is not None:
                self.metrics.sync_cache(name, hits, requests)
        if "testing" in fresh:
            coverage = number(fresh["testing"].figures.get("coverage"))
            self.metrics.set_coverage(coverage, self.settings.mcp_testing_coverage_target)
            run_id = fresh["testing"].figures.get("coverage_run_id")
            # one chart point per test run, not one per check round
            if coverage is not None and run_id != self._charted_coverage_run:
                self._charted_coverage_run = run_id
                self._history.add("coverage", now, coverage)
        elif self.rounds == 1:
            self.metrics.set_coverage(None, self.settings.mcp_testing_coverage_target)

    async def _refresh_gate(self) -> None:
        if self._gate_source is None:
            self._gate = unknown_gate("no MCP risk integrator wired into the monitoring")
            self.metrics.set_gate(None, None)
            return
        try:
            self._gate = dict(await self._gate_source())
        except Exception as e:
            reason = f"gate state unavailable: {type(e).__name__}: {e}"
            if self._gate.get("reason") != reason:  # once per distinct problem, not once per round
                logger.exception("cannot read the integrator's gate state")
            self._gate = unknown_gate(reason)
        self.metrics.set_gate(self._gate.get("heavy_work_allowed"), self._gate.get("mcp_circuit_breaker"))

    def _sync_alerts(self) -> None:
        if self._alert_stats is None:
            return
        try:
            totals = self._alert_stats()
        except Exception as e:
            problem = f"{type(e).__name__}: {e}"
            if problem != self._alert_problem:  # once per distinct problem, not once per round
                logger.exception("cannot read the alert manager's totals")
            self._alert_problem = problem
            return
        self._alert_problem = None
        if totals is not None:
            self.metrics.sync_alerts(totals.sent_by_severity, totals.suppressed)

    # --- cached views -----------------------------------------------------------------------------

    def _self_component(self, now: float) -> tuple[Level, str, dict[str, Any]]:
        failing = dict(self.scheduler.errors)
        unavailable = self._servers.unavailable if self._servers is not None else "no servers check"
        figures: dict[str, Any] = {
            "rounds": self.rounds,
            "last_round_at": iso(self.last_round_at),
            "interval_seconds": self.interval,
            "failing_checks": failing,
            "server_states": unavailable or "ok",
            "checks": {
                name: {"interval_seconds": check.interval, "runs": self.scheduler.runs[name]}
                for name, check in self.scheduler.checks.items()
            },
        }
        if self.last_round_at is None:
            return Level.STARTING, "no health check round completed yet", figures
        age = now - self.last_round_at
        if age > 2 * self.interval + 5:
            return Level.DEGRADED, f"last round {age:.0f} s ago (interval {self.interval:g} s): checks stalled", figures
        if failing:
            return Level.DEGRADED, f"{len(failing)} check(s) failing: {', '.join(sorted(failing))}", figures
        return Level.HEALTHY, f"{self.rounds} round(s), last {age:.1f} s ago", figures

    def monitoring_component(self) -> dict[str, Any]:
        """The `monitoring` component: are the checks running on time, and are any failing?"""
        now = self._clock()
        level, message, figures = self._self_component(now)
        if self._self_level is None or self._self_level[0] is not level:
            self._self_level = (level, now)
        return {
            "status": level.value,
            "message": message,
            "figures": figures,
            "checked_at": iso(now),
            "since": iso(self._self_level[1]),
        }

    def components(self) -> dict[str, dict[str, Any]]:
        """Every component's cached result, bot first, then the servers, then the sidecar and host."""
        results = self.scheduler.results()
        servers = sorted(name for name in results if name not in FIRST_COMPONENTS + LAST_COMPONENTS)
        body: dict[str, dict[str, Any]] = {}
        for name in (*FIRST_COMPONENTS, *servers, *LAST_COMPONENTS):
            if name == "monitoring":
                body[name] = self.monitoring_component()
            elif name in results:
                body[name] = results[name].as_dict()
        return body

    def health_report(self) -> dict[str, Any]:
        """The body of GET /health (cached; never calls psutil or reads a file)."""
        now = self._clock()
        components = self.components()
        judged = verdict(components)  # the one verdict: /health, status, validate_health.sh, the dashboard
        breaker = components.get("circuit_breaker", {}).get("figures", {})
        return {
            "status": judged.status.value,
            "verdict": judged.as_dict(),
            "generated_at": iso(now),
            "uptime_seconds": round(max(0.0, now - self.started_at), 3),
            "environment": str(self.settings.environment),
            "components": components,
            "circuit_breaker": {
                "trading_state": breaker.get("trading_state"),
                "trip_reason": breaker.get("trip_reason"),
            },
            "gate": dict(self._gate),
            "isolation": None if self._isolation is None else dict(self._isolation()),
        }

    def history(self) -> dict[str, list[list[float]]]:
        """The body of GET /api/history: recent points per series, oldest first."""
        return self._history.as_dict()
