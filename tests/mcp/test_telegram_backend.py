"""Telegram commands answered by the sidecar (mcp/telegram_backend.py), end to end through the fake Bot API.

The sidecar runs in-process under `mcp.main_mcp.serve` (the real Supervisor, the real wiring): a real
MonitoringServer (fake psutil host), a real TestingServer, the real MCPRiskIntegrator (fake process tree,
a clock held inside market hours) and the real TelegramCommands long-polling tests/fakes/fake_telegram.py
on loopback. The alert manager that /mute mutes is a real, log-only TelegramAlertManager.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from config.settings import Settings
from core.integrations.mcp_risk_integration import MCPRiskIntegrator
from mcp.codebase_search import CodebaseSearchServer
from mcp.main_mcp import serve, shutdown_alerts
from mcp.monitoring.gate_status import IntegratorGateStatus
from mcp.monitoring.wiring import MonitoringSources
from mcp.monitoring_server import MonitoringServer
from mcp.server import Server
from mcp.sidecar_builder import build_graph
from mcp.sidecar_graph import SidecarGraph
from mcp.telegram_backend import (
    SidecarCommandBackend,
    TelegramCommandsServer,
    build_telegram_commands,
    coverage_reply,
    health_reply,
    scan_reply,
    status_reply,
)
from mcp.testing_server import TestingServer
from tests.fakes.fake_host import FakeHost
from tests.fakes.fake_psutil import FakeProc
from tests.fakes.fake_servers import ReadyServer
from tests.fakes.fake_telegram import FakeTelegram, Stall
from tests.waiting import eventually
from utils import alerts
from utils.alerting.commands import TelegramCommands
from utils.alerting.delivery import RetryPolicy
from utils.alerts import TelegramAlertManager, configure_alerts, send_telegram_alert
from utils.sd_notify import SystemdNotifier

TOKEN = "555123456:SIDECAR-commands-token-Zx9y8w7v6u"
CHAT, OPERATOR, STRANGER, OTHER_CHAT = 4242, 1001, 6666, 5555
IN_MARKET_HOURS = datetime(2026, 11, 21, 10, 30, tzinfo=UTC)
OFF_HOURS = datetime(2026, 11, 21, 20, 0, tzinfo=UTC)
MUTE_CLOCK = 1_800_000_000.0
FAST_RETRY = RetryPolicy(base_seconds=0.01, factor=2.0, cap_seconds=0.05, jitter=0.5, error_pause_seconds=0.05)


def settings_for(tmp_path: Path, telegram: FakeTelegram | None = None, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "state_dir": tmp_path / "state",
        "mcp_testing_project_root": tmp_path / "no_project",
        "mcp_search_root": tmp_path / "tree",
        "metrics_enabled": False,
        "dashboard_enabled": False,
    }
    if telegram is not None:
        values.update(
            telegram_bot_token=TOKEN,
            telegram_chat_id=str(CHAT),
            telegram_allowed_user_ids=str(OPERATOR),
            telegram_base_url=telegram.base_url,
        )
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


@dataclass
class Sidecar:
    telegram: FakeTelegram
    integrator: MCPRiskIntegrator
    manager: TelegramAlertManager
    commands: TelegramCommands
    backend: SidecarCommandBackend

    async def ask(self, text: str, *, user: int = OPERATOR, chat: int = CHAT) -> str:
        """Send a command as `user` in `chat`; the bot's next reply."""
        count = len(self.telegram.messages)
        self.telegram.push_command(text, chat_id=chat, user_id=user)
        messages = await self.telegram.wait_for_messages(count + 1)
        return messages[count].text


