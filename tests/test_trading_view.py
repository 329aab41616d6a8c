"""The trading view's pure figures and phone texts, over a real ledger written by core.ledger.TradeLedger."""

from __future__ import annotations

import asyncio
import math
from pathlib import Path
from typing import Any

import pytest

from core.ledger_view import LedgerReader
from mcp.trading.source import MAX_DAYS, MAX_TRADES, TradingSource
from mcp.trading.text import ago, daily_text, pnl_text, positions_text, trades_text
from mcp.trading.view import Limits, iso, masked, money, percent, short_id
from tests.trading_support import (
    ELECTION,
    ELECTION_TITLE,
    LIMITS,
    RAIN_TITLE,
    WALLET_A,
    WALLET_B,
    build_ledger,
    write_snapshot,
)

DEFAULTS = Limits(100.0, 200.0, 800.0)


def view_of(state_dir: Path, **kw: Any) -> dict[str, Any]:
    return asyncio.run(TradingSource(state_dir, DEFAULTS).view(**kw))


@pytest.fixture
def state_dir(tmp_path: Path) -> Path:
    build_ledger(tmp_path)
    write_snapshot(tmp_path)
    return tmp_path


# --- pure helpers ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("value", "expected"),
    [(1.52097, 1.52), (-0.004, 0.0), (2.005, 2.0), (None, None), (float("nan"), None), (True, None), ("3", None)],
)
def test_money_is_cents_and_unknown_stays_unknown(value: Any, expected: float | None) -> None:
    assert money(value) == expected


def test_percent_iso_and_ids() -> None:
    assert percent(25.0, 50.0) == 50.0 and percent(1.0, 0.0) is None and percent(None, 5.0) is None
    assert iso(1_796_600_824.7) == "2026-12-06T23:47:04Z" and iso(None) is None and iso(math.inf) is None
    assert short_id(ELECTION) == "…992563" and short_id("tok-rain-0001") == "tok-rain-0001"
    assert masked(WALLET_A) == "…a1a1a1" and masked("…a1a1a1") == "…a1a1a1"


@pytest.mark.parametrize(
    ("risk_parameters", "expected"),
    [
        (LIMITS, Limits(50.0, 100.0, 400.0)),
        ({"max_daily_loss": "lots", "max_position_size": -5, "max_total_exposure": None}, DEFAULTS),
        ("not a mapping", DEFAULTS),
    ],
)
def test_limits_come_from_the_snapshot_when_valid(risk_parameters: Any, expected: Limits) -> None:
    assert Limits.resolve({"risk_parameters": risk_parameters}, DEFAULTS) == expected
    assert Limits.resolve(None, DEFAULTS) == DEFAULTS


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0.4, "0 s ago"),
        (12, "12 s ago"),
        (125, "2 min ago"),
        (7300, "2 h ago"),
        (200000, "2 d ago"),
        (None, "at an unknown time"),
    ],
)
def test_ago(seconds: Any, text: str) -> None:
    assert ago(seconds) == text


# --- the view over a real ledger ---------------------------------------------------------------------
def test_the_view_agrees_with_the_ledger_reader(state_dir: Path) -> None:
    view = view_of(state_dir)
    reader = LedgerReader(state_dir / "ledger.db")
    try:
        pnl, positions, trades = reader.pnl(), reader.positions(), reader.recent_trades(10)
        wallets, curve = reader.followed_wallets(), reader.equity_curve()
    finally:
        reader.close()
    assert view["status"] == "ok" and view["trading_mode"] == "paper" and view["trading_state"] == "ACTIVE"
    block = view["pnl"]
    assert block["realized_pnl"] == round(pnl.realized_pnl, 2) == 0.5
    assert block["unrealized_pnl"] == round(pnl.unrealized_pnl, 2)
    assert block["total_pnl"] == round(pnl.realized_pnl + pnl.unrealized_pnl, 2)
    assert block["equity"] == round(pnl.equity, 2) and block["copies"] == 3 and block["denials"] == 2
    assert block["max_daily_loss"] == LIMITS["max_daily_loss"]  # the bot's own limit, from its snapshot
    by_title = {row["market_title"]: row for row in view["positions"]}
    assert set(by_title) == {p.market_title for p in positions} == {RAIN_TITLE, ELECTION_TITLE}
    for position in positions:
        row = by_title[position.market_title]
        assert (row["size"], row["avg_price"], row["mark"]) == (position.size, position.avg_price, position.mark)
        assert row["exposure"] == round(position.notional, 2) and row["exposure_limit"] == 100.0
    assert [row["decision"] for row in view["recent_trades"]] == [t.decision for t in trades]
    assert view["recent_trades"][0]["deny_reasons"] == ["max_orders_per_minute"]
    assert {w["wallet"]: (w["copied"], w["denied"]) for w in view["followed_wallets"]} == {
        "…a1a1a1": (3, 0),
        "…b2b2b2": (0, 2),
    }
    assert len(wallets) == 2 and len(view["equity_curve"]) == len(curve) == 3
    assert {r["reason"]: r["count"] for r in view["deny_reasons"]} == {
        "max_position_size": 1,
        "max_orders_per_minute": 1,
    }


