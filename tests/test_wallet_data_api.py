"""The Data API trade source against a fake Data API on loopback: real HTTP, scripted failures, injected time.

Waits (poll interval, backoff, request pacing) go through an injected sleep that moves a fake clock, so
no test waits for them; the only real wait is the request timeout case (0.2 s).
"""

from __future__ import annotations

import asyncio
import logging
import random
import re
import socket
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import aiohttp
import pytest

from core.wallet.base import TradeSource, WalletTrade
from core.wallet.data_api import DataApiTradeSource
from core.wallet.polling import backoff_delay
from tests.fakes.fake_data_api import FakeDataApi, ScriptedResponse, activity_record

pytestmark = pytest.mark.integration

WALLET_A = "0x" + "a1" * 20
WALLET_B = "0x" + "b2" * 20
WALLET_C = "0x" + "c3" * 20
WALLET_D = "0x" + "d4" * 20
START = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
SEED = 7


class FakeTime:
    """Wall clock and monotonic clock moving together, only through sleep() or advance()."""

    def __init__(self) -> None:
        self.wall = START
        self.mono = 5_000.0
        self.sleeps: list[float] = []

    def now(self) -> datetime:
        return self.wall

    def monotonic(self) -> float:
        return self.mono

    def advance(self, seconds: float) -> None:
        self.wall += timedelta(seconds=seconds)
        self.mono += seconds

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.advance(seconds)
        await asyncio.sleep(0)

    def ts(self, seconds_ago: float = 0.0) -> float:
        """Unix seconds of a trade made `seconds_ago` before the fake now."""
        return (self.wall - timedelta(seconds=seconds_ago)).timestamp()


async def poll_when_due(source: DataApiTradeSource, fake_time: FakeTime) -> list[WalletTrade]:
    """Move the fake clock to when the next poll is due, then poll: what a caller polling often sees."""
    fake_time.advance(source.seconds_until_next_poll)
    return await source.poll()


@pytest.fixture
async def api() -> AsyncIterator[FakeDataApi]:
    async with FakeDataApi() as fake:
        yield fake


@pytest.fixture
def fake_time() -> FakeTime:
    return FakeTime()


SourceFactory = Callable[..., DataApiTradeSource]


@pytest.fixture
async def make_source(api: FakeDataApi, fake_time: FakeTime) -> AsyncIterator[SourceFactory]:
    sources: list[DataApiTradeSource] = []

    def build(wallets: tuple[str, ...] = (WALLET_A,), **overrides: Any) -> DataApiTradeSource:
        options: dict[str, Any] = {
            "base_url": api.base_url,
            "clock": fake_time.now,
            "monotonic": fake_time.monotonic,
            "sleep": fake_time.sleep,
            "rng": random.Random(SEED),
            "poll_interval": 5.0,
        }
        options.update(overrides)
        source = DataApiTradeSource(list(wallets), **options)
        sources.append(source)
        return source

    yield build
    for source in sources:
        await source.close()


async def test_is_a_trade_source(make_source: SourceFactory) -> None:
    assert isinstance(make_source(), TradeSource)


async def test_asks_for_the_wallets_trades_newest_first_with_the_documented_parameters(
    api: FakeDataApi, make_source: SourceFactory
) -> None:
    await make_source(page_limit=50).poll()
    (request,) = api.requests
    assert request.path == "/activity"
    assert request.params == {
        "user": WALLET_A,
        "type": "TRADE",
        "limit": "50",
        "offset": "0",
        "sortBy": "TIMESTAMP",
        "sortDirection": "DESC",
    }


async def test_trades_present_at_start_up_are_never_copied(
    api: FakeDataApi, make_source: SourceFactory, fake_time: FakeTime
) -> None:
    api.add_trades(*(activity_record(WALLET_A, timestamp=fake_time.ts(seconds_ago=s)) for s in (3, 60, 4000)))
    source = make_source()
    assert await source.poll() == []
    assert source.stats.stale_skipped == 3

    fresh = activity_record(WALLET_A, timestamp=fake_time.ts())
    api.add_trades(fresh)
    (trade,) = await poll_when_due(source, fake_time)
    assert trade.tx_hash == fresh["transactionHash"]
    assert source.stats.trades_emitted == 1


