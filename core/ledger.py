"""The trade ledger: an append-only SQLite record of every followed trade, decision, order, fill and error.

`STATE_DIR/ledger.db`, written by the bot only, read by anyone through `core.ledger_view.LedgerReader`.
Positions, paper cash, realized P&L per trading day and the last marks are all folded from it, so a
restart (even after `kill -9`) restores the whole risk picture.

Durability: WAL with `synchronous=FULL`. Each trade ends in one committed transaction (the decision, the
order, the fill or error, the marks and the equity after it), fsync'd before `record_outcome` returns; the
executor holds its lock until then (and feeds the breaker, whose own fsync'd write follows), so it is
durable before the next trade is decided. The "seen" row
written before the decision is committed without its own fsync (`synchronous=NORMAL`): it reaches the OS at
once (a killed process cannot lose it) and the outcome's fsync makes it durable with everything before it.
That keeps the ledger at one fsync per trade, and the write is after the decision → ack window.

Off the event loop: every statement runs in one dedicated writer thread (`run`), so the single connection
is only ever used from that thread, in order.

Append-only: triggers refuse UPDATE and DELETE on every table. The schema version is SQLite's
`user_version`; `MIGRATIONS[n]` takes version n to n+1. A file that is not a SQLite database, fails its
integrity check or was written by a newer schema raises `LedgerCorruptError` after being moved aside as
`ledger.db.corrupt-<UTC timestamp>` (like the breaker's state file): the bot then starts HALTED.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo
from pathlib import Path
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

from core.breaker_io import quarantine
from core.ledger_view import LEDGER_FILE_NAME, Book, ledger_positions, load_book

__all__ = [
    "LEDGER_FILE_NAME",
    "SCHEMA_VERSION",
    "FillRecord",
    "LedgerCorruptError",
    "LedgerError",
    "LedgerState",
    "OutcomeRecord",
    "TradeLedger",
]

logger = logging.getLogger(__name__)

T = TypeVar("T")

_TABLES = ("account", "followed_trades", "decisions", "orders", "fills", "errors", "marks", "equity")


def _append_only(table: str) -> str:
    return (
        f"CREATE TRIGGER {table}_no_update BEFORE UPDATE ON {table} "
        "BEGIN SELECT RAISE(ABORT, 'the ledger is append-only'); END;\n"
        f"CREATE TRIGGER {table}_no_delete BEFORE DELETE ON {table} "
        "BEGIN SELECT RAISE(ABORT, 'the ledger is append-only'); END;\n"
    )


_SCHEMA_1 = """
CREATE TABLE account (
    id INTEGER PRIMARY KEY, at REAL NOT NULL, mode TEXT NOT NULL,
    cash REAL                                  -- the paper account's opening balance; NULL in live mode
);
CREATE TABLE followed_trades (
    id INTEGER PRIMARY KEY, seen_at REAL NOT NULL, wallet TEXT NOT NULL,
    tx_hash TEXT NOT NULL, token_id TEXT NOT NULL, market TEXT NOT NULL,
    title TEXT NOT NULL, outcome TEXT NOT NULL, side TEXT NOT NULL,
    size REAL NOT NULL, price REAL NOT NULL, traded_at REAL NOT NULL,
    UNIQUE (tx_hash, token_id)                 -- a followed trade is acted on at most once
);
CREATE TABLE decisions (
    id INTEGER PRIMARY KEY,
    trade_id INTEGER UNIQUE REFERENCES followed_trades (id),  -- NULL: the bot's own stop-loss exit
    at REAL NOT NULL, trading_day TEXT NOT NULL, token_id TEXT NOT NULL, side TEXT NOT NULL,
    status TEXT NOT NULL, reason TEXT NOT NULL, deny_reasons TEXT NOT NULL, latency_ms REAL
);
CREATE TABLE orders (
    id INTEGER PRIMARY KEY, decision_id INTEGER NOT NULL REFERENCES decisions (id), at REAL NOT NULL,
    client_order_id TEXT NOT NULL, token_id TEXT NOT NULL, side TEXT NOT NULL,
    size REAL NOT NULL, limit_price REAL NOT NULL, exchange_order_id TEXT, status TEXT
);
CREATE TABLE fills (
    id INTEGER PRIMARY KEY, order_id INTEGER NOT NULL REFERENCES orders (id), at REAL NOT NULL,
    trading_day TEXT NOT NULL, token_id TEXT NOT NULL, market TEXT NOT NULL, title TEXT NOT NULL,
    outcome TEXT NOT NULL, side TEXT NOT NULL, size REAL NOT NULL, price REAL NOT NULL,
    fees REAL NOT NULL, realized_pnl REAL NOT NULL
);
CREATE TABLE errors (
    id INTEGER PRIMARY KEY, decision_id INTEGER REFERENCES decisions (id), at REAL NOT NULL,
    trading_day TEXT NOT NULL, token_id TEXT NOT NULL, kind TEXT NOT NULL, message TEXT NOT NULL
);
CREATE TABLE marks (id INTEGER PRIMARY KEY, at REAL NOT NULL, token_id TEXT NOT NULL, price REAL NOT NULL);
CREATE INDEX marks_token ON marks (token_id, id);
CREATE TABLE equity (
    id INTEGER PRIMARY KEY, at REAL NOT NULL, trading_day TEXT NOT NULL, equity REAL NOT NULL, cash REAL
);
""" + "".join(_append_only(table) for table in _TABLES)

# MIGRATIONS[n] brings a ledger from schema version n to n + 1; append, never edit a shipped entry.
MIGRATIONS: tuple[str, ...] = (_SCHEMA_1,)
SCHEMA_VERSION = len(MIGRATIONS)


class LedgerError(RuntimeError):
    """The ledger cannot be written: make STATE_DIR writable (or free disk space), then restart."""


class LedgerCorruptError(LedgerError):
    """The ledger file was unusable and has been moved aside (`kept_as`); the bot must start HALTED."""

    def __init__(self, problem: str, kept_as: Path) -> None:
        super().__init__(f"{problem}; the file is kept as {kept_as.name}")
        self.problem = problem
        self.kept_as = kept_as


@dataclass(frozen=True, slots=True)
class FillRecord:
    """Our fill of one order, as acknowledged."""

    size: float
    price: float
    fees: float
    realized_pnl: float


@dataclass(frozen=True, slots=True)
class OutcomeRecord:
    """Everything one trade (or stop-loss exit) produced, written in one transaction."""

    token_id: str
    side: str
    status: str  # the executor's status: executed / denied / failed
    reason: str
    deny_reasons: tuple[str, ...] = ()
    latency_ms: float | None = None
    market: str = ""
    title: str = ""
    outcome: str = ""
    client_order_id: str | None = None
    order_size: float = 0.0
    limit_price: float = 0.0
    exchange_order_id: str | None = None
    order_status: str | None = None
    fill: FillRecord | None = None
    error_kind: str | None = None
    error_message: str = ""
    marks: dict[str, float] = field(default_factory=dict)
    equity: float | None = None
    cash: float | None = None


@dataclass(slots=True)
class LedgerState:
    """What a restart restores: the folded book, today's realized P&L, and what was already acted on."""

    book: Book
    realized_pnl_today: float
    fills: int
    acted_keys: list[tuple[str, str]]  # (tx hash, asset) of the recent followed trades, oldest first
    wallets_seen: set[str]  # followed wallets with any trade in the ledger

    @property
    def exposure(self) -> float:
        return self.book.portfolio.total_exposure