@pytest.fixture
async def sidecar(tmp_path: Path) -> AsyncIterator[Sidecar]:
    async with FakeTelegram(TOKEN) as telegram:
        settings = settings_for(tmp_path, telegram)
        clock = lambda: IN_MARKET_HOURS  # noqa: E731
        integrator = MCPRiskIntegrator(settings, clock=clock, process=FakeProc(pid=100, rss_mb=40.0).handle())
        sources = MonitoringSources(
            psutil_like=FakeHost(),  # type: ignore[arg-type]
            pid_exists=lambda pid: False,
            alert_stats=lambda: None,
            gate_status=IntegratorGateStatus(settings, integrator, clock=clock),
            hold=0.0,  # verdicts at once: the warm-up is proven in tests/test_health_truth.py
        )
        monitoring = MonitoringServer(settings, sources=sources, serve_metrics=False, serve_dashboard=False)
        testing = TestingServer(settings, history_path=tmp_path / "history.sqlite3")
        # log-only (no token): /mute changes what it would send, and nothing reaches the fake chat
        manager = TelegramAlertManager(settings_for(tmp_path / "alerts"), clock=lambda: MUTE_CLOCK)
        backend = SidecarCommandBackend(
            monitoring=monitoring, testing=testing, integrator=integrator, alert_manager=lambda: manager
        )
        commands = TelegramCommands.from_settings(settings, backend, poll_seconds=1.0, read_timeout=2.0)
        assert commands is not None
        servers: list[Server] = [monitoring, testing, TelegramCommandsServer(commands, backend)]
        stop = asyncio.Event()
        task = asyncio.create_task(
            serve(settings, servers, notifier=SystemdNotifier(""), stop=stop, install_signal_handlers=False)
        )
        try:
            await eventually(lambda: commands.application is not None and backend.supervisor is not None, "polling")
            # every server ready, not only polling: /status must not race the monitoring server's start-up
            supervisor = backend.supervisor
            await eventually(
                lambda: all(s["state"] == "running" for s in supervisor.statistics()["servers"].values()), "all ready"
            )
            yield Sidecar(telegram, integrator, manager, commands, backend)
        finally:
            stop.set()
            assert await asyncio.wait_for(task, 30) == 0
            await manager.aclose(1.0)


# --- end to end through the fake Bot API ------------------------------------------------------------


@pytest.mark.integration
async def test_an_allowed_operator_gets_the_status_and_nobody_else_gets_anything(sidecar: Sidecar) -> None:
    sidecar.telegram.push_command("/status", chat_id=CHAT, user_id=STRANGER)
    sidecar.telegram.push_command("/reset_mcp", chat_id=OTHER_CHAT, user_id=OPERATOR)
    sidecar.telegram.push_command("/mute 60", chat_id=STRANGER, user_id=STRANGER)
    reply = await sidecar.ask("/status")
    assert [m.chat_id for m in sidecar.telegram.messages] == [str(CHAT)]  # the denied ones got nothing
    assert sidecar.commands.stats["denied"] == 3 and sidecar.manager.muted_until is None
    lines = reply.split("\n")
    assert lines[0] == "<b>/status</b>"
    assert "summary: 3/3 servers running; overall " in reply
    assert "servers.telegram_commands: running, restarts 0, up " in reply
    assert "servers.monitoring: running, restarts 0" in reply and "servers.testing: running" in reply
    assert "restarts_total: 0" in reply and "mcp_circuit_breaker: closed" in reply


@pytest.mark.integration
async def test_mute_reset_scan_health_and_coverage(sidecar: Sidecar) -> None:
    reply = await sidecar.ask("/mute 5")
    assert sidecar.manager.muted_until == MUTE_CLOCK + 300
    until = datetime.fromtimestamp(MUTE_CLOCK + 300, UTC).isoformat(timespec="seconds")
    expected = f"Telegram alerts below critical muted for 5 minute(s), until {until}; critical ones still go out"
    assert reply == f"<b>/mute</b>\n{expected}"
    assert (await sidecar.ask("/mute 0")).endswith("Telegram alerts unmuted") and sidecar.manager.muted_until is None

    await sidecar.integrator.trip_mcp_circuit_breaker("sidecar memory 2000.0 MB is over MCP_RESOURCE_LIMIT_MB=1000")
    reply = await sidecar.ask("/reset_mcp")
    assert not sidecar.integrator.mcp_circuit_breaker_active
    assert "result: MCP circuit breaker reset (was open: sidecar memory 2000.0 MB" in reply
    assert "state: closed" in reply and "manual_resets: 1" in reply
    assert "already closed; nothing to reset" in await sidecar.ask("/reset_mcp")

    reply = await sidecar.ask("/scan")
    assert reply.startswith("<b>/scan</b>\nstatus: deferred\nreason: scan deferred: market hours 09:00-16:00 UTC")
    assert "(now 10:30 UTC)" in reply
    statistics = sidecar.integrator.get_statistics()
    assert statistics["scans"] == 0 and statistics["deferred_by_kind"]["scan"] == 1

    reply = await sidecar.ask("/health")
    assert reply.startswith("<b>/health</b>\noverall: ")
    assert "components.main_bot: critical: " in reply  # no bot snapshot in this sidecar's STATE_DIR
    assert "heavy_work: scan deferred: market hours" in reply

    reply = await sidecar.ask("/coverage")
    assert reply == "<b>/coverage</b>\nstatus: not_run\nmessage: no test run recorded yet: call run_tests"


# --- the backend's answers ----------------------------------------------------------------------------


