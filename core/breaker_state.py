"""The circuit breaker's record and its JSON form (schema version 1).

The state file is the `CircuitBreaker.get_state()` record plus the few raw figures a restart needs
(`last_equity`, `recent_errors`). Derived figures (daily_loss, unrealized_pnl, limits) are written for
readers such as the sidecar but recomputed on load. The file's shape is `core.state_models.BreakerStateFile`:
the breaker writes through it and reads back through `core.state_reader.read_breaker_state(complete=True)`,
which names the field, what was expected and what was found when a file does not match (the breaker then
halts).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from core.breaker_rules import (
    TradingState,
    TripKind,
    outlasts,
)
from core.breaker_sidecar_record import McpRecord
from core.state_models import BREAKER_SCHEMA_VERSION, BreakerStateFile, McpIntegrationRecord

SCHEMA_VERSION = BREAKER_SCHEMA_VERSION
HISTORY_LIMIT = 50


@dataclass(slots=True)
class Trip:
    """The trip currently holding the breaker HALTED."""

    kind: TripKind
    reason: str
    tripped_at: datetime
    halted_until: datetime | None
    figures: dict[str, Any]


@dataclass(slots=True)
class BreakerRecord:
    """Everything the breaker must remember across a restart."""

    trading_day: date | None = None
    day_start_equity: float | None = None
    last_equity: float | None = None
    realized_pnl_today: float = 0.0
    # loss written off today by manual resets (the day start equity is re-based on reset, see reset())
    loss_written_off_today: float = 0.0
    consecutive_losses: int = 0
    recent_errors: list[tuple[datetime, str]] = field(default_factory=list)
    trip: Trip | None = None
    trip_history: list[dict[str, Any]] = field(default_factory=list)
    last_reset: dict[str, Any] | None = None
    mcp: McpRecord = field(default_factory=McpRecord)

    @property
    def state(self) -> TradingState:
        return TradingState.HALTED if self.trip is not None else TradingState.ACTIVE

    @property
    def daily_loss(self) -> float:
        """Equity at the start of the day − last equity (0 until both are known)."""
        if self.day_start_equity is None or self.last_equity is None:
            return 0.0
        return self.day_start_equity - self.last_equity

    @property
    def unrealized_pnl(self) -> float:
        """Today's equity change not explained by closed trades (open positions, fees); 0 until known."""
        if self.day_start_equity is None or self.last_equity is None:
            return 0.0
        return self.last_equity - self.day_start_equity - self.realized_pnl_today

    def start_day(self, day: date) -> None:
        """Begin trading day `day`: the next equity figure becomes the day's start equity."""
        self.trading_day = day
        self.day_start_equity = None
        self.realized_pnl_today = 0.0
        self.loss_written_off_today = 0.0

    def apply_trip(self, trip: Trip) -> bool:
        """Make `trip` the current one unless a halt at least as long already holds; True if it did."""
        current = self.trip
        if current is not None and (current.kind == trip.kind or not outlasts(trip.halted_until, current.halted_until)):
            return False
        if current is not None:
            self._mark_cleared(current, trip.tripped_at, f"superseded by {trip.kind}")
        self.trip = trip
        entry = {"time": iso(trip.tripped_at), "kind": str(trip.kind), "reason": trip.reason, "figures": trip.figures}
        entry |= {"halted_until": iso(trip.halted_until), "cleared_at": None, "cleared_by": None}
        self.trip_history = [*self.trip_history, entry][-HISTORY_LIMIT:]
        return True

    def clear_trip(self, now: datetime, cleared_by: str) -> Trip | None:
        """End the current trip (noting who ended it in the history); the trip that was cleared, if any."""
        trip = self.trip
        if trip is None:
            return None
        self._mark_cleared(trip, now, cleared_by)
        self.trip = None
        # the halt was the cooldown for every counter; starting again from zero avoids an instant re-trip
        self.consecutive_losses = 0
        self.recent_errors = []
        return trip

    def _mark_cleared(self, trip: Trip, now: datetime, cleared_by: str) -> None:
        for entry in reversed(self.trip_history):
            if entry.get("kind") == trip.kind and entry.get("time") == iso(trip.tripped_at):
                entry["cleared_at"] = iso(now)
                entry["cleared_by"] = cleared_by
                return


def iso(moment: datetime | None) -> str | None:
    """ISO 8601 text of a datetime (None stays None)."""
    return moment.isoformat() if moment is not None else None


def record_to_json(record: BreakerRecord) -> dict[str, Any]:
    """The persisted fields of `record` (the breaker adds the derived and configured figures)."""
    trip = record.trip
    return {
        "schema_version": SCHEMA_VERSION,
        "state": str(record.state),
        "trip_kind": str(trip.kind) if trip else None,
        "trip_reason": trip.reason if trip else None,
        "tripped_at": iso(trip.tripped_at) if trip else None,
        "halted_until": iso(trip.halted_until) if trip else None,
        "trip_figures": dict(trip.figures) if trip else None,
        "trading_day": record.trading_day.isoformat() if record.trading_day else None,
        "day_start_equity": record.day_start_equity,
        "last_equity": record.last_equity,
        "realized_pnl_today": record.realized_pnl_today,
        "daily_loss_written_off": record.loss_written_off_today,
        "consecutive_losses": record.consecutive_losses,
        "recent_errors": [{"at": at.isoformat(), "kind": kind} for at, kind in record.recent_errors],
        "trip_history": [dict(entry) for entry in record.trip_history[-HISTORY_LIMIT:]],
        "last_reset": dict(record.last_reset) if record.last_reset else None,
        "mcp_integration": record.mcp.to_json(),
    }


def record_from_document(document: BreakerStateFile) -> BreakerRecord:
    """Rebuild a BreakerRecord from a state file read with `complete=True` (every field checked there)."""
    if document.trip_kind is not None:
        assert document.trip_reason is not None and document.tripped_at is not None  # complete: checked
        trip: Trip | None = Trip(
            kind=TripKind(document.trip_kind),
            reason=document.trip_reason,
            tripped_at=datetime.fromisoformat(document.tripped_at),
            halted_until=_moment(document.halted_until),
            figures=dict(document.trip_figures or {}),
        )
    else:
        trip = None
    mcp = document.mcp_integration.to_json() if document.mcp_integration is not None else {}
    return BreakerRecord(
        trading_day=date.fromisoformat(document.trading_day) if document.trading_day else None,
        day_start_equity=_maybe_float(document.day_start_equity),
        last_equity=_maybe_float(document.last_equity),
        realized_pnl_today=float(document.realized_pnl_today or 0.0),
        loss_written_off_today=float(document.daily_loss_written_off or 0.0),
        consecutive_losses=document.consecutive_losses or 0,
        recent_errors=[(datetime.fromisoformat(e.at or ""), e.kind or "") for e in document.recent_errors or []],
        trip=trip,
        trip_history=[entry.to_json() for entry in document.trip_history or []][-HISTORY_LIMIT:],
        last_reset=dict(document.last_reset) if document.last_reset is not None else None,
        mcp=McpRecord(**{name: mcp[name] for name in McpIntegrationRecord.REQUIRED}),
    )


def _moment(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text is not None else None


def _maybe_float(value: float | None) -> float | None:
    return float(value) if value is not None else None
