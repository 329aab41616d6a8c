"""The dashboard as the monitoring server serves it: real state files, a real loopback port, the real app.

psutil is the psutil-shaped FakeHost, the gate a fixed answer, the clock injected; the MCP breaker reset is a
recording async function (the integrator has its own tests). One test starts the sidecar's CLI in a
subprocess to see an unsafe bind refused before anything starts.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Callable, Mapping
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from mcp.dashboard.security import DashboardBindError
from mcp.monitoring.http import ServeError
from mcp.monitoring_server import MonitoringServer
from mcp.sidecar_builder import build_graph
from tests.conftest import PROJECT_ROOT
from tests.fakes.fake_host import FakeHost
from tests.fakes.monitoring_builders import Clock, bot_snapshot, settings, write_state
from tests.fakes.monitoring_wiring import monitoring_server

TOKEN = "server-test-token-0123456789"
GATE = {"market_hours": False, "mcp_circuit_breaker": "closed", "heavy_work_allowed": True, "reason": "ok"}


async def fixed_gate() -> Mapping[str, Any]:
    return GATE


class RecordingReset:
    def __init__(self) -> None:
        self.calls: list[str] = []

    async def __call__(self, by: str) -> dict[str, Any]:
        self.calls.append(by)
        return {"state": "closed"}


def make_server(tmp_path: Path, **kw: Any) -> MonitoringServer:
    overrides = kw.pop("settings", {})
    overrides.setdefault("dashboard_token", TOKEN)
    clock = Clock()
    kw.setdefault("psutil_like", FakeHost())
    kw.setdefault("pid_exists", lambda pid: True)
    kw.setdefault("server_states", lambda: {})
    kw.setdefault("gate_status", fixed_gate)
    kw.setdefault("alert_stats", lambda: None)
    kw.setdefault("serve_metrics", False)
    kw.setdefault("serve_dashboard", True)
    kw.setdefault("dashboard_host", "127.0.0.1")
    kw.setdefault("dashboard_port", 0)
    kw.setdefault("reset_breaker", RecordingReset())
    kw.setdefault("sleep", clock.sleep)
    kw.setdefault("hold", 0.0)  # verdicts at once; the warm-up is proven in tests/test_health_truth.py
    kw.setdefault("min_cpu_span", 0.0)
    return monitoring_server(settings(tmp_path, **overrides), clock=clock, **kw)


@pytest.fixture
async def running() -> AsyncIterator[Callable[[MonitoringServer], Any]]:
    tasks: list[asyncio.Task[None]] = []

    async def start(server: MonitoringServer) -> MonitoringServer:
        ready = asyncio.Event()
        task = asyncio.create_task(server.run(ready))
        tasks.append(task)
        ready_wait = asyncio.create_task(ready.wait())
        await asyncio.wait({task, ready_wait}, timeout=30, return_when=asyncio.FIRST_COMPLETED)
        ready_wait.cancel()
        if task.done():
            task.result()  # raises what run() raised
        return server

    yield start
    for task in tasks:
        task.cancel()
    for task in tasks:
        with pytest.raises(asyncio.CancelledError):
            await task


@pytest.mark.integration
async def test_the_monitoring_server_serves_the_dashboard(tmp_path: Path, running: Callable[..., Any]) -> None:
    write_state(tmp_path, bot_snapshot())
    reset = RecordingReset()
    server = await running(make_server(tmp_path, reset_breaker=reset))
    port = server.dashboard_bound_port
    assert port and server.health()["dashboard"] == f"http://127.0.0.1:{port}/"
    base = f"http://127.0.0.1:{port}"
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{base}/health") as response:
            assert response.status == 200
            body = await response.json()
        assert body["status"] == server.health_report()["status"] == "healthy"
        assert {"main_bot", "trade_executor", "circuit_breaker", "monitoring", "sidecar", "host"} <= set(
            body["components"]
        )
        assert body["components"]["main_bot"]["status"] == "healthy"
        assert body["gate"] == GATE
        async with session.get(f"{base}/api/history") as response:
            assert set(await response.json()) >= {"trade_latency_p99_ms", "sidecar_rss_mb", "coverage"}
        async with session.get(f"{base}/metrics") as response:
            assert "monitoring_component_status" in await response.text()  # the server's own registry
        async with session.get(f"{base}/") as response:
            assert response.status == 200 and "dashboard.js" in await response.text()
        headers = {"Authorization": f"Bearer {TOKEN}"}
        async with session.post(f"{base}/reset-circuit-breaker", headers=headers) as response:
            assert response.status == 200
    assert reset.calls == ["dashboard: manual reset from the dashboard"]


@pytest.mark.integration
async def test_extensions_are_mounted_with_their_body_limit(tmp_path: Path, running: Callable[..., Any]) -> None:
    seen: list[int] = []

    async def echo_size(request: web.Request) -> web.Response:
        seen.append(len(await request.read()))
        return web.json_response({"ok": True})

    def mount(app: web.Application) -> None:
        app.router.add_post("/echo", echo_size)

    server = await running(make_server(tmp_path, dashboard_extensions=[mount], dashboard_max_body_bytes=200_000))
    url = f"http://127.0.0.1:{server.dashboard_bound_port}/echo"
    async with aiohttp.ClientSession() as session:
        async with session.post(url, data=b"x" * 150_000) as response:
            assert response.status == 200
        async with session.post(url, data=b"x" * 250_000) as response:
            assert response.status == 413
    assert seen == [150_000]


@pytest.mark.integration
async def test_the_dashboard_port_closes_when_the_server_stops(tmp_path: Path) -> None:
    server = make_server(tmp_path)
    ready = asyncio.Event()
    task = asyncio.create_task(server.run(ready))
    await asyncio.wait_for(ready.wait(), timeout=30)
    port = server.dashboard_bound_port
    assert port
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert server.dashboard_bound_port is None
    with pytest.raises(OSError), socket.create_connection(("127.0.0.1", port), timeout=2):
        pass


@pytest.mark.integration
async def test_a_taken_port_is_a_clear_error_naming_dashboard_port(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        server = make_server(tmp_path, dashboard_port=port)
        with pytest.raises(ServeError, match=rf"127\.0\.0\.1:{port}: the port is already in use.*set DASHBOARD_PORT"):
            await server.run(asyncio.Event())


@pytest.mark.integration
async def test_with_optional_http_a_taken_port_is_a_warning_and_the_checks_run_on(
    tmp_path: Path, running: Callable[..., Any], caplog: pytest.LogCaptureFixture
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        printed: list[dict[str, Any]] = []
        with caplog.at_level(logging.WARNING):
            server = await running(
                make_server(tmp_path, dashboard_port=port, http_optional=True, report=printed.append)
            )
    assert server.dashboard_bound_port is None and server.health()["dashboard"] is None
    assert printed and "sidecar" in printed[-1]["components"]
    assert "set DASHBOARD_PORT to a free port; this process carries on without that endpoint" in caplog.text


async def test_a_public_address_without_a_token_is_refused(tmp_path: Path) -> None:
    server = make_server(tmp_path, dashboard_host="0.0.0.0", settings={"dashboard_token": None})
    with pytest.raises(DashboardBindError, match="without DASHBOARD_TOKEN"):
        await server.run(asyncio.Event())
    assert server.dashboard_bound_port is None


async def test_without_dashboard_enabled_nothing_listens(tmp_path: Path, running: Callable[..., Any]) -> None:
    server = await running(make_server(tmp_path, serve_dashboard=None, settings={"dashboard_enabled": False}))
    assert server.serve_dashboard is False and server.dashboard_bound_port is None


@pytest.mark.integration
async def test_the_reset_is_the_sidecar_s_integrator(tmp_path: Path, running: Callable[..., Any]) -> None:
    # the graph of `python -m mcp.main_mcp all`: one integrator, its reset behind POST /reset-circuit-breaker
    config = settings(tmp_path, dashboard_token=TOKEN, dashboard_port=0, metrics_enabled=False)
    sidecar = await asyncio.to_thread(build_graph, config, ["monitoring"])  # file reads: off the loop
    integrator = sidecar.graph.integrator
    await integrator.trip_mcp_circuit_breaker("sidecar memory 2000 MB is over MCP_RESOURCE_LIMIT_MB=1000")
    server = await running(sidecar.servers[0])
    headers = {"Authorization": f"Bearer {TOKEN}"}
    async with aiohttp.ClientSession() as session:
        url = f"http://127.0.0.1:{server.dashboard_bound_port}/reset-circuit-breaker"
        async with session.post(url, headers=headers) as response:
            assert response.status == 200
    assert integrator.get_mcp_circuit_breaker_state()["state"] == "closed"


async def test_without_an_integrator_the_reset_is_disabled(
    tmp_path: Path, running: Callable[..., Any], caplog: pytest.LogCaptureFixture
) -> None:
    server = await running(make_server(tmp_path, reset_breaker=None))
    assert "POST /reset-circuit-breaker will answer 503" in caplog.text
    headers = {"Authorization": f"Bearer {TOKEN}"}
    async with aiohttp.ClientSession() as session:
        url = f"http://127.0.0.1:{server.dashboard_bound_port}/reset-circuit-breaker"
        async with session.post(url, headers=headers) as response:
            assert response.status == 503


@pytest.mark.integration
def test_the_cli_refuses_to_start_on_a_public_address_without_a_token(tmp_path: Path) -> None:
    env = {
        "PATH": "/usr/bin:/bin",
        "STATE_DIR": str(tmp_path / "state"),
        "LOG_DIR": str(tmp_path / "logs"),
        "DASHBOARD_HOST": "0.0.0.0",
        "DASHBOARD_PORT": "0",
        "METRICS_PORT": "0",
    }
    done = subprocess.run(
        [sys.executable, "-m", "mcp.main_mcp", "monitoring"],
        cwd=PROJECT_ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2, done.stderr
    assert "refusing to serve the dashboard on DASHBOARD_HOST=0.0.0.0 without DASHBOARD_TOKEN" in done.stderr
    assert "sidecar starting" not in done.stderr  # refused before any server started
