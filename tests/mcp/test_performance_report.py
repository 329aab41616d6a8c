"""📊 PERFORMANCE REPORT: the schedule (pure), the text (pure), the outbox summary and the snapshot read
(real files), the MCP tool through the protocol, and the Telegram /report answer."""

from __future__ import annotations

import json
from datetime import UTC, datetime, time, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from config.settings import Settings
from core.risk_snapshot import RiskSnapshotWriter, risk_snapshot_path
from mcp.monitoring.metrics import MonitoringMetrics
from mcp.monitoring.report import (
    ReportFigures,
    build_report_text,
    collect_report,
    next_report_due,
    outbox_summary,
    report_figures,
    report_time,
)
from mcp.monitoring.wiring import MonitoringSources
from mcp.protocol.dispatcher import Dispatcher
from mcp.telegram_backend import SidecarCommandBackend
from mcp.tools.catalog import ToolSource, build_tool_registry
from mcp.tools.monitoring_tools import MonitoringTools
from tests.mcp.mcp_protocol_support import Client
from utils.alerting.outbox import OUTBOX_FILE_NAME, NewRow, Outbox

NOW = datetime(2026, 12, 7, 8, 0, tzinfo=UTC)
EIGHT = time(8, 0, tzinfo=UTC)


# --- the schedule -------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("now", "due"),
    [
        (datetime(2026, 12, 7, 7, 59, 59, tzinfo=UTC), datetime(2026, 12, 7, 8, 0, tzinfo=UTC)),
        (datetime(2026, 12, 7, 8, 0, tzinfo=UTC), datetime(2026, 12, 8, 8, 0, tzinfo=UTC)),  # just sent: tomorrow
        (datetime(2026, 12, 7, 23, 30, tzinfo=UTC), datetime(2026, 12, 8, 8, 0, tzinfo=UTC)),  # late start: no catch-up
        (datetime(2026, 12, 31, 9, 0, tzinfo=UTC), datetime(2027, 1, 1, 8, 0, tzinfo=UTC)),
        # a clock in another zone: 08:30 at UTC+2 is 06:30 UTC, so today's 08:00 UTC is still ahead
        (datetime(2026, 12, 7, 8, 30, tzinfo=timezone(timedelta(hours=2))), datetime(2026, 12, 7, 8, 0, tzinfo=UTC)),
    ],
)
def test_next_report_due_is_the_first_report_time_after_now(now: datetime, due: datetime) -> None:
    assert next_report_due(now, EIGHT) == due


def test_an_off_report_is_never_due() -> None:
    assert report_time("off") is None and next_report_due(NOW, None) is None


@pytest.mark.parametrize(("value", "stored"), [("08:00", "08:00"), ("8:05", "08:05"), ("OFF", "off"), ("", "off")])
def test_performance_report_time_setting_accepts_hh_mm_utc_or_off(value: str, stored: str) -> None:
    settings = Settings(_env_file=None, performance_report_time=value)  # type: ignore[call-arg]
    assert settings.performance_report_time == stored


@pytest.mark.parametrize("value", ["25:00", "08:60", "8am", "08:00:00", "noon"])
def test_a_malformed_performance_report_time_is_refused_saying_what_is_expected(value: str) -> None:
    with pytest.raises(ValidationError, match="expected HH:MM in UTC"):
        Settings(_env_file=None, performance_report_time=value)  # type: ignore[call-arg]
    with pytest.raises(ValueError, match="expected HH:MM"):
        report_time(value)


# --- the text -----------------------------------------------------------------------------------------
def snapshot(**overrides: Any) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "schema_version": 1,
        "pid": 123,
        "updated_at_epoch": NOW.timestamp(),
        "trading_state": "ACTIVE",
        "trades": {"executed": 42, "denied": 7, "failed": 1},
        "denials": {"max_position_size": 4, "min_order_size": 2, "circuit_breaker": 1},
        "realized_pnl": -3.5,
        "latency_ms": {"count": 42, "p50": 12.34, "p99": 48.9},
        "breaker": {
            "daily_loss": 6.25,
            "trip_history": [
                {"time": (NOW - timedelta(hours=30)).isoformat(), "kind": "error_burst"},  # yesterday's: not counted
                {"time": (NOW - timedelta(hours=2)).isoformat(), "kind": "consecutive_losses"},
            ],
        },
    }
    payload.update(overrides)
    return payload


