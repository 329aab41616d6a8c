"""Pre-trade checks of the trade executor, as pure decisions: figures in, a Decision out.

Units: sizes in shares, prices in USDC per share, every money limit (min/max order, position, exposure)
in USDC notional. A "position" is one outcome token (the snapshot's `exposure.by_market` is keyed by
token id).

Sizing policy (the only case where the executor resizes instead of denying): a copied BUY is scaled by
COPY_RATIO and then capped to MAX_ORDER_SIZE notional; a copied SELL is scaled by COPY_RATIO and capped
to what we hold (we never go short). Every other limit denies the order as a whole, with the figures.
Exits (sells of held positions) skip the entry-only checks (breaker halt, max order, position, exposure,
open positions, balance) because they reduce risk; they still face the input, liquidity, slippage,
minimum-order (unless they close the whole position) and submit-rate checks.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from core.clob.base import BookLevel, OrderBook, Side

# Float noise from walking a book must never turn "exactly at the limit" into a denial.
EPSILON = 1e-9
RATE_WINDOW_SECONDS = 60.0


class DenyReason(StrEnum):
    """Why an order was not sent; the values are the stable reason codes seen in metrics and snapshots."""

    INVALID_TRADE = "invalid_trade"
    BREAKER_HALTED = "breaker_halted"
    NO_POSITION = "no_position"
    MIN_ORDER_SIZE = "min_order_size"
    MAX_ORDER_SIZE = "max_order_size"
    MAX_POSITION_SIZE = "max_position_size"
    MAX_TOTAL_EXPOSURE = "max_total_exposure"
    MAX_OPEN_POSITIONS = "max_open_positions"
    INSUFFICIENT_LIQUIDITY = "insufficient_liquidity"
    INSUFFICIENT_BALANCE = "insufficient_balance"
    MAX_SLIPPAGE = "max_slippage"
    MAX_ORDERS_PER_MINUTE = "max_orders_per_minute"
    STOP_LOSS = "stop_loss"
    RECONCILE_MISMATCH = "reconcile_mismatch"  # issue 8: our books and the exchange's disagree (live mode)


@dataclass(frozen=True, slots=True)
class Decision:
    """The outcome of one check: allowed or not, the reason code, the limit it used, and the figures."""

    allowed: bool
    check: str
    parameter: str | None = None
    reason: DenyReason | None = None
    figures: Mapping[str, Any] = field(default_factory=dict)

    @property
    def message(self) -> str:
        """One line for logs: the check, and the figures that decided it."""
        verdict = "allowed" if self.allowed else f"denied ({self.reason})"
        details = ", ".join(f"{key}={value}" for key, value in self.figures.items())
        return f"{self.check}: {verdict}; {details}" if details else f"{self.check}: {verdict}"


def _allow(check: str, parameter: str | None, **figures: Any) -> Decision:
    return Decision(True, check, parameter, None, figures)


def _deny(check: str, parameter: str | None, reason: DenyReason, **figures: Any) -> Decision:
    return Decision(False, check, parameter, reason, figures)


@dataclass(frozen=True, slots=True)
class RiskLimits:
    """The executor's limits, read once from Settings (the single source of each value)."""

    copy_ratio: float
    max_order_size: float
    max_position_size: float
    max_total_exposure: float
    max_open_positions: int
    max_slippage: float
    min_order_size: float
    max_orders_per_minute: int

    @classmethod
    def from_settings(cls, settings: Any) -> RiskLimits:
        """Copy the limits out of a Settings object (any object with the same attribute names)."""
        return cls(
            copy_ratio=float(settings.copy_ratio),
            max_order_size=float(settings.max_order_size),
            max_position_size=float(settings.max_position_size),
            max_total_exposure=float(settings.max_total_exposure),
            max_open_positions=int(settings.max_open_positions),
            max_slippage=float(settings.max_slippage),
            min_order_size=float(settings.min_order_size),
            max_orders_per_minute=int(settings.max_orders_per_minute),
        )


# --- walking the book ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BookFill:
    """What an immediate order would get from the book: shares, USDC, average and worst price reached."""

    requested_size: float
    filled_size: float
    notional: float
    worst_price: float | None

    @property
    def avg_price(self) -> float | None:
        return self.notional / self.filled_size if self.filled_size > 0 else None

    @property
    def complete(self) -> bool:
        return self.requested_size > 0 and self.filled_size >= self.requested_size - EPSILON


def walk_book_by_size(levels: Sequence[BookLevel], size: float) -> BookFill:
    """Take `size` shares from `levels` (best first) and say what that would cost."""
    remaining = size
    filled = notional = 0.0
    worst: float | None = None
    for level in levels:
        if remaining <= EPSILON:
            break
        take = min(level.size, remaining)
        if take <= 0:
            continue
        filled += take
        notional += take * level.price
        remaining -= take
        worst = level.price
    return BookFill(size, filled, notional, worst)


