"""With no Telegram token, alerts go to the log: masked, typed, flag-gated, and never raising."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import SecretStr

import utils.alerts as alerts
from config.settings import Settings
from utils.alerts import (
    AlertSeverity,
    AlertType,
    TelegramAlertManager,
    configure_alerts,
    describe_error,
    format_alert,
    get_alert_manager,
    key_allows,
    send_alert,
    send_error_alert,
    send_staging_alert,
    send_telegram_alert,
    send_trade_alert,
)

WALLET = "0x1234567890abcdef1234567890abcdef12fedcba"
CANARY_KEY = "CANARY-private-key-5f1e2d"


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(autouse=True)
def _fresh_manager() -> Iterator[None]:
    alerts.reset_alert_manager()
    yield
    alerts.reset_alert_manager()


def settings(**overrides: object) -> Settings:
    return Settings(_env_file=None, **overrides)  # type: ignore[call-arg]


def alert_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "alerts" and r.getMessage().startswith("ALERT")]


def test_no_token_warns_once_at_start_up(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="alerts"):
        manager = configure_alerts(settings())
        assert get_alert_manager() is manager
        assert get_alert_manager() is manager
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == ["TELEGRAM_BOT_TOKEN is not set: alerts go to the log only (logger 'alerts')"]


def test_alert_types_carry_the_reference_emoji_titles() -> None:
    headings = {member.name: member.heading for member in AlertType}
    assert headings == {
        "MCP_SERVERS_STARTED": "🚀 MCP SERVERS STARTED",
        "MCP_SERVERS_STOPPED": "🛑 MCP SERVERS STOPPED",
        "CIRCUIT_BREAKER_TRIPPED": "⚠️ CIRCUIT BREAKER TRIPPED",
        "PERFORMANCE_REPORT": "📊 PERFORMANCE REPORT",
        "CRITICAL_ISSUE": "🔴 CRITICAL ISSUE",
        "RESOURCE_WARNING": "⚠️ RESOURCE WARNING",
        "TEST_COVERAGE": "📈 TEST COVERAGE",
    }
    assert format_alert(AlertType.TEST_COVERAGE, "  87%  ") == "📈 TEST COVERAGE\n87%"


async def test_an_alert_is_logged_at_its_severity_with_secrets_and_wallets_masked(
    caplog: pytest.LogCaptureFixture,
) -> None:
    configure_alerts(settings(private_key=SecretStr(CANARY_KEY)))
    with caplog.at_level(logging.INFO, logger="alerts"):
        assert await send_telegram_alert(f"wallet {WALLET} key {CANARY_KEY}\nsecond line", "critical")
    record = next(r for r in caplog.records if r.getMessage().startswith("ALERT"))
    assert record.levelno == logging.CRITICAL
    text = record.getMessage()
    assert CANARY_KEY not in text and WALLET not in text
    assert "***fedcba" in text
    assert text == "ALERT severity=critical wallet ***fedcba key *** | second line"


async def test_typed_alert_uses_its_heading_and_default_severity(caplog: pytest.LogCaptureFixture) -> None:
    configure_alerts(settings())
    with caplog.at_level(logging.INFO, logger="alerts"):
        assert await send_alert(AlertType.MCP_SERVERS_STARTED, "3 server(s) running")
        assert await send_alert(AlertType.CRITICAL_ISSUE, "testing failed", key="k1")
    assert alert_lines(caplog) == [
        "ALERT severity=info 🚀 MCP SERVERS STARTED | 3 server(s) running",
        "ALERT severity=critical key=k1 🔴 CRITICAL ISSUE | testing failed",
    ]


async def test_unknown_severity_is_sent_as_warning_and_says_what_was_expected(
    caplog: pytest.LogCaptureFixture,
) -> None:
    configure_alerts(settings())
    with caplog.at_level(logging.INFO, logger="alerts"):
        assert await send_telegram_alert("disk nearly full", "critcal")
    messages = [r.getMessage() for r in caplog.records]
    assert any(
        "unknown alert severity 'critcal' (expected one of info, warning, error, critical)" in m for m in messages
    )
    assert alert_lines(caplog) == ["ALERT severity=warning disk nearly full"]


async def test_the_same_key_is_not_re_alerted_within_the_cooldown(caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    manager = configure_alerts(settings(alert_cooldown_minutes=5), clock=clock)
    with caplog.at_level(logging.INFO, logger="alerts"):
        assert await send_telegram_alert("cpu high", "warning", key="cpu")
        clock.now = 299.0
        assert await send_telegram_alert("cpu high", "warning", key="cpu") is False
        assert await send_telegram_alert("other", "warning", key="mem")
        clock.now = 300.0
        assert await send_telegram_alert("cpu high again", "warning", key="cpu")
    assert len(alert_lines(caplog)) == 3
    assert manager.suppressed_count == 1 and manager.sent_count == 3


@pytest.mark.parametrize(
    ("last", "now", "cooldown", "allowed"),
    [(None, 0.0, 300.0, True), (0.0, 299.9, 300.0, False), (0.0, 300.0, 300.0, True), (10.0, 10.0, 0.0, True)],
)
def test_key_allows(last: float | None, now: float, cooldown: float, allowed: bool) -> None:
    assert key_allows(last, now, cooldown) is allowed


async def test_error_alerts_follow_alert_on_error(caplog: pytest.LogCaptureFixture) -> None:
    configure_alerts(settings(alert_on_error=True))
    with caplog.at_level(logging.INFO, logger="alerts"):
        assert await send_error_alert(ValueError("bad book"), "executor")
    assert alert_lines(caplog) == ["ALERT severity=error ❌ ERROR | executor: ValueError: bad book"]
    caplog.clear()
    configure_alerts(settings(alert_on_error=False))
    with caplog.at_level(logging.INFO, logger="alerts"):
        assert await send_error_alert("anything") is False
    assert alert_lines(caplog) == []


async def test_circuit_breaker_alerts_follow_alert_on_circuit_breaker() -> None:
    configure_alerts(settings(alert_on_circuit_breaker=False))
    assert await send_alert(AlertType.CIRCUIT_BREAKER_TRIPPED, "daily loss") is False
    configure_alerts(settings(alert_on_circuit_breaker=True))
    assert await send_alert(AlertType.CIRCUIT_BREAKER_TRIPPED, "daily loss") is True


async def test_trade_alerts_are_off_by_default() -> None:
    configure_alerts(settings())
    assert await send_trade_alert("bought 10") is False
    configure_alerts(settings(alert_on_trade=True))
    assert await send_trade_alert("bought 10") is True


async def test_staging_alerts_are_marked(caplog: pytest.LogCaptureFixture) -> None:
    configure_alerts(settings())
    with caplog.at_level(logging.INFO, logger="alerts"):
        assert await send_staging_alert("deploy started")
    assert alert_lines(caplog) == ["ALERT severity=info [STAGING] deploy started"]


async def test_alert_enabled_false_logs_but_reports_not_sent(caplog: pytest.LogCaptureFixture) -> None:
    configure_alerts(settings(alert_enabled=False))
    with caplog.at_level(logging.INFO, logger="alerts"):
        assert await send_telegram_alert("x") is False
    assert alert_lines(caplog) == ["ALERT severity=info (ALERT_ENABLED=false) x"]


async def test_a_failing_channel_never_raises_into_the_caller(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    manager = configure_alerts(settings())

    def broken(*_args: object, **_kw: object) -> bool:
        raise OSError("log disk full")

    monkeypatch.setattr(manager, "_deliver", broken)  # the channel itself, the one boundary faked here
    with caplog.at_level(logging.ERROR, logger="alerts"):
        assert await send_telegram_alert("x") is False
    assert manager.failed_count == 1
    assert any(r.exc_info is not None for r in caplog.records)


async def test_invalid_settings_do_not_turn_an_alert_into_a_crash(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    monkeypatch.setenv("MAX_DAILY_LOSS", "-1")
    monkeypatch.chdir(tmp_path)  # no .env to read from
    alerts.get_settings.cache_clear()
    try:
        with caplog.at_level(logging.ERROR, logger="alerts"):
            assert await send_telegram_alert(f"still heard {WALLET}", "critical") is False
            assert await send_error_alert("boom") is False
    finally:
        alerts.get_settings.cache_clear()
    logged = [r.getMessage() for r in caplog.records]
    assert any("cannot build the alert manager" in m for m in logged)
    assert "ALERT severity=critical (undelivered) still heard ***fedcba" in logged


def test_describe_error() -> None:
    assert describe_error(KeyError("x"), "ctx") == "ctx: KeyError: 'x'"
    assert describe_error(RuntimeError()) == "RuntimeError"
    assert describe_error("plain") == "plain"


def test_severity_levels() -> None:
    assert [s.log_level for s in AlertSeverity] == [logging.INFO, logging.WARNING, logging.ERROR, logging.CRITICAL]
    assert isinstance(TelegramAlertManager(settings()).alert_on_error, bool)
