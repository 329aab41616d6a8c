"""Positions at cost, realized P&L on sells, equity marked to the last mid."""

from __future__ import annotations

import pytest

from core.clob.base import Side
from core.portfolio import Portfolio


def test_buys_average_in_and_sells_realize_against_the_average() -> None:
    portfolio = Portfolio(cash=100.0)
    assert portfolio.apply_fill("t", "m", Side.BUY, 10.0, 0.40).opened
    assert not portfolio.apply_fill("t", "m", Side.BUY, 10.0, 0.60).opened
    assert portfolio.positions["t"].avg_price == pytest.approx(0.50)
    assert portfolio.total_exposure == pytest.approx(10.0)
    assert portfolio.cash == pytest.approx(90.0)

    outcome = portfolio.apply_fill("t", "m", Side.SELL, 5.0, 0.70)
    assert outcome.realized_pnl == pytest.approx(1.0)
    assert not outcome.closed
    assert portfolio.total_exposure == pytest.approx(7.5)
    closing = portfolio.apply_fill("t", "m", Side.SELL, 15.0, 0.30)
    assert closing.closed and closing.realized_pnl == pytest.approx(-3.0)
    assert portfolio.positions == {}
    assert portfolio.realized_pnl == pytest.approx(-2.0)
    assert portfolio.cash == pytest.approx(100.0 - 2.0)


def test_equity_marks_positions_at_the_last_mid() -> None:
    portfolio = Portfolio()
    assert portfolio.equity() is None  # cash unknown until the balance is read
    portfolio.cash = 50.0
    portfolio.apply_fill("t", "m", Side.BUY, 10.0, 0.50)
    portfolio.mark("t", 0.40)
    portfolio.mark("t", None)  # an empty book leaves the mark alone
    portfolio.mark("unknown", 0.9)
    assert portfolio.equity() == pytest.approx(45.0 + 4.0)


def test_a_sell_without_a_position_is_refused() -> None:
    with pytest.raises(ValueError, match="no position is held"):
        Portfolio(cash=1.0).apply_fill("t", "m", Side.SELL, 1.0, 0.5)


def test_reports_are_fresh_copies() -> None:
    portfolio = Portfolio(cash=10.0)
    portfolio.apply_fill("t", "m", Side.BUY, 2.0, 0.5)
    portfolio.positions_list()[0]["size"] = 99.0
    portfolio.exposure_by_market()["t"] = 99.0
    assert portfolio.positions["t"].size == 2.0
    assert portfolio.exposure_by_market() == {"t": 1.0}
