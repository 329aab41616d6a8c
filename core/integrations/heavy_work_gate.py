"""HeavyWorkGate: may a scan or a test run start now? The integration switch, market hours, the MCP breaker.

The decision is the pure `gate_rules.decide_gate`; this class holds what it decides on (the switch, the
market-hours window, the live MCP breaker) and counts the deferrals. It can be built before the servers
and the integrator, so the sidecar hands `gate.gate` to its servers and the same object to the
integrator (`MCPRiskIntegrator(work_gate=...)`): one breaker, wired one way.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from config.settings import Settings
from core.integrations.breaker_control import AlertSender, BreakerController, send_via_alerts_module
from core.integrations.gate_rules import GateDecision, GateKind, MarketHours, decide_gate, is_market_hours, parse_kind
from core.integrations.mcp_breaker import STATE_FILE_NAME, BreakerStore

log = logging.getLogger(__name__)


def utc_now() -> datetime:
    """The production clock of the integrator's parts."""
    return datetime.now(UTC)


class HeavyWorkGate:
    """Decides whether heavy work may start; owns the live MCP breaker it decides on."""

    def __init__(
        self,
        settings: Settings,
        breaker: BreakerController,
        *,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self.settings = settings
        self.breaker = breaker
        self.clock = clock
        self.hours = MarketHours.from_settings(settings)
        self._enabled = settings.mcp_integration_enabled
        self.deferred_total = 0
        self.deferred_by_kind: Counter[str] = Counter()

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        *,
        clock: Callable[[], datetime] = utc_now,
        state_file: Path | str | None = None,
        alert: AlertSender = send_via_alerts_module,
        alert_timeout_seconds: float = 10.0,
    ) -> HeavyWorkGate:
        """The gate over the MCP breaker in `state_file` (default: STATE_DIR/mcp_circuit_breaker.json)."""
        store_path = Path(state_file) if state_file else Path(settings.state_dir) / STATE_FILE_NAME
        breaker = BreakerController(
            BreakerStore(store_path, clock),
            cooldown_seconds=settings.mcp_circuit_breaker_cooldown_seconds,
            alert=alert,
            alert_timeout_seconds=alert_timeout_seconds,
        )
        return cls(settings, breaker, clock=clock)

    @property
    def enabled(self) -> bool:
        """The integration switch (MCP_INTEGRATION_ENABLED, then enable()/disable())."""
        return self._enabled

    async def enable(self) -> None:
        """Allow heavy work again (still subject to market hours and the MCP breaker)."""
        self._enabled = True
        log.info("MCP risk integration enabled")
        await self.breaker.catch_up(self.clock())

    def disable(self) -> None:
        """Defer all heavy work."""
        self._enabled = False
        log.info("MCP risk integration disabled: heavy work deferred, monitoring in basic mode")

    @property
    def auto_trips(self) -> bool:
        """May the integrator trip the MCP breaker by itself (integration on and MCP_CIRCUIT_BREAKER_ENABLED)?"""
        return self._enabled and self.settings.mcp_circuit_breaker_enabled

    def is_market_hours(self, now: datetime) -> bool:
        """Inside the configured market-hours window at `now`."""
        return is_market_hours(now, self.hours)

    def decide(self, kind: GateKind, now: datetime) -> GateDecision:
        """The decision for `kind` at `now` on the breaker as last read (nothing counted, nothing re-read)."""
        return decide_gate(kind, now=now, enabled=self._enabled, breaker=self.breaker.record, hours=self.hours)

    async def gate(self, kind: str) -> GateDecision:
        """May heavy work of `kind` ("scan", "test_run") start now? The reason says why not."""
        parsed = parse_kind(kind)
        now = self.clock()
        await self.breaker.catch_up(now)
        decision = self.decide(parsed, now)
        if not decision.allowed:
            self.count_deferral(parsed)
            log.info("%s", decision.reason)
        return decision

    def count_deferral(self, kind: GateKind | None = None) -> None:
        """Count one deferral (`kind` None: the work's own server deferred it, not this gate)."""
        self.deferred_total += 1
        if kind is not None:
            self.deferred_by_kind[str(kind)] += 1
