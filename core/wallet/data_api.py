"""Followed wallets' trades from the Polymarket Data API: `GET {base_url}/activity?user=…&type=TRADE`.

Per poll, each wallet's newest activity page (`limit`, `sortBy=TIMESTAMP`, `sortDirection=DESC`) is
fetched; while a whole page is new the next page (`offset`) is fetched too, up to `max_pages`, so a burst
between polls is not lost. Records have the shape `core.wallet.records` checks.

Rules:
- Deduplicated on (transactionHash, asset) with a bounded memory of seen keys (one transaction can trade
  several outcome tokens). Keys met again are counted in `stats.duplicates_skipped` (mostly the normal
  overlap between polls).
- Nothing old is copied: a wallet's first successful page is a baseline (everything already there is
  marked seen and counted stale), and any later record older than `stale_after_seconds` at first sight
  is skipped and counted in `stats.stale_skipped`.
- Rounds of requests are at least `poll_interval` apart: poll() returns [] at once until the next round
  is due (so the caller may poll often and still stop promptly). Requests within a round are at least
  1/`max_requests_per_second` apart (the only sleep, through the injected `sleep`). The Data API's
  published limit is 1,000 requests per 10 s (general; /trades 200 per 10 s); the default here, 5 per
  second, is a twentieth of the general one.
- 429: wait Retry-After (seconds or HTTP date, capped at `max_retry_after`) or, without it, an exponential
  backoff with jitter from the injected rng; 5xx, timeouts, network errors and unusable bodies (not JSON,
  not a list) back off the same way; the round stops there and the first poll after the delay resumes.
  A 4xx other than 429 skips that wallet for this round. None of these is fatal: counted in
  `stats.errors` and, by kind, in `error_counts`, and logged with the wallet masked.
- A record with missing or mistyped fields is skipped and counted once in `stats.malformed_skipped`;
  the rest of the page is used.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import random
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import aiohttp

from core.wallet.base import SourceStats, WalletTrade
from core.wallet.polling import BoundedKeySet, RequestPacer, backoff_delay, parse_retry_after
from core.wallet.records import MalformedRecordError, is_wallet_address, parse_activity_record
from utils.http_body import BodyTooLargeError, read_capped
from utils.secrets import mask_addresses, mask_wallet

logger = logging.getLogger(__name__)

DEFAULT_MAX_REQUESTS_PER_SECOND = 5.0
MAX_PAGE_LIMIT = 500  # the API's own maximum for `limit`
MAX_OFFSET = 10_000  # the API's own maximum for `offset`
MAX_BODY_BYTES = 5 * 1024 * 1024  # a full 500-record page is well under 1 MB
MALFORMED_LOGGED_PER_PAGE = 5
ERROR_KINDS = ("rate_limited", "server_error", "client_error", "timeout", "network", "bad_response")
USER_AGENT = "polymarket-copy-bot (wallet monitor)"


class _FetchFailed(Exception):
    """One request failed; `kind` is one of ERROR_KINDS."""

    def __init__(self, kind: str, detail: str, retry_after: float | None = None) -> None:
        # aiohttp errors can quote the request URL, which names the wallet: mask addresses before logging.
        self.detail = mask_addresses(detail)
        super().__init__(self.detail)
        self.kind = kind
        self.retry_after = retry_after


def _utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(slots=True)
class CatchUp:
    """What a wallet's first poll after a restart found: copied, already in the ledger, too old."""

    copied: int = 0
    already_acted: int = 0
    stale: int = 0
    newest_stale: datetime | None = None

    def skip(self, trade: WalletTrade) -> None:
        self.stale += 1
        if self.newest_stale is None or trade.timestamp > self.newest_stale:
            self.newest_stale = trade.timestamp

    def log(self, wallet: str, stale_after: float) -> None:
        level = logging.WARNING if self.stale else logging.INFO
        newest = f", the newest of them at {self.newest_stale.isoformat()}" if self.newest_stale else ""
        logger.log(
            level,
            "Data API catch-up after restart for wallet %s: %d trade(s) made while the bot was down are copied now, "
            "%d already in the ledger skipped, %d older than STALE_TRADE_SECONDS=%gs skipped (not copied)%s",
            mask_wallet(wallet),
            self.copied,
            self.already_acted,
            self.stale,
            stale_after,
            newest,
        )


