"""Turning py-clob-client-v2's answers and exceptions into our types (pure functions, no I/O).

Shapes handled (Polymarket CLOB V2, as the library returns them):
- book: `{"asset_id", "bids": [{"price": "0.48", "size": "30"}, …], "asks": […], "tick_size", …}`, the
  server lists each side worst price first, so we sort;
- POST /order: `{"success", "errorMsg", "orderID", "status": matched|live|delayed|unmatched,
  "makingAmount", "takingAmount", "transactionsHashes"|"tradeIDs"}`; amounts are decimal strings of what
  matched: a BUY makes USDC and takes shares, a SELL makes shares and takes USDC;
- DELETE /order: `{"canceled": [ids], "not_canceled": {id: reason}}`;
- GET /balance-allowance: `{"balance": "<USDC in 6-decimal base units>", "allowances": {…}}`.
"""

from __future__ import annotations

import math
from typing import Any

from core.clob.base import (
    BookLevel,
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
from core.clob.matching import SIZE_EPSILON

USDC_DECIMALS = 6
# What the CLOB answers when a fill-and-kill order finds nothing to match: a normal outcome, not an error.
UNMATCHED_MARKERS = ("no orders found to match",)


def _number(value: object, what: str) -> float:
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ClobError(f"unexpected CLOB response: {what} should be a number, received {value!r}") from None
    if not math.isfinite(number):
        raise ClobError(f"unexpected CLOB response: {what} should be finite, received {value!r}")
    return number


def _levels(raw: object, what: str) -> list[BookLevel]:
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise ClobError(f"unexpected CLOB response: book {what} should be a list, received {type(raw).__name__}")
    levels = []
    for entry in raw:
        if not isinstance(entry, dict) or "price" not in entry or "size" not in entry:
            raise ClobError(f"unexpected CLOB response: a {what} level should be {{price, size}}, received {entry!r}")
        level = BookLevel(_number(entry["price"], f"{what} price"), _number(entry["size"], f"{what} size"))
        if level.size > 0:
            levels.append(level)
    return levels


def parse_order_book(token_id: str, raw: object) -> OrderBook:
    """Our OrderBook from GET /book's JSON (bids best first, asks best first)."""
    if not isinstance(raw, dict):
        raise ClobError(f"unexpected CLOB response: the book should be a JSON object, received {type(raw).__name__}")
    asset = raw.get("asset_id")
    if asset not in (None, "", token_id):
        raise ClobError(f"unexpected CLOB response: asked for the book of {token_id}, received the book of {asset}")
    bids = sorted(_levels(raw.get("bids"), "bids"), key=lambda level: level.price, reverse=True)
    asks = sorted(_levels(raw.get("asks"), "asks"), key=lambda level: level.price)
    return OrderBook(token_id=token_id, bids=tuple(bids), asks=tuple(asks))


def is_unmatched_message(message: object) -> bool:
    """True when an error text says a fill-and-kill order found nothing to match."""
    text = str(message).lower()
    return any(marker in text for marker in UNMATCHED_MARKERS)


def unfilled_ack(raw: dict[str, Any]) -> OrderAck:
    """The acknowledgement of an order that matched nothing."""
    order_id = str(raw.get("orderID") or "")
    return OrderAck(order_id=order_id, status=OrderStatus.UNFILLED, filled_size=0.0, avg_price=0.0, raw=raw)


def parse_order_response(order: OrderRequest, raw: object) -> OrderAck:
    """Our OrderAck from POST /order's JSON for a fill-and-kill order of `order`.

    A `delayed` order (markets with a matching delay) or an unexpected `live` one is reported with the
    amounts the server gave, usually none: the caller sees UNFILLED and the raw status.
    """
    if not isinstance(raw, dict):
        raise ClobError(f"unexpected CLOB response: the order answer should be a JSON object, received {raw!r}")
    error = raw.get("errorMsg") or ""
    if raw.get("success") is False or error:
        if is_unmatched_message(error):
            return unfilled_ack(raw)
        raise OrderRejectedError(f"the CLOB rejected the order: {error or 'success=false without a message'}")
    status = str(raw.get("status") or "").lower()
    making = _number(raw.get("makingAmount") or 0, "makingAmount")
    taking = _number(raw.get("takingAmount") or 0, "takingAmount")
    filled, notional = (taking, making) if order.side is Side.BUY else (making, taking)
    if status == "unmatched" or filled <= SIZE_EPSILON:
        return unfilled_ack(raw)
    # The library sends the size rounded down to 2 decimals: compare against what was actually sent.
    sent_size = math.floor(order.size * 100 + 1e-9) / 100
    complete = filled >= sent_size - 1e-6
    return OrderAck(
        order_id=str(raw.get("orderID") or ""),
        status=OrderStatus.FILLED if complete else OrderStatus.PARTIAL,
        filled_size=filled,
        avg_price=notional / filled,
        raw=raw,
    )


def parse_cancel_response(order_id: str, raw: object) -> bool:
    """True when DELETE /order's JSON lists `order_id` as cancelled."""
    if not isinstance(raw, dict) or not isinstance(raw.get("canceled", []), list):
        raise ClobError(f"unexpected CLOB response: cancel should answer {{canceled: [...]}}, received {raw!r}")
    return order_id in raw.get("canceled", [])


def parse_balance(raw: object) -> float:
    """Free USDC from GET /balance-allowance's JSON (the balance is in 6-decimal base units)."""
    if not isinstance(raw, dict) or "balance" not in raw:
        raise ClobError(f"unexpected CLOB response: balance-allowance should hold a balance, received {raw!r}")
    units = _number(raw["balance"], "balance")
    if units < 0:
        raise ClobError(f"unexpected CLOB response: balance should be >= 0, received {raw['balance']!r}")
    return units / 10**USDC_DECIMALS


def _describe(error_msg: object) -> str:
    if isinstance(error_msg, dict) and "error" in error_msg:
        return str(error_msg["error"])
    return str(error_msg)


def to_clob_error(exc: Exception) -> ClobError:
    """The ClobError that says what to do about an exception raised inside py-clob-client-v2.

    429 → RateLimitedError (the library drops the Retry-After header, so retry_after is None);
    408/504 and transport timeouts → ClobTimeoutError; 5xx and connection failures → ClobNetworkError;
    other 4xx and the library's own refusals (bad price for the tick size, …) → OrderRejectedError.
    """
    if isinstance(exc, ClobError):
        return exc
    import httpx
    from py_clob_client_v2.exceptions import PolyApiException, PolyException

    if isinstance(exc, PolyApiException):
        status, detail = exc.status_code, _describe(exc.error_msg)
        if status is None:
            # The library raises from inside `except httpx.RequestError`, so the transport error is the context.
            cause = exc.__cause__ or exc.__context__
            if isinstance(cause, httpx.TimeoutException):
                return ClobTimeoutError(f"CLOB request timed out ({type(cause).__name__}): retry later")
            return ClobNetworkError(
                f"could not reach the CLOB ({type(cause).__name__ if cause else detail}): retry later"
            )
        if status == 429:
            return RateLimitedError(f"rate limited by the CLOB (429): {detail}", retry_after=None)
        if status in (408, 504):
            return ClobTimeoutError(f"CLOB timed out ({status}): {detail}")
        if status >= 500:
            return ClobNetworkError(f"CLOB server error ({status}): {detail}: retry later")
        if status in (401, 403):
            return OrderRejectedError(
                f"the CLOB refused our credentials ({status}): {detail}: check PRIVATE_KEY, CLOB_SIGNATURE_TYPE, "
                "CLOB_FUNDER_ADDRESS and the CLOB_API_* settings"
            )
        if 400 <= status < 500:
            return OrderRejectedError(f"the CLOB rejected the request ({status}): {detail}")
        return ClobError(f"unexpected CLOB answer ({status}): {detail}")
    if isinstance(exc, PolyException):
        return OrderRejectedError(f"py-clob-client-v2 refused the request: {exc.msg}")
    if isinstance(exc, httpx.TimeoutException):
        return ClobTimeoutError(f"CLOB request timed out ({type(exc).__name__}): retry later")
    if isinstance(exc, httpx.TransportError):
        return ClobNetworkError(f"could not reach the CLOB ({type(exc).__name__}): retry later")
    return ClobError(f"unexpected failure in py-clob-client-v2: {type(exc).__name__}: {exc}")
