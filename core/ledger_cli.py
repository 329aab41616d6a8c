"""The operator's read-only view of the trade ledger: `python main.py --positions` / `--trades [N]` (`--json`).

Reads `STATE_DIR/ledger.db` through `LedgerReader` (mode=ro), so it works while the bot runs and never
changes anything; with no ledger yet it says so and shows nothing.
"""

from __future__ import annotations

import json
import sqlite3
import sys
from dataclasses import asdict
from datetime import date, datetime
from pathlib import Path
from typing import Any, TextIO
from zoneinfo import ZoneInfo

from core.ledger_view import LEDGER_FILE_NAME, LedgerPosition, LedgerReader, LedgerTrade, PnlSummary

EXIT_OK = 0
EXIT_UNREADABLE = 1


def _money(value: float | None) -> str:
    return "-" if value is None else f"{value:,.2f}"


def _price(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


def _short(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def format_positions(positions: list[LedgerPosition], pnl: PnlSummary) -> str:
    """The positions table and the day's figures, as plain text."""
    lines = [
        f"{'token':<10} {'market':<42} {'outcome':<8} {'shares':>10} {'avg':>7} {'mark':>7} {'cost':>10} {'unreal.':>9}"
    ]
    for p in positions:
        lines.append(
            f"…{p.token_id[-8:]:<9} {_short(p.market_title or '?', 42):<42} {_short(p.outcome or '?', 8):<8} "
            f"{p.size:>10.2f} {_price(p.avg_price):>7} {_price(p.mark):>7} {p.notional:>10.2f} {p.unrealized_pnl:>9.2f}"
        )
    if not positions:
        lines.append("(no open positions)")
    exposure = sum(p.notional for p in positions)
    lines.append(
        f"{len(positions)} position(s), exposure {exposure:,.2f} USDC; trading day {pnl.day}: realized "
        f"{_money(pnl.realized_pnl)}, unrealized {_money(pnl.unrealized_pnl)}, fees {_money(pnl.fees)}, "
        f"cash {_money(pnl.cash)}, equity {_money(pnl.equity)} (day start {_money(pnl.day_start_equity)}), "
        f"{pnl.copies} copied, {pnl.denials} denied"
    )
    return "\n".join(lines)


def format_trades(trades: list[LedgerTrade], tz: ZoneInfo) -> str:
    """The newest followed trades and what the bot did, newest first, as plain text."""
    lines = [f"{'seen':<19} {'wallet':<10} {'side':<4} {'size@price':>15} {'market':<34} {'decision':<8} detail"]
    for t in trades:
        seen = datetime.fromtimestamp(t.seen_at, tz).strftime("%Y-%m-%d %H:%M:%S")
        if t.decision == "copied":
            detail = f"filled {t.fill_size or 0:.2f}@{_price(t.fill_price)}"
            detail += f", {t.latency_ms:.1f} ms" if t.latency_ms is not None else ""
        else:
            detail = ", ".join(t.deny_reasons)
        market = f"{t.market_title or '?'} / {t.outcome or '?'}"
        lines.append(
            f"{seen:<19} {t.followed_wallet:<10} {t.side:<4} {f'{t.size:.2f}@{t.price:.3f}':>15} "
            f"{_short(market, 34):<34} {t.decision:<8} {detail}"
        )
    if not trades:
        lines.append("(no followed trades in the ledger yet)")
    return "\n".join(lines)


def _jsonable(value: Any) -> Any:
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, tuple):
        return list(value)
    return value


def _record(obj: Any) -> dict[str, Any]:
    return {key: _jsonable(value) for key, value in asdict(obj).items()}


def show(state_dir: Path, timezone: str, *, positions: bool, trades: int | None, as_json: bool, out: TextIO) -> int:
    """Print the positions and/or the last `trades` trades; exit code 0, or 1 when the ledger is unreadable."""
    path = state_dir / LEDGER_FILE_NAME
    reader = LedgerReader(path, timezone=timezone)
    try:
        held = reader.positions() if positions else []
        pnl = reader.pnl() if positions else None
        recent = reader.recent_trades(trades) if trades is not None else []
    except sqlite3.Error as e:
        print(
            f"cannot read the trade ledger {path}: {e}; the bot keeps a damaged ledger aside as "
            "ledger.db.corrupt-<time> at its next start",
            file=sys.stderr,
        )
        return EXIT_UNREADABLE
    finally:
        reader.close()
    if not path.exists():
        print(f"no trade ledger at {path} yet (the bot has not run with this STATE_DIR)", file=sys.stderr)
    if as_json:
        payload: dict[str, Any] = {"ledger": str(path)}
        if positions:
            payload["positions"] = [_record(p) for p in held]
            payload["pnl"] = _record(pnl)
        if trades is not None:
            payload["trades"] = [_record(t) for t in recent]
        print(json.dumps(payload, indent=2), file=out)
        return EXIT_OK
    blocks = []
    if positions and pnl is not None:
        blocks.append(format_positions(held, pnl))
    if trades is not None:
        blocks.append(format_trades(recent, ZoneInfo(timezone)))
    print("\n\n".join(blocks), file=out)
    return EXIT_OK
