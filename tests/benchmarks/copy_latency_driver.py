"""The bot side of tests/test_batch_performance.py: the trade executor on the paper client, in a process of its
own, copying trades at a steady pace when told to and reporting each run's figures as one JSON line.

    .venv/bin/python tests/benchmarks/copy_latency_driver.py --state-dir DIR
    stdin:  {"cmd": "run", "label": "without_mcp", "seconds": 10.0, "rate": 200}   stdout: one JSON line per run
            {"cmd": "quit"} (or end of input)                                        exit 0

It is built like `python main.py` builds the bot (CircuitBreaker.from_settings, TradeExecutor with the paper
books re-anchored at each copied price, the risk snapshot published to STATE_DIR every 0.25 s), with limits
wide enough that every copy runs every check and is executed: the run measures the path, not the denials.
The paper client has zero simulated latency, so the executor's decision -> ack window contains no await:
it is pure CPU work of the bot, and only the machine (the scheduler, caches) can stretch it.

Per run it reports the executor's own decision -> ack latencies and the CPU time this thread spent inside
each of those windows (read through the executor's injectable `timer_ns`: wall growing without CPU growing
= time spent waiting for a core; CPU growing = the same work running slower, e.g. colder caches), the wall
time of each whole execute_copy call (which also awaits the breaker's fsync'd state write after the ack),
the time from a trade's arrival (its slot in the pace, when the bot was idle waiting for it) to the ack,
which adds the bot's wake-up to the window, the event loop's lag (a 10 ms heartbeat), the process's CPU %,
RSS, involuntary context switches and run-queue wait (/proc/thread-self/schedstat).
Not a benchmark of its own: the name does not match bench_*.py on purpose (`make bench` would wait on it).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import resource
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from config.settings import Settings
from core.circuit_breaker import CircuitBreaker
from core.clob.base import Side
from core.clob.paper import PaperClobClient
from core.risk_snapshot import RiskSnapshotWriter, risk_snapshot_path
from core.trade_executor import TradeExecutor
from core.wallet.base import WalletTrade

TOKENS = [f"batch-token-{i}" for i in range(10)]
SHARES = 20.0
PRICE = 0.5
HEARTBEAT_SECONDS = 0.010
SNAPSHOT_EVERY_SECONDS = 0.25  # the copy loop's poll interval in core/bot.py


def driver_settings(state_dir: Path) -> Settings:
    """Paper trading with zero simulated latency and limits that never deny the benchmark's round trips."""
    return Settings(
        _env_file=None,
        state_dir=state_dir,
        copy_ratio=1.0,
        max_slippage=1.0,
        max_orders_per_minute=10_000_000,
        max_position_size=1e9,
        max_total_exposure=1e12,
        max_open_positions=1000,
        max_daily_loss=1e12,
        consecutive_loss_limit=1_000_000_000,
        paper_starting_balance=1e9,
        paper_latency_ms=0.0,
        paper_error_rate=0.0,
    )


