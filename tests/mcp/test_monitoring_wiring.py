"""MonitoringSources (issue 12): one value for what the monitoring checks read, production by default, and
DASHBOARD_PORT read once (by the monitoring server) for both the dashboard's bind and /mcp's origins."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import aiohttp
import psutil
import pytest
from aiohttp import web

from config.settings import Settings
from mcp.monitoring.wiring import MonitoringSources, alert_totals_from_manager
from mcp.monitoring_server import MonitoringServer
from mcp.tools.runtime import mcp_dashboard_extension
from tests.fakes.fake_host import FakeHost

TOKEN = "wiring-test-token-0123456789"


def settings(tmp_path: Path, **overrides: Any) -> Settings:
    return Settings(_env_file=None, state_dir=tmp_path, **overrides)  # type: ignore[call-arg]


def test_the_defaults_are_the_production_sources(tmp_path: Path) -> None:
    sources = MonitoringSources()
    assert sources.psutil_like is psutil and sources.pid_exists is psutil.pid_exists
    assert sources.clock is time.time and sources.sleep is asyncio.sleep
    resolved = sources.resolved(settings(tmp_path))
    assert resolved.state_dir == tmp_path
    assert resolved.alert_stats is alert_totals_from_manager  # the process's alert manager
    assert resolved.isolation is not None and resolved.isolation()["isolation"] is None  # containment not started
    assert resolved.server_states is None and resolved.gate_status is None  # wired by the sidecar's graph


def test_a_faked_source_replaces_only_itself(tmp_path: Path) -> None:
    clock = lambda: 1_800_000_000.0  # noqa: E731
    resolved = MonitoringSources(clock=clock, hold=0.0).resolved(settings(tmp_path, monitor_interval_seconds=5))
    assert resolved.clock is clock and resolved.hold == 0.0
    assert resolved.psutil_like is psutil and resolved.alert_stats is alert_totals_from_manager
    with pytest.raises(AttributeError):
        resolved.clock = time.time  # type: ignore[misc]  # frozen: one value, shared, never changed


async def test_a_server_without_an_integrator_says_so_in_its_gate_block(tmp_path: Path) -> None:
    sources = MonitoringSources(psutil_like=FakeHost(), pid_exists=lambda pid: False, server_states=lambda: {})
    server = MonitoringServer(settings(tmp_path), sources=sources, serve_metrics=False, serve_dashboard=False)
    assert server.sources.state_dir == tmp_path
    report = await server.check_once()
    assert report["gate"]["reason"] == "no MCP risk integrator wired into the monitoring"
    assert report["gate"]["heavy_work_allowed"] is None


def test_monitoring_server_settings_alone_still_builds(tmp_path: Path) -> None:
    server = MonitoringServer(settings(tmp_path, dashboard_port=18125, metrics_port=18126))
    assert server.dashboard_port == 18125 and server.metrics_port == 18126
    assert server.sources.alert_stats is alert_totals_from_manager


async def post_mcp(port: int, origin: str) -> int:
    async with aiohttp.ClientSession() as session:
        body = {"jsonrpc": "2.0", "id": 1, "method": "ping"}
        async with session.post(f"http://127.0.0.1:{port}/mcp", json=body, headers={"Origin": origin}) as response:
            return response.status


@pytest.mark.integration
async def test_mcp_origins_follow_the_dashboard_port_the_monitoring_server_read(tmp_path: Path) -> None:
    # the settings say 8080; the monitoring server was given 4321 (as DASHBOARD_PORT would): /mcp follows it
    config = settings(tmp_path, dashboard_token=TOKEN, dashboard_port=8080)
    app = web.Application()
    mcp_dashboard_extension(config, [], 4321)(app)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        assert await post_mcp(port, "http://127.0.0.1:8080") == 403  # not the dashboard's origin
        assert await post_mcp(port, "http://127.0.0.1:4321") == 401  # its origin: on to the token check
    finally:
        await runner.cleanup()
