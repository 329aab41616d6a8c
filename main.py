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
import logging
import sys

from config.mcp_config import EXIT_BAD_CONFIG, load_or_exit
from core.circuit_breaker import BreakerPersistenceError, reset_from_cli
from core.ledger_cli import show
from core.state_lock import StateDirBusyError, StateDirLock, StateDirLockError
from core.wallet.replay import ReplayFileError
from utils.logging_setup import configure_logging

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
        # local: the check loads the dashboard's modules (aiohttp), which the bot alone (--no-sidecar) never uses
        from mcp.preflight import sidecar_settings_problems

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
    # local: the trading machinery (aiohttp, the CLOB client, the ledger: ~0.4 s and ~19 MB) is loaded only to
    # trade; --help, --positions/--trades and --reset-circuit-breaker start without it
    from core.bot_runtime import run_bot

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
