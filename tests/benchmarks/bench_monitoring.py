"""Benchmark the monitoring server: what /health and /metrics cost, what a check round costs.

    .venv/bin/python tests/benchmarks/bench_monitoring.py [--calls 5000] [--requests 1000] [--rounds 50]

1. In-process: `health_report()` and the /metrics exposition, `--calls` times each (p50/p99 in µs): the
   work a GET /health or a scrape does besides HTTP.
2. A full check round with real psutil and a real risk snapshot on disk (every check due, `--rounds`
   times): p50/p99 in ms, and the sidecar's own CPU time per round.
3. Over loopback HTTP: `--requests` sequential GET /metrics against the server's endpoint, interleaved
   with the same number against a baseline in the same run (a bare aiohttp app serving a static body of
   the same size), p50/p99 and the ratio to the baseline: what the metrics handler adds to HTTP itself.
Figures only: nothing here passes or fails.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import aiohttp
from aiohttp import web

from config.settings import Settings
from core.latency import nearest_rank
from mcp.monitoring.http import start_site
from mcp.monitoring.wiring import MonitoringSources
from mcp.monitoring_server import MonitoringServer


def percentiles(samples: list[float]) -> tuple[float, float]:
    """(p50, p99) by nearest rank."""
    ordered = sorted(samples)
    return nearest_rank(ordered, 0.50), nearest_rank(ordered, 0.99)


def time_calls(function: Callable[[], Any], calls: int) -> list[float]:
    """Seconds per call."""
    found = []
    for _ in range(calls):
        started = time.perf_counter()
        function()
        found.append(time.perf_counter() - started)
    return found


def write_snapshot(folder: Path) -> None:
    snapshot = {
        "schema_version": 1,
        "pid": os.getpid(),
        "updated_at_epoch": time.time(),
        "trading_state": "ACTIVE",
        "breaker": {"state": "ACTIVE", "daily_loss": 3.0, "daily_loss_limit": 100.0},
        "latency_ms": {"p50": 4.0, "p95": 9.0, "p99": 12.0, "max": 20.0, "count": 2048},
        "trades": {"executed": 500, "denied": 20, "failed": 3},
        "errors": {"total": 3},
        "rss_mb": 150.0,
    }
    (folder / "risk_state.json").write_text(json.dumps(snapshot))


async def fixed_gate() -> Mapping[str, Any]:
    return {"market_hours": False, "mcp_circuit_breaker": "closed", "heavy_work_allowed": True, "reason": "bench"}


async def http_pair(url: str, baseline_url: str, requests: int) -> tuple[list[float], list[float]]:
    """Interleaved sequential GETs: (server's /metrics, baseline) seconds per request."""
    ours, base = [], []
    async with aiohttp.ClientSession() as session:
        for _ in range(requests):
            for target, sink in ((url, ours), (baseline_url, base)):
                started = time.perf_counter()
                async with session.get(target) as response:
                    await response.read()
                sink.append(time.perf_counter() - started)
    return ours, base


async def main(args: argparse.Namespace) -> None:
    folder = Path(tempfile.mkdtemp(prefix="bench-monitoring-"))
    write_snapshot(folder)
    now = [time.time()]
    states = {
        "codebase_search": {"state": "running", "status": "healthy", "health": {"status": "healthy"}},
        "testing": {"state": "running", "status": "healthy", "health": {"last_run": {"coverage": 0.9}}},
    }
    server = MonitoringServer(
        Settings(_env_file=None, state_dir=folder),  # type: ignore[call-arg]
        sources=MonitoringSources(
            clock=lambda: now[0], server_states=lambda: states, gate_status=fixed_gate, alert_stats=lambda: None
        ),
        metrics_host="127.0.0.1",
        metrics_port=0,
        serve_metrics=True,
    )
    for tool in ("search_code", "risk_parameter_report", "run_tests"):
        server.metrics.record_tool_call("codebase_search", tool, 0.01)
    ready = asyncio.Event()
    task = asyncio.create_task(server.run(ready))
    await ready.wait()

    cpu_before = time.process_time()
    rounds = []
    for _ in range(args.rounds):
        now[0] += 3600  # every check due
        started = time.perf_counter()
        await server.check_once()
        rounds.append(time.perf_counter() - started)
    cpu_per_round_ms = (time.process_time() - cpu_before) / args.rounds * 1000

    report = time_calls(server.health_report, args.calls)
    body = server.metrics.exposition()
    exposition = time_calls(server.metrics.exposition, args.calls)

    async def static(request: web.Request) -> web.Response:
        return web.Response(body=body, content_type="text/plain")

    baseline_app = web.Application()
    baseline_app.router.add_get("/metrics", static)
    baseline, baseline_port = await start_site(baseline_app, "127.0.0.1", 0, setting="-", what="baseline")
    url = f"http://127.0.0.1:{server.metrics_bound_port}/metrics"
    ours, base = await http_pair(url, f"http://127.0.0.1:{baseline_port}/metrics", args.requests)
    await baseline.cleanup()
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)

    def line(name: str, samples: list[float], unit: str, scale: float) -> str:
        p50, p99 = percentiles(samples)
        return f"{name:<38} p50 {p50 * scale:9.1f} {unit}   p99 {p99 * scale:9.1f} {unit}   (n={len(samples)})"

    print(f"monitoring benchmark (python {sys.version.split()[0]}, {os.cpu_count()} CPUs)")
    print(line("health_report() in-process", report, "µs", 1e6))
    print(line("/metrics exposition in-process", exposition, "µs", 1e6))
    print(line("full check round (real psutil)", rounds, "ms", 1e3))
    print(f"{'  CPU time per round':<38} {cpu_per_round_ms:.2f} ms")
    print(line("GET /metrics over loopback", ours, "ms", 1e3))
    print(line("GET static body, same size (baseline)", base, "ms", 1e3))
    p50, p99 = percentiles(ours)
    b50, b99 = percentiles(base)
    print(f"{'ratio to baseline':<38} p50 {p50 / b50:9.2f}x      p99 {p99 / b99:9.2f}x")
    print(f"{'/metrics body':<38} {len(body)} bytes, {len(body.splitlines())} lines")
    print(f"{'peak RSS of this process':<38} {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.1f} MB")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=5000)
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=50)
    asyncio.run(main(parser.parse_args()))
