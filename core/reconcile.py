"""Reconciling our books with the exchange (live mode), as pure decisions, and the gate a mismatch closes.

Ours: `Portfolio.positions` (shares per outcome token) and `Portfolio.cash` (USDC). The exchange's: the
Polymarket Data API's `/positions` for our wallet and the CLOB's collateral balance. A token mismatches
when the two sizes differ by more than RECONCILE_POSITION_TOLERANCE shares (a token missing on one side
counts as 0 there); collateral mismatches when the balances differ by more than RECONCILE_CASH_TOLERANCE
USDC (not compared while our cash is still unknown).

The Data API is indexed from the chain and can lag a fill by seconds, and a fill can land between reading
our books and reading the exchange's. So one look is not enough: a mismatch halts new entries only when a
second look, RECONCILE_CONFIRM_SECONDS later, still shows it (`confirm`). While halted, exits still pass;
the gate opens again at the first reconcile that finds the books in agreement.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

TOKEN_SHOWN_CHARS = 8


@dataclass(frozen=True, slots=True)
class PositionGap:
    """One token whose size differs beyond the tolerance: ours and the exchange's, in shares."""

    token_id: str
    market: str
    ours: float
    exchange: float

    @property
    def difference(self) -> float:
        return self.exchange - self.ours

    def describe(self) -> str:
        name = self.market or "unknown market"
        token = self.token_id[-TOKEN_SHOWN_CHARS:]
        return f"{name} (token …{token}): ours {self.ours:.4f}, exchange {self.exchange:.4f} shares"


@dataclass(frozen=True, slots=True)
class CashGap:
    """Collateral that differs beyond the tolerance, in USDC."""

    ours: float
    exchange: float

    def describe(self) -> str:
        return f"collateral: ours {self.ours:.2f}, exchange {self.exchange:.2f} USDC"


@dataclass(frozen=True, slots=True)
class ReconcileResult:
    """The outcome of one comparison: every gap found (none: the books agree)."""

    checked_at: datetime
    gaps: tuple[PositionGap, ...] = ()
    cash_gap: CashGap | None = None
    compared_tokens: int = 0

    @property
    def ok(self) -> bool:
        return not self.gaps and self.cash_gap is None

    @property
    def markets(self) -> list[str]:
        """What disagrees, for the deny figures: each market (its token id when unnamed), and "collateral"."""
        names = [gap.market or gap.token_id for gap in self.gaps]
        return [*names, "collateral"] if self.cash_gap is not None else names

    def describe(self) -> str:
        """One line per gap, for the log and the alert."""
        lines = [gap.describe() for gap in self.gaps]
        if self.cash_gap is not None:
            lines.append(self.cash_gap.describe())
        return "; ".join(lines) if lines else "books agree with the exchange"


def _size(value: float) -> float:
    if not (isinstance(value, int | float) and math.isfinite(value) and value >= 0):
        raise ValueError(f"position size: expected a finite number of shares >= 0, received {value!r}")
    return float(value)


def reconcile(
    ours: Mapping[str, float],
    exchange: Mapping[str, float],
    *,
    now: datetime,
    position_tolerance: float,
    our_cash: float | None = None,
    exchange_cash: float | None = None,
    cash_tolerance: float = math.inf,
    market_names: Mapping[str, str] | None = None,
) -> ReconcileResult:
    """Compare our shares per token (and cash) with the exchange's; every difference beyond a tolerance."""
    if not (math.isfinite(position_tolerance) and position_tolerance >= 0):
        raise ValueError(
            f"position_tolerance: expected a finite number of shares >= 0, received {position_tolerance!r}"
        )
    names = market_names or {}
    gaps = []
    tokens = sorted(set(ours) | set(exchange))
    for token_id in tokens:
        mine, theirs = _size(ours.get(token_id, 0.0)), _size(exchange.get(token_id, 0.0))
        if abs(mine - theirs) > position_tolerance:
            gaps.append(PositionGap(token_id, names.get(token_id, ""), mine, theirs))
    cash_gap = None
    if our_cash is not None and exchange_cash is not None and abs(our_cash - exchange_cash) > cash_tolerance:
        cash_gap = CashGap(our_cash, exchange_cash)
    return ReconcileResult(now, tuple(gaps), cash_gap, len(tokens))


def confirm(first: ReconcileResult, second: ReconcileResult) -> ReconcileResult:
    """What both looks agree is wrong: a token (or the collateral) that mismatched in both, figures of the second."""
    first_tokens = {gap.token_id for gap in first.gaps}
    gaps = tuple(gap for gap in second.gaps if gap.token_id in first_tokens)
    cash_gap = second.cash_gap if first.cash_gap is not None else None
    return ReconcileResult(second.checked_at, gaps, cash_gap, second.compared_tokens)


@dataclass(slots=True)
class ReconcileGate:
    """Closed (new entries denied) while the last confirmed reconcile found a mismatch; exits never ask."""

    mismatch: ReconcileResult | None = None

    @property
    def blocks_entries(self) -> bool:
        return self.mismatch is not None

    @property
    def markets(self) -> list[str]:
        return self.mismatch.markets if self.mismatch is not None else []

    def as_dict(self) -> dict[str, object]:
        """The gate for the risk snapshot: whether entries are halted, what disagrees, and since when."""
        mismatch = self.mismatch
        return {
            "blocks_entries": mismatch is not None,
            "markets": self.markets,
            "detail": mismatch.describe() if mismatch is not None else None,
            "checked_at": mismatch.checked_at.isoformat() if mismatch is not None else None,
        }

    def apply(self, result: ReconcileResult) -> str | None:
        """Record a confirmed result; returns "closed" / "opened" when the gate changed, else None."""
        was_closed = self.mismatch is not None
        self.mismatch = None if result.ok else result
        if not result.ok and not was_closed:
            return "closed"
        if result.ok and was_closed:
            return "opened"
        return None
