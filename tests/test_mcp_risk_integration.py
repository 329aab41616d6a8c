"""MCPRiskIntegrator (SPEC §7): read-only views, market-hours gate, MCP circuit breaker, monitoring, statistics.

Inputs from outside are real here: the bot's state files are real files, the test runs are real
subprocesses of the real TestingServer over tiny fixture projects, and the scans are the real
CodebaseSearchServer over a small tree. The one fake is the sidecar's process tree (tests/fakes/
fake_psutil.py): the live machine's CPU figures are not a test input we can control.
"""

from __future__ import annotations

import asyncio
import copy
import json
import logging
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from unittest.mock import Mock

import pytest

from config.settings import PROJECT_ROOT, Settings
from core.circuit_breaker import CircuitBreaker
from core.integrations import readonly
from core.integrations.breaker_control import send_via_alerts_module
from core.integrations.gate_rules import GateCode
from core.integrations.heavy_work_gate import HeavyWorkGate
from core.integrations.mcp_breaker import MAX_FAILED_RECOVERIES, BreakerState
from core.integrations.mcp_risk_integration import (
    MCPRiskIntegrator,
    get_mcp_risk_integrator,
    reset_process_integrator,
    set_process_integrator,
)
from core.integrations.readonly import (
    ReadOnlyView,
    ReadOnlyViolation,
    SnapshotBackedBreakerView,
    SnapshotBackedExecutorView,
    detach,
    read_only_breaker,
    read_only_executor,
)
from core.risk_snapshot import RiskSnapshotWriter, risk_snapshot_path
from core.trade_executor import TradeExecutor
from mcp.codebase_search import CodebaseSearchServer
from mcp.testing_server import TestingServer
from tests.fakes.fake_psutil import FakeProc
from utils import alerts
from utils.atomic import atomic_write_json

OFF_HOURS = datetime(2026, 11, 21, 20, 0, tzinfo=UTC)
IN_MARKET_HOURS = datetime(2026, 11, 21, 10, 30, tzinfo=UTC)
FIXTURE_PROJECTS = PROJECT_ROOT / "tests" / "fixtures" / "projects"


# --- builders -------------------------------------------------------------------------------------


class MovableClock:
    """A UTC clock that moves only when told."""

    def __init__(self, start: datetime = OFF_HOURS) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


