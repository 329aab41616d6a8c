"""The trade executor: each pre-trade check as a table on its pure function, then the copy path end to end
on the real paper CLOB client with the real circuit breaker (state files under tmp_path)."""

from __future__ import annotations

import asyncio
import copy
import math
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from config.settings import Settings, get_settings
from core.circuit_breaker import CircuitBreaker
from core.clob.base import BookLevel, ClobError, OrderBook, Side
from core.clob.paper import PaperClobClient
from core.integrations.rules import CoverageVerdict, coverage_verdict
from core.pre_trade_checks import (
    EPSILON,
    BookFill,
    DenyReason,
    check_balance,
    check_breaker,
    check_holding,
    check_liquidity,
    check_max_order,
    check_min_order,
    check_open_positions,
    check_order_rate,
    check_position_limit,
    check_slippage,
    check_stop_loss,
    check_total_exposure,
    check_trade_input,
    plan_copy_order,
    walk_book_by_notional,
    walk_book_by_size,
)
from core.risk_snapshot import RiskSnapshotWriter, contains_full_address, read_risk_snapshot, without_volatile
from core.trade_executor import ExecutionStatus, TradeExecutor
from core.wallet.base import WalletTrade

TOKEN = "tok-1"
OTHER_TOKEN = "tok-2"
THIN_TOKEN = "tok-thin"
OUR_WALLET = "0x1234567890abcdef1234567890abcdef12abcdef"


# --- builders -----------------------------------------------------------------------------------------


def book(token_id: str = TOKEN, bids: Any = ((0.49, 500), (0.48, 500)), asks: Any = ((0.51, 500), (0.52, 500))):
    return OrderBook(
        token_id=token_id,
        bids=tuple(BookLevel(p, s) for p, s in bids),
        asks=tuple(BookLevel(p, s) for p, s in asks),
    )


def levels(*pairs: tuple[float, float]) -> tuple[BookLevel, ...]:
    return tuple(BookLevel(p, s) for p, s in pairs)


def trade(side: Side = Side.BUY, size: float = 20.0, price: float = 0.51, token_id: str = TOKEN) -> WalletTrade:
    return WalletTrade(
        wallet="0x" + "9" * 40,
        tx_hash="0x" + "1" * 64,
        token_id=token_id,
        market="0x" + "c" * 64,
        side=side,
        size=size,
        price=price,
        timestamp=datetime(2026, 11, 21, 10, 0, tzinfo=UTC),
    )


def make_settings(tmp_path: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "state_dir": tmp_path / "state",
        "copy_ratio": 1.0,
        "max_slippage": 0.05,
        "wallet_address": OUR_WALLET,
        "paper_latency_ms": 0.0,
        "paper_error_rate": 0.0,
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)


class FakeClock:
    """Monotonic seconds that only move when the test says so."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class StepTimer:
    """A perf_counter_ns that moves 1.5 ms per reading, so each order's latency is exactly 1.5 ms."""

    def __init__(self) -> None:
        self.ns = 0

    def __call__(self) -> int:
        self.ns += 1_500_000
        return self.ns


def make_breaker(settings: Settings) -> CircuitBreaker:
    settings.state_dir.mkdir(parents=True, exist_ok=True)
    return CircuitBreaker.from_settings(settings)


def make_executor(
    tmp_path: Path,
    *,
    books: tuple[OrderBook, ...] | None = None,
    balance: float = 1000.0,
    clob: Any = None,
    clock: FakeClock | None = None,
    **overrides: Any,
) -> TradeExecutor:
    settings = make_settings(tmp_path, **overrides)
    if clob is None:
        pinned = books if books is not None else (book(), book(OTHER_TOKEN))
        clob = PaperClobClient(settings, books={b.token_id: b for b in pinned}, starting_balance=balance)
    return TradeExecutor(
        clob,
        settings=settings,
        circuit_breaker=make_breaker(settings),
        clock=clock or FakeClock(),
        timer_ns=StepTimer(),
    )


