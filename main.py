"""polymarket-copy-bot: copy the followed wallets' trades through the risk core; paper trading by default.

    python main.py                          # trade (paper by default) with the monitoring sidecar beside it
    MCP_INTEGRATION_ENABLED=false python main.py   # the bot alone
    python main.py --reset-circuit-breaker  # clear a halt by hand (the only way before the day boundary)
    python main.py --positions              # what the ledger holds (read-only, works while the bot runs)
    python main.py --trades 20 --json       # the last 20 followed trades and what was done with them

Exit codes: 0 stopped cleanly, 1 fatal error, 2 invalid settings (an unusable REPLAY_FILE too: a FIFO, a
directory, a device or an oversized file), 3 the state folder is in use by another bot (nothing was traded or
written; see core/state_lock.py).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import sys
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from config.mcp_config import EXIT_BAD_CONFIG, load_or_exit
from config.settings import Settings, TradingMode
from core.bot import CopyBot
from core.circuit_breaker import BreakerPersistenceError, CircuitBreaker, reset_from_cli
from core.clob.factory import build_clob_client
from core.ledger_cli import show
from core.ledger_startup import open_trade_ledger, restore_from_ledger
from core.reconciler import DataApiPositions, Reconciler
from core.risk_snapshot import RiskSnapshotWriter, set_aside_blocking_entry
from core.sidecar_process import SidecarProcess
from core.state_lock import StateDirBusyError, StateDirLock, StateDirLockError
from core.trade_executor import TradeExecutor
from core.wallet.factory import build_trade_source
from core.wallet.replay import ReplayFileError, ReplayTradeSource
from mcp.preflight import sidecar_settings_problems
from utils.alerts import close_alerts, flush_alerts, send_telegram_alert
from utils.logging_setup import configure_logging

if TYPE_CHECKING:
    from core.breaker_io import AlertCallback
    from core.clob.base import ClobClient

EXIT_OK = 0
EXIT_FATAL = 1
EXIT_STATE_DIR_BUSY = 3  # issue 8: another bot holds STATE_DIR (2 is EXIT_BAD_CONFIG in config.mcp_config)

log = logging.getLogger("polymarket_bot")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="main.py", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--reset-circuit-breaker",
        action="store_true",
        help="reset the trading circuit breaker (clears any halt, including a daily-loss latch) and exit",
    )
    parser.add_argument("--duration", type=float, default=None, help="stop by itself after this many seconds")
    parser.add_argument(
        "--no-sidecar", action="store_true", help="do not spawn the sidecar (same as MCP_INTEGRATION_ENABLED=false)"
    )
    # --- issue 8 (ledger): the read-only operator view
    parser.add_argument("--positions", action="store_true", help="show the ledger's positions and today's P&L, exit")
    parser.add_argument(
        "--trades",
        nargs="?",
        type=_positive_int,
        const=20,
        default=None,
        metavar="N",
        help="show the last N followed trades (default 20) and what was done with them, exit",
    )
    parser.add_argument("--json", action="store_true", help="with --positions/--trades: print JSON")
    return parser.parse_args(argv)


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number of trades >= 1, received {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of trades >= 1, received {value}")
    return value


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


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.positions or args.trades is not None:
        settings = load_or_exit()  # a read-only view: the folders are not probed, nothing is written
        # read-only: no logging set-up, no lock, nothing written
        return show(
            settings.state_dir,
            settings.trading_day_timezone,
            positions=args.positions,
            trades=args.trades,
            as_json=args.json,
            out=sys.stdout,
        )
    settings = load_or_exit(check_folders=True)  # issue 8: STATE_DIR and LOG_DIR proven writable first
    configure_logging(settings, "polymarket_bot.log")
    if args.reset_circuit_breaker:
        # refused while a bot runs: a running bot keeps its breaker in memory and would write its own
        # state over the reset at its next change. Holding the lock also keeps a bot from starting mid-reset.
        try:
            with StateDirLock(settings.state_dir, action="reset the circuit breaker"):
                print(reset_from_cli(settings))
        except StateDirBusyError as e:
            print(f"{e} (a running bot would write its own breaker state over the reset)", file=sys.stderr)
            return EXIT_STATE_DIR_BUSY
        except (BreakerPersistenceError, StateDirLockError) as e:
            print(f"cannot reset the circuit breaker: {e}", file=sys.stderr)
            return EXIT_FATAL
        return EXIT_OK
    with_sidecar = settings.mcp_integration_enabled and not args.no_sidecar
    if with_sidecar:
        # the sidecar would refuse these settings (exit 2) on every restart: refuse them now, before trading
        problems = sidecar_settings_problems(settings)
        if problems:
            print("\n".join(problems), file=sys.stderr)
            return EXIT_BAD_CONFIG
    # one bot per state folder, for the whole life of the process: taken before anything reads or writes
    # the folder, so a refused second bot leaves the first one's files untouched
    lock = StateDirLock(settings.state_dir)
    try:
        lock.acquire()
    except StateDirBusyError as e:
        log.critical("%s", e)
        return EXIT_STATE_DIR_BUSY
    except StateDirLockError as e:
        log.critical("%s", e)
        return EXIT_FATAL
    try:
        return asyncio.run(run_bot(settings, duration=args.duration, with_sidecar=with_sidecar))
    except ReplayFileError as e:
        # REPLAY_FILE is a setting: a settings problem, exit 2, one clear line and no traceback
        log.critical("invalid settings: %s", e)
        return EXIT_BAD_CONFIG
    except BreakerPersistenceError as e:
        log.critical("refusing to trade without a working breaker state file: %s", e)
        return EXIT_FATAL
    except Exception:
        log.critical("the bot stopped on an unexpected error", exc_info=True)
        return EXIT_FATAL
    finally:
        lock.release()


if __name__ == "__main__":
    sys.exit(main())
