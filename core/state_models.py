"""The bot's two state files as pydantic models: the one description of their shape.

`BreakerStateFile` is `<STATE_DIR>/circuit_breaker.json` (the circuit breaker's record, written on change);
`RiskSnapshot` is `<STATE_DIR>/risk_state.json` (the executor's figures, written about once a second).
The bot writes both through these models and every reader reads through them (`core.state_reader`), so
what is written and what is read cannot drift apart. Each field check says what it expected and what it
found; `core.state_reader.shape_message` turns the first failure into "field 'x.y[0]' should be …".

Times stay ISO 8601 strings in the models (checked, not converted), so a file read and written again keeps
its exact text. `complete=True` (the breaker restoring itself) also requires every field a restart needs
and the trip fields to agree; the sidecar reads with `complete=False` and accepts a record that lacks some
fields, but never one with a field of the wrong type.
"""

from __future__ import annotations

import math
from datetime import date, datetime
from typing import Annotated, Any, ClassVar

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    PlainValidator,
    ValidationInfo,
    model_validator,
)
from pydantic_core import PydanticCustomError

from core.breaker_rules import CLEARED_BY_COOLDOWN, LATCHED_UNTIL_DAY_BOUNDARY, MANUAL_RESET_ONLY, TripKind

BREAKER_SCHEMA_VERSION = 1
SNAPSHOT_SCHEMA_VERSION = 1
# the error types of the field checks, which core.state_reader.shape_message turns into messages
SHAPE = "state_shape"
MISSING_FIELD = "state_missing_field"


# --- field types: each check says what it expected and what it found --------------------------------


def describe(value: Any) -> str:
    """A short text of a JSON value and its Python type, for error messages."""
    text = repr(value)
    if len(text) > 60:
        text = text[:57] + "..."
    return f"{text} ({type(value).__name__})"


def _refuse(expected: str, value: Any) -> PydanticCustomError:
    return PydanticCustomError(
        SHAPE, "should be {expected}, found {found}", {"expected": expected, "found": describe(value)}
    )