# --- pure checks, as tables ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("side", "size", "price", "allowed"),
    [
        (Side.BUY, 10.0, 0.5, True),
        (Side.SELL, 0.001, 0.999, True),
        (Side.BUY, 0.0, 0.5, False),
        (Side.BUY, -1.0, 0.5, False),
        (Side.BUY, math.nan, 0.5, False),
        (Side.BUY, math.inf, 0.5, False),
        (Side.BUY, 10.0, 0.0, False),
        (Side.BUY, 10.0, 1.0, False),
        (Side.BUY, 10.0, 1.5, False),
        (Side.BUY, 10.0, math.nan, False),
        ("BUY", 10.0, 0.5, False),
        (Side.BUY, "10", 0.5, False),
        (Side.BUY, True, 0.5, False),
        (Side.BUY, 10.0, None, False),
    ],
)
def test_check_trade_input(side: Any, size: float, price: float, allowed: bool) -> None:
    decision = check_trade_input(side, size, price)
    assert decision.allowed is allowed
    assert decision.reason is (None if allowed else DenyReason.INVALID_TRADE)


@pytest.mark.parametrize(
    ("is_entry", "allows_new_entries", "allowed"),
    [(True, True, True), (True, False, False), (False, False, True), (False, True, True)],
)
def test_check_breaker(is_entry: bool, allows_new_entries: bool, allowed: bool) -> None:
    decision = check_breaker(is_entry, allows_new_entries, "ACTIVE" if allows_new_entries else "HALTED")
    assert decision.allowed is allowed
    assert decision.reason is (None if allowed else DenyReason.BREAKER_HALTED)


@pytest.mark.parametrize(("held", "allowed"), [(10.0, True), (1e-6, True), (0.0, False), (1e-12, False)])
def test_check_holding(held: float, allowed: bool) -> None:
    assert check_holding(held).allowed is allowed


@pytest.mark.parametrize(
    ("notional", "minimum", "closes", "allowed"),
    [(5.0, 1.0, False, True), (1.0, 1.0, False, True), (0.99, 1.0, False, False), (0.5, 1.0, True, True)],
)
def test_check_min_order(notional: float, minimum: float, closes: bool, allowed: bool) -> None:
    decision = check_min_order(notional, minimum, closes)
    assert decision.allowed is allowed
    assert decision.parameter == "min_order_size"


@pytest.mark.parametrize(
    ("notional", "maximum", "allowed"),
    [(49.0, 50.0, True), (50.0, 50.0, True), (50.0 + 1e-12, 50.0, True), (50.01, 50.0, False)],
)
def test_check_max_order(notional: float, maximum: float, allowed: bool) -> None:
    decision = check_max_order(notional, maximum)
    assert decision.allowed is allowed
    assert decision.reason is (None if allowed else DenyReason.MAX_ORDER_SIZE)


@pytest.mark.parametrize(
    ("current", "order", "limit", "allowed"),
    [(0.0, 50.0, 200.0, True), (150.0, 50.0, 200.0, True), (150.01, 50.0, 200.0, False), (200.0, 1.0, 200.0, False)],
)
def test_check_position_limit(current: float, order: float, limit: float, allowed: bool) -> None:
    decision = check_position_limit(current, order, limit)
    assert decision.allowed is allowed
    assert decision.figures["after"] == pytest.approx(current + order)


@pytest.mark.parametrize(
    ("total", "order", "limit", "allowed"),
    [(0.0, 50.0, 800.0, True), (750.0, 50.0, 800.0, True), (760.0, 50.0, 800.0, False)],
)
def test_check_total_exposure(total: float, order: float, limit: float, allowed: bool) -> None:
    decision = check_total_exposure(total, order, limit)
    assert decision.allowed is allowed
    assert decision.reason is (None if allowed else DenyReason.MAX_TOTAL_EXPOSURE)


@pytest.mark.parametrize(
    ("open_positions", "adds", "limit", "allowed"),
    [(0, True, 1, True), (1, True, 1, False), (1, False, 1, True), (9, True, 10, True), (10, True, 10, False)],
)
def test_check_open_positions(open_positions: int, adds: bool, limit: int, allowed: bool) -> None:
    assert check_open_positions(open_positions, adds, limit).allowed is allowed


