"""One truth for the MCP circuit breaker: its state file, shared by every process (issue 9, item 5).

Each test uses real, separate Python processes (`python -c`, as the user's test plan does) beside the test
process, all pointing at one STATE_DIR:

* a trip made by another process is what this process's next gate decision sees;
* a dashboard reset (real HTTP, real bearer token) of a breaker tripped elsewhere reaches the file, so a
  fresh process reads it closed;
* resets are counted across processes;
* concurrent changes from several processes are never lost (read-modify-write under the file lock, the
  version counts every write);
* a trip from another process shows in a running sidecar's /health within a second.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer

from config.settings import PROJECT_ROOT, Settings
from core.integrations.mcp_breaker import STATE_FILE_NAME, BreakerRecord, BreakerStore, reset, trip
from core.integrations.mcp_risk_integration import MCPRiskIntegrator
from mcp.dashboard.app import build_dashboard_app
from tests.live_stack import clean_env, free_port, get_json, start_child, wait_for_health

TOKEN = "truth-token-0123456789"
_T0 = datetime(2026, 11, 21, 20, 0, tzinfo=UTC)

PRELUDE = """import asyncio, json, sys
from core.integrations.mcp_risk_integration import get_mcp_risk_integrator
"""
TRIP = (
    PRELUDE
    + """
async def main():
    integrator = get_mcp_risk_integrator()
    await integrator.trip_mcp_circuit_breaker(sys.argv[1])
    print(integrator.mcp_circuit_breaker_active)

asyncio.run(main())"""
)
RESET = (
    PRELUDE
    + """
async def main():
    integrator = get_mcp_risk_integrator()
    await integrator.reset_mcp_circuit_breaker('reset from another process')
    print(integrator.mcp_circuit_breaker_active)

asyncio.run(main())"""
)
READ = (
    PRELUDE
    + """
print(json.dumps(get_mcp_risk_integrator().get_statistics()))"""
)
# trip then reset, `rounds` times, racing the other workers
CHURN = (
    PRELUDE
    + """
async def main():
    integrator = get_mcp_risk_integrator()
    for i in range(int(sys.argv[1])):
        await integrator.trip_mcp_circuit_breaker(f'churn {i}')
        await integrator.reset_mcp_circuit_breaker('churn')