async def test_new_trades_of_all_wallets_come_oldest_first(
    api: FakeDataApi, make_source: SourceFactory, fake_time: FakeTime
) -> None:
    source = make_source((WALLET_A, WALLET_B))
    await source.poll()  # baseline: nothing yet
    fake_time.advance(10)
    api.add_trades(
        activity_record(WALLET_A, timestamp=fake_time.ts(1), tx_hash="0xa1"),
        activity_record(WALLET_B, timestamp=fake_time.ts(3), tx_hash="0xb3"),
        activity_record(WALLET_A, timestamp=fake_time.ts(2), tx_hash="0xa2"),
    )
    trades = await source.poll()
    assert [t.tx_hash for t in trades] == ["0xb3", "0xa2", "0xa1"]
    assert [t.wallet for t in trades] == [WALLET_B, WALLET_A, WALLET_A]


async def test_a_trade_seen_in_several_polls_is_emitted_once(
    api: FakeDataApi, make_source: SourceFactory, fake_time: FakeTime
) -> None:
    source = make_source()
    await source.poll()
    api.add_trades(
        activity_record(WALLET_A, timestamp=fake_time.ts(), tx_hash="0xsame", asset="1"),
        activity_record(WALLET_A, timestamp=fake_time.ts(), tx_hash="0xsame", asset="2"),  # same tx, other token
    )
    first = await poll_when_due(source, fake_time)
    second = await poll_when_due(source, fake_time)
    assert sorted(t.dedup_key for t in first) == [("0xsame", "1"), ("0xsame", "2")]
    assert second == []
    assert source.stats.duplicates_skipped == 2


@pytest.mark.parametrize(("age", "copied"), [(299.0, True), (301.0, False), (86_400.0, False)])
async def test_a_trade_older_than_the_stale_limit_at_first_sight_is_skipped(
    api: FakeDataApi, make_source: SourceFactory, fake_time: FakeTime, age: float, copied: bool
) -> None:
    source = make_source(stale_after_seconds=300)
    await source.poll()
    fake_time.advance(5.0)  # the next poll is due now: the age below is the age at the request
    api.add_trades(activity_record(WALLET_A, timestamp=fake_time.ts(seconds_ago=age)))
    trades = await source.poll()
    assert len(trades) == (1 if copied else 0)
    assert source.stats.stale_skipped == (0 if copied else 1)


async def test_polls_are_at_least_the_interval_apart_and_never_block(
    api: FakeDataApi, make_source: SourceFactory, fake_time: FakeTime
) -> None:
    source = make_source(poll_interval=5.0)
    await source.poll()
    fake_time.advance(2.0)
    assert source.seconds_until_next_poll == pytest.approx(3.0)
    assert await source.poll() == []  # not due: answered at once, the API is not asked
    assert len(api.requests) == 1
    fake_time.advance(3.0)
    await source.poll()
    assert len(api.requests) == 2
    assert source.stats.polls == 2  # rounds that asked the API
    assert fake_time.sleeps == []


async def test_requests_to_the_host_are_paced(
    api: FakeDataApi, make_source: SourceFactory, fake_time: FakeTime
) -> None:
    source = make_source((WALLET_A, WALLET_B, WALLET_C, WALLET_D), max_requests_per_second=2.0)
    await source.poll()
    assert len(api.requests) == 4
    assert fake_time.sleeps == [pytest.approx(0.5)] * 3


async def test_a_burst_bigger_than_a_page_is_fetched_page_by_page(
    api: FakeDataApi, make_source: SourceFactory, fake_time: FakeTime
) -> None:
    source = make_source(page_limit=10)
    await source.poll()
    fake_time.advance(60)
    api.add_trades(*(activity_record(WALLET_A, timestamp=fake_time.ts(seconds_ago=30 - i)) for i in range(25)))
    api.requests.clear()
    trades = await source.poll()
    assert [r.params["offset"] for r in api.requests] == ["0", "10", "20"]
    assert len(trades) == 25
    assert [t.timestamp for t in trades] == sorted(t.timestamp for t in trades)


