"""Issue 10, done-when: a test run no longer trips the MCP breaker on a machine where the bot is idle.

Real processes: the integrator samples this process's real tree (no fake psutil) while a contained run
(the wrapper under SCHED_IDLE, as every test run of the sidecar) burns a core. The counter-case, the same
load without SCHED_IDLE tripping the breaker, is tests/test_mcp_risk_integration.py's
test_sched_idle_work_is_reported_apart_and_never_trips (fake tree: a real non-idle burner would slow the
other agents of a shared machine for nothing).
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import pytest

from config.settings import Settings
from core.integrations.mcp_risk_integration import MCPRiskIntegrator
from mcp.testing.runner import OutputTail, PriorityPlan, run_process

pytestmark = [pytest.mark.integration, pytest.mark.slow]

BURN = "import time\nend = time.monotonic() + {seconds}\nwhile time.monotonic() < end:\n    pass\n"


class AlertLog:
    def __init__(self) -> None:
        self.sent: list[tuple[str, str]] = []

    async def __call__(self, alert_type: str, message: str, severity: str) -> None:
        self.sent.append((alert_type, message))


async def test_a_sched_idle_test_run_does_not_trip_the_breaker(tmp_path: Path) -> None:
    settings = Settings(_env_file=None, state_dir=tmp_path / "state", mcp_market_hours_enabled=False)
    integrator = MCPRiskIntegrator(settings, alert=AlertLog(), cpu_breaches_required=2)
    run = asyncio.create_task(
        run_process(
            [sys.executable, "-c", BURN.format(seconds=8)],
            cwd=tmp_path,
            env=os.environ,
            time_limit=60,
            tail=OutputTail(),
            priority=PriorityPlan((), None, False, sched_idle=True),
        )
    )
    await integrator.monitor_all()  # psutil's first reading of each process is 0.0
    readings = []
    for _ in range(5):
        await asyncio.sleep(1.2)  # windows over MIN_CPU_WINDOW_SECONDS: these readings count towards a trip
        readings.append(await integrator.monitor_all())
    outcome = await run
    assert outcome.exit_code == 0
    usages = [reading["resource_usage"] for reading in readings]
    assert all(usage["status"] == "ok" for usage in usages)
    # the run (wrapper and burner) was seen, on the idle line
    assert max(usage["idle_processes"] for usage in usages) >= 2
    assert all(usage["total_cpu_percent"] <= settings.mcp_resource_limit_cpu_percent for usage in usages), usages
    assert [reading["mcp_circuit_breaker"]["state"] for reading in readings] == ["closed"] * 5
    assert integrator.mcp_circuit_breaker_active is False
