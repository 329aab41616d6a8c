"""Planted canary secrets never appear in any log line (DEBUG included, errors included), alert or outbox."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from pydantic import SecretStr

import utils.alerts as alerts
from config.settings import Settings
from tests.alerting.conftest import CHAT, FAST_RETRY, TOKEN
from tests.alerting.test_commands import POLICY, RecordingBackend
from tests.fakes.fake_alertmanager import FakeAlertmanager
from tests.fakes.fake_telegram import Drop, FakeTelegram, RateLimited, Refuse, Stall
from utils.alerting.commands import TelegramCommands
from utils.alerting.outbox import OUTBOX_FILE_NAME
from utils.alerts import AlertType, configure_alerts, send_alert, send_error_alert, send_telegram_alert

PRIVATE_KEY = "0xCANARYprivatekey" + "ab" * 24
DASHBOARD_TOKEN = "CANARY-dashboard-token-93f1"
CLOB_SECRET = "CANARY-clob-secret-77aa"
WALLET = "0x1234567890abcdef1234567890abcdef12fedcba"
pytestmark = pytest.mark.integration

CANARIES = (TOKEN, PRIVATE_KEY, DASHBOARD_TOKEN, CLOB_SECRET, WALLET, TOKEN.split(":")[1])


@pytest.fixture(autouse=True)
async def _fresh_manager() -> AsyncIterator[None]:
    alerts.reset_alert_manager()
    yield
    await alerts.close_alerts(grace_seconds=1.0)
    alerts.reset_alert_manager()


def _assert_clean(where: str, text: str) -> None:
    for canary in CANARIES:
        assert canary not in text, f"{canary[:12]}… leaked into {where}"


async def test_canaries_never_reach_logs_messages_or_the_outbox(
    telegram: FakeTelegram, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    state = tmp_path / "state"
    async with FakeAlertmanager() as alertmanager:
        settings = Settings(
            _env_file=None,  # type: ignore[call-arg]
            telegram_bot_token=SecretStr(TOKEN),
            telegram_chat_id=CHAT,
            telegram_base_url=telegram.base_url,
            private_key=SecretStr(PRIVATE_KEY),
            dashboard_token=SecretStr(DASHBOARD_TOKEN),
            clob_api_secret=SecretStr(CLOB_SECRET),
            alertmanager_url=alertmanager.base_url,
            state_dir=state,
        )
        manager = configure_alerts(settings, confirm_seconds=0.0, retry=FAST_RETRY, telegram_read_timeout=0.3)
        # every failure path runs: flood control, a stall past the timeout, a dropped connection, a refusal
        telegram.fail(RateLimited(1), Stall(0.6), Drop(), Refuse(400, f"Bad Request: chat {TOKEN} not found"))
        alertmanager.fail(500, 400)
        await send_telegram_alert(f"wallet {WALLET} signs with {PRIVATE_KEY}", "critical", key=f"k-{DASHBOARD_TOKEN}")
        await send_error_alert(RuntimeError(f"POST https://api.telegram.org/bot{TOKEN}/sendMessage failed"), "x")
        await send_alert(AlertType.CRITICAL_ISSUE, f"clob secret {CLOB_SECRET} and bot{TOKEN}")
        for n in range(3):
            await send_telegram_alert(f"filler {n}")
        assert await manager.flush(15.0)

        # the commands' failure paths: a rejected token at start, a backend echoing secrets
        wrong = TelegramCommands(f"{TOKEN}0", RecordingBackend(), POLICY, base_url=telegram.base_url)
        with pytest.raises(RuntimeError) as caught:
            await wrong.start()
        _assert_clean("the start-up error", str(caught.value))
        commands = TelegramCommands(TOKEN, RecordingBackend(), POLICY, base_url=telegram.base_url, poll_seconds=1.0)
        await commands.start()
        telegram.push_command("/health", chat_id=4242, user_id=1001)
        telegram.push_command("/coverage", chat_id=4242, user_id=1001)
        await telegram.wait_for_messages(len(telegram.messages) + 2)
        await commands.stop()
        await manager.aclose()
        received = json.dumps(alertmanager.received)

    assert len(telegram.messages) >= 6
    assert any("***fedcba" in m.text for m in telegram.messages)  # masked, still recognisable
    for record in caplog.records:
        _assert_clean(f"log record {record.name}", record.getMessage())
    _assert_clean("the captured log text (tracebacks included)", caplog.text)
    for message in telegram.messages:
        _assert_clean("a Telegram message", message.text)
    _assert_clean("Alertmanager", received)
    for path in state.iterdir():
        if path.name.startswith(OUTBOX_FILE_NAME):
            _assert_clean(f"the outbox file {path.name}", path.read_bytes().decode("latin-1"))
    # and the loggers that print URLs stay quiet below WARNING
    assert logging.getLogger("httpx").getEffectiveLevel() >= logging.WARNING