async def test_a_burst_beyond_the_page_cap_is_reported(
    api: FakeDataApi, make_source: SourceFactory, fake_time: FakeTime, caplog: pytest.LogCaptureFixture
) -> None:
    source = make_source(page_limit=10, max_pages=2)
    await source.poll()
    api.add_trades(*(activity_record(WALLET_A, timestamp=fake_time.ts(seconds_ago=i)) for i in range(25)))
    with caplog.at_level(logging.WARNING, logger="core.wallet.data_api"):
        trades = await poll_when_due(source, fake_time)
    assert len(trades) == 20
    assert "more than 20 new trades since the last poll" in caplog.text
    assert WALLET_A not in caplog.text


async def test_429_waits_as_long_as_retry_after_says(
    api: FakeDataApi, make_source: SourceFactory, fake_time: FakeTime
) -> None:
    source = make_source(poll_interval=1.0)
    await source.poll()
    api.add_trades(activity_record(WALLET_A, timestamp=fake_time.ts()))
    api.script(ScriptedResponse(status=429, body={"error": "slow down"}, headers={"Retry-After": "7"}))

    assert await poll_when_due(source, fake_time) == []
    assert source.error_counts["rate_limited"] == 1
    assert source.stats.errors == 1
    assert source.seconds_until_next_poll == pytest.approx(7.0)
    asked = len(api.requests)
    fake_time.advance(6.9)
    assert await source.poll() == []
    assert len(api.requests) == asked  # still backing off
    fake_time.advance(0.1)
    assert len(await source.poll()) == 1  # nothing lost


@pytest.mark.parametrize(("retry_after", "expected"), [("date", 30.0), ("100000", 300.0)])
async def test_429_retry_after_as_a_date_and_capped(
    api: FakeDataApi, make_source: SourceFactory, fake_time: FakeTime, retry_after: str, expected: float
) -> None:
    source = make_source(poll_interval=1.0, max_retry_after=300.0)
    await source.poll()
    fake_time.advance(1.0)  # the next poll is due now: the date below is 30 s after its request
    header = (
        format_datetime(fake_time.now() + timedelta(seconds=30), usegmt=True) if retry_after == "date" else retry_after
    )
    api.script(ScriptedResponse(status=429, headers={"Retry-After": header}))
    await source.poll()
    assert source.seconds_until_next_poll == pytest.approx(expected)


async def test_429_without_retry_after_backs_off_exponentially_with_seeded_jitter(
    api: FakeDataApi, make_source: SourceFactory, fake_time: FakeTime
) -> None:
    source = make_source(poll_interval=0.5, backoff_base=4.0, backoff_cap=60.0)
    api.script(*(ScriptedResponse(status=429, body=[]) for _ in range(3)))
    delays = []
    for _ in range(3):
        await poll_when_due(source, fake_time)
        delays.append(source.seconds_until_next_poll)

    rng = random.Random(SEED)
    expected = [backoff_delay(n, base=4.0, cap=60.0, jitter=rng.random()) for n in (1, 2, 3)]
    assert delays == [pytest.approx(d) for d in expected]
    assert expected[0] < expected[1] < expected[2]
    assert source.error_counts["rate_limited"] == 3

    # a success resets the count: the next failure starts from the base again
    await poll_when_due(source, fake_time)
    assert api.scripts_pending == 0
    api.script(ScriptedResponse(status=429, body=[]))
    await poll_when_due(source, fake_time)
    assert source.seconds_until_next_poll == pytest.approx(backoff_delay(1, base=4.0, cap=60.0, jitter=rng.random()))


