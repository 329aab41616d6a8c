"""Benchmark what the MCP risk integrator costs, each figure beside a baseline measured in the same run.

    .venv/bin/python tests/benchmarks/bench_mcp_risk_integration.py [--calls 2000] [--monitor 200] [--children 4]

1. `gate("scan")` (what every heavy sidecar job pays first): p50/p99 in µs.
2. The read-only view: `view.get_state()` over a breaker-sized record (50 trips of history) vs
   `copy.deepcopy` of the same record (the baseline a naive view would pay) and the direct call.
3. The file-backed views (the sidecar's only source of risk state): one read of a realistic
   risk_state.json (20 positions) through `SnapshotBackedExecutorView`, vs `json.loads` of the same bytes.
4. `monitor_all()` over this process plus `--children` sleeping child processes, real psutil:
   p50/p99 in ms, and the process's CPU time per call.
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import json
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from subprocess import DEVNULL
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from config.settings import Settings
from core.integrations.mcp_risk_integration import MCPRiskIntegrator
from core.integrations.readonly import SnapshotBackedExecutorView, read_only_breaker
from utils.atomic import atomic_write_json


def percentiles(samples_ns: list[int], unit: float, label: str) -> dict[str, Any]:
    ordered = sorted(samples_ns)

    def pick(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))] / unit, 3)

    return {f"p50_{label}": pick(0.50), f"p99_{label}": pick(0.99), "n": len(ordered)}


def timed(call: Callable[[], Any], n: int) -> list[int]:
    samples = []
    for _ in range(n):
        start = time.perf_counter_ns()
        call()
        samples.append(time.perf_counter_ns() - start)
    return samples


async def atimed(call: Callable[[], Any], n: int) -> list[int]:
    samples = []
    for _ in range(n):
        start = time.perf_counter_ns()
        await call()
        samples.append(time.perf_counter_ns() - start)
    return samples


def breaker_record() -> dict[str, Any]:
    history = [
        {"time": f"2026-11-21T10:{i:02d}:00+00:00", "kind": "error_burst", "reason": "5 errors"} for i in range(50)
    ]
    return {"state": "ACTIVE", "daily_loss": 12.0, "trip_history": history, "mcp_integration": {"enabled": True}}


def snapshot(now: datetime) -> dict[str, Any]:
    positions = [
        {"token_id": f"tok-{i}", "market": f"m{i}", "size": 10.0, "avg_price": 0.5, "notional": 5.0} for i in range(20)
    ]
    return {
        "schema_version": 1,
        "updated_at": now.isoformat(),
        "updated_at_epoch": now.timestamp(),
        "trading_state": "ACTIVE",
        "breaker": breaker_record(),
        "risk_parameters": {"max_daily_loss": 100.0, "max_order_size": 50.0, "max_position_size": 200.0},
        "exposure": {"total": 100.0, "by_market": {f"tok-{i}": 5.0 for i in range(20)}},
        "positions": positions,
        "latency_ms": {"p50": 4.0, "p95": 9.0, "p99": 12.0, "max": 15.0, "count": 2048},
        "trades": {"executed": 500, "denied": 3, "failed": 1},
        "rss_mb": 80.0,
    }


class Breaker:
    def __init__(self) -> None:
        self.record = breaker_record()

    def get_state(self) -> dict[str, Any]:
        return self.record


async def main(calls: int, monitor_calls: int, children: int) -> None:
    work = Path(tempfile.mkdtemp(prefix="bench-integrator-"))
    now = datetime.now(UTC)
    settings = Settings(_env_file=None, state_dir=work / "state", mcp_market_hours_enabled=False)
    integrator = MCPRiskIntegrator(settings)

    gate = await atimed(lambda: integrator.gate("scan"), calls)
    print("gate('scan'):", percentiles(gate, 1e3, "us"))

    target = Breaker()
    view = read_only_breaker(target)
    direct = timed(target.get_state, calls)
    baseline = timed(lambda: copy.deepcopy(target.get_state()), calls)
    viewed = timed(view.get_state, calls)
    ratio = sorted(viewed)[len(viewed) // 2] / max(1, sorted(baseline)[len(baseline) // 2])
    print("direct get_state() (no copy, shares the original):", percentiles(direct, 1e3, "us"))
    print("copy.deepcopy(get_state()) (baseline):", percentiles(baseline, 1e3, "us"))
    print("view.get_state() (detached copy):", percentiles(viewed, 1e3, "us"), f"p50 ratio view/deepcopy {ratio:.2f}")

    path = work / "state" / "risk_state.json"
    atomic_write_json(path, snapshot(now))
    raw = path.read_bytes()
    file_view = SnapshotBackedExecutorView(path)
    parse = timed(lambda: json.loads(raw), calls)
    read = timed(file_view.snapshot, calls)
    print(f"json.loads of the snapshot bytes ({len(raw)} B):", percentiles(parse, 1e3, "us"))
    print("SnapshotBackedExecutorView.snapshot() (open O_RDONLY + read + parse):", percentiles(read, 1e3, "us"))

    sleepers = [
        await asyncio.create_subprocess_exec(sys.executable, "-c", "import time; time.sleep(600)", stdin=DEVNULL)
        for _ in range(children)
    ]
    await asyncio.sleep(1.0)  # let the children finish starting: their start-up CPU is not the sidecar's load
    try:
        await integrator.initialize()
        await integrator.monitor_all()  # first sample primes psutil's CPU counters
        cpu_before = time.process_time()
        monitor = await atimed(integrator.monitor_all, monitor_calls)
        cpu_per_call_ms = (time.process_time() - cpu_before) / monitor_calls * 1e3
        usage = (await integrator.monitor_all())["resource_usage"]
    finally:
        for child in sleepers:
            child.kill()
            await child.wait()
    print(
        f"monitor_all() over {usage['processes']} processes:",
        percentiles(monitor, 1e6, "ms"),
        f"CPU time per call {cpu_per_call_ms:.3f} ms",
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--monitor", type=int, default=200)
    parser.add_argument("--children", type=int, default=4)
    args = parser.parse_args()
    asyncio.run(main(args.calls, args.monitor, args.children))
