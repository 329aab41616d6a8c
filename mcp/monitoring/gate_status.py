"""The integrator's gate as the monitoring sees it: may heavy work start, and what state is the MCP breaker in.

The answer comes from `core.integrations.gate_rules.decide_gate`, the same pure rule the integrator applies, fed
with the integrator's public state, so /health, the metrics and the servers never disagree about the gate.
Asking never counts as a deferral (unlike `integrator.gate()`, which is for work about to start).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from config.settings import Settings
from core.integrations.gate_rules import GateKind, MarketHours, decide_gate
from core.integrations.mcp_breaker import BreakerRecord, BreakerState

GateStatusSource = Callable[[], Awaitable[Mapping[str, Any]]]


def gate_summary(
    statistics: Mapping[str, Any], breaker: Mapping[str, Any], now: datetime, hours: MarketHours
) -> dict[str, Any]:
    """The gate block of /health from the integrator's `get_statistics()` and `get_mcp_circuit_breaker_state()`."""
    try:
        state = BreakerState(str(breaker.get("state")))
    except ValueError as e:
        raise ValueError(
            f"MCP breaker state {breaker.get('state')!r} is not one of {[str(s) for s in BreakerState]}"
        ) from e
    record = BreakerRecord(
        state=state, reason=breaker.get("reason"), failed_recoveries=int(breaker.get("failed_recoveries") or 0)
    )
    decision = decide_gate(GateKind.SCAN, now=now, enabled=bool(statistics.get("enabled")), breaker=record, hours=hours)
    return {
        "market_hours": bool(statistics.get("market_hours")),
        "mcp_circuit_breaker": str(state),
        "mcp_circuit_breaker_locked": record.locked,
        "heavy_work_allowed": decision.allowed,
        "reason": decision.reason,
        "code": str(decision.code),
    }


class IntegratorGateStatus:
    """Reads the sidecar's MCPRiskIntegrator (the one mcp.sidecar_builder built and hands to everyone)."""

    def __init__(
        self, settings: Settings, integrator: Any, *, clock: Callable[[], datetime] = lambda: datetime.now(UTC)
    ) -> None:
        self._hours = MarketHours.from_settings(settings)
        self._integrator = integrator
        self._clock = clock

    async def __call__(self) -> Mapping[str, Any]:
        """The gate block (see `gate_summary`)."""
        integrator = self._integrator
        refresh = getattr(integrator, "refresh_mcp_circuit_breaker", None)
        if refresh is not None:
            # a trip or reset by another process (dashboard, Telegram, CLI, a snippet) is in the state file
            await refresh()
        return gate_summary(
            integrator.get_statistics(), integrator.get_mcp_circuit_breaker_state(), self._clock(), self._hours
        )