@pytest.mark.parametrize(
    ("fill", "allowed"),
    [
        (BookFill(10.0, 10.0, 5.0, 0.5), True),
        (BookFill(10.0, 9.0, 4.5, 0.5), False),
        (BookFill(10.0, 0.0, 0.0, None), False),
        (BookFill(0.0, 0.0, 0.0, None), False),
    ],
)
def test_check_liquidity(fill: BookFill, allowed: bool) -> None:
    decision = check_liquidity(fill)
    assert decision.allowed is allowed
    assert decision.reason is (None if allowed else DenyReason.INSUFFICIENT_LIQUIDITY)


@pytest.mark.parametrize(
    ("cash", "cost", "allowed"), [(None, 1e9, True), (100.0, 100.0, True), (100.0, 100.01, False), (0.0, 0.01, False)]
)
def test_check_balance(cash: float | None, cost: float, allowed: bool) -> None:
    assert check_balance(cash, cost).allowed is allowed


@pytest.mark.parametrize(
    ("side", "avg", "trade_price", "best", "limit", "allowed"),
    [
        (Side.BUY, 0.51, 0.51, 0.51, 0.02, True),  # at the copied price
        (Side.BUY, 0.52, 0.51, 0.51, 0.02, True),  # 1.96 % worse: inside 2 %
        (Side.BUY, 0.53, 0.51, 0.53, 0.02, False),  # the market moved away from the copied price
        (Side.BUY, 0.56, 0.60, 0.50, 0.02, False),  # a thin book: 12 % worse than the best ask
        (Side.BUY, 0.50, 0.60, 0.50, 0.02, True),  # the market moved our way
        (Side.SELL, 0.49, 0.49, 0.49, 0.02, True),
        (Side.SELL, 0.45, 0.49, 0.45, 0.02, False),
        (Side.SELL, 0.55, 0.49, 0.55, 0.02, True),
    ],
)
def test_check_slippage(side: Side, avg: float, trade_price: float, best: float, limit: float, allowed: bool) -> None:
    fill = BookFill(10.0, 10.0, 10.0 * avg, avg)
    decision = check_slippage(side, fill, trade_price, best, limit)
    assert decision.allowed is allowed
    assert decision.reason is (None if allowed else DenyReason.MAX_SLIPPAGE)


def test_check_slippage_denies_an_empty_side() -> None:
    decision = check_slippage(Side.BUY, BookFill(10.0, 0.0, 0.0, None), 0.5, None, 0.02)
    assert decision.reason is DenyReason.MAX_SLIPPAGE


@pytest.mark.parametrize(
    ("times", "now", "limit", "allowed"),
    [
        ([], 0.0, 1, True),
        ([0.0], 0.0, 1, False),
        ([0.0], 59.99, 1, False),
        ([0.0], 60.0, 1, True),  # the window slides: a minute later the slot is free again
        ([0.0, 30.0], 61.0, 2, True),
        ([10.0, 20.0, 30.0], 40.0, 3, False),
    ],
)
def test_check_order_rate(times: list[float], now: float, limit: int, allowed: bool) -> None:
    decision = check_order_rate(times, now, limit)
    assert decision.allowed is allowed
    assert decision.reason is (None if allowed else DenyReason.MAX_ORDERS_PER_MINUTE)


@pytest.mark.parametrize(
    ("avg", "mark", "stop", "keep"),
    [(0.50, 0.45, 0.25, True), (0.50, 0.375, 0.25, False), (0.50, 0.30, 0.25, False), (0.50, None, 0.25, True)],
)
def test_check_stop_loss(avg: float, mark: float | None, stop: float, keep: bool) -> None:
    assert check_stop_loss(avg, mark, stop).allowed is keep


# --- sizing and book walking --------------------------------------------------------------------------


def test_plan_scales_buys_and_caps_them_to_max_order_notional() -> None:
    plan = plan_copy_order(Side.BUY, 100.0, 0.1, 0.0, book(), 50.0)
    assert (plan.size, plan.capped_by) == (pytest.approx(10.0), None)
    capped = plan_copy_order(Side.BUY, 1000.0, 1.0, 0.0, book(), 50.0)
    assert capped.capped_by == "max_order_size"
    assert capped.fill.notional == pytest.approx(50.0)
    assert capped.fill.complete


def test_plan_sells_only_what_is_held() -> None:
    plan = plan_copy_order(Side.SELL, 100.0, 1.0, 20.0, book(), 50.0)
    assert (plan.size, plan.capped_by, plan.closes_position) == (20.0, "holding", True)
    partial = plan_copy_order(Side.SELL, 5.0, 1.0, 20.0, book(), 50.0)
    assert (partial.size, partial.capped_by, partial.closes_position) == (5.0, None, False)


