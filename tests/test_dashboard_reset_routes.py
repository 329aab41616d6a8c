"""Which breaker each reset acts on (issue 12): the dashboard's POST /reset-mcp-circuit-breaker and its
contract name POST /reset-circuit-breaker close the MCP circuit breaker of the real risk integrator, over
real HTTP on loopback, and leave the trading circuit breaker's state file byte for byte as it was (only
`python main.py --reset-circuit-breaker`, with the bot stopped, resets that one).
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from config.settings import Settings
from core.integrations.mcp_risk_integration import MCPRiskIntegrator
from core.integrations.readonly import BREAKER_STATE_FILE_NAME
from mcp.dashboard.app import MCP_RESET_ROUTE, RESET_ROUTE, build_dashboard_app

TOKEN = "reset-routes-token-0123456789"
# the trading breaker as the bot leaves it after a trip: HALTED, with its reason
HALTED = {"state": "HALTED", "trip_reason": "daily_loss", "tripped_at": "2026-11-21T10:00:00+00:00"}


class NoMonitoring:
    def health_report(self) -> dict[str, Any]:
        return {"status": "healthy", "components": {}}

    def history(self) -> dict[str, Any]:
        return {}


@pytest.mark.parametrize("route", [MCP_RESET_ROUTE, RESET_ROUTE])
async def test_each_reset_route_closes_the_mcp_breaker_and_never_the_trading_one(tmp_path: Path, route: str) -> None:
    state_dir = tmp_path / "state"
    state_dir.mkdir()
    trading_file = state_dir / BREAKER_STATE_FILE_NAME
    trading_file.write_text(json.dumps(HALTED))
    before = trading_file.read_bytes()
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None, state_dir=state_dir, mcp_market_hours_enabled=False, dashboard_token=TOKEN
    )
    # it reads its state file when built: off the event loop
    integrator = await asyncio.to_thread(MCPRiskIntegrator, settings, state_file=state_dir / "mcp_breaker.json")
    await integrator.trip_mcp_circuit_breaker("cpu over budget during a scan")
    assert integrator.mcp_circuit_breaker_active

    app = build_dashboard_app(settings, NoMonitoring(), reset_breaker=integrator.reset_mcp_circuit_breaker)
    server = TestServer(app, host="127.0.0.1", port=0)
    await server.start_server()
    try:
        async with aiohttp.ClientSession() as session:
            url = f"http://127.0.0.1:{server.port}{route}"
            refused = await session.post(url, headers={"Authorization": "Bearer wrong"})
            assert refused.status == 401
            assert integrator.mcp_circuit_breaker_active  # a wrong token changes nothing
            response = await session.post(url, headers={"Authorization": f"Bearer {TOKEN}"}, json={"reason": "ok"})
            assert response.status == 200
            body = await response.json()
    finally:
        await server.close()
    assert body["status"] == "reset" and body["mcp_circuit_breaker"]["state"] == "closed"
    assert not integrator.mcp_circuit_breaker_active
    assert trading_file.read_bytes() == before  # the trading breaker is still HALTED, untouched
