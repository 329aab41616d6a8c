"""Checks every CLOB client applies to an order before anything leaves the process."""

from __future__ import annotations

import dataclasses
import math
from numbers import Real

from core.clob.base import OrderRequest, Side


def _finite_number(value: object) -> float | None:
    """The value as a float when it is a real, finite number (bools are not sizes); otherwise None."""
    if isinstance(value, bool) or not isinstance(value, Real):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def coerce_side(value: object) -> Side:
    """`Side.BUY`/`Side.SELL`, or the strings "BUY"/"SELL" in any case; anything else is a ValueError."""
    if isinstance(value, Side):
        return value
    if isinstance(value, str) and value.strip().upper() in Side.__members__:
        return Side(value.strip().upper())
    raise ValueError(f"order side: expected BUY or SELL, received {value!r}")


def validate_order(order: OrderRequest) -> OrderRequest:
    """Return the order with a proper `Side`, or raise ValueError naming the bad field, expected vs received."""
    if not isinstance(order, OrderRequest):
        raise ValueError(f"expected an OrderRequest, received {type(order).__name__}")
    if not isinstance(order.token_id, str) or not order.token_id.strip():
        raise ValueError(f"order token_id: expected a non-empty string, received {order.token_id!r}")
    side = coerce_side(order.side)
    size = _finite_number(order.size)
    if size is None or size <= 0:
        raise ValueError(f"order size: expected a finite number of shares > 0, received {order.size!r}")
    price = _finite_number(order.limit_price)
    if price is None or not 0 < price < 1:
        raise ValueError(
            f"order limit_price: expected a price strictly between 0 and 1 (USDC per share), "
            f"received {order.limit_price!r}"
        )
    if side is order.side and size == order.size and price == order.limit_price:
        return order
    return dataclasses.replace(order, side=side, size=size, limit_price=price)


def validate_token_id(token_id: object) -> str:
    """A token id is a non-empty string; raise ValueError otherwise."""
    if not isinstance(token_id, str) or not token_id.strip():
        raise ValueError(f"token_id: expected a non-empty string, received {token_id!r}")
    return token_id


def validate_order_id(order_id: object) -> str:
    """An order id is a non-empty string; raise ValueError otherwise."""
    if not isinstance(order_id, str) or not order_id.strip():
        raise ValueError(f"order_id: expected a non-empty string, received {order_id!r}")
    return order_id
