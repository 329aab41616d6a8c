"""Issue 10: the copy loop stamps each poll's arrival, so the snapshot the sidecar reads carries arrival -> ack
(the wait behind earlier trades of the same poll included) beside decision -> ack."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from core.bot import CopyBot
from core.risk_snapshot import RiskSnapshotWriter
from core.wallet.base import SourceStats, WalletTrade
from tests.test_trade_executor import make_executor, trade


class OnePoll:
    """A trade source that brings three trades in one poll, then none."""

    def __init__(self, trades: list[WalletTrade]) -> None:
        self.stats = SourceStats()
        self._pending = trades

    async def poll(self) -> list[WalletTrade]:
        found, self._pending = self._pending, []
        return found

    async def close(self) -> None:
        return None


async def test_the_snapshot_carries_arrival_to_ack(tmp_path: Path) -> None:
    executor = make_executor(tmp_path)
    snapshot = tmp_path / "risk_state.json"
    bot = CopyBot(executor, OnePoll([trade(size=5.0)] * 3), RiskSnapshotWriter(snapshot, min_interval=0.0))
    stop = asyncio.Event()
    stop.set()  # one round, then the final flush
    await bot._one_round()
    await bot.run(stop)
    published = json.loads(snapshot.read_text())
    decision, arrival = published["latency_ms"], published["arrival_latency_ms"]
    assert decision["count"] == arrival["count"] == 3
    # the third trade of the poll waited for the first two: its arrival -> ack is the longest of all
    assert arrival["max"] > decision["max"]
