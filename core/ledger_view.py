"""The trade ledger's read side: positions, recent trades and the day's P&L, from `STATE_DIR/ledger.db`.

The bot is the ledger's only writer (`core.ledger.TradeLedger`); everything here opens it read-only
(`mode=ro`), so the sidecar and the operator CLI can read while the bot trades (SQLite WAL: readers never
block the writer and always see whole transactions). A ledger that does not exist yet (the bot never
started) reads as empty: no positions, no trades, zero figures.

Positions are folded from the fills with the same `Portfolio.apply_fill` the bot uses, so the figures here
are the ones the bot restores at start-up. Every method is synchronous: call it through `asyncio.to_thread`.
"""

from __future__ import annotations

import json
import math
import sqlite3
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from core.clob.base import Side
from core.portfolio import Portfolio
from utils.secrets import mask_wallet

LEDGER_FILE_NAME = "ledger.db"


@dataclass(frozen=True, slots=True)
class LedgerPosition:
    """One held outcome token, as the ledger's fills add up."""

    token_id: str
    market_title: str
    outcome: str
    size: float
    avg_price: float
    mark: float | None
    unrealized_pnl: float
    notional: float


@dataclass(frozen=True, slots=True)
class LedgerTrade:
    """One followed trade seen and what the bot did with it."""

    seen_at: float
    followed_wallet: str
    market_title: str
    outcome: str
    token_id: str
    side: str
    size: float
    price: float
    decision: str
    deny_reasons: tuple[str, ...]
    fill_size: float | None
    fill_price: float | None
    fees: float
    latency_ms: float | None


@dataclass(frozen=True, slots=True)
class PnlSummary:
    """One trading day's figures (trading day in the breaker's timezone)."""

    day: date
    realized_pnl: float
    unrealized_pnl: float
    fees: float
    cash: float | None
    equity: float | None
    day_start_equity: float | None
    copies: int
    denials: int


@dataclass(frozen=True, slots=True)
class FillRow:
    """One fill as stored: what `fold_fills` needs."""

    token_id: str
    market: str
    title: str
    outcome: str
    side: str
    size: float
    price: float
    fees: float


@dataclass(slots=True)
class Book:
    """Positions, cash and labels folded from the fills (the figures the bot restores)."""

    portfolio: Portfolio
    labels: dict[str, tuple[str, str]]  # token_id -> (market title, outcome)
    marks: dict[str, float]  # token_id -> last mark seen (held or not)
    fees: float


# The executor's statuses and the names readers show for them.
DECISION_NAMES = {"executed": "copied", "denied": "denied", "failed": "error"}


def fold_fills(opening_cash: float | None, fills: Iterable[FillRow], marks: dict[str, float]) -> Book:
    """Replay fills in order through `Portfolio.apply_fill` (a sell of nothing held is skipped, never raised)."""
    portfolio = Portfolio(opening_cash)
    labels: dict[str, tuple[str, str]] = {}
    fees = 0.0
    for fill in fills:
        side = Side(fill.side)
        if side is Side.SELL and portfolio.held(fill.token_id) <= 0:
            continue
        portfolio.apply_fill(fill.token_id, fill.market, side, fill.size, fill.price)
        if portfolio.cash is not None and fill.fees:
            portfolio.cash -= fill.fees
        fees += fill.fees
        if fill.title or fill.outcome or fill.token_id not in labels:
            labels[fill.token_id] = (fill.title, fill.outcome)
    for token_id, price in marks.items():
        portfolio.mark(token_id, price)
    return Book(portfolio, labels, dict(marks), fees)


def read_only_uri(path: Path) -> str:
    """The SQLite URI opening `path` read-only."""
    return path.absolute().as_uri() + "?mode=ro"


def load_book(conn: sqlite3.Connection) -> Book:
    """Fold the whole ledger into positions and cash (the bot's restore and the readers share this)."""
    row = conn.execute("SELECT cash FROM account ORDER BY id LIMIT 1").fetchone()
    opening_cash = row[0] if row is not None else None
    fills = (
        FillRow(*r)
        for r in conn.execute("SELECT token_id, market, title, outcome, side, size, price, fees FROM fills ORDER BY id")
    )
    marks = dict(
        conn.execute(
            "SELECT token_id, price FROM marks WHERE id IN (SELECT MAX(id) FROM marks GROUP BY token_id)"
        ).fetchall()
    )
    return fold_fills(opening_cash, fills, marks)