def round_trip_trade(i: int) -> WalletTrade:
    """Trade i of a stream of buy/sell round trips over TOKENS (unique transaction hashes)."""
    return WalletTrade(
        wallet="0x" + "7" * 40,
        tx_hash=f"0x{i:064x}",
        token_id=TOKENS[(i // 2) % len(TOKENS)],
        market="0x" + "b" * 64,
        side=Side.BUY if i % 2 == 0 else Side.SELL,
        size=SHARES,
        price=PRICE,
        timestamp=datetime.now(UTC),
    )


def schedstat() -> tuple[int, int]:
    """(ns on a CPU, ns runnable but waiting for one) of this process's main thread; (0, 0) off Linux."""
    try:
        fields = Path("/proc/thread-self/schedstat").read_text().split()
    except OSError:
        return 0, 0
    return int(fields[0]), int(fields[1])


def rss_mb() -> float:
    """Resident set size now, from /proc/self/statm (0.0 off Linux)."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
    except (OSError, IndexError, ValueError):
        return 0.0
    return pages * resource.getpagesize() / 1e6


@dataclass
class RunFigures:
    """What one run measured (lists in ms)."""

    latencies_ms: list[float] = field(default_factory=list)
    window_cpu_ms: list[float] = field(default_factory=list)
    call_wall_ms: list[float] = field(default_factory=list)
    due_to_ack_ms: list[float] = field(default_factory=list)
    loop_lag_ms: list[float] = field(default_factory=list)
    outcomes: dict[str, int] = field(default_factory=dict)
    copies: int = 0
    behind: int = 0  # copies started late because the previous one overran its slot


class Driver:
    """One executor, one paper client, one snapshot writer: the bot's copy path without the trade source."""

    def __init__(self, state_dir: Path) -> None:
        state_dir.mkdir(parents=True, exist_ok=True)
        self.settings = driver_settings(state_dir)
        self.clob = PaperClobClient(self.settings)
        self.executor = TradeExecutor(
            self.clob,
            settings=self.settings,
            circuit_breaker=CircuitBreaker.from_settings(self.settings),
            seed_paper_books=True,
            timer_ns=self._timer_ns,
        )
        self.writer = RiskSnapshotWriter(risk_snapshot_path(state_dir))
        self.index = 0
        self._last_mark_ns = 0
        self._cpu_marks: list[int] = []

    def _timer_ns(self) -> int:
        # the executor reads its clock when it starts deciding and when the CLOB acknowledges: noting this
        # thread's CPU time at the same moments splits the window into work done and time spent waiting
        self._cpu_marks.append(time.thread_time_ns())
        now = time.perf_counter_ns()
        self._last_mark_ns = now
        return now

    async def publish_forever(self) -> None:
        """The risk snapshot, as the bot publishes it (the sidecar's monitoring reads it)."""
        while True:
            await self.writer.publish(self.executor.snapshot())
            await asyncio.sleep(SNAPSHOT_EVERY_SECONDS)

    async def run(self, label: str, seconds: float, rate: float) -> dict[str, Any]:
        """Copy at `rate` trades/s for `seconds`; the run's figures as a JSON-safe dict."""
        figures = RunFigures()
        heartbeat = asyncio.create_task(self._heartbeat(figures.loop_lag_ms))
        usage_before = resource.getrusage(resource.RUSAGE_SELF)
        run_before, wait_before = schedstat()
        wall_start = time.perf_counter()
        try:
            await self._copy_paced(figures, seconds, rate)
        finally:
            await cancel(heartbeat)
        wall = time.perf_counter() - wall_start
        usage_after = resource.getrusage(resource.RUSAGE_SELF)
        run_after, wait_after = schedstat()
        cpu = (usage_after.ru_utime - usage_before.ru_utime) + (usage_after.ru_stime - usage_before.ru_stime)
        return {
            "event": "run",
            "label": label,
            "seconds": round(wall, 4),
            "rate": rate,
            "copies": figures.copies,
            "behind": figures.behind,
            "outcomes": figures.outcomes,
            "latencies_ms": [round(v, 5) for v in figures.latencies_ms],
            "window_cpu_ms": [round(v, 5) for v in figures.window_cpu_ms],
            "call_wall_ms": [round(v, 5) for v in figures.call_wall_ms],
            "due_to_ack_ms": [round(v, 5) for v in figures.due_to_ack_ms],
            "loop_lag_ms": [round(v, 4) for v in figures.loop_lag_ms],
            "cpu_percent": round(100.0 * cpu / wall, 2) if wall > 0 else 0.0,
            "rss_mb": round(rss_mb(), 2),
            "involuntary_switches": usage_after.ru_nivcsw - usage_before.ru_nivcsw,
            "voluntary_switches": usage_after.ru_nvcsw - usage_before.ru_nvcsw,
            "runqueue_wait_ms": round((wait_after - wait_before) / 1e6, 3),
            "on_cpu_ms": round((run_after - run_before) / 1e6, 3),
        }

    async def _copy_paced(self, figures: RunFigures, seconds: float, rate: float) -> None:
        interval = 1.0 / rate if rate > 0 else 0.0
        start = time.perf_counter()
        deadline = start + seconds
        next_at = start
        while True:
            now = time.perf_counter()
            if now >= deadline:
                return
            due: float | None = None
            if next_at > now:
                # a real bot sleeps until the next trade arrives: its wake-up is part of the picture
                due = next_at
                await asyncio.sleep(next_at - now)
            elif 0 < interval < now - next_at:
                figures.behind += 1
                next_at = now  # no burst to catch up: the next trades keep their spacing
            next_at += interval
            await self._one_copy(figures, due)

    async def _one_copy(self, figures: RunFigures, due: float | None = None) -> None:
        """One copy; `due` (perf_counter s) is when the trade "arrived" if the bot was idle waiting for it."""
        trade = round_trip_trade(self.index)
        self.index += 1
        self._cpu_marks.clear()
        wall_start = time.perf_counter_ns()
        result = await self.executor.execute_copy(trade)
        wall_end = time.perf_counter_ns()
        figures.copies += 1
        key = str(result.status) if not result.reason else f"{result.status}:{result.reason}"
        figures.outcomes[key] = figures.outcomes.get(key, 0) + 1
        if result.latency_ms is not None and len(self._cpu_marks) >= 2:
            figures.latencies_ms.append(result.latency_ms)
            figures.window_cpu_ms.append((self._cpu_marks[-1] - self._cpu_marks[0]) / 1e6)
            figures.call_wall_ms.append((wall_end - wall_start) / 1e6)
            if due is not None:
                # arrival -> ack: the wake-up, the work before deciding, and the decision -> ack window
                figures.due_to_ack_ms.append((self._last_mark_ns - due * 1e9) / 1e6)

    @staticmethod
    async def _heartbeat(lags: list[float]) -> None:
        loop = asyncio.get_running_loop()
        while True:
            expected = loop.time() + HEARTBEAT_SECONDS
            await asyncio.sleep(HEARTBEAT_SECONDS)
            lags.append(max(0.0, (loop.time() - expected) * 1000.0))

    async def close(self) -> None:
        """Flush the snapshot and release the executor and the client."""
        await self.writer.publish(self.executor.snapshot(), force=True)
        await self.executor.close()
        await self.clob.close()


def parse_command(line: str) -> dict[str, Any]:
    """One command line → dict; ValueError saying what was expected."""
    try:
        command = json.loads(line)
    except json.JSONDecodeError as e:
        raise ValueError(f"expected one JSON object per line, received {line[:80]!r}: {e}") from e
    if not isinstance(command, dict) or command.get("cmd") not in ("run", "quit"):
        raise ValueError(f'expected {{"cmd": "run"|"quit", ...}}, received {line[:80]!r}')
    if command["cmd"] == "run":
        seconds, rate = command.get("seconds"), command.get("rate", 200)
        if not isinstance(seconds, int | float) or seconds <= 0 or not isinstance(rate, int | float) or rate < 0:
            raise ValueError(f"run: expected seconds > 0 and rate >= 0, received seconds={seconds!r} rate={rate!r}")
    return command


async def cancel(task: asyncio.Task[Any]) -> None:
    """Cancel one of our background tasks and wait for it to end."""
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


def emit(payload: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(payload, separators=(",", ":")) + "\n")
    sys.stdout.flush()


async def serve(state_dir: Path) -> int:
    """Answer commands from stdin until "quit" or end of input."""
    driver = Driver(state_dir)
    publisher = asyncio.create_task(driver.publish_forever())
    # warm the path (imports, first book, the breaker's first state write) before anything is measured
    await driver.run("warm-up", 0.5, 0)
    emit({"event": "ready"})
    try:
        while True:
            line = await asyncio.to_thread(sys.stdin.readline)
            if not line:
                return 0
            if not line.strip():
                continue
            try:
                command = parse_command(line)
            except ValueError as e:
                emit({"event": "error", "message": str(e)})
                continue
            if command["cmd"] == "quit":
                return 0
            emit(await driver.run(str(command.get("label", "")), float(command["seconds"]), float(command["rate"])))
    finally:
        await cancel(publisher)
        await driver.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--state-dir", type=Path, required=True, help="the bot's STATE_DIR (shared with the sidecar)")
    sys.exit(asyncio.run(serve(parser.parse_args().state_dir)))