class AlertLog:
    """Records the integrator's alerts: (alert type, message, severity)."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, str, str]] = []

    async def __call__(self, alert_type: str, message: str, severity: str) -> None:
        self.sent.append((alert_type, message, severity))

    def severities(self) -> list[str]:
        return [severity for _, _, severity in self.sent]


def settings_for(tmp_path: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {"state_dir": tmp_path / "state", "mcp_circuit_breaker_cooldown_seconds": 300.0}
    values.update(overrides)
    return Settings(_env_file=None, **values)


def build(
    tmp_path: Path,
    *,
    clock: MovableClock | None = None,
    tree: FakeProc | None = None,
    alerts: AlertLog | None = None,
    **kwargs: Any,
) -> MCPRiskIntegrator:
    settings = kwargs.pop("settings", None) or settings_for(tmp_path)
    kwargs.setdefault("alert", alerts or AlertLog())
    return MCPRiskIntegrator(
        settings,
        clock=clock or MovableClock(),
        process=(tree or FakeProc(pid=100, rss_mb=40.0)).handle(),
        **kwargs,
    )


def snapshot_payload(updated_at: datetime, **overrides: Any) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "schema_version": 1,
        "pid": 4242,
        "updated_at": updated_at.isoformat(),
        "updated_at_epoch": updated_at.timestamp(),
        "trading_mode": "paper",
        "trading_state": "ACTIVE",
        "wallet": "***abcdef",
        "breaker": {"state": "ACTIVE", "schema_version": 1},
        "risk_parameters": {"max_daily_loss": 100.0, "max_order_size": 50.0},
        "exposure": {"total": 12.5, "by_market": {"tok-1": 12.5}},
        "positions": [{"token_id": "tok-1", "market": "m", "size": 25.0, "avg_price": 0.5, "notional": 12.5}],
        "latency_ms": {"p50": 4.0, "p95": 9.0, "p99": 12.0, "max": 15.0, "count": 40},
        "arrival_latency_ms": {"p50": 5.0, "p95": 11.0, "p99": 14.0, "max": 16.0, "count": 40},
        "errors": {"rate_limit": 0, "timeout": 0, "rejected": 0, "network": 0, "total": 0},
        "trades": {"executed": 40, "denied": 2, "failed": 0},
        "rss_mb": 80.0,
    }
    payload.update(overrides)
    return payload


def breaker_file_payload(**overrides: Any) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "schema_version": 1,
        "state": "ACTIVE",
        "trip_kind": None,
        "daily_loss": 3.0,
        "trip_history": [{"time": "2026-11-20T10:00:00+00:00", "kind": "error_burst", "reason": "5 errors"}],
        "mcp_integration": {"enabled": True, "last_coverage": 0.9},
    }
    payload.update(overrides)
    return payload


class LedgerBreaker:
    """A live object with reads and writes, like the real breaker: the view must pass only the reads."""

    def __init__(self) -> None:
        self.record = {"state": "ACTIVE", "limits": {"max_daily_loss": 100.0}, "trips": [{"kind": "x"}]}

    def get_state(self) -> dict[str, Any]:
        return self.record

    async def get_performance_metrics(self) -> dict[str, Any]:
        return self.record

    @property
    def trip_history(self) -> list[dict[str, Any]]:
        return self.record["trips"]

    def reset(self, reason: str = "manual") -> None:
        self.record["state"] = "ACTIVE"


# --- read-only views ------------------------------------------------------------------------------


class TestReadOnlyView:
    def test_only_whitelisted_reads_are_reachable(self) -> None:
        view = ReadOnlyView(LedgerBreaker(), {"get_state", "trip_history"})
        assert view.get_state()["state"] == "ACTIVE"
        assert view.trip_history == [{"kind": "x"}]
        with pytest.raises(AttributeError, match="exposes only \\['get_state', 'trip_history'\\]; 'reset'"):
            _ = view.reset
        with pytest.raises(AttributeError):
            _ = view.record

    def test_setting_or_deleting_an_attribute_raises_read_only_violation(self) -> None:
        target = LedgerBreaker()
        view = ReadOnlyView(target, {"get_state"})
        with pytest.raises(ReadOnlyViolation, match="never changes risk state"):
            view.record = {"state": "HALTED"}
        with pytest.raises(ReadOnlyViolation, match="refused to set 'get_state'"):
            view.get_state = lambda: {}
        with pytest.raises(ReadOnlyViolation, match="refused to delete"):
            del view.get_state
        assert target.record["state"] == "ACTIVE"

    def test_the_wrapped_object_is_not_reachable_through_the_view(self) -> None:
        view = ReadOnlyView(LedgerBreaker(), {"get_state"})
        for name in ("_ro_target", "__dict__", "__getstate__", "__reduce_ex__"):
            with pytest.raises(AttributeError):
                getattr(view, name)
        assert dir(view) == ["get_state"]
        assert "LedgerBreaker" in repr(view)

    async def test_results_are_deep_copies(self) -> None:
        target = LedgerBreaker()
        original = copy.deepcopy(target.record)
        view = ReadOnlyView(target, {"get_state", "get_performance_metrics", "trip_history"})
        view.get_state()["limits"]["max_daily_loss"] = 1e9
        (await view.get_performance_metrics())["limits"]["max_daily_loss"] = 1e9
        view.trip_history.append({"kind": "forged"})
        assert target.record == original

    def test_copies_reach_into_every_container_and_share_only_immutable_leaves(self) -> None:
        when = datetime(2026, 1, 1, tzinfo=UTC)
        record = {"at": when, "tags": {"a"}, "rows": [(1, [2])], "limits": {"max": 1.0}, "state": GateCode.ALLOWED}
        copied = detach(record)
        assert copied == record
        assert copied["at"] is when and copied["state"] is GateCode.ALLOWED
        copied["tags"].add("b")
        copied["rows"][0][1].append(3)
        copied["limits"]["max"] = 2.0
        assert record == {"at": when, "tags": {"a"}, "rows": [(1, [2])], "limits": {"max": 1.0}, "state": "allowed"}

    def test_works_over_a_mock_and_still_refuses_what_the_mock_would_allow(self) -> None:
        # the user's Phase 4/6 snippets pass unittest.mock.Mock() for both components
        target = Mock()
        view = read_only_breaker(target)
        assert isinstance(view.get_state(), Mock)
        with pytest.raises(AttributeError):
            _ = view.reset  # a Mock answers every name; the view does not
        with pytest.raises(ReadOnlyViolation):
            view.state = "HALTED"
        assert read_only_breaker(view) is view  # no view of a view

    async def test_executor_view_exposes_the_read_methods_of_the_interface(self) -> None:
        view = read_only_executor(Mock())
        assert view.readable_names == {
            "get_performance_metrics",
            "monitor_risk_parameters",
            "snapshot",
            "get_risk_parameter_usage_report",
        }
        with pytest.raises(AttributeError):
            _ = view.execute_copy


class TestSnapshotBackedViews:
    def test_reads_the_bot_snapshot(self, tmp_path: Path) -> None:
        now = OFF_HOURS
        path = tmp_path / "risk_state.json"
        atomic_write_json(path, snapshot_payload(now - timedelta(seconds=2)))
        view = SnapshotBackedExecutorView(path, clock=lambda: now.timestamp())
        snapshot = view.snapshot()
        assert snapshot["trading_state"] == "ACTIVE"
        assert snapshot["view"]["status"] == "ok"
        assert snapshot["view"]["age_seconds"] == pytest.approx(2.0)

    async def test_executor_reads_come_from_the_snapshot(self, tmp_path: Path) -> None:
        path = tmp_path / "risk_state.json"
        atomic_write_json(path, snapshot_payload(OFF_HOURS))
        view = SnapshotBackedExecutorView(path, clock=lambda: OFF_HOURS.timestamp())
        risk = await view.monitor_risk_parameters()
        assert risk["risk_parameters"]["max_order_size"] == 50.0
        assert risk["exposure"]["total"] == 12.5
        assert risk["memory"] == {"rss_mb": 80.0}
        assert risk["breaker_state"] == "ACTIVE"
        performance = await view.get_performance_metrics()
        assert performance["latency_ms"]["p99"] == 12.0
        assert performance["trades"]["executed"] == 40

    @pytest.mark.parametrize(
        ("content", "status", "fragment"),
        [
            (None, "missing", "has not written it yet"),
            (b"{not json", "corrupt", "not valid JSON"),
            (b"\xff\xfe", "corrupt", "not valid JSON"),
            (b"[1, 2]", "corrupt", "should hold a JSON object, found list"),
            (json.dumps({"schema_version": 2}).encode(), "wrong_schema", "expected schema_version 1, received 2"),
            (json.dumps({"trading_state": "ACTIVE"}).encode(), "wrong_schema", "received None"),
        ],
    )
    def test_unusable_snapshot_gives_a_status_and_is_left_untouched(
        self, tmp_path: Path, content: bytes | None, status: str, fragment: str
    ) -> None:
        path = tmp_path / "risk_state.json"
        if content is not None:
            path.write_bytes(content)
        view = SnapshotBackedExecutorView(path, clock=lambda: OFF_HOURS.timestamp())
        snapshot = view.snapshot()
        assert snapshot["view"]["status"] == status
        assert fragment in snapshot["view"]["reason"]
        assert set(snapshot) == {"view"}
        # the sidecar never repairs or moves the bot's file: that is the bot's job
        assert sorted(p.name for p in tmp_path.iterdir()) == ([] if content is None else ["risk_state.json"])
        if content is not None:
            assert path.read_bytes() == content

    def test_an_oversized_file_is_not_read(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setattr(readonly, "MAX_STATE_FILE_BYTES", 64)
        path = tmp_path / "risk_state.json"
        atomic_write_json(path, snapshot_payload(OFF_HOURS))
        snapshot = SnapshotBackedExecutorView(path).snapshot()
        assert snapshot["view"]["status"] == "corrupt"
        assert "expected at most 64" in snapshot["view"]["reason"]

    def test_a_directory_in_place_of_the_file_is_reported(self, tmp_path: Path) -> None:
        path = tmp_path / "circuit_breaker.json"
        path.mkdir()
        state = SnapshotBackedBreakerView(path).get_state()
        assert state["view"]["status"] == "corrupt"
        assert "is a directory, expected a regular file" in state["view"]["reason"]

    def test_stale_snapshot_keeps_its_figures_and_says_stale(self, tmp_path: Path) -> None:
        path = tmp_path / "risk_state.json"
        atomic_write_json(path, snapshot_payload(OFF_HOURS - timedelta(minutes=10)))
        view = SnapshotBackedExecutorView(path, stale_after_seconds=60, clock=lambda: OFF_HOURS.timestamp())
        snapshot = view.snapshot()
        assert snapshot["view"]["status"] == "stale"
        assert "600 s ago" in snapshot["view"]["reason"]
        assert snapshot["trading_state"] == "ACTIVE"

    def test_breaker_view_reads_the_breaker_file(self, tmp_path: Path) -> None:
        path = tmp_path / "circuit_breaker.json"
        atomic_write_json(path, breaker_file_payload())
        view = SnapshotBackedBreakerView(path)
        assert view.state == "ACTIVE"
        assert view.trip_history[0]["kind"] == "error_burst"
        assert view.get_mcp_integration_state()["last_coverage"] == 0.9
        assert view.get_state()["daily_loss"] == 3.0

    def test_breaker_view_of_a_missing_file(self, tmp_path: Path) -> None:
        view = SnapshotBackedBreakerView(tmp_path / "circuit_breaker.json")
        assert view.state == "UNKNOWN"
        assert view.trip_history == []
        assert view.get_mcp_integration_state()["view"]["status"] == "missing"

    def test_file_views_refuse_writes(self, tmp_path: Path) -> None:
        view = SnapshotBackedBreakerView(tmp_path / "circuit_breaker.json")
        with pytest.raises(ReadOnlyViolation, match="only reads"):
            view._path = tmp_path / "elsewhere.json"
        with pytest.raises(ReadOnlyViolation):
            del view._path


# --- the integrator -------------------------------------------------------------------------------


class TestMCPRiskIntegrator:
    async def test_initialize_keeps_read_only_views(self, tmp_path: Path) -> None:
        integrator = build(tmp_path)
        target = LedgerBreaker()
        await integrator.initialize(target, Mock())
        view = integrator.circuit_breaker_view
        assert view is not None
        with pytest.raises(ReadOnlyViolation):
            view.record = {}
        with pytest.raises(AttributeError):
            _ = view.reset
        assert integrator.get_statistics()["initialized"] is True
        assert integrator.get_statistics()["views"] == "in_process"

    async def test_initialize_without_components_reads_the_bot_state_files(self, tmp_path: Path) -> None:
        clock = MovableClock()
        integrator = build(tmp_path, clock=clock)
        state_dir = tmp_path / "state"
        atomic_write_json(state_dir / "risk_state.json", snapshot_payload(clock.now))
        atomic_write_json(state_dir / "circuit_breaker.json", breaker_file_payload())
        await integrator.initialize()
        result = await integrator.monitor_all()
        assert result["risk_state"]["source"] == "state_files"
        assert result["risk_state"]["trading_state"] == "ACTIVE"
        assert result["risk_state"]["executor"]["exposure"]["total"] == 12.5
        assert result["trading_latency"] == {
            "p99_ms": 12.0,
            "count": 40,
            "budget_ms": 100.0,
            "within_budget": True,
            "note": None,
            "arrival_p99_ms": 14.0,
            "arrival_count": 40,
            "arrival_within_budget": True,
            "arrival_note": None,
        }

    async def test_monitor_all_without_initialize_uses_the_state_files(self, tmp_path: Path) -> None:
        integrator = build(tmp_path)
        result = await integrator.monitor_all()
        assert result["risk_state"]["source"] == "state_files"
        assert result["risk_state"]["executor"]["view"]["status"] == "missing"
        assert result["trading_latency"]["within_budget"] is None
        assert integrator.get_statistics()["initialized"] is False

    async def test_enable_and_disable(self, tmp_path: Path) -> None:
        integrator = build(tmp_path)
        assert integrator.get_statistics()["enabled"] is True  # MCP_INTEGRATION_ENABLED defaults to true
        await integrator.disable()
        decision = await integrator.gate("scan")
        assert (decision.allowed, decision.code) == (False, GateCode.DISABLED)
        scan = await integrator.scan_risk_parameters()
        assert scan["status"] == "deferred"
        assert "disabled" in scan["reason"]
        assert scan["total_scans"] == 0
        monitored = await integrator.monitor_all()  # monitoring goes on, in basic mode
        assert monitored["mode"] == "basic"
        assert monitored["resource_usage"]["status"] == "ok"
        await integrator.enable()
        assert (await integrator.gate("scan")).allowed is True

    async def test_integration_disabled_by_setting(self, tmp_path: Path) -> None:
        integrator = build(tmp_path, settings=settings_for(tmp_path, mcp_integration_enabled=False))
        assert integrator.get_statistics()["enabled"] is False
        assert (await integrator.gate("test_run")).code is GateCode.DISABLED

    async def test_gate_rejects_an_unknown_kind(self, tmp_path: Path) -> None:
        with pytest.raises(ValueError, match=r"unknown gate kind 'deploy': expected one of \['scan', 'test_run'\]"):
            await build(tmp_path).gate("deploy")

    async def test_market_hours_defer_heavy_work_with_the_reason(self, tmp_path: Path) -> None:
        clock = MovableClock(IN_MARKET_HOURS)
        integrator = build(
            tmp_path,
            clock=clock,
            testing=TestingServer(
                settings_for(tmp_path),
                project_root=FIXTURE_PROJECTS / "integrator_covered",
                history_path=tmp_path / "history.sqlite3",
            ),
        )
        assert integrator.is_market_hours() is True
        scan = await integrator.scan_risk_parameters()
        assert scan["status"] == "deferred"
        assert "market hours 09:00-16:00 UTC (now 10:30 UTC)" in scan["reason"]
        coverage = await integrator.verify_test_coverage()
        assert coverage["status"] == "deferred"
        assert "market hours" in coverage["reason"]
        assert coverage["threshold"] == 0.85
        assert "coverage" not in coverage  # no figure is better than a made-up one
        stats = integrator.get_statistics()
        assert stats["deferred"] == 2
        assert stats["deferred_by_kind"] == {"scan": 1, "test_run": 1}
        assert stats["market_hours"] is True
        monitored = await integrator.monitor_all()
        assert monitored["mode"] == "basic"
        assert monitored["gate"]["scan"]["code"] == "market_hours"

    async def test_trip_is_idempotent_and_reset_closes(self, tmp_path: Path) -> None:
        alerts = AlertLog()
        integrator = build(tmp_path, alerts=alerts)
        await integrator.trip_mcp_circuit_breaker("Test trip")
        await integrator.trip_mcp_circuit_breaker("another reason")
        assert integrator.mcp_circuit_breaker_active is True
        stats = integrator.get_statistics()
        assert (stats["trips"], stats["last_trip_reason"]) == (1, "Test trip")
        assert [a[0] for a in alerts.sent] == ["CIRCUIT_BREAKER_TRIPPED"]
        decision = await integrator.gate("scan")
        assert decision.code is GateCode.BREAKER_OPEN
        assert "Test trip" in decision.reason
        await integrator.reset_mcp_circuit_breaker()
        assert integrator.mcp_circuit_breaker_active is False
        assert integrator.get_statistics()["manual_resets"] == 1
        assert (await integrator.gate("scan")).allowed is True

    @pytest.mark.parametrize("reason", ["", "   ", None, 42])
    async def test_trip_needs_a_reason(self, tmp_path: Path, reason: Any) -> None:
        with pytest.raises(ValueError, match="needs a non-empty reason"):
            await build(tmp_path).trip_mcp_circuit_breaker(reason)

    async def test_breaker_state_survives_a_restart(self, tmp_path: Path) -> None:
        clock = MovableClock()
        first = build(tmp_path, clock=clock)
        await first.trip_mcp_circuit_breaker("sidecar memory too high")
        second = build(tmp_path, clock=clock)
        assert second.mcp_circuit_breaker_active is True
        assert second.get_mcp_circuit_breaker_state()["reason"] == "sidecar memory too high"
        assert second.get_statistics()["trips"] == 1

    async def test_corrupt_breaker_file_starts_open_keeps_the_file_and_alerts(self, tmp_path: Path) -> None:
        state_file = tmp_path / "state" / "mcp_circuit_breaker.json"
        state_file.parent.mkdir()
        state_file.write_bytes(b'{"schema_version": 1, "state": "clos')
        alerts = AlertLog()
        integrator = build(tmp_path, alerts=alerts)
        assert integrator.mcp_circuit_breaker_active is True
        assert "corrupt state" in integrator.get_mcp_circuit_breaker_state()["reason"]
        kept = list(state_file.parent.glob("mcp_circuit_breaker.json.corrupt-*"))
        assert len(kept) == 1
        assert kept[0].read_bytes() == b'{"schema_version": 1, "state": "clos'
        assert json.loads(state_file.read_text())["state"] == "open"
        await integrator.initialize(Mock(), Mock())
        assert [(a[0], a[2]) for a in alerts.sent] == [("CRITICAL_ISSUE", "error")]

    async def test_an_unwritable_state_file_is_logged_and_the_breaker_still_works(
        self, tmp_path: Path, caplog: pytest.LogCaptureFixture
    ) -> None:
        integrator = build(tmp_path)  # state/ does not exist yet: a closed breaker
        (tmp_path / "state").write_text("a file where the state folder should be")
        await integrator.trip_mcp_circuit_breaker("Test trip")
        assert integrator.mcp_circuit_breaker_active is True
        assert "could not persist the MCP circuit breaker" in caplog.text
        assert "it stays open in memory" in caplog.text

    async def test_a_failing_or_hanging_alert_channel_never_stops_the_breaker(self, tmp_path: Path) -> None:
        async def broken(alert_type: str, message: str, severity: str) -> None:
            raise ConnectionError("telegram unreachable")

        async def hanging(alert_type: str, message: str, severity: str) -> None:
            await asyncio.Event().wait()

        for channel in (broken, hanging):
            integrator = build(tmp_path / channel.__name__, alert=channel, alert_timeout_seconds=0.05)
            await integrator.trip_mcp_circuit_breaker("Test trip")
            stats = integrator.get_statistics()
            assert (stats["mcp_circuit_breaker_active"], stats["alert_failures"], stats["alerts_sent"]) == (True, 1, 0)

    async def test_default_channel_is_utils_alerts_with_the_typed_heading(
        self, tmp_path: Path, caplog: pytest.LogCaptureFixture
    ) -> None:
        caplog.set_level(logging.INFO, logger="alerts")
        alerts.configure_alerts(Settings(_env_file=None))  # no token: alerts go to the log
        try:
            await send_via_alerts_module("CRITICAL_ISSUE", "stays open after 3 failed recoveries", "critical")
            await send_via_alerts_module("", "MCP circuit breaker reset by hand", "info")
        finally:
            alerts.reset_alert_manager()
        logged = [(r.levelname, r.getMessage()) for r in caplog.records if r.name == "alerts"]
        heading = "ALERT severity=critical 🔴 CRITICAL ISSUE"
        assert ("CRITICAL", f"{heading} | stays open after 3 failed recoveries") in logged
        assert ("INFO", "ALERT severity=info MCP circuit breaker reset by hand") in logged

    async def test_nothing_is_written_until_the_breaker_changes(self, tmp_path: Path) -> None:
        integrator = build(tmp_path)
        await integrator.initialize(Mock(), Mock())
        await integrator.monitor_all()
        await integrator.gate("scan")
        assert not (tmp_path / "state").exists()  # the state dir is created lazily, on the first write

    async def test_half_open_trial_closes_after_a_healthy_check(self, tmp_path: Path) -> None:
        clock = MovableClock()
        integrator = build(tmp_path, clock=clock)
        await integrator.trip_mcp_circuit_breaker("Test trip")
        clock.advance(299)
        assert integrator.get_mcp_circuit_breaker_state()["state"] == "open"
        clock.advance(1)
        assert integrator.get_mcp_circuit_breaker_state()["state"] == "half_open"
        assert integrator.mcp_circuit_breaker_active is True
        decision = await integrator.gate("scan")
        assert decision.code is GateCode.BREAKER_HALF_OPEN
        result = await integrator.monitor_all()
        assert result["mcp_circuit_breaker"]["state"] == "closed"
        assert integrator.get_statistics()["recoveries"] == 1

    async def test_three_failed_recoveries_keep_it_open_until_a_manual_reset(self, tmp_path: Path) -> None:
        clock = MovableClock()
        alerts = AlertLog()
        tree = FakeProc(pid=100, rss_mb=1500.0)  # over MCP_RESOURCE_LIMIT_MB=1000
        integrator = build(tmp_path, clock=clock, tree=tree, alerts=alerts)
        first = await integrator.monitor_all()
        assert first["mcp_circuit_breaker"]["state"] == "open"
        assert "sidecar memory 1500.0 MB is over MCP_RESOURCE_LIMIT_MB=1000" in first["mcp_circuit_breaker"]["reason"]
        for attempt in range(1, MAX_FAILED_RECOVERIES + 1):
            clock.advance(300)
            result = await integrator.monitor_all()
            assert result["mcp_circuit_breaker"]["failed_recoveries"] == attempt
            assert result["mcp_circuit_breaker"]["state"] == "open"
        assert integrator.get_statistics()["mcp_circuit_breaker_locked"] is True
        assert alerts.severities().count("critical") == 1
        assert "Reset it by hand" in next(a for a in alerts.sent if a[2] == "critical")[1]
        tree.rss_mb = 50.0  # healthy again: still no automatic recovery
        clock.advance(3600 * 24)
        await integrator.monitor_all()
        assert integrator.get_mcp_circuit_breaker_state()["state"] == "open"
        assert (await integrator.gate("scan")).code is GateCode.BREAKER_LOCKED
        await integrator.reset_mcp_circuit_breaker()
        assert integrator.mcp_circuit_breaker_active is False
        assert (await integrator.monitor_all())["mcp_circuit_breaker"]["state"] == "closed"

    async def test_cpu_over_the_limit_trips_only_when_sustained(self, tmp_path: Path) -> None:
        clock = MovableClock()
        tree = FakeProc(pid=100, cpu=40.0, rss_mb=30.0)
        integrator = build(tmp_path, clock=clock, tree=tree)
        warm_up = await integrator.monitor_all()  # psutil's first reading of a process is 0.0
        assert warm_up["resource_usage"]["cpu_warming_up"] is True
        clock.advance(5)
        once = await integrator.monitor_all()
        assert once["resource_usage"]["within_limits"] is False
        assert once["resource_usage"]["cpu_window_seconds"] == 5.0
        assert once["mcp_circuit_breaker"]["state"] == "closed"
        clock.advance(5)
        twice = await integrator.monitor_all()
        assert twice["mcp_circuit_breaker"]["state"] == "open"
        assert "sidecar CPU 40.0% is over MCP_RESOURCE_LIMIT_CPU_PERCENT=15" in twice["mcp_circuit_breaker"]["reason"]

    async def test_cpu_averaged_over_milliseconds_never_counts(self, tmp_path: Path) -> None:
        # back-to-back checks make psutil average over a few ms: noise, not load
        clock = MovableClock()
        integrator = build(tmp_path, clock=clock, tree=FakeProc(pid=100, cpu=400.0, rss_mb=30.0))
        for _ in range(5):
            clock.advance(0.01)
            result = await integrator.monitor_all()
        assert result["resource_usage"]["within_limits"] is False
        assert result["mcp_circuit_breaker"]["state"] == "closed"

    async def test_sched_idle_work_is_reported_apart_and_never_trips(self, tmp_path: Path) -> None:
        """Issue 10: a SCHED_IDLE test run at 99 % of a core beside a calm sidecar leaves the breaker closed."""
        clock = MovableClock()
        test_run = FakeProc(pid=101, cpu=99.0, rss_mb=60.0, sched_idle=True)
        tree = FakeProc(pid=100, cpu=3.0, rss_mb=40.0, children=[test_run])
        integrator = build(tmp_path, clock=clock, tree=tree)
        await integrator.monitor_all()
        for _ in range(4):
            clock.advance(5)
            result = await integrator.monitor_all()
        usage = result["resource_usage"]
        assert (usage["total_cpu_percent"], usage["idle_cpu_percent"], usage["idle_processes"]) == (3.0, 99.0, 1)
        assert usage["total_memory_mb"] == pytest.approx(100.0)  # memory still counts, idle or not
        assert usage["within_limits"] is True and result["causes"] == []
        assert result["mcp_circuit_breaker"]["state"] == "closed"
        # the same run without SCHED_IDLE competes with the bot: it trips, as before
        test_run.sched_idle = False
        for _ in range(2):
            clock.advance(5)
            result = await integrator.monitor_all()
        assert result["mcp_circuit_breaker"]["state"] == "open"
        assert "sidecar CPU 102.0%" in result["mcp_circuit_breaker"]["reason"]

    async def test_arrival_to_ack_latency_over_budget_trips(self, tmp_path: Path) -> None:
        clock = MovableClock()
        integrator = build(tmp_path, clock=clock)
        arrival = {"p50": 40.0, "p95": 90.0, "p99": 130.0, "max": 180.0, "count": 200}
        snapshot = snapshot_payload(clock.now, arrival_latency_ms=arrival)
        atomic_write_json(tmp_path / "state" / "risk_state.json", snapshot)
        result = await integrator.monitor_all()
        assert result["trading_latency"]["within_budget"] is True  # decision -> ack is fine
        assert result["trading_latency"]["arrival_within_budget"] is False
        assert result["mcp_circuit_breaker"]["state"] == "open"
        reason = result["mcp_circuit_breaker"]["reason"]
        assert "trade arrival -> ack latency p99 130.0 ms is over the 100 ms budget" in reason

    async def test_a_snapshot_without_arrival_figures_is_said_not_judged(self, tmp_path: Path) -> None:
        clock = MovableClock()
        integrator = build(tmp_path, clock=clock)
        snapshot = snapshot_payload(clock.now)
        del snapshot["arrival_latency_ms"]  # a bot from before issue 10
        atomic_write_json(tmp_path / "state" / "risk_state.json", snapshot)
        result = await integrator.monitor_all()
        assert result["trading_latency"]["arrival_within_budget"] is None
        assert "no arrival -> ack latency" in result["trading_latency"]["arrival_note"]
        assert result["mcp_circuit_breaker"]["state"] == "closed"

    async def test_a_calm_check_between_two_busy_ones_restarts_the_count(self, tmp_path: Path) -> None:
        clock = MovableClock()
        tree = FakeProc(pid=100, cpu=40.0, rss_mb=30.0)
        integrator = build(tmp_path, clock=clock, tree=tree)
        await integrator.monitor_all()
        for cpu in (40.0, 2.0, 40.0):
            tree.cpu = cpu
            clock.advance(5)
            result = await integrator.monitor_all()
        assert result["mcp_circuit_breaker"]["state"] == "closed"

    async def test_breaker_disabled_reports_but_does_not_trip(self, tmp_path: Path) -> None:
        settings = settings_for(tmp_path, mcp_circuit_breaker_enabled=False)
        integrator = build(tmp_path, settings=settings, tree=FakeProc(pid=1, rss_mb=5000.0))
        result = await integrator.monitor_all()
        assert result["resource_usage"]["within_limits"] is False
        assert result["causes"]
        assert result["mcp_circuit_breaker"]["state"] == "closed"

    async def test_monitor_all_covers_the_whole_process_tree(self, tmp_path: Path) -> None:
        grandchild = FakeProc(pid=103, cpu=2.0, rss_mb=20.0)
        child = FakeProc(pid=101, cpu=3.0, rss_mb=30.0, children=[grandchild])
        vanished = FakeProc(pid=102, gone=True)
        other_user = FakeProc(pid=104, denied=True)
        root = FakeProc(pid=100, cpu=1.0, rss_mb=50.0, children=[child, vanished, other_user])
        integrator = build(tmp_path, tree=root)
        first = (await integrator.monitor_all())["resource_usage"]
        assert first["processes"] == 3
        assert first["total_memory_mb"] == pytest.approx(100.0)
        assert first["total_cpu_percent"] == 0.0
        assert (first["vanished"], first["denied"]) == (1, 1)
        second = (await integrator.monitor_all())["resource_usage"]
        # kept handles give real CPU figures on the second sample (children included)
        assert second["total_cpu_percent"] == pytest.approx(6.0)
        assert second["within_limits"] is True
        assert (second["limit_cpu_percent"], second["limit_memory_mb"]) == (15.0, 1000.0)

    async def test_a_process_tree_that_cannot_be_read_is_reported_not_tripped(self, tmp_path: Path) -> None:
        integrator = build(tmp_path, tree=FakeProc(pid=100, gone=True))
        result = await integrator.monitor_all()
        assert result["resource_usage"]["status"] == "error"
        assert "NoSuchProcess" in result["resource_usage"]["message"]
        assert result["resource_usage"]["within_limits"] is False
        assert result["mcp_circuit_breaker"]["state"] == "closed"

    async def test_trading_latency_over_budget_trips(self, tmp_path: Path) -> None:
        clock = MovableClock()
        integrator = build(tmp_path, clock=clock)
        latency = {"p50": 40.0, "p95": 90.0, "p99": 150.0, "max": 180.0, "count": 200}
        atomic_write_json(tmp_path / "state" / "risk_state.json", snapshot_payload(clock.now, latency_ms=latency))
        result = await integrator.monitor_all()
        assert result["trading_latency"]["within_budget"] is False
        assert result["mcp_circuit_breaker"]["state"] == "open"
        assert "trading latency p99 150.0 ms is over the 100 ms budget" in result["mcp_circuit_breaker"]["reason"]

    @pytest.mark.parametrize(
        ("age_seconds", "latency", "note"),
        [
            (600, {"p99": 150.0, "count": 200}, "snapshot not usable (stale)"),
            (0, {"p99": 150.0, "count": 0}, "no trades measured yet"),
            (0, {"count": 3}, "no p99"),
        ],
    )
    async def test_latency_that_cannot_be_judged_does_not_trip(
        self, tmp_path: Path, age_seconds: int, latency: dict[str, Any], note: str
    ) -> None:
        clock = MovableClock()
        integrator = build(tmp_path, clock=clock)
        written = clock.now - timedelta(seconds=age_seconds)
        atomic_write_json(tmp_path / "state" / "risk_state.json", snapshot_payload(written, latency_ms=latency))
        result = await integrator.monitor_all()
        assert note in result["trading_latency"]["note"]
        assert result["trading_latency"]["within_budget"] is None
        assert result["mcp_circuit_breaker"]["state"] == "closed"

    async def test_in_process_executor_latency_trips(self, tmp_path: Path) -> None:
        class SlowExecutor:
            async def get_performance_metrics(self) -> dict[str, Any]:
                return {"latency_ms": {"p99": 101.0, "count": 10}}

            async def monitor_risk_parameters(self) -> dict[str, Any]:
                return {"risk_parameters": {}}

        integrator = build(tmp_path)
        await integrator.initialize(LedgerBreaker(), SlowExecutor())
        result = await integrator.monitor_all()
        assert result["risk_state"]["trading_state"] == "ACTIVE"
        assert result["mcp_circuit_breaker"]["state"] == "open"

    async def test_monitor_all_with_mock_components(self, tmp_path: Path) -> None:
        integrator = build(tmp_path)
        await integrator.initialize(Mock(), Mock())
        await integrator.enable()
        result = await integrator.monitor_all()
        usage = result["resource_usage"]
        assert {"total_cpu_percent", "total_memory_mb", "within_limits"} <= set(usage)
        assert usage["within_limits"] is True
        assert result["risk_state"]["breaker"] == {
            "status": "unavailable",
            "reason": "expected a dict from get_state(), received Mock",
        }
        assert result["mcp_circuit_breaker"]["state"] == "closed"

    async def test_get_statistics(self, tmp_path: Path) -> None:
        integrator = build(tmp_path)
        stats = integrator.get_statistics()
        expected = {
            "enabled",
            "mcp_circuit_breaker_active",
            "trips",
            "recoveries",
            "failed_recoveries",
            "scans",
            "coverage_checks",
            "deferred",
            "last_trip_reason",
            "market_hours",
        }
        assert expected <= set(stats)
        assert (stats["trips"], stats["scans"], stats["mcp_circuit_breaker_active"]) == (0, 0, False)
        json.dumps(stats)  # JSON-safe for /health

    def test_get_mcp_risk_integrator_is_one_per_process(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        # conftest's process-singleton fixture starts this test with no integrator and no cached settings
        monkeypatch.setenv("STATE_DIR", str(tmp_path / "state"))
        first = get_mcp_risk_integrator()
        assert get_mcp_risk_integrator() is first
        assert first.get_statistics()["state_file"] == str(tmp_path / "state" / "mcp_circuit_breaker.json")
        assert not (tmp_path / "state").exists()

    def test_the_process_integrator_is_the_one_the_entry_point_registered(self, tmp_path: Path) -> None:
        registered = build(tmp_path)
        set_process_integrator(registered)
        assert get_mcp_risk_integrator() is registered
        reset_process_integrator()
        assert get_mcp_risk_integrator() is not registered

    def test_only_an_integrator_can_be_registered(self) -> None:
        with pytest.raises(TypeError, match="expects an MCPRiskIntegrator, received dict"):
            set_process_integrator({"gate": None})  # type: ignore[arg-type]


# --- scans through the real codebase search server ---------------------------------------------------


def scan_tree_with_a_write(root: Path) -> Path:
    """A small tree that reads one risk parameter and hard-codes another."""
    (root / "pkg").mkdir(parents=True)
    (root / "pkg" / "orders.py").write_text(
        "def loosen(settings):\n    settings.max_daily_loss = 1e9\n    return settings.max_order_size\n"
    )
    return root


class TestScan:
    async def test_scan_reports_every_parameter(self, tmp_path: Path) -> None:
        tree = scan_tree_with_a_write(tmp_path / "tree")
        search = CodebaseSearchServer(
            settings_for(tmp_path),
            root=tree,
            parameters=["max_daily_loss", "max_order_size", "stop_loss"],
            cache_path=tmp_path / "scan_cache.json",
        )
        integrator = build(tmp_path, search=search)
        result = await integrator.scan_risk_parameters()
        assert result["status"] == "completed"
        assert result["total_scans"] == 3  # the number of parameters in this scan
        assert set(result["scanned_params"]) == {"max_daily_loss", "max_order_size", "stop_loss"}
        assert result["scanned_params"]["max_order_size"]["usage_count"] == 1
        assert result["scanned_params"]["max_order_size"]["locations"][0]["file"] == "pkg/orders.py"
        assert result["scanned_params"]["stop_loss"]["usage_count"] == 0
        assert result["violation_count"] == len(result["violations"]) >= 1
        assert {v["parameter"] for v in result["violations"]} == {"max_daily_loss"}
        await integrator.scan_risk_parameters()
        assert integrator.get_statistics()["scans"] == 2  # the cumulative count lives in the statistics

    async def test_builds_its_own_search_server_from_settings(self, tmp_path: Path) -> None:
        tree = scan_tree_with_a_write(tmp_path / "tree")
        integrator = build(tmp_path, settings=settings_for(tmp_path, mcp_search_root=tree))
        result = await integrator.scan_risk_parameters()
        assert result["status"] == "completed"
        assert result["total_scans"] > 50  # the risk parameters plus every Settings field
        assert result["scanned_params"]["max_order_size"]["usage_count"] == 1

    async def test_scan_of_a_missing_root_is_an_error_with_the_message(self, tmp_path: Path) -> None:
        integrator = build(tmp_path, settings=settings_for(tmp_path, mcp_search_root=tmp_path / "nowhere"))
        result = await integrator.scan_risk_parameters()
        assert result["status"] == "error"
        assert "codebase scan failed: NotADirectoryError" in result["message"]
        assert (result["total_scans"], result["scanned_params"]) == (0, {})
        assert integrator.get_statistics()["scan_errors"] == 1

    async def test_scan_deferred_while_the_breaker_is_open(self, tmp_path: Path) -> None:
        integrator = build(tmp_path, settings=settings_for(tmp_path, mcp_search_root=tmp_path))
        await integrator.trip_mcp_circuit_breaker("sidecar memory over limit")
        result = await integrator.scan_risk_parameters()
        assert result["status"] == "deferred"
        assert "MCP circuit breaker is open (sidecar memory over limit)" in result["reason"]
        assert result["gate"]["code"] == "breaker_open"

    async def test_the_search_server_gated_by_the_integrator_agrees_with_it(self, tmp_path: Path) -> None:
        # wired one way: the gate first, then the server it gates, then the integrator over both
        clock = MovableClock(IN_MARKET_HOURS)
        work_gate = HeavyWorkGate.from_settings(settings_for(tmp_path), clock=clock, alert=AlertLog())
        search = CodebaseSearchServer(
            settings_for(tmp_path), root=tmp_path, cache_path=tmp_path / "cache.json", gate=work_gate.gate
        )
        integrator = build(tmp_path, clock=clock, search=search, work_gate=work_gate)
        assert integrator.work_gate is work_gate
        assert (await search.refresh())["status"] == "deferred"
        assert (await integrator.scan_risk_parameters())["status"] == "deferred"
        clock.now = OFF_HOURS
        assert (await integrator.scan_risk_parameters())["status"] == "completed"

    def test_a_gate_built_from_other_settings_is_refused(self, tmp_path: Path) -> None:
        work_gate = HeavyWorkGate.from_settings(settings_for(tmp_path / "other"), alert=AlertLog())
        with pytest.raises(ValueError, match="needs the gate built from the same settings"):
            build(tmp_path, work_gate=work_gate)
        assert MCPRiskIntegrator(work_gate=work_gate).settings is work_gate.settings


# --- the real risk core, in process and through its files ------------------------------------------------


class TestWithTheRealRiskCore:
    async def test_views_over_the_real_breaker_and_executor(self, tmp_path: Path) -> None:
        settings = settings_for(tmp_path)
        breaker = CircuitBreaker.from_settings(settings)
        executor = TradeExecutor(settings=settings, circuit_breaker=breaker)
        try:
            integrator = build(tmp_path, settings=settings)
            await integrator.initialize(breaker, executor)
            breaker_view = integrator.circuit_breaker_view
            executor_view = integrator.trade_executor_view
            assert breaker_view is not None and executor_view is not None
            writes = ("reset", "update_equity", "record_trade_result", "record_error", "check_mcp_test_coverage")
            for name in (*writes, "enable_mcp_integration", "disable_mcp_integration"):
                with pytest.raises(AttributeError):
                    getattr(breaker_view, name)
            for name in ("execute_copy", "enforce_stop_losses", "close", "breaker", "settings"):
                with pytest.raises(AttributeError):
                    getattr(executor_view, name)
            state = breaker_view.get_state()
            state["daily_loss_limit"] = 0.0
            assert breaker.get_state()["daily_loss_limit"] == 100.0
            assert str(breaker_view.state) == "ACTIVE"
            risk = await executor_view.monitor_risk_parameters()
            risk["risk_parameters"]["max_order_size"] = 1e9
            assert (await executor.monitor_risk_parameters())["risk_parameters"]["max_order_size"] == 50.0
            result = await integrator.monitor_all()
            assert (result["risk_state"]["source"], result["risk_state"]["trading_state"]) == ("in_process", "ACTIVE")
            assert result["trading_latency"]["note"] == "no trades measured yet"
        finally:
            await executor.close()

    async def test_file_views_read_what_the_bot_writes(self, tmp_path: Path) -> None:
        settings = settings_for(tmp_path)
        breaker = CircuitBreaker.from_settings(settings)
        executor = TradeExecutor(settings=settings, circuit_breaker=breaker)
        try:
            assert await RiskSnapshotWriter(risk_snapshot_path(settings.state_dir)).publish(
                executor.snapshot(), force=True
            )
        finally:
            await executor.close()
        integrator = build(tmp_path, settings=settings, clock=MovableClock(datetime.now(UTC)))
        await integrator.initialize()
        result = await integrator.monitor_all()
        risk_state = result["risk_state"]
        assert risk_state["source"] == "state_files"
        assert risk_state["breaker"]["view"]["status"] == "ok"
        assert risk_state["executor"]["view"]["status"] == "ok"
        assert risk_state["trading_state"] == "ACTIVE"
        assert risk_state["executor"]["risk_parameters"]["max_daily_loss"] == 100.0
        assert result["trading_latency"]["note"] == "no trades measured yet"


# --- coverage through the real testing server ---------------------------------------------------------


def make_testing_server(tmp_path: Path, project: str) -> TestingServer:
    return TestingServer(
        settings_for(tmp_path),
        project_root=FIXTURE_PROJECTS / project,
        history_path=tmp_path / "coverage_history.sqlite3",
    )


@pytest.mark.integration
class TestCoverageVerification:
    async def test_covered_project_meets_the_threshold(self, tmp_path: Path) -> None:
        integrator = build(tmp_path, testing=make_testing_server(tmp_path, "integrator_covered"))
        result = await integrator.verify_test_coverage()
        assert result["status"] == "completed", result
        assert (result["coverage"], result["threshold"], result["meets_threshold"]) == (1.0, 0.85, True)
        assert (result["source"], result["run_status"], result["action"]) == ("run", "passed", "none")
        assert result["tests"]["passed"] == 2
        again = await integrator.verify_test_coverage()  # code unchanged: the testing server does not re-run
        assert (again["status"], again["coverage"], again["run_status"]) == ("completed", 1.0, "unchanged")
        assert integrator.get_statistics()["coverage_checks"] == 2

    async def test_coverage_below_80_percent_of_the_threshold_trips_once_per_run(self, tmp_path: Path) -> None:
        alerts = AlertLog()
        clock = MovableClock(datetime.now(UTC).replace(hour=20))
        testing = make_testing_server(tmp_path, "integrator_partial")
        integrator = build(tmp_path, clock=clock, alerts=alerts, testing=testing)
        result = await integrator.verify_test_coverage()
        assert (result["status"], result["meets_threshold"], result["verdict"]) == ("completed", False, "critical")
        assert result["action"] == "tripped"
        assert integrator.mcp_circuit_breaker_active is True
        assert "below 80% of the 85.0% threshold" in integrator.get_mcp_circuit_breaker_state()["reason"]
        await integrator.reset_mcp_circuit_breaker()
        again = await integrator.verify_test_coverage()  # same run, already judged: no second trip
        assert (again["status"], again["action"]) == ("completed", "none")
        assert integrator.mcp_circuit_breaker_active is False
        assert [a[0] for a in alerts.sent].count("CIRCUIT_BREAKER_TRIPPED") == 1

    async def test_coverage_below_the_threshold_alone_alerts(self, tmp_path: Path) -> None:
        alerts = AlertLog()
        settings = settings_for(tmp_path, mcp_testing_coverage_target=0.35)  # 0.8 × 0.35 = 0.28 < 0.30
        integrator = build(
            tmp_path, settings=settings, alerts=alerts, testing=make_testing_server(tmp_path, "integrator_partial")
        )
        result = await integrator.verify_test_coverage()
        assert (result["verdict"], result["action"]) == ("below_threshold", "alerted")
        assert integrator.mcp_circuit_breaker_active is False
        assert alerts.sent[0][0] == "TEST_COVERAGE"
        assert "30.0% is below the 35.0% threshold" in alerts.sent[0][1]

    async def test_gated_run_uses_a_fresh_stored_result_or_defers(self, tmp_path: Path) -> None:
        testing = make_testing_server(tmp_path, "integrator_covered")
        ran = await testing.run_tests()
        started = datetime.fromisoformat(ran["started_at"])
        fresh_clock = MovableClock(started.replace(hour=10) + timedelta(days=1))
        fresh = build(tmp_path, clock=fresh_clock, testing=testing, coverage_max_age_seconds=2 * 86400)
        result = await fresh.verify_test_coverage()
        assert (result["status"], result["source"], result["coverage"]) == ("completed", "history", 1.0)
        stale = build(tmp_path, clock=fresh_clock, testing=testing, coverage_max_age_seconds=3600)
        deferred = await stale.verify_test_coverage()
        assert deferred["status"] == "deferred"
        assert "market hours" in deferred["reason"]
        assert deferred["last_known"]["coverage"] == 1.0

    async def test_never_runs_this_project_suite_from_inside_it(self, tmp_path: Path) -> None:
        assert "PYTEST_CURRENT_TEST" in os.environ
        testing = TestingServer(
            settings_for(tmp_path), project_root=PROJECT_ROOT, history_path=tmp_path / "history.sqlite3"
        )
        integrator = build(tmp_path, testing=testing)
        result = await integrator.verify_test_coverage()
        assert result["status"] == "deferred"
        assert "recurse into its own suite" in result["reason"]
        assert testing.health()["runs"] == 0

    async def test_a_missing_project_is_an_error_with_the_message(self, tmp_path: Path) -> None:
        testing = TestingServer(
            settings_for(tmp_path), project_root=tmp_path / "nowhere", history_path=tmp_path / "history.sqlite3"
        )
        result = await build(tmp_path, testing=testing).verify_test_coverage()
        assert result["status"] == "error"
        assert "missing_project" in result["message"]
        assert "coverage" not in result


# --- breaker state on disk, read back by a new integrator -----------------------------------------------


async def test_breaker_state_file_schema(tmp_path: Path) -> None:
    clock = MovableClock()
    integrator = build(tmp_path, clock=clock)
    await integrator.trip_mcp_circuit_breaker("disk full")
    stored = json.loads((tmp_path / "state" / "mcp_circuit_breaker.json").read_text())
    assert stored["schema_version"] == 1
    assert (stored["state"], stored["reason"], stored["trips"]) == (str(BreakerState.OPEN), "disk full", 1)
    assert stored["opened_at"] == clock.now.isoformat()