@pytest.mark.parametrize(
    ("scripted", "kind"),
    [
        (ScriptedResponse(status=500, body={"error": "internal"}), "server_error"),
        (ScriptedResponse(status=503, raw=b"", content_type="text/plain"), "server_error"),
        (ScriptedResponse(raw=b"<html><body>Bad gateway</body></html>", content_type="text/html"), "bad_response"),
        (ScriptedResponse(raw=b'[{"proxyWallet": "0x', content_type="application/json"), "bad_response"),
        (ScriptedResponse(body={"error": "temporarily unavailable"}), "bad_response"),
        (ScriptedResponse(body="a string"), "bad_response"),
        (ScriptedResponse(body=None), "bad_response"),
    ],
    ids=["500", "503-empty", "html", "truncated-json", "object", "string", "null"],
)
async def test_a_failed_poll_is_counted_backed_off_and_loses_nothing(
    api: FakeDataApi,
    make_source: SourceFactory,
    fake_time: FakeTime,
    caplog: pytest.LogCaptureFixture,
    scripted: ScriptedResponse,
    kind: str,
) -> None:
    source = make_source(poll_interval=1.0, backoff_base=2.0)
    await source.poll()
    api.add_trades(activity_record(WALLET_A, timestamp=fake_time.ts(), tx_hash="0xkept"))
    api.script(scripted)
    with caplog.at_level(logging.WARNING, logger="core.wallet.data_api"):
        assert await poll_when_due(source, fake_time) == []
    assert source.error_counts[kind] == 1
    assert source.stats.errors == 1
    assert f"Data API {kind}" in caplog.text
    assert WALLET_A not in caplog.text
    if kind == "bad_response":
        assert source.stats.malformed_skipped == 1

    assert 1.0 <= source.seconds_until_next_poll <= 2.0  # backoff, not just the poll interval
    (trade,) = await poll_when_due(source, fake_time)
    assert trade.tx_hash == "0xkept"


async def test_an_oversized_body_is_not_buffered(api: FakeDataApi, make_source: SourceFactory) -> None:
    source = make_source(max_body_bytes=1000)
    api.script(ScriptedResponse(body=[activity_record(WALLET_A, timestamp=1.0e9) for _ in range(20)]))
    assert await source.poll() == []
    assert source.error_counts["bad_response"] == 1


async def test_bad_records_are_skipped_once_and_the_good_ones_used(
    api: FakeDataApi, make_source: SourceFactory, fake_time: FakeTime, caplog: pytest.LogCaptureFixture
) -> None:
    source = make_source()
    await source.poll()
    ts = fake_time.ts()
    page = [
        activity_record(WALLET_A, timestamp=ts, tx_hash="0xgood1"),
        {k: v for k, v in activity_record(WALLET_A, timestamp=ts).items() if k != "price"},
        activity_record(WALLET_A, timestamp=ts, price=1.5),
        activity_record(WALLET_A, timestamp=ts, side="HOLD"),
        activity_record(WALLET_A, timestamp="yesterday"),
        activity_record(WALLET_A, timestamp=ts, size="12"),
        42,
        None,
        activity_record(WALLET_A, timestamp=ts - 1, tx_hash="0xgood2"),
    ]
    api.script(ScriptedResponse(body=page), ScriptedResponse(body=page))
    with caplog.at_level(logging.WARNING, logger="core.wallet.data_api"):
        trades = await poll_when_due(source, fake_time)
        again = await poll_when_due(source, fake_time)
    assert [t.tx_hash for t in trades] == ["0xgood2", "0xgood1"]
    assert again == []
    assert source.stats.malformed_skipped == 7  # counted at first sight, not at every poll
    assert source.stats.errors == 0
    assert "missing field(s): price" in caplog.text
    assert WALLET_A not in caplog.text


async def test_a_slow_answer_times_out_and_the_next_poll_works(
    api: FakeDataApi, make_source: SourceFactory, fake_time: FakeTime
) -> None:
    source = make_source(request_timeout=1.0)
    await source.poll()
    api.add_trades(activity_record(WALLET_A, timestamp=fake_time.ts()))
    api.script(ScriptedResponse(body=[], delay=30.0))
    assert await poll_when_due(source, fake_time) == []
    assert source.error_counts["timeout"] == 1
    assert len(await poll_when_due(source, fake_time)) == 1


async def test_a_host_that_refuses_connections_is_counted_not_fatal(fake_time: FakeTime) -> None:
    with socket.socket() as probe:  # a port nothing listens on: bind, read the number, close
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    source = DataApiTradeSource(
        [WALLET_A],
        base_url=f"http://127.0.0.1:{port}",
        clock=fake_time.now,
        monotonic=fake_time.monotonic,
        sleep=fake_time.sleep,
        rng=random.Random(SEED),
    )
    try:
        assert await source.poll() == []
        assert await poll_when_due(source, fake_time) == []
        assert source.error_counts["network"] == 2
        assert source.stats.errors == 2
    finally:
        await source.close()


