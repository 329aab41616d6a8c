"""Start-up with the trade ledger: open it (a corrupt one halts the breaker), restore the executor, resume the source.

Runs once before the copy loop; the SQLite work happens in the ledger's writer thread, off the event loop.
"""

from __future__ import annotations

import logging
import time

from config.settings import Settings, TradingMode
from core.circuit_breaker import CircuitBreaker
from core.ledger import LEDGER_FILE_NAME, LedgerCorruptError, LedgerState, TradeLedger
from core.trade_executor import TradeExecutor
from core.wallet.base import TradeSource
from core.wallet.data_api import DataApiTradeSource

log = logging.getLogger("polymarket_bot")

# The (tx hash, asset) keys a restarted source is seeded with reach back at least this far.
MIN_KEY_MEMORY_SECONDS = 24 * 3600.0


async def open_trade_ledger(settings: Settings, breaker: CircuitBreaker) -> tuple[TradeLedger, LedgerState]:
    """Open `STATE_DIR/ledger.db` and fold it; an unusable file is kept aside and the breaker halted."""
    ledger = TradeLedger(settings.state_dir / LEDGER_FILE_NAME, timezone=settings.trading_day_timezone)
    try:
        await ledger.run(ledger.open)
    except LedgerCorruptError as e:
        breaker.halt_for_corrupt_ledger(e.problem, e.kept_as)
    paper = settings.trading_mode is TradingMode.PAPER
    opening = settings.paper_starting_balance if paper else None
    await ledger.run(lambda: ledger.ensure_account(str(settings.trading_mode), opening))
    since = time.time() - max(2 * settings.stale_trade_seconds, MIN_KEY_MEMORY_SECONDS)
    state = await ledger.run(lambda: ledger.load_state(keys_since=since))
    log.info("trade ledger %s restored: %s", ledger.path, ledger.positions_summary(state))
    return ledger, state


async def restore_from_ledger(executor: TradeExecutor, source: TradeSource, state: LedgerState) -> None:
    """Put the restored book into the executor (and paper CLOB), feed the breaker, resume the source."""
    executor.restore(state)
    await executor.publish_restored_equity()
    if isinstance(source, DataApiTradeSource):
        source.resume(state.acted_keys, state.wallets_seen)
