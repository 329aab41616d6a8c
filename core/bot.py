"""The copy loop: trades of the followed wallets → pre-trade checks → the CLOB, with the risk snapshot kept current."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from core.execution_result import ExecutionResult
from core.risk_snapshot import RiskSnapshotWriter
from core.trade_executor import TradeExecutor
from core.wallet.base import TradeSource

log = logging.getLogger("polymarket_bot")


@dataclass(slots=True)
class LoopCounters:
    polls: int = 0
    trades_seen: int = 0
    results: dict[str, int] = field(default_factory=dict)
    poll_errors: int = 0


class CopyBot:
    """Runs the copy loop until `stop` is set; the snapshot is flushed on the way out."""

    def __init__(
        self,
        executor: TradeExecutor,
        source: TradeSource,
        snapshot_writer: RiskSnapshotWriter,
        *,
        poll_interval: float = 0.25,
        stop_loss_interval: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
        on_trade: Callable[[str], None] | None = None,
    ) -> None:
        self.executor = executor
        self.source = source
        self.snapshot_writer = snapshot_writer
        self.poll_interval = poll_interval
        self.stop_loss_interval = stop_loss_interval
        self.counters = LoopCounters()
        self._clock = clock
        self._next_stop_loss_check = clock() + stop_loss_interval
        self._on_trade = on_trade

    async def run(self, stop: asyncio.Event) -> None:
        """Poll, copy, publish; a failing poll is logged and retried, it never ends the loop."""
        await self.snapshot_writer.publish(self.executor.snapshot(), force=True)
        while not stop.is_set():
            await self._one_round()
            await self.snapshot_writer.publish(self.executor.snapshot())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=self.poll_interval)
        await self.snapshot_writer.publish(self.executor.snapshot(), force=True)
        log.info(
            "copy loop stopped: %d trades seen, results %s, %d poll errors",
            self.counters.trades_seen,
            self.counters.results,
            self.counters.poll_errors,
        )

    async def _one_round(self) -> None:
        self.counters.polls += 1
        try:
            trades = await self.source.poll()
        except asyncio.CancelledError:
            raise
        except Exception:
            # a source problem (network, file) must not stop trading of what is already held
            self.counters.poll_errors += 1
            log.exception("polling the trade source failed; retrying next round")
            return
        arrival_ns = self.executor.now_ns()  # issue 10: arrival -> ack, the wait behind earlier trades included
        for trade in trades:
            self.counters.trades_seen += 1
            result = await self.executor.execute_copy(trade, arrival_ns)
            self._report(f"copy {trade.side} {trade.size:g}@{trade.price:.3f} token …{trade.token_id[-8:]}", result)
        if self._clock() >= self._next_stop_loss_check:
            self._next_stop_loss_check = self._clock() + self.stop_loss_interval
            for result in await self.executor.enforce_stop_losses():
                self._report(f"stop-loss exit token …{result.token_id[-8:]}", result)

    def _report(self, what: str, result: ExecutionResult) -> None:
        status = str(getattr(result.status, "value", result.status))
        self.counters.results[status] = self.counters.results.get(status, 0) + 1
        line = f"{what} → {status}{': ' + result.reason if result.reason else ''}"
        log.info(line)
        if self._on_trade is not None:
            self._on_trade(line)
