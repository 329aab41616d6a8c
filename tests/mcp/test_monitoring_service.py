"""MonitoringService: the gate block, alert totals, history rings, its own `monitoring` component, the loop."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from core.integrations.gate_rules import MarketHours
from core.integrations.mcp_risk_integration import MCPRiskIntegrator
from mcp.monitoring.base import Reading
from mcp.monitoring.gate_status import IntegratorGateStatus, gate_summary
from mcp.monitoring.levels import Level
from mcp.monitoring.service import History, MonitoringService, alert_totals_from_manager
from mcp.monitoring.wiring import MonitoringSources
from tests.fakes.fake_host import FakeHost
from tests.fakes.monitoring_builders import NOW, Clock, settings
from utils import alerts

NIGHT = datetime(2027, 1, 15, 3, 0, tzinfo=UTC)
MIDDAY = datetime(2027, 1, 15, 12, 0, tzinfo=UTC)
HOURS = MarketHours(True, 9, 16)


class Fixed:
    """A check that always reads the same."""

    def __init__(self, name: str, level: Level = Level.HEALTHY, interval: float = 10.0) -> None:
        self.name, self.level, self.interval = name, level, interval

    async def run(self, now: float) -> Mapping[str, Reading]:
        return {self.name: Reading(self.level, f"{self.name} fine", {"cpu_percent": 1.0})}


class Primed(Fixed):
    def __init__(self, name: str, error: Exception | None = None) -> None:
        super().__init__(name)
        self.error = error
        self.primed = 0

    async def prime(self) -> None:
        self.primed += 1
        if self.error is not None:
            raise self.error


def service(tmp_path: Path, checks: list[Any], clock: Clock | None = None, **kw: Any) -> MonitoringService:
    clock = clock or Clock()
    return MonitoringService(settings(tmp_path), checks, clock=clock, sleep=clock.sleep, **kw)


# --- the gate ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("enabled", "breaker", "now", "allowed", "code"),
    [
        (True, {"state": "closed"}, NIGHT, True, "allowed"),
        (True, {"state": "closed"}, MIDDAY, False, "market_hours"),
        (True, {"state": "open", "reason": "cpu 40%"}, NIGHT, False, "breaker_open"),
        (True, {"state": "half_open", "reason": "cpu 40%"}, NIGHT, False, "breaker_half_open"),
        (True, {"state": "open", "reason": "cpu", "failed_recoveries": 3}, NIGHT, False, "breaker_locked"),
        (False, {"state": "closed"}, NIGHT, False, "disabled"),
    ],
)
def test_gate_summary_applies_the_integrator_s_own_rule(
    enabled: bool, breaker: dict[str, Any], now: datetime, allowed: bool, code: str
) -> None:
    summary = gate_summary({"enabled": enabled, "market_hours": now is MIDDAY}, breaker, now, HOURS)
    assert summary["heavy_work_allowed"] is allowed and summary["code"] == code
    assert summary["mcp_circuit_breaker"] == breaker["state"]
    assert summary["market_hours"] is (now is MIDDAY)
    assert summary["reason"]


def test_gate_summary_rejects_an_unknown_breaker_state() -> None:
    with pytest.raises(ValueError, match="MCP breaker state 'ajar' is not one of"):
        gate_summary({"enabled": True}, {"state": "ajar"}, NIGHT, HOURS)


async def test_gate_status_reads_a_real_integrator_without_counting_a_deferral(tmp_path: Path) -> None:
    async def no_alert(alert_type: str, message: str, severity: str) -> None:
        return None

    config = settings(tmp_path)
    integrator = MCPRiskIntegrator(
        config, clock=lambda: NIGHT, state_file=tmp_path / "mcp_breaker.json", alert=no_alert
    )
    status = IntegratorGateStatus(config, integrator, clock=lambda: NIGHT)
    assert (await status())["heavy_work_allowed"] is True
    await integrator.trip_mcp_circuit_breaker("sidecar RSS 1200 MB over 1000 MB")
    closed_off = await status()
    assert closed_off["heavy_work_allowed"] is False and closed_off["mcp_circuit_breaker"] == "open"
    assert "sidecar RSS 1200 MB" in closed_off["reason"]
    assert integrator.get_statistics()["deferred"] == 0


async def test_a_failing_gate_source_is_reported_not_fatal(tmp_path: Path) -> None:
    async def broken() -> Mapping[str, Any]:
        raise RuntimeError("integrator state file unreadable")

    svc = service(tmp_path, [Fixed("host")], gate_status=broken)
    await svc.run_round()
    assert svc.health_report()["gate"] == {
        "market_hours": None,
        "mcp_circuit_breaker": None,
        "heavy_work_allowed": None,
        "reason": "gate state unavailable: RuntimeError: integrator state file unreadable",
    }


async def test_a_persistent_gate_problem_is_logged_once_not_every_round(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async def broken() -> Mapping[str, Any]:
        raise RuntimeError("integrator state file unreadable")

    clock = Clock()
    svc = service(tmp_path, [Fixed("host")], clock, gate_status=broken)
    for _ in range(3):
        await svc.run_round()
        clock.advance(10)
    assert svc.rounds == 3
    assert [r.message for r in caplog.records].count("cannot read the integrator's gate state") == 1


async def test_without_an_integrator_the_gate_says_so(tmp_path: Path) -> None:
    svc = service(tmp_path, [Fixed("host")])
    await svc.run_round()
    assert svc.health_report()["gate"]["reason"] == "no MCP risk integrator wired into the monitoring"


# --- alerts -------------------------------------------------------------------------------------------


def test_alert_totals_come_from_the_process_s_alert_manager(tmp_path: Path) -> None:
    manager = alerts.configure_alerts(settings(tmp_path))
    try:
        manager.suppressed_count = 4
        totals = alert_totals_from_manager()
        assert totals is not None and totals.suppressed == 4.0
        manager.sent_by_severity = {"critical": 2}  # type: ignore[attr-defined]
        assert alert_totals_from_manager().sent_by_severity == {"critical": 2}  # type: ignore[union-attr]
    finally:
        alerts.reset_alert_manager()


async def test_a_failing_alert_source_does_not_stop_the_round(tmp_path: Path) -> None:
    def broken() -> None:
        raise RuntimeError("no manager")

    svc = service(tmp_path, [Fixed("host")], alert_stats=broken)
    assert len(await svc.run_round()) == 1


# --- the service's own component, history, loop ---------------------------------------------------------


async def test_the_monitoring_component_turns_degraded_when_rounds_stall(tmp_path: Path) -> None:
    clock = Clock()
    svc = service(tmp_path, [Fixed("host")], clock)
    assert svc.monitoring_component()["status"] == "starting"  # no round yet: nothing known, nothing wrong
    await svc.run_round()
    assert svc.monitoring_component()["status"] == "healthy"
    clock.advance(2 * 10 + 6)
    stalled = svc.monitoring_component()
    assert stalled["status"] == "degraded" and "checks stalled" in stalled["message"]
    assert stalled["since"] == stalled["checked_at"]


async def test_priming_failures_are_left_to_the_check(tmp_path: Path) -> None:
    good, bad = Primed("a"), Primed("b", RuntimeError("no /proc"))
    svc = service(tmp_path, [good, bad])
    await svc.start()
    assert (good.primed, bad.primed) == (1, 1)
    assert len(await svc.run_round()) == 2


async def test_a_failing_round_listener_does_not_stop_the_checks(tmp_path: Path) -> None:
    def closed_pipe(_: MonitoringService) -> None:
        raise BrokenPipeError(32, "Broken pipe")

    clock = Clock()
    svc = service(tmp_path, [Fixed("host")], clock, on_round=closed_pipe)
    await svc.run_round()
    clock.advance(10)
    await svc.run_round()
    assert svc.rounds == 2


def test_history_rings_are_bounded_and_skip_unknowns() -> None:
    history = History(size=3)
    for second in range(5):
        history.add("coverage", NOW + second, 80 + second)
    history.add("coverage", NOW + 9, None)
    assert history.as_dict()["coverage"] == [[NOW + 2, 82], [NOW + 3, 83], [NOW + 4, 84]]
    assert history.as_dict()["sidecar_rss_mb"] == []


def test_set_server_states_needs_a_servers_check(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="no ServersCheck to feed"):
        service(tmp_path, [Fixed("host")]).set_server_states(lambda: {})


async def test_from_settings_builds_every_standard_check(tmp_path: Path) -> None:
    sources = MonitoringSources(psutil_like=FakeHost(), pid_exists=lambda pid: True, server_states=lambda: {})
    svc = MonitoringService.from_settings(settings(tmp_path), sources)
    intervals = {name: check.interval for name, check in svc.scheduler.checks.items()}
    assert intervals == {
        "main_bot": 10.0,
        "trade_executor": 10.0,
        "circuit_breaker": 10.0,
        "servers": 10.0,
        "sidecar": 10.0,
        "host": 10.0,  # sampled every interval (at most HOST_SAMPLE_SECONDS), judged on a 20 s mean
    }
    warmups = {name: getattr(check, "warmup", None) for name, check in svc.scheduler.checks.items()}
    assert warmups == dict.fromkeys(intervals, 15.0)  # 1.5 intervals: no verdict before that


async def test_the_loop_never_spins(tmp_path: Path) -> None:
    clock = Clock()
    five = asyncio.Event()
    svc = service(tmp_path, [Fixed("fast", interval=0.001)], clock, on_round=lambda s: s.rounds >= 5 and five.set())
    task = asyncio.create_task(svc.run())
    await asyncio.wait_for(five.wait(), timeout=30)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert min(clock.sleeps) >= 0.05