def test_walk_book_by_size_reports_average_and_worst_price() -> None:
    fill = walk_book_by_size(levels((0.50, 10), (0.60, 10)), 15.0)
    assert (fill.filled_size, fill.worst_price) == (15.0, 0.60)
    assert fill.avg_price == pytest.approx((5.0 + 3.0) / 15.0)


price_st = st.integers(min_value=1, max_value=99).map(lambda t: t / 100)
levels_st = st.lists(st.tuples(price_st, st.floats(0.01, 1000.0)), max_size=8).map(
    lambda pairs: tuple(BookLevel(p, s) for p, s in sorted(pairs))
)


@given(levels_st, st.floats(0.01, 5000.0))
def test_walk_by_notional_never_spends_more_than_the_budget(book_levels: tuple[BookLevel, ...], budget: float) -> None:
    fill = walk_book_by_notional(book_levels, budget)
    assert fill.notional <= budget + 1e-6
    assert fill.filled_size <= sum(level.size for level in book_levels) + 1e-6
    if fill.complete:
        assert fill.notional == pytest.approx(budget, rel=1e-6)


@given(levels_st, st.floats(0.01, 10_000.0), st.floats(1.0, 100.0))
def test_a_planned_buy_never_exceeds_max_order_size(asks: tuple[BookLevel, ...], size: float, cap: float) -> None:
    plan = plan_copy_order(Side.BUY, size, 1.0, 0.0, OrderBook(TOKEN, (), asks), cap)
    assert plan.fill.notional <= cap + EPSILON * 10
    assert plan.size <= size + 1e-9


# --- the copy path end to end: paper client + real circuit breaker -------------------------------------


async def test_buy_is_scaled_by_copy_ratio_and_booked(tmp_path: Path) -> None:
    executor = make_executor(tmp_path, copy_ratio=0.5)
    result = await executor.execute_copy(trade(size=40.0))

    assert result.status is ExecutionStatus.EXECUTED
    assert result.reason == ""
    assert result.ack is not None and result.ack.filled_size == pytest.approx(20.0)
    assert result.latency_ms == pytest.approx(1.5)
    monitor = await executor.monitor_risk_parameters()
    assert monitor["positions"][0]["size"] == pytest.approx(20.0)
    assert monitor["exposure"]["total"] == pytest.approx(20.0 * 0.51)
    assert monitor["cash"] == pytest.approx(1000.0 - 20.0 * 0.51)
    assert monitor["equity"] == pytest.approx(1000.0 - 20.0 * 0.51 + 20.0 * 0.50)  # marked at the book mid
    metrics = await executor.get_performance_metrics()
    assert metrics["trades"] == {"executed": 1, "denied": 0, "failed": 0}
    assert metrics["latency_ms"]["count"] == 1


async def test_arrival_to_ack_covers_the_wait_before_the_decision(tmp_path: Path) -> None:
    """Issue 10: arrival -> ack (stamped by the bot when the poll brought the trade) is published beside
    decision -> ack, for acked orders only; a denied copy adds nothing."""
    executor = make_executor(tmp_path)
    arrival = executor.now_ns()  # StepTimer: 1.5 ms per reading
    executor.now_ns()  # time passes before the copy starts (an earlier trade of the same poll)
    result = await executor.execute_copy(trade(), arrival)
    assert result.latency_ms == pytest.approx(1.5)
    metrics = await executor.get_performance_metrics()
    assert metrics["arrival_latency_ms"]["count"] == 1
    assert metrics["arrival_latency_ms"]["p99"] > metrics["latency_ms"]["p99"]
    await executor.execute_copy(trade(price=math.nan), executor.now_ns())  # denied: no ack, no figure
    assert executor.snapshot()["arrival_latency_ms"]["count"] == 1


async def test_a_big_buy_is_capped_to_max_order_size(tmp_path: Path) -> None:
    executor = make_executor(tmp_path, max_order_size=50.0)
    result = await executor.execute_copy(trade(size=1000.0))
    assert result.status is ExecutionStatus.EXECUTED
    assert result.reason == "capped_by_max_order_size"
    assert result.ack is not None and result.ack.notional == pytest.approx(50.0)


