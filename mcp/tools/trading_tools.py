"""The trading view's MCP tools: get_positions, get_recent_trades, get_pnl.

Read-only views of the trade ledger (opened `mode=ro`) and the risk snapshot, built by the same functions
as the dashboard's GET /api/trading, so an assistant sees the figures the operator sees. Wallets come
masked from the ledger (last 6 characters); the dispatcher scrubs once more on the way out. Each tool
returns a TypedDict (mcp/trading/tool_results.py), so its outputSchema is published and its structuredContent
is typed.

    tools = TradingTools(TradingSource.from_settings(settings))
    tools.tools()   # [get_positions, get_recent_trades, get_pnl]
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from mcp.protocol.results import ToolError
from mcp.trading.source import MAX_TRADES, TradingSource
from mcp.trading.tool_results import PnlResult, PositionsResult, TradesResult


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
