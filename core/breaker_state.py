"""The circuit breaker's record and its JSON form (schema version 1), read back with every field checked.

The state file is the `CircuitBreaker.get_state()` record plus the few raw figures a restart needs
(`last_equity`, `recent_errors`). Derived figures (daily_loss, unrealized_pnl, limits) are written for
readers such as the sidecar but recomputed on load. Anything that does not match the shape raises
`StateShapeError` naming the field, what was expected and what was found: the breaker then halts.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from core.breaker_rules import (
    CLEARED_BY_COOLDOWN,
    LATCHED_UNTIL_DAY_BOUNDARY,
    MANUAL_RESET_ONLY,
    TradingState,
    TripKind,
    outlasts,
)
from core.breaker_sidecar_record import McpRecord

SCHEMA_VERSION = 1
HISTORY_LIMIT = 50


class StateShapeError(ValueError):
    """The state file is JSON but not a breaker record of schema version 1."""


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


_MISSING = object()


def _describe(value: Any) -> str:
    text = repr(value)
    if len(text) > 60:
        text = text[:57] + "..."
    return f"{text} ({type(value).__name__})"


class _Fields:
    """Typed access to one JSON object; each getter raises StateShapeError naming the field."""

    def __init__(self, payload: dict[str, Any], where: str = "") -> None:
        self._payload = payload
        self._where = where

    def _get(self, key: str) -> Any:
        value = self._payload.get(key, _MISSING)
        if value is _MISSING:
            raise StateShapeError(f"field '{self._where}{key}' is missing")
        return value

    def _bad(self, key: str, expected: str, value: Any) -> StateShapeError:
        return StateShapeError(f"field '{self._where}{key}': expected {expected}, found {_describe(value)}")

    def number(self, key: str, *, minimum: float | None = None) -> float:
        value = self._get(key)
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise self._bad(key, "a finite number", value)
        if minimum is not None and value < minimum:
            raise self._bad(key, f"a number ≥ {minimum}", value)
        return float(value)

    def maybe_number(self, key: str) -> float | None:
        return None if self._get(key) is None else self.number(key)

    def count(self, key: str) -> int:
        value = self._get(key)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise self._bad(key, "a non-negative integer", value)
        return value

    def flag(self, key: str) -> bool:
        value = self._get(key)
        if not isinstance(value, bool):
            raise self._bad(key, "true or false", value)
        return value

    def text(self, key: str) -> str:
        value = self._get(key)
        if not isinstance(value, str):
            raise self._bad(key, "a string", value)
        return value

    def maybe_text(self, key: str) -> str | None:
        return None if self._get(key) is None else self.text(key)

    def moment(self, key: str) -> datetime:
        value = self.text(key)
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            raise self._bad(key, "an ISO 8601 date-time with a UTC offset", value) from None
        if parsed.tzinfo is None:
            raise self._bad(key, "an ISO 8601 date-time with a UTC offset", value)
        return parsed

    def maybe_moment(self, key: str) -> datetime | None:
        return None if self._get(key) is None else self.moment(key)

    def maybe_day(self, key: str) -> date | None:
        value = self.maybe_text(key)
        if value is None:
            return None
        try:
            return date.fromisoformat(value)
        except ValueError:
            raise self._bad(key, "a date YYYY-MM-DD or null", value) from None

    def obj(self, key: str) -> dict[str, Any]:
        value = self._get(key)
        if not isinstance(value, dict):
            raise self._bad(key, "a JSON object", value)
        return value

    def maybe_obj(self, key: str) -> dict[str, Any] | None:
        return None if self._get(key) is None else self.obj(key)

    def array(self, key: str) -> list[Any]:
        value = self._get(key)
        if not isinstance(value, list):
            raise self._bad(key, "a JSON array", value)
        return value

    def kind(self, key: str) -> TripKind:
        value = self.text(key)
        try:
            return TripKind(value)
        except ValueError:
            raise self._bad(key, f"one of {[str(k) for k in TripKind]}", value) from None

    def maybe_kind(self, key: str) -> TripKind | None:
        return None if self._get(key) is None else self.kind(key)


def _trip_from(fields: _Fields, state: str) -> Trip | None:
    kind = fields.maybe_kind("trip_kind")
    if state not in {str(s) for s in TradingState}:
        raise StateShapeError(f"field 'state': expected 'ACTIVE' or 'HALTED', found {_describe(state)}")
    if kind is None:
        if state != TradingState.ACTIVE:
            raise StateShapeError("field 'state' is HALTED but 'trip_kind' is null: the trip is unknown")
        return None
    if state != TradingState.HALTED:
        raise StateShapeError(f"field 'state' is ACTIVE but a {kind} trip is recorded: the two disagree")
    halted_until = fields.maybe_moment("halted_until")
    if halted_until is None and kind in LATCHED_UNTIL_DAY_BOUNDARY | CLEARED_BY_COOLDOWN:
        raise StateShapeError(f"field 'halted_until' is null, but a {kind} trip must record when it ends")
    if halted_until is not None and kind in MANUAL_RESET_ONLY:
        raise StateShapeError(f"field 'halted_until' must be null for a {kind} trip (only a manual reset ends it)")
    return Trip(
        kind=kind,
        reason=fields.text("trip_reason"),
        tripped_at=fields.moment("tripped_at"),
        halted_until=halted_until,
        figures=fields.obj("trip_figures"),
    )


def _history_from(entries: list[Any]) -> list[dict[str, Any]]:
    history = []
    for index, entry in enumerate(entries):
        if not isinstance(entry, dict):
            raise StateShapeError(f"field 'trip_history[{index}]': expected a JSON object, found {_describe(entry)}")
        fields = _Fields(entry, f"trip_history[{index}].")
        fields.moment("time")
        fields.kind("kind")
        fields.text("reason")
        fields.obj("figures")
        history.append(entry)
    return history[-HISTORY_LIMIT:]


def _errors_from(entries: list[Any]) -> list[tuple[datetime, str]]:
    errors = []
    for index, entry in enumerate(entries):
        if not isinstance(entry, dict):
            raise StateShapeError(f"field 'recent_errors[{index}]': expected a JSON object, found {_describe(entry)}")
        fields = _Fields(entry, f"recent_errors[{index}].")
        errors.append((fields.moment("at"), fields.text("kind")))
    return errors


def _mcp_from(payload: dict[str, Any]) -> McpRecord:
    fields = _Fields(payload, "mcp_integration.")
    return McpRecord(
        enabled=fields.flag("enabled"),
        test_coverage_threshold=fields.number("test_coverage_threshold", minimum=0.0),
        enabled_at=fields.maybe_text("enabled_at"),
        disabled_at=fields.maybe_text("disabled_at"),
        coverage_checks=fields.count("coverage_checks"),
        coverage_failures=fields.count("coverage_failures"),
        critical_coverage_checks=fields.count("critical_coverage_checks"),
        resource_checks=fields.count("resource_checks"),
        resource_failures=fields.count("resource_failures"),
        last_coverage_check=fields.maybe_obj("last_coverage_check"),
        last_resource_check=fields.maybe_obj("last_resource_check"),
    )


def record_from_json(payload: dict[str, Any]) -> BreakerRecord:
    """Rebuild a BreakerRecord from a state file's JSON object; StateShapeError names the first problem."""
    version = payload.get("schema_version", _MISSING)
    if version is _MISSING:
        raise StateShapeError(f"field 'schema_version' is missing (expected {SCHEMA_VERSION})")
    if isinstance(version, bool) or version != SCHEMA_VERSION:
        raise StateShapeError(f"field 'schema_version': expected {SCHEMA_VERSION}, found {_describe(version)}")
    fields = _Fields(payload)
    state = fields.text("state")
    return BreakerRecord(
        trading_day=fields.maybe_day("trading_day"),
        day_start_equity=fields.maybe_number("day_start_equity"),
        last_equity=fields.maybe_number("last_equity"),
        realized_pnl_today=fields.number("realized_pnl_today"),
        loss_written_off_today=fields.number("daily_loss_written_off", minimum=0.0),
        consecutive_losses=fields.count("consecutive_losses"),
        recent_errors=_errors_from(fields.array("recent_errors")),
        trip=_trip_from(fields, state),
        trip_history=_history_from(fields.array("trip_history")),
        last_reset=fields.maybe_obj("last_reset"),
        mcp=_mcp_from(fields.obj("mcp_integration")),
    )
