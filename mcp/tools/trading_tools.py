"""The trading view's MCP tools: get_positions, get_recent_trades, get_pnl.

Read-only views of the trade ledger (opened `mode=ro`) and the risk snapshot, built by the same functions
as the dashboard's GET /api/trading, so an assistant sees the figures the operator sees. Wallets come
masked from the ledger (last 6 characters); the dispatcher scrubs once more on the way out. Each tool
returns a TypedDict (or the protocol's ToolError), so its outputSchema is published and its structuredContent
is typed.

    tools = TradingTools(TradingSource.from_settings(settings))
    tools.tools()   # [get_positions, get_recent_trades, get_pnl]
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, Literal, TypedDict

from mcp.protocol.results import ToolError
from mcp.trading.source import MAX_TRADES, TradingSource

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


class TradingTools:
    """The three trading tools over one TradingSource (injected; tests pass one over a temporary STATE_DIR)."""

    def __init__(self, source: TradingSource) -> None:
        self.source = source

    def tools(self) -> list[Callable[..., Any]]:
        """The MCP tools: plain typed coroutines."""
        return [self.get_positions, self.get_recent_trades, self.get_pnl]

    async def get_positions(self) -> PositionsResult | ToolError:
        """What the copy bot holds now: per market its title, outcome, size, average price, mark, unrealized P&L
        and exposure against the per-market limit (MAX_POSITION_SIZE), plus total exposure. Read-only."""
        view = await self.source.view()
        return {
            "status": view["status"],
            "message": view["message"],
            "exposure": view["exposure"],
            "positions": view["positions"],
        }

    async def get_recent_trades(
        self, limit: Annotated[int, f"how many trades, newest first (1 to {MAX_TRADES})"] = 10
    ) -> TradesResult | ToolError:
        """The followed wallets' newest trades and what the bot did with each: copied (with fill and latency),
        denied (with the reasons) or failed. Wallets are masked. Read-only."""
        if not 1 <= limit <= MAX_TRADES:
            return {
                "status": "error",
                "message": f"expected limit between 1 and {MAX_TRADES}, received {limit}",
                "trades": [],
            }
        view = await self.source.view(trades=limit)
        return {"status": view["status"], "message": view["message"], "trades": view["recent_trades"]}

    async def get_pnl(self) -> PnlResult | ToolError:
        """Today's profit and loss in USDC: realized, unrealized, fees, equity, and how much of the daily-loss
        limit (MAX_DAILY_LOSS) is used; copies and denials of the day. Read-only."""
        view = await self.source.view()
        return {
            "status": view["status"],
            "message": view["message"],
            "trading_mode": view["trading_mode"],
            "trading_state": view["trading_state"],
            "pnl": view["pnl"],
        }