HEALTH = {
    "components": {
        "sidecar": {"figures": {"cpu_percent": 0.42, "memory_mb": 61.7}},
        "testing": {"figures": {"coverage": 0.873}},
    }
}


def test_the_report_covers_trades_denials_pnl_trips_latency_sidecar_coverage_and_alerts() -> None:
    figures = report_figures(NOW, snapshot(), HEALTH, {"sent": 9, "pending": 1, "dead": 0}, suppressed=120)
    text = build_report_text(figures)
    assert text.splitlines() == [
        "📊 PERFORMANCE REPORT",
        "2026-12-07 08:00 UTC",
        "Trades: 42 copied, 7 denied, 1 failed",
        "Denied by reason: max_position_size 4, min_order_size 2, circuit_breaker 1",
        "P&L: realized -3.50, today -6.25; trading ACTIVE",
        "Breaker trips (24 h): 1",
        "Decision → ack: p50 12.3 ms, p99 48.9 ms over 42 trade(s)",
        "Sidecar: CPU 0.4 %, RSS 62 MB; coverage 87.3%",
        "Alerts (24 h): 9 sent, 1 pending, 0 dead letter(s); suppressed by dedup 120",
    ]


def test_unknown_figures_are_said_as_unknown_never_as_zero() -> None:
    text = build_report_text(report_figures(NOW, None, {}, None, snapshot_problem="risk_state.json does not exist"))
    assert "Bot figures unavailable: risk_state.json does not exist" in text
    assert "Sidecar: CPU unknown, RSS unknown; coverage unknown" in text
    assert "Alerts: log only (no outbox); suppressed unknown" in text
    odd = report_figures(NOW, snapshot(trades="lots", latency_ms={"count": 0}, denials={"x": "many"}), {}, None)
    odd_text = build_report_text(odd)
    assert "Trades: unknown copied, unknown denied, unknown failed" in odd_text
    assert "p50 unknown, p99 unknown over 0 trade(s)" in odd_text and "Denied by reason" not in odd_text


def test_many_denial_reasons_are_cut_to_the_top_ones() -> None:
    denials = {f"reason_{n:02d}": n for n in range(1, 12)}
    text = build_report_text(ReportFigures(generated_at=NOW, denials=denials))
    assert "Denied by reason: reason_11 11, reason_10 10" in text and text.rstrip().endswith("unknown")
    assert "(+3 more)" in text


# --- the edges: real files ----------------------------------------------------------------------------
async def write_outbox(path: Path) -> None:
    outbox = Outbox(path)
    await outbox.open()
    try:
        ids = await outbox.enqueue(
            [
                NewRow("a1", "telegram", "42", "f1", None, "info", "firing", "{}"),
                NewRow("a1", "alertmanager", "", "f1", None, "info", "firing", "{}"),
                NewRow("a2", "telegram", "42", "f2", None, "info", "firing", "{}"),
                NewRow("a3", "telegram", "42", "f3", None, "info", "firing", "{}"),
            ]
        )
        await outbox.mark_sent(ids[0])  # a1: sent on one channel, pending on the other: counts as sent
        await outbox.mark_dead(ids[2], "Forbidden")
    finally:
        await outbox.close()


async def test_outbox_summary_counts_alerts_not_rows(tmp_path: Path) -> None:
    path = tmp_path / OUTBOX_FILE_NAME
    assert outbox_summary(path, 0.0) is None
    await write_outbox(path)
    assert outbox_summary(path, 0.0) == {"sent": 1, "pending": 1, "dead": 1}
    assert outbox_summary(path, 4e9) == {"sent": 0, "pending": 0, "dead": 0}  # nothing in the window


