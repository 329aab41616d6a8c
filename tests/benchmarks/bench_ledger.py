"""Benchmark the trade ledger: its cost per fill, and what it does to the copy path.

    .venv/bin/python tests/benchmarks/bench_ledger.py [--fills 400] [--trades 600] [--dir /tmp]

1. Cost per fill, interleaved in one run on `--dir` (the disk the state folder lives on): the ledger's
   whole per-trade write (the "seen" row, committed without an fsync, then the outcome transaction with the
   decision, order, fill, marks and equity, fsync'd) against the breaker's `update_equity` with its fsync'd
   state write, and a bare `os.fsync` of a small file (one fsync's worth on this disk).
2. The copy path on the paper client (zero simulated latency), the executor with the ledger against the
   same executor without it, alternating blocks of trades: the decision -> ack window the executor times,
   and the wall time of the whole `execute_copy` call (which also awaits the breaker's write and, with the
   ledger, the ledger's). Target: the ledger adds nothing inside decision -> ack (ratio ~1.0) and no more
   than one fsync's worth to the whole call.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from core.circuit_breaker import CircuitBreaker
from core.clob.paper import PaperClobClient
from core.ledger import LEDGER_FILE_NAME, FillRecord, OutcomeRecord, TradeLedger
from core.trade_executor import ExecutionStatus, TradeExecutor
from tests.benchmarks.copy_latency_driver import driver_settings, round_trip_trade

TOKENS = [f"bench-token-{i}" for i in range(10)]
BLOCK = 20


def pct(samples_ns: list[int] | list[float], q: float) -> float:
    ordered = sorted(samples_ns)
    return float(ordered[min(len(ordered) - 1, int(q * len(ordered)))])


def line(name: str, samples_us: list[float]) -> str:
    return f"{name:<46} p50 {pct(samples_us, 0.5):9.1f} µs  p99 {pct(samples_us, 0.99):9.1f} µs  n={len(samples_us)}"


def bench_fill_cost(folder: Path, fills: int) -> dict[str, list[float]]:
    """Interleaved: ledger per-trade write, breaker update_equity, bare fsync (µs each)."""
    ledger = TradeLedger(folder / LEDGER_FILE_NAME)
    ledger.open()
    ledger.ensure_account("paper", 1e9)
    moment = [datetime(2026, 3, 2, 14, 0, tzinfo=UTC)]

    def clock() -> datetime:
        moment[0] += timedelta(microseconds=10)
        return moment[0]

    breaker = CircuitBreaker(1e12, "0x" + "ab" * 20, folder / "circuit_breaker.json", 3600.0, clock=clock)
    breaker.update_equity(1000.0)
    probe = folder / "fsync-probe"
    out: dict[str, list[float]] = {"ledger": [], "ledger_seen": [], "breaker": [], "fsync": []}
    with probe.open("wb") as handle:
        for i in range(fills):
            start = time.perf_counter_ns()
            trade_id = ledger.record_seen_sync(
                wallet="0x" + "7" * 40,
                tx_hash=f"0x{i:064x}",
                token_id=TOKENS[i % len(TOKENS)],
                market="0x" + "b" * 64,
                title="Will the benchmark finish?",
                outcome="Yes",
                side="BUY",
                size=20.0,
                price=0.5,
                traded_at=time.time(),
            )
            seen = time.perf_counter_ns()
            ledger.record_outcome_sync(
                trade_id,
                OutcomeRecord(
                    TOKENS[i % len(TOKENS)],
                    "BUY",
                    "executed",
                    "",
                    latency_ms=0.1,
                    market="0x" + "b" * 64,
                    client_order_id=f"copy-{i}",
                    order_size=20.0,
                    limit_price=0.51,
                    exchange_order_id=f"paper-{i}",
                    order_status="FILLED",
                    fill=FillRecord(20.0, 0.5, 0.0, 0.0),
                    marks={TOKENS[i % len(TOKENS)]: 0.5},
                    equity=1000.0,
                    cash=990.0,
                ),
            )
            done = time.perf_counter_ns()
            out["ledger"].append((done - start) / 1e3)
            out["ledger_seen"].append((seen - start) / 1e3)
            start = time.perf_counter_ns()
            breaker.update_equity(1000.0 + (i % 7) * 0.01 + 0.001)
            out["breaker"].append((time.perf_counter_ns() - start) / 1e3)
            start = time.perf_counter_ns()
            handle.write(b"x" * 512)
            handle.flush()
            os.fsync(handle.fileno())
            out["fsync"].append((time.perf_counter_ns() - start) / 1e3)
    ledger.close()
    return out


async def bench_copy_path(folder: Path, trades: int) -> dict[str, dict[str, list[float]]]:
    """Alternating blocks of round trips through two executors, with and without the ledger."""
    executors: dict[str, TradeExecutor] = {}
    ledger: TradeLedger | None = None
    for label in ("without", "with"):
        state = folder / label
        state.mkdir(parents=True)
        settings = driver_settings(state)
        if label == "with":
            ledger = TradeLedger(state / LEDGER_FILE_NAME)
            await ledger.run(ledger.open)
            await ledger.run(partial(ledger.ensure_account, "paper", 1e9))
        executors[label] = TradeExecutor(
            PaperClobClient(settings),
            settings=settings,
            circuit_breaker=CircuitBreaker.from_settings(settings),
            seed_paper_books=True,
            ledger=ledger if label == "with" else None,
        )
    # a third arm: the executor without the ledger, plus one bare fsync'd append in a worker thread after
    # each call: "one fsync's worth" measured the same way, in the same run
    executors["one_fsync"] = executors.pop("without")
    arms = {"without": executors["one_fsync"], "with": executors["with"], "one_fsync": executors["one_fsync"]}
    probe = (folder / "fsync-probe").open("ab")

    def fsync_append() -> None:
        probe.write(b"x" * 512)
        probe.flush()
        os.fsync(probe.fileno())

    figures: dict[str, dict[str, list[float]]] = {label: {"window": [], "call": []} for label in arms}
    skipped = dict.fromkeys(arms, 0)
    index = 0
    while index < trades:
        for label, executor in arms.items():
            for k in range(BLOCK):
                start = time.perf_counter_ns()
                result = await executor.execute_copy(
                    round_trip_trade(index + k + (BLOCK if label == "one_fsync" else 0))
                )
                if label == "one_fsync":
                    await asyncio.to_thread(fsync_append)
                call = (time.perf_counter_ns() - start) / 1e3
                if result.status is not ExecutionStatus.EXECUTED or result.latency_ms is None:
                    # a simulated book can drift between the fetch and the order: counted, not timed
                    skipped[label] += 1
                    continue
                figures[label]["window"].append(result.latency_ms * 1e3)
                figures[label]["call"].append(call)
        index += 2 * BLOCK
    probe.close()
    if ledger is not None:
        await asyncio.to_thread(ledger.close)
    print(f"trades not filled (book drift, not timed): {skipped}")
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--fills", type=int, default=400)
    parser.add_argument("--trades", type=int, default=600)
    parser.add_argument("--dir", type=Path, default=None, help="folder on the disk to measure (default: a temp dir)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.dir) as raw:
        folder = Path(raw)
        print(f"ledger benchmark on {folder} (Python {sys.version.split()[0]}); the machine may be shared")
        cost = bench_fill_cost(folder, args.fills)
        print("\n1. cost per fill, interleaved in one run")
        print(line("ledger write per trade (seen + outcome)", cost["ledger"]))
        print(line("  of which the 'seen' row (no fsync)", cost["ledger_seen"]))
        print(line("breaker update_equity (fsync'd write)", cost["breaker"]))
        print(line("bare fsync of a small file", cost["fsync"]))
        ratio = statistics.median(cost["ledger"]) / statistics.median(cost["breaker"])
        print(f"ledger / breaker write, p50: x{ratio:.2f}")
        copy = asyncio.run(bench_copy_path(folder / "copy", args.trades))
        print("\n2. the copy path (paper client, zero simulated latency), alternating blocks")
        for label in ("without", "with"):
            print(line(f"decision -> ack, {label} the ledger", copy[label]["window"]))
        for label in ("without", "with"):
            print(line(f"whole execute_copy call, {label} the ledger", copy[label]["call"]))
        print(line("whole call without the ledger + one fsync", copy["one_fsync"]["call"]))
        w50 = pct(copy["with"]["window"], 0.5) / pct(copy["without"]["window"], 0.5)
        w99 = pct(copy["with"]["window"], 0.99) / pct(copy["without"]["window"], 0.99)
        base = pct(copy["without"]["call"], 0.5)
        added = pct(copy["with"]["call"], 0.5) - base
        fsync = pct(copy["one_fsync"]["call"], 0.5) - base
        print(f"decision -> ack with / without: p50 x{w50:.3f}, p99 x{w99:.3f} (target ~1: nothing added inside)")
        print(
            f"whole call at p50: the ledger adds {added:.1f} µs; one fsync'd append adds {fsync:.1f} µs "
            f"(target: ledger <= one fsync's worth: {'PASS' if added <= fsync else 'FAIL'})"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
