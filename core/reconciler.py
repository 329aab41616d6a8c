"""Live-mode reconciliation at the edges: the exchange's positions (Data API) and collateral (CLOB), read at
start and every RECONCILE_INTERVAL_SECONDS, compared with our books by `core.reconcile` (pure).

- Positions: `GET {DATA_API_URL}/positions?user=<our wallet>&sizeThreshold=0` page by page (`limit` 500,
  `offset`); `sizeThreshold=0` because the API's default (1 share) would hide small positions we hold.
- Collateral: the CLOB client's `get_balance()` (py-clob-client-v2's balance/allowance call in live mode).
- A confirmed mismatch closes the executor's `ReconcileGate` (new entries denied with `reconcile_mismatch`,
  exits pass) and sends one CRITICAL alert naming the markets; the first reconcile that agrees opens it
  again (info alert). A reconcile that cannot fetch (HTTP error, unusable answer) changes nothing: it is
  logged, counted in `failures`, and tried again at the next round.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

import aiohttp

from core.breaker_io import AlertCallback, AlertDispatcher
from core.portfolio import Portfolio
from core.reconcile import ReconcileGate, ReconcileResult, confirm, reconcile
from utils.http_body import BodyTooLargeError, read_capped
from utils.secrets import mask_addresses, mask_wallet

logger = logging.getLogger(__name__)

PAGE_LIMIT = 500  # the API's maximum
MAX_OFFSET = 10_000  # the API's maximum
MAX_BODY_BYTES = 5 * 1024 * 1024


class ReconcileFetchError(RuntimeError):
    """The exchange's figures could not be read this round: nothing is decided, the next round tries again."""


@dataclass(frozen=True, slots=True)
class ExchangePosition:
    """One outcome token the exchange says we hold."""

    token_id: str
    size: float
    market: str


def parse_position_record(record: object) -> ExchangePosition:
    """A Data API /positions record → ExchangePosition; ValueError saying which field is wrong."""
    if not isinstance(record, dict):
        raise ValueError(f"expected a position object, received {type(record).__name__}")
    asset = record.get("asset")
    if not isinstance(asset, str) or not asset.strip():
        raise ValueError(f"asset: expected a token id string, received {asset!r:.80}")
    size = record.get("size")
    if isinstance(size, bool) or not isinstance(size, int | float) or not math.isfinite(size) or size < 0:
        raise ValueError(f"size: expected a finite number of shares >= 0, received {size!r:.80}")
    title, outcome = record.get("title"), record.get("outcome")
    market = title if isinstance(title, str) else ""
    if market and isinstance(outcome, str) and outcome:
        market = f"{market} [{outcome}]"
    return ExchangePosition(asset.strip(), float(size), market)


class PositionsSource(Protocol):
    """Where the exchange's view of our positions comes from."""

    async def fetch(self, user: str) -> dict[str, ExchangePosition]:
        """Every position of `user`, by token id (raises ReconcileFetchError)."""
        ...


class DataApiPositions:
    """The Polymarket Data API's /positions for one wallet, every page."""

    def __init__(
        self,
        base_url: str,
        *,
        session: aiohttp.ClientSession | None = None,
        request_timeout: float = 10.0,
        page_limit: int = PAGE_LIMIT,
        max_body_bytes: int = MAX_BODY_BYTES,
    ) -> None:
        if not base_url.startswith(("http://", "https://")):
            raise ValueError(f"DATA_API_URL: expected an http(s) URL, received {base_url!r}")
        if not 1 <= page_limit <= PAGE_LIMIT:
            raise ValueError(f"page_limit: expected 1..{PAGE_LIMIT}, received {page_limit}")
        self._url = base_url.rstrip("/") + "/positions"
        self._session = session
        self._owns_session = session is None
        self._timeout = aiohttp.ClientTimeout(total=request_timeout)
        self._page_limit = page_limit
        self._max_body_bytes = max_body_bytes

    async def fetch(self, user: str) -> dict[str, ExchangePosition]:
        positions: dict[str, ExchangePosition] = {}
        for offset in range(0, MAX_OFFSET + 1, self._page_limit):
            page = await self._page(user, offset)
            for index, record in enumerate(page):
                try:
                    position = parse_position_record(record)
                except ValueError as e:
                    # one unreadable record makes the whole view unreliable: decide nothing this round
                    raise ReconcileFetchError(f"Data API /positions record {offset + index}: {e}") from e
                held = positions.get(position.token_id)
                size = position.size + (held.size if held else 0.0)
                positions[position.token_id] = ExchangePosition(position.token_id, size, position.market)
            if len(page) < self._page_limit:
                return positions
        raise ReconcileFetchError(f"Data API /positions: more than {MAX_OFFSET} positions, expected far fewer")

    async def _page(self, user: str, offset: int) -> list[Any]:
        params = {"user": user, "sizeThreshold": "0", "limit": str(self._page_limit), "offset": str(offset)}
        if self._session is None:
            self._session = aiohttp.ClientSession()
        try:
            async with self._session.get(self._url, params=params, timeout=self._timeout) as response:
                if response.status != 200:
                    raise ReconcileFetchError(f"Data API /positions answered HTTP {response.status}")
                body = await self._read_capped(response)
        except TimeoutError as e:
            raise ReconcileFetchError(f"Data API /positions: no answer within {self._timeout.total}s") from e
        except aiohttp.ClientError as e:
            raise ReconcileFetchError(mask_addresses(f"Data API /positions: {type(e).__name__}: {e}")) from e
        try:
            payload = json.loads(body)
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise ReconcileFetchError(
                "Data API /positions: expected a JSON list of positions, received non-JSON"
            ) from e
        if not isinstance(payload, list):
            raise ReconcileFetchError(
                f"Data API /positions: expected a JSON list of positions, received a {type(payload).__name__}"
            )
        return payload

    async def _read_capped(self, response: aiohttp.ClientResponse) -> bytes:
        try:
            return await read_capped(response, self._max_body_bytes)
        except BodyTooLargeError as e:
            raise ReconcileFetchError(f"Data API /positions: {e}") from e

    async def close(self) -> None:
        """Close the HTTP session if this source opened it."""
        if self._owns_session and self._session is not None and not self._session.closed:
            await self._session.close()


