"""The paper CLOB client, the embedded default: a virtual USDC balance trading against simulated books.

What it simulates, so that paper results mean something:
- one order book per outcome token, generated from (seed, token_id) the first time the token is seen, or
  seeded around a price (`seed_book`, e.g. the copied trade's price), or set explicitly (`set_book`);
- books that move: each later call on a token drifts its simulated book (mid ±1 tick now and then,
  consumed liquidity partly refilling), seeded, so runs are reproducible;
- fills that walk the book level by level up to the limit price (fill-and-kill: the rest is cancelled),
  consume that liquidity and report the average price, so slippage is real;
- the exchange's balance rules: a BUY needs `size × limit_price` USDC, a SELL needs the shares;
- latency (`await sleep(latency)` per call; none at all when zero) and injected errors by kind and rate
  (rate_limit, timeout, rejected, network), seeded. `error_rate` is the probability that one
  `place_order` call fails; an injected failure changes nothing (the order was not placed).

No fees are charged. Orders never rest (FAK), so `cancel_order` always answers False.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import math
import random
from collections.abc import Awaitable, Callable, Iterable, Mapping

from config.settings import Settings, get_settings
from core.clob.base import (
    ClobError,
    ClobNetworkError,
    ClobTimeoutError,
    OrderAck,
    OrderBook,
    OrderRejectedError,
    OrderRequest,
    OrderStatus,
    RateLimitedError,
    Side,
)
from core.clob.matching import SIZE_EPSILON, walk_book
from core.clob.paper_market import Market, PinnedBook, SimulatedBook, generate_book
from core.clob.validation import validate_order, validate_order_id, validate_token_id

logger = logging.getLogger(__name__)

ERROR_KINDS = ("rate_limit", "timeout", "rejected", "network")
# Balances are USDC with 6 decimals; float noise below this is not money.
BALANCE_EPSILON = 1e-9

Sleep = Callable[[float], Awaitable[object]]


def injected_error(kind: str, rng: random.Random) -> ClobError:
    """The exception an injected failure of `kind` raises (the message says it was injected)."""
    note = "injected by the paper CLOB (PAPER_ERROR_RATE); the order was not placed"
    if kind == "rate_limit":
        return RateLimitedError(f"rate limited (429), {note}", retry_after=round(rng.uniform(0.5, 2.0), 3))
    if kind == "timeout":
        return ClobTimeoutError(f"timed out, {note}")
    if kind == "rejected":
        return OrderRejectedError(f"order rejected, {note}")
    if kind == "network":
        return ClobNetworkError(f"network error, {note}")
    raise ValueError(f"error kind: expected one of {list(ERROR_KINDS)}, received {kind!r}")


class PaperClobClient:
    """A ClobClient that trades a virtual balance against simulated, seeded order books."""

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        seed: int | None = None,
        latency_ms: float | None = None,
        error_rate: float | None = None,
        error_kinds: Iterable[str] | None = None,
        rng: random.Random | None = None,
        sleep: Sleep = asyncio.sleep,
        books: Mapping[str, OrderBook] | None = None,
        starting_balance: float | None = None,
    ) -> None:
        config = settings if settings is not None else get_settings()
        self._seed = config.paper_seed if seed is None else seed
        latency = config.paper_latency_ms if latency_ms is None else latency_ms
        if not (math.isfinite(latency) and latency >= 0):
            raise ValueError(f"latency_ms: expected a finite number >= 0, received {latency!r}")
        self._latency_s = latency / 1000.0
        rate = config.paper_error_rate if error_rate is None else error_rate
        if not (math.isfinite(rate) and 0 <= rate <= 1):
            raise ValueError(f"error_rate: expected a probability between 0 and 1, received {rate!r}")
        self._error_rate = rate
        kinds = tuple(config.paper_error_kinds if error_kinds is None else error_kinds)
        unknown = [kind for kind in kinds if kind not in ERROR_KINDS]
        if unknown:
            raise ValueError(f"error_kinds: expected kinds among {list(ERROR_KINDS)}, unknown: {unknown}")
        if rate > 0 and not kinds:
            raise ValueError(f"error_kinds: expected at least one kind when error_rate is {rate}, received none")
        self._error_kinds = kinds
        balance = config.paper_starting_balance if starting_balance is None else starting_balance
        if not (math.isfinite(balance) and balance >= 0):
            raise ValueError(f"starting_balance: expected a finite USDC amount >= 0, received {balance!r}")
        self._balance = float(balance)
        # Error draws have their own stream so that books stay the same whatever the error settings.
        self._rng = rng if rng is not None else random.Random(f"paper-errors:{self._seed}")
        self._sleep = sleep
        self._positions: dict[str, float] = {}
        self._markets: dict[str, Market] = {}
        self._order_numbers = itertools.count(1)
        self._closed = False
        for token_id, book in (books or {}).items():
            if token_id != getattr(book, "token_id", None):
                raise ValueError(
                    f"books: the key {token_id!r} must equal the book's token_id, received "
                    f"{getattr(book, 'token_id', None)!r}"
                )
            self.set_book(book)

    # --- state, for tests, replays and the risk snapshot ----------------------------------------

    @property
    def balance(self) -> float:
        """Free virtual USDC."""
        return self._balance

    @property
    def seed(self) -> int:
        return self._seed

    def positions(self) -> dict[str, float]:
        """Shares held per token (a copy; tokens with nothing left are absent)."""
        return dict(self._positions)

    def restore_account(self, balance: float, positions: Mapping[str, float]) -> None:
        """Start from a restored paper account (the trade ledger's cash and shares), not the starting balance."""
        if not (math.isfinite(balance) and balance >= -BALANCE_EPSILON):
            raise ValueError(f"balance: expected a finite USDC amount >= 0, received {balance!r}")
        bad = {token: size for token, size in positions.items() if not (math.isfinite(size) and size >= 0)}
        if bad:
            raise ValueError(f"positions: expected finite share counts >= 0, received {bad!r}")
        self._balance = max(0.0, float(balance))
        self._positions = {token: float(size) for token, size in positions.items() if size > SIZE_EPSILON}

    def set_book(self, book: OrderBook) -> None:
        """Pin a token's book to exactly `book`: it no longer drifts or refills, only fills change it."""
        self._markets[book.token_id] = PinnedBook.from_book(book)

    def seed_book(self, token_id: str, mid_price: float) -> OrderBook:
        """Replace a token's book by a simulated one around `mid_price` (deterministic, drifting)."""
        validate_token_id(token_id)
        market = generate_book(self._seed, token_id, mid_price)
        self._markets[token_id] = market
        return market.snapshot()

    # --- the ClobClient protocol ------------------------------------------------------------

    async def get_order_book(self, token_id: str) -> OrderBook:
        """The token's current book (the market moves a little at each call)."""
        validate_token_id(token_id)
        await self._round_trip()
        return self._touch(token_id).snapshot()

    async def place_order(self, order: OrderRequest) -> OrderAck:
        """Fill-and-kill against the token's book; raises OrderRejectedError on balance/position rules."""
        order = validate_order(order)
        await self._round_trip()
        self._maybe_fail()
        market = self._touch(order.token_id)
        self._check_funds(order)
        book = market.snapshot()
        opposite = book.asks if order.side is Side.BUY else book.bids
        fill = walk_book(opposite, order.side, order.size, order.limit_price)
        market.consume(fill)
        filled, notional = fill.filled_size, fill.notional
        if filled > 0:
            self._settle(order, filled, notional)
        if fill.complete:
            status = OrderStatus.FILLED
        elif filled > 0:
            status = OrderStatus.PARTIAL
        else:
            status = OrderStatus.UNFILLED
        order_id = f"paper-{next(self._order_numbers):08d}"
        logger.debug(
            "paper %s %s %.6f @ <= %.4f: %s %.6f avg %.4f",
            order.side,
            order.token_id,
            order.size,
            order.limit_price,
            status,
            filled,
            fill.avg_price,
        )
        return OrderAck(
            order_id=order_id,
            status=status,
            filled_size=filled,
            avg_price=fill.avg_price,
            raw={
                "paper": True,
                "client_order_id": order.client_order_id,
                "requested_size": order.size,
                "limit_price": order.limit_price,
                "levels": [[level.price, level.size] for level in fill.taken],
                "balance_after": self._balance,
            },
        )

    async def cancel_order(self, order_id: str) -> bool:
        """Always False: paper orders are fill-and-kill, so nothing ever rests on the book to cancel."""
        validate_order_id(order_id)
        await self._round_trip()
        return False

    async def get_balance(self) -> float:
        """Free virtual USDC."""
        await self._round_trip()
        return self._balance

    async def close(self) -> None:
        """Mark the client closed; later calls raise ClobError. Idempotent."""
        self._closed = True

    # --- internals ------------------------------------------------------------------------------

    async def _round_trip(self) -> None:
        if self._closed:
            raise ClobError("the paper CLOB client is closed: build a new one")
        # With zero latency there is no await at all, so the paper path adds no scheduling point.
        if self._latency_s > 0:
            await self._sleep(self._latency_s)

    def _maybe_fail(self) -> None:
        if self._error_rate <= 0:
            return
        if self._rng.random() < self._error_rate:
            raise injected_error(self._rng.choice(self._error_kinds), self._rng)

    def _touch(self, token_id: str) -> Market:
        """The token's market, generated on first sight; a simulated book drifts one step on later calls."""
        market = self._markets.get(token_id)
        if market is None:
            market = generate_book(self._seed, token_id)
            self._markets[token_id] = market
        elif isinstance(market, SimulatedBook):
            market.step()
        return market

    def _check_funds(self, order: OrderRequest) -> None:
        if order.side is Side.BUY:
            needed = order.size * order.limit_price
            if needed > self._balance + BALANCE_EPSILON:
                raise OrderRejectedError(
                    f"not enough balance: a BUY of {order.size:g} shares at up to {order.limit_price:g} needs "
                    f"{needed:.6f} USDC, the paper balance is {self._balance:.6f} USDC"
                )
            return
        held = self._positions.get(order.token_id, 0.0)
        if order.size > held + SIZE_EPSILON:
            raise OrderRejectedError(
                f"not enough shares: a SELL of {order.size:g} shares of {order.token_id} needs that position, "
                f"the paper account holds {held:g}"
            )

    def _settle(self, order: OrderRequest, filled: float, notional: float) -> None:
        held = self._positions.get(order.token_id, 0.0)
        if order.side is Side.BUY:
            # The funds check reserved size × limit ≥ notional: only float noise can take cash below zero.
            left = self._balance - notional
            self._balance = 0.0 if -BALANCE_EPSILON < left < 0 else left
            held += filled
        else:
            self._balance += notional
            held -= filled
        if held > SIZE_EPSILON:
            self._positions[order.token_id] = held
        else:
            self._positions.pop(order.token_id, None)