def walk_book_by_notional(levels: Sequence[BookLevel], budget: float) -> BookFill:
    """Spend up to `budget` USDC on `levels` (best first); the requested size is what the budget buys."""
    remaining = budget
    filled = notional = 0.0
    worst: float | None = None
    for level in levels:
        if remaining <= EPSILON:
            break
        if level.size <= 0 or level.price <= 0:
            continue
        take = min(level.size, remaining / level.price)
        filled += take
        notional += take * level.price
        remaining -= take * level.price
        worst = level.price
    # when the book runs out the order is incomplete: ask for more than it holds
    requested = filled if remaining <= EPSILON else filled + remaining / (worst or 1.0)
    return BookFill(requested, filled, notional, worst)


@dataclass(frozen=True, slots=True)
class OrderPlan:
    """The order the executor intends to send for one copied trade, before the checks."""

    side: Side
    scaled_size: float  # the copied size times COPY_RATIO
    size: float  # after the documented caps (max order notional for buys, holding for sells)
    fill: BookFill
    capped_by: str | None  # "max_order_size", "holding" or None
    closes_position: bool


def plan_copy_order(
    side: Side, trade_size: float, copy_ratio: float, held: float, book: OrderBook, max_order_size: float
) -> OrderPlan:
    """Scale the copied trade and walk the book: buys take asks up to MAX_ORDER_SIZE, sells take bids."""
    scaled = trade_size * copy_ratio
    if side is Side.BUY:
        fill = walk_book_by_size(book.asks, scaled)
        if fill.notional > max_order_size + EPSILON:
            # fewer shares never raise the average price, so the capped fill stays within the limit
            fill = walk_book_by_notional(book.asks, max_order_size)
            return OrderPlan(side, scaled, fill.requested_size, fill, "max_order_size", False)
        return OrderPlan(side, scaled, scaled, fill, None, False)
    size = min(scaled, held)
    fill = walk_book_by_size(book.bids, size)
    closes = held > 0 and size >= held - EPSILON
    return OrderPlan(side, scaled, size, fill, "holding" if scaled > held + EPSILON else None, closes)


# --- the checks ---------------------------------------------------------------------------------------


