"""The circuit breaker's decisions as pure functions: figures and `now` in, a value out.

No I/O and no clock reads here; `core.circuit_breaker.CircuitBreaker` applies these decisions, keeps the
record and persists it. Keeping them apart is what lets the property tests sweep timezones, DST changes
and loss sequences without touching a file.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from enum import StrEnum
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError


class TradingState(StrEnum):
    ACTIVE = "ACTIVE"
    HALTED = "HALTED"


class TripKind(StrEnum):
    DAILY_LOSS = "daily_loss"
    CONSECUTIVE_LOSSES = "consecutive_losses"
    ERROR_BURST = "error_burst"
    CORRUPT_STATE = "corrupt_state"


# How each kind of trip ends: at the next trading-day boundary, after the cooldown, or only by a human.
LATCHED_UNTIL_DAY_BOUNDARY = frozenset({TripKind.DAILY_LOSS})
CLEARED_BY_COOLDOWN = frozenset({TripKind.CONSECUTIVE_LOSSES, TripKind.ERROR_BURST})
MANUAL_RESET_ONLY = frozenset({TripKind.CORRUPT_STATE})

# CircuitBreaker.check_mcp_resource_usage's CPU limit when none is configured (SPEC: "default 5.0 %");
# MCP_BREAKER_CPU_LIMIT_PERCENT sets it. The coverage rule lives in core.integrations.rules.
DEFAULT_MCP_CPU_LIMIT_PERCENT = 5.0


def require_aware(now: datetime) -> datetime:
    """`now` converted to UTC; a naive datetime is refused because its instant is unknown."""
    if not isinstance(now, datetime):
        raise TypeError(f"expected a timezone-aware datetime, received {type(now).__name__}")
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError(f"expected a timezone-aware datetime, received the naive {now.isoformat()}")
    return now.astimezone(UTC)


def zone(name: str) -> ZoneInfo:
    """The IANA timezone `name`, or a ValueError that says what was expected."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, TypeError) as e:
        raise ValueError(
            f"expected an IANA timezone name such as 'UTC' or 'America/New_York', received {name!r}"
        ) from e


def require_finite(name: str, value: float) -> float:
    """`value` as a float; NaN, infinities, booleans and non-numbers are refused with the field's name."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{name}: expected a number, received {value!r} ({type(value).__name__})")
    if not math.isfinite(value):
        raise ValueError(f"{name}: expected a finite number, received {value!r}")
    return float(value)


def positive(name: str, value: float) -> float:
    """A finite number > 0, or an error naming the field."""
    number = require_finite(name, value)
    if number <= 0:
        raise ValueError(f"{name}: expected a number > 0, received {value!r}")
    return number


def positive_count(name: str, value: int) -> int:
    """An integer ≥ 1, or an error naming the field."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name}: expected an integer ≥ 1, received {value!r}")
    return value


def fraction(name: str, value: float) -> float:
    """A fraction in [0, 1] (0.85 = 85 %); a percentage such as 85 is refused rather than misread."""
    number = require_finite(name, value)
    if not 0.0 <= number <= 1.0:
        raise ValueError(f"{name}: expected a fraction between 0 and 1 (0.85 = 85 %), received {value!r}")
    return number


def resource_figure(name: str, value: float) -> float:
    """A finite measurement ≥ 0 (CPU percent, megabytes)."""
    number = require_finite(name, value)
    if number < 0:
        raise ValueError(f"{name}: expected a measurement ≥ 0, received {value!r}")
    return number


def trading_day_of(now: datetime, tz: tzinfo) -> date:
    """The trading day `now` falls in: its calendar date on the wall clock of `tz`."""
    return require_aware(now).astimezone(tz).date()


def next_day_boundary(day: date, tz: tzinfo) -> datetime:
    """The instant (UTC) the trading day after `day` begins: the first moment of local midnight.

    fold=0 picks the earlier instant when midnight happens twice, and for a midnight skipped by a DST
    jump it gives the instant of the jump itself, which is when the new date starts on the wall clock.
    """
    local_midnight = datetime.combine(day + timedelta(days=1), time(0, 0), tzinfo=tz).replace(fold=0)
    return local_midnight.astimezone(UTC)


@dataclass(frozen=True, slots=True)
class DailyLossDecision:
    """Today's loss (positive = money lost) against the limit, and whether it trips the breaker."""

    loss: float
    limit: float
    trips: bool


def evaluate_daily_loss(day_start_equity: float, equity: float, max_daily_loss: float) -> DailyLossDecision:
    """Loss = equity at the start of the day − equity now (realized + unrealized); trips at ≥ the limit."""
    loss = day_start_equity - equity
    return DailyLossDecision(loss=loss, limit=max_daily_loss, trips=loss >= max_daily_loss)


def next_consecutive_losses(count: int, realized_pnl: float) -> int:
    """The losing streak after one closing trade: a loss extends it, a win ends it, break-even leaves it."""
    if realized_pnl < 0:
        return count + 1
    if realized_pnl > 0:
        return 0
    return count


