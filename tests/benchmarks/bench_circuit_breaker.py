"""Benchmark the circuit breaker: what it costs on the trading path.

    .venv/bin/python tests/benchmarks/bench_circuit_breaker.py [--checks 20000] [--writes 300] [--dir /tmp]

1. The pre-trade check `allows_new_entries()` when nothing changed (no write): p50/p99 per call.
2. `update_equity()` with a new figure each call (one crash-safe write each): p50/p99 per call, next to
   the baseline measured in the same run, a bare `atomic_write_json` of the same payload; and the ratio.
   Both on `--dir` (the disk the state folder lives on) and, if present, on /dev/shm (no fsync cost).
3. The pure decisions `trading_day_of` and `evaluate_daily_loss`: mean per call.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from core.breaker_rules import evaluate_daily_loss, trading_day_of, zone
from core.circuit_breaker import CircuitBreaker
from utils.atomic import atomic_write_json


def percentiles(samples_ns: list[int]) -> dict[str, float]:
    ordered = sorted(samples_ns)

    def pick(q: float) -> float:
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] / 1e3

    return {"p50_us": pick(0.50), "p99_us": pick(0.99), "max_us": ordered[-1] / 1e3, "n": len(ordered)}


def fmt(figures: dict[str, float]) -> str:
    return f"p50 {figures['p50_us']:9.1f} µs  p99 {figures['p99_us']:9.1f} µs  max {figures['max_us']:9.1f} µs"


def build(folder: Path) -> CircuitBreaker:
    moment = [datetime(2026, 3, 2, 14, 0, tzinfo=UTC)]

    def clock() -> datetime:
        moment[0] += timedelta(microseconds=10)
        return moment[0]

    breaker = CircuitBreaker(1e9, "0x" + "ab" * 20, folder / "circuit_breaker.json", 3600.0, clock=clock)
    breaker.update_equity(1000.0)
    return breaker


def bench_checks(folder: Path, checks: int) -> dict[str, float]:
    breaker = build(folder)
    samples = []
    for _ in range(checks):
        start = time.perf_counter_ns()
        breaker.allows_new_entries()
        samples.append(time.perf_counter_ns() - start)
    return percentiles(samples)


def bench_writes(folder: Path, writes: int) -> tuple[dict[str, float], dict[str, float]]:
    breaker = build(folder)
    payload = breaker.get_state()
    baseline_file = folder / "baseline.json"
    breaker_samples, baseline_samples = [], []
    for index in range(writes):  # interleaved so both see the same disk conditions
        start = time.perf_counter_ns()
        breaker.update_equity(1000.0 + (index % 2) * 0.5 + index * 1e-6)
        breaker_samples.append(time.perf_counter_ns() - start)
        start = time.perf_counter_ns()
        atomic_write_json(baseline_file, payload)
        baseline_samples.append(time.perf_counter_ns() - start)
    return percentiles(breaker_samples), percentiles(baseline_samples)


def bench_pure(calls: int) -> tuple[float, float]:
    tz = zone("America/New_York")
    now = datetime(2026, 3, 8, 7, 0, tzinfo=UTC)
    start = time.perf_counter_ns()
    for index in range(calls):
        trading_day_of(now + timedelta(seconds=index), tz)
    day_ns = (time.perf_counter_ns() - start) / calls
    start = time.perf_counter_ns()
    for index in range(calls):
        evaluate_daily_loss(1000.0, 900.0 + index % 200, 100.0)
    loss_ns = (time.perf_counter_ns() - start) / calls
    return day_ns / 1e3, loss_ns / 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checks", type=int, default=20000)
    parser.add_argument("--writes", type=int, default=300)
    parser.add_argument("--dir", type=Path, default=Path(tempfile.gettempdir()))
    args = parser.parse_args()

    folders = [("disk", args.dir)]
    if Path("/dev/shm").is_dir():
        folders.append(("tmpfs", Path("/dev/shm")))
    for label, root in folders:
        with tempfile.TemporaryDirectory(dir=root) as folder:
            checks = bench_checks(Path(folder), args.checks)
            breaker, baseline = bench_writes(Path(folder), args.writes)
        print(f"[{label}: {root}]")
        print(f"  allows_new_entries (no change, no write) {fmt(checks)}  n={checks['n']}")
        print(f"  update_equity (one write per call)       {fmt(breaker)}  n={breaker['n']}")
        print(f"  baseline atomic_write_json, same payload {fmt(baseline)}  n={baseline['n']}")
        print(f"  ratio update_equity / baseline (p50)     {breaker['p50_us'] / baseline['p50_us']:.2f}")
    day_us, loss_us = bench_pure(args.checks)
    print(f"[pure] trading_day_of {day_us:.2f} µs/call, evaluate_daily_loss {loss_us:.2f} µs/call")


if __name__ == "__main__":
    main()
