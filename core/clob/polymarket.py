"""The live CLOB client: an adapter over py-clob-client-v2 (Polymarket CLOB V2), the optional extra `[polymarket]`.

- The library is imported when the adapter is built, never at import time of this module, so paper
  trading works without it; missing, it raises PolymarketExtraMissingError saying what to install.
- The library is synchronous (httpx): every call runs in `asyncio.to_thread`, so the event loop never
  waits on the network. A call cancelled while its thread runs cannot stop that thread: an order being
  posted may still reach the exchange.
- Orders are limit orders at `limit_price` posted fill-and-kill (FAK): they take what the book offers up
  to the limit and the rest is cancelled, so nothing rests and `cancel_order` only matters for orders
  placed some other way.
- Without CLOB_API_KEY/SECRET/PASSPHRASE the L2 credentials are created or derived from PRIVATE_KEY on
  the first authenticated call (L1 auth). Secrets are never logged; the wallet appears masked.
- The library's errors become our ClobError family (see `to_clob_error`).
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
import math
import re
import sys
import threading
from collections.abc import Callable, Iterator
from types import ModuleType
from typing import Any, TypeVar

from config.settings import Settings
from core.clob.base import ClobError, OrderAck, OrderBook, OrderRejectedError, OrderRequest, Side
from core.clob.polymarket_responses import (
    is_unmatched_message,
    parse_balance,
    parse_cancel_response,
    parse_order_book,
    parse_order_response,
    to_clob_error,
    unfilled_ack,
)
from core.clob.validation import validate_order, validate_order_id, validate_token_id
from utils.secrets import mask_wallet

logger = logging.getLogger(__name__)

INSTALL_HINT = "pip install 'polymarket-copy-bot[polymarket]'"
SIZE_DECIMALS = 2  # the library rounds order sizes down to 2 decimals
_ADDRESS = re.compile(r"^0x[0-9a-fA-F]{40}$")

T = TypeVar("T")


class PolymarketExtraMissingError(ImportError):
    """TRADING_MODE=live without the optional py-clob-client-v2 dependency installed."""


@contextlib.contextmanager
def keep_recursion_limit() -> Iterator[None]:
    """Undo the library's import-time side effect: py_ecc (under eth_account) raises the interpreter's
    recursion limit to 100,000, and with that limit deeply nested JSON overflows the C stack in json.loads
    (a segfault of the whole bot) instead of raising RecursionError."""
    limit = sys.getrecursionlimit()
    try:
        yield
    finally:
        sys.setrecursionlimit(limit)


def load_library() -> ModuleType:
    """Import py-clob-client-v2, or raise PolymarketExtraMissingError telling the operator what to install."""
    try:
        return importlib.import_module("py_clob_client_v2")
    except ImportError as e:
        raise PolymarketExtraMissingError(
            "TRADING_MODE=live trades through py-clob-client-v2, which is not installed: "
            f"run {INSTALL_HINT} (or set TRADING_MODE=paper)"
        ) from e


def limit_on_tick(side: Side, limit_price: float, tick_size: str) -> float:
    """The limit price on the market's tick, never worse than asked: a BUY rounds down, a SELL rounds up."""
    tick = float(tick_size)
    decimals = len(tick_size.split(".", 1)[1]) if "." in tick_size else 0
    steps = limit_price / tick
    whole = math.floor(steps + 1e-9) if side is Side.BUY else math.ceil(steps - 1e-9)
    return round(whole * tick, decimals)


def shares_sent(size: float) -> float:
    """The size the library will sign: rounded down to 2 decimals."""
    return math.floor(size * 10**SIZE_DECIMALS + 1e-9) / 10**SIZE_DECIMALS


def _api_creds(settings: Settings, library: ModuleType) -> Any:
    parts = (settings.clob_api_key, settings.clob_api_secret, settings.clob_api_passphrase)
    given = [part for part in parts if part is not None]
    if not given:
        return None
    if len(given) != len(parts):
        raise ValueError(
            "CLOB_API_KEY, CLOB_API_SECRET and CLOB_API_PASSPHRASE: expected all three or none "
            f"(none = derive them from PRIVATE_KEY), received {len(given)} of 3"
        )
    key, secret, passphrase = (part.get_secret_value() for part in parts)  # type: ignore[union-attr]
    return library.ApiCreds(api_key=key, api_secret=secret, api_passphrase=passphrase)


