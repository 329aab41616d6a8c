"""`utils.alerts` with Telegram (and Alertmanager) configured: the public senders against fakes on loopback."""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

import utils.alerts as alerts
from config.settings import Settings
from tests.alerting.conftest import CHAT, FAST_RETRY, STAGING_CHAT, TOKEN
from tests.fakes.fake_alertmanager import FakeAlertmanager
from tests.fakes.fake_telegram import FakeTelegram, Refuse, Stall
from utils.alerting.outbox import OUTBOX_FILE_NAME
from utils.alerts import (
    AlertType,
    TelegramAlertManager,
    configure_alerts,
    resolve_alert,
    send_alert,
    send_error_alert,
    send_staging_alert,
    send_telegram_alert,
)

pytestmark = pytest.mark.integration

FAST = {"retry": FAST_RETRY, "telegram_read_timeout": 0.3, "poll_interval_seconds": 0.1}


@pytest.fixture(autouse=True)
async def _fresh_manager() -> AsyncIterator[None]:
    alerts.reset_alert_manager()
    yield
    await alerts.close_alerts(grace_seconds=1.0)
    alerts.reset_alert_manager()


def settings(tmp_path: Path, fake: FakeTelegram | None = None, **overrides: Any) -> Settings:
    values: dict[str, Any] = {"state_dir": tmp_path / "state"}
    if fake is not None:
        values.update(telegram_bot_token=TOKEN, telegram_chat_id=CHAT, telegram_base_url=fake.base_url)
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


def manager(
    tmp_path: Path, fake: FakeTelegram | None = None, *, confirm: float = 0.0, **overrides: Any
) -> TelegramAlertManager:
    return configure_alerts(settings(tmp_path, fake, **overrides), confirm_seconds=confirm, **FAST)


async def test_one_thousand_identical_alerts_through_the_public_api_make_one_message(
    telegram: FakeTelegram, tmp_path: Path
) -> None:
    m = manager(tmp_path, telegram)
    results = [await send_telegram_alert("🔴 disk full on /var", "critical") for _ in range(1000)]
    assert results.count(True) == 1
    assert await m.flush(10.0)
    assert [msg.text for msg in telegram.messages] == ["<b>🔴 disk full on /var</b>"]
    assert (m.sent_count, m.suppressed_count, m.sent_by_severity["critical"]) == (1, 999, 1)


async def test_a_sender_waits_for_the_delivery_it_triggered(telegram: FakeTelegram, tmp_path: Path) -> None:
    """The README's troubleshooting check: after `await send_telegram_alert(...)` the message is there."""
    manager(tmp_path, telegram, confirm=5.0)
    assert await send_telegram_alert("Test alert")
    assert [msg.text for msg in telegram.messages] == ["<b>Test alert</b>"]


