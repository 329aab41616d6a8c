"""The integrator's watch in the sidecar (mcp/risk_watch.py): monitor_all every interval, coverage after each
new test run, the MCP breaker's trips and half-open recovery, and one integrator behind every view of it.

The integrator is the real MCPRiskIntegrator with its state file in tmp_path. Two inputs are scripted:
the sidecar's process tree (tests/fakes/fake_psutil.py: the live machine's CPU is not an input a test
controls) and, in most tests, the testing server's results (`ScriptedRuns`: each verdict boundary needs an
exact coverage figure). `test_a_real_test_run_below_the_critical_line_trips` drives the real TestingServer.
Time is a movable clock; the watch's sleep waits for the test to release the next round.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import os
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from config.settings import Settings
from core.integrations.heavy_work_gate import HeavyWorkGate
from core.integrations.mcp_risk_integration import MCPRiskIntegrator
from mcp import sidecar_builder
from mcp.health import HealthStatus
from mcp.monitoring.wiring import MonitoringSources
from mcp.monitoring_server import MonitoringServer
from mcp.risk_watch import RiskWatchServer, run_to_verify, watch_status
from mcp.server import Server
from mcp.server_registry import SERVERS, SERVICES
from mcp.sidecar_builder import build_graph, build_services, monitoring_server
from mcp.sidecar_graph import SidecarGraph
from mcp.testing_server import TestingServer
from tests.fakes.fake_host import FakeHost
from tests.fakes.fake_psutil import FakeProc
from tests.fakes.fake_servers import ReadyServer
from tests.mcp.testing_projects import passing_project

OFF_HOURS = datetime(2026, 11, 21, 20, 0, tzinfo=UTC)
IN_MARKET_HOURS = datetime(2026, 11, 21, 10, 30, tzinfo=UTC)
INTERVAL = 30.0
COOLDOWN = 60.0


# --- builders -------------------------------------------------------------------------------------


class MovableClock:
    """A UTC clock that moves only when told (the watch's sleep moves it by the interval)."""

    def __init__(self, start: datetime = OFF_HOURS) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


class ManualSleep:
    """The watch's sleep: records the interval, waits for the test to release a round, then moves the clock."""

    def __init__(self, clock: MovableClock) -> None:
        self.clock = clock
        self.calls: list[float] = []
        self._permits = asyncio.Semaphore(0)
        self._changed = asyncio.Condition()

    async def __call__(self, seconds: float) -> None:
        async with self._changed:
            self.calls.append(seconds)
            self._changed.notify_all()
        await self._permits.acquire()
        self.clock.advance(seconds)

    async def sleeping(self, count: int) -> None:
        """Return once the watch has gone to sleep `count` times (bounded: 10 s)."""
        async with asyncio.timeout(10), self._changed:
            await self._changed.wait_for(lambda: len(self.calls) >= count)

    async def next_round(self) -> None:
        """Let one interval pass; return once the watch's round is over and it sleeps again."""
        count = len(self.calls) + 1
        self._permits.release()
        await self.sleeping(count)


class AlertLog:
    """The integrator's alert channel: (alert type, message, severity)."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, str, str]] = []

    async def __call__(self, alert_type: str, message: str, severity: str) -> None:
        self.sent.append((alert_type, message, severity))

    def types(self) -> list[str]:
        return [alert_type for alert_type, _, _ in self.sent]


class ScriptedRuns:
    """The testing server's get_coverage / run_tests with results the test sets (see the module docstring).

    `run_tests` answers like the real server for an unchanged tree: the last run, status "unchanged".
    """

    def __init__(self, clock: MovableClock, tmp_path: Path) -> None:
        self.clock = clock
        self.project_root = tmp_path / "scripted_project"  # not this repository: no nested-suite guard
        self.last: dict[str, Any] | None = None
        self.run_calls = 0
        self.coverage_calls = 0

    def record(self, run_id: str, coverage: float | None, *, status: str = "passed", age: float = 0.0) -> None:
        started = self.clock() - timedelta(seconds=age)
        self.last = {
            "status": status,
            "run_id": run_id,
            "coverage": coverage,
            "threshold": 0.85,
            "started_at": started.isoformat(),
            "passed": 10,
            "failed": 0,
            "skipped": 0,
            "errors": 0,
            "message": f"{status}: scripted",
        }

    async def get_coverage(self) -> dict[str, Any]:
        self.coverage_calls += 1
        if self.last is None:
            return {"status": "not_run", "coverage": None, "run_id": None, "message": "no test run recorded yet"}
        return dict(self.last)

    async def run_tests(self) -> dict[str, Any]:
        self.run_calls += 1
        assert self.last is not None
        return {**self.last, "status": "unchanged", "last_status": self.last["status"]}


def make_settings(tmp_path: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "state_dir": tmp_path / "state",
        "mcp_circuit_breaker_cooldown_seconds": COOLDOWN,
        "mcp_market_hours_enabled": False,
        "mcp_testing_project_root": tmp_path,
        "monitor_interval_seconds": INTERVAL,
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


class Rig:
    """A watch over a real integrator, a fake process tree, scripted runs, a movable clock."""

    def __init__(
        self,
        tmp_path: Path,
        *,
        clock: MovableClock | None = None,
        integrator_class: type = MCPRiskIntegrator,
        **kw: Any,
    ) -> None:
        self.clock = clock or MovableClock()
        self.tree = FakeProc(pid=100, rss_mb=40.0)
        self.alerts = AlertLog()
        self.runs = ScriptedRuns(self.clock, tmp_path)
        self.settings = make_settings(tmp_path, **kw)
        self.integrator = integrator_class(
            self.settings, clock=self.clock, process=self.tree.handle(), alert=self.alerts, testing=self.runs
        )
        self.sleep = ManualSleep(self.clock)
        self.watch = RiskWatchServer(
            self.settings, integrator=self.integrator, testing=self.runs, sleep=self.sleep, clock=self.clock
        )

    @property
    def breaker(self) -> dict[str, Any]:
        return self.integrator.get_mcp_circuit_breaker_state()


@contextlib.asynccontextmanager
async def running(rig: Rig) -> AsyncIterator[Rig]:
    """The watch's run() as the supervisor runs it: ready after its first round, cancelled at the end."""
    ready = asyncio.Event()
    task = asyncio.create_task(rig.watch.run(ready))
    try:
        async with asyncio.timeout(10):
            await ready.wait()
        await rig.sleep.sleeping(1)
        yield rig
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


# --- pure rules -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("latest", "last_seen", "expected"),
    [
        ({"run_id": "r2", "status": "passed", "coverage": 0.9}, "r1", "r2"),
        ({"run_id": "r2", "status": "failed", "coverage": 0.5}, None, "r2"),
        ({"run_id": "r2", "status": "passed", "coverage": 0.0}, "r1", "r2"),
        ({"run_id": "r1", "status": "passed", "coverage": 0.9}, "r1", None),  # already seen
        ({"run_id": "r2", "status": "error", "coverage": None}, "r1", None),  # no figure: re-running would loop
        ({"run_id": "r2", "status": "timeout", "coverage": 0.4}, "r1", None),
        ({"run_id": "r2", "status": "passed", "coverage": 85}, "r1", None),  # a percentage, not a fraction
        ({"run_id": "r2", "status": "passed", "coverage": True}, "r1", None),
        ({"run_id": None, "status": "passed", "coverage": 0.9}, "r1", None),
        ({"status": "not_run", "coverage": None, "run_id": None}, None, None),
        ("not a result", None, None),
        (None, None, None),
    ],
)
def test_which_run_gets_verified(latest: Any, last_seen: str | None, expected: str | None) -> None:
    assert run_to_verify(latest, last_seen) == expected


