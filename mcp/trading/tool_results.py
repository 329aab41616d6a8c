"""The typed results of the trading view's tools: their outputSchemas are built from these (mcp/protocol/schema.py).

A test validates every tool's real answers against its schema (tests/mcp/test_tool_output_schemas.py).
"""

from __future__ import annotations

from typing import Literal, TypedDict

# "ok", or "no_ledger" before the bot's first trade (mcp/trading/view.py)
LedgerStatus = Literal["ok", "no_ledger"]


class Position(TypedDict):
    """One held position."""

    token_id: str
    token: str
    market_title: str
    outcome: str
    size: float | None
    avg_price: float | None
    mark: float | None
    unrealized_pnl: float
    exposure: float
    exposure_limit: float | None
    exposure_limit_used_percent: float | None


class Exposure(TypedDict):
    """Total exposure against MAX_TOTAL_EXPOSURE."""

    total: float
    limit: float | None
    limit_used_percent: float
    open_positions: int


class PositionsResult(TypedDict):
    """What the bot holds (status ok, or no_ledger before the bot's first trade)."""

    status: LedgerStatus
    message: str
    exposure: Exposure
    positions: list[Position]


class Trade(TypedDict):
    """One followed trade and what the bot did with it."""

    seen_at: str | None
    age_seconds: float | None
    followed_wallet: str
    market_title: str
    outcome: str
    token: str
    side: str
    size: float | None
    price: float | None
    decision: str
    deny_reasons: list[str]
    fill_size: float | None
    fill_price: float | None
    fees: float
    latency_ms: float | None


class TradesResult(TypedDict):
    """The newest followed trades, newest first (status error: a limit out of range, no trades)."""

    status: Literal["ok", "no_ledger", "error"]
    message: str
    trades: list[Trade]


class Pnl(TypedDict):
    """Today's P&L against the daily-loss limit (USDC)."""

    day: str | None
    realized_pnl: float
    unrealized_pnl: float
    total_pnl: float
    fees: float
    cash: float | None
    equity: float | None
    day_start_equity: float | None
    copies: int
    denials: int
    daily_loss: float
    daily_loss_source: str
    max_daily_loss: float | None
    loss_limit_used_percent: float


class PnlResult(TypedDict):
    """Today's P&L, and the trading mode and state from the bot's snapshot."""

    status: LedgerStatus
    message: str
    trading_mode: str | None
    trading_state: str | None
    pnl: Pnl
