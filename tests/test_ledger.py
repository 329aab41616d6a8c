"""The trade ledger: append-only SQLite, schema versions, corrupt files kept aside, and its read-only view."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest

from core import ledger_view
from core.ledger import (
    SCHEMA_VERSION,
    FillRecord,
    LedgerCorruptError,
    OutcomeRecord,
    TradeLedger,
)
from core.ledger_view import FillRow, LedgerReader, fold_fills

WALLET = "0x" + "ab" * 19 + "143124"
T0 = 1_796_600_000.0  # 2026-12-06 in UTC


class Clock:
    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def ledger(tmp_path: Path, clock: Clock) -> Iterator[TradeLedger]:
    book = TradeLedger(tmp_path / "ledger.db", clock=clock)
    book.open()
    book.ensure_account("paper", 1000.0)
    yield book
    book.close()


def seen(ledger: TradeLedger, tx: str, token: str = "tok-1", side: str = "BUY", **extra: object) -> int | None:
    fields: dict[str, object] = {
        "wallet": WALLET,
        "tx_hash": tx,
        "token_id": token,
        "market": "0xmarket",
        "title": "Will it rain?",
        "outcome": "Yes",
        "side": side,
        "size": 10.0,
        "price": 0.5,
        "traded_at": T0,
    }
    fields.update(extra)
    return ledger.record_seen_sync(**fields)  # type: ignore[arg-type]


def filled(token: str, side: str, size: float, price: float, realized: float = 0.0, **extra: object) -> OutcomeRecord:
    options: dict[str, object] = {
        "latency_ms": 3.0,
        "market": "0xmarket",
        "title": "Will it rain?",
        "outcome": "Yes",
        "client_order_id": f"copy-1-{token}-{side}",
        "order_size": size,
        "limit_price": price,
        "exchange_order_id": "paper-1",
        "order_status": "FILLED",
        "fill": FillRecord(size, price, 0.0, realized),
        "marks": {token: price},
    }
    options.update(extra)
    return OutcomeRecord(token, side, "executed", "", **options)  # type: ignore[arg-type]


def test_a_followed_trade_is_recorded_once_and_its_fill_makes_the_position(ledger: TradeLedger) -> None:
    trade_id = seen(ledger, "0xtx1")
    assert trade_id is not None
    assert seen(ledger, "0xtx1") is None  # same (tx hash, asset): already acted on
    assert seen(ledger, "0xtx1", token="tok-2") is not None  # one transaction, another asset
    ledger.record_outcome_sync(trade_id, filled("tok-1", "BUY", 20.0, 0.5, equity=1000.0, cash=990.0))

    reader = LedgerReader(ledger.path)
    [position] = reader.positions()
    assert (position.token_id, position.size, position.avg_price, position.notional) == ("tok-1", 20.0, 0.5, 10.0)
    assert (position.market_title, position.outcome, position.mark) == ("Will it rain?", "Yes", 0.5)
    trades = reader.recent_trades(10)
    assert [t.decision for t in trades] == ["pending", "copied"]  # newest first; tok-2 has no decision yet
    assert trades[1].followed_wallet.endswith("143124") and WALLET not in trades[1].followed_wallet
    assert (trades[1].fill_size, trades[1].fill_price, trades[1].latency_ms) == (20.0, 0.5, 3.0)
    reader.close()


def test_sells_realize_pnl_per_trading_day_and_restore_agrees_with_the_reader(
    ledger: TradeLedger, clock: Clock
) -> None:
    ledger.record_outcome_sync(seen(ledger, "0xa"), filled("tok-1", "BUY", 100.0, 0.40))
    ledger.record_outcome_sync(seen(ledger, "0xb", side="SELL"), filled("tok-1", "SELL", 40.0, 0.30, realized=-4.0))
    denied = OutcomeRecord("tok-2", "BUY", "denied", "max_slippage", deny_reasons=("max_slippage",))
    ledger.record_outcome_sync(seen(ledger, "0xc", token="tok-2"), denied)

    state = ledger.load_state()
    portfolio = state.book.portfolio
    assert portfolio.held("tok-1") == pytest.approx(60.0)
    assert portfolio.cash == pytest.approx(1000.0 - 40.0 + 12.0)
    assert state.realized_pnl_today == pytest.approx(-4.0)
    assert state.acted_keys == [("0xa", "tok-1"), ("0xb", "tok-1"), ("0xc", "tok-2")]  # oldest first
    assert state.wallets_seen == {WALLET}

    reader = LedgerReader(ledger.path)
    summary = reader.pnl(date(2026, 12, 6))
    assert (summary.realized_pnl, summary.copies, summary.denials) == (pytest.approx(-4.0), 2, 1)
    assert reader.deny_reason_counts(date(2026, 12, 6)) == {"max_slippage": 1}
    assert reader.followed_wallets() == [(reader.recent_trades(1)[0].followed_wallet, 2, 1)]
    assert [t.deny_reasons for t in reader.recent_trades(1)] == [("max_slippage",)]
    # the next day starts at zero realized
    clock.now += 86_400
    assert ledger.load_state().realized_pnl_today == 0.0
    reader.close()


def test_the_ledger_is_append_only(ledger: TradeLedger) -> None:
    seen(ledger, "0xa")
    conn = sqlite3.connect(ledger.path)
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        conn.execute("UPDATE followed_trades SET size = 1")
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        conn.execute("DELETE FROM followed_trades")
    conn.close()


def test_a_new_ledger_gets_the_current_schema_version_and_reopening_keeps_data(tmp_path: Path) -> None:
    first = TradeLedger(tmp_path / "ledger.db")
    first.open()
    first.ensure_account("paper", 500.0)
    first.close()
    again = TradeLedger(tmp_path / "ledger.db")
    again.open()
    assert again.ensure_account("paper", 1000.0) == 500.0  # the opening balance on file wins
    again.close()
    conn = sqlite3.connect(tmp_path / "ledger.db")
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    conn.close()


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (b"this is not a database at all, just text" * 200, "unusable"),
        (b"SQLite format 3\x00" + b"\xff" * 4000, "unusable"),
    ],
    ids=["text", "truncated-header"],
)
def test_a_corrupt_ledger_is_kept_aside_and_a_fresh_one_opened(tmp_path: Path, content: bytes, problem: str) -> None:
    path = tmp_path / "ledger.db"
    path.write_bytes(content)
    ledger = TradeLedger(path)
    with pytest.raises(LedgerCorruptError, match=problem) as caught:
        ledger.open()
    kept = caught.value.kept_as
    assert kept.name.startswith("ledger.db.corrupt-") and kept.read_bytes() == content
    # the fresh ledger works
    assert ledger.ensure_account("paper", 1000.0) == 1000.0
    ledger.close()


def test_a_ledger_from_a_newer_schema_is_refused_and_kept(tmp_path: Path) -> None:
    path = tmp_path / "ledger.db"
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    ledger = TradeLedger(path)
    with pytest.raises(LedgerCorruptError, match="newer"):
        ledger.open()
    ledger.close()


def test_the_reader_of_a_missing_ledger_reads_empty(tmp_path: Path) -> None:
    reader = LedgerReader(tmp_path / "absent" / "ledger.db")
    assert reader.positions() == [] and reader.recent_trades() == [] and reader.daily() == []
    summary = reader.pnl()
    assert (summary.realized_pnl, summary.cash, summary.equity, summary.copies) == (0.0, None, None, 0)
    assert reader.followed_wallets() == [] and reader.equity_curve() == [] and reader.deny_reason_counts() == {}
    assert not (tmp_path / "absent").exists()  # reading never creates anything


def test_the_reader_sees_new_writes_while_the_writer_stays_open(ledger: TradeLedger) -> None:
    reader = LedgerReader(ledger.path)
    assert reader.positions() == []
    ledger.record_outcome_sync(seen(ledger, "0xa"), filled("tok-1", "BUY", 10.0, 0.5, equity=1000.0))
    assert [p.size for p in reader.positions()] == [10.0]
    with pytest.raises(sqlite3.OperationalError, match=r"readonly|read-only"):
        reader._query("INSERT INTO marks (at, token_id, price) VALUES (1, 'x', 0.5)")
    reader.close()


def test_the_async_writes_run_in_the_writer_thread(ledger: TradeLedger) -> None:
    async def scenario() -> list[str]:
        import threading

        names = []
        names.append(await ledger.run(lambda: threading.current_thread().name))
        trade_id = await ledger.record_seen(
            wallet=WALLET,
            tx_hash="0xz",
            token_id="tok-9",
            market="m",
            title="",
            outcome="",
            side="BUY",
            size=1.0,
            price=0.5,
            traded_at=T0,
        )
        await ledger.record_outcome(trade_id, filled("tok-9", "BUY", 1.0, 0.5))
        await ledger.record_marks({"tok-9": 0.6})
        return names

    names = asyncio.run(scenario())
    assert names[0].startswith("ledger-writer")
    assert LedgerReader(ledger.path).positions()[0].mark == 0.6


def test_folding_skips_a_sell_of_nothing_held() -> None:
    fills = [
        FillRow("t", "m", "", "", "SELL", 5.0, 0.5, 0.0),
        FillRow("t", "m", "T", "No", "BUY", 10.0, 0.4, 0.1),
    ]
    book = fold_fills(100.0, fills, {"t": 0.45})
    assert book.portfolio.held("t") == 10.0
    assert book.portfolio.cash == pytest.approx(100.0 - 4.0 - 0.1)
    assert book.labels["t"] == ("T", "No") and book.fees == pytest.approx(0.1)


def test_an_older_ledger_is_migrated_in_place_keeping_its_rows(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import core.ledger as ledger_module

    old = TradeLedger(tmp_path / "ledger.db")
    old.open()
    seen(old, "0xkept")
    old.close()
    # a later release appends a migration; this file, at version 1, must take it at the next start
    migration = "ALTER TABLE followed_trades ADD COLUMN note TEXT NOT NULL DEFAULT '';"
    monkeypatch.setattr(ledger_module, "MIGRATIONS", (*ledger_module.MIGRATIONS, migration))
    monkeypatch.setattr(ledger_module, "SCHEMA_VERSION", SCHEMA_VERSION + 1)
    new = TradeLedger(tmp_path / "ledger.db")
    new.open()
    conn = new._db()
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION + 1
    assert conn.execute("SELECT tx_hash, note FROM followed_trades").fetchall() == [("0xkept", "")]
    new.close()


def test_a_write_on_a_closed_ledger_says_what_to_do(tmp_path: Path) -> None:
    from core.ledger import LedgerError

    ledger = TradeLedger(tmp_path / "ledger.db")
    with pytest.raises(LedgerError, match="call open"):
        ledger.record_marks_sync({"t": 0.5})
    ledger.close()


def test_each_trade_commits_with_an_fsync_and_its_seen_row_without(ledger: TradeLedger) -> None:
    """README: each trade ends in one transaction committed with an fsync (`synchronous=FULL`); the "seen"
    row is committed before the decision without its own fsync. SQLite's trace of the writer connection
    shows which durability each commit ran under (an fsync itself cannot be observed from here)."""
    statements: list[str] = []
    ledger._db().set_trace_callback(statements.append)  # the writer's one connection

    def commits_under() -> list[str]:
        """The synchronous level in force at each COMMIT, in order."""
        level, levels = "FULL", []  # open() sets FULL
        for statement in statements:
            if statement.startswith("PRAGMA synchronous"):
                level = statement.split("=")[1].strip()
            elif statement == "COMMIT":
                levels.append(level)
        return levels

    trade_id = seen(ledger, "0xa")
    assert commits_under() == ["NORMAL"]
    ledger.record_outcome_sync(trade_id, filled("tok-1", "BUY", 10.0, 0.5))
    assert commits_under() == ["NORMAL", "FULL"]
    ledger._db().set_trace_callback(None)
    assert ledger._db().execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL, as SQLite reports it


def test_the_reader_folds_an_unchanged_ledger_once_and_again_after_each_commit(
    ledger: TradeLedger, monkeypatch: pytest.MonkeyPatch
) -> None:
    # one view asks for positions and P&L: the fills are folded once while the ledger has not changed
    folds: list[int] = []
    real_load_book = ledger_view.load_book

    def counting_load_book(conn: sqlite3.Connection) -> ledger_view.Book:
        folds.append(1)
        return real_load_book(conn)

    monkeypatch.setattr(ledger_view, "load_book", counting_load_book)
    ledger.record_outcome_sync(seen(ledger, "0xa"), filled("tok-1", "BUY", 10.0, 0.5, equity=1000.0))
    reader = LedgerReader(ledger.path)
    assert [p.size for p in reader.positions()] == [10.0]
    reader.pnl()
    assert [p.size for p in reader.positions()] == [10.0]
    assert len(folds) == 1
    ledger.record_outcome_sync(seen(ledger, "0xb"), filled("tok-1", "BUY", 5.0, 0.5, equity=1000.0))
    assert [p.size for p in reader.positions()] == [15.0]  # the bot's commit is seen at once
    assert len(folds) == 2
    reader.close()
    assert [p.size for p in reader.positions()] == [15.0]  # a new connection folds afresh
    assert len(folds) == 3
    reader.close()
