"""The alert-rules service at its edges: real alert managers (bot and sidecar) sharing one SQLite outbox,
delivering to the fake Bot API on loopback; a moved clock instead of sleeps.

One trip, one message: when the bot's own trip alert is in the outbox, the sidecar's is recorded, not sent.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from config.settings import Settings
from mcp.alert_rules_server import AlertRulesServer, rule_config
from mcp.monitoring.report import next_report_due
from tests.alerting.conftest import CHAT, FAST_RETRY, TOKEN
from tests.fakes.fake_telegram import FakeTelegram
from utils.alerts import TelegramAlertManager

pytestmark = pytest.mark.integration

FAST = {"retry": FAST_RETRY, "telegram_read_timeout": 0.3, "poll_interval_seconds": 0.1}
TRIP_AT = datetime(2026, 12, 7, 1, 0, tzinfo=UTC).timestamp()


@pytest.fixture
async def telegram() -> AsyncIterator[FakeTelegram]:
    async with FakeTelegram(TOKEN) as fake:
        yield fake


def settings(tmp_path: Path, fake: FakeTelegram, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "state_dir": tmp_path / "state",
        "telegram_bot_token": TOKEN,
        "telegram_chat_id": CHAT,
        "telegram_base_url": fake.base_url,
        "monitor_interval_seconds": 1.0,
        "performance_report_time": "08:00",
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class FakeMonitoring:
    """The monitoring server's two methods the rules read, with a report the test sets."""

    def __init__(self) -> None:
        self.report: dict[str, Any] = {}
        self.reports_asked = 0

    def health_report(self) -> dict[str, Any]:
        return self.report

    async def performance_report(self) -> dict[str, Any]:
        self.reports_asked += 1
        return {"status": "ok", "text": "📊 PERFORMANCE REPORT\nTrades: 3 copied, 1 denied, 0 failed"}


def breaker_report(state: str, **figures: Any) -> dict[str, Any]:
    values = {
        "trading_state": state,
        "trip_kind": "daily_loss" if state == "HALTED" else None,
        "trip_reason": "daily loss 20 >= 15" if state == "HALTED" else None,
        "tripped_at": datetime.fromtimestamp(TRIP_AT, UTC).isoformat() if state == "HALTED" else None,
        "daily_loss_percent": 0.0,
        "warning_percent": 0.12,
        "critical_percent": 0.15,
    }
    values.update(figures)
    return {"components": {"circuit_breaker": {"status": "critical", "message": "", "figures": values}}}


CLEARED = {
    "last_trip_kind": "daily_loss",
    "last_cleared_by": "manual reset: dashboard",
    "last_cleared_at": datetime.fromtimestamp(TRIP_AT + 60, UTC).isoformat(),
}


@pytest.fixture
async def managers(tmp_path: Path, telegram: FakeTelegram) -> AsyncIterator[tuple[TelegramAlertManager, ...]]:
    built = [TelegramAlertManager(settings(tmp_path, telegram), confirm_seconds=0.0, **FAST) for _ in range(2)]
    yield tuple(built)
    for manager in built:
        await manager.aclose(grace_seconds=1.0)


def rules(tmp_path: Path, telegram: FakeTelegram, sidecar: TelegramAlertManager, clock: Clock) -> AlertRulesServer:
    monitoring = FakeMonitoring()
    return AlertRulesServer(settings(tmp_path, telegram), monitoring, manager_factory=lambda: sidecar, clock=clock)


async def test_a_trip_the_bot_alerted_is_one_message_and_so_is_its_reset(
    tmp_path: Path, telegram: FakeTelegram, managers: tuple[TelegramAlertManager, ...]
) -> None:
    bot, sidecar = managers
    clock = Clock(TRIP_AT + 1)
    server = rules(tmp_path, telegram, sidecar, clock)
    assert await bot.send("Circuit breaker HALTED (daily_loss): daily loss 20 >= 15", "critical")
    server.monitoring.report = breaker_report("HALTED")  # type: ignore[attr-defined]
    await server.tick()
    clock.now += 5  # past the grace
    await server.tick()
    assert server.outcomes == {"by_bot": 1} and server.health()["firing"] == ["trading-breaker"]
    assert await bot.send("Circuit breaker daily_loss halt ended (manual reset: dashboard); trading state ACTIVE")
    server.monitoring.report = breaker_report("ACTIVE", **CLEARED)  # type: ignore[attr-defined]
    clock.now += 60
    await server.tick()
    assert server.outcomes == {"by_bot": 2}
    assert await bot.flush(5.0) and await sidecar.flush(5.0)
    texts = [message.text for message in telegram.messages]
    assert len(texts) == 2, texts
    assert "HALTED (daily_loss)" in texts[0] and "halt ended" in texts[1]