def _utc_now() -> datetime:
    return datetime.now(UTC)


class Reconciler:
    """Compares the executor's books with the exchange at start and every `interval` seconds."""

    def __init__(
        self,
        portfolio: Callable[[], Portfolio],
        gate: ReconcileGate,
        positions: PositionsSource,
        balance: Callable[[], Awaitable[float]],
        user: str,
        *,
        position_tolerance: float,
        cash_tolerance: float,
        interval: float,
        confirm_seconds: float,
        alert: AlertCallback | None = None,
        clock: Callable[[], datetime] = _utc_now,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
    ) -> None:
        for name, value in (("interval", interval), ("confirm_seconds", confirm_seconds)):
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"{name}: expected a finite number of seconds >= 0, received {value!r}")
        self._portfolio = portfolio
        self.gate = gate
        self._positions = positions
        self._balance = balance
        self._user = user
        self._wallet = mask_wallet(user)
        self.position_tolerance = position_tolerance
        self.cash_tolerance = cash_tolerance
        self.interval = interval
        self.confirm_seconds = confirm_seconds
        self._alerts = AlertDispatcher(alert)
        self._clock = clock
        self._sleep = sleep
        self.checks = 0
        self.failures = 0
        self.last_result: ReconcileResult | None = None

    async def look(self) -> ReconcileResult:
        """One comparison of our books with the exchange's (raises ReconcileFetchError)."""
        exchange = await self._positions.fetch(self._user)
        try:
            exchange_cash = float(await self._balance())
        except Exception as e:
            raise ReconcileFetchError(f"CLOB collateral balance: {type(e).__name__}: {e}") from e
        portfolio = self._portfolio()
        ours = {token_id: position.size for token_id, position in portfolio.positions.items()}
        names: dict[str, str] = {token_id: position.market for token_id, position in portfolio.positions.items()}
        names.update({token_id: position.market for token_id, position in exchange.items() if position.market})
        return reconcile(
            ours,
            {token_id: position.size for token_id, position in exchange.items()},
            now=self._clock(),
            position_tolerance=self.position_tolerance,
            our_cash=portfolio.cash,
            exchange_cash=exchange_cash,
            cash_tolerance=self.cash_tolerance,
            market_names=names,
        )

    async def reconcile(self) -> ReconcileResult | None:
        """Look, confirm a mismatch with a second look, apply the result to the gate; None if a look failed."""
        self.checks += 1
        try:
            result = await self.look()
            if not result.ok:
                logger.warning(
                    "reconcile: mismatch seen, confirming in %.0f s: %s", self.confirm_seconds, result.describe()
                )
                await self._sleep(self.confirm_seconds)
                result = confirm(result, await self.look())
        except ReconcileFetchError as e:
            self.failures += 1
            logger.warning("reconcile with the exchange skipped this round (wallet %s): %s", self._wallet, e)
            return None
        self.last_result = result
        self._apply(result)
        return result

    def _apply(self, result: ReconcileResult) -> None:
        change = self.gate.apply(result)
        if change == "closed":
            message = (
                f"RECONCILE MISMATCH: new entries halted (exits still pass). Our books and the exchange disagree "
                f"for wallet {self._wallet} beyond RECONCILE_POSITION_TOLERANCE={self.position_tolerance:g} shares "
                f"/ RECONCILE_CASH_TOLERANCE={self.cash_tolerance:g} USDC: {result.describe()}. Check the positions "
                "on Polymarket against the bot's log; entries resume at the first reconcile that agrees"
            )
            logger.critical("%s", message)
            self._alerts.notify("critical", message)
        elif change == "opened":
            message = f"Reconciled with the exchange again for wallet {self._wallet}: new entries allowed"
            logger.warning("%s", message)
            self._alerts.notify("info", message)
        elif not result.ok:
            logger.error("reconcile: still mismatched, new entries stay halted: %s", result.describe())
        else:
            logger.debug("reconcile: %d token(s) agree with the exchange", result.compared_tokens)

    async def run(self, stop: asyncio.Event) -> None:
        """Reconcile every `interval` seconds until `stop` is set (the start-up reconcile is the caller's)."""
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=self.interval)
            if stop.is_set():
                break
            try:
                await self.reconcile()
            except Exception:
                # a bug in one round must not end reconciliation for the rest of the bot's life
                self.failures += 1
                logger.exception("reconcile round failed unexpectedly; trying again in %.0f s", self.interval)

    async def close(self) -> None:
        """Release the positions source's HTTP session (when it has one)."""
        close = getattr(self._positions, "close", None)
        if close is not None:
            await close()

    async def drain_alerts(self) -> None:
        """Wait for the alerts already scheduled (shutdown, tests)."""
        await self._alerts.drain()
