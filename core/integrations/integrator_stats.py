"""The integrator's tally (what its parts did) and the statistics answer built from it and the gate.

Each part records into one `IntegratorTally`; `statistics()` is the one place that turns the tally, the
gate and the MCP breaker into the JSON-safe dict /health, the dashboard and the user's test plan read.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from core.integrations.heavy_work_gate import HeavyWorkGate


@dataclass
class IntegratorTally:
    """Counts and last figures of the scans, coverage checks and monitoring rounds of one process."""

    counts: Counter[str] = field(default_factory=Counter)
    last_scan_at: str | None = None
    last_coverage: float | None = None
    last_monitor_at: str | None = None


def statistics(
    tally: IntegratorTally, gate: HeavyWorkGate, *, now: datetime, initialized: bool, views: str
) -> dict[str, Any]:
    """Counters and state as of `now` (the keys are the user's contract: never rename one)."""
    breaker = gate.breaker
    record = breaker.current(now)
    trips = [entry for entry in record.history if entry.get("event") == "tripped"]
    counts = tally.counts
    return {
        "enabled": gate.enabled,
        "initialized": initialized,
        "views": views,
        "mcp_circuit_breaker_active": record.active,
        "mcp_circuit_breaker_state": str(record.state),
        "mcp_circuit_breaker_locked": record.locked,
        "trips": record.trips,
        "recoveries": record.recoveries,
        "failed_recoveries": record.failed_recoveries,
        "manual_resets": record.manual_resets,
        "mcp_circuit_breaker_version": breaker.version,
        "last_trip_reason": trips[-1].get("reason") if trips else record.reason,
        "last_trip_at": trips[-1].get("time") if trips else None,
        "scans": counts["scans"],
        "scan_errors": counts["scan_errors"],
        "coverage_checks": counts["coverage_checks"],
        "coverage_errors": counts["coverage_errors"],
        "last_coverage": tally.last_coverage,
        "deferred": gate.deferred_total,
        "deferred_by_kind": dict(gate.deferred_by_kind),
        "monitor_checks": counts["monitor_checks"],
        "alerts_sent": breaker.alerts_sent,
        "alert_failures": breaker.alert_failures,
        "market_hours": gate.is_market_hours(now),
        "last_scan_at": tally.last_scan_at,
        "last_monitor_at": tally.last_monitor_at,
        "state_file": str(breaker.store.path),
    }