async def test_a_trip_the_bot_could_not_alert_is_said_by_the_sidecar_and_resolved_by_it(
    tmp_path: Path, telegram: FakeTelegram, managers: tuple[TelegramAlertManager, ...]
) -> None:
    _, sidecar = managers
    clock = Clock(TRIP_AT + 1)
    server = rules(tmp_path, telegram, sidecar, clock)
    server.monitoring.report = breaker_report("HALTED")  # type: ignore[attr-defined]
    await server.tick()
    clock.now += 5
    await server.tick()
    await server.tick()  # still halted: nothing more
    server.monitoring.report = breaker_report("ACTIVE", **CLEARED)  # type: ignore[attr-defined]
    clock.now += 60
    await server.tick()
    assert server.outcomes == {"sent": 2}
    assert await sidecar.flush(5.0)
    texts = [message.text for message in telegram.messages]
    assert len(texts) == 2, texts
    assert "⚠️ CIRCUIT BREAKER TRIPPED" in texts[0] and "seen by the monitoring sidecar" in texts[0]
    assert "RESOLVED" in texts[1] and "halt cleared by manual reset: dashboard" in texts[1]


async def test_alert_on_circuit_breaker_false_keeps_the_sidecar_quiet_about_trips(
    tmp_path: Path, telegram: FakeTelegram
) -> None:
    quiet = TelegramAlertManager(settings(tmp_path, telegram, alert_on_circuit_breaker=False), confirm_seconds=0.0)
    try:
        clock = Clock(TRIP_AT + 10)
        server = rules(tmp_path, telegram, quiet, clock)
        server.monitoring.report = breaker_report("HALTED")  # type: ignore[attr-defined]
        await server.tick()
        clock.now += 5
        await server.tick()
        assert server.outcomes == {"disabled": 1} and telegram.messages == []
    finally:
        await quiet.aclose(1.0)


async def test_the_daily_report_goes_out_when_its_time_comes_round_and_then_tomorrow(
    tmp_path: Path, telegram: FakeTelegram, managers: tuple[TelegramAlertManager, ...]
) -> None:
    _, sidecar = managers
    clock = Clock(datetime(2026, 12, 7, 7, 59, 59, tzinfo=UTC).timestamp())
    server = rules(tmp_path, telegram, sidecar, clock)
    server.next_report = next_report_due(datetime.fromtimestamp(clock.now, UTC), server.report_at)  # as run() does
    await server.tick()
    assert server.monitoring.reports_asked == 0  # type: ignore[attr-defined]
    clock.now += 1
    await server.tick()
    await server.tick()
    assert server.monitoring.reports_asked == 1 and server.reports_sent == 1  # type: ignore[attr-defined]
    assert server.next_report == datetime(2026, 12, 8, 8, 0, tzinfo=UTC)
    assert await sidecar.flush(5.0)
    assert [m.text for m in telegram.messages] == ["<b>📊 PERFORMANCE REPORT</b>\nTrades: 3 copied, 1 denied, 0 failed"]


async def test_an_evaluation_that_fails_is_reported_as_degraded_and_the_next_round_goes_on(
    tmp_path: Path, telegram: FakeTelegram, managers: tuple[TelegramAlertManager, ...]
) -> None:
    _, sidecar = managers
    server = rules(tmp_path, telegram, sidecar, Clock(TRIP_AT))

    def broken() -> dict[str, Any]:
        raise RuntimeError("health report unreadable")

    server.monitoring.health_report = broken  # type: ignore[method-assign]
    await server.tick()
    assert server.health()["status"] == "degraded" and "unreadable" in server.health()["message"]
    server.monitoring.health_report = lambda: {}  # type: ignore[method-assign]
    await server.tick()
    assert server.health()["status"] == "healthy"


@pytest.mark.parametrize(("interval", "grace"), [(30.0, 60.0), (1.0, 3.0)])
def test_the_rule_durations_come_from_the_interval_as_the_readme_says(
    tmp_path: Path, telegram: FakeTelegram, interval: float, grace: float
) -> None:
    """README table: trading-breaker after 2 × the interval (≥ 3 s); a component critical for 1.5 intervals
    (host 3); a snapshot stale after 60 s; the sidecar's warning levels are MONITORING_MAX_* ."""
    config = rule_config(
        settings(
            tmp_path,
            telegram,
            monitor_interval_seconds=interval,
            monitoring_max_cpu_percent=7.0,
            monitoring_max_memory_mb=90.0,
        )
    )
    assert config.breaker_grace_seconds == grace
    assert config.default_min_duration == 1.5 * interval
    assert config.min_durations == {"host": 3 * interval}
    assert config.stale_after_seconds == 60.0
    assert (config.sidecar_cpu_warning, config.sidecar_memory_warning_mb) == (7.0, 90.0)
