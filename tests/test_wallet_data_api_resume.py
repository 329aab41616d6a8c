"""The Data API source after a restart, resumed from the trade ledger, against the fake Data API on loopback:
nothing copied twice, fresh trades made during the outage caught up, older ones skipped and logged."""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from core.ledger import TradeLedger
from core.wallet.data_api import DataApiTradeSource
from tests.fakes.fake_data_api import FakeDataApi, activity_record

pytestmark = pytest.mark.integration

WALLET_A = "0x" + "a1" * 20
WALLET_B = "0x" + "b2" * 20


class FakeTime:
    def __init__(self) -> None:
        self.wall = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
        self.mono = 1_000.0

    def now(self) -> datetime:
        return self.wall

    def monotonic(self) -> float:
        return self.mono

    async def sleep(self, seconds: float) -> None:
        self.wall += timedelta(seconds=seconds)
        self.mono += seconds
        await asyncio.sleep(0)

    def ts(self, seconds_ago: float) -> float:
        return (self.wall - timedelta(seconds=seconds_ago)).timestamp()


@pytest.fixture
async def api() -> AsyncIterator[FakeDataApi]:
    async with FakeDataApi() as fake:
        yield fake


def build(api: FakeDataApi, clock: FakeTime, wallets: tuple[str, ...] = (WALLET_A,)) -> DataApiTradeSource:
    return DataApiTradeSource(
        list(wallets),
        base_url=api.base_url,
        clock=clock.now,
        monotonic=clock.monotonic,
        sleep=clock.sleep,
        rng=random.Random(3),
        stale_after_seconds=300.0,
    )


def remember(ledger: TradeLedger, record: dict[str, object]) -> None:
    ledger.record_seen_sync(
        wallet=str(record["proxyWallet"]),
        tx_hash=str(record["transactionHash"]),
        token_id=str(record["asset"]),
        market=str(record["conditionId"]),
        title="",
        outcome="",
        side=str(record["side"]),
        size=float(record["size"]),  # type: ignore[arg-type]
        price=float(record["price"]),  # type: ignore[arg-type]
        traded_at=float(record["timestamp"]),  # type: ignore[arg-type]
    )


async def test_after_a_restart_it_catches_up_copies_nothing_twice_and_logs_what_it_skipped(
    api: FakeDataApi, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    clock = FakeTime()
    acted = activity_record(WALLET_A, timestamp=clock.ts(200))  # copied before the crash
    during_outage = activity_record(WALLET_A, timestamp=clock.ts(90))  # made while the bot was down
    too_old = activity_record(WALLET_A, timestamp=clock.ts(4000))
    api.add_trades(too_old, acted, during_outage)
    ledger = TradeLedger(tmp_path / "ledger.db", clock=time.time)
    ledger.open()
    remember(ledger, acted)
    state = ledger.load_state()
    ledger.close()

    source = build(api, clock)
    source.resume(state.acted_keys, state.wallets_seen)
    with caplog.at_level(logging.INFO, logger="core.wallet.data_api"):
        trades = await source.poll()
    assert [t.tx_hash for t in trades] == [during_outage["transactionHash"]]
    assert (source.stats.duplicates_skipped, source.stats.stale_skipped) == (1, 1)
    [line] = [r.getMessage() for r in caplog.records if "catch-up" in r.getMessage()]
    assert "1 trade(s) made while the bot was down are copied now" in line
    assert "1 already in the ledger skipped" in line and "1 older than STALE_TRADE_SECONDS=300s skipped" in line
    assert WALLET_A not in line  # masked
    await source.close()


async def test_a_wallet_the_ledger_never_saw_still_gets_a_baseline(api: FakeDataApi) -> None:
    clock = FakeTime()
    api.add_trades(activity_record(WALLET_B, timestamp=clock.ts(30)))
    source = build(api, clock, (WALLET_A, WALLET_B))
    source.resume(set(), {WALLET_A})
    assert await source.poll() == []  # B is new to the ledger: its history is not copied
    assert source.stats.stale_skipped == 1
    await source.close()


async def test_resume_after_polling_started_is_refused(api: FakeDataApi) -> None:
    source = build(api, FakeTime())
    await source.poll()
    with pytest.raises(RuntimeError, match="before the first poll"):
        source.resume(set(), {WALLET_A})
    await source.close()