async def test_sells_copy_only_what_we_hold_and_feed_realized_pnl(tmp_path: Path) -> None:
    executor = make_executor(tmp_path)
    await executor.execute_copy(trade(size=20.0))
    result = await executor.execute_copy(trade(Side.SELL, size=100.0, price=0.49))

    assert result.status is ExecutionStatus.EXECUTED
    assert result.order is not None and result.order.size == pytest.approx(20.0)
    assert result.realized_pnl == pytest.approx((0.49 - 0.51) * 20.0)
    assert executor.portfolio.positions == {}
    assert executor.breaker.get_state()["consecutive_losses"] == 1


async def test_a_sell_of_nothing_held_is_denied_and_never_sent(tmp_path: Path) -> None:
    executor = make_executor(tmp_path)
    result = await executor.execute_copy(trade(Side.SELL))
    assert (result.status, result.reason) == (ExecutionStatus.DENIED, "no_position")
    assert executor.clob.balance == 1000.0  # type: ignore[attr-defined]


async def test_halted_breaker_blocks_buys_but_lets_sells_through(tmp_path: Path) -> None:
    executor = make_executor(tmp_path, max_daily_loss=10.0)
    assert (await executor.execute_copy(trade(size=20.0))).status is ExecutionStatus.EXECUTED
    executor.breaker.update_equity(900.0)  # a 100 USDC drop against the day's start trips the daily loss
    assert not executor.breaker.allows_new_entries()

    buy = await executor.execute_copy(trade(size=20.0))
    sell = await executor.execute_copy(trade(Side.SELL, size=20.0, price=0.49))

    assert (buy.status, buy.reason) == (ExecutionStatus.DENIED, "breaker_halted")
    assert sell.status is ExecutionStatus.EXECUTED
    report = await executor.get_risk_parameter_usage_report()
    assert report["circuit_breaker"]["denials"] == 1
    assert report["parameters"]["max_daily_loss"]["denials"] == 1


async def test_rate_limit_denies_and_never_queues(tmp_path: Path) -> None:
    clock = FakeClock()
    executor = make_executor(tmp_path, clock=clock, max_orders_per_minute=2)
    results = []
    for second in (0.0, 1.0, 2.0):
        clock.now = second
        results.append(await executor.execute_copy(trade(size=10.0)))
    assert [r.status for r in results] == [ExecutionStatus.EXECUTED, ExecutionStatus.EXECUTED, ExecutionStatus.DENIED]
    assert results[2].reason == "max_orders_per_minute"
    clob: PaperClobClient = executor.clob  # type: ignore[assignment]
    assert clob.positions()[TOKEN] == pytest.approx(20.0)

    clock.now = 60.0  # the first submit leaves the window; the denied order was dropped, not held back
    await asyncio.sleep(0)
    assert clob.positions()[TOKEN] == pytest.approx(20.0)
    assert (await executor.execute_copy(trade(size=10.0))).status is ExecutionStatus.EXECUTED
    assert clob.positions()[TOKEN] == pytest.approx(30.0)


@pytest.mark.parametrize("kind", ["rate_limit", "timeout", "rejected", "network"])
async def test_each_clob_error_kind_is_counted_and_fed_to_the_breaker(tmp_path: Path, kind: str) -> None:
    settings = make_settings(tmp_path, error_burst_count=2)
    clob = PaperClobClient(settings, books={TOKEN: book()}, error_rate=1.0, error_kinds=[kind])
    executor = make_executor(tmp_path, clob=clob, error_burst_count=2)

    results = [await executor.execute_copy(trade()) for _ in range(2)]

    assert [(r.status, r.reason) for r in results] == [(ExecutionStatus.FAILED, f"clob_{kind}")] * 2
    errors = (await executor.get_performance_metrics())["errors"]
    assert errors[kind] == 2 and errors["total"] == 2
    state = executor.breaker.get_state()
    assert (state["state"], state["trip_kind"]) == ("HALTED", "error_burst")
    assert executor.portfolio.positions == {}


