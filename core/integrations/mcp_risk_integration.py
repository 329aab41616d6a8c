"""MCPRiskIntegrator: gates the sidecar's heavy work and watches it, seeing the risk core read-only.

Heavy work (a codebase scan, a test run) is deferred during market hours, while the MCP circuit breaker
is open or half-open, and while the integration is disabled; the answer says so and why. Monitoring
(`monitor_all`) always runs: in "basic" mode it still measures the sidecar's process tree and reads the
bot's risk state, and it trips the MCP breaker when the sidecar uses too much non-idle CPU or memory or a
trading latency p99 (decision -> ack, arrival -> ack) is over budget; a test coverage below 0.8 × the
threshold trips it too. SCHED_IDLE work (test runs, scans) is reported apart and never trips it by itself.

This class is a thin composition of one part per job: HeavyWorkGate (heavy_work_gate.py: the switch,
market hours, the live MCP breaker), ParameterScan, CoverageJudge, SidecarMonitor and the statistics
(integrator_stats.py). The decisions themselves are pure functions (mcp_breaker.py, gate_rules.py,
rules.py). The search and testing servers come in as capabilities (capabilities.py): core never imports
the sidecar.

Example (the user's test plan, Phase 4)::

    integrator = get_mcp_risk_integrator()
    await integrator.initialize(circuit_breaker, trade_executor)   # kept as read-only views
    await integrator.trip_mcp_circuit_breaker("Test trip")          # integrator.mcp_circuit_breaker_active -> True
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from config.settings import Settings, get_settings
from core.integrations.breaker_control import AlertSender, send_via_alerts_module
from core.integrations.capabilities import SEARCH, TESTING, CapabilitySlot, SearchCapability, TestingCapability
from core.integrations.coverage_judge import CoverageJudge
from core.integrations.gate_rules import GateDecision
from core.integrations.heavy_work_gate import HeavyWorkGate, utc_now
from core.integrations.integrator_stats import IntegratorTally, statistics
from core.integrations.parameter_scan import ParameterScan
from core.integrations.process_tree import ProcessLike
from core.integrations.readonly import ReadOnlyView
from core.integrations.sidecar_monitor import SidecarMonitor

log = logging.getLogger(__name__)

__all__ = [
    "GateDecision",
    "MCPRiskIntegrator",
    "get_mcp_risk_integrator",
    "reset_process_integrator",
    "set_process_integrator",
]


class MCPRiskIntegrator:
    """Gates, monitors and protects the MCP sidecar; reads the risk core only through read-only views.

    `search` / `testing`: the sidecar's servers (SearchCapability / TestingCapability); None builds the
    installed ones from `settings` on first use. `work_gate`: a HeavyWorkGate built beforehand from the same
    settings (so servers built before this integrator are already gated by it; its clock, state file and
    alert channel are then the breaker's); None builds one from `settings`, `clock`, `state_file`, `alert`
    and `alert_timeout_seconds`.
    """

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        search: SearchCapability | None = None,
        testing: TestingCapability | None = None,
        clock: Callable[[], datetime] = utc_now,
        process: ProcessLike | None = None,
        state_file: Path | str | None = None,
        alert: AlertSender = send_via_alerts_module,
        coverage_max_age_seconds: float = 6 * 3600.0,
        cpu_breaches_required: int = 2,
        snapshot_stale_after_seconds: float = 60.0,
        alert_timeout_seconds: float = 10.0,
        work_gate: HeavyWorkGate | None = None,
    ) -> None:
        if settings is None:
            settings = work_gate.settings if work_gate is not None else get_settings()
        self.settings = settings
        self._clock = clock
        if work_gate is not None and work_gate.settings != settings:
            # one answer (a /health, a statistics dict) must never mix two configurations
            raise ValueError(
                "MCPRiskIntegrator(settings, work_gate=...) needs the gate built from the same settings: "
                "build both from one Settings object (HeavyWorkGate.from_settings(settings))"
            )
        if work_gate is None:
            work_gate = HeavyWorkGate.from_settings(
                self.settings,
                clock=clock,
                state_file=state_file,
                alert=alert,
                alert_timeout_seconds=alert_timeout_seconds,
            )
        self._gate = work_gate
        self._tally = IntegratorTally()
        self._scan = ParameterScan(work_gate, self._tally, CapabilitySlot(SEARCH, self.settings, search), clock=clock)
        self._coverage = CoverageJudge(
            self.settings,
            work_gate,
            self._tally,
            CapabilitySlot(TESTING, self.settings, testing),
            clock=clock,
            max_age_seconds=coverage_max_age_seconds,
        )
        self._monitor = SidecarMonitor(
            self.settings,
            work_gate,
            self._tally,
            clock=clock,
            process=process,
            cpu_breaches_required=cpu_breaches_required,
            snapshot_stale_after_seconds=snapshot_stale_after_seconds,
        )
        self._initialized = False

    # --- set-up -------------------------------------------------------------------------------

    async def initialize(self, circuit_breaker: Any = None, trade_executor: Any = None) -> None:
        """Keep read-only views of the breaker and the executor; None means their state files (the sidecar)."""
        self._monitor.install_views(circuit_breaker, trade_executor)
        self._initialized = True
        log.info("MCP risk integrator initialized with %s read-only views", self._monitor.view_source)
        await self._gate.breaker.catch_up(self._clock())

    async def enable(self) -> None:
        """Allow heavy work again (still subject to market hours and the MCP breaker)."""
        await self._gate.enable()

    async def disable(self) -> None:
        """Defer all heavy work; monitoring keeps running in basic mode."""
        self._gate.disable()

    @property
    def work_gate(self) -> HeavyWorkGate:
        """The gate and the live MCP breaker this integrator decides with."""
        return self._gate

    @property
    def circuit_breaker_view(self) -> ReadOnlyView | None:
        """The breaker, read-only (None before initialize)."""
        return self._monitor.breaker_view

    @property
    def trade_executor_view(self) -> ReadOnlyView | None:
        """The executor, read-only (None before initialize)."""
        return self._monitor.executor_view

    # --- market hours, gate, MCP breaker -------------------------------------------------------

    def is_market_hours(self, now: datetime | None = None) -> bool:
        """True inside MCP_MARKET_HOURS_START..END UTC (end exclusive) when MCP_MARKET_HOURS_ENABLED."""
        return self._gate.is_market_hours(now if now is not None else self._clock())

    async def gate(self, kind: str) -> GateDecision:
        """May heavy work of `kind` ("scan", "test_run") start now? The reason says why not."""
        return await self._gate.gate(kind)

    @property
    def mcp_circuit_breaker_active(self) -> bool:
        """True while the MCP breaker is open or half-open (heavy work deferred)."""
        return self._gate.breaker.current(self._clock()).active

    def get_mcp_circuit_breaker_state(self) -> dict[str, Any]:
        """The MCP breaker as JSON (state, reason, counts, cooldown left, the state file's version)."""
        return self._gate.breaker.describe(self._clock())

    async def refresh_mcp_circuit_breaker(self) -> bool:
        """Re-read the MCP breaker's state file if any process changed it (True when it had changed)."""
        return await self._gate.breaker.refresh()

    async def trip_mcp_circuit_breaker(self, reason: str) -> dict[str, Any]:
        """Open the MCP breaker (idempotent: tripping an open breaker is one trip, its first reason kept)."""
        if not isinstance(reason, str) or not reason.strip():
            raise ValueError(f"trip_mcp_circuit_breaker needs a non-empty reason, received {reason!r}")
        now = self._clock()
        await self._gate.breaker.trip(reason.strip(), now)
        return self._gate.breaker.describe(now)

    async def reset_mcp_circuit_breaker(self, by: str = "manual reset") -> dict[str, Any]:
        """Close the MCP breaker by hand (the only way out after 3 failed recoveries)."""
        now = self._clock()
        await self._gate.breaker.reset(by, now)
        self._monitor.forget_cpu_breaches()
        return self._gate.breaker.describe(now)

    # --- heavy work, monitoring, statistics ----------------------------------------------------

    async def scan_risk_parameters(self) -> dict[str, Any]:
        """Where every risk parameter is used (the search capability's report), unless deferred by the gate."""
        return await self._scan.scan()

    async def verify_test_coverage(self) -> dict[str, Any]:
        """Coverage against MCP_TESTING_COVERAGE_TARGET: a run when the gate allows, else a fresh stored result,
        else deferred. Below 0.8 × threshold trips the MCP breaker; below the threshold alerts."""
        return await self._coverage.verify()

    async def monitor_all(self) -> dict[str, Any]:
        """Resources of the sidecar's process tree, the bot's risk state, trading latency, breaker and gate.

        resource_usage.total_cpu_percent is the tree's non-idle CPU (percent of one core): the CPU that competes
        with the bot. SCHED_IDLE work is resource_usage.idle_cpu_percent, shown but never judged by itself:
        if it ever did delay trading, the decision -> ack / arrival -> ack latencies would trip the breaker.
        """
        return await self._monitor.monitor_all()

    def get_statistics(self) -> dict[str, Any]:
        """Counters and state for /health, the dashboard and the user's test plan."""
        return statistics(
            self._tally,
            self._gate,
            now=self._clock(),
            initialized=self._initialized,
            views=self._monitor.view_source,
        )


# --- the process's integrator (the user's contract: get_mcp_risk_integrator) ----------------------------

_instance: MCPRiskIntegrator | None = None
_instance_lock = threading.Lock()


def get_mcp_risk_integrator() -> MCPRiskIntegrator:
    """The process's integrator: the one the sidecar registered, else built on first use from get_settings()
    with the installed search and testing capabilities (the user's test-plan snippets need no set-up).

    Product code never calls this: it receives its integrator from the sidecar's entry point.
    """
    global _instance
    with _instance_lock:
        if _instance is None:
            _instance = MCPRiskIntegrator(get_settings())
        return _instance


def set_process_integrator(integrator: MCPRiskIntegrator) -> None:
    """Register the integrator the sidecar's entry point built, so the facade hands out that one."""
    if not isinstance(integrator, MCPRiskIntegrator):
        raise TypeError(f"set_process_integrator expects an MCPRiskIntegrator, received {type(integrator).__name__}")
    global _instance
    with _instance_lock:
        _instance = integrator


def reset_process_integrator() -> None:
    """Forget the process's integrator (tests; the next get_mcp_risk_integrator() builds a fresh one)."""
    global _instance
    with _instance_lock:
        _instance = None
