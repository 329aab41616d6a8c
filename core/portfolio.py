"""What the bot holds: cash, one position per outcome token, realized P&L, last marks.

Exposure is measured at cost (shares × average entry price): it is what the limits were checked against
when the position was built, and it does not move with the book. Equity for the circuit breaker is
marked to market: cash + shares × the last book mid seen for that token (the entry price until a book
has been seen). Every figure here is O(open positions), which MAX_OPEN_POSITIONS keeps small.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from core.clob.base import Side

# A remainder below this many shares is dust left by float arithmetic, not a position.
DUST_SHARES = 1e-9


@dataclass(slots=True)
class Position:
    """Our holding of one outcome token."""

    token_id: str
    market: str
    size: float
    avg_price: float
    mark: float

    @property
    def notional(self) -> float:
        return self.size * self.avg_price

    def as_dict(self) -> dict[str, str | float]:
        """A JSON-safe copy for reports and the snapshot."""
        return {
            "token_id": self.token_id,
            "market": self.market,
            "size": self.size,
            "avg_price": self.avg_price,
            "notional": self.notional,
            "mark": self.mark,
        }


@dataclass(frozen=True, slots=True)
class FillOutcome:
    """The effect of one fill: realized P&L (sells only) and whether it opened or closed a position."""

    realized_pnl: float
    opened: bool
    closed: bool


class Portfolio:
    """Cash and positions, updated by fills; never does I/O."""

    def __init__(self, cash: float | None = None) -> None:
        self.cash = cash
        self.positions: dict[str, Position] = {}
        self.realized_pnl = 0.0
        self._total_exposure = 0.0

    @property
    def total_exposure(self) -> float:
        return self._total_exposure

    def held(self, token_id: str) -> float:
        """Shares held of `token_id` (0.0 when none)."""
        position = self.positions.get(token_id)
        return position.size if position else 0.0

    def position_notional(self, token_id: str) -> float:
        """Cost of the position in `token_id` (0.0 when none)."""
        position = self.positions.get(token_id)
        return position.notional if position else 0.0

    def mark(self, token_id: str, price: float | None) -> None:
        """Remember the latest mid for a held token (ignored when the book had no price)."""
        position = self.positions.get(token_id)
        if position is not None and price is not None:
            position.mark = price

    def apply_fill(self, token_id: str, market: str, side: Side, size: float, avg_price: float) -> FillOutcome:
        """Book one fill: buys add at cost, sells realize (fill price - average cost) × shares."""
        if size <= 0:
            return FillOutcome(0.0, False, False)
        notional = size * avg_price
        position = self.positions.get(token_id)
        if side is Side.BUY:
            if self.cash is not None:
                self.cash -= notional
            opened = position is None
            if position is None:
                self.positions[token_id] = Position(token_id, market, size, avg_price, avg_price)
            else:
                position.avg_price = (position.notional + notional) / (position.size + size)
                position.size += size
            self._recompute_exposure()
            return FillOutcome(0.0, opened, False)
        if position is None:
            raise ValueError(f"sell fill of {size} shares of {token_id} but no position is held")
        sold = min(size, position.size)
        if self.cash is not None:
            self.cash += sold * avg_price
        realized = (avg_price - position.avg_price) * sold
        self.realized_pnl += realized
        position.size -= sold
        closed = position.size <= DUST_SHARES
        if closed:
            del self.positions[token_id]
        self._recompute_exposure()
        return FillOutcome(realized, False, closed)

    def _recompute_exposure(self) -> None:
        # summed afresh (at most MAX_OPEN_POSITIONS terms) so float error never accumulates across fills
        self._total_exposure = math.fsum(p.notional for p in self.positions.values())

    def equity(self) -> float | None:
        """Cash plus every position at its last mark; None until the cash balance is known."""
        if self.cash is None:
            return None
        return self.cash + math.fsum(p.size * p.mark for p in self.positions.values())

    def exposure_by_market(self) -> dict[str, float]:
        """Cost of each position, keyed by token id (a fresh dict)."""
        return {token_id: p.notional for token_id, p in self.positions.items()}

    def positions_list(self) -> list[dict[str, str | float]]:
        """Every position as a fresh JSON-safe dict."""
        return [p.as_dict() for p in self.positions.values()]
