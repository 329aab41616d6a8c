"""Pure decisions for the sidecar's heavy work: are we in market hours, and may a scan / test run start now?

Nothing here reads a clock or a file: the caller passes `now` and the figures, so every rule is a table
test and a property test away from being proven.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from config.settings import Settings
from core.integrations.mcp_breaker import MAX_FAILED_RECOVERIES, BreakerRecord, BreakerState


class GateKind(StrEnum):
    """The heavy jobs the gate knows about (the sidecar's servers ask before starting one)."""

    SCAN = "scan"
    TEST_RUN = "test_run"


class GateCode(StrEnum):
    """Why the gate said what it said; stable values for metrics and the dashboard."""

    ALLOWED = "allowed"
    DISABLED = "disabled"
    BREAKER_OPEN = "breaker_open"
    BREAKER_LOCKED = "breaker_locked"
    BREAKER_HALF_OPEN = "breaker_half_open"
    MARKET_HOURS = "market_hours"


@dataclass(frozen=True)
class MarketHours:
    """The UTC window in which the sidecar does no heavy work: [start_hour, end_hour)."""

    enabled: bool = True
    start_hour: int = 9
    end_hour: int = 16

    @classmethod
    def from_settings(cls, settings: Settings) -> MarketHours:
        """MCP_MARKET_HOURS_ENABLED / _START / _END."""
        return cls(settings.mcp_market_hours_enabled, settings.mcp_market_hours_start, settings.mcp_market_hours_end)

    def label(self) -> str:
        """`09:00-16:00 UTC`, for reasons shown to operators."""
        return f"{self.start_hour:02d}:00-{self.end_hour:02d}:00 UTC"


def is_market_hours(now: datetime, hours: MarketHours) -> bool:
    """True when `now` (timezone-aware) falls in [start, end) UTC and the window is enabled."""
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError(
            f"is_market_hours needs a timezone-aware time such as datetime.now(timezone.utc); received naive {now!r}"
        )
    if not hours.enabled:
        return False
    utc = now.astimezone(UTC)
    minute_of_day = utc.hour * 60 + utc.minute
    return hours.start_hour * 60 <= minute_of_day < hours.end_hour * 60


@dataclass(frozen=True)
class GateDecision:
    """The gate's answer: may the job start, and why (or why not)."""

    allowed: bool
    reason: str
    kind: str
    code: GateCode

    def as_dict(self) -> dict[str, Any]:
        """JSON-safe form."""
        payload = asdict(self)
        payload["code"] = str(self.code)
        return payload


def parse_kind(kind: str) -> GateKind:
    """The GateKind named `kind`; ValueError listing the known kinds otherwise."""
    try:
        return GateKind(kind)
    except ValueError as e:
        raise ValueError(f"unknown gate kind {kind!r}: expected one of {[str(k) for k in GateKind]}") from e


def decide_gate(
    kind: GateKind,
    *,
    now: datetime,
    enabled: bool,
    breaker: BreakerRecord,
    hours: MarketHours,
) -> GateDecision:
    """May heavy work of `kind` start at `now`? Refused while disabled, while the MCP breaker is not
    closed, and during market hours; the reason says which and what ends it."""
    job = "scan" if kind is GateKind.SCAN else "test run"
    if not enabled:
        return GateDecision(
            False,
            f"{job} deferred: the MCP integration is disabled (MCPRiskIntegrator.enable() or "
            "MCP_INTEGRATION_ENABLED=true turns it back on)",
            str(kind),
            GateCode.DISABLED,
        )
    if breaker.locked:
        return GateDecision(
            False,
            f"{job} deferred: the MCP circuit breaker is open after {MAX_FAILED_RECOVERIES} failed recoveries "
            f"(tripped: {breaker.reason}); only a manual reset (dashboard, Telegram /reset_mcp, CLI) closes it",
            str(kind),
            GateCode.BREAKER_LOCKED,
        )
    if breaker.state is BreakerState.OPEN:
        return GateDecision(
            False,
            f"{job} deferred: the MCP circuit breaker is open ({breaker.reason}); heavy work resumes after the "
            "cooldown and one healthy check, or a manual reset",
            str(kind),
            GateCode.BREAKER_OPEN,
        )
    if breaker.state is BreakerState.HALF_OPEN:
        return GateDecision(
            False,
            f"{job} deferred: the MCP circuit breaker is half-open, waiting for one healthy resource/latency "
            f"check before heavy work resumes (tripped: {breaker.reason})",
            str(kind),
            GateCode.BREAKER_HALF_OPEN,
        )
    if is_market_hours(now, hours):
        return GateDecision(
            False,
            f"{job} deferred: market hours {hours.label()} (now {now.astimezone(UTC):%H:%M} UTC); heavy work runs "
            "outside them (MCP_MARKET_HOURS_ENABLED=false lifts this)",
            str(kind),
            GateCode.MARKET_HOURS,
        )
    return GateDecision(
        True, f"{job} allowed: outside market hours and the MCP circuit breaker is closed", str(kind), GateCode.ALLOWED
    )