async def test_a_rejected_wallet_does_not_stop_the_others(
    api: FakeDataApi, make_source: SourceFactory, fake_time: FakeTime, caplog: pytest.LogCaptureFixture
) -> None:
    source = make_source((WALLET_A, WALLET_B))
    await source.poll()
    api.script(ScriptedResponse(status=400, body={"error": "invalid user"}), wallet=WALLET_A)
    api.add_trades(activity_record(WALLET_B, timestamp=fake_time.ts(), tx_hash="0xfromb"))
    with caplog.at_level(logging.ERROR, logger="core.wallet.data_api"):
        trades = await poll_when_due(source, fake_time)
    assert [t.tx_hash for t in trades] == ["0xfromb"]
    assert source.error_counts["client_error"] == 1
    assert "rejected the request" in caplog.text and "invalid user" in caplog.text
    assert WALLET_A not in caplog.text


async def test_the_first_page_after_a_failed_start_is_the_baseline(
    api: FakeDataApi, make_source: SourceFactory, fake_time: FakeTime
) -> None:
    api.add_trades(activity_record(WALLET_A, timestamp=fake_time.ts(seconds_ago=5)))
    api.script(ScriptedResponse(status=502, body=[]))
    source = make_source()
    assert await source.poll() == []
    assert (
        await poll_when_due(source, fake_time) == []
    )  # the record was already there before we could see it: not copied
    assert source.stats.stale_skipped == 1


async def test_memory_of_seen_trades_is_bounded(
    api: FakeDataApi, make_source: SourceFactory, fake_time: FakeTime
) -> None:
    source = make_source(page_limit=1, max_pages=1, seen_capacity=2)
    await source.poll()
    for i in range(6):
        fake_time.advance(5)
        api.add_trades(activity_record(WALLET_A, timestamp=fake_time.ts(), tx_hash=f"0x{i}"))
        assert [t.tx_hash for t in await source.poll()] == [f"0x{i}"]
    assert source.seen_count == 2


async def test_a_session_passed_in_is_left_open_and_an_own_one_is_closed(api: FakeDataApi, fake_time: FakeTime) -> None:
    async with aiohttp.ClientSession() as session:
        shared = DataApiTradeSource([WALLET_A], base_url=api.base_url, session=session, sleep=fake_time.sleep)
        await shared.poll()
        await shared.close()
        assert not session.closed
    own = DataApiTradeSource([WALLET_A], base_url=api.base_url, sleep=fake_time.sleep)
    await own.poll()
    await own.close()
    with pytest.raises(RuntimeError, match="closed"):
        await own.poll()


@pytest.mark.parametrize(
    ("wallets", "options", "message"),
    [
        ([], {}, "TARGET_WALLETS: the data_api source needs at least one wallet"),
        (["0x123"], {}, "TARGET_WALLETS: expected 0x followed by 40 hex characters"),
        ([WALLET_A], {"page_limit": 0}, "page_limit: expected 1..500"),
        ([WALLET_A], {"page_limit": 501}, "page_limit"),
        ([WALLET_A], {"max_pages": 0}, "max_pages"),
        ([WALLET_A], {"poll_interval": 0}, "poll_interval: expected a number of seconds > 0"),
        ([WALLET_A], {"stale_after_seconds": -1}, "stale_after_seconds"),
        ([WALLET_A], {"request_timeout": 0}, "request_timeout"),
        ([WALLET_A], {"seen_capacity": 10}, "seen_capacity: expected at least 1000"),
        ([WALLET_A], {"base_url": "data-api.polymarket.com"}, "DATA_API_URL: expected an http"),
        ([WALLET_A], {"max_requests_per_second": 0}, "max_per_second"),
    ],
)
def test_bad_configuration_is_refused_with_the_setting_named(
    wallets: list[str], options: dict[str, Any], message: str
) -> None:
    options.setdefault("base_url", "http://127.0.0.1:9")
    with pytest.raises(ValueError, match=re.escape(message)):
        DataApiTradeSource(wallets, **options)


def test_wallets_are_normalised_and_deduplicated() -> None:
    source = DataApiTradeSource([WALLET_A.upper().replace("0X", "0x"), f" {WALLET_A} ", WALLET_B], base_url="http://x")
    assert source.wallets == [WALLET_A, WALLET_B]
