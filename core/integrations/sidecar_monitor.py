"""The integrator's monitor: the sidecar's process tree, the bot's risk state, trading latency; trips on them.

It always runs (in "basic" mode too). Trips on the sidecar's non-idle CPU (over the limit for N checks in
a row) or memory, and on a trading latency p99 (decision -> ack, arrival -> ack) over budget; SCHED_IDLE
work is reported apart and never trips by itself. It sees the risk core only through read-only views.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from config.settings import Settings
from core.integrations import reports
from core.integrations.gate_rules import GateKind
from core.integrations.heavy_work_gate import HeavyWorkGate
from core.integrations.integrator_stats import IntegratorTally
from core.integrations.mcp_breaker import BreakerState, describe, finish_trial, trip
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
from core.integrations.rules import ResourceLimits, latency_trip_reason, next_cpu_breaches, resource_trip_reasons

log = logging.getLogger(__name__)


class SidecarMonitor:
    """One monitoring round at a time: measure, read the risk state, judge, apply the breaker transition."""

    def __init__(
        self,
        settings: Settings,
        gate: HeavyWorkGate,
        tally: IntegratorTally,
        *,
        clock: Callable[[], datetime],
        process: ProcessLike | None,
        cpu_breaches_required: int,
        snapshot_stale_after_seconds: float,
    ) -> None:
        self._settings = settings
        self._gate = gate
        self._tally = tally
        self._clock = clock
        # the sampler's CPU window is measured on the injected clock, so tests move it like everything else
        self._sampler = ProcessTreeSampler(process, clock=self._epoch)
        self._limits = ResourceLimits(settings.mcp_resource_limit_cpu_percent, settings.mcp_resource_limit_mb)
        self._cpu_breaches_required = cpu_breaches_required
        self._snapshot_stale_after = snapshot_stale_after_seconds
        self._cpu_breaches = 0
        self.breaker_view: ReadOnlyView | None = None
        self.executor_view: ReadOnlyView | None = None
        self._breaker_reads_file = False
        self.view_source = "none"

    def _epoch(self) -> float:
        return self._clock().timestamp()

    def install_views(self, circuit_breaker: Any, trade_executor: Any) -> None:
        """Read-only views of the breaker and the executor; None means their state files (the sidecar)."""
        state_dir = Path(self._settings.state_dir)
        if circuit_breaker is None:
            circuit_breaker = SnapshotBackedBreakerView(state_dir / BREAKER_STATE_FILE_NAME, clock=self._epoch)
        if trade_executor is None:
            trade_executor = SnapshotBackedExecutorView(
                state_dir / RISK_SNAPSHOT_FILE_NAME, stale_after_seconds=self._snapshot_stale_after, clock=self._epoch
            )
        self._breaker_reads_file = isinstance(circuit_breaker, SnapshotBackedBreakerView)
        from_files = self._breaker_reads_file and isinstance(trade_executor, SnapshotBackedExecutorView)
        self.view_source = "state_files" if from_files else "in_process"
        self.breaker_view = read_only_breaker(circuit_breaker)
        self.executor_view = read_only_executor(trade_executor)

    def forget_cpu_breaches(self) -> None:
        """A manual reset starts the CPU count afresh."""
        self._cpu_breaches = 0

    async def monitor_all(self) -> dict[str, Any]:
        """The monitoring answer (see MCPRiskIntegrator.monitor_all)."""
        gate, breaker = self._gate, self._gate.breaker
        now = self._clock()
        await breaker.catch_up(now)
        usage, sample_ok = await self._resource_usage()
        risk_state = await self._risk_state()
        p99, samples, latency_note = reports.latency_figures(risk_state["performance"])
        # issue 10: what can hurt trading is judged as the bot measures it: decision -> ack and arrival -> ack
        arrival_p99, arrival_samples, arrival_note = reports.latency_figures(
            risk_state["performance"], "arrival_latency_ms"
        )
        budget = self._settings.trading_latency_budget_ms
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
        reason = "; ".join(causes)
        # transitions apply to the record in the state file at that moment (another process may have changed it)
        if breaker.record.state is BreakerState.HALF_OPEN:
            if sample_ok:  # the trial needs a real resource reading to be judged
                await breaker.update(lambda on_disk: finish_trial(on_disk, healthy=not causes, now=now, reason=reason))
        elif causes and gate.auto_trips:
            await breaker.update(lambda on_disk: trip(on_disk, reason, now))
        self._tally.counts["monitor_checks"] += 1
        self._tally.last_monitor_at = now.isoformat()
        gates = {str(kind): gate.decide(kind, now) for kind in GateKind}
        return {
            "status": "ok",
            "timestamp": now.isoformat(),
            "enabled": gate.enabled,
            "mode": "full" if all(g.allowed for g in gates.values()) else "basic",
            "market_hours": gate.is_market_hours(now),
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
            "mcp_circuit_breaker": describe(breaker.record, now, breaker.cooldown_seconds),
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
        if self.breaker_view is None or self.executor_view is None:
            self.install_views(None, None)  # never initialized: the sidecar's default, the bot's state files
        return await read_risk_state(
            self.breaker_view,
            self.executor_view,
            breaker_reads_file=self._breaker_reads_file,
            source=self.view_source,
        )
