"""The trading view's I/O edge: the bot's risk snapshot and its trade ledger, both read-only.

Each read opens the ledger read-only (`core.ledger_view.LedgerReader`, SQLite `mode=ro`), asks what it
needs and closes it again, all in one worker thread: SQLite never runs on the event loop and a connection
never crosses threads. A ledger that does not exist yet (bot not started) gives an empty view saying so.

    source = TradingSource.from_settings(settings)
    body = await source.view()          # GET /api/trading
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from config.settings import Settings
from core.ledger_view import LedgerReader
from core.risk_snapshot import risk_snapshot_path
from mcp.monitoring.sources import read_snapshot_file
from mcp.trading.view import LedgerFigures, Limits, pnl_block, trading_view

logger = logging.getLogger(__name__)

LEDGER_FILE = "ledger.db"
DEFAULT_TRADES = 10
MAX_TRADES = 200
MAX_DAYS = 90
NO_LEDGER = "no trade ledger yet at {path}: the bot has not started (or has not written its first trade)"

# reader_factory(path, timezone) -> a LedgerReader (tests may pass another object with the same methods)
ReaderFactory = Callable[[Path, str], Any]


def ledger_path(state_dir: Path | str) -> Path:
    """Where the bot keeps its trade ledger: `<STATE_DIR>/ledger.db`."""
    return Path(state_dir) / LEDGER_FILE


def _ledger_reader(path: Path, timezone: str) -> Any:
    return LedgerReader(path, timezone=timezone)


class TradingSource:
    """Reads the snapshot and the ledger (in a worker thread) and builds the trading view."""

    def __init__(
        self,
        state_dir: Path | str,
        defaults: Limits,
        *,
        timezone: str = "UTC",
        reader_factory: ReaderFactory = _ledger_reader,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.snapshot_path = risk_snapshot_path(state_dir)
        self.ledger_path = ledger_path(state_dir)
        self.defaults = defaults
        self.timezone = timezone
        self._reader_factory = reader_factory
        self._clock = clock

    @classmethod
    def from_settings(cls, settings: Settings, **kw: Any) -> TradingSource:
        """STATE_DIR's snapshot and ledger, the settings' limits as fallbacks, TRADING_DAY_TIMEZONE."""
        defaults = Limits(settings.max_daily_loss, settings.max_position_size, settings.max_total_exposure)
        return cls(settings.state_dir, defaults, timezone=settings.trading_day_timezone, **kw)

    def _read_ledger(self, trades: int) -> LedgerFigures:
        if not self.ledger_path.exists():
            return LedgerFigures(problem=NO_LEDGER.format(path=self.ledger_path))
        reader = self._reader_factory(self.ledger_path, self.timezone)
        try:
            return LedgerFigures(
                positions=reader.positions(),
                trades=reader.recent_trades(trades),
                pnl=reader.pnl(),
                followed=reader.followed_wallets(),
                deny_reasons=reader.deny_reason_counts(),
                curve=reader.equity_curve(),
            )
        finally:
            reader.close()

    def _read(self, trades: int) -> dict[str, Any]:
        snapshot = read_snapshot_file(self.snapshot_path)
        try:
            figures = self._read_ledger(trades)
        except Exception as e:  # a locked or corrupt ledger is shown as such; the page keeps working
            logger.exception("cannot read the trade ledger %s", self.ledger_path)
            figures = LedgerFigures(problem=f"cannot read the trade ledger ({type(e).__name__}: {e})")
        return trading_view(snapshot.payload, snapshot.problem, figures, now=self._clock(), defaults=self.defaults)

    async def view(self, trades: int = DEFAULT_TRADES) -> dict[str, Any]:
        """The whole trading view with the `trades` newest followed trades (1..MAX_TRADES)."""
        if not 1 <= trades <= MAX_TRADES:
            raise ValueError(f"expected between 1 and {MAX_TRADES} trades, received {trades}")
        return await asyncio.to_thread(self._read, trades)

    def _read_daily(self, days: int) -> list[dict[str, Any]]:
        if not self.ledger_path.exists():
            return []
        snapshot = read_snapshot_file(self.snapshot_path)
        limits = Limits.resolve(snapshot.payload, self.defaults)
        reader = self._reader_factory(self.ledger_path, self.timezone)
        try:
            return [pnl_block(summary, limits) for summary in reader.daily(days)]
        finally:
            reader.close()

    async def daily(self, days: int = 7) -> list[dict[str, Any]]:
        """P&L per trading day, newest first, for the last `days` days (1..MAX_DAYS)."""
        if not 1 <= days <= MAX_DAYS:
            raise ValueError(f"expected between 1 and {MAX_DAYS} days, received {days}")
        return await asyncio.to_thread(self._read_daily, days)
