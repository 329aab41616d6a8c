"""Walking an order book: the pure decision of what a fill-and-kill order takes from the book."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from core.clob.base import BookLevel, Side

# Prices and sizes are floats; these tolerances keep "exactly at the limit" and "exactly the size" inside.
PRICE_EPSILON = 1e-9
SIZE_EPSILON = 1e-9


@dataclass(frozen=True, slots=True)
class Fill:
    """What one order took: per level, the price and the size taken (best level first)."""

    side: Side
    requested_size: float
    limit_price: float
    taken: tuple[BookLevel, ...]

    @property
    def filled_size(self) -> float:
        return min(sum(level.size for level in self.taken), self.requested_size)

    @property
    def notional(self) -> float:
        """USDC paid (BUY) or received (SELL)."""
        return sum(level.price * level.size for level in self.taken)

    @property
    def avg_price(self) -> float:
        filled = self.filled_size
        return self.notional / filled if filled > 0 else 0.0

    @property
    def complete(self) -> bool:
        return self.filled_size >= self.requested_size - SIZE_EPSILON


def marketable(side: Side, level_price: float, limit_price: float) -> bool:
    """True when a resting level at `level_price` may trade with an order of `side` limited at `limit_price`."""
    if side is Side.BUY:
        return level_price <= limit_price + PRICE_EPSILON
    return level_price >= limit_price - PRICE_EPSILON


def walk_book(opposite: Iterable[BookLevel], side: Side, size: float, limit_price: float) -> Fill:
    """Take liquidity from the opposite side of the book, best price first, up to `size` and `limit_price`.

    `opposite` is the asks for a BUY and the bids for a SELL, in any order (sorted here). The rest of the
    order is not filled (fill-and-kill); the book itself is not changed.
    """
    levels = sorted(
        (level for level in opposite if level.size > 0),
        key=lambda level: level.price,
        reverse=side is Side.SELL,
    )
    remaining = size
    taken: list[BookLevel] = []
    for level in levels:
        if remaining <= SIZE_EPSILON or not marketable(side, level.price, limit_price):
            break
        take = min(level.size, remaining)
        taken.append(BookLevel(price=level.price, size=take))
        remaining -= take
    return Fill(side=side, requested_size=size, limit_price=limit_price, taken=tuple(taken))
