"""polymarket-copy-bot: copy the followed wallets' trades through the risk core; paper trading by default.

    python main.py                          # trade (paper by default) with the monitoring sidecar beside it
    MCP_INTEGRATION_ENABLED=false python main.py   # the bot alone
    python main.py --reset-circuit-breaker  # clear a halt by hand (the only way before the day boundary)
    python main.py --positions              # what the ledger holds (read-only, works while the bot runs)
    python main.py --trades 20 --json       # the last 20 followed trades and what was done with them

Exit codes: 0 stopped cleanly, 1 fatal error, 2 invalid settings.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import sys

from config.mcp_config import load_or_exit
from config.settings import Settings, TradingMode

EXIT_OK = 0
EXIT_FATAL = 1

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
    from core.bot import CopyBot
    from core.circuit_breaker import CircuitBreaker
    from core.clob.factory import build_clob_client
    from core.ledger_startup import open_trade_ledger, restore_from_ledger
    from core.risk_snapshot import RiskSnapshotWriter
    from core.sidecar_process import SidecarProcess
    from core.trade_executor import TradeExecutor
    from core.wallet.factory import build_trade_source
    from utils.alerts import close_alerts, flush_alerts, send_telegram_alert

    async def alert(severity: str, message: str) -> None:
        await send_telegram_alert(message, severity=severity)

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
    source = build_trade_source(settings)
    await restore_from_ledger(executor, source, ledger_state)
    writer = RiskSnapshotWriter(settings.state_dir / "risk_state.json")
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
    tasks = [asyncio.create_task(bot.run(stop), name="copy-loop")]
    sidecar: SidecarProcess | None = None
    if with_sidecar:
        sidecar = SidecarProcess()
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
        await clob.close()
        await asyncio.to_thread(ledger.close)
        await breaker.drain_alerts()
        await flush_alerts(1.0)  # what is not delivered by then stays in the outbox for the next start
        await close_alerts()
    log.info("bot stopped; state flushed to %s", settings.state_dir)
    return EXIT_OK


def _request_stop(stop: asyncio.Event, signum: int) -> None:
    log.info("received %s: stopping after the current trade", signal.Signals(signum).name)
    stop.set()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    settings = load_or_exit()
    if args.positions or args.trades is not None:
        from core.ledger_cli import show

        # read-only: no logging set-up, no lock, nothing written
        return show(
            settings.state_dir,
            settings.trading_day_timezone,
            positions=args.positions,
            trades=args.trades,
            as_json=args.json,
            out=sys.stdout,
        )
    from utils.logging_setup import configure_logging

    configure_logging(settings, "polymarket_bot.log")
    from core.circuit_breaker import BreakerPersistenceError

    if args.reset_circuit_breaker:
        from core.circuit_breaker import reset_from_cli

        # run this while the bot is stopped: a running bot keeps its breaker in memory and would
        # write its own state over the reset at its next change
        try:
            print(reset_from_cli(settings))
        except BreakerPersistenceError as e:
            print(f"cannot reset the circuit breaker: {e}", file=sys.stderr)
            return EXIT_FATAL
        return EXIT_OK
    with_sidecar = settings.mcp_integration_enabled and not args.no_sidecar
    try:
        return asyncio.run(run_bot(settings, duration=args.duration, with_sidecar=with_sidecar))
    except BreakerPersistenceError as e:
        log.critical("refusing to trade without a working breaker state file: %s", e)
        return EXIT_FATAL
    except Exception:
        log.critical("the bot stopped on an unexpected error", exc_info=True)
        return EXIT_FATAL


if __name__ == "__main__":
    sys.exit(main())