class PolymarketClobClient:
    """A ClobClient over Polymarket's CLOB V2 through py-clob-client-v2."""

    def __init__(self, settings: Settings, *, host: str | None = None, timeout_seconds: float | None = None) -> None:
        with keep_recursion_limit():
            library = load_library()
            import httpx
            from py_clob_client_v2.client import ClobClient  # noqa: F401  (imported here, under the guard)
            from py_clob_client_v2.config import get_contract_config
            from py_clob_client_v2.http_helpers import helpers as http_helpers

        if settings.private_key is None:
            raise ValueError("TRADING_MODE=live needs PRIVATE_KEY (the wallet's key that signs orders), received none")
        try:
            get_contract_config(settings.clob_chain_id)
        except Exception:
            raise ValueError(
                f"CLOB_CHAIN_ID: expected 137 (Polygon) or 80002 (Amoy), received {settings.clob_chain_id}"
            ) from None
        funder = settings.clob_funder_address
        if funder is not None and not _ADDRESS.match(funder):
            raise ValueError(f"CLOB_FUNDER_ADDRESS: expected a 0x-prefixed 40-hex-digit address, received {funder!r}")
        timeout = settings.clob_request_timeout_seconds if timeout_seconds is None else timeout_seconds
        if not (math.isfinite(timeout) and timeout > 0):
            raise ValueError(f"timeout_seconds: expected a number of seconds > 0, received {timeout!r}")
        creds = _api_creds(settings, library)
        self._host = (host or settings.clob_host).rstrip("/")
        self._chain_id = settings.clob_chain_id
        try:
            client = library.ClobClient(
                self._host,
                chain_id=self._chain_id,
                key=settings.private_key.get_secret_value(),
                creds=creds,
                signature_type=settings.clob_signature_type,
                funder=funder,
            )
        except Exception:
            # `from None`: the underlying error may quote the key, and a traceback must never show it.
            raise ValueError(
                "PRIVATE_KEY: expected a 32-byte hex private key (64 hex digits, optional 0x); "
                "the value given is not one (not shown)"
            ) from None
        # The library sends every request through one module-level httpx client, with no timeout option
        # (httpx's default is 5 s) and nothing that ever closes it. Install a client of our own there,
        # with our timeout, so that close() can release its pooled connections. It is process-wide, like
        # the library's; the newest adapter's client is the one in use.
        shared = getattr(http_helpers, "_http_client", None)
        self._http: httpx.Client | None = None
        if isinstance(shared, httpx.Client):
            self._http = httpx.Client(http2=True, timeout=httpx.Timeout(timeout))
            http_helpers._http_client = self._http
        else:
            logger.warning("py-clob-client-v2 has no shared httpx client any more: request timeout not applied")
        self._library = library
        self._client = client
        self._address: str = funder or client.get_address()
        self._wallet = mask_wallet(self._address)
        self._creds_lock = threading.Lock()
        self._closed = False
        logger.info(
            "Polymarket CLOB V2 adapter: host %s, chain %s, wallet %s, credentials %s",
            self._host,
            self._chain_id,
            self._wallet,
            "from settings" if creds is not None else "derived on first use",
        )

    def __repr__(self) -> str:
        return f"PolymarketClobClient(host={self._host!r}, chain_id={self._chain_id}, wallet={self._wallet!r})"

    @property
    def address(self) -> str:
        """The wallet that holds our positions and collateral (the funder/proxy wallet, else the key's address)."""
        return self._address

    # --- the ClobClient protocol ------------------------------------------------------------

    async def get_order_book(self, token_id: str) -> OrderBook:
        """GET /book for one token, bids and asks best first."""
        validate_token_id(token_id)
        raw = await self._run(self._client.get_order_book, token_id)
        return parse_order_book(token_id, raw)

    async def place_order(self, order: OrderRequest) -> OrderAck:
        """Sign a limit order at the limit price (on the tick) and post it fill-and-kill."""
        order = validate_order(order)
        if not order.token_id.isdigit():
            # Orders sign the token id as a uint256: Polymarket token ids are decimal integers.
            raise ValueError(f"order token_id: expected a decimal integer token id, received {order.token_id!r}")
        if shares_sent(order.size) <= 0:
            raise OrderRejectedError(
                f"order size: the CLOB trades whole hundredths of a share, {order.size!r} rounds down to 0"
            )
        try:
            raw = await self._run(self._post_fak, order)
        except OrderRejectedError as e:
            if is_unmatched_message(e):
                return unfilled_ack({"errorMsg": str(e)})
            raise
        ack = parse_order_response(order, raw)
        logger.debug(
            "CLOB %s %s: %s %.6f @ %.4f", order.side, order.token_id, ack.status, ack.filled_size, ack.avg_price
        )
        return ack

    async def cancel_order(self, order_id: str) -> bool:
        """DELETE /order; True if the CLOB lists the order as cancelled (FAK orders never rest: False)."""
        validate_order_id(order_id)
        raw = await self._run(self._cancel, order_id)
        return parse_cancel_response(order_id, raw)

    async def get_balance(self) -> float:
        """Free USDC collateral (GET /balance-allowance)."""
        raw = await self._run(self._collateral)
        return parse_balance(raw)

    async def close(self) -> None:
        """Stop accepting calls and release the HTTP connections this adapter's client holds."""
        self._closed = True
        if self._http is not None:
            await asyncio.to_thread(self._http.close)

    # --- blocking parts, run in a worker thread ------------------------------------------------

    async def _run(self, call: Callable[..., T], *args: Any) -> T:
        if self._closed:
            raise ClobError("the Polymarket CLOB client is closed: build a new one")
        try:
            return await asyncio.to_thread(call, *args)
        except ClobError:
            raise
        except Exception as e:
            raise to_clob_error(e) from e

    def _authenticated(self) -> Any:
        with self._creds_lock:
            if self._client.creds is None:
                self._client.set_api_creds(self._client.create_or_derive_api_key())
                logger.info("derived CLOB API credentials for wallet %s", self._wallet)
        return self._client

    def _post_fak(self, order: OrderRequest) -> Any:
        client = self._authenticated()
        tick_size = str(client.get_tick_size(order.token_id))
        price = limit_on_tick(order.side, order.limit_price, tick_size)
        tick = float(tick_size)
        if not tick <= price <= 1 - tick:
            raise OrderRejectedError(
                f"order limit_price: on this market's tick {tick_size} the price must be within "
                f"[{tick}, {1 - tick:g}], received {order.limit_price!r} (→ {price})"
            )
        args = self._library.OrderArgs(
            token_id=order.token_id, price=price, size=shares_sent(order.size), side=order.side.value
        )
        signed = client.create_order(args)
        return client.post_order(signed, self._library.OrderType.FAK)

    def _cancel(self, order_id: str) -> Any:
        return self._authenticated().cancel_order(self._library.OrderPayload(orderID=order_id))

    def _collateral(self) -> Any:
        params = self._library.BalanceAllowanceParams(asset_type=self._library.AssetType.COLLATERAL)
        return self._authenticated().get_balance_allowance(params)
