"""The integrator's watch inside the sidecar: the server that makes the MCP circuit breaker actually run.

At start it initialises the process's MCPRiskIntegrator over the bot's state files (read-only views) and
enables it when MCP_INTEGRATION_ENABLED says so. Then, every MONITOR_INTERVAL_SECONDS, it calls
`monitor_all()` (which trips the MCP breaker on the sidecar's CPU/memory and on trading latency p99, and
runs the half-open trial once the cooldown is over), and after each new test run of the testing server
it calls `verify_test_coverage()` (coverage below 0.8 × the threshold trips, below the threshold alerts).

It is given the same integrator as the rest of the sidecar (mcp.sidecar_builder builds it once): the gate the
codebase search and testing servers ask, the "gate" block of the monitoring's /health, the dashboard's
reset and Telegram's /reset_mcp all see one breaker. It is always on in `all` and never gated itself:
watching is how heavy work gets deferred, so it must keep running while heavy work is held back.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from typing import Any, Protocol

from config.settings import Settings
from core.integrations.gate_rules import MarketHours
from mcp.health import HealthStatus
from mcp.monitoring.gate_status import gate_summary

logger = logging.getLogger(__name__)

# statuses of a finished run that carry a coverage figure and that an unchanged tree would repeat
VERIFIABLE_RUN_STATUSES = frozenset({"passed", "failed"})
# a watch that cannot run monitor_all this many times in a row is critical, not just degraded
FAILURES_BEFORE_CRITICAL = 3


class CoverageSource(Protocol):
    """The part of the testing server the watch reads: its last recorded run."""

    async def get_coverage(self) -> dict[str, Any]:
        """The last run's result (`run_id`, `status`, `coverage`, …)."""
        ...


def _utc_now() -> datetime:
    return datetime.now(UTC)


def run_to_verify(latest: Any, last_seen: str | None) -> str | None:
    """The run id of `latest` when it is a new finished run with a coverage figure, else None.

    Runs without a figure (errors, timeouts, a missing project) are never verified: verification may
    re-run the tests, and such a run is re-run rather than reused, so one failure would start another.
    """
    if not isinstance(latest, Mapping):
        return None
    run_id, coverage = latest.get("run_id"), latest.get("coverage")
    if not isinstance(run_id, str) or not run_id or run_id == last_seen:
        return None
    if latest.get("status") not in VERIFIABLE_RUN_STATUSES:
        return None
    if isinstance(coverage, bool) or not isinstance(coverage, int | float) or not 0.0 <= coverage <= 1.0:
        return None
    return run_id


def watch_status(
    breaker: Mapping[str, Any], *, monitor_failures: int, last_error: str | None
) -> tuple[HealthStatus, str]:
    """The watch's own health: is monitor_all running, and does the MCP breaker need a human?

    An open or half-open breaker is the watch doing its job (healthy, and the message says so); one locked
    open after the failed recoveries needs a manual reset, so it is degraded until someone does.
    """
    if monitor_failures >= FAILURES_BEFORE_CRITICAL:
        return HealthStatus.CRITICAL, f"monitor_all failed {monitor_failures} times in a row: {last_error}"
    if monitor_failures:
        return HealthStatus.DEGRADED, f"the last monitor_all failed: {last_error}"
    state, reason = breaker.get("state"), breaker.get("reason")
    if breaker.get("locked"):
        return HealthStatus.DEGRADED, (
            f"MCP circuit breaker locked open ({reason}); reset it by hand: dashboard, Telegram /reset_mcp or CLI"
        )
    if state == "open":
        remaining = breaker.get("cooldown_remaining_seconds")
        trial = f"; trial in {remaining:.0f} s" if isinstance(remaining, int | float) else ""
        return HealthStatus.HEALTHY, f"MCP circuit breaker open ({reason}){trial}"
    if state == "half_open":
        return HealthStatus.HEALTHY, f"MCP circuit breaker half-open: the next check decides ({reason})"
    return HealthStatus.HEALTHY, "MCP circuit breaker closed"


def monitor_figures(result: Mapping[str, Any]) -> dict[str, Any]:
    """The figures of one monitor_all answer worth keeping for health(): resources, latency, causes, mode."""
    usage = result.get("resource_usage") if isinstance(result.get("resource_usage"), Mapping) else {}
    latency = result.get("trading_latency") if isinstance(result.get("trading_latency"), Mapping) else {}
    risk = result.get("risk_state") if isinstance(result.get("risk_state"), Mapping) else {}
    return {
        "at": result.get("timestamp"),
        "mode": result.get("mode"),
        "market_hours": result.get("market_hours"),
        "total_cpu_percent": usage.get("total_cpu_percent"),
        "total_memory_mb": usage.get("total_memory_mb"),
        "processes": usage.get("processes"),
        "within_limits": usage.get("within_limits"),
        "resource_status": usage.get("status"),
        "limit_cpu_percent": usage.get("limit_cpu_percent"),
        "limit_memory_mb": usage.get("limit_memory_mb"),
        "trading_latency_p99_ms": latency.get("p99_ms"),
        "trading_latency_budget_ms": latency.get("budget_ms"),
        "latency_within_budget": latency.get("within_budget"),
        "latency_note": latency.get("note"),
        "trading_state": risk.get("trading_state"),
        "causes": list(result.get("causes") or []),
    }


def coverage_figures(result: Mapping[str, Any]) -> dict[str, Any]:
    """The figures of one verify_test_coverage answer worth keeping for health()."""
    keys = ("status", "coverage", "threshold", "meets_threshold", "verdict", "action", "run_id", "reason", "message")
    return {key: result.get(key) for key in keys if result.get(key) is not None}