async def test_a_corrupt_outbox_makes_the_alert_line_say_so(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    (state / OUTBOX_FILE_NAME).write_bytes(b"not a database at all" * 100)
    settings = Settings(_env_file=None, state_dir=state)  # type: ignore[call-arg]
    text = await collect_report(settings, HEALTH, now=NOW)
    assert "Alerts: unknown (cannot read the alert outbox" in text


async def test_collect_report_reads_the_bot_s_snapshot_and_the_outbox(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    RiskSnapshotWriter(risk_snapshot_path(state)).flush(snapshot())
    await write_outbox(state / OUTBOX_FILE_NAME)
    settings = Settings(_env_file=None, state_dir=state)  # type: ignore[call-arg]
    text = await collect_report(settings, HEALTH, now=NOW, suppressed=3)
    assert "Trades: 42 copied, 7 denied, 1 failed" in text
    assert "Alerts (24 h): 1 sent, 1 pending, 1 dead letter(s); suppressed by dedup 3" in text


# --- on demand: MCP tool and Telegram -----------------------------------------------------------------
class FakeMonitoring:
    def health_report(self) -> dict[str, Any]:
        return HEALTH

    async def performance_report(self) -> dict[str, Any]:
        return {"status": "ok", "text": "📊 PERFORMANCE REPORT\nTrades: 1 copied"}


async def test_get_performance_report_is_an_mcp_tool_of_the_monitoring_server(tmp_path: Path) -> None:
    settings = Settings(_env_file=None, state_dir=tmp_path)  # type: ignore[call-arg]
    monitoring = FakeMonitoring()
    metrics = MonitoringMetrics()
    tools = MonitoringTools(
        settings, health=monitoring.health_report, registry=metrics.registry, report=monitoring.performance_report
    )
    registry = build_tool_registry({"monitoring": ToolSource(tools.tools())})
    client = Client(Dispatcher(registry, metrics=metrics))
    await client.initialize()
    listed = [tool["name"] for tool in (await client.request("tools/list"))["result"]["tools"]]
    assert "get_performance_report" in listed
    answer = await client.call("get_performance_report")
    assert answer["isError"] is False
    assert answer["structuredContent"] == {"status": "ok", "text": "📊 PERFORMANCE REPORT\nTrades: 1 copied"}
    without = MonitoringTools(settings, health=monitoring.health_report)
    assert (await without.get_performance_report())["status"] == "unavailable"


async def test_a_failing_report_is_a_tool_error_and_the_server_goes_on(tmp_path: Path) -> None:
    async def broken() -> dict[str, Any]:
        raise OSError("disk gone")

    tools = MonitoringTools(Settings(_env_file=None), health=dict, report=broken)  # type: ignore[call-arg]
    answer = await tools.get_performance_report()
    assert answer["status"] == "error" and "disk gone" in answer["error"]


async def test_the_telegram_report_command_answers_the_monitoring_s_report() -> None:
    backend = SidecarCommandBackend(monitoring=FakeMonitoring(), integrator=object())
    assert await backend.report() == "📊 PERFORMANCE REPORT\nTrades: 1 copied"
    assert "does not run" in str(await SidecarCommandBackend(integrator=object()).report())


async def test_the_real_monitoring_server_builds_the_report_from_its_own_cache(tmp_path: Path) -> None:
    from mcp.monitoring_server import MonitoringServer
    from tests.fakes.fake_host import FakeHost

    state = tmp_path / "state"
    state.mkdir()
    RiskSnapshotWriter(risk_snapshot_path(state)).flush(snapshot())
    settings = Settings(_env_file=None, state_dir=state)  # type: ignore[call-arg]
    sources = MonitoringSources(
        psutil_like=FakeHost(), pid_exists=lambda pid: True, server_states=lambda: {}, alert_stats=lambda: None
    )
    server = MonitoringServer(settings, sources=sources, serve_metrics=False, serve_dashboard=False)
    await server.check_once()
    answer = await server.performance_report()
    assert answer["status"] == "ok" and answer["text"].startswith("📊 PERFORMANCE REPORT\n")
    assert "Trades: 42 copied" in answer["text"]
    json.dumps(answer)  # JSON-safe for the MCP tool