def _finite(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def check_trade_input(side: object, size: float, price: float) -> Decision:
    """The copied trade must be a BUY or SELL of a positive size at a price strictly between 0 and 1."""
    ok = isinstance(side, Side) and _finite(size) and size > 0 and _finite(price) and 0 < price < 1
    if ok:
        return _allow("trade_input", None, side=str(side), size=size, price=price)
    return _deny(
        "trade_input",
        None,
        DenyReason.INVALID_TRADE,
        side=str(side),
        size=size,
        price=price,
        expected="side BUY|SELL, size > 0, 0 < price < 1",
    )


def check_breaker(is_entry: bool, allows_new_entries: bool, state: str) -> Decision:
    """A HALTED breaker blocks new entries; exits always pass."""
    if allows_new_entries or not is_entry:
        return _allow("circuit_breaker", None, state=state, is_entry=is_entry)
    return _deny("circuit_breaker", None, DenyReason.BREAKER_HALTED, state=state, is_entry=is_entry)


def check_reconcile(is_entry: bool, mismatched_markets: Sequence[str] | None) -> Decision:
    """While our books and the exchange's disagree (a confirmed reconcile mismatch), new entries are denied;
    exits always pass. `mismatched_markets` is None when the books agree."""
    if mismatched_markets is None or not is_entry:
        return _allow("reconcile", None, is_entry=is_entry)
    return _deny(
        "reconcile", None, DenyReason.RECONCILE_MISMATCH, is_entry=is_entry, markets=", ".join(mismatched_markets)
    )


def check_holding(held: float) -> Decision:
    """A sell copies only what we hold: nothing held, nothing to sell."""
    if held > EPSILON:
        return _allow("holding", None, held=held)
    return _deny("holding", None, DenyReason.NO_POSITION, held=held)


def check_min_order(notional: float, min_order_size: float, closes_position: bool) -> Decision:
    """Orders below MIN_ORDER_SIZE notional are denied, except a sell that closes the whole position."""
    if notional + EPSILON >= min_order_size or closes_position:
        return _allow("min_order_size", "min_order_size", notional=notional, limit=min_order_size)
    return _deny("min_order_size", "min_order_size", DenyReason.MIN_ORDER_SIZE, notional=notional, limit=min_order_size)


def check_max_order(notional: float, max_order_size: float) -> Decision:
    """An entry's notional must not exceed MAX_ORDER_SIZE (the sizing caps it; this guards the cap)."""
    if notional <= max_order_size + EPSILON:
        return _allow("max_order_size", "max_order_size", notional=notional, limit=max_order_size)
    return _deny("max_order_size", "max_order_size", DenyReason.MAX_ORDER_SIZE, notional=notional, limit=max_order_size)


def check_position_limit(current_notional: float, order_notional: float, max_position_size: float) -> Decision:
    """The position in this token after the order must stay within MAX_POSITION_SIZE notional."""
    after = current_notional + order_notional
    figures = {"current": current_notional, "order": order_notional, "after": after, "limit": max_position_size}
    if after <= max_position_size + EPSILON:
        return _allow("max_position_size", "max_position_size", **figures)
    return _deny("max_position_size", "max_position_size", DenyReason.MAX_POSITION_SIZE, **figures)


def check_total_exposure(total_exposure: float, order_notional: float, max_total_exposure: float) -> Decision:
    """All positions together after the order must stay within MAX_TOTAL_EXPOSURE notional."""
    after = total_exposure + order_notional
    figures = {"current": total_exposure, "order": order_notional, "after": after, "limit": max_total_exposure}
    if after <= max_total_exposure + EPSILON:
        return _allow("max_total_exposure", "max_total_exposure", **figures)
    return _deny("max_total_exposure", "max_total_exposure", DenyReason.MAX_TOTAL_EXPOSURE, **figures)


def check_open_positions(open_positions: int, adds_position: bool, max_open_positions: int) -> Decision:
    """A buy that opens a new position must keep the count within MAX_OPEN_POSITIONS."""
    after = open_positions + (1 if adds_position else 0)
    figures = {"open": open_positions, "after": after, "limit": max_open_positions}
    if after <= max_open_positions:
        return _allow("max_open_positions", "max_open_positions", **figures)
    return _deny("max_open_positions", "max_open_positions", DenyReason.MAX_OPEN_POSITIONS, **figures)


def check_liquidity(fill: BookFill) -> Decision:
    """The book must hold the whole order on the side we take."""
    figures = {"requested": fill.requested_size, "available": fill.filled_size}
    if fill.complete:
        return _allow("liquidity", None, **figures)
    return _deny("liquidity", None, DenyReason.INSUFFICIENT_LIQUIDITY, **figures)


def check_balance(cash: float | None, order_cost: float) -> Decision:
    """A buy must be payable from the cash we know of (size × limit price); unknown cash is not checked."""
    figures = {"cash": cash, "cost": order_cost}
    if cash is None or order_cost <= cash + EPSILON:
        return _allow("balance", None, **figures)
    return _deny("balance", None, DenyReason.INSUFFICIENT_BALANCE, **figures)


def slippage(side: Side, avg_price: float, reference_price: float) -> float:
    """How much worse than `reference_price` the average fill is, as a fraction (negative: better)."""
    if reference_price <= 0:
        return float("inf")
    worse = avg_price - reference_price if side is Side.BUY else reference_price - avg_price
    return worse / reference_price


def check_slippage(
    side: Side, fill: BookFill, trade_price: float, best_price: float | None, max_slippage: float
) -> Decision:
    """The expected average fill must be within MAX_SLIPPAGE of both the copied price and the best price."""
    avg = fill.avg_price
    if avg is None or best_price is None:
        return _deny("max_slippage", "max_slippage", DenyReason.MAX_SLIPPAGE, avg_price=avg, limit=max_slippage)
    vs_trade = slippage(side, avg, trade_price)
    vs_best = slippage(side, avg, best_price)
    figures = {
        "avg_price": avg,
        "trade_price": trade_price,
        "best_price": best_price,
        "vs_trade": vs_trade,
        "vs_best": vs_best,
        "limit": max_slippage,
    }
    if max(vs_trade, vs_best) <= max_slippage + EPSILON:
        return _allow("max_slippage", "max_slippage", **figures)
    return _deny("max_slippage", "max_slippage", DenyReason.MAX_SLIPPAGE, **figures)


def orders_in_window(submit_times: Sequence[float], now: float, window: float = RATE_WINDOW_SECONDS) -> int:
    """How many of the ascending submit times fall within the last `window` seconds before `now`."""
    stale = 0
    for submitted in submit_times:  # ascending: the stale ones are at the front, so this stops early
        if now - submitted < window:
            break
        stale += 1
    return len(submit_times) - stale


def check_order_rate(
    submit_times: Sequence[float], now: float, max_per_minute: int, window: float = RATE_WINDOW_SECONDS
) -> Decision:
    """At most MAX_ORDERS_PER_MINUTE submits in any sliding minute; one over is denied, never queued."""
    recent = orders_in_window(submit_times, now, window)
    figures = {"recent": recent, "limit": max_per_minute, "window_seconds": window}
    if recent < max_per_minute:
        return _allow("max_orders_per_minute", "max_orders_per_minute", **figures)
    return _deny("max_orders_per_minute", "max_orders_per_minute", DenyReason.MAX_ORDERS_PER_MINUTE, **figures)


def check_stop_loss(avg_price: float, mark: float | None, stop_loss: float) -> Decision:
    """Holding stays allowed until the mark falls STOP_LOSS (a fraction) or more below the average cost."""
    if mark is None or avg_price <= 0:
        return _allow("stop_loss", "stop_loss", avg_price=avg_price, mark=mark, limit=stop_loss)
    drawdown = (avg_price - mark) / avg_price
    figures = {"avg_price": avg_price, "mark": mark, "drawdown": drawdown, "limit": stop_loss}
    if drawdown + EPSILON < stop_loss:
        return _allow("stop_loss", "stop_loss", **figures)
    return _deny("stop_loss", "stop_loss", DenyReason.STOP_LOSS, **figures)