asyncio.run(main())"""
)


def child_env(state_dir: Path) -> dict[str, str]:
    env = clean_env(state_dir.parent)
    env.update(STATE_DIR=str(state_dir), PYTHONPATH=str(PROJECT_ROOT))
    return env


def run_child(code: str, state_dir: Path, *args: str) -> str:
    """Run `code` in a fresh interpreter (its own process) and return its stdout; fail loudly on an error."""
    result = subprocess.run(
        [sys.executable, "-c", code, *args],
        cwd=state_dir.parent,
        env=child_env(state_dir),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, f"exit {result.returncode}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    return result.stdout.strip()


def fresh_statistics(state_dir: Path) -> dict[str, Any]:
    return json.loads(run_child(READ, state_dir).splitlines()[-1])


def integrator_in_this_process(state_dir: Path, **settings: Any) -> MCPRiskIntegrator:
    return MCPRiskIntegrator(
        Settings(_env_file=None, state_dir=state_dir, mcp_market_hours_enabled=False, **settings),
        state_file=state_dir / STATE_FILE_NAME,
    )


@pytest.mark.integration
class TestOneTruthAcrossProcesses:
    async def test_a_trip_by_another_process_is_what_the_next_gate_decision_sees(self, tmp_path: Path) -> None:
        state_dir = tmp_path / "state"
        integrator = integrator_in_this_process(state_dir)
        assert (await integrator.gate("scan")).allowed

        assert await asyncio.to_thread(run_child, TRIP, state_dir, "tripped elsewhere") == "True"

        decision = await integrator.gate("scan")
        assert not decision.allowed
        assert "tripped elsewhere" in decision.reason
        assert integrator.mcp_circuit_breaker_active
        assert integrator.get_statistics()["trips"] == 1

    async def test_a_reset_by_another_process_is_seen_and_counted(self, tmp_path: Path) -> None:
        state_dir = tmp_path / "state"
        integrator = integrator_in_this_process(state_dir)
        await integrator.trip_mcp_circuit_breaker("tripped here")

        assert await asyncio.to_thread(run_child, RESET, state_dir) == "False"

        assert (await integrator.gate("scan")).allowed
        assert integrator.get_statistics()["manual_resets"] == 1

    async def test_a_dashboard_reset_reaches_the_file_so_a_fresh_process_reads_closed(self, tmp_path: Path) -> None:
        state_dir = tmp_path / "state"
        # the dashboard's integrator exists before the trip and has never looked at the file since
        sidecar = integrator_in_this_process(state_dir, dashboard_token=TOKEN)
        assert await asyncio.to_thread(run_child, TRIP, state_dir, "user snippet trip") == "True"

        app = build_dashboard_app(sidecar.settings, _NoMonitoring(), reset_breaker=sidecar.reset_mcp_circuit_breaker)
        async with TestClient(TestServer(app, host="127.0.0.1", port=0)) as client:
            response = await client.post("/reset-circuit-breaker", headers={"Authorization": f"Bearer {TOKEN}"})
            assert response.status == 200
            body = await response.json()
        assert body["mcp_circuit_breaker"]["state"] == "closed"

        stats = await asyncio.to_thread(fresh_statistics, state_dir)
        assert stats["mcp_circuit_breaker_active"] is False
        assert (stats["trips"], stats["manual_resets"]) == (1, 1)

    async def test_three_resets_from_three_places_are_three_manual_resets(self, tmp_path: Path) -> None:
        state_dir = tmp_path / "state"
        here = integrator_in_this_process(state_dir)
        for round_number in range(3):
            assert await asyncio.to_thread(run_child, TRIP, state_dir, f"trip {round_number}") == "True"
            if round_number == 1:
                assert await asyncio.to_thread(run_child, RESET, state_dir) == "False"
            else:
                await here.reset_mcp_circuit_breaker(f"reset {round_number} here")
        stats = await asyncio.to_thread(fresh_statistics, state_dir)
        assert (stats["trips"], stats["manual_resets"], stats["mcp_circuit_breaker_active"]) == (3, 3, False)
        assert stats["mcp_circuit_breaker_version"] == 6  # one write per trip, one per reset

    def test_the_cli_reset_reaches_every_process(self, tmp_path: Path) -> None:
        state_dir = tmp_path / "state"
        assert run_child(TRIP, state_dir, "tripped before the CLI") == "True"
        result = subprocess.run(
            [sys.executable, "-m", "mcp.main_mcp", "reset-mcp", "--reason", "operator on call"],
            cwd=PROJECT_ROOT,
            env=child_env(state_dir),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert result.returncode == 0, result.stderr
        assert json.loads(result.stdout)["state"] == "closed"
        stats = fresh_statistics(state_dir)
        assert (stats["mcp_circuit_breaker_active"], stats["manual_resets"]) == (False, 1)
        history = json.loads((state_dir / STATE_FILE_NAME).read_text())["history"]
        assert history[-1]["reason"] == "CLI: operator on call"

    async def test_a_reset_of_a_closed_breaker_changes_and_counts_nothing(self, tmp_path: Path) -> None:
        """README: every reset of a tripped breaker is counted; resetting a closed one changes nothing."""
        state_dir = tmp_path / "state"
        here = integrator_in_this_process(state_dir)
        closed = await here.reset_mcp_circuit_breaker("nothing to reset")
        assert (closed["state"], closed["manual_resets"], closed["version"]) == ("closed", 0, 0)
        assert await asyncio.to_thread(run_child, TRIP, state_dir, "tripped") == "True"
        await here.reset_mcp_circuit_breaker("reset after the trip")
        again = await here.reset_mcp_circuit_breaker("a second reset, already closed")
        assert (again["manual_resets"], again["version"]) == (1, 2)  # one write for the trip, one for the reset

    def test_concurrent_changes_from_several_processes_are_never_lost(self, tmp_path: Path) -> None:
        state_dir = tmp_path / "state"
        rounds, workers = 15, 4
        children = [
            subprocess.Popen(
                [sys.executable, "-c", CHURN, str(rounds)],
                cwd=tmp_path,
                env=child_env(state_dir),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for _ in range(workers)
        ]
        for child in children:
            _, err = child.communicate(timeout=120)
            assert child.returncode == 0, err
        stored = json.loads((state_dir / STATE_FILE_NAME).read_text())
        # every real transition was one write; each was applied to the file's latest record, so the counts
        # add up exactly: every trip from closed is later closed by exactly one counted reset
        assert stored["state"] == "closed"
        assert stored["trips"] == stored["manual_resets"]
        assert stored["version"] == stored["trips"] + stored["manual_resets"]
        assert stored["trips"] >= rounds  # at least one worker's rounds; interleaved trips of an open one merge


class _NoMonitoring:
    def health_report(self) -> dict[str, Any]:
        return {"status": "healthy", "components": {}}

    def history(self) -> dict[str, Any]:
        return {}


class TestStoreVersion:
    def test_every_write_carries_a_higher_version(self, tmp_path: Path) -> None:
        store = BreakerStore(tmp_path / STATE_FILE_NAME, lambda: _T0)
        versions = []
        for reason in ("a", "b"):
            store.update(lambda record, reason=reason: trip(record, reason, _T0))
            versions.append(json.loads(store.path.read_text())["version"])
            store.update(lambda record: reset(record, _T0))
            versions.append(json.loads(store.path.read_text())["version"])
        assert versions == [1, 2, 3, 4]

    def test_a_change_applies_to_the_record_on_disk_not_a_stale_copy(self, tmp_path: Path) -> None:
        path = tmp_path / STATE_FILE_NAME
        stale = BreakerStore(path, lambda: _T0)
        assert stale.load() == (BreakerRecord(), None)
        other = BreakerStore(path, lambda: _T0)
        other.update(lambda record: trip(record, "other process", _T0))
        assert stale.changed()
        step, problem = stale.update(lambda record: trip(record, "this process", _T0))
        assert problem is None
        assert step.record.reason == "other process"  # already open: the idempotent trip keeps the first reason
        assert step.record.trips == 1

    def test_reload_if_changed_reads_only_after_a_change(self, tmp_path: Path) -> None:
        path = tmp_path / STATE_FILE_NAME
        reader = BreakerStore(path, lambda: _T0)
        reader.load()
        assert reader.reload_if_changed() is None
        BreakerStore(path, lambda: _T0).update(lambda record: trip(record, "x", _T0))
        fresh = reader.reload_if_changed()
        assert fresh is not None and fresh[0].reason == "x"
        assert reader.reload_if_changed() is None
        path.unlink()  # removed by hand: a closed breaker again, and noticed
        assert reader.reload_if_changed() == (BreakerRecord(), None)

    def test_a_version_that_is_not_a_count_is_a_corrupt_file(self, tmp_path: Path) -> None:
        path = tmp_path / STATE_FILE_NAME
        path.write_text(json.dumps({"schema_version": 1, "state": "closed", "version": "seven"}))
        record, problem = BreakerStore(path, lambda: _T0).load()
        assert problem is not None and "version: expected a count" in problem
        assert record.active


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client:
        yield client


@pytest.mark.integration
@pytest.mark.slow
async def test_a_trip_from_another_process_shows_in_the_running_sidecar_s_health_within_a_second(
    tmp_path: Path, session: aiohttp.ClientSession
) -> None:
    state_dir = tmp_path / "state"
    port = free_port()
    env = clean_env(tmp_path, DASHBOARD_PORT=port, METRICS_PORT=free_port(), MCP_MARKET_HOURS_ENABLED="false")
    sidecar = await start_child("sidecar", ["-m", "mcp.main_mcp", "all"], env, tmp_path)
    url = f"http://127.0.0.1:{port}/health"
    try:
        await wait_for_health(
            session, url, lambda body: body["gate"].get("mcp_circuit_breaker") == "closed", within=60, watch=(sidecar,)
        )
        assert await asyncio.to_thread(run_child, TRIP, state_dir, "tripped by the user's snippet") == "True"
        tripped_at = time.monotonic()
        # bounded wait: the sidecar re-reads the file every 0.5 s and /health is cached 0.25 s
        deadline = tripped_at + 1.0
        seen: Any = None
        while time.monotonic() < deadline:
            _, seen = await get_json(session, url)
            if seen["gate"].get("mcp_circuit_breaker") == "open":
                break
            await asyncio.sleep(0.05)
        assert seen["gate"]["mcp_circuit_breaker"] == "open", seen["gate"]
        assert "tripped by the user's snippet" in seen["gate"]["reason"]
    finally:
        await sidecar.stop()
