"""The paper CLOB's markets: one simulated order book per outcome token.

Two kinds of book:
- a *simulated* book, generated deterministically from (seed, token_id) or around a given mid price: several
  levels each side on a 0.01 tick, liquidity that the paper client's fills consume and that slowly comes
  back, and a mid that drifts by a tick now and then (seeded), so the market moves between calls;
- a *pinned* book, set explicitly (tests, replays of a recorded book): it never drifts or refills, only
  fills change it, so a test knows exactly what an order will take.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field

from core.clob.base import BookLevel, OrderBook, Side
from core.clob.matching import PRICE_EPSILON, SIZE_EPSILON, Fill

TICK = 0.01
MIN_TICK = 1  # 0.01: prices stay strictly inside (0, 1)
MAX_TICK = 99  # 0.99
# Probability that the mid moves by one tick at a drift step (half up, half down).
DRIFT_PROBABILITY = 0.3
# Share of the missing liquidity that comes back at each drift step.
REPLENISH_FRACTION = 0.3
SIZE_DECIMALS = 6  # Polymarket amounts have 6 decimals


def tick_price(tick: int) -> float:
    """The price of a tick index (tick 53 → 0.53)."""
    return round(tick * TICK, 2)


def price_tick(price: float) -> int:
    """The nearest tick index of a price."""
    return round(price / TICK)


@dataclass(slots=True)
class SimulatedBook:
    """A generated book: levels indexed from the best price outwards, around two anchors that drift."""

    token_id: str
    bid_anchor: int  # tick of the best bid level
    ask_anchor: int  # tick of the best ask level
    bid_targets: tuple[float, ...]  # the size each bid level refills towards
    ask_targets: tuple[float, ...]
    rng: random.Random
    bid_sizes: list[float] = field(default_factory=list)
    ask_sizes: list[float] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.bid_sizes:
            self.bid_sizes = list(self.bid_targets)
        if not self.ask_sizes:
            self.ask_sizes = list(self.ask_targets)

    def snapshot(self) -> OrderBook:
        bids = tuple(
            BookLevel(tick_price(self.bid_anchor - i), size)
            for i, size in enumerate(self.bid_sizes)
            if size > SIZE_EPSILON and self.bid_anchor - i >= MIN_TICK
        )
        asks = tuple(
            BookLevel(tick_price(self.ask_anchor + i), size)
            for i, size in enumerate(self.ask_sizes)
            if size > SIZE_EPSILON and self.ask_anchor + i <= MAX_TICK
        )
        return OrderBook(token_id=self.token_id, bids=bids, asks=asks)

    def consume(self, fill: Fill) -> None:
        """Remove what a fill took: a BUY takes asks, a SELL takes bids."""
        for level in fill.taken:
            tick = price_tick(level.price)
            if fill.side is Side.BUY:
                sizes, index = self.ask_sizes, tick - self.ask_anchor
            else:
                sizes, index = self.bid_sizes, self.bid_anchor - tick
            if 0 <= index < len(sizes):
                sizes[index] = max(0.0, round(sizes[index] - level.size, SIZE_DECIMALS))

    def step(self) -> None:
        """One drift step: maybe move the mid a tick (seeded), then let part of the missing liquidity return."""
        draw = self.rng.random()
        shift = 0
        if draw < DRIFT_PROBABILITY / 2:
            shift = -1
        elif draw < DRIFT_PROBABILITY:
            shift = 1
        if shift and self.bid_anchor + shift >= MIN_TICK and self.ask_anchor + shift <= MAX_TICK:
            self.bid_anchor += shift
            self.ask_anchor += shift
        for sizes, targets in ((self.bid_sizes, self.bid_targets), (self.ask_sizes, self.ask_targets)):
            for i, target in enumerate(targets):
                sizes[i] = round(sizes[i] + (target - sizes[i]) * REPLENISH_FRACTION, SIZE_DECIMALS)


@dataclass(slots=True)
class PinnedBook:
    """An explicitly set book: only fills change it."""

    token_id: str
    bids: list[BookLevel]  # best (highest) first
    asks: list[BookLevel]  # best (lowest) first

    @classmethod
    def from_book(cls, book: OrderBook) -> PinnedBook:
        """Validate and copy an OrderBook (prices in (0, 1), sizes > 0, not crossed)."""
        if not isinstance(book, OrderBook):
            raise ValueError(f"expected an OrderBook, received {type(book).__name__}")
        if not isinstance(book.token_id, str) or not book.token_id.strip():
            raise ValueError(f"book token_id: expected a non-empty string, received {book.token_id!r}")
        for name, levels in (("bids", book.bids), ("asks", book.asks)):
            for level in levels:
                price, size = level.price, level.size
                if not (math.isfinite(price) and 0 < price < 1):
                    raise ValueError(f"book {name} price: expected a price strictly inside (0, 1), received {price!r}")
                if not (math.isfinite(size) and size > 0):
                    raise ValueError(f"book {name} size: expected a finite size > 0, received {size!r}")
        bids = sorted(book.bids, key=lambda level: level.price, reverse=True)
        asks = sorted(book.asks, key=lambda level: level.price)
        if bids and asks and bids[0].price >= asks[0].price - PRICE_EPSILON:
            raise ValueError(
                f"book for {book.token_id}: expected the best bid below the best ask, "
                f"received bid {bids[0].price} >= ask {asks[0].price}"
            )
        return cls(token_id=book.token_id, bids=bids, asks=asks)

    def snapshot(self) -> OrderBook:
        return OrderBook(token_id=self.token_id, bids=tuple(self.bids), asks=tuple(self.asks))

    def consume(self, fill: Fill) -> None:
        """Remove what a fill took, dropping emptied levels."""
        levels = self.asks if fill.side is Side.BUY else self.bids
        for taken in fill.taken:
            for i, level in enumerate(levels):
                if abs(level.price - taken.price) <= PRICE_EPSILON:
                    left = round(level.size - taken.size, SIZE_DECIMALS)
                    if left > SIZE_EPSILON:
                        levels[i] = BookLevel(level.price, left)
                    else:
                        del levels[i]
                    break


Market = SimulatedBook | PinnedBook


def generate_book(seed: int, token_id: str, mid_price: float | None = None) -> SimulatedBook:
    """A plausible book for `token_id`, the same for the same (seed, token_id, mid_price).

    Without `mid_price` the mid is drawn between 0.15 and 0.85. The spread is 2 or 4 ticks, with 5 to 8
    levels each side whose size grows with the distance from the mid.
    """
    if mid_price is not None and not (math.isfinite(mid_price) and 0 < mid_price < 1):
        raise ValueError(f"mid_price: expected a price strictly between 0 and 1, received {mid_price!r}")
    # String seeds hash the same way in every process (unlike hash()), so books are reproducible.
    rng = random.Random(f"paper-book:{seed}:{token_id}:{'' if mid_price is None else f'{mid_price:.6f}'}")
    mid_tick = rng.randint(15, 85) if mid_price is None else price_tick(mid_price)
    half_spread = rng.choice((1, 1, 2))
    mid_tick = min(max(mid_tick, MIN_TICK + half_spread), MAX_TICK - half_spread)
    depth = rng.randint(5, 8)

    def targets() -> tuple[float, ...]:
        base = rng.uniform(40.0, 250.0)
        return tuple(round(base * (1 + 0.6 * i) * rng.uniform(0.75, 1.25), 2) for i in range(depth))

    return SimulatedBook(
        token_id=token_id,
        bid_anchor=mid_tick - half_spread,
        ask_anchor=mid_tick + half_spread,
        bid_targets=targets(),
        ask_targets=targets(),
        rng=rng,
    )