def _fingerprint(record: object) -> str:
    """A stable key for a record we could not parse, so it is counted and logged once, not every poll."""
    text = json.dumps(record, sort_keys=True, default=repr)
    return hashlib.sha256(text.encode()).hexdigest()


class DataApiTradeSource:
    """A `TradeSource` polling the Polymarket Data API's /activity endpoint for each followed wallet."""

    def __init__(
        self,
        wallets: Sequence[str],
        *,
        base_url: str,
        session: aiohttp.ClientSession | None = None,
        stale_after_seconds: float = 300.0,
        poll_interval: float = 5.0,
        clock: Callable[[], datetime] = _utc_now,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
        page_limit: int = 100,
        monotonic: Callable[[], float] = time.monotonic,
        max_requests_per_second: float = DEFAULT_MAX_REQUESTS_PER_SECOND,
        request_timeout: float = 10.0,
        max_pages: int = 5,
        seen_capacity: int = 20_000,
        backoff_base: float = 1.0,
        backoff_cap: float = 60.0,
        max_retry_after: float = 300.0,
        rng: random.Random | None = None,
        max_body_bytes: int = MAX_BODY_BYTES,
    ) -> None:
        self._wallets = self._checked_wallets(wallets)
        if not 1 <= page_limit <= MAX_PAGE_LIMIT:
            raise ValueError(f"page_limit: expected 1..{MAX_PAGE_LIMIT} (the API's maximum), received {page_limit}")
        if max_pages < 1 or (max_pages - 1) * page_limit > MAX_OFFSET:
            raise ValueError(f"max_pages: expected 1..{MAX_OFFSET // page_limit + 1}, received {max_pages}")
        for name, value in (
            ("stale_after_seconds", stale_after_seconds),
            ("poll_interval", poll_interval),
            ("request_timeout", request_timeout),
            ("backoff_base", backoff_base),
            ("backoff_cap", backoff_cap),
        ):
            if not value > 0:
                raise ValueError(f"{name}: expected a number of seconds > 0, received {value!r}")
        # Every key of one round must still be remembered at the next, or a forgotten one could be re-copied.
        needed = 2 * len(self._wallets) * page_limit * max_pages
        if seen_capacity < needed:
            raise ValueError(f"seen_capacity: expected at least {needed} for these wallets/pages, got {seen_capacity}")
        if not base_url.startswith(("http://", "https://")):
            raise ValueError(f"DATA_API_URL: expected an http(s) URL, received {base_url!r}")

        self.stats = SourceStats()
        self.error_counts: dict[str, int] = dict.fromkeys(ERROR_KINDS, 0)
        self._url = base_url.rstrip("/") + "/activity"
        self._session = session
        self._owns_session = session is None
        self._stale_after = stale_after_seconds
        self._poll_interval = poll_interval
        self._clock = clock
        self._sleep = sleep
        self._monotonic = monotonic
        self._page_limit = page_limit
        self._max_pages = max_pages
        self._timeout = aiohttp.ClientTimeout(total=request_timeout)
        self._backoff_base = backoff_base
        self._backoff_cap = backoff_cap
        self._max_retry_after = max_retry_after
        self._rng = rng if rng is not None else random.Random()
        self._max_body_bytes = max_body_bytes
        self._pacer = RequestPacer(max_requests_per_second, monotonic=monotonic, sleep=sleep)
        self._seen = BoundedKeySet(seen_capacity)
        self._bad_seen = BoundedKeySet(seen_capacity)
        self._baselined: set[str] = set()
        self._catching_up: set[str] = set()
        self._next_poll_at: float | None = None
        self._failures = 0
        self._closed = False

    @staticmethod
    def _checked_wallets(wallets: Sequence[str]) -> list[str]:
        cleaned = [wallet.strip() for wallet in wallets]
        if not cleaned:
            raise ValueError("TARGET_WALLETS: the data_api source needs at least one wallet address to follow")
        bad = [wallet for wallet in cleaned if not is_wallet_address(wallet)]
        if bad:
            raise ValueError(f"TARGET_WALLETS: expected 0x followed by 40 hex characters, received {bad!r}")
        # dict.fromkeys keeps the operator's order while dropping repeats (any case).
        return list(dict.fromkeys(wallet.lower() for wallet in cleaned))

    def resume(self, acted_keys: Iterable[tuple[str, str]], wallets_seen: Iterable[str]) -> None:
        """Continue after a restart from the trade ledger: never copy twice, never silently drop a fresh trade.

        `acted_keys` are the (transactionHash, asset) pairs the ledger already holds, oldest first (the
        newest are kept when there are more than the memory holds): met again they are duplicates. A
        followed wallet the ledger has seen before gets no baseline: its first page is a catch-up, copying
        the trades no older than `stale_after_seconds` and logging what it skipped.
        """
        if self.stats.polls:
            raise RuntimeError("resume() must come before the first poll()")
        for key in acted_keys:
            self._seen.add(key)
        known = {wallet.lower() for wallet in wallets_seen}
        for wallet in self._wallets:
            if wallet in known:
                self._baselined.add(wallet)
                self._catching_up.add(wallet)

    @property
    def wallets(self) -> list[str]:
        """The followed wallets, lower-cased, in the configured order."""
        return list(self._wallets)

    @property
    def seen_count(self) -> int:
        """How many (transactionHash, asset) keys are remembered now (at most `seen_capacity`)."""
        return len(self._seen)

    @property
    def seconds_until_next_poll(self) -> float:
        """0 when a poll() would query the API now; otherwise the poll interval or backoff still to run."""
        if self._next_poll_at is None:
            return 0.0
        return max(0.0, self._next_poll_at - self._monotonic())

    async def poll(self) -> list[WalletTrade]:
        """Every wallet's new trades, oldest first, when a poll is due; [] at once while it is not.

        Returning at once (rather than sleeping until due) lets the caller poll often and still stop
        promptly; the interval and any backoff are kept here, so polling often never hammers the API.
        """
        if self._closed:
            raise RuntimeError("poll() on a closed DataApiTradeSource; build a new source")
        if self.seconds_until_next_poll > 0:
            return []
        self.stats.polls += 1
        self._next_poll_at = self._monotonic() + self._poll_interval

        trades: list[WalletTrade] = []
        rejected = False
        for wallet in self._wallets:
            try:
                await self._poll_wallet(wallet, trades)
            except _FetchFailed as failure:
                delay = self._record_failure(wallet, failure)
                if failure.kind != "client_error":
                    break  # the host is unhappy: stop this round, the next poll resumes after the delay
                rejected = True
                logger.error(
                    "Data API rejected the request for wallet %s (%s); check DATA_API_URL and TARGET_WALLETS; "
                    "other wallets go on, next poll in %.1fs",
                    mask_wallet(wallet),
                    failure.detail,
                    delay,
                )
        else:
            if not rejected:
                self._failures = 0
        trades.sort(key=lambda trade: trade.timestamp)
        self.stats.trades_emitted += len(trades)
        return trades

    def _record_failure(self, wallet: str, failure: _FetchFailed) -> float:
        """Count the failure and push the next poll back; returns the delay chosen."""
        self._failures += 1
        self.stats.errors += 1
        self.error_counts[failure.kind] += 1
        if failure.kind == "rate_limited" and failure.retry_after is not None:
            delay = min(failure.retry_after, self._max_retry_after)
        else:
            delay = backoff_delay(
                self._failures, base=self._backoff_base, cap=self._backoff_cap, jitter=self._rng.random()
            )
        self._next_poll_at = max(self._next_poll_at or 0.0, self._monotonic() + delay)
        if failure.kind != "client_error":
            logger.warning(
                "Data API %s while polling wallet %s: %s; next poll in %.1fs (failure %d in a row)",
                failure.kind,
                mask_wallet(wallet),
                failure.detail,
                delay,
                self._failures,
            )
        return delay

    async def _poll_wallet(self, wallet: str, out: list[WalletTrade]) -> None:
        """Append the wallet's new trades to `out` page by page, so a later page failing loses nothing."""
        baseline = wallet not in self._baselined
        catch_up = CatchUp() if wallet in self._catching_up else None
        self._catching_up.discard(wallet)
        now = self._clock()
        try:
            await self._poll_pages(wallet, out, baseline, now, catch_up)
        except _FetchFailed:
            if catch_up is not None:
                self._catching_up.add(wallet)  # the summary comes with the next complete poll
            raise
        if catch_up is not None:
            catch_up.log(wallet, self._stale_after)

    async def _poll_pages(
        self, wallet: str, out: list[WalletTrade], baseline: bool, now: datetime, catch_up: CatchUp | None
    ) -> None:
        for page in range(self._max_pages):
            records = await self._fetch(wallet, offset=page * self._page_limit)
            new_on_page: list[WalletTrade] = []
            reached_known = False
            malformed_logged = 0
            for record in records:
                try:
                    trade = parse_activity_record(record)
                except MalformedRecordError as e:
                    if self._bad_seen.add(_fingerprint(record)):
                        self.stats.malformed_skipped += 1
                        if malformed_logged < MALFORMED_LOGGED_PER_PAGE:
                            malformed_logged += 1
                            logger.warning("Data API record for wallet %s skipped: %s", mask_wallet(wallet), e.reason)
                    continue
                if not self._seen.add(trade.dedup_key):
                    self.stats.duplicates_skipped += 1
                    reached_known = True
                    if catch_up is not None:
                        catch_up.already_acted += 1
                elif baseline or (now - trade.timestamp).total_seconds() > self._stale_after:
                    self.stats.stale_skipped += 1
                    reached_known = True
                    if catch_up is not None:
                        catch_up.skip(trade)
                else:
                    new_on_page.append(trade)
                    if catch_up is not None:
                        catch_up.copied += 1
            out.extend(reversed(new_on_page))  # the API answers newest first
            if baseline:
                self._baselined.add(wallet)
                logger.info(
                    "Data API baseline for wallet %s: %d existing trade(s) marked seen, none copied",
                    mask_wallet(wallet),
                    len(records),
                )
                return
            if reached_known or len(records) < self._page_limit:
                return
        logger.warning(
            "wallet %s had more than %d new trades since the last poll; older ones beyond that were not fetched",
            mask_wallet(wallet),
            self._max_pages * self._page_limit,
        )

    def _session_for_request(self) -> aiohttp.ClientSession:
        # Created on first use, inside the running loop, as aiohttp requires.
        if self._session is None:
            self._session = aiohttp.ClientSession(headers={"User-Agent": USER_AGENT})
        return self._session

    async def _fetch(self, wallet: str, *, offset: int) -> list[Any]:
        """One GET /activity page; raises _FetchFailed with the kind of failure."""
        await self._pacer.wait()
        params = {
            "user": wallet,
            "type": "TRADE",
            "limit": str(self._page_limit),
            "offset": str(offset),
            "sortBy": "TIMESTAMP",
            "sortDirection": "DESC",
        }
        session = self._session_for_request()
        try:
            async with session.get(self._url, params=params, timeout=self._timeout) as response:
                if response.status == 429:
                    retry_after = parse_retry_after(response.headers.get("Retry-After"), self._clock())
                    raise _FetchFailed("rate_limited", "HTTP 429 Too Many Requests", retry_after)
                if response.status >= 500:
                    raise _FetchFailed("server_error", f"HTTP {response.status}")
                if response.status >= 300:
                    raise _FetchFailed("client_error", f"HTTP {response.status}: {await self._snippet(response)}")
                body = await self._read_capped(response)
        except TimeoutError as e:
            raise _FetchFailed("timeout", f"no complete answer within {self._timeout.total}s") from e
        except aiohttp.ClientError as e:
            raise _FetchFailed("network", f"{type(e).__name__}: {e}") from e
        return self._records(body)

    @staticmethod
    async def _snippet(response: aiohttp.ClientResponse) -> str:
        text = (await response.content.read(200)).decode("utf-8", errors="replace")
        return " ".join(text.split()) or "(empty body)"

    async def _read_capped(self, response: aiohttp.ClientResponse) -> bytes:
        try:
            return await read_capped(response, self._max_body_bytes)
        except BodyTooLargeError as e:
            # an endless or absurd body is a broken server or proxy: stop reading rather than buffer it
            raise _FetchFailed("bad_response", str(e)) from e

    def _records(self, body: bytes) -> list[Any]:
        """The JSON list of records, or _FetchFailed(bad_response); an unusable body counts as one malformed."""
        try:
            payload = json.loads(body)
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            self.stats.malformed_skipped += 1
            start = " ".join(body[:80].decode("utf-8", errors="replace").split())
            raise _FetchFailed("bad_response", f"expected a JSON list of activity records, received {start!r}") from e
        if not isinstance(payload, list):
            self.stats.malformed_skipped += 1
            raise _FetchFailed(
                "bad_response", f"expected a JSON list of activity records, received a {type(payload).__name__}"
            )
        return payload

    async def close(self) -> None:
        """Close the HTTP session if this source opened it; a closed source cannot be polled again."""
        self._closed = True
        if self._owns_session and self._session is not None and not self._session.closed:
            await self._session.close()
