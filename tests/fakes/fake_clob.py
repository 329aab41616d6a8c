"""A fake Polymarket CLOB V2: the subset of the HTTP API that py-clob-client-v2 calls to trade, as a real
aiohttp app on 127.0.0.1 (port 0).

Endpoints (paths, parameters and JSON shapes as the library's client.py / endpoints.py use them):
- GET  /book?token_id=…                 order book; each side listed worst price first, as the real server does
- GET  /tick-size?token_id=…            {"minimum_tick_size": 0.01}
- GET  /neg-risk?token_id=…             {"neg_risk": false}
- GET  /version                         {"version": 2}
- POST /auth/api-key                    L1 (EIP-712 ClobAuth) → {"apiKey", "secret", "passphrase"}; 400 if one exists
- GET  /auth/derive-api-key             L1 → the existing credentials
- POST /order                           L2 (HMAC); checks the EIP-712 order signature, the owner, balances;
                                        matches FAK/FOK orders against the book
- GET  /data/trades?id=…&next_cursor=…  L2; what the library polls to resolve `tradeIDs` into transaction hashes
- DELETE /order                         L2; body {"orderID"} → {"canceled": […], "not_canceled": {…}}
- GET  /balance-allowance?asset_type=…&signature_type=…   L2; {"balance": "<base units>", "allowances": {…}}

Every signature is verified independently of the library (eth_account, hmac), so a test that passes proves
the adapter sent a correctly signed order. Faults can be queued per (method, path): an HTTP status with a
body, a dropped connection, or a delay.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import json
import os
import secrets
import uuid
from collections import defaultdict, deque
from dataclasses import dataclass, field
from typing import Any, Literal, Self

from aiohttp import web

from tests.fakes.clob_signatures import (
    EXCHANGE_V2,
    NEG_RISK_EXCHANGE_V2,
    clob_auth_signer,
    order_signer,
    valid_l2_signature,
)
from tests.fakes.loopback import serve_on_loopback

CHAIN_ID = 137
BASE_UNITS = 10**6
MAX_ALLOWANCE = str(2**256 - 1)
UNMATCHED_FAK = (
    "no orders found to match with FAK order. FAK orders are partially filled or killed if no match is found."
)


@dataclass(frozen=True)
class Fault:
    """What the fake does instead of (or before) answering one request."""

    kind: Literal["status", "drop", "delay"]
    status: int = 500
    body: Any = None
    seconds: float = 0.0

    @classmethod
    def answer(cls, status: int, body: Any) -> Fault:
        return cls("status", status=status, body=body)

    @classmethod
    def drop(cls) -> Fault:
        return cls("drop")

    @classmethod
    def delay(cls, seconds: float) -> Fault:
        return cls("delay", seconds=seconds)


@dataclass
class FakeMarket:
    token_id: str
    bids: list[tuple[float, float]]  # (price, size)
    asks: list[tuple[float, float]]
    tick_size: str = "0.01"
    neg_risk: bool = False
    min_order_size: float = 1.0
    condition_id: str = "0x" + "c0" * 32


@dataclass(frozen=True)
class ReceivedOrder:
    """An order the fake accepted for matching, as decoded from the signed payload."""

    order_id: str
    token_id: str
    side: str
    size: float
    price: float
    order_type: str
    owner: str
    maker: str
    signer: str  # recovered from the EIP-712 signature
    payload: dict[str, Any]


@dataclass
class Credentials:
    address: str
    api_key: str
    secret: str
    passphrase: str


def _fmt(amount: float) -> str:
    return f"{amount:.6f}".rstrip("0").rstrip(".") or "0"


def _match(levels: list[tuple[float, float]], side: str, price: float, size: float) -> list[tuple[int, float]]:
    """Sort `levels` best first (in place) and return (level index, size taken) for an order crossing them."""
    levels.sort(key=lambda level: level[0], reverse=side == "SELL")
    remaining, fills = size, []
    for index, (level_price, level_size) in enumerate(levels):
        crosses = level_price <= price + 1e-9 if side == "BUY" else level_price >= price - 1e-9
        if remaining <= 1e-9 or not crosses:
            break
        take = min(level_size, remaining)
        fills.append((index, take))
        remaining -= take
    return fills


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


@dataclass
class FakeClob:
    """State and behaviour of the fake exchange; `async with FakeClob() as fake` serves it."""

    chain_id: int = CHAIN_ID
    starting_collateral: float = 1000.0
    # "poll": answer `tradeIDs` only (the current async pipeline, the library polls /data/trades);
    # "inline": answer `transactionsHashes` directly.
    trade_resolution: Literal["poll", "inline"] = "poll"
    # How a FAK order that matches nothing is answered: a 400 with the CLOB's message, or 200 "unmatched".
    unmatched_style: Literal["error", "status"] = "error"
    markets: dict[str, FakeMarket] = field(default_factory=dict)
    collateral: dict[str, int] = field(default_factory=dict)  # address (lower case) → base units
    shares: dict[tuple[str, str], int] = field(default_factory=lambda: defaultdict(int))
    orders: list[ReceivedOrder] = field(default_factory=list)
    cancel_requests: list[str] = field(default_factory=list)
    resting: set[str] = field(default_factory=set)
    trades: dict[str, dict[str, Any]] = field(default_factory=dict)
    requests: list[tuple[str, str]] = field(default_factory=list)
    url: str = ""

    def __post_init__(self) -> None:
        self._creds_by_address: dict[str, Credentials] = {}
        self._creds_by_key: dict[str, Credentials] = {}
        self._faults: dict[tuple[str, str], deque[Fault]] = defaultdict(deque)
        self._runner: web.AppRunner | None = None
        self._stopping = asyncio.Event()

    # --- set-up by tests ----------------------------------------------------------------------

    def add_market(self, market: FakeMarket) -> None:
        self.markets[market.token_id] = market

    def register_credentials(self, address: str) -> Credentials:
        """Issue L2 credentials for `address` as if created earlier (for tests that configure them)."""
        creds = Credentials(
            address=address,
            api_key=str(uuid.uuid4()),
            secret=base64.urlsafe_b64encode(os.urandom(32)).decode(),
            passphrase=secrets.token_hex(16),
        )
        self._creds_by_address[address.lower()] = creds
        self._creds_by_key[creds.api_key] = creds
        return creds

    def fail_next(self, method: str, path: str, *faults: Fault) -> None:
        """Queue faults for the next requests to `method path`, one fault per request."""
        self._faults[(method.upper(), path)].extend(faults)

    def balance_of(self, address: str) -> int:
        return self.collateral.setdefault(address.lower(), round(self.starting_collateral * BASE_UNITS))

    def paths(self) -> list[str]:
        return [f"{method} {path}" for method, path in self.requests]

    # --- serving --------------------------------------------------------------------------------

    def build_app(self) -> web.Application:
        app = web.Application(middlewares=[self._record_and_inject])
        app.router.add_get("/book", self._book)
        app.router.add_get("/tick-size", self._tick_size)
        app.router.add_get("/neg-risk", self._neg_risk)
        app.router.add_get("/version", self._version)
        app.router.add_post("/auth/api-key", self._create_api_key)
        app.router.add_get("/auth/derive-api-key", self._derive_api_key)
        app.router.add_post("/order", self._post_order)
        app.router.add_delete("/order", self._cancel_order)
        app.router.add_get("/data/trades", self._trades)
        app.router.add_get("/balance-allowance", self._balance_allowance)
        return app

    async def start(self) -> str:
        self._runner, port = await serve_on_loopback(self.build_app())
        self.url = f"http://127.0.0.1:{port}"
        return self.url

    async def close(self) -> None:
        self._stopping.set()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    @web.middleware
    async def _record_and_inject(self, request: web.Request, handler: Any) -> web.StreamResponse:
        self.requests.append((request.method, request.path))
        queue = self._faults.get((request.method, request.path))
        fault = queue.popleft() if queue else None
        if fault is not None and fault.kind == "drop":
            if request.transport is not None:
                request.transport.close()
            # Nothing reaches the client: its connection is already gone.
            raise web.HTTPServiceUnavailable()
        if fault is not None and fault.kind == "status":
            if isinstance(fault.body, str):
                return web.Response(status=fault.status, text=fault.body)
            return web.json_response(fault.body, status=fault.status)
        if fault is not None and fault.kind == "delay":
            # Wait out the delay (cut short when the fake stops), then answer normally.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), timeout=fault.seconds)
        return await handler(request)

    # --- authentication -----------------------------------------------------------------------

    def _verify_l1(self, request: web.Request) -> str:
        address = request.headers.get("POLY_ADDRESS", "")
        recovered = clob_auth_signer(
            self.chain_id,
            address,
            request.headers.get("POLY_TIMESTAMP", ""),
            int(request.headers.get("POLY_NONCE", "0")),
            request.headers.get("POLY_SIGNATURE", ""),
        )
        if not address or recovered != address:
            raise web.HTTPUnauthorized(
                text=json.dumps({"error": "Invalid L1 Request headers"}), content_type="application/json"
            )
        return address

    def _verify_l2(self, request: web.Request, body: str) -> Credentials:
        creds = self._creds_by_key.get(request.headers.get("POLY_API_KEY", ""))
        unauthorized = web.HTTPUnauthorized(
            text=json.dumps({"error": "Unauthorized/Invalid api key"}), content_type="application/json"
        )
        if (
            creds is None
            or creds.passphrase != request.headers.get("POLY_PASSPHRASE")
            or creds.address != request.headers.get("POLY_ADDRESS")
        ):
            raise unauthorized
        if not valid_l2_signature(
            creds.secret,
            request.headers.get("POLY_TIMESTAMP", ""),
            request.method,
            request.path,
            body,
            request.headers.get("POLY_SIGNATURE", ""),
        ):
            raise unauthorized
        return creds

    async def _create_api_key(self, request: web.Request) -> web.Response:
        address = self._verify_l1(request)
        if address.lower() in self._creds_by_address:
            return _error(400, "Could not create api key")
        creds = self.register_credentials(address)
        return web.json_response({"apiKey": creds.api_key, "secret": creds.secret, "passphrase": creds.passphrase})

    async def _derive_api_key(self, request: web.Request) -> web.Response:
        address = self._verify_l1(request)
        creds = self._creds_by_address.get(address.lower())
        if creds is None:
            return _error(400, "Could not derive api key!")
        return web.json_response({"apiKey": creds.api_key, "secret": creds.secret, "passphrase": creds.passphrase})

    # --- market data ----------------------------------------------------------------------------

    def _market(self, request: web.Request) -> FakeMarket:
        token_id = request.query.get("token_id", "")
        if not token_id:
            raise web.HTTPBadRequest(text=json.dumps({"error": "Invalid token id"}), content_type="application/json")
        market = self.markets.get(token_id)
        if market is None:
            raise web.HTTPNotFound(
                text=json.dumps({"error": "No orderbook exists for the requested token id"}),
                content_type="application/json",
            )
        return market

    async def _book(self, request: web.Request) -> web.Response:
        market = self._market(request)
        return web.json_response(
            {
                "market": market.condition_id,
                "asset_id": market.token_id,
                "timestamp": "1700000000000",
                "hash": hashlib.sha1(repr((market.bids, market.asks)).encode()).hexdigest(),
                # The real CLOB lists both sides worst price first (best last).
                "bids": [{"price": _fmt(p), "size": _fmt(s)} for p, s in sorted(market.bids)],
                "asks": [{"price": _fmt(p), "size": _fmt(s)} for p, s in sorted(market.asks, reverse=True)],
                "min_order_size": _fmt(market.min_order_size),
                "tick_size": market.tick_size,
                "neg_risk": market.neg_risk,
                "last_trade_price": "0.5",
            }
        )

    async def _tick_size(self, request: web.Request) -> web.Response:
        return web.json_response({"minimum_tick_size": float(self._market(request).tick_size)})

    async def _neg_risk(self, request: web.Request) -> web.Response:
        return web.json_response({"neg_risk": self._market(request).neg_risk})

    async def _version(self, request: web.Request) -> web.Response:
        return web.json_response({"version": 2})

    # --- trading ---------------------------------------------------------------------------------

    async def _post_order(self, request: web.Request) -> web.Response:
        body = await request.text()
        creds = self._verify_l2(request, body)
        payload = json.loads(body)
        order = payload["order"]
        if payload.get("owner") != creds.api_key:
            return _error(400, "the order owner has to be the owner of the API KEY")
        order_type = payload.get("orderType")
        if order_type not in ("FAK", "FOK"):
            return _error(400, f"this fake matches FAK and FOK orders only, received {order_type}")
        market = self.markets.get(order["tokenId"])
        if market is None:
            return _error(400, "Invalid token id")
        signer, order_id = order_signer(order, self.chain_id, market.neg_risk)
        if signer is None or signer != order["signer"] or signer != creds.address:
            return _error(400, "invalid signature")
        maker_amount, taker_amount = int(order["makerAmount"]), int(order["takerAmount"])
        side = order["side"]
        if side == "BUY":
            size, price = taker_amount / BASE_UNITS, maker_amount / taker_amount
            funds = self.balance_of(order["maker"])
        else:
            size, price = maker_amount / BASE_UNITS, taker_amount / maker_amount
            funds = self.shares[(order["maker"].lower(), market.token_id)]
        if size < market.min_order_size:
            return _error(400, f"Size ({_fmt(size)}) lower than the minimum: {_fmt(market.min_order_size)}")
        if maker_amount > funds:
            return _error(400, "not enough balance / allowance")
        self.orders.append(
            ReceivedOrder(
                order_id=order_id,
                token_id=market.token_id,
                side=side,
                size=size,
                price=price,
                order_type=order_type,
                owner=payload["owner"],
                maker=order["maker"],
                signer=signer,
                payload=payload,
            )
        )
        levels = market.asks if side == "BUY" else market.bids
        fills = _match(levels, side, price, size)
        taken_shares = sum(take for _, take in fills)
        taken_usdc = sum(take * levels[index][0] for index, take in fills)
        remaining = size - taken_shares
        if order_type == "FOK" and remaining > 1e-9:
            return _error(400, "order couldn't be fully filled. FOK orders are fully filled or killed.")
        if taken_shares <= 0:
            if self.unmatched_style == "error":
                return _error(400, UNMATCHED_FAK)
            return web.json_response(
                {
                    "success": True,
                    "errorMsg": "",
                    "orderID": order_id,
                    "status": "unmatched",
                    "makingAmount": "0",
                    "takingAmount": "0",
                }
            )
        for index, take in fills:
            level_price, level_size = levels[index]
            levels[index] = (level_price, round(level_size - take, 6))
        levels[:] = [level for level in levels if level[1] > 1e-9]
        maker_key = order["maker"].lower()
        usdc_units, share_units = round(taken_usdc * BASE_UNITS), round(taken_shares * BASE_UNITS)
        if side == "BUY":
            self.collateral[maker_key] = self.balance_of(maker_key) - usdc_units
            self.shares[(maker_key, market.token_id)] += share_units
            making, taking = taken_usdc, taken_shares
        else:
            self.collateral[maker_key] = self.balance_of(maker_key) + usdc_units
            self.shares[(maker_key, market.token_id)] -= share_units
            making, taking = taken_shares, taken_usdc
        trade_id = str(uuid.uuid4())
        tx_hash = "0x" + secrets.token_hex(32)
        self.trades[trade_id] = {
            "id": trade_id,
            "status": "MINED",
            "transaction_hash": tx_hash,
            "asset_id": market.token_id,
            "side": side,
        }
        answer: dict[str, Any] = {
            "success": True,
            "errorMsg": "",
            "orderID": order_id,
            "status": "matched",
            "makingAmount": _fmt(making),
            "takingAmount": _fmt(taking),
            "tradeIDs": [trade_id],
        }
        if self.trade_resolution == "inline":
            answer["transactionsHashes"] = [tx_hash]
        return web.json_response(answer)

    async def _trades(self, request: web.Request) -> web.Response:
        self._verify_l2(request, "")
        trade = self.trades.get(request.query.get("id", ""))
        data = [trade] if trade else []
        return web.json_response({"data": data, "next_cursor": "LTE=", "limit": 100, "count": len(data)})

    async def _cancel_order(self, request: web.Request) -> web.Response:
        body = await request.text()
        self._verify_l2(request, body)
        order_id = json.loads(body).get("orderID", "")
        self.cancel_requests.append(order_id)
        if order_id in self.resting:
            self.resting.discard(order_id)
            return web.json_response({"canceled": [order_id], "not_canceled": {}})
        return web.json_response({"canceled": [], "not_canceled": {order_id: "Order not found or already canceled"}})

    async def _balance_allowance(self, request: web.Request) -> web.Response:
        creds = self._verify_l2(request, "")
        if request.query.get("asset_type") == "CONDITIONAL":
            units = self.shares[(creds.address.lower(), request.query.get("token_id", ""))]
        else:
            units = self.balance_of(creds.address)
        allowances = {EXCHANGE_V2: MAX_ALLOWANCE, NEG_RISK_EXCHANGE_V2: MAX_ALLOWANCE}
        return web.json_response({"balance": str(units), "allowances": allowances})