class RiskWatchServer:
    """Runs the integrator's monitoring and coverage checks (see the module docstring); no tools of its own.

    `integrator` is the sidecar's MCPRiskIntegrator (mcp.sidecar_builder builds it once and hands it to
    everyone). `testing` is the sidecar's TestingServer, or None when it does not run.
    """

    name = "risk_integrator"

    def __init__(
        self,
        settings: Settings,
        integrator: Any,
        *,
        testing: CoverageSource | None = None,
        interval: float | None = None,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
        clock: Callable[[], datetime] = _utc_now,
    ) -> None:
        self.settings = settings
        self.integrator = integrator
        self.testing = testing
        self.interval = float(interval if interval is not None else settings.monitor_interval_seconds)
        if self.interval <= 0:
            raise ValueError(f"interval: expected seconds > 0, received {self.interval}")
        self._sleep = sleep
        self._clock = clock
        self._hours = MarketHours.from_settings(settings)
        self.ticks = 0
        self.monitor_failures = 0
        self.last_error: str | None = None
        self.last_monitor: dict[str, Any] | None = None
        self.last_coverage: dict[str, Any] | None = None
        self.last_seen_run: str | None = None
        self.coverage_checks = 0

    # --- Server protocol --------------------------------------------------------------------------

    async def run(self, ready: asyncio.Event) -> None:
        """Initialise and enable the integrator, check once, say ready, then check every interval."""
        integrator = self.integrator
        await integrator.initialize(None, None)  # None, None: read-only views of the bot's state files
        if self.settings.mcp_integration_enabled:
            await integrator.enable()
        else:
            await integrator.disable()
            logger.warning("MCP_INTEGRATION_ENABLED=false: heavy work stays deferred; monitoring runs in basic mode")
        if not self.settings.mcp_circuit_breaker_enabled:
            logger.warning("MCP_CIRCUIT_BREAKER_ENABLED=false: limits are reported but never trip the MCP breaker")
        # the last run recorded before this start was judged by the process that saw it
        self.last_seen_run = await self._baseline_run()
        await self.tick()
        ready.set()
        while True:
            await self._sleep(self.interval)
            await self.tick()

    def health(self) -> dict[str, Any]:
        """The MCP breaker, the gate decision, the last monitor_all figures and the last coverage verdict."""
        integrator = self.integrator
        breaker = integrator.get_mcp_circuit_breaker_state()
        statistics = integrator.get_statistics()
        status, message = watch_status(breaker, monitor_failures=self.monitor_failures, last_error=self.last_error)
        return {
            "status": status.value,
            "message": message,
            "enabled": statistics.get("enabled"),
            "mcp_circuit_breaker": {
                key: breaker.get(key)
                for key in ("state", "reason", "locked", "trips", "failed_recoveries", "cooldown_remaining_seconds")
            },
            "gate": gate_summary(statistics, breaker, self._clock(), self._hours),
            "monitor": self.last_monitor,
            "monitor_checks": statistics.get("monitor_checks"),
            "monitor_failures": self.monitor_failures,
            "last_error": self.last_error,
            "interval_seconds": self.interval,
            "coverage": self.last_coverage,
            "coverage_checks": self.coverage_checks,
        }

    def tools(self) -> list[Callable[..., Any]]:
        """None: the integrator's state reaches MCP clients through the monitoring tools (get_gate_state)."""
        return []

    # --- one round --------------------------------------------------------------------------------

    async def tick(self) -> None:
        """One round: monitor_all, then verify the coverage of a test run finished since the last round."""
        self.ticks += 1
        await self._monitor()
        await self._verify_new_run()

    async def _monitor(self) -> None:
        try:
            result = await self.integrator.monitor_all()
        except Exception as e:
            self.monitor_failures += 1
            self.last_error = f"{type(e).__name__}: {e}"
            logger.exception("monitor_all failed (%d in a row); the next round tries again", self.monitor_failures)
            return
        self.monitor_failures = 0
        self.last_error = None
        self.last_monitor = monitor_figures(result)
        if self.last_monitor["causes"]:
            logger.warning("MCP limits exceeded: %s", "; ".join(self.last_monitor["causes"]))

    async def _latest_run(self) -> Any:
        if self.testing is None:
            return None
        try:
            return await self.testing.get_coverage()
        except Exception:
            logger.exception("cannot read the testing server's last run; coverage is checked again next round")
            return None

    async def _baseline_run(self) -> str | None:
        latest = await self._latest_run()
        run_id = latest.get("run_id") if isinstance(latest, Mapping) else None
        return run_id if isinstance(run_id, str) else None

    async def _verify_new_run(self) -> None:
        run_id = run_to_verify(await self._latest_run(), self.last_seen_run)
        if run_id is None:
            return
        try:
            result = await self.integrator.verify_test_coverage()
        except Exception as e:
            # the integrator answers errors as results; an exception here is a bug: judged once, not retried
            logger.exception("verify_test_coverage failed for run %s", run_id)
            result = {"status": "error", "run_id": run_id, "message": f"{type(e).__name__}: {e}"}
        self.coverage_checks += 1
        self.last_coverage = coverage_figures(result)
        if result.get("status") == "deferred":
            # not judged yet (market hours, breaker open, a run in progress): try again next round
            logger.info("coverage of run %s not verified yet: %s", run_id, result.get("reason"))
            return
        self.last_seen_run = run_id
        logger.info(
            "coverage of run %s verified: %s (action %s)", run_id, result.get("verdict"), result.get("action", "none")
        )