@pytest.mark.parametrize(
    ("breaker", "failures", "status", "words"),
    [
        ({"state": "closed"}, 0, HealthStatus.HEALTHY, "closed"),
        ({"state": "open", "reason": "memory", "cooldown_remaining_seconds": 42.0}, 0, HealthStatus.HEALTHY, "42 s"),
        ({"state": "half_open", "reason": "memory"}, 0, HealthStatus.HEALTHY, "half-open"),
        ({"state": "open", "reason": "memory", "locked": True}, 0, HealthStatus.DEGRADED, "/reset_mcp"),
        ({"state": "closed"}, 1, HealthStatus.DEGRADED, "OSError: gone"),
        ({"state": "closed"}, 3, HealthStatus.CRITICAL, "3 times in a row"),
    ],
)
def test_watch_status(breaker: dict[str, Any], failures: int, status: HealthStatus, words: str) -> None:
    level, message = watch_status(breaker, monitor_failures=failures, last_error="OSError: gone")
    assert level is status and words in message


def test_a_non_positive_interval_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"interval: expected seconds > 0, received 0\.0"):
        RiskWatchServer(make_settings(tmp_path), object(), interval=0)


# --- monitoring every interval ------------------------------------------------------------------------


async def test_it_is_a_server_and_monitors_at_start_and_every_interval(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    assert isinstance(rig.watch, Server) and rig.watch.name == "risk_integrator" and rig.watch.tools() == []
    assert rig.watch.health()["status"] == "healthy"  # built with its integrator: readable before run()
    async with running(rig):
        statistics = rig.integrator.get_statistics()
        assert (statistics["monitor_checks"], statistics["initialized"], statistics["enabled"]) == (1, True, True)
        assert statistics["views"] == "state_files"  # initialize(None, None): the bot's files, read-only
        for _ in range(3):
            await rig.sleep.next_round()
        assert rig.integrator.get_statistics()["monitor_checks"] == 4
        assert rig.sleep.calls == [INTERVAL] * 4
        health = rig.watch.health()
    assert health["status"] == "healthy" and health["message"] == "MCP circuit breaker closed"
    assert health["monitor"]["total_memory_mb"] == 40.0 and health["monitor"]["within_limits"] is True
    assert health["monitor"]["at"] == (OFF_HOURS + timedelta(seconds=3 * INTERVAL)).isoformat()
    assert health["gate"]["heavy_work_allowed"] is True and health["mcp_circuit_breaker"]["state"] == "closed"
    assert health["monitor_checks"] == 4 and health["interval_seconds"] == INTERVAL


async def test_a_memory_breach_trips_the_breaker_and_health_shows_it(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    async with running(rig):
        rig.tree.rss_mb = 2000.0  # over MCP_RESOURCE_LIMIT_MB=1000: memory trips at once
        await rig.sleep.next_round()
        health = rig.watch.health()
    assert rig.breaker["state"] == "open" and "sidecar memory 2000.0 MB" in rig.breaker["reason"]
    assert rig.alerts.types() == ["CIRCUIT_BREAKER_TRIPPED"]
    assert health["mcp_circuit_breaker"]["state"] == "open" and health["mcp_circuit_breaker"]["trips"] == 1
    assert health["status"] == "healthy" and health["message"].startswith("MCP circuit breaker open (sidecar memory")
    assert health["gate"]["heavy_work_allowed"] is False and health["gate"]["code"] == "breaker_open"
    assert health["monitor"]["within_limits"] is False and health["monitor"]["total_memory_mb"] == 2000.0
    assert any("MCP_RESOURCE_LIMIT_MB" in cause for cause in health["monitor"]["causes"])
    # the state is persisted like the trading breaker's: a restarted sidecar starts open
    assert MCPRiskIntegrator(rig.settings, clock=rig.clock).mcp_circuit_breaker_active


async def test_sustained_cpu_trips_and_the_half_open_trial_closes_it_after_the_cooldown(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    async with running(rig):
        rig.tree.cpu = 80.0  # over MCP_RESOURCE_LIMIT_CPU_PERCENT=15, averaged over the 30 s interval
        await rig.sleep.next_round()
        assert rig.breaker["state"] == "closed"  # one busy check is not a trip
        await rig.sleep.next_round()
        assert rig.breaker["state"] == "open" and "sidecar CPU 80.0%" in rig.breaker["reason"]
        rig.tree.cpu = 2.0
        await rig.sleep.next_round()
        assert rig.breaker["state"] == "open"  # cooldown: 30 of 60 s
        await rig.sleep.next_round()  # cooldown over: half-open, and this healthy check is the trial
        statistics = rig.integrator.get_statistics()
    assert rig.breaker["state"] == "closed"
    assert (statistics["trips"], statistics["recoveries"], statistics["failed_recoveries"]) == (1, 1, 0)
    assert rig.watch.health()["gate"]["heavy_work_allowed"] is True


async def test_latency_p99_over_budget_in_the_bot_snapshot_trips(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    state_dir = rig.settings.state_dir
    state_dir.mkdir(parents=True)
    snapshot = {
        "schema_version": 1,
        "pid": os.getpid(),
        "updated_at": OFF_HOURS.isoformat(),
        "updated_at_epoch": OFF_HOURS.timestamp(),
        "trading_state": "ACTIVE",
        "latency_ms": {"p50": 40.0, "p95": 150.0, "p99": 240.0, "max": 300.0, "count": 80},
    }
    (state_dir / "risk_state.json").write_text(json.dumps(snapshot))
    async with running(rig):
        health = rig.watch.health()
    assert rig.breaker["state"] == "open" and "trading latency p99 240.0 ms" in rig.breaker["reason"]
    assert health["monitor"]["trading_latency_p99_ms"] == 240.0 and health["monitor"]["latency_within_budget"] is False


# --- coverage after each new run ------------------------------------------------------------------------


async def test_coverage_below_080_of_the_threshold_after_a_new_run_trips(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    rig.runs.record("r0", 0.40)  # recorded before this start: judged by the process that saw it
    async with running(rig):
        assert rig.breaker["state"] == "closed" and rig.watch.coverage_checks == 0
        rig.runs.record("r1", 0.60)  # below 0.8 × 0.85 = 0.68
        await rig.sleep.next_round()
        health = rig.watch.health()
        assert rig.breaker["state"] == "open" and "test coverage 60.0%" in rig.breaker["reason"]
        assert health["coverage"]["verdict"] == "critical" and health["coverage"]["action"] == "tripped"
        assert health["coverage"]["run_id"] == "r1" and health["gate"]["heavy_work_allowed"] is False
        await rig.sleep.next_round()
        await rig.sleep.next_round()
    assert rig.watch.coverage_checks == 1  # one run is verified once
    assert rig.integrator.get_statistics()["coverage_checks"] == 1


async def test_coverage_below_the_threshold_alerts_without_tripping(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    async with running(rig):
        rig.runs.record("r1", 0.75)  # below 0.85, above 0.68
        await rig.sleep.next_round()
        health = rig.watch.health()
    assert rig.breaker["state"] == "closed"
    assert rig.alerts.types() == ["TEST_COVERAGE"] and "75.0%" in rig.alerts.sent[0][1]
    assert health["coverage"]["verdict"] == "below_threshold" and health["coverage"]["action"] == "alerted"
    assert rig.runs.run_calls == 1  # outside market hours: a run (unchanged code: the stored result)


async def test_a_run_without_a_coverage_figure_is_not_verified(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    async with running(rig):
        rig.runs.record("r1", None, status="error")
        await rig.sleep.next_round()
        await rig.sleep.next_round()
    assert rig.runs.run_calls == 0 and rig.watch.coverage_checks == 0 and rig.watch.health()["coverage"] is None


async def test_a_verification_deferred_in_market_hours_is_retried_after_them(tmp_path: Path) -> None:
    clock = MovableClock(IN_MARKET_HOURS)
    rig = Rig(tmp_path, clock=clock, mcp_market_hours_enabled=True)
    async with running(rig):
        rig.runs.record("r1", 0.50, age=7 * 3600)  # too old to stand in for a run while runs are deferred
        await rig.sleep.next_round()
        health = rig.watch.health()
        assert health["coverage"]["status"] == "deferred" and "market hours" in health["coverage"]["reason"]
        assert rig.breaker["state"] == "closed" and rig.runs.run_calls == 0
        clock.now = OFF_HOURS - timedelta(seconds=INTERVAL)
        await rig.sleep.next_round()
    assert rig.runs.run_calls == 1 and rig.breaker["state"] == "open"
    assert rig.watch.health()["coverage"]["action"] == "tripped" and rig.watch.coverage_checks == 2


@pytest.mark.integration
async def test_a_real_test_run_below_the_critical_line_trips(tmp_path: Path) -> None:
    # the real TestingServer over a real project: 2/3 coverage < 0.8 × 0.85 = 0.68
    clock = MovableClock()
    settings = make_settings(tmp_path)
    tree = FakeProc(pid=100, rss_mb=40.0)
    alerts = AlertLog()
    # wired one way: the gate first, then the server it gates, then the integrator over both
    work_gate = HeavyWorkGate.from_settings(settings, clock=clock, alert=alerts)
    testing = TestingServer(
        project_root=passing_project(tmp_path / "proj"),
        source_packages=["pkg"],
        history_path=tmp_path / "history.sqlite3",
        threshold=0.85,
        niceness=None,
        timeout_seconds=90.0,
        gate=work_gate.gate,
    )
    integrator = MCPRiskIntegrator(settings, clock=clock, process=tree.handle(), testing=testing, work_gate=work_gate)
    sleep = ManualSleep(clock)
    rig_watch = RiskWatchServer(settings, integrator=integrator, testing=testing, sleep=sleep, clock=clock)
    ready = asyncio.Event()
    task = asyncio.create_task(rig_watch.run(ready))
    try:
        await asyncio.wait_for(ready.wait(), 10)
        result = await testing.run_tests()  # as an MCP client's run_tests would
        assert result["status"] == "passed" and result["coverage"] == pytest.approx(2 / 3, abs=1e-6)
        await sleep.sleeping(1)
        await sleep.next_round()
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    state = integrator.get_mcp_circuit_breaker_state()
    assert state["state"] == "open" and "test coverage 66.7%" in state["reason"]
    assert rig_watch.health()["coverage"]["run_id"] == result["run_id"]
    assert testing.health()["runs"] == 1  # verification reused the unchanged tree's run


# --- start-up, failures, settings ------------------------------------------------------------------------


async def test_integration_disabled_by_setting_keeps_heavy_work_deferred(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    rig = Rig(tmp_path, mcp_integration_enabled=False, mcp_circuit_breaker_enabled=False)
    with caplog.at_level(logging.WARNING, logger="mcp.risk_watch"):
        async with running(rig):
            rig.tree.rss_mb = 2000.0
            await rig.sleep.next_round()
            health = rig.watch.health()
    assert health["enabled"] is False and health["gate"]["code"] == "disabled"
    assert rig.breaker["state"] == "closed"  # reported, never tripped
    assert health["monitor"]["within_limits"] is False
    assert any("MCP_INTEGRATION_ENABLED=false" in m for m in caplog.messages)
    assert any("MCP_CIRCUIT_BREAKER_ENABLED=false" in m for m in caplog.messages)


class FlakyMonitor(MCPRiskIntegrator):
    """The real integrator whose monitor_all fails while `failing` is set (a bug, a full disk)."""

    failing = True

    async def monitor_all(self) -> dict[str, Any]:
        if self.failing:
            raise OSError("No space left on device")
        return await super().monitor_all()


async def test_a_failing_monitor_all_is_contained_and_reported(tmp_path: Path) -> None:
    rig = Rig(tmp_path, integrator_class=FlakyMonitor)
    async with running(rig):  # ready even though the first round failed: the watch itself is up
        assert rig.watch.health()["status"] == "degraded"
        await rig.sleep.next_round()
        await rig.sleep.next_round()
        health = rig.watch.health()
        assert health["status"] == "critical" and health["monitor_failures"] == 3
        assert health["last_error"] == "OSError: No space left on device"
        rig.integrator.failing = False
        await rig.sleep.next_round()
    health = rig.watch.health()
    assert health["status"] == "healthy" and health["monitor_failures"] == 0 and health["monitor"] is not None


# --- one integrator behind every view -----------------------------------------------------------------


async def test_the_watch_the_gate_and_the_monitoring_health_share_the_sidecar_s_integrator(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = make_settings(tmp_path)
    tree = FakeProc(pid=100, rss_mb=2000.0)  # over the memory limit from the start

    def integrator_over_a_fake_tree(config: Settings, **kw: Any) -> MCPRiskIntegrator:
        # the sidecar's graph builds the integrator (its gate, servers): a fake process tree instead of this one
        return MCPRiskIntegrator(config, process=tree.handle(), **kw)

    monkeypatch.setattr(sidecar_builder, "MCPRiskIntegrator", integrator_over_a_fake_tree)
    sources = MonitoringSources(
        psutil_like=FakeHost(),  # type: ignore[arg-type]
        pid_exists=lambda pid: False,
        server_states=lambda: {},
        alert_stats=lambda: None,
    )
    build = functools.partial(
        build_graph,
        settings,
        ["testing", "monitoring"],
        services=True,
        overrides={
            "testing": lambda _graph: ReadyServer("testing"),
            "monitoring": functools.partial(
                monitoring_server, sources=sources, serve_metrics=False, serve_dashboard=False
            ),
        },
        service_factories={"risk_integrator": SERVICES["risk_integrator"]},
    )
    sidecar = await asyncio.to_thread(build)  # file reads: off the loop
    assert sidecar.unavailable == {}
    assert [server.name for server in sidecar.servers] == ["testing", "monitoring", "risk_integrator"]
    watch, monitoring = sidecar.servers[2], sidecar.servers[1]
    assert isinstance(watch, RiskWatchServer) and watch.testing is sidecar.servers[0]
    ready = asyncio.Event()
    task = asyncio.create_task(watch.run(ready))
    try:
        await asyncio.wait_for(ready.wait(), 10)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    integrator = sidecar.graph.integrator
    assert watch.integrator is integrator and integrator is not None and integrator.mcp_circuit_breaker_active

    assert not (await sidecar.graph.gate("scan")).allowed
    assert isinstance(monitoring, MonitoringServer)
    report = await monitoring.check_once()
    assert report["gate"]["mcp_circuit_breaker"] == "open"
    assert report["gate"]["heavy_work_allowed"] is False
    assert report["gate"]["reason"].startswith("scan deferred: the MCP circuit breaker is open (sidecar memory")


def test_services_are_not_servers_and_a_clash_is_refused(tmp_path: Path) -> None:
    assert "risk_integrator" not in SERVERS and "telegram_commands" not in SERVERS  # no command, no stdio
    with pytest.raises(ValueError, match="service name 'testing' is already a server name"):
        build_services(SidecarGraph(make_settings(tmp_path)), {"testing": lambda _graph: ReadyServer("testing")})


def test_a_service_that_cannot_be_built_is_reported(tmp_path: Path) -> None:
    def broken(_graph: SidecarGraph) -> Server:
        raise ImportError("no module named mcp.gone")

    services, unavailable = build_services(
        SidecarGraph(make_settings(tmp_path)), {"a": broken, "b": lambda _g: object(), "c": lambda _g: None}
    )
    assert services == []
    assert unavailable == {
        "a": "ImportError: no module named mcp.gone",
        "b": "object does not implement the Server protocol",
    }