def consecutive_losses_trip(count: int, limit: int) -> bool:
    """True once the losing streak reaches the limit."""
    return count >= limit


def in_window(moment: datetime, now: datetime, window_seconds: float) -> bool:
    """True when `moment` lies within the last `window_seconds` up to `now` (later moments do not count)."""
    return now - timedelta(seconds=window_seconds) < moment <= now


def errors_in_window(times: Iterable[datetime], now: datetime, window_seconds: float) -> list[datetime]:
    """The error times within the last `window_seconds` up to `now`."""
    return [t for t in times if in_window(t, now, window_seconds)]


@dataclass(frozen=True, slots=True)
class TripDecision:
    """A decision to halt: which kind of trip, the reason for the operator, and the figures behind it."""

    kind: TripKind
    reason: str
    figures: dict[str, Any]


def daily_loss_trip(
    day_start_equity: float, equity: float, max_daily_loss: float, *, trading_day: date, realized_pnl_today: float
) -> TripDecision | None:
    """A DAILY_LOSS trip when the day's loss on equity reaches the limit, else None."""
    decision = evaluate_daily_loss(day_start_equity, equity, max_daily_loss)
    if not decision.trips:
        return None
    return TripDecision(
        TripKind.DAILY_LOSS,
        f"daily loss {decision.loss:.2f} reached the limit {max_daily_loss:.2f} (equity {day_start_equity:.2f} "
        f"at the start of {trading_day} → {equity:.2f}); new entries halted until the next trading day or a "
        "manual reset",
        {
            "daily_loss": decision.loss,
            "max_daily_loss": max_daily_loss,
            "day_start_equity": day_start_equity,
            "equity": equity,
            "realized_pnl_today": realized_pnl_today,
            "trading_day": trading_day.isoformat(),
        },
    )


def losing_streak_trip(
    count: int, limit: int, last_realized_pnl: float, cooldown_seconds: float
) -> TripDecision | None:
    """A CONSECUTIVE_LOSSES trip once the losing streak reaches the limit, else None."""
    if not consecutive_losses_trip(count, limit):
        return None
    return TripDecision(
        TripKind.CONSECUTIVE_LOSSES,
        f"{count} losing trades in a row (limit {limit}); new entries halted for {cooldown_seconds:.0f} s",
        {"consecutive_losses": count, "consecutive_loss_limit": limit, "last_realized_pnl": last_realized_pnl},
    )


def error_burst_trip(
    errors: Sequence[tuple[datetime, str]],
    now: datetime,
    window_seconds: float,
    burst_count: int,
    cooldown_seconds: float,
) -> TripDecision | None:
    """An ERROR_BURST trip when `burst_count` errors (time, kind) fall within the window ending at `now`."""
    recent = [(at, kind) for at, kind in errors if in_window(at, now, window_seconds)]
    if len(recent) < burst_count:
        return None
    kinds = dict(sorted(Counter(kind for _, kind in recent).items()))
    return TripDecision(
        TripKind.ERROR_BURST,
        f"{len(recent)} errors within {window_seconds:.0f} s (limit {burst_count}): {kinds}; "
        f"new entries halted for {cooldown_seconds:.0f} s",
        {
            "errors_in_window": len(recent),
            "error_burst_count": burst_count,
            "window_seconds": window_seconds,
            "kinds": kinds,
        },
    )


def halt_ends_at(
    kind: TripKind, now: datetime, tz: tzinfo, cooldown_seconds: float, trading_day: date | None = None
) -> datetime | None:
    """When a trip of `kind` made at `now` clears by itself; None means only a manual reset clears it."""
    if kind in LATCHED_UNTIL_DAY_BOUNDARY:
        return next_day_boundary(trading_day if trading_day is not None else trading_day_of(now, tz), tz)
    if kind in CLEARED_BY_COOLDOWN:
        return require_aware(now) + timedelta(seconds=cooldown_seconds)
    return None


def halt_over(halted_until: datetime | None, now: datetime) -> bool:
    """True when a halt that ends at `halted_until` is over at `now` (None never ends by itself)."""
    return halted_until is not None and now >= halted_until


def outlasts(new_until: datetime | None, current_until: datetime | None) -> bool:
    """True when a new halt ending at `new_until` ends strictly later than the current one (None = never)."""
    if current_until is None:
        return False
    return new_until is None or new_until > current_until


def resource_violations(cpu_percent: float, memory_mb: float, limit_mb: float, cpu_limit_percent: float) -> list[str]:
    """Each resource limit the sidecar exceeds, as a sentence with the figures (empty when within limits)."""
    problems = []
    if memory_mb > limit_mb:
        problems.append(f"memory {memory_mb:.1f} MB above the limit {limit_mb:.1f} MB")
    if cpu_percent > cpu_limit_percent:
        problems.append(f"CPU {cpu_percent:.1f} % above the limit {cpu_limit_percent:.1f} %")
    return problems
