"""Benchmark: an MCP tools/call round trip over stdio and Streamable HTTP against the same call in-process.

    .venv/bin/python tests/benchmarks/bench_mcp_roundtrip.py [--rounds 5] [--cached-calls 400] [--search-calls 60]

Two calls: `get_health` (a read-only tool served from the TTL cache) and `search_code` for a literal found
once in this repository (uncached: every call walks the tree and reads every file). Each is timed four ways:
  tool       the plain tool function awaited in this process (the floor: no protocol at all);
  dispatch   Dispatcher.call in this process (argument binding, cache, metrics, result encoding);
  stdio      a raw JSON-RPC client writing lines to `python -m mcp.main_mcp stdio` (a child process);
  http       an aiohttp client POSTing to /mcp of a server in a child process (keep-alive, JSON answers).
The modes run interleaved in rounds (each round: every mode, `calls/rounds` calls each), so a noisy
neighbour on this shared machine hits them all alike. Prints p50 / p99 in milliseconds, the p50 overhead
over the in-process tool call, and the ratio. No pass/fail: the figures go to the README.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import aiohttp  # noqa: E402  (needs the repo on sys.path first)

from config.settings import Settings  # noqa: E402
from mcp.protocol.jsonrpc import encode  # noqa: E402

TOKEN = "bench-token-0c7e"
# a literal found once: every call reads every file of the repository (the walk respects .gitignore)
SEARCH = {"pattern": "def confine_path(", "max_results": 100}
CALLS = {"cached read (get_health)": ("get_health", {}), "uncached search (search_code)": ("search_code", SEARCH)}
INIT = {
    "jsonrpc": "2.0",
    "id": 0,
    "method": "initialize",
    "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "bench", "version": "1"}},
}


def sidecar_env(state: Path) -> dict[str, str]:
    return {
        "STATE_DIR": str(state),
        "LOG_DIR": str(state / "logs"),
        "LOG_LEVEL": "WARNING",
        "MCP_MARKET_HOURS_ENABLED": "false",
        "MCP_SEARCH_ROOT": str(REPO),
        "MONITOR_INTERVAL_SECONDS": "3600",
        "DASHBOARD_TOKEN": TOKEN,
    }


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))
    return ordered[index]


# --- the HTTP server, run as a child process (--serve-http) -------------------------------------------


async def serve_http() -> None:
    """Build the three servers like the sidecar, mount /mcp on port 0, print the port, serve until stdin ends."""
    from aiohttp import web

    from config.settings import load_settings
    from mcp.monitoring_server import MonitoringServer
    from mcp.protocol.http import add_mcp_routes
    from mcp.sidecar_builder import build_servers
    from mcp.sidecar_graph import SidecarGraph
    from mcp.tools.runtime import build_dispatcher

    settings = load_settings()
    overrides = {"monitoring": lambda g: MonitoringServer(g.settings, serve_metrics=False, serve_dashboard=False)}
    # ungated, no integrator: the round trip of the tools themselves is measured
    graph = SidecarGraph(settings, gate=None)
    servers, _ = build_servers(["codebase_search", "testing", "monitoring"], graph, overrides)
    monitoring = next(server for server in servers if server.name == "monitoring")
    await monitoring.check_once()
    dispatcher = build_dispatcher(settings, servers)
    app = web.Application()
    add_mcp_routes(app, lambda: dispatcher, token=TOKEN, allowed_origins=())
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    print(runner.addresses[0][1], flush=True)
    await asyncio.to_thread(sys.stdin.read)  # the parent closes our stdin to stop us
    await runner.cleanup()


# --- clients -----------------------------------------------------------------------------------------


class StdioClient:
    """Raw JSON-RPC lines to a `python -m mcp.main_mcp stdio` child."""

    def __init__(self, env: dict[str, str]) -> None:
        self._env = env
        self._process: asyncio.subprocess.Process | None = None
        self._id = 0

    async def start(self) -> None:
        self._process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "mcp.main_mcp", "stdio", cwd=REPO, env={**os.environ, **self._env},
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
            limit=64 * 1024 * 1024,
        )  # fmt: skip
        await self._exchange(INIT)
        await self._send({"jsonrpc": "2.0", "method": "notifications/initialized"})

    async def _send(self, message: dict[str, Any]) -> None:
        assert self._process is not None and self._process.stdin is not None
        self._process.stdin.write(encode(message) + b"\n")
        await self._process.stdin.drain()

    async def _exchange(self, message: dict[str, Any]) -> dict[str, Any]:
        assert self._process is not None and self._process.stdout is not None
        await self._send(message)
        return json.loads(await self._process.stdout.readline())

    async def call(self, name: str, arguments: dict[str, Any]) -> dict[str, Any]:
        self._id += 1
        params = {"name": name, "arguments": arguments}
        answer = await self._exchange({"jsonrpc": "2.0", "id": self._id, "method": "tools/call", "params": params})
        return answer["result"]

    async def stop(self) -> None:
        if self._process is not None and self._process.stdin is not None:
            self._process.stdin.close()
            await asyncio.wait_for(self._process.wait(), 30)


class HttpClient:
    """POSTs to /mcp of a server child process over one keep-alive connection."""

    def __init__(self, env: dict[str, str]) -> None:
        self._env = env
        self._server: asyncio.subprocess.Process | None = None
        self._http: aiohttp.ClientSession | None = None
        self._headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
        self._url = ""
        self._id = 0

    async def start(self) -> None:
        self._server = await asyncio.create_subprocess_exec(
            sys.executable, __file__, "--serve-http", cwd=REPO, env={**os.environ, **self._env},
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
        )  # fmt: skip
        assert self._server.stdout is not None
        port = int((await asyncio.wait_for(self._server.stdout.readline(), 60)).strip())
        self._url = f"http://127.0.0.1:{port}/mcp"
        self._http = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=1))
        async with self._http.post(self._url, data=encode(INIT), headers=self._headers) as response:
            self._headers["Mcp-Session-Id"] = response.headers["Mcp-Session-Id"]
            self._headers["MCP-Protocol-Version"] = (await response.json())["result"]["protocolVersion"]

    async def call(self, name: str, arguments: dict[str, Any]) -> dict[str, Any]:
        assert self._http is not None
        self._id += 1
        body = {
            "jsonrpc": "2.0",
            "id": self._id,
            "method": "tools/call",
            "params": {"name": name, "arguments": arguments},
        }
        async with self._http.post(self._url, data=encode(body), headers=self._headers) as response:
            return (await response.json())["result"]

    async def stop(self) -> None:
        if self._http is not None:
            await self._http.close()
        if self._server is not None and self._server.stdin is not None:
            self._server.stdin.close()
            await asyncio.wait_for(self._server.wait(), 30)


async def in_process(settings: Settings) -> tuple[dict[str, Callable[..., Awaitable[Any]]], Any]:
    """The plain tool functions and a Dispatcher over the same servers, in this process."""
    from mcp.monitoring_server import MonitoringServer
    from mcp.sidecar_builder import build_servers
    from mcp.sidecar_graph import SidecarGraph
    from mcp.tools.runtime import build_dispatcher

    overrides = {"monitoring": lambda g: MonitoringServer(g.settings, serve_metrics=False, serve_dashboard=False)}
    # ungated, no integrator: the round trip of the tools themselves is measured
    graph = SidecarGraph(settings, gate=None)
    servers, _ = build_servers(["codebase_search", "testing", "monitoring"], graph, overrides)
    monitoring = next(server for server in servers if server.name == "monitoring")
    await monitoring.check_once()
    dispatcher = build_dispatcher(settings, servers)
    functions = {spec.name: spec.func for spec in dispatcher.registry.tools()}
    return functions, dispatcher


async def measure(args: argparse.Namespace) -> dict[str, dict[str, list[float]]]:
    with tempfile.TemporaryDirectory(prefix="bench-mcp-") as folder:
        state = Path(folder)
        env = sidecar_env(state)
        settings = Settings(_env_file=None, **{key.lower(): value for key, value in env.items()})  # type: ignore[arg-type]
        functions, dispatcher = await in_process(settings)
        stdio, http = StdioClient(env), HttpClient(env)
        await stdio.start()
        await http.start()
        try:
            modes: dict[str, Callable[[str, dict[str, Any]], Awaitable[Any]]] = {
                "tool (in-process function)": lambda name, arguments: functions[name](**arguments),
                "dispatch (in-process protocol)": lambda name, arguments: dispatcher.call(
                    dispatcher.registry.get(name), arguments
                ),
                "stdio": stdio.call,
                "http": http.call,
            }
            samples: dict[str, dict[str, list[float]]] = {call: {mode: [] for mode in modes} for call in CALLS}
            for label, (name, arguments) in CALLS.items():
                total = args.cached_calls if name == "get_health" else args.search_calls
                per_round = max(1, total // args.rounds)
                for run in modes.values():  # warm-up: caches, connections, first imports
                    for _ in range(3):
                        await run(name, dict(arguments))
                for _ in range(args.rounds):
                    for mode, run in modes.items():
                        for _ in range(per_round):
                            started = time.perf_counter()
                            result = await run(name, dict(arguments))
                            samples[label][mode].append((time.perf_counter() - started) * 1000)
                            if isinstance(result, dict) and result.get("isError"):
                                raise RuntimeError(f"{mode} {name} failed: {result}")
        finally:
            await stdio.stop()
            await http.stop()
    return samples


def report(samples: dict[str, dict[str, list[float]]]) -> None:
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs; milliseconds per tools/call round trip")
    for label, modes in samples.items():
        floor = statistics.median(modes["tool (in-process function)"])
        print(f"\n{label}")
        print(f"  {'mode':32} {'n':>5} {'p50':>9} {'p99':>9} {'p50 overhead':>14} {'p50 ratio':>10}")
        for mode, values in modes.items():
            p50, p99 = statistics.median(values), percentile(values, 0.99)
            print(f"  {mode:32} {len(values):5d} {p50:9.3f} {p99:9.3f} {p50 - floor:+13.3f} {p50 / floor:9.1f}x")


def main() -> int:
    parser = argparse.ArgumentParser(description="MCP tools/call round trip: stdio and HTTP vs in-process")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--cached-calls", type=int, default=400)
    parser.add_argument("--search-calls", type=int, default=60)
    parser.add_argument("--serve-http", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_http:
        asyncio.run(serve_http())
        return 0
    report(asyncio.run(measure(args)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