def _number(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise _refuse("a number", value)
    return value


def _non_negative(value: Any) -> float:
    if _number(value) < 0:
        raise _refuse("a number ≥ 0.0", value)
    return value


def _count(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise _refuse("a non-negative integer", value)
    return value


def _integer(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise _refuse("an integer", value)
    return value


def _flag(value: Any) -> bool:
    if not isinstance(value, bool):
        raise _refuse("true or false", value)
    return value


def _text(value: Any) -> str:
    if not isinstance(value, str):
        raise _refuse("a string", value)
    return value


def _moment(value: Any) -> str:
    expected = "an ISO 8601 date-time with a UTC offset"
    if not isinstance(value, str):
        raise _refuse(expected, value)
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise _refuse(expected, value) from None
    if parsed.tzinfo is None:
        raise _refuse(expected, value)
    return value


def _day(value: Any) -> str:
    try:
        date.fromisoformat(value if isinstance(value, str) else "")
    except ValueError:
        raise _refuse("a date YYYY-MM-DD or null", value) from None
    return value


def _object(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _refuse("a JSON object", value)
    return value


def _array(value: Any) -> list[Any]:
    if not isinstance(value, list):
        raise _refuse("a JSON array", value)
    return value


def _objects(value: Any) -> list[dict[str, Any]]:
    for index, item in enumerate(_array(value)):
        if not isinstance(item, dict):
            raise PydanticCustomError(
                SHAPE, "should be a JSON object, found {found}", {"index": index, "found": describe(item)}
            )
    return value


def _trip_kind(value: Any) -> str:
    if not isinstance(value, str) or value not in {str(kind) for kind in TripKind}:
        raise _refuse(f"one of {[str(kind) for kind in TripKind]}", value)
    return value


def _trading_state(value: Any) -> str:
    if value not in ("ACTIVE", "HALTED"):
        raise _refuse("'ACTIVE' or 'HALTED'", value)
    return value


def _nullable(check: Any) -> Any:
    def allow_null(value: Any) -> Any:
        return None if value is None else check(value)

    return allow_null


# A present field is always checked (null only where a Maybe… type allows it); a missing one is left at
# its default None and only refused when reading `complete` (see _Shape.REQUIRED).
Number = Annotated[float | None, PlainValidator(_number)]
NonNegative = Annotated[float | None, PlainValidator(_non_negative)]
Count = Annotated[int | None, PlainValidator(_count)]
Integer = Annotated[int | None, PlainValidator(_integer)]
Flag = Annotated[bool | None, PlainValidator(_flag)]
Text = Annotated[str | None, PlainValidator(_text)]
Moment = Annotated[str | None, PlainValidator(_moment)]
JsonObject = Annotated[dict[str, Any] | None, PlainValidator(_object)]
ObjectArray = Annotated[list[dict[str, Any]] | None, PlainValidator(_objects)]
Kind = Annotated[str | None, PlainValidator(_trip_kind)]
State = Annotated[str | None, PlainValidator(_trading_state)]
MaybeNumber = Annotated[float | None, PlainValidator(_nullable(_number))]
MaybeText = Annotated[str | None, PlainValidator(_nullable(_text))]
MaybeMoment = Annotated[str | None, PlainValidator(_nullable(_moment))]
MaybeDay = Annotated[str | None, PlainValidator(_nullable(_day))]
MaybeObject = Annotated[dict[str, Any] | None, PlainValidator(_nullable(_object))]
MaybeKind = Annotated[str | None, PlainValidator(_nullable(_trip_kind))]


class _Shape(BaseModel):
    """A JSON object of a state file: extra keys are kept (readers of newer fields), declared ones checked."""

    model_config = ConfigDict(extra="allow", frozen=True)
    # what a restart needs: refused when missing only if the read is `complete`
    REQUIRED: ClassVar[tuple[str, ...]] = ()

    @model_validator(mode="before")
    @classmethod
    def _required_fields(cls, data: Any, info: ValidationInfo) -> Any:
        if not isinstance(data, dict):
            raise _refuse("a JSON object", data)
        if info.context and info.context.get("complete"):
            for name in cls.REQUIRED:
                if name not in data:
                    raise PydanticCustomError(MISSING_FIELD, "{field} is missing", {"field": name})
        return data

    def to_json(self) -> dict[str, Any]:
        """The JSON object this document stands for (only the keys it was given)."""
        return self.model_dump(mode="json", exclude_unset=True)


class RecentError(_Shape):
    at: Moment = None
    kind: Text = None


RecentError.REQUIRED = tuple(RecentError.model_fields)


class TripHistoryEntry(_Shape):
    REQUIRED = ("time", "kind", "reason", "figures")
    time: Moment = None
    kind: Kind = None
    reason: Text = None
    figures: JsonObject = None
    halted_until: MaybeMoment = None
    cleared_at: MaybeMoment = None
    cleared_by: MaybeText = None


class McpIntegrationRecord(_Shape):
    """The breaker's record of the sidecar's checks (core.breaker_sidecar_record.McpRecord on disk)."""

    enabled: Flag = None
    test_coverage_threshold: NonNegative = None
    enabled_at: MaybeText = None
    disabled_at: MaybeText = None
    coverage_checks: Count = None
    coverage_failures: Count = None
    critical_coverage_checks: Count = None
    resource_checks: Count = None
    resource_failures: Count = None
    last_coverage_check: MaybeObject = None
    last_resource_check: MaybeObject = None


# every field of the sidecar record is needed to restore it (the derived limits beside them are extras)
McpIntegrationRecord.REQUIRED = tuple(McpIntegrationRecord.model_fields)


class StateDocument(_Shape):
    """A whole state file: its schema version is checked before the shape (see `read_state`)."""

    SCHEMA_VERSION: ClassVar[int]
    WHAT: ClassVar[str]  # names the file in messages
    MISSING_ADVICE: ClassVar[str]  # follows "the bot has not written it yet"
    schema_version: Integer = None


class BreakerStateFile(StateDocument):
    """circuit_breaker.json: the breaker's persisted record plus the derived figures written for readers."""

    SCHEMA_VERSION = BREAKER_SCHEMA_VERSION
    WHAT = "the circuit-breaker state file"
    MISSING_ADVICE = " (normal until the breaker's first change of state)"
    REQUIRED = (
        "state",
        "trip_kind",
        "trading_day",
        "day_start_equity",
        "last_equity",
        "realized_pnl_today",
        "daily_loss_written_off",
        "consecutive_losses",
        "recent_errors",
        "trip_history",
        "last_reset",
        "mcp_integration",
    )
    state: State = None
    trip_kind: MaybeKind = None
    trip_reason: MaybeText = None
    tripped_at: MaybeMoment = None
    halted_until: MaybeMoment = None
    trip_figures: MaybeObject = None
    trading_day: MaybeDay = None
    day_start_equity: MaybeNumber = None
    last_equity: MaybeNumber = None
    realized_pnl_today: Number = None
    daily_loss_written_off: NonNegative = None
    consecutive_losses: Count = None
    recent_errors: Annotated[list[RecentError], BeforeValidator(_array)] = None  # type: ignore[assignment]
    trip_history: Annotated[list[TripHistoryEntry], BeforeValidator(_array)] = None  # type: ignore[assignment]
    last_reset: MaybeObject = None
    mcp_integration: McpIntegrationRecord = None  # type: ignore[assignment]
    # derived and configured figures: written for readers (the sidecar), recomputed on restore
    daily_loss: MaybeNumber = None
    unrealized_pnl: MaybeNumber = None
    errors_in_window: Count = None
    timezone: MaybeText = None
    next_day_boundary: MaybeMoment = None
    wallet: MaybeText = None
    as_of: MaybeMoment = None

    @model_validator(mode="after")
    def _trip_agrees_with_state(self, info: ValidationInfo) -> BreakerStateFile:
        if not (info.context and info.context.get("complete")):
            return self
        kind = self.trip_kind
        if kind is None:
            if self.state != "ACTIVE":
                raise PydanticCustomError(SHAPE, "field 'state' is HALTED but 'trip_kind' is null: the trip is unknown")
            return self
        if self.state != "HALTED":
            raise PydanticCustomError(SHAPE, f"field 'state' is ACTIVE but a {kind} trip is recorded: the two disagree")
        given = self.model_fields_set
        for name, expected in (("tripped_at", "an ISO 8601 date-time with a UTC offset"), ("trip_reason", "a string")):
            if name not in given or getattr(self, name) is None:
                raise PydanticCustomError(SHAPE, f"field '{name}' should be {expected}, found None (a {kind} trip)")
        if "trip_figures" not in given or self.trip_figures is None:
            raise PydanticCustomError(
                SHAPE, f"field 'trip_figures' should be a JSON object, found None (a {kind} trip)"
            )
        if "halted_until" not in given:
            raise PydanticCustomError(MISSING_FIELD, "{field} is missing", {"field": "halted_until"})
        if self.halted_until is None and kind in LATCHED_UNTIL_DAY_BOUNDARY | CLEARED_BY_COOLDOWN:
            raise PydanticCustomError(
                SHAPE, f"field 'halted_until' is null, but a {kind} trip must record when it ends"
            )
        if self.halted_until is not None and kind in MANUAL_RESET_ONLY:
            raise PydanticCustomError(
                SHAPE, f"field 'halted_until' must be null for a {kind} trip (only a manual reset ends it)"
            )
        return self


class RiskSnapshot(StateDocument):
    """risk_state.json: the executor's figures. Every key may be missing (a reader shows what there is)."""

    SCHEMA_VERSION = SNAPSHOT_SCHEMA_VERSION
    WHAT = "the risk snapshot"
    MISSING_ADVICE = ", so it has not published a risk snapshot yet (is the bot running, with the same STATE_DIR?)"
    pid: Integer = None
    updated_at: Text = None
    updated_at_epoch: Number = None
    trading_mode: Text = None
    trading_state: Text = None
    wallet: Text = None
    breaker: JsonObject = None
    risk_parameters: JsonObject = None
    exposure: JsonObject = None
    positions: ObjectArray = None
    latency_ms: JsonObject = None
    arrival_latency_ms: JsonObject = None
    errors: JsonObject = None
    trades: JsonObject = None
    denials: JsonObject = None
    realized_pnl: MaybeNumber = None
    rss_mb: Number = None
    reconcile: JsonObject = None