async def test_an_unclassified_clob_error_counts_as_other(tmp_path: Path) -> None:
    executor = make_executor(tmp_path)
    await executor.clob.close()  # a closed paper client raises the base ClobError
    result = await executor.execute_copy(trade())
    assert (result.status, result.reason) == (ExecutionStatus.FAILED, "clob_other")
    assert (await executor.get_performance_metrics())["errors"]["other"] == 1


class MovingMarketClob(PaperClobClient):
    """The paper client, with the market jumping away between our book read and our order."""

    async def get_order_book(self, token_id: str) -> OrderBook:
        seen = await super().get_order_book(token_id)
        self.set_book(book(token_id, asks=((0.70, 500),)))
        return seen


async def test_an_order_the_market_ran_away_from_is_unfilled_not_booked(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    executor = make_executor(tmp_path, clob=MovingMarketClob(settings, books={TOKEN: book()}))
    result = await executor.execute_copy(trade())
    assert (result.status, result.reason) == (ExecutionStatus.FAILED, "unfilled")
    assert result.latency_ms == pytest.approx(1.5)  # it was acknowledged
    assert executor.portfolio.positions == {}
    assert (await executor.get_performance_metrics())["errors"]["total"] == 0


@pytest.mark.parametrize(
    ("overrides", "the_trade", "balance", "reason"),
    [
        ({"min_order_size": 5.0}, trade(size=5.0), 1000.0, "min_order_size"),
        ({"max_total_exposure": 10.0}, trade(size=40.0), 1000.0, "max_total_exposure"),
        ({"max_slippage": 0.02}, trade(price=0.40), 1000.0, "max_slippage"),
        ({}, trade(size=10.0, token_id=THIN_TOKEN), 1000.0, "insufficient_liquidity"),
        ({}, trade(size=20.0), 3.0, "insufficient_balance"),
        ({}, trade(price=1.5), 1000.0, "invalid_trade"),
        ({}, trade(size=-5.0), 1000.0, "invalid_trade"),
    ],
)
async def test_single_trade_denials(
    tmp_path: Path, overrides: dict[str, Any], the_trade: WalletTrade, balance: float, reason: str
) -> None:
    books = (book(), book(THIN_TOKEN, asks=((0.51, 5.0),)))
    executor = make_executor(tmp_path, books=books, balance=balance, **overrides)
    result = await executor.execute_copy(the_trade)
    assert (result.status, result.reason) == (ExecutionStatus.DENIED, reason)
    assert executor.clob.balance == balance  # type: ignore[attr-defined]
    assert (await executor.get_performance_metrics())["denials"] == {reason: 1}


async def test_position_limit_counts_what_is_already_held(tmp_path: Path) -> None:
    executor = make_executor(tmp_path, max_order_size=15.0, max_position_size=20.0)
    assert (await executor.execute_copy(trade(size=20.0))).status is ExecutionStatus.EXECUTED
    second = await executor.execute_copy(trade(size=20.0))
    assert (second.status, second.reason) == (ExecutionStatus.DENIED, "max_position_size")
    assert second.figures["current"] == pytest.approx(executor.portfolio.position_notional(TOKEN))


async def test_open_positions_limit_only_blocks_new_tokens(tmp_path: Path) -> None:
    executor = make_executor(tmp_path, max_open_positions=1)
    await executor.execute_copy(trade(size=10.0))
    other = await executor.execute_copy(trade(size=10.0, token_id=OTHER_TOKEN))
    same = await executor.execute_copy(trade(size=10.0))
    assert (other.status, other.reason) == (ExecutionStatus.DENIED, "max_open_positions")
    assert same.status is ExecutionStatus.EXECUTED


async def test_concurrent_copies_cannot_share_the_same_headroom(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, max_total_exposure=15.0)
    clob = PaperClobClient(settings, books={TOKEN: book()}, latency_ms=1.0)  # a real await inside each call
    executor = make_executor(tmp_path, clob=clob, max_total_exposure=15.0)
    results = await asyncio.gather(*(executor.execute_copy(trade(size=20.0)) for _ in range(2)))
    assert sorted(r.status.value for r in results) == ["denied", "executed"]
    assert executor.portfolio.total_exposure <= 15.0


async def test_stop_loss_exits_a_position_even_when_halted(tmp_path: Path) -> None:
    executor = make_executor(tmp_path, stop_loss=0.2, max_slippage=0.5, max_daily_loss=5.0)
    await executor.execute_copy(trade(size=20.0))
    assert await executor.enforce_stop_losses() == []  # mid 0.50 vs cost 0.51: holding
    clob: PaperClobClient = executor.clob  # type: ignore[assignment]
    clob.set_book(book(bids=((0.35, 500),), asks=((0.37, 500),)))
    executor.breaker.update_equity(900.0)
    results = await executor.enforce_stop_losses()
    assert [(r.status, r.reason) for r in results] == [(ExecutionStatus.EXECUTED, "stop_loss")]
    assert executor.portfolio.positions == {}
    report = await executor.get_risk_parameter_usage_report()
    assert report["parameters"]["stop_loss"]["denials"] == 1


# --- the readers --------------------------------------------------------------------------------------


async def test_monitor_risk_parameters_is_read_only(tmp_path: Path) -> None:
    executor = make_executor(tmp_path, max_order_size=20.0, max_position_size=20.0)
    await executor.execute_copy(trade(size=10.0))
    first = await executor.monitor_risk_parameters()
    pristine = copy.deepcopy(first)
    first["risk_parameters"]["max_position_size"] = 1e9
    first["positions"][0]["size"] = 0.0
    first["exposure"]["by_market"].clear()
    first["exposure"]["total"] = 0.0

    second = await executor.monitor_risk_parameters()
    second.pop("memory"), pristine.pop("memory")
    assert second == pristine
    denied = await executor.execute_copy(trade(size=40.0))  # the limits in force did not move
    assert denied.reason == "max_position_size"


async def test_performance_metrics_shape(tmp_path: Path) -> None:
    executor = make_executor(tmp_path, min_order_size=5.0)
    await executor.execute_copy(trade(size=20.0))
    await executor.execute_copy(trade(size=1.0))
    metrics = await executor.get_performance_metrics()
    assert set(metrics["latency_ms"]) >= {"p50", "p95", "p99", "max", "count"}
    assert metrics["trades"] == {"executed": 1, "denied": 1, "failed": 0}
    assert metrics["denials"] == {"min_order_size": 1}
    assert set(metrics["errors"]) >= {"rate_limit", "timeout", "rejected", "network", "total"}


@pytest.mark.parametrize(
    ("coverage", "impact", "meets"),
    [(0.90, "none", True), (0.85, "none", True), (0.70, "warning", False), (0.5, "critical", False)],
)
async def test_coverage_impact(tmp_path: Path, coverage: float, impact: str, meets: bool) -> None:
    executor = make_executor(tmp_path, mcp_testing_coverage_target=0.85)
    before = executor.snapshot()
    report = await executor.check_mcp_test_coverage_impact(coverage)
    assert (report["impact"], report["meets_threshold"], report["threshold"]) == (impact, meets, 0.85)
    assert "core/trade_executor.py" in report["risk_files"]
    assert report["trading_affected"] is False
    assert without_volatile(executor.snapshot()) == without_volatile(before)


@pytest.mark.parametrize("coverage", [1.0, 0.85, 0.84, 0.68, 0.6799, 0.0])
async def test_executor_and_breaker_grade_coverage_with_the_one_rule(tmp_path: Path, coverage: float) -> None:
    # issue 12: one coverage rule; the executor's `impact` and the breaker's persisted `level` are its verdict
    executor = make_executor(tmp_path, mcp_testing_coverage_target=0.85)
    verdict = coverage_verdict(coverage, 0.85)

    report = await executor.check_mcp_test_coverage_impact(coverage)
    await executor.breaker.check_mcp_test_coverage(coverage, 0.85)
    record = executor.breaker.get_mcp_integration_state()

    assert report["impact"] == {"ok": "none", "below_threshold": "warning", "critical": "critical"}[verdict]
    assert report["meets_threshold"] is record["last_coverage_check"]["ok"] is (verdict is CoverageVerdict.OK)
    assert record["last_coverage_check"]["level"] == str(verdict)
    assert report["critical_below"] == record["last_coverage_check"]["critical_below"]
    assert report["critical_below"] == record["critical_coverage_below"]


@pytest.mark.parametrize("coverage", [1.5, -0.1, math.nan, "0.9", True, None])
async def test_coverage_impact_rejects_a_bad_figure(tmp_path: Path, coverage: Any) -> None:
    executor = make_executor(tmp_path)
    with pytest.raises(ValueError, match=r"coverage must be a fraction within \[0, 1\] \(0.85 means 85 %\), received"):
        await executor.check_mcp_test_coverage_impact(coverage)


async def test_usage_report_counts_checks_and_denials(tmp_path: Path) -> None:
    executor = make_executor(tmp_path, max_total_exposure=15.0)
    await executor.execute_copy(trade(size=20.0))  # 10.2 USDC
    await executor.execute_copy(trade(size=20.0))  # would make 20.4: denied
    report = await executor.get_risk_parameter_usage_report()
    exposure = report["parameters"]["max_total_exposure"]
    assert exposure == {
        "value": 15.0,
        "source": "settings.max_total_exposure",
        "env": "MAX_TOTAL_EXPOSURE",
        "enforced_by": "trade_executor",
        "checks": 2,
        "denials": 1,
    }
    assert report["parameters"]["max_slippage"]["checks"] == 1  # the denial stopped the later checks
    assert report["total_denials"] == 1


class CountingProcess:
    """psutil.Process-shaped: counts how often memory_info (a syscall in real life) is called."""

    def __init__(self) -> None:
        self.calls = 0

    def memory_info(self) -> Any:
        self.calls += 1
        return type("MemInfo", (), {"rss": 64 * 1024 * 1024})()


def test_rss_is_sampled_at_most_every_few_seconds(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    clock, process = FakeClock(), CountingProcess()
    executor = TradeExecutor(
        PaperClobClient(settings),
        settings=settings,
        circuit_breaker=make_breaker(settings),
        clock=clock,
        process=process,
    )
    for _ in range(100):
        assert executor.snapshot()["rss_mb"] == 64.0
    assert process.calls == 1
    clock.now = 5.0
    executor.snapshot()
    assert process.calls == 2


async def test_snapshot_is_a_valid_masked_risk_snapshot(tmp_path: Path) -> None:
    executor = make_executor(tmp_path)
    await executor.execute_copy(trade(size=20.0))
    path = tmp_path / "state" / "risk_state.json"
    assert await RiskSnapshotWriter(path).publish(executor.snapshot(), force=True)
    snapshot = read_risk_snapshot(path)
    assert snapshot["trading_state"] == "ACTIVE"
    assert snapshot["wallet"] == "***abcdef"
    assert snapshot["positions"][0]["token_id"] == TOKEN
    assert snapshot["exposure"]["by_market"][TOKEN] == pytest.approx(20.0 * 0.51)
    assert snapshot["trades"]["executed"] == 1
    assert not contains_full_address(path.read_text())


async def test_default_construction_needs_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # a fresh machine: no .env, no state/ folder
    get_settings.cache_clear()
    try:
        executor = TradeExecutor()
        assert isinstance(executor.clob, PaperClobClient)
        assert isinstance(executor.breaker, CircuitBreaker)
        assert (tmp_path / "state").is_dir()
        result = await executor.execute_copy(trade(size=20.0, token_id="fresh-token", price=0.5))
        # the paper book of a token never seen is seeded around the copied price, so the copy can happen
        assert (await executor.clob.get_order_book("fresh-token")).mid() == pytest.approx(0.5, abs=0.011)
        assert result.status is ExecutionStatus.EXECUTED, result.reason
        await executor.close()
        with pytest.raises(ClobError):
            await executor.clob.get_balance()
    finally:
        get_settings.cache_clear()


async def test_paper_books_are_seeded_at_the_copied_price_only_when_asked(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    clob = PaperClobClient(settings, books={TOKEN: book()})
    executor = TradeExecutor(clob, settings=settings, circuit_breaker=make_breaker(settings), seed_paper_books=True)
    await executor.execute_copy(trade(token_id="new-token", price=0.23))
    assert (await clob.get_order_book("new-token")).mid() == pytest.approx(0.23, abs=0.011)

    untouched = make_executor(tmp_path / "b")  # an injected client keeps the books it was given
    denied = await untouched.execute_copy(trade(price=0.30))
    assert denied.reason == "max_slippage"
    assert (await untouched.clob.get_order_book(TOKEN)).best_ask() == 0.51
