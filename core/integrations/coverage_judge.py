"""The integrator's coverage judge: gets a coverage figure (a run, or a fresh stored one) and acts on it.

Below the threshold it alerts; below 0.8 × the threshold it trips the MCP breaker (the rule is
rules.coverage_verdict / coverage_trip_reason). One run alerts or trips once.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from config.settings import PROJECT_ROOT, Settings
from core.integrations import reports
from core.integrations.capabilities import CapabilitySlot, CapabilityUnavailable
from core.integrations.gate_rules import GateDecision, GateKind
from core.integrations.heavy_work_gate import HeavyWorkGate
from core.integrations.integrator_stats import IntegratorTally
from core.integrations.rules import CoverageVerdict, coverage_trip_reason, coverage_verdict

log = logging.getLogger(__name__)

NESTED_RUN_REASON = (
    "test run deferred: this process runs under pytest (PYTEST_CURRENT_TEST is set) and the testing server "
    "points at this project, so a run would recurse into its own suite; point MCP_TESTING_PROJECT_ROOT elsewhere"
)


class CoverageJudge:
    """Coverage against MCP_TESTING_COVERAGE_TARGET, and the alert or trip it calls for."""

    def __init__(
        self,
        settings: Settings,
        gate: HeavyWorkGate,
        tally: IntegratorTally,
        testing: CapabilitySlot,
        *,
        clock: Callable[[], datetime],
        max_age_seconds: float,
    ) -> None:
        self._settings = settings
        self._gate = gate
        self._tally = tally
        self._testing = testing
        self._clock = clock
        self._max_age = max_age_seconds
        self._running = False
        self._judged_runs: set[str] = set()

    async def verify(self) -> dict[str, Any]:
        """A run when the gate allows, else a fresh stored result, else deferred; then judged."""
        threshold = self._settings.mcp_testing_coverage_target
        try:
            testing = self._testing.get()
            decision = self._runnable(await self._gate.gate(GateKind.TEST_RUN), testing)
            if decision.allowed:
                run, source = await self._run_tests(testing)
            else:
                run, source = await testing.get_coverage(), "history"
                if not reports.is_fresh(run, self._clock(), self._max_age):
                    return reports.deferred_coverage(decision, threshold, run if isinstance(run, dict) else None)
        except CapabilityUnavailable as e:
            self._tally.counts["coverage_errors"] += 1
            log.error("test coverage cannot be verified: %s", e)
            return reports.coverage_error(f"test coverage cannot be verified: {e}", threshold)
        except Exception as e:
            self._tally.counts["coverage_errors"] += 1
            log.exception("test coverage verification failed")
            return reports.coverage_error(f"test coverage verification failed: {type(e).__name__}: {e}", threshold)
        if isinstance(run, dict) and run.get("status") in reports.SERVER_DEFERRALS:
            # the testing server itself held the run back (busy, or its own gate)
            self._gate.count_deferral()
            return reports.deferred_by_server(run, threshold)
        return await self._judge(run, source, threshold)

    def _runnable(self, decision: GateDecision, testing: Any) -> GateDecision:
        """The gate's decision, refused also when a run is in progress or would recurse into our own suite."""
        if not decision.allowed:
            return decision
        if self._running:
            reason = "test run deferred: a test run is already in progress in this process"
        elif self._would_run_own_suite(testing):
            reason = NESTED_RUN_REASON
        else:
            return decision
        self._gate.count_deferral(GateKind.TEST_RUN)
        return GateDecision(False, reason, str(GateKind.TEST_RUN), decision.code)

    async def _run_tests(self, testing: Any) -> tuple[Any, str]:
        self._running = True
        try:
            run = await testing.run_tests()
        finally:
            self._running = False
        if reports.coverage_of(run) is None and isinstance(run, dict) and run.get("status") == "unchanged":
            # the code has not changed since the last run: its stored result is the current figure
            return await testing.get_coverage(), "history"
        return run, "run"

    async def _judge(self, run: Any, source: str, threshold: float) -> dict[str, Any]:
        coverage = reports.coverage_of(run)
        if coverage is None or not isinstance(run, dict):
            self._tally.counts["coverage_errors"] += 1
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
            breaker = self._gate.breaker
            if reason is not None and self._gate.auto_trips:
                await breaker.trip(reason, now)
                action = "tripped"
            elif self._settings.mcp_testing_alert_on_coverage_drop:
                message = f"Test coverage {coverage:.1%} is below the {threshold:.1%} threshold."
                await breaker.notify("TEST_COVERAGE", message, "warning")
                action = "alerted"
        self._tally.counts["coverage_checks"] += 1
        self._tally.last_coverage = coverage
        return reports.coverage_completed(run, coverage, threshold, verdict, action=action, source=source, now=now)

    def _would_run_own_suite(self, testing: Any) -> bool:
        """Inside a pytest run, running this project's own suite would recurse into it."""
        if "PYTEST_CURRENT_TEST" not in os.environ:
            return False
        root = getattr(testing, "project_root", None)
        if root is None and callable(getattr(testing, "health", None)):
            root = testing.health().get("project_root")
        root = root or self._settings.mcp_testing_project_root
        return Path(root).resolve() == PROJECT_ROOT.resolve()
