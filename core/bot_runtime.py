"""The running bot, assembled from Settings: trade source, breaker, ledger, CLOB client, executor, copy loop,
the live-mode reconciler and the sidecar child process, until SIGTERM/SIGINT/SIGHUP or a set duration.

`python main.py` (main.py: the command line, the state-folder lock, exit codes) runs `run_bot`; this module
holds the trading machinery that --help, --positions/--trades and --reset-circuit-breaker never load.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from datetime import UTC, datetime

from config.settings import Settings, TradingMode
from core.bot import CopyBot
from core.breaker_io import AlertCallback
from core.circuit_breaker import CircuitBreaker
from core.clob.base import ClobClient
from core.clob.factory import build_clob_client
from core.ledger_startup import open_trade_ledger, restore_from_ledger
from core.reconciler import DataApiPositions, Reconciler
from core.risk_snapshot import RiskSnapshotWriter, set_aside_blocking_entry
from core.sidecar_process import SidecarProcess
from core.trade_executor import TradeExecutor
from core.wallet.factory import build_trade_source
from core.wallet.replay import ReplayTradeSource
from utils.alerts import close_alerts, flush_alerts, send_telegram_alert

EXIT_OK = 0

log = logging.getLogger("polymarket_bot")


async def run_bot(settings: Settings, *, duration: float | None, with_sidecar: bool) -> int:
    """Build the bot from settings and run it until SIGTERM/SIGINT or `duration` elapses."""

    async def alert(severity: str, message: str) -> None:
        await send_telegram_alert(message, severity=severity)

    # the trade source first, and a replay file read now (issue 8: hardened inputs): a FIFO, a directory or
    # an oversized REPLAY_FILE is refused with ReplayFileError (exit 2) before the breaker or ledger opens
    source = build_trade_source(settings)
    if isinstance(source, ReplayTradeSource):
        await source.load()
    breaker = CircuitBreaker.from_settings(settings, alert=alert)
    ledger, ledger_state = await open_trade_ledger(settings, breaker)  # issue 8: the trade ledger
    clob = build_clob_client(settings)
    executor = TradeExecutor(
        clob,
        settings=settings,
        circuit_breaker=breaker,
        seed_paper_books=settings.trading_mode is TradingMode.PAPER,
        ledger=ledger,
    )
    await restore_from_ledger(executor, source, ledger_state)
    writer = RiskSnapshotWriter(settings.state_dir / "risk_state.json")
    await asyncio.to_thread(set_aside_blocking_entry, writer.path, datetime.now(UTC))  # issue 8: a dir there
    bot = CopyBot(executor, source, writer)

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    # SIGHUP too: closing the terminal must stop the bot cleanly (state flushed, sidecar stopped)
    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        loop.add_signal_handler(signum, _request_stop, stop, signum)

    log.info(
        "bot starting: mode=%s source=%s breaker=%s pid=%d state_dir=%s",
        settings.trading_mode,
        settings.wallet_source,
        breaker.state,
        os.getpid(),
        settings.state_dir,
    )
    reconciler = await _start_reconciler(settings, clob, executor, alert)  # issue 8: live mode only
    tasks = [asyncio.create_task(bot.run(stop), name="copy-loop")]
    if reconciler is not None:
        tasks.append(asyncio.create_task(reconciler.run(stop), name="reconcile"))
    sidecar: SidecarProcess | None = None
    if with_sidecar:
        sidecar = SidecarProcess()  # on giving up it sends a CRITICAL alert through this process's outbox
        tasks.append(asyncio.create_task(sidecar.run(stop), name="sidecar"))
    else:
        log.info("sidecar disabled (MCP_INTEGRATION_ENABLED=false or --no-sidecar): the bot runs alone")
    if duration is not None:
        loop.call_later(duration, stop.set)
    try:
        # the copy loop decides the exit code; the sidecar task never does
        await tasks[0]
    finally:
        stop.set()
        for task in tasks[1:]:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await source.close()
        if reconciler is not None:
            await reconciler.drain_alerts()
            await reconciler.close()
        await clob.close()
        await asyncio.to_thread(ledger.close)
        await breaker.drain_alerts()
        await flush_alerts(1.0)  # what is not delivered by then stays in the outbox for the next start
        await close_alerts()
    log.info("bot stopped; state flushed to %s", settings.state_dir)
    return EXIT_OK


async def _start_reconciler(
    settings: Settings, clob: ClobClient, executor: TradeExecutor, alert: AlertCallback
) -> Reconciler | None:
    """Live mode: reconcile our books with the exchange once before the first trade; the periodic rounds
    then run beside the copy loop. Paper mode has no exchange to compare with (None)."""
    if settings.trading_mode is not TradingMode.LIVE:
        return None
    address = getattr(clob, "address", None)
    if not isinstance(address, str):
        raise RuntimeError(f"live mode reconciles with the exchange but {clob!r} does not say which wallet it trades")
    reconciler = Reconciler(
        lambda: executor.portfolio,
        executor.reconcile_gate,
        DataApiPositions(settings.data_api_url, request_timeout=settings.clob_request_timeout_seconds),
        clob.get_balance,
        address,
        position_tolerance=settings.reconcile_position_tolerance,
        cash_tolerance=settings.reconcile_cash_tolerance,
        interval=settings.reconcile_interval_seconds,
        confirm_seconds=settings.reconcile_confirm_seconds,
        alert=alert,
    )
    result = await reconciler.reconcile()
    log.info("start-up reconcile with the exchange: %s", result.describe() if result else "skipped (see above)")
    return reconciler


def _request_stop(stop: asyncio.Event, signum: int) -> None:
    log.info("received %s: stopping after the current trade", signal.Signals(signum).name)
    stop.set()
