"""The one small protocol every CLOB client speaks (paper and Polymarket CLOB V2), and its errors.

Sizes are in shares (outcome tokens), prices in USDC per share, between 0 and 1.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol, runtime_checkable


class Side(StrEnum):
    BUY = "BUY"
    SELL = "SELL"


class OrderStatus(StrEnum):
    FILLED = "filled"
    PARTIAL = "partial"
    UNFILLED = "unfilled"


@dataclass(frozen=True, slots=True)
class BookLevel:
    price: float
    size: float


@dataclass(frozen=True, slots=True)
class OrderBook:
    """Bids best (highest) first, asks best (lowest) first."""

    token_id: str
    bids: tuple[BookLevel, ...]
    asks: tuple[BookLevel, ...]

    def best_bid(self) -> float | None:
        return self.bids[0].price if self.bids else None

    def best_ask(self) -> float | None:
        return self.asks[0].price if self.asks else None

    def mid(self) -> float | None:
        bid, ask = self.best_bid(), self.best_ask()
        if bid is None or ask is None:
            return bid if ask is None else ask
        return (bid + ask) / 2


@dataclass(frozen=True, slots=True)
class OrderRequest:
    """A limit order that may fill immediately up to `limit_price` (FAK semantics: the rest is cancelled)."""

    token_id: str
    side: Side
    size: float
    limit_price: float
    client_order_id: str = ""


@dataclass(frozen=True, slots=True)
class OrderAck:
    """What the exchange acknowledged for one order."""

    order_id: str
    status: OrderStatus
    filled_size: float
    avg_price: float
    raw: dict[str, object] = field(default_factory=dict)

    @property
    def notional(self) -> float:
        return self.filled_size * self.avg_price


class ClobError(Exception):
    """Base of every CLOB failure; the subclasses say what the caller should do."""

    kind = "error"


class RetryLaterError(ClobError):
    """Transient: the same order may be tried again later (not queued by the executor: it is denied)."""


class RateLimitedError(RetryLaterError):
    kind = "rate_limit"

    def __init__(self, message: str = "rate limited by the CLOB", retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class ClobTimeoutError(RetryLaterError):
    kind = "timeout"


class ClobNetworkError(RetryLaterError):
    kind = "network"


class OrderRejectedError(ClobError):
    """The CLOB refused this order (price, size, balance…): skip it, do not retry as is."""

    kind = "rejected"


@runtime_checkable
class ClobClient(Protocol):
    """What the trade executor needs from an exchange."""

    async def get_order_book(self, token_id: str) -> OrderBook:
        """The current book for one outcome token."""
        ...

    async def place_order(self, order: OrderRequest) -> OrderAck:
        """Submit one order and return the exchange's acknowledgement (raises a ClobError subclass)."""
        ...

    async def cancel_order(self, order_id: str) -> bool:
        """Cancel a resting order; True if the exchange cancelled it."""
        ...

    async def get_balance(self) -> float:
        """Free collateral (USDC)."""
        ...

    async def close(self) -> None:
        """Release connections."""
        ...
