"""Builders for the trading-view tests: a real trade ledger written through core.ledger.TradeLedger and a
risk snapshot written like the bot writes it, in a temporary STATE_DIR.

The records are stamped a few minutes before now: the reader's "today" is the real current day.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from core.ledger import FillRecord, OutcomeRecord, TradeLedger
from core.risk_snapshot import risk_snapshot_path
from utils.atomic import atomic_write_json

WALLET_A = "0x" + "ab" * 17 + "a1a1a1"
WALLET_B = "0x" + "cd" * 17 + "b2b2b2"
RAIN = "tok-rain-0001"
# a real Polymarket token id is a 78-digit number: the page shows it as …last 6
ELECTION = "71321045679252212594626385532706912750332728571942532289631379312455583992563"
RAIN_TITLE = "Will it rain in Paris on Friday?"
ELECTION_TITLE = "Will the incumbent win the election?"
LIMITS = {"max_daily_loss": 50.0, "max_position_size": 100.0, "max_total_exposure": 400.0}


class SteppingClock:
    """Starts `start` seconds ago and moves 1 s per reading, so every record has its own moment."""

    def __init__(self, start: float = 300.0) -> None:
        self.now = time.time() - start

    def __call__(self) -> float:
        self.now += 1.0
        return self.now


def _seen(ledger: TradeLedger, tx: str, wallet: str, token: str, title: str, outcome: str, side: str,
          size: float, price: float) -> int | None:  # fmt: skip
    return ledger.record_seen_sync(
        wallet=wallet, tx_hash=tx, token_id=token, market="0xmarket-" + token[-4:], title=title,
        outcome=outcome, side=side, size=size, price=price, traded_at=time.time() - 400,
    )  # fmt: skip


def _filled(token: str, title: str, outcome: str, side: str, size: float, price: float, *, realized: float,
            marks: dict[str, float], equity: float, cash: float, latency: float) -> OutcomeRecord:  # fmt: skip
    return OutcomeRecord(
        token, side, "executed", "", latency_ms=latency, market="0xmarket-" + token[-4:], title=title,
        outcome=outcome, client_order_id=f"copy-{token[-4:]}-{side}-{size}", order_size=size, limit_price=price,
        exchange_order_id="paper-1", order_status="FILLED", fill=FillRecord(size, price, 0.01, realized),
        marks=marks, equity=equity, cash=cash,
    )  # fmt: skip


def _denied(token: str, side: str, reason: str) -> OutcomeRecord:
    return OutcomeRecord(token, side, "denied", reason, deny_reasons=(reason,), latency_ms=0.4)


def build_ledger(state_dir: Path) -> Path:
    """Five followed trades from two wallets: three copied (one a partial sell), two denied."""
    state_dir.mkdir(parents=True, exist_ok=True)
    ledger = TradeLedger(state_dir / "ledger.db", clock=SteppingClock())
    ledger.open()
    try:
        ledger.ensure_account("paper", 1000.0)
        t1 = _seen(ledger, "0xtx1", WALLET_A, RAIN, RAIN_TITLE, "Yes", "BUY", 200.0, 0.5)
        ledger.record_outcome_sync(
            t1, _filled(RAIN, RAIN_TITLE, "Yes", "BUY", 20.0, 0.5, realized=0.0, marks={RAIN: 0.55},
                        equity=1000.99, cash=989.99, latency=4.2),
        )  # fmt: skip
        t2 = _seen(ledger, "0xtx2", WALLET_B, ELECTION, ELECTION_TITLE, "No", "BUY", 5000.0, 0.3)
        ledger.record_outcome_sync(t2, _denied(ELECTION, "BUY", "max_position_size"))
        t3 = _seen(ledger, "0xtx3", WALLET_A, ELECTION, ELECTION_TITLE, "No", "BUY", 100.0, 0.3)
        ledger.record_outcome_sync(
            t3, _filled(ELECTION, ELECTION_TITLE, "No", "BUY", 10.0, 0.3, realized=0.0,
                        marks={RAIN: 0.55, ELECTION: 0.25}, equity=1000.48, cash=986.98, latency=6.8),
        )  # fmt: skip
        t4 = _seen(ledger, "0xtx4", WALLET_A, RAIN, RAIN_TITLE, "Yes", "SELL", 50.0, 0.6)
        ledger.record_outcome_sync(
            t4, _filled(RAIN, RAIN_TITLE, "Yes", "SELL", 5.0, 0.6, realized=0.5, marks={RAIN: 0.6},
                        equity=1001.22, cash=989.97, latency=5.1),
        )  # fmt: skip
        t5 = _seen(ledger, "0xtx5", WALLET_B, RAIN, RAIN_TITLE, "Yes", "BUY", 900.0, 0.6)
        ledger.record_outcome_sync(t5, _denied(RAIN, "BUY", "max_orders_per_minute"))
    finally:
        ledger.close()
    return state_dir / "ledger.db"


def write_snapshot(state_dir: Path, **overrides: Any) -> None:
    """A risk snapshot as the bot publishes it (only the keys the trading view reads, plus the schema)."""
    now = time.time()
    payload: dict[str, Any] = {
        "schema_version": 1,
        "pid": 1,
        "updated_at": time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(now)),
        "updated_at_epoch": now,
        "trading_mode": "paper",
        "trading_state": "ACTIVE",
        "wallet": "***ffffff",
        "breaker": {},
        "risk_parameters": dict(LIMITS),
        "exposure": {"total": 0.0, "by_market": {}},
        "positions": [],
        "latency_ms": {},
        "errors": {},
        "trades": {},
    }
    payload.update(overrides)
    state_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_json(risk_snapshot_path(state_dir), payload)