def _trading_day(at: float, tz: tzinfo) -> str:
    return datetime.fromtimestamp(at, tz).date().isoformat()


class TradeLedger:
    """The bot's append-only trade ledger (one writer thread, one connection)."""

    def __init__(
        self,
        path: str | Path,
        *,
        timezone: str = "UTC",
        clock: Callable[[], float] = time.time,
        wall_clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.path = Path(path)
        self.timezone = timezone
        self._tz = ZoneInfo(timezone)
        self._clock = clock
        self._wall_clock = wall_clock
        self._conn: sqlite3.Connection | None = None
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ledger-writer")
        self.write_errors = 0

    # --- lifecycle ----------------------------------------------------------------------------------

    def open(self) -> None:
        """Open (creating or migrating) the ledger; LedgerCorruptError after moving a bad file aside."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        problem = None
        try:
            self._conn = self._connect()
        except sqlite3.DatabaseError as e:
            problem = f"the trade ledger {self.path} is unusable: {e}"
        if problem is None:
            return
        for suffix in ("-wal", "-shm"):
            companion = self.path.with_name(self.path.name + suffix)
            if companion.exists():
                quarantine(companion, self._wall_clock())
        try:
            kept = quarantine(self.path, self._wall_clock())
        except OSError as e:
            raise LedgerError(f"{problem}, and it cannot be moved aside ({e}); move it away by hand") from e
        logger.critical("%s; kept as %s, starting a fresh ledger", problem, kept.name)
        self._conn = self._connect()
        raise LedgerCorruptError(problem, kept)

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=10.0)
        try:
            # small pages: a trade's commit touches ~7 pages, and the fsync flushes every byte of them
            conn.execute("PRAGMA page_size = 1024")  # only takes effect on a new, empty file
            conn.execute("PRAGMA journal_mode = WAL").fetchone()
            conn.execute("PRAGMA synchronous = FULL")
            conn.execute("PRAGMA foreign_keys = ON")
            check = conn.execute("PRAGMA quick_check").fetchone()
            if check is None or check[0] != "ok":
                raise sqlite3.DatabaseError(f"integrity check failed: {check[0] if check else 'no answer'}")
            self._migrate(conn)
        except BaseException:
            conn.close()
            raise
        return conn

    @staticmethod
    def _migrate(conn: sqlite3.Connection) -> None:
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise sqlite3.DatabaseError(
                f"schema version {version} is newer than this bot's {SCHEMA_VERSION} (written by a newer release)"
            )
        for target in range(version + 1, SCHEMA_VERSION + 1):
            # executescript commits first; the migration and its version bump then land in one transaction
            conn.executescript(f"BEGIN;\n{MIGRATIONS[target - 1]}\nPRAGMA user_version = {target};\nCOMMIT;")
            logger.info("trade ledger migrated to schema version %d", target)

    def _db(self) -> sqlite3.Connection:
        if self._conn is None:
            raise LedgerError(f"the trade ledger {self.path} is not open: call open() first")
        return self._conn

    def close(self) -> None:
        """Close the connection and the writer thread (idempotent)."""
        self._pool.shutdown(wait=True)
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    async def run(self, fn: Callable[[], T]) -> T:
        """Run `fn` in the ledger's writer thread (never on the event loop)."""
        return await asyncio.get_running_loop().run_in_executor(self._pool, fn)

    # --- writes (sync; the async wrappers below run them in the writer thread) -----------------------

    def ensure_account(self, mode: str, opening_cash: float | None) -> float | None:
        """Record the account's opening balance once; returns the opening balance on file."""
        conn = self._db()
        row = conn.execute("SELECT cash FROM account ORDER BY id LIMIT 1").fetchone()
        if row is not None:
            return row[0]
        with _transaction(conn, durable=True):
            conn.execute("INSERT INTO account (at, mode, cash) VALUES (?, ?, ?)", (self._clock(), mode, opening_cash))
        return opening_cash

    def record_seen_sync(
        self,
        *,
        wallet: str,
        tx_hash: str,
        token_id: str,
        market: str,
        title: str,
        outcome: str,
        side: str,
        size: float,
        price: float,
        traded_at: float,
    ) -> int | None:
        """Record a followed trade as seen; its row id, or None when (tx hash, asset) is already in the ledger."""
        conn = self._db()
        with _transaction(conn, durable=False):
            cursor = conn.execute(
                "INSERT OR IGNORE INTO followed_trades (seen_at, wallet, tx_hash, token_id, market, title, outcome,"
                " side, size, price, traded_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (self._clock(), wallet, tx_hash, token_id, market, title, outcome, side, size, price, traded_at),
            )
        return cursor.lastrowid if cursor.rowcount == 1 else None

    def record_outcome_sync(self, trade_id: int | None, record: OutcomeRecord) -> None:
        """Write one trade's decision, order, fill or error, marks and equity in one fsync'd transaction."""
        conn = self._db()
        at = self._clock()
        day = _trading_day(at, self._tz)
        with _transaction(conn, durable=True):
            decision_id = conn.execute(
                "INSERT INTO decisions (trade_id, at, trading_day, token_id, side, status, reason, deny_reasons,"
                " latency_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    trade_id,
                    at,
                    day,
                    record.token_id,
                    record.side,
                    record.status,
                    record.reason,
                    json.dumps(list(record.deny_reasons)),
                    record.latency_ms,
                ),
            ).lastrowid
            if record.client_order_id is not None:
                order_id = conn.execute(
                    "INSERT INTO orders (decision_id, at, client_order_id, token_id, side, size, limit_price,"
                    " exchange_order_id, status) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        decision_id,
                        at,
                        record.client_order_id,
                        record.token_id,
                        record.side,
                        record.order_size,
                        record.limit_price,
                        record.exchange_order_id,
                        record.order_status,
                    ),
                ).lastrowid
                if record.fill is not None:
                    fill = record.fill
                    conn.execute(
                        "INSERT INTO fills (order_id, at, trading_day, token_id, market, title, outcome, side, size,"
                        " price, fees, realized_pnl) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        (
                            order_id,
                            at,
                            day,
                            record.token_id,
                            record.market,
                            record.title,
                            record.outcome,
                            record.side,
                            fill.size,
                            fill.price,
                            fill.fees,
                            fill.realized_pnl,
                        ),
                    )
            if record.error_kind is not None:
                conn.execute(
                    "INSERT INTO errors (decision_id, at, trading_day, token_id, kind, message)"
                    " VALUES (?, ?, ?, ?, ?, ?)",
                    (decision_id, at, day, record.token_id, record.error_kind, record.error_message),
                )
            self._insert_marks(conn, at, record.marks)
            if record.equity is not None:
                conn.execute(
                    "INSERT INTO equity (at, trading_day, equity, cash) VALUES (?, ?, ?, ?)",
                    (at, day, record.equity, record.cash),
                )

    def record_equity_sync(self, equity: float, cash: float | None) -> None:
        """Append one equity figure (the one the breaker was just given), fsync'd."""
        conn = self._db()
        at = self._clock()
        with _transaction(conn, durable=True):
            conn.execute(
                "INSERT INTO equity (at, trading_day, equity, cash) VALUES (?, ?, ?, ?)",
                (at, _trading_day(at, self._tz), equity, cash),
            )

    def record_marks_sync(self, marks: dict[str, float]) -> None:
        """Append the latest mark of each token (one fsync'd transaction; nothing when empty)."""
        if not marks:
            return
        conn = self._db()
        with _transaction(conn, durable=True):
            self._insert_marks(conn, self._clock(), marks)

    @staticmethod
    def _insert_marks(conn: sqlite3.Connection, at: float, marks: dict[str, float]) -> None:
        conn.executemany(
            "INSERT INTO marks (at, token_id, price) VALUES (?, ?, ?)",
            [(at, token_id, price) for token_id, price in marks.items()],
        )

    # --- async wrappers ------------------------------------------------------------------------------

    async def record_seen(self, **fields: Any) -> int | None:
        """`record_seen_sync` in the writer thread."""
        return await self.run(lambda: self.record_seen_sync(**fields))

    async def record_outcome(self, trade_id: int | None, record: OutcomeRecord) -> None:
        """`record_outcome_sync` in the writer thread; durable when this returns."""
        await self.run(lambda: self.record_outcome_sync(trade_id, record))

    async def record_equity(self, equity: float, cash: float | None) -> None:
        """`record_equity_sync` in the writer thread."""
        await self.run(lambda: self.record_equity_sync(equity, cash))

    async def record_marks(self, marks: dict[str, float]) -> None:
        """`record_marks_sync` in the writer thread."""
        await self.run(lambda: self.record_marks_sync(marks))

    # --- the restore ---------------------------------------------------------------------------------

    def load_state(self, *, keys_since: float | None = None) -> LedgerState:
        """Fold the ledger into what a restart restores (sync: call it in the writer thread or before the loop)."""
        conn = self._db()
        today = _trading_day(self._clock(), self._tz)
        conn.execute("BEGIN")
        try:
            book = load_book(conn)
            realized = conn.execute(
                "SELECT COALESCE(SUM(realized_pnl), 0.0), (SELECT COUNT(*) FROM fills) FROM fills"
                " WHERE trading_day = ?",
                (today,),
            ).fetchone()
            since = keys_since if keys_since is not None else 0.0
            keys = [
                (r[0], r[1])
                for r in conn.execute(
                    "SELECT tx_hash, token_id FROM followed_trades WHERE traded_at >= ? OR seen_at >= ? ORDER BY id",
                    (since, since),
                )
            ]
            wallets = {r[0] for r in conn.execute("SELECT DISTINCT wallet FROM followed_trades")}
        finally:
            conn.execute("COMMIT")
        return LedgerState(book, float(realized[0]), int(realized[1]), keys, wallets)

    def positions_summary(self, state: LedgerState) -> str:
        """One log line: what was restored."""
        positions = ledger_positions(state.book)
        cash = state.book.portfolio.cash
        return (
            f"{len(positions)} position(s), exposure {state.exposure:.2f} USDC, "
            f"cash {'unknown (live: from the CLOB)' if cash is None else f'{cash:.2f} USDC'}, "
            f"realized P&L today {state.realized_pnl_today:.2f}"
        )


class _transaction:
    """BEGIN IMMEDIATE … COMMIT (ROLLBACK on error), with or without the commit's fsync."""

    def __init__(self, conn: sqlite3.Connection, *, durable: bool) -> None:
        self._conn = conn
        self._durable = durable

    def __enter__(self) -> sqlite3.Connection:
        # NORMAL in WAL mode: the commit reaches the OS (a killed process keeps it) without an fsync;
        # the next FULL commit fsyncs the WAL, and with it every frame written before
        self._conn.execute(f"PRAGMA synchronous = {'FULL' if self._durable else 'NORMAL'}")
        self._conn.execute("BEGIN IMMEDIATE")
        return self._conn

    def __exit__(self, kind: type[BaseException] | None, *_: object) -> None:
        self._conn.execute("COMMIT" if kind is None else "ROLLBACK")