async def test_a_scan_outside_market_hours_reports_counts_and_violations(tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    (tree / "pkg").mkdir(parents=True)
    (tree / "pkg" / "orders.py").write_text(
        "def loosen(settings):\n    settings.max_daily_loss = 1e9\n    return settings.max_order_size\n"
    )
    settings = settings_for(tmp_path)
    search = CodebaseSearchServer(settings, root=tree, parameters=["max_daily_loss", "max_order_size"])
    integrator = MCPRiskIntegrator(settings, clock=lambda: OFF_HOURS, search=search)
    reply = await SidecarCommandBackend(integrator=integrator).scan()
    assert isinstance(reply, dict)
    assert (reply["status"], reply["parameters"], reply["files_scanned"]) == ("completed", 2, 1)
    assert reply["usages"] == {"max_daily_loss": 1, "max_order_size": 1}
    assert reply["violations"] >= 1 and reply["first_violations"]["1"].startswith("pkg/orders.py:2 ")


def test_scan_reply_for_errors_and_odd_answers() -> None:
    assert scan_reply({"status": "error", "message": "codebase scan failed: root missing"}) == {
        "status": "error",
        "message": "codebase scan failed: root missing",
    }
    assert scan_reply({"status": "completed", "scanned_params": "garbage", "violations": None}) == {
        "status": "completed",
        "parameters": 0,
        "unused_parameters": 0,
        "files_scanned": None,
        "violations": 0,
        "usages": {},
    }
    many = {f"p{i:02d}": {"usage_count": i % 10} for i in range(20)}  # the busiest first, unused ones counted
    reply = scan_reply({"status": "completed", "scanned_params": many})
    assert list(reply["usages"]) == ["p09", "p19", "p08", "p18", "p07", "p17", "p06", "p16"]
    assert reply["unused_parameters"] == 2


def test_health_and_coverage_replies_tolerate_missing_and_malformed_fields() -> None:
    assert health_reply({"status": "degraded", "components": "garbage", "gate": None}) == {
        "overall": "degraded",
        "checked_at": None,
        "components": {},
        "trading_state": None,
        "heavy_work": None,
    }
    run = {"status": "passed", "coverage": 0.6667, "threshold": 0.85, "meets_threshold": False, "passed": 3}
    reply = coverage_reply({**run, "run_id": "abc", "risk_coverage": 0.75})
    assert (reply["coverage"], reply["threshold"], reply["risk_files"]) == ("66.7%", "85.0%", "75.0%")
    assert reply["tests"] == "3 passed, 0 failed, 0 skipped, 0 errors"
    assert coverage_reply({**run, "threshold": "high"})["threshold"] == "unknown"


def test_status_reply_lists_each_server_and_why_a_down_one_is_down() -> None:
    statistics = {
        "uptime_seconds": 12.0,
        "restarts_total": 3,
        "servers": {
            "testing": {"state": "failed", "restarts": 3, "last_error": "ImportError: gone", "uptime_seconds": None},
            "monitoring": {"state": "running", "restarts": 0, "uptime_seconds": 11.6},
        },
    }
    reply = status_reply(statistics, "1/2 servers running", {"state": "open", "reason": "cpu"})
    assert reply["servers"] == {
        "testing": "failed, restarts 3; last error: ImportError: gone",
        "monitoring": "running, restarts 0, up 12 s",
    }
    assert reply["mcp_circuit_breaker"] == "open (cpu)"


async def test_replies_when_a_part_of_the_sidecar_is_not_there(tmp_path: Path) -> None:
    backend = SidecarCommandBackend(integrator=MCPRiskIntegrator(settings_for(tmp_path)))
    assert "still starting" in str(await backend.status())
    assert "MCP_MONITORING_ENABLED=false" in str(await backend.health())
    assert "MCP_TESTING_ENABLED=false" in str(await backend.coverage())


async def test_mute_defaults_to_the_process_alert_manager(tmp_path: Path) -> None:
    alerts.reset_alert_manager()
    try:
        manager = configure_alerts(settings_for(tmp_path))
        await SidecarCommandBackend().mute(5)
        assert manager.muted_until is not None
    finally:
        alerts.reset_alert_manager()


# --- building the service -----------------------------------------------------------------------------


def test_commands_are_off_without_a_token_or_allowed_users(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO):
        sidecar = build_graph(settings_for(tmp_path), services=True)
    assert [s.name for s in sidecar.servers] == ["risk_integrator"] and sidecar.unavailable == {}
    assert "Telegram commands are off: TELEGRAM_BOT_TOKEN is not set" in caplog.messages
    no_users = settings_for(tmp_path, telegram_bot_token=TOKEN, telegram_chat_id=str(CHAT))
    with caplog.at_level(logging.WARNING):
        assert build_telegram_commands(SidecarGraph(no_users)) is None
    assert any("TELEGRAM_ALLOWED_USER_IDS" in m for m in caplog.messages)


def test_commands_are_built_over_the_sidecar_s_own_servers(tmp_path: Path) -> None:
    settings = settings_for(
        tmp_path, telegram_bot_token=TOKEN, telegram_chat_id=str(CHAT), telegram_allowed_user_ids=str(OPERATOR)
    )
    monitoring, testing = ReadyServer("monitoring"), ReadyServer("testing")
    sidecar = build_graph(
        settings,
        ["testing", "monitoring"],
        services=True,
        overrides={"testing": lambda _graph: testing, "monitoring": lambda _graph: monitoring},
    )
    services = sidecar.servers[2:]
    assert [s.name for s in services] == ["risk_integrator", "telegram_commands", "alert_rules"]
    server = services[1]
    assert isinstance(server, TelegramCommandsServer) and isinstance(server, Server)
    assert server.backend.monitoring is monitoring and server.backend.testing is testing
    # one integrator and one trading view for the whole sidecar
    assert server.backend.integrator is sidecar.graph.integrator and server.backend.trading is sidecar.graph.trading
    assert server.tools() == [] and server.health()["status"] == "degraded"  # not polling yet


@pytest.mark.integration
async def test_an_unreachable_telegram_is_degraded_health_not_a_failed_start(tmp_path: Path) -> None:
    # port 9 (discard) on loopback: nothing listens, every connection is refused at once
    settings = settings_for(
        tmp_path,
        telegram_bot_token=TOKEN,
        telegram_chat_id=str(CHAT),
        telegram_allowed_user_ids=str(OPERATOR),
        telegram_base_url="http://127.0.0.1:9/bot",
    )
    server = build_telegram_commands(SidecarGraph(settings), connect_timeout=0.2)
    assert server is not None
    ready = asyncio.Event()
    task = asyncio.create_task(server.run(ready))
    try:
        await asyncio.wait_for(ready.wait(), 5)
        await eventually(lambda: server.commands.stats["polling_errors"] >= 1, "a failed connection")
        health = server.health()
        assert health["status"] == "degraded" and "Telegram unreachable" in health["message"]
        assert not task.done()  # still retrying
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


# --- the sidecar's stop delivers queued alerts, bounded ------------------------------------------------


@contextlib.asynccontextmanager
async def process_alerts(settings: Settings) -> AsyncIterator[TelegramAlertManager]:
    alerts.reset_alert_manager()
    manager = configure_alerts(settings, confirm_seconds=0.0, retry=FAST_RETRY, telegram_read_timeout=0.3)
    try:
        yield manager
    finally:
        await alerts.close_alerts(1.0)
        alerts.reset_alert_manager()


@pytest.mark.integration
async def test_shutdown_alerts_delivers_what_is_queued_then_closes(tmp_path: Path) -> None:
    async with FakeTelegram(TOKEN) as telegram, process_alerts(settings_for(tmp_path, telegram)) as manager:
        assert await send_telegram_alert("🛑 MCP SERVERS STOPPED")
        await shutdown_alerts()
        assert [m.text for m in telegram.messages] == ["<b>🛑 MCP SERVERS STOPPED</b>"]
        assert manager.pipeline.outbox is None  # closed


@pytest.mark.integration
async def test_shutdown_alerts_is_bounded_when_telegram_hangs(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    async with FakeTelegram(TOKEN) as telegram, process_alerts(settings_for(tmp_path, telegram)):
        telegram.fail(*[Stall(seconds=5.0)] * 50)
        assert await send_telegram_alert("queued while Telegram hangs")
        with caplog.at_level(logging.WARNING, logger="mcp.main"):
            async with asyncio.timeout(5):  # a hang guard: the bounds are 0.2 + 0.2 s
                await shutdown_alerts(0.2, 0.2)
        assert telegram.messages == []
        assert any("stay in the outbox" in m for m in caplog.messages)


async def test_mute_minutes_reach_the_manager_in_minutes(tmp_path: Path) -> None:
    manager = TelegramAlertManager(settings_for(tmp_path), clock=lambda: MUTE_CLOCK)
    backend = SidecarCommandBackend(alert_manager=lambda: manager)
    reply = await backend.mute(30)
    assert manager.muted_until == MUTE_CLOCK + timedelta(minutes=30).total_seconds()
    assert "30 minute(s)" in str(reply)
