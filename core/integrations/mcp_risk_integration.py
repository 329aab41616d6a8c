"""MCPRiskIntegrator: gates the sidecar's heavy work and watches it, seeing the risk core read-only.

Heavy work (a codebase scan, a test run) is deferred during market hours, while the MCP circuit breaker
is open or half-open, and while the integration is disabled; the answer says so and why. Monitoring
(`monitor_all`) always runs: in "basic" mode it still measures the sidecar's process tree and reads the
bot's risk state, and it trips the MCP breaker when the sidecar uses too much non-idle CPU or memory or a
trading latency p99 (decision -> ack, arrival -> ack) is over budget; a test coverage below 0.8 × the
threshold trips it too. SCHED_IDLE work (test runs, scans) is reported apart and never trips it by itself.
The breaker, the market-hours window and the trip rules are pure functions (mcp_breaker.py, gate_rules.py,
rules.py); this class applies them, persists the breaker and sends the alerts.

Example (the user's test plan, Phase 4)::

    integrator = get_mcp_risk_integrator()
    await integrator.initialize(circuit_breaker, trade_executor)   # kept as read-only views
    await integrator.trip_mcp_circuit_breaker("Test trip")          # integrator.mcp_circuit_breaker_active -> True
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from config.settings import PROJECT_ROOT, Settings, get_settings
from core.integrations import reports
from core.integrations.breaker_control import AlertSender, BreakerController, send_via_alerts_module
from core.integrations.gate_rules import GateDecision, GateKind, MarketHours, decide_gate, is_market_hours, parse_kind
from core.integrations.mcp_breaker import STATE_FILE_NAME, BreakerState, BreakerStore, describe, finish_trial, trip
from core.integrations.process_tree import ProcessLike, ProcessTreeSampler, usage_report
from core.integrations.readonly import (
    BREAKER_STATE_FILE_NAME,
    RISK_SNAPSHOT_FILE_NAME,
    ReadOnlyView,
    SnapshotBackedBreakerView,
    SnapshotBackedExecutorView,
    read_only_breaker,
    read_only_executor,
    read_risk_state,
)
from core.integrations.rules import (
    CoverageVerdict,
    ResourceLimits,
    coverage_trip_reason,
    coverage_verdict,
    latency_trip_reason,
    next_cpu_breaches,
    resource_trip_reasons,
)

log = logging.getLogger(__name__)

__all__ = ["GateDecision", "MCPRiskIntegrator", "get_mcp_risk_integrator"]


def _utc_now() -> datetime:
    return datetime.now(UTC)


class MCPRiskIntegrator:
    """Gates, monitors and protects the MCP sidecar; reads the risk core only through read-only views."""

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        search: Any = None,
        testing: Any = None,
        clock: Callable[[], datetime] = _utc_now,
        process: ProcessLike | None = None,
        state_file: Path | str | None = None,
        alert: AlertSender = send_via_alerts_module,
        coverage_max_age_seconds: float = 6 * 3600.0,
        cpu_breaches_required: int = 2,
        snapshot_stale_after_seconds: float = 60.0,
        alert_timeout_seconds: float = 10.0,
    ) -> None:
        self.settings = settings if settings is not None else get_settings()
        self._clock = clock
        self._search = search
        self._testing = testing
        # the sampler's CPU window is measured on the injected clock, so tests move it like everything else
        self._sampler = ProcessTreeSampler(process, clock=lambda: self._clock().timestamp())
        self._coverage_max_age = coverage_max_age_seconds
        self._cpu_breaches_required = cpu_breaches_required
        self._snapshot_stale_after = snapshot_stale_after_seconds
        self._hours = MarketHours.from_settings(self.settings)
        self._limits = ResourceLimits(self.settings.mcp_resource_limit_cpu_percent, self.settings.mcp_resource_limit_mb)
        store_path = Path(state_file) if state_file else Path(self.settings.state_dir) / STATE_FILE_NAME
        self._breaker = BreakerController(
            BreakerStore(store_path, clock),
            cooldown_seconds=self.settings.mcp_circuit_breaker_cooldown_seconds,
            alert=alert,
            alert_timeout_seconds=alert_timeout_seconds,
        )
        self._enabled = self.settings.mcp_integration_enabled
        self._breaker_view: ReadOnlyView | None = None
        self._executor_view: ReadOnlyView | None = None
        self._breaker_reads_file = False
        self._view_source = "none"
        self._initialized = False
        self._cpu_breaches = 0
        self._busy: set[str] = set()
        self._judged_runs: set[str] = set()
        self._counters: Counter[str] = Counter()
        self._deferred_by_kind: Counter[str] = Counter()
        self._last: dict[str, Any] = {"scan_at": None, "coverage": None, "monitor_at": None}

    # --- set-up -------------------------------------------------------------------------------

    async def initialize(self, circuit_breaker: Any = None, trade_executor: Any = None) -> None:
        """Keep read-only views of the breaker and the executor; None means their state files (the sidecar)."""
        self._install_views(circuit_breaker, trade_executor)
        self._initialized = True
        log.info("MCP risk integrator initialized with %s read-only views", self._view_source)
        await self._breaker.catch_up(self._clock())

    def _install_views(self, circuit_breaker: Any, trade_executor: Any) -> None:
        state_dir = Path(self.settings.state_dir)
        epoch = self._epoch  # the injected clock also decides when a snapshot is stale
        if circuit_breaker is None:
            circuit_breaker = SnapshotBackedBreakerView(state_dir / BREAKER_STATE_FILE_NAME, clock=epoch)
        if trade_executor is None:
            trade_executor = SnapshotBackedExecutorView(
                state_dir / RISK_SNAPSHOT_FILE_NAME, stale_after_seconds=self._snapshot_stale_after, clock=epoch
            )
        self._breaker_reads_file = isinstance(circuit_breaker, SnapshotBackedBreakerView)
        from_files = self._breaker_reads_file and isinstance(trade_executor, SnapshotBackedExecutorView)
        self._view_source = "state_files" if from_files else "in_process"
        self._breaker_view = read_only_breaker(circuit_breaker)
        self._executor_view = read_only_executor(trade_executor)

    def _epoch(self) -> float:
        return self._clock().timestamp()

    async def enable(self) -> None:
        """Allow heavy work again (still subject to market hours and the MCP breaker)."""
        self._enabled = True
        log.info("MCP risk integration enabled")
        await self._breaker.catch_up(self._clock())

    async def disable(self) -> None:
        """Defer all heavy work; monitoring keeps running in basic mode."""
        self._enabled = False
        log.info("MCP risk integration disabled: heavy work deferred, monitoring in basic mode")

    def use_servers(self, *, search: Any = None, testing: Any = None) -> None:
        """Share the sidecar's own CodebaseSearchServer / TestingServer instead of building private ones."""
        if search is not None:
            self._search = search
        if testing is not None:
            self._testing = testing

    @property
    def circuit_breaker_view(self) -> ReadOnlyView | None:
        """The breaker, read-only (None before initialize)."""
        return self._breaker_view

    @property
    def trade_executor_view(self) -> ReadOnlyView | None:
        """The executor, read-only (None before initialize)."""
        return self._executor_view

    # --- market hours, gate, MCP breaker -------------------------------------------------------

    def is_market_hours(self, now: datetime | None = None) -> bool:
        """True inside MCP_MARKET_HOURS_START..END UTC (end exclusive) when MCP_MARKET_HOURS_ENABLED."""
        return is_market_hours(now if now is not None else self._clock(), self._hours)

    async def gate(self, kind: str) -> GateDecision:
        """May heavy work of `kind` ("scan", "test_run") start now? The reason says why not."""
        parsed = parse_kind(kind)
        now = self._clock()
        await self._breaker.catch_up(now)
        decision = self._decide(parsed, now)
        if not decision.allowed:
            self._counters["deferred"] += 1
            self._deferred_by_kind[str(parsed)] += 1
            log.info("%s", decision.reason)
        return decision

    def _decide(self, kind: GateKind, now: datetime) -> GateDecision:
        return decide_gate(kind, now=now, enabled=self._enabled, breaker=self._breaker.record, hours=self._hours)

    @property
    def mcp_circuit_breaker_active(self) -> bool:
        """True while the MCP breaker is open or half-open (heavy work deferred)."""
        return self._breaker.current(self._clock()).active

    def get_mcp_circuit_breaker_state(self) -> dict[str, Any]:
        """The MCP breaker as JSON (state, reason, counts, cooldown left, the state file's version)."""
        return self._breaker.describe(self._clock())

    async def refresh_mcp_circuit_breaker(self) -> bool:
        """Re-read the MCP breaker's state file if any process changed it (True when it had changed)."""
        return await self._breaker.refresh()

    async def trip_mcp_circuit_breaker(self, reason: str) -> dict[str, Any]:
        """Open the MCP breaker (idempotent: tripping an open breaker is one trip, its first reason kept)."""
        if not isinstance(reason, str) or not reason.strip():
            raise ValueError(f"trip_mcp_circuit_breaker needs a non-empty reason, received {reason!r}")
        now = self._clock()
        await self._breaker.trip(reason.strip(), now)
        return self._breaker.describe(now)

    async def reset_mcp_circuit_breaker(self, by: str = "manual reset") -> dict[str, Any]:
        """Close the MCP breaker by hand (the only way out after 3 failed recoveries)."""
        now = self._clock()
        await self._breaker.reset(by, now)
        self._cpu_breaches = 0
        return self._breaker.describe(now)

    # --- heavy work: scan and coverage ----------------------------------------------------------

    async def scan_risk_parameters(self) -> dict[str, Any]:
        """Where every risk parameter is used (CodebaseSearchServer's report), unless deferred by the gate."""
        decision = await self.gate(GateKind.SCAN)
        if not decision.allowed:
            return reports.deferred_scan(decision)
        if "scan" in self._busy:
            return reports.empty_scan("deferred", reason="scan deferred: a scan is already running in this process")
        self._busy.add("scan")
        try:
            report = await self._search_server().risk_parameter_report()
        except Exception as e:
            self._counters["scan_errors"] += 1
            log.exception("risk parameter scan failed")
            return reports.empty_scan("error", message=f"risk parameter scan failed: {type(e).__name__}: {e}")
        finally:
            self._busy.discard("scan")
        now = self._clock()
        result = reports.scan_result(report, now)
        if result["status"] == "completed":
            self._counters["scans"] += 1
            self._last["scan_at"] = now.isoformat()
        else:
            self._counters["scan_errors"] += 1
        return result

    async def verify_test_coverage(self) -> dict[str, Any]:
        """Coverage against MCP_TESTING_COVERAGE_TARGET: a run when the gate allows, else a fresh stored result,
        else deferred. Below 0.8 × threshold trips the MCP breaker; below the threshold alerts."""
        threshold = self.settings.mcp_testing_coverage_target
        try:
            testing = self._testing_server()
            decision = self._runnable(await self.gate(GateKind.TEST_RUN), testing)
            if decision.allowed:
                run, source = await self._run_tests(testing)
            else:
                run, source = await testing.get_coverage(), "history"
                if not reports.is_fresh(run, self._clock(), self._coverage_max_age):
                    return reports.deferred_coverage(decision, threshold, run if isinstance(run, dict) else None)
        except Exception as e:
            self._counters["coverage_errors"] += 1
            log.exception("test coverage verification failed")
            return reports.coverage_error(f"test coverage verification failed: {type(e).__name__}: {e}", threshold)
        if isinstance(run, dict) and run.get("status") in reports.SERVER_DEFERRALS:
            # the testing server itself held the run back (busy, or its own gate)
            self._counters["deferred"] += 1
            return reports.deferred_by_server(run, threshold)
        return await self._judge_coverage(run, source, threshold)

    def _runnable(self, decision: GateDecision, testing: Any) -> GateDecision:
        """The gate's decision, refused also when a run is in progress or would recurse into our own suite."""
        if not decision.allowed:
            return decision
        if "test_run" in self._busy:
            reason = "test run deferred: a test run is already in progress in this process"
        elif self._would_run_own_suite(testing):
            reason = _NESTED_RUN_REASON
        else:
            return decision
        self._counters["deferred"] += 1
        self._deferred_by_kind[str(GateKind.TEST_RUN)] += 1
        return GateDecision(False, reason, str(GateKind.TEST_RUN), decision.code)

    async def _run_tests(self, testing: Any) -> tuple[Any, str]:
        self._busy.add("test_run")
        try:
            run = await testing.run_tests()
        finally:
            self._busy.discard("test_run")
        if reports.coverage_of(run) is None and isinstance(run, dict) and run.get("status") == "unchanged":
            # the code has not changed since the last run: its stored result is the current figure
            return await testing.get_coverage(), "history"
        return run, "run"

    async def _judge_coverage(self, run: Any, source: str, threshold: float) -> dict[str, Any]:
        coverage = reports.coverage_of(run)
        if coverage is None or not isinstance(run, dict):
            self._counters["coverage_errors"] += 1
            status = run.get("status") if isinstance(run, dict) else None
            detail = run.get("message") if isinstance(run, dict) else None
            message = f"the test run gave no coverage figure (status {status!r}): {detail or 'no message'}"
            return reports.coverage_error(message, threshold, run)
        now = self._clock()
        verdict = coverage_verdict(coverage, threshold)
        action = "none"
        key = reports.run_key(run)
        if verdict is not CoverageVerdict.OK and key not in self._judged_runs:
            # one run alerts or trips once: after a manual reset the same old figure does not re-trip
            self._judged_runs.add(key)
            reason = coverage_trip_reason(coverage, threshold)
            if reason is not None and self._auto_trips():
                await self._breaker.trip(reason, now)
                action = "tripped"
            elif self.settings.mcp_testing_alert_on_coverage_drop:
                message = f"Test coverage {coverage:.1%} is below the {threshold:.1%} threshold."
                await self._breaker.notify("TEST_COVERAGE", message, "warning")
                action = "alerted"
        self._counters["coverage_checks"] += 1
        self._last["coverage"] = coverage
        return reports.coverage_completed(run, coverage, threshold, verdict, action=action, source=source, now=now)

    def _would_run_own_suite(self, testing: Any) -> bool:
        """Inside a pytest run, running this project's own suite would recurse into it."""
        if "PYTEST_CURRENT_TEST" not in os.environ:
            return False
        root = getattr(testing, "project_root", None)
        if root is None and callable(getattr(testing, "health", None)):
            root = testing.health().get("project_root")
        root = root or self.settings.mcp_testing_project_root
        return Path(root).resolve() == PROJECT_ROOT.resolve()

    def _auto_trips(self) -> bool:
        return self._enabled and self.settings.mcp_circuit_breaker_enabled

    def _search_server(self) -> Any:
        if self._search is None:
            from mcp.codebase_search import CodebaseSearchServer

            self._search = CodebaseSearchServer(self.settings)
        return self._search

    def _testing_server(self) -> Any:
        if self._testing is None:
            from mcp.testing_server import TestingServer

            self._testing = TestingServer(self.settings)
        return self._testing

    # --- monitoring (always on) -----------------------------------------------------------------

    async def monitor_all(self) -> dict[str, Any]:
        """Resources of the sidecar's process tree, the bot's risk state, trading latency, breaker and gate.

        resource_usage.total_cpu_percent is the tree's non-idle CPU (percent of one core): the CPU that competes
        with the bot. SCHED_IDLE work is resource_usage.idle_cpu_percent, shown but never judged by itself:
        if it ever did delay trading, the decision -> ack / arrival -> ack latencies would trip the breaker.
        """
        now = self._clock()
        await self._breaker.catch_up(now)
        usage, sample_ok = await self._resource_usage()
        risk_state = await self._risk_state()
        p99, samples, latency_note = reports.latency_figures(risk_state["performance"])
        # issue 10: what can hurt trading is judged as the bot measures it: decision -> ack and arrival -> ack
        arrival_p99, arrival_samples, arrival_note = reports.latency_figures(
            risk_state["performance"], "arrival_latency_ms"
        )
        budget = self.settings.trading_latency_budget_ms
        causes: list[str] = []
        if sample_ok:
            self._cpu_breaches = next_cpu_breaches(
                self._cpu_breaches, usage["total_cpu_percent"], self._limits.cpu_percent, usage["cpu_window_seconds"]
            )
            causes += resource_trip_reasons(
                usage["total_cpu_percent"],
                usage["total_memory_mb"],
                self._limits,
                cpu_breaches_in_a_row=self._cpu_breaches,
                cpu_breaches_required=self._cpu_breaches_required,
            )
        latency_reason = latency_trip_reason(p99, samples, budget)
        if latency_reason:
            causes.append(latency_reason)
        arrival_reason = latency_trip_reason(arrival_p99, arrival_samples, budget, "trade arrival -> ack latency")
        if arrival_reason:
            causes.append(arrival_reason)
        record = self._breaker.record
        reason = "; ".join(causes)
        # transitions apply to the record in the state file at that moment (another process may have changed it)
        if record.state is BreakerState.HALF_OPEN:
            if sample_ok:  # the trial needs a real resource reading to be judged
                await self._breaker.update(
                    lambda on_disk: finish_trial(on_disk, healthy=not causes, now=now, reason=reason)
                )
        elif causes and self._auto_trips():
            await self._breaker.update(lambda on_disk: trip(on_disk, reason, now))
        self._counters["monitor_checks"] += 1
        self._last["monitor_at"] = now.isoformat()
        gates = {str(kind): self._decide(kind, now) for kind in GateKind}
        return {
            "status": "ok",
            "timestamp": now.isoformat(),
            "enabled": self._enabled,
            "mode": "full" if all(g.allowed for g in gates.values()) else "basic",
            "market_hours": is_market_hours(now, self._hours),
            "resource_usage": usage,
            "trading_latency": {
                "p99_ms": p99,
                "count": samples,
                "budget_ms": budget,
                "within_budget": None if latency_note else p99 is not None and p99 <= budget,
                "note": latency_note,
                "arrival_p99_ms": arrival_p99,
                "arrival_count": arrival_samples,
                "arrival_within_budget": None if arrival_note else arrival_p99 is not None and arrival_p99 <= budget,
                "arrival_note": arrival_note,
            },
            "causes": causes,
            "mcp_circuit_breaker": describe(self._breaker.record, now, self._breaker.cooldown_seconds),
            "gate": {kind: decision.as_dict() for kind, decision in gates.items()},
            "risk_state": risk_state,
        }

    async def _resource_usage(self) -> tuple[dict[str, Any], bool]:
        try:
            sample = await asyncio.to_thread(self._sampler.sample)
        except Exception as e:
            log.exception("cannot read the sidecar's process tree")
            return usage_report(
                None, self._limits, f"cannot read the sidecar's process tree: {type(e).__name__}: {e}"
            ), False
        return usage_report(sample, self._limits), True

    async def _risk_state(self) -> dict[str, Any]:
        if self._breaker_view is None or self._executor_view is None:
            self._install_views(None, None)  # never initialized: the sidecar's default, the bot's state files
        return await read_risk_state(
            self._breaker_view,
            self._executor_view,
            breaker_reads_file=self._breaker_reads_file,
            source=self._view_source,
        )

    # --- statistics -------------------------------------------------------------------------------

    def get_statistics(self) -> dict[str, Any]:
        """Counters and state for /health, the dashboard and the user's test plan."""
        now = self._clock()
        record = self._breaker.current(now)
        trips = [entry for entry in record.history if entry.get("event") == "tripped"]
        return {
            "enabled": self._enabled,
            "initialized": self._initialized,
            "views": self._view_source,
            "mcp_circuit_breaker_active": record.active,
            "mcp_circuit_breaker_state": str(record.state),
            "mcp_circuit_breaker_locked": record.locked,
            "trips": record.trips,
            "recoveries": record.recoveries,
            "failed_recoveries": record.failed_recoveries,
            "manual_resets": record.manual_resets,
            "mcp_circuit_breaker_version": self._breaker.version,
            "last_trip_reason": trips[-1].get("reason") if trips else record.reason,
            "last_trip_at": trips[-1].get("time") if trips else None,
            "scans": self._counters["scans"],
            "scan_errors": self._counters["scan_errors"],
            "coverage_checks": self._counters["coverage_checks"],
            "coverage_errors": self._counters["coverage_errors"],
            "last_coverage": self._last["coverage"],
            "deferred": self._counters["deferred"],
            "deferred_by_kind": dict(self._deferred_by_kind),
            "monitor_checks": self._counters["monitor_checks"],
            "alerts_sent": self._breaker.alerts_sent,
            "alert_failures": self._breaker.alert_failures,
            "market_hours": is_market_hours(now, self._hours),
            "last_scan_at": self._last["scan_at"],
            "last_monitor_at": self._last["monitor_at"],
            "state_file": str(self._breaker.store.path),
        }


_NESTED_RUN_REASON = (
    "test run deferred: this process runs under pytest (PYTEST_CURRENT_TEST is set) and the testing server "
    "points at this project, so a run would recurse into its own suite; point MCP_TESTING_PROJECT_ROOT elsewhere"
)


_instance: MCPRiskIntegrator | None = None
_instance_lock = threading.Lock()


def get_mcp_risk_integrator() -> MCPRiskIntegrator:
    """The process's integrator, built on first use from get_settings() (no set-up needed)."""
    global _instance
    with _instance_lock:
        if _instance is None:
            _instance = MCPRiskIntegrator(get_settings())
        return _instance