def test_no_full_wallet_and_no_epoch_leaves_the_view(state_dir: Path) -> None:
    text = repr(view_of(state_dir))
    assert WALLET_A not in text and WALLET_B not in text
    assert "ab" * 17 not in text
    # times are ISO strings: no unix-seconds float anywhere
    assert all(not (isinstance(v, float) and v > 1e9) for v in _leaves(view_of(state_dir)))


def _leaves(value: Any) -> list[Any]:
    if isinstance(value, dict):
        return [leaf for item in value.values() for leaf in _leaves(item)]
    if isinstance(value, list):
        return [leaf for item in value for leaf in _leaves(item)]
    return [value]


def test_a_loss_fills_the_gauge(tmp_path: Path) -> None:
    build_ledger(tmp_path)
    write_snapshot(tmp_path, risk_parameters={**LIMITS, "max_daily_loss": 0.25})
    # the election position is 0.50 under water and the rain one 1.50 up: no loss, gauge empty
    assert view_of(tmp_path)["pnl"]["loss_limit_used_percent"] == 0.0
    from mcp.trading.view import LedgerFigures, pnl_block

    class Day:
        realized_pnl, unrealized_pnl, fees, copies, denials = -0.3, 0.1, 0.0, 1, 0
        cash = equity = day_start_equity = day = None

    block = pnl_block(Day(), Limits(0.25, 1.0, 1.0))
    assert (block["total_pnl"], block["daily_loss"], block["loss_limit_used_percent"]) == (-0.2, 0.2, 80.0)
    assert LedgerFigures().problem is None


def test_before_the_bot_starts_the_view_is_empty_and_says_why(tmp_path: Path) -> None:
    view = view_of(tmp_path)
    assert view["status"] == "no_ledger" and "no trade ledger yet" in view["message"]
    assert view["positions"] == [] and view["recent_trades"] == [] and view["pnl"]["total_pnl"] == 0.0
    assert view["snapshot_problem"]  # no snapshot either: the page says so
    assert asyncio.run(TradingSource(tmp_path, DEFAULTS).daily(3)) == []


def test_a_file_that_is_not_a_ledger_is_reported_not_raised(tmp_path: Path) -> None:
    (tmp_path / "ledger.db").write_bytes(b"this is not sqlite" * 100)
    view = view_of(tmp_path)
    assert view["status"] == "no_ledger" and "cannot read the trade ledger" in view["message"]


@pytest.mark.parametrize("trades", [0, -1, MAX_TRADES + 1])
def test_out_of_range_trade_counts_are_refused(tmp_path: Path, trades: int) -> None:
    with pytest.raises(ValueError, match=f"expected between 1 and {MAX_TRADES} trades, received {trades}"):
        view_of(tmp_path, trades=trades)


def test_out_of_range_day_counts_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=f"expected between 1 and {MAX_DAYS} days"):
        asyncio.run(TradingSource(tmp_path, DEFAULTS).daily(0))


# --- phone texts -------------------------------------------------------------------------------------
def test_phone_texts_carry_the_figures(state_dir: Path) -> None:
    view = view_of(state_dir)
    pnl = pnl_text(view)
    assert "P&L +1.50 USDC" in pnl and "realized +0.50" in pnl and "Loss limit: 0.00 of 50.00 used (0.0 %)" in pnl
    positions = positions_text(view)
    assert f"1. {RAIN_TITLE} — Yes" in positions and "exposure 7.50 of 100.00 (7.5 %)" in positions
    trades = trades_text(view)
    assert "→ denied: max_orders_per_minute" in trades and "→ copied 5 @ 0.6 in 5 ms" in trades
    assert "…b2b2b2 BUY 900 @ 0.6" in trades
    daily = daily_text(asyncio.run(TradingSource(state_dir, DEFAULTS).daily(7)))
    assert "+1.50 (+0.50) · 3/2" in daily
    assert max(len(line) for line in pnl.splitlines()) <= 48
    assert daily_text([]) == "No trading days in the ledger yet."


def test_the_gauge_uses_the_breakers_own_loss_when_published(tmp_path: Path) -> None:
    build_ledger(tmp_path)
    write_snapshot(tmp_path, breaker={"state": "ACTIVE", "daily_loss": 12.5})
    pnl = view_of(tmp_path)["pnl"]
    assert (pnl["daily_loss"], pnl["daily_loss_source"], pnl["loss_limit_used_percent"]) == (12.5, "breaker", 25.0)
    assert pnl["total_pnl"] == 1.5  # the day's P&L itself still comes from the ledger
    write_snapshot(tmp_path, breaker={"daily_loss": "n/a"})
    assert view_of(tmp_path)["pnl"]["daily_loss_source"] == "ledger"


@pytest.mark.parametrize(("count", "limit"), [(0, 5), (3, 5), (5, 5), (6, 5), (1000, 240), (241, 240)])
def test_thin_keeps_the_ends_and_the_limit(count: int, limit: int) -> None:
    from mcp.trading.view import thin

    points = list(range(count))
    kept = thin(points, limit)
    assert len(kept) == min(count, limit) and kept == sorted(set(kept))
    if count:
        assert kept[0] == 0 and kept[-1] == count - 1


def test_thin_refuses_a_limit_below_two() -> None:
    from mcp.trading.view import thin

    with pytest.raises(ValueError, match="at least 2 points, received 1"):
        thin([1, 2, 3], 1)