def ledger_positions(book: Book) -> list[LedgerPosition]:
    """The folded positions as reader records, largest cost first."""
    out = []
    for token_id, position in book.portfolio.positions.items():
        title, outcome = book.labels.get(token_id, ("", ""))
        mark = book.marks.get(token_id)
        unrealized = position.size * (mark - position.avg_price) if mark is not None else 0.0
        out.append(
            LedgerPosition(
                token_id, title, outcome, position.size, position.avg_price, mark, unrealized, position.notional
            )
        )
    out.sort(key=lambda p: (-p.notional, p.token_id))
    return out


def _deny_reasons(text: str | None) -> tuple[str, ...]:
    if not text:
        return ()
    try:
        value = json.loads(text)
    except ValueError:
        return (text,)
    return tuple(str(v) for v in value) if isinstance(value, list) else (str(value),)


class LedgerReader:
    """Read-only view of the ledger; safe while the bot writes (WAL). All methods are sync (call via to_thread)."""

    def __init__(self, path: Path, *, timezone: str = "UTC") -> None:
        self.path = Path(path)
        self._tz = ZoneInfo(timezone)
        self._conn: sqlite3.Connection | None = None
        self._lock = threading.Lock()
        # the folded book and the ledger's data_version it was folded at: one view asks for positions and
        # P&L, and folding every fill twice for the same unchanged ledger is the costly part of a read
        self._folded: tuple[int, Book] | None = None

    # --- plumbing -----------------------------------------------------------------------------------

    def _connection(self) -> sqlite3.Connection | None:
        if self._conn is None:
            if not self.path.is_file():
                return None
            # one connection, used from whichever worker thread calls; the lock serialises them
            conn = sqlite3.connect(read_only_uri(self.path), uri=True, check_same_thread=False, timeout=5.0)
            try:
                conn.execute("PRAGMA query_only = ON")
                tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            except sqlite3.DatabaseError:
                conn.close()
                raise
            if "fills" not in tables:
                conn.close()  # created but not yet migrated by the bot: read as empty
                return None
            self._conn = conn
        return self._conn

    def _query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            conn = self._connection()
            if conn is None:
                return []
            return conn.execute(sql, params).fetchall()

    def _book(self) -> Book | None:
        with self._lock:
            conn = self._connection()
            if conn is None:
                return None
            # one read transaction: the fills and the marks are from the same moment
            conn.execute("BEGIN")
            try:
                # data_version changes whenever another connection (the bot) commits; this one never writes
                version = conn.execute("PRAGMA data_version").fetchone()[0]
                if self._folded is not None and self._folded[0] == version:
                    return self._folded[1]
                book = load_book(conn)
                self._folded = (version, book)
                return book
            finally:
                conn.execute("COMMIT")

    def _today(self) -> date:
        return datetime.now(self._tz).date()

    # --- the contract -------------------------------------------------------------------------------

    def positions(self) -> list[LedgerPosition]:
        """Every open position, largest cost first ([] when the ledger does not exist yet)."""
        book = self._book()
        return ledger_positions(book) if book is not None else []

    def recent_trades(self, limit: int = 10) -> list[LedgerTrade]:
        """The newest `limit` followed trades and what was decided, newest first."""
        if limit <= 0:
            return []
        rows = self._query(
            """
            SELECT t.seen_at, t.wallet, t.title, t.outcome, t.token_id, t.side, t.size, t.price,
                   d.status, d.deny_reasons, f.size, f.price, COALESCE(f.fees, 0.0), d.latency_ms
            FROM (SELECT * FROM followed_trades ORDER BY id DESC LIMIT ?) AS t
            LEFT JOIN decisions AS d ON d.trade_id = t.id
            LEFT JOIN orders AS o ON o.decision_id = d.id
            LEFT JOIN fills AS f ON f.order_id = o.id
            ORDER BY t.id DESC
            """,
            (limit,),
        )
        return [
            LedgerTrade(
                seen_at=r[0],
                followed_wallet=mask_wallet(r[1]),
                market_title=r[2],
                outcome=r[3],
                token_id=r[4],
                side=r[5],
                size=r[6],
                price=r[7],
                decision=DECISION_NAMES.get(r[8], "pending") if r[8] is not None else "pending",
                deny_reasons=_deny_reasons(r[9]),
                fill_size=r[10],
                fill_price=r[11],
                fees=r[12],
                latency_ms=r[13],
            )
            for r in rows
        ]

    def pnl(self, day: date | None = None) -> PnlSummary:
        """One trading day's P&L, copies and denials (None = today in the ledger's timezone)."""
        target = day if day is not None else self._today()
        key = target.isoformat()
        realized = self._query(
            "SELECT COALESCE(SUM(realized_pnl), 0.0), COALESCE(SUM(fees), 0.0) FROM fills WHERE trading_day = ?",
            (key,),
        )
        counts = self._query(
            "SELECT status, COUNT(*) FROM decisions WHERE trading_day = ? AND trade_id IS NOT NULL GROUP BY status",
            (key,),
        )
        curve = self._query("SELECT equity FROM equity WHERE trading_day = ? ORDER BY id", (key,))
        by_status = dict(counts)
        realized_pnl, fees = realized[0] if realized else (0.0, 0.0)
        start_equity = curve[0][0] if curve else None
        if target == self._today():
            book = self._book()
            unrealized = math.fsum(p.unrealized_pnl for p in ledger_positions(book)) if book else 0.0
            cash = book.portfolio.cash if book else None
            equity = book.portfolio.equity() if book else None
        else:
            unrealized, cash = 0.0, None
            equity = curve[-1][0] if curve else None
        return PnlSummary(
            day=target,
            realized_pnl=realized_pnl,
            unrealized_pnl=unrealized,
            fees=fees,
            cash=cash,
            equity=equity,
            day_start_equity=start_equity,
            copies=by_status.get("executed", 0),
            denials=by_status.get("denied", 0),
        )

    def daily(self, days: int = 7) -> list[PnlSummary]:
        """The last `days` trading days that have any ledger activity, newest first."""
        if days <= 0:
            return []
        rows = self._query(
            """
            SELECT trading_day FROM (
                SELECT trading_day FROM decisions UNION SELECT trading_day FROM fills
                UNION SELECT trading_day FROM equity
            ) ORDER BY trading_day DESC LIMIT ?
            """,
            (days,),
        )
        return [self.pnl(date.fromisoformat(r[0])) for r in rows]

    def followed_wallets(self) -> list[tuple[str, int, int]]:
        """(masked wallet, trades copied, trades denied) per followed wallet, most copied first."""
        rows = self._query(
            """
            SELECT t.wallet,
                   SUM(CASE WHEN d.status = 'executed' THEN 1 ELSE 0 END),
                   SUM(CASE WHEN d.status = 'denied' THEN 1 ELSE 0 END)
            FROM followed_trades AS t LEFT JOIN decisions AS d ON d.trade_id = t.id
            GROUP BY t.wallet
            """
        )
        out = [(mask_wallet(r[0]), int(r[1] or 0), int(r[2] or 0)) for r in rows]
        out.sort(key=lambda w: (-w[1], -w[2], w[0]))
        return out

    def deny_reason_counts(self, day: date | None = None) -> dict[str, int]:
        """How many copies each deny reason stopped on that trading day (None = today)."""
        target = (day if day is not None else self._today()).isoformat()
        rows = self._query(
            "SELECT reason, COUNT(*) FROM decisions WHERE status = 'denied' AND trading_day = ? GROUP BY reason",
            (target,),
        )
        return {r[0]: int(r[1]) for r in rows}

    def equity_curve(self, day: date | None = None) -> list[tuple[float, float]]:
        """(unix seconds, equity) after each fill of that trading day, oldest first (None = today)."""
        target = (day if day is not None else self._today()).isoformat()
        rows = self._query("SELECT at, equity FROM equity WHERE trading_day = ? ORDER BY id", (target,))
        return [(float(r[0]), float(r[1])) for r in rows]

    def close(self) -> None:
        """Close the read connection (a later call opens it again)."""
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None
            self._folded = None  # data_version counts per connection: a new one starts over