async def test_a_sender_does_not_wait_longer_than_confirm_seconds(
    telegram: FakeTelegram, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    telegram.fail(*[Stall(0.6)] * 3)
    m = manager(tmp_path, telegram, confirm=0.2)
    with caplog.at_level(logging.INFO, logger="alerts"):
        assert await send_telegram_alert("slow day")
    assert telegram.messages == []
    assert any("not delivered yet; it stays in the outbox" in r.getMessage() for r in caplog.records)
    assert await m.flush(10.0)
    assert [msg.text for msg in telegram.messages] == ["<b>slow day</b>"]


async def test_typed_alerts_error_alerts_and_resolution(telegram: FakeTelegram, tmp_path: Path) -> None:
    m = manager(tmp_path, telegram)
    assert await send_alert(AlertType.RESOURCE_WARNING, "sidecar RSS 900 MB > 800 MB", key="rss")
    assert not await send_alert(AlertType.RESOURCE_WARNING, "sidecar RSS 910 MB > 800 MB", key="rss")  # cooldown
    assert await send_error_alert(ValueError("bad <book>"), "executor")
    assert await resolve_alert("rss", "sidecar RSS back to 300 MB")
    assert not await resolve_alert("rss", "sidecar RSS back to 300 MB")  # once
    assert await m.flush(10.0)
    assert [msg.text for msg in telegram.messages] == [
        "<b>⚠️ RESOURCE WARNING</b>\nsidecar RSS 900 MB &gt; 800 MB",
        "<b>❌ ERROR</b>\nexecutor: ValueError: bad &lt;book&gt;",
        "<b>✅ RESOLVED</b> <b>sidecar RSS back to 300 MB</b>",
    ]


async def test_staging_alerts_go_to_the_staging_chat(telegram: FakeTelegram, tmp_path: Path) -> None:
    m = manager(tmp_path, telegram, telegram_staging_chat_id=STAGING_CHAT)
    assert await send_staging_alert("deploy to staging started")
    assert await send_telegram_alert("production news")
    assert await m.flush(10.0)
    assert [msg.text for msg in telegram.messages_to(STAGING_CHAT)] == [
        "<b>[STAGING]</b> <b>deploy to staging started</b>"
    ]
    assert [msg.text for msg in telegram.messages_to(CHAT)] == ["<b>production news</b>"]


async def test_in_a_staging_deployment_every_alert_is_a_staging_alert(
    telegram: FakeTelegram, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    m = manager(tmp_path, telegram, environment="staging", telegram_staging_chat_id=STAGING_CHAT)
    with caplog.at_level(logging.INFO, logger="alerts"):
        assert await send_alert(AlertType.MCP_SERVERS_STARTED, "3 server(s) running")
    assert await m.flush(10.0)
    assert [msg.text for msg in telegram.messages_to(STAGING_CHAT)] == [
        "<b>[STAGING]</b> <b>🚀 MCP SERVERS STARTED</b>\n3 server(s) running"
    ]
    assert "ALERT severity=info [STAGING] 🚀 MCP SERVERS STARTED | 3 server(s) running" in caplog.messages


async def test_log_only_mode_writes_no_outbox_and_warns_once(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG):
        m = manager(tmp_path)
        assert await send_telegram_alert("only in the log", "warning")
        assert await m.flush(1.0)
    assert m.log_only
    assert [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING and r.name == "alerts"] == [
        "TELEGRAM_BOT_TOKEN is not set: alerts go to the log only (logger 'alerts')",
        "ALERT severity=warning only in the log",
    ]
    assert not (tmp_path / "state" / OUTBOX_FILE_NAME).exists()


async def test_a_token_without_a_chat_says_so_and_stays_in_the_log(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="alerts"):
        m = configure_alerts(Settings(_env_file=None, telegram_bot_token=TOKEN, state_dir=tmp_path))  # type: ignore[call-arg]
    assert m.log_only
    assert caplog.messages == ["TELEGRAM_BOT_TOKEN is set but TELEGRAM_CHAT_ID is not: Telegram alerts are off"]


async def test_hooks_and_stats_for_metrics(telegram: FakeTelegram, tmp_path: Path) -> None:
    m = manager(tmp_path, telegram)
    sent: list[str] = []
    suppressed: list[str] = []
    m.on_sent, m.on_suppressed = sent.append, suppressed.append
    await send_telegram_alert("a", "warning")
    await send_telegram_alert("a", "warning")
    await send_telegram_alert("b", "critical")
    assert await m.flush(10.0)
    assert sent == ["warning", "critical"]
    assert len(suppressed) == 1 and "duplicate" in suppressed[0]
    stats = m.stats()
    assert (stats["mode"], stats["delivered"], stats["sent_by_severity"]["warning"]) == ("telegram", 2, 1)


async def test_a_broken_metrics_hook_does_not_stop_alerts(telegram: FakeTelegram, tmp_path: Path) -> None:
    m = manager(tmp_path, telegram)

    def broken(_: str) -> None:
        raise RuntimeError("metrics registry gone")

    m.on_sent = broken
    assert await send_telegram_alert("still goes")
    assert await m.flush(10.0)
    assert len(telegram.messages) == 1


async def test_mute_from_the_manager(telegram: FakeTelegram, tmp_path: Path) -> None:
    m = manager(tmp_path, telegram)
    m.mute(30)
    assert m.muted_until is not None
    assert await send_telegram_alert("quiet please", "warning")  # accepted and logged, not sent to Telegram
    assert await send_telegram_alert("fire", "critical")
    m.mute(0)
    assert m.muted_until is None
    assert await m.flush(10.0)
    assert [msg.text for msg in telegram.messages] == ["<b>fire</b>"]


# --- Alertmanager as the second channel -----------------------------------------------------------
@pytest.fixture
async def alertmanager() -> AsyncIterator[FakeAlertmanager]:
    async with FakeAlertmanager() as fake:
        yield fake


async def test_alerts_also_go_to_alertmanager_with_stable_labels(
    telegram: FakeTelegram, alertmanager: FakeAlertmanager, tmp_path: Path
) -> None:
    m = manager(tmp_path, telegram, alertmanager_url=alertmanager.base_url, environment="production")
    await send_alert(AlertType.CIRCUIT_BREAKER_TRIPPED, "daily loss 120 > 100", key="breaker")
    await resolve_alert("breaker", "breaker reset", alert_type=AlertType.CIRCUIT_BREAKER_TRIPPED)
    assert await m.flush(10.0)
    firing, resolved = alertmanager.received
    assert (
        firing["labels"]
        == resolved["labels"]
        == {
            "alertname": "CIRCUIT_BREAKER_TRIPPED",
            "severity": "warning",
            "environment": "production",
            "service": "polymarket-copy-bot",
            "key": "breaker",
        }
    )
    assert firing["annotations"] == {"summary": "⚠️ CIRCUIT BREAKER TRIPPED", "description": "daily loss 120 > 100"}
    assert "endsAt" not in firing and resolved["endsAt"].endswith("Z")
    assert len(telegram.messages) == 2


@pytest.mark.parametrize("broken", ["telegram", "alertmanager"])
async def test_one_failing_channel_never_blocks_the_other(
    telegram: FakeTelegram, alertmanager: FakeAlertmanager, tmp_path: Path, broken: str
) -> None:
    if broken == "telegram":
        telegram.fail_with(lambda attempt: Refuse(502, "Bad Gateway"))
    else:
        alertmanager.fail_always(503)
    m = manager(tmp_path, telegram, alertmanager_url=alertmanager.base_url)
    for n in range(5):
        await send_telegram_alert(f"alert {n}", "warning")
    working: Callable[[], int] = (
        (lambda: len(alertmanager.received)) if broken == "telegram" else (lambda: len(telegram.messages))
    )
    if broken == "telegram":
        await alertmanager.wait_for(5)
    else:
        await telegram.wait_for_messages(5)
    assert working() == 5
    assert not await m.flush(0.3)  # the broken channel still holds its alerts, in the outbox
    assert m.pipeline.outbox is not None
    counts = await m.pipeline.outbox.counts()
    assert counts == {"pending": 5, "sent": 5, "dead": 0}


async def test_alertmanager_refusing_an_alert_makes_a_dead_letter(
    alertmanager: FakeAlertmanager, tmp_path: Path
) -> None:
    alertmanager.fail(400)
    m = manager(tmp_path, alertmanager_url=alertmanager.base_url)
    await send_telegram_alert("refused")
    await send_telegram_alert("accepted")
    assert await m.flush(10.0)
    assert [a["annotations"]["summary"] for a in alertmanager.received] == ["accepted"]
    assert m.dead_count == 1


TROUBLESHOOTING_SNIPPET = """
import asyncio
from utils.alerts import send_telegram_alert

async def test():
    await send_telegram_alert('Test alert')
    print('Alert sent - check Telegram')

asyncio.run(test())
"""


async def test_the_troubleshooting_check_from_the_docs_delivers_in_a_fresh_process(
    telegram: FakeTelegram, tmp_path: Path, project_root: Path
) -> None:
    """reference 000 §Troubleshooting "Alerts Not Sending", run as written, in its own process."""
    env = {
        "PATH": "/usr/bin:/bin",
        "PYTHONPATH": str(project_root),
        "TELEGRAM_BOT_TOKEN": TOKEN,
        "TELEGRAM_CHAT_ID": CHAT,
        "TELEGRAM_BASE_URL": telegram.base_url,
        "STATE_DIR": str(tmp_path / "state"),
        "LOG_LEVEL": "DEBUG",
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-W",
        "error",
        "-c",
        TROUBLESHOOTING_SNIPPET,
        cwd=tmp_path,
        env=env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    async with asyncio.timeout(30):
        out, err = await process.communicate()
    assert process.returncode == 0, err.decode()
    assert out.decode().strip() == "Alert sent - check Telegram"
    assert [m.text for m in telegram.messages] == ["<b>Test alert</b>"]
    assert TOKEN not in err.decode()
