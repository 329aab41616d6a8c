"""A fake Polymarket Data API: a real aiohttp app on 127.0.0.1, port 0, serving GET /activity and
GET /positions (`set_positions`, records from `position_record`; `sizeThreshold` defaults to 1 as on the real API).

It answers like the real endpoint (a JSON list of activity records, newest first, `user` / `type` /
`limit` / `offset` / `sortDirection` honoured, 400 on a bad `user` or `limit`) from a per-wallet feed
the test fills with `add_trades`, unless a scripted response is queued with `script`: those are served
first, in order, and can be anything a real server or a proxy in front of it might send (429 with
Retry-After, 500, HTML, a JSON object, records with bad fields, a slow answer).

    async with FakeDataApi() as api:
        api.add_trades(activity_record(WALLET, timestamp=now))
        api.script(ScriptedResponse(status=429, headers={"Retry-After": "7"}))
        source = DataApiTradeSource([WALLET], base_url=api.base_url, ...)
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import re
from collections import defaultdict, deque
from dataclasses import dataclass, field
from typing import Any, Self

from aiohttp import web

from tests.fakes.loopback import serve_on_loopback

_ADDRESS = re.compile(r"^0x[0-9a-fA-F]{40}$")
_counter = itertools.count(1)


def activity_record(
    wallet: str,
    *,
    timestamp: float,
    side: str = "BUY",
    size: float = 10.0,
    price: float = 0.5,
    asset: str | None = None,
    tx_hash: str | None = None,
    condition_id: str = "0x" + "ab" * 32,
    outcome: str = "Yes",
    title: str = "Will the fake market resolve Yes?",
    **overrides: Any,
) -> dict[str, Any]:
    """A Data API /activity TRADE record (the real field names); unique tx hash and asset unless given."""
    n = next(_counter)
    numeric = all(isinstance(v, int | float) and not isinstance(v, bool) for v in (size, price))
    record: dict[str, Any] = {
        "proxyWallet": wallet,
        "timestamp": timestamp,
        "conditionId": condition_id,
        "type": "TRADE",
        "size": size,
        "usdcSize": round(size * price, 6) if numeric else 0.0,  # tests pass bad sizes on purpose
        "transactionHash": tx_hash if tx_hash is not None else f"0x{n:064x}",
        "price": price,
        "asset": asset if asset is not None else str(10**76 + n),
        "side": side,
        "outcomeIndex": 0 if outcome == "Yes" else 1,
        "title": title,
        "slug": "fake-market",
        "eventSlug": "fake-event",
        "outcome": outcome,
        "name": "fake-trader",
        "pseudonym": "Fake-Trader",
    }
    record.update(overrides)
    return record


def position_record(
    wallet: str,
    *,
    asset: str,
    size: float,
    avg_price: float = 0.5,
    cur_price: float = 0.5,
    title: str = "Will the fake market resolve Yes?",
    outcome: str = "Yes",
    condition_id: str = "0x" + "ab" * 32,
    **overrides: Any,
) -> dict[str, Any]:
    """A Data API /positions record (the real field names) for `wallet` holding `size` shares of `asset`."""
    record: dict[str, Any] = {
        "proxyWallet": wallet,
        "asset": asset,
        "conditionId": condition_id,
        "size": size,
        "avgPrice": avg_price,
        "initialValue": round(size * avg_price, 6),
        "currentValue": round(size * cur_price, 6),
        "cashPnl": round(size * (cur_price - avg_price), 6),
        "percentPnl": 0.0 if avg_price == 0 else round(100 * (cur_price - avg_price) / avg_price, 4),
        "curPrice": cur_price,
        "redeemable": False,
        "mergeable": False,
        "title": title,
        "slug": "fake-market",
        "outcome": outcome,
        "outcomeIndex": 0 if outcome == "Yes" else 1,
        "negativeRisk": False,
    }
    record.update(overrides)
    return record


@dataclass
class ScriptedResponse:
    """One canned answer: JSON `body`, or `raw` bytes as they are; optionally after `delay` seconds."""

    status: int = 200
    body: Any = None
    raw: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    content_type: str = "application/json"


@dataclass(frozen=True)
class RecordedRequest:
    path: str
    params: dict[str, str]


class FakeDataApi:
    """The fake server; use as an async context manager (or start()/close())."""

    def __init__(self) -> None:
        self.requests: list[RecordedRequest] = []
        self._feeds: dict[str, list[dict[str, Any]]] = defaultdict(list)
        self._positions: dict[str, list[dict[str, Any]]] = defaultdict(list)
        self._scripts: dict[str | None, deque[ScriptedResponse]] = defaultdict(deque)
        self._runner: web.AppRunner | None = None
        self._release = asyncio.Event()
        self.base_url = ""

    def add_trades(self, *records: dict[str, Any]) -> None:
        """Add records to their wallet's feed (the wallet is the record's proxyWallet)."""
        for record in records:
            self._feeds[str(record["proxyWallet"]).lower()].append(record)

    def set_positions(self, wallet: str, *records: dict[str, Any]) -> None:
        """Replace what GET /positions answers for `wallet` (records from `position_record`)."""
        self._positions[wallet.lower()] = list(records)

    def script(self, *responses: ScriptedResponse, wallet: str | None = None) -> None:
        """Queue answers served before the feed: for one wallet's requests, or for any request."""
        self._scripts[wallet.lower() if wallet else None].extend(responses)

    @property
    def scripts_pending(self) -> int:
        return sum(len(queue) for queue in self._scripts.values())

    async def start(self) -> str:
        """Listen on 127.0.0.1 on a free port; returns the base URL."""
        app = web.Application()
        app.router.add_get("/activity", self._activity)
        app.router.add_get("/positions", self._positions_handler)
        self._runner, port = await serve_on_loopback(app)
        self.base_url = f"http://127.0.0.1:{port}"
        return self.base_url

    async def close(self) -> None:
        """Release slow answers still waiting, then stop listening."""
        self._release.set()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def _activity(self, request: web.Request) -> web.StreamResponse:
        params = dict(request.query)
        self.requests.append(RecordedRequest(request.path, params))
        page = self._user_page(params)
        if isinstance(page, web.Response):
            return page
        user, limit, offset = page
        queue = self._scripts[user.lower()] or self._scripts[None]
        if queue:
            return await self._scripted(queue.popleft())

        types = set(params.get("type", "").split(",")) - {""}
        records = [r for r in self._feeds[user.lower()] if not types or r.get("type") in types]
        newest_first = params.get("sortDirection", "DESC").upper() != "ASC"
        records.sort(
            key=lambda r: r["timestamp"] if isinstance(r.get("timestamp"), int | float) else 0, reverse=newest_first
        )
        return web.json_response(records[offset : offset + limit])

    async def _positions_handler(self, request: web.Request) -> web.StreamResponse:
        """GET /positions: `user` required; `sizeThreshold` defaults to 1.0 as on the real API (smaller
        positions are left out unless asked for); `limit` 0..500 (default 100), `offset` 0..10000."""
        params = dict(request.query)
        self.requests.append(RecordedRequest(request.path, params))
        page = self._user_page(params)
        if isinstance(page, web.Response):
            return page
        user, limit, offset = page
        try:
            threshold = float(params.get("sizeThreshold", "1.0"))
        except ValueError:
            return web.json_response({"error": "sizeThreshold must be a number"}, status=400)
        queue = self._scripts[user.lower()] or self._scripts[None]
        if queue:
            return await self._scripted(queue.popleft())
        records = [
            r
            for r in self._positions[user.lower()]
            if not isinstance(r.get("size"), int | float) or r["size"] >= threshold
        ]
        return web.json_response(records[offset : offset + limit])

    @staticmethod
    def _user_page(params: dict[str, str]) -> tuple[str, int, int] | web.Response:
        """(user, limit, offset) as both endpoints take them, or the real API's 400 for a bad one."""
        user = params.get("user", "")
        if not _ADDRESS.match(user):
            return web.json_response({"error": "user: expected 0x followed by 40 hex characters"}, status=400)
        try:
            limit = int(params.get("limit", "100"))
            offset = int(params.get("offset", "0"))
        except ValueError:
            return web.json_response({"error": "limit and offset must be integers"}, status=400)
        if not (0 <= limit <= 500 and 0 <= offset <= 10_000):
            return web.json_response({"error": "limit must be 0..500 and offset 0..10000"}, status=400)
        return user, limit, offset

    async def _scripted(self, scripted: ScriptedResponse) -> web.StreamResponse:
        if scripted.delay > 0:
            # A slow server; close() releases it at once so the test server stops promptly.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._release.wait(), scripted.delay)
        body = scripted.raw if scripted.raw is not None else json.dumps(scripted.body).encode()
        return web.Response(
            status=scripted.status, body=body, headers=scripted.headers, content_type=scripted.content_type
        )
