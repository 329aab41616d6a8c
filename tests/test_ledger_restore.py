"""The ledger under the copy path: what each trade writes, and a restart that restores the whole risk picture.

Real parts: the paper CLOB client, the circuit breaker and the ledger on files under tmp_path.
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from config.settings import Settings
from core.circuit_breaker import CircuitBreaker
from core.clob.base import BookLevel, OrderBook, Side
from core.clob.paper import PaperClobClient
from core.ledger import LEDGER_FILE_NAME, TradeLedger
from core.ledger_startup import open_trade_ledger, restore_from_ledger
from core.ledger_view import LedgerReader
from core.trade_executor import ALREADY_IN_LEDGER, ExecutionStatus, TradeExecutor
from core.wallet.base import WalletTrade
from core.wallet.replay import ReplayTradeSource

OUR_WALLET = "0x1234567890abcdef1234567890abcdef12abcdef"
FOLLOWED = "0x" + "9" * 34 + "143124"


def pinned(token_id: str, bid: float = 0.49, ask: float = 0.51, depth: float = 500.0) -> OrderBook:
    return OrderBook(token_id, (BookLevel(bid, depth), BookLevel(bid - 0.01, depth)), (BookLevel(ask, depth),))


def trade(tx: str, side: Side = Side.BUY, size: float = 20.0, price: float = 0.51, token: str = "tok-1") -> WalletTrade:
    return WalletTrade(
        wallet=FOLLOWED,
        tx_hash=tx,
        token_id=token,
        market="0x" + "c" * 64,
        side=side,
        size=size,
        price=price,
        timestamp=datetime.now(UTC),
        outcome="Yes",
        title="Will it rain?",
    )


def make_settings(tmp_path: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "state_dir": tmp_path / "state",
        "copy_ratio": 1.0,
        "max_slippage": 0.05,
        "wallet_address": OUR_WALLET,
        "paper_latency_ms": 0.0,
        "paper_error_rate": 0.0,
        "paper_starting_balance": 1000.0,
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)


class Bot:
    """The start-up main.py does, without the loop: breaker, ledger, paper CLOB, executor, restore."""

    def __init__(self, settings: Settings, books: list[OrderBook], **clob: Any) -> None:
        self.settings = settings
        self.books = books
        self.clob_options = clob

    async def __aenter__(self) -> TradeExecutor:
        self.settings.state_dir.mkdir(parents=True, exist_ok=True)
        self.breaker = CircuitBreaker.from_settings(self.settings)
        self.ledger, state = await open_trade_ledger(self.settings, self.breaker)
        clob = PaperClobClient(self.settings, **self.clob_options)
        for book in self.books:
            clob.set_book(book)
        self.executor = TradeExecutor(
            clob, settings=self.settings, circuit_breaker=self.breaker, seed_paper_books=False, ledger=self.ledger
        )
        source = ReplayTradeSource(self.settings.state_dir / "none.jsonl")
        await restore_from_ledger(self.executor, source, state)
        return self.executor

    async def __aexit__(self, *_: object) -> None:
        await asyncio.to_thread(self.ledger.close)


def test_a_restart_restores_positions_cash_marks_and_the_day_and_a_later_sell_exits(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)

    async def scenario() -> None:
        async with Bot(settings, [pinned("tok-1"), pinned("tok-2", 0.29, 0.31)]) as executor:
            assert (await executor.execute_copy(trade("0xa"))).status is ExecutionStatus.EXECUTED
            assert (await executor.execute_copy(trade("0xb", token="tok-2", price=0.31))).status.value == "executed"
            before = executor.snapshot()
            cash_before = executor.portfolio.cash
            equity_before = executor.portfolio.equity()
            held = executor.portfolio.held("tok-1")
        # a new process: nothing in memory, everything from the files
        async with Bot(settings, [pinned("tok-1", 0.44, 0.46), pinned("tok-2", 0.29, 0.31)]) as executor:
            after = executor.snapshot()
            assert after["exposure"] == before["exposure"]
            assert executor.portfolio.cash == pytest.approx(cash_before)
            assert executor.portfolio.equity() == pytest.approx(equity_before)
            assert executor.clob.balance == pytest.approx(cash_before)  # type: ignore[attr-defined]
            assert executor.clob.positions() == {"tok-1": held, "tok-2": pytest.approx(20.0)}  # type: ignore[attr-defined]
            assert executor.breaker.get_state()["last_equity"] == pytest.approx(equity_before)
            # the same followed trade again (a replay from the start): not copied twice
            again = await executor.execute_copy(trade("0xa"))
            assert (again.status, again.reason) == (ExecutionStatus.DENIED, ALREADY_IN_LEDGER)
            # the followed wallet sells what we hold: the copy exits (it used to be denied no_position)
            sold = await executor.execute_copy(trade("0xc", Side.SELL, size=20.0, price=0.44))
            assert sold.status is ExecutionStatus.EXECUTED, sold.reason
            assert sold.realized_pnl == pytest.approx((0.44 - 0.51) * held)
            assert "tok-1" not in executor.portfolio.positions
        reader = LedgerReader(settings.state_dir / LEDGER_FILE_NAME)
        assert [p.token_id for p in reader.positions()] == ["tok-2"]
        assert reader.pnl().realized_pnl == pytest.approx((0.44 - 0.51) * held)
        assert [t.decision for t in reader.recent_trades(3)] == ["copied", "copied", "copied"]
        reader.close()

    asyncio.run(scenario())


def test_the_ledger_holds_the_fill_before_the_breaker_is_fed(tmp_path: Path) -> None:
    """README: the trade is written to the ledger before the circuit breaker's own write, so a kill between
    the two leaves the ledger a fill ahead (which the next start reconciles), never the breaker."""
    settings = make_settings(tmp_path)
    seen_by_breaker: list[tuple[str, float | None]] = []

    async def scenario() -> None:
        async with Bot(settings, [pinned("tok-1")]) as executor:
            feed = executor.breaker.update_equity_async

            async def update_equity_async(equity: float) -> None:
                reader = LedgerReader(settings.state_dir / LEDGER_FILE_NAME)
                try:
                    [newest] = reader.recent_trades(1)
                    seen_by_breaker.append((newest.decision, newest.fill_size))
                finally:
                    reader.close()
                await feed(equity)

            executor.breaker.update_equity_async = update_equity_async  # type: ignore[method-assign]
            assert (await executor.execute_copy(trade("0xa"))).status is ExecutionStatus.EXECUTED

    asyncio.run(scenario())
    [(decision, fill_size)] = seen_by_breaker
    assert decision == "copied" and fill_size is not None and fill_size > 0


def test_each_denial_and_error_is_in_the_ledger_with_its_reasons(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, max_order_size=5.0, min_order_size=1.0)

    async def scenario() -> None:
        async with Bot(settings, [pinned("tok-1")]) as executor:
            denied = await executor.execute_copy(trade("0xa", Side.SELL))  # nothing held
            assert denied.reason == "no_position"
        async with Bot(settings, [pinned("tok-1")], error_rate=1.0, error_kinds=["timeout"]) as executor:
            failed = await executor.execute_copy(trade("0xb"))
            assert failed.reason == "clob_timeout"
        reader = LedgerReader(settings.state_dir / LEDGER_FILE_NAME)
        newest, oldest = reader.recent_trades(2)
        assert (oldest.decision, oldest.deny_reasons, oldest.fill_size) == ("denied", ("no_position",), None)
        assert (newest.decision, newest.market_title, newest.outcome) == ("error", "Will it rain?", "Yes")
        assert reader.deny_reason_counts() == {"no_position": 1}
        reader.close()
        conn = TradeLedger(settings.state_dir / LEDGER_FILE_NAME)
        conn.open()
        [(kind, message)] = conn._db().execute("SELECT kind, message FROM errors").fetchall()
        conn.close()
        assert kind == "timeout" and "injected" in message

    asyncio.run(scenario())


def test_a_corrupt_ledger_starts_the_bot_halted_and_keeps_the_file(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    settings.state_dir.mkdir(parents=True)
    (settings.state_dir / LEDGER_FILE_NAME).write_bytes(b"garbage, not SQLite" * 100)

    async def scenario() -> None:
        async with Bot(settings, [pinned("tok-1")]) as executor:
            state = executor.breaker.get_state()
            assert (state["state"], state["trip_kind"]) == ("HALTED", "corrupt_state")
            assert "trade ledger is unusable" in state["trip_reason"]
            denied = await executor.execute_copy(trade("0xa"))
            assert denied.reason == "breaker_halted"

    asyncio.run(scenario())
    kept = list(settings.state_dir.glob("ledger.db.corrupt-*"))
    assert len(kept) == 1 and kept[0].read_bytes().startswith(b"garbage")
    on_disk = json.loads((settings.state_dir / "circuit_breaker.json").read_text())
    assert on_disk["state"] == "HALTED"


def test_paper_restart_keeps_the_days_loss_even_when_the_account_comes_back_richer(tmp_path: Path) -> None:
    """The issue's case: a file for today with daily_loss 90 (1000 → 910) read back by a paper bot whose
    account shows 1000 again must still say 90, not the 2.75 it used to."""
    state_file = tmp_path / "circuit_breaker.json"
    first = CircuitBreaker(100.0, OUR_WALLET, state_file, 60.0)
    first.update_equity(1000.0)
    first.update_equity(910.0)
    assert first.get_state()["daily_loss"] == pytest.approx(90.0)
    again = CircuitBreaker(100.0, OUR_WALLET, state_file, 60.0)
    again.update_equity(1000.0)
    assert again.get_state()["daily_loss"] == pytest.approx(90.0)
    assert again.state.value == "ACTIVE"
    again.update_equity(905.0)  # a further loss still counts on top
    assert again.get_state()["daily_loss"] == pytest.approx(185.0)
    assert again.state.value == "HALTED"


def test_a_restart_whose_equity_comes_back_lower_counts_the_drop_as_loss(tmp_path: Path) -> None:
    state_file = tmp_path / "circuit_breaker.json"
    first = CircuitBreaker(100.0, OUR_WALLET, state_file, 60.0)
    first.update_equity(1000.0)
    first.update_equity(950.0)
    again = CircuitBreaker(100.0, OUR_WALLET, state_file, 60.0)
    again.update_equity(940.0)
    assert again.get_state()["daily_loss"] == pytest.approx(60.0)


def test_an_active_state_file_over_the_daily_loss_limit_starts_halted(tmp_path: Path) -> None:
    state_file = tmp_path / "circuit_breaker.json"
    lenient = CircuitBreaker(200.0, OUR_WALLET, state_file, 60.0)
    lenient.update_equity(1000.0)
    lenient.update_equity(850.0)
    assert json.loads(state_file.read_text())["state"] == "ACTIVE"
    strict = CircuitBreaker(100.0, OUR_WALLET, state_file, 60.0)
    state = strict.get_state()
    assert (state["state"], state["trip_kind"]) == ("HALTED", "daily_loss")
    assert "said ACTIVE" in state["trip_reason"] and "150.00" in state["trip_reason"]
    assert state["trip_figures"]["restored"] is True
    assert not strict.allows_new_entries()
    assert json.loads(state_file.read_text())["state"] == "HALTED"


def test_an_active_state_file_from_an_earlier_day_is_not_halted_for_its_old_loss(tmp_path: Path) -> None:
    state_file = tmp_path / "circuit_breaker.json"
    yesterday = datetime(2026, 12, 1, 12, tzinfo=UTC)
    lenient = CircuitBreaker(200.0, OUR_WALLET, state_file, 60.0, clock=lambda: yesterday)
    lenient.update_equity(1000.0)
    lenient.update_equity(850.0)
    today = datetime(2026, 12, 2, 12, tzinfo=UTC)
    strict = CircuitBreaker(100.0, OUR_WALLET, state_file, 60.0, clock=lambda: today)
    assert strict.get_state()["state"] == "ACTIVE"


@pytest.mark.parametrize(
    ("balance", "positions", "message"),
    [
        (float("nan"), {}, "balance: expected a finite USDC amount"),
        (-5.0, {}, "balance: expected a finite USDC amount"),
        (10.0, {"t": float("inf")}, "positions: expected finite share counts"),
        (10.0, {"t": -1.0}, "positions: expected finite share counts"),
    ],
)
def test_the_paper_account_refuses_a_malformed_restore(
    tmp_path: Path, balance: float, positions: dict[str, float], message: str
) -> None:
    clob = PaperClobClient(make_settings(tmp_path))
    with pytest.raises(ValueError, match=message):
        clob.restore_account(balance, positions)
    assert clob.balance == 1000.0 and clob.positions() == {}


def test_a_restored_paper_account_sells_what_it_holds(tmp_path: Path) -> None:
    clob = PaperClobClient(make_settings(tmp_path), books={"tok-1": pinned("tok-1")})
    clob.restore_account(12.5, {"tok-1": 30.0, "dust": 1e-15})
    assert clob.positions() == {"tok-1": 30.0}

    async def sell() -> float:
        from core.clob.base import OrderRequest

        ack = await clob.place_order(OrderRequest("tok-1", Side.SELL, 30.0, 0.40))
        return ack.filled_size

    assert asyncio.run(sell()) == 30.0
    assert clob.balance > 12.5


def test_a_stop_loss_exit_and_the_marks_it_reads_are_in_the_ledger(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, stop_loss=0.2, max_slippage=0.5)

    async def scenario() -> None:
        async with Bot(settings, [pinned("tok-1")]) as executor:
            assert (await executor.execute_copy(trade("0xa"))).status is ExecutionStatus.EXECUTED
            executor.clob.set_book(pinned("tok-1", 0.46, 0.48))  # type: ignore[attr-defined]
            assert await executor.enforce_stop_losses() == []  # mid 0.47 vs cost 0.51: holding
            executor.clob.set_book(pinned("tok-1", 0.30, 0.32))  # type: ignore[attr-defined]
            [exit_] = await executor.enforce_stop_losses()
            assert (exit_.status, exit_.reason) == (ExecutionStatus.EXECUTED, "stop_loss")
        reader = LedgerReader(settings.state_dir / LEDGER_FILE_NAME)
        assert reader.positions() == []
        assert reader.pnl().realized_pnl == pytest.approx(exit_.realized_pnl)
        assert [t.decision for t in reader.recent_trades()] == ["copied"]  # the exit is ours, not a followed trade
        reader.close()
        ledger = TradeLedger(settings.state_dir / LEDGER_FILE_NAME)
        ledger.open()
        marks = [r[0] for r in ledger._db().execute("SELECT price FROM marks ORDER BY id")]
        statuses = ledger._db().execute("SELECT trade_id, reason FROM decisions ORDER BY id").fetchall()
        ledger.close()
        assert 0.47 in [round(m, 2) for m in marks]  # the holding round's changed mark was written
        assert statuses[-1] == (None, "stop_loss")

    asyncio.run(scenario())


@pytest.mark.parametrize(
    ("day_start", "last", "first_after_restart", "expected"),
    [
        (1000.0, 910.0, 1000.0, 1090.0),  # richer than the file: the gap cannot erase the 90 lost
        (1000.0, 910.0, 900.0, 1000.0),  # poorer: the drop counts as loss
        (1000.0, 910.0, 910.0, 1000.0),  # restored exactly
        (1000.0, None, 1200.0, 1000.0),  # no equity on file: nothing to compare with
    ],
)
def test_restart_day_start_only_ever_keeps_or_adds_to_the_days_loss(
    day_start: float, last: float | None, first_after_restart: float, expected: float
) -> None:
    from core.circuit_breaker import restart_day_start

    rebased = restart_day_start(day_start, last, first_after_restart)
    assert rebased == pytest.approx(expected)
    if last is not None:
        assert rebased - first_after_restart >= day_start - last - 1e-9


def test_a_ledger_that_cannot_be_written_is_counted_and_the_fill_stays_booked(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = make_settings(tmp_path)

    async def scenario() -> None:
        async with Bot(settings, [pinned("tok-1")]) as executor:
            assert executor.ledger is not None
            # the disk goes away under the bot: every ledger statement now fails
            await asyncio.to_thread(executor.ledger._db().close)
            result = await executor.execute_copy(trade("0xa"))
            assert result.status is ExecutionStatus.EXECUTED  # the trade itself is not undone
            assert executor.portfolio.held("tok-1") > 0
            assert executor.ledger_write_errors == 2  # the seen row and the outcome
            metrics = await executor.get_performance_metrics()
            assert metrics["ledger_write_errors"] == 2
            kinds = [e["kind"] for e in executor.breaker.get_state()["recent_errors"]]
            assert kinds == ["ledger_write", "ledger_write"]  # a burst of them halts new entries
            executor.ledger._conn = None  # already closed above

    with caplog.at_level("CRITICAL"):
        asyncio.run(scenario())
    assert any("a restart would not restore it" in r.getMessage() for r in caplog.records)


def test_a_paper_restart_resumes_each_held_tokens_market_at_its_last_mark(tmp_path: Path) -> None:
    # the product's paper set-up (seeded, drifting books): a restart must not move the market, or the
    # restart alone would change the day's P&L and the stop-loss would sell at an arbitrary price
    settings = make_settings(tmp_path, max_slippage=0.5)
    token = "tok-far"  # a token whose unseeded paper book sits far from 0.93

    async def start() -> tuple[TradeExecutor, TradeLedger]:
        settings.state_dir.mkdir(parents=True, exist_ok=True)
        breaker = CircuitBreaker.from_settings(settings)
        ledger, state = await open_trade_ledger(settings, breaker)
        executor = TradeExecutor(
            PaperClobClient(settings), settings=settings, circuit_breaker=breaker, seed_paper_books=True, ledger=ledger
        )
        await restore_from_ledger(executor, ReplayTradeSource(settings.state_dir / "none.jsonl"), state)
        return executor, ledger

    async def scenario() -> None:
        executor, ledger = await start()
        copied = await executor.execute_copy(trade("0xa", size=10.0, price=0.93, token=token))
        assert copied.status is ExecutionStatus.EXECUTED, copied.reason
        mark = executor.portfolio.positions[token].mark
        await asyncio.to_thread(ledger.close)

        fresh = await PaperClobClient(settings).get_order_book(token)
        assert abs((fresh.mid() or 0.0) - mark) > 0.2  # what an unseeded book would have said

        executor, ledger = await start()
        resumed = await executor.clob.get_order_book(token)
        assert resumed.mid() == pytest.approx(mark, abs=0.03)  # one drift step at most
        await asyncio.to_thread(ledger.close)

    asyncio.run(scenario())
