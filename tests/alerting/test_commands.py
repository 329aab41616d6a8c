"""Telegram commands: deny by default, the six commands, bad arguments and odd updates, via the fake Bot API."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import AsyncIterator
from typing import Any

import pytest

from config.settings import Settings
from tests.alerting.conftest import TOKEN
from tests.fakes.fake_telegram import FakeTelegram
from utils.alerting.commands import (
    MAX_MUTE_MINUTES,
    AccessPolicy,
    CommandUsageError,
    TelegramCommands,
    format_reply,
    parse_mute_minutes,
)

OPERATOR, STRANGER = 1001, 6666
CHAT_ID, STAGING_CHAT_ID, OTHER_CHAT = 4242, -100777, 5555
WALLET = "0x1234567890abcdef1234567890abcdef12fedcba"
POLICY = AccessPolicy(frozenset({CHAT_ID, STAGING_CHAT_ID}), frozenset({OPERATOR}))


class RecordingBackend:
    """A CommandBackend that records its calls; `coverage` fails and `scan` hangs, on purpose."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []

    async def status(self) -> dict[str, Any]:
        self.calls.append(("status", None))
        return {"uptime_seconds": 12.5, "servers": {"testing": "running", "monitoring": "running"}}

    async def health(self) -> str:
        self.calls.append(("health", None))
        return f"overall: healthy <ok> wallet {WALLET} token {TOKEN}"

    async def coverage(self) -> dict[str, Any]:
        self.calls.append(("coverage", None))
        raise RuntimeError(f"history unreadable near {TOKEN}")

    async def scan(self) -> str:
        self.calls.append(("scan", None))
        await asyncio.Event().wait()
        return "never"

    async def mute(self, minutes: int) -> str:
        self.calls.append(("mute", minutes))
        return f"muted for {minutes} minute(s)"

    async def reset_mcp(self) -> dict[str, Any]:
        self.calls.append(("reset_mcp", None))
        return {"mcp_circuit_breaker_active": False}


# --- pure parts ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("chat", "user", "allowed"),
    [
        (CHAT_ID, OPERATOR, True),
        (STAGING_CHAT_ID, OPERATOR, True),
        (CHAT_ID, STRANGER, False),
        (OTHER_CHAT, OPERATOR, False),
        (CHAT_ID, None, False),
        (None, OPERATOR, False),
    ],
)
def test_access_policy(chat: int | None, user: int | None, allowed: bool) -> None:
    assert POLICY.allows(chat, user) is allowed


def test_empty_lists_allow_nobody() -> None:
    assert not AccessPolicy(frozenset(), frozenset({OPERATOR})).allows(CHAT_ID, OPERATOR)
    assert not AccessPolicy(frozenset({CHAT_ID}), frozenset()).allows(CHAT_ID, OPERATOR)


def test_access_policy_from_settings(caplog: pytest.LogCaptureFixture) -> None:
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        telegram_chat_id=str(CHAT_ID),
        telegram_staging_chat_id="@staging_channel",
        telegram_allowed_user_ids=f"{OPERATOR},7",
    )
    with caplog.at_level(logging.WARNING):
        policy = AccessPolicy.from_settings(settings)
    assert policy == AccessPolicy(frozenset({CHAT_ID}), frozenset({OPERATOR, 7}))
    assert any("'@staging_channel' is not numeric" in m for m in caplog.messages)


@pytest.mark.parametrize(
    ("args", "minutes"), [(["30"], 30), (["0"], 0), ([" 15 "], 15), ([str(MAX_MUTE_MINUTES)], 1440)]
)
def test_parse_mute_minutes(args: list[str], minutes: int) -> None:
    assert parse_mute_minutes(args) == minutes


@pytest.mark.parametrize(
    ("args", "received"),
    [
        ([], "received nothing"),
        (["abc"], "received 'abc'"),
        (["-5"], "received -5"),
        (["1441"], "received 1441"),
        (["1", "2"], "received '1 2'"),
        (["1.5"], "received '1.5'"),
    ],
)
def test_bad_mute_arguments_say_what_was_expected(args: list[str], received: str) -> None:
    with pytest.raises(CommandUsageError, match="Usage: /mute <minutes>") as caught:
        parse_mute_minutes(args)
    assert str(caught.value).endswith(received)


def test_format_reply() -> None:
    assert format_reply("/status", {"a": 1.23456, "s": {"x": "up"}, "l": [1, 2]}) == (
        "<b>/status</b>\na: 1.235\ns.x: up\nl: [1, 2]"
    )
    assert format_reply("/health", "<ok> & fine") == "<b>/health</b>\n&lt;ok&gt; &amp; fine"
    assert format_reply("/scan", {}) == "<b>/scan</b>\n(nothing to report)"
    assert format_reply("/health", f"wallet {WALLET}") == "<b>/health</b>\nwallet ***fedcba"


def test_from_settings_is_off_without_a_token_or_allowed_users(caplog: pytest.LogCaptureFixture) -> None:
    backend = RecordingBackend()
    assert TelegramCommands.from_settings(Settings(_env_file=None), backend) is None  # type: ignore[call-arg]
    with caplog.at_level(logging.WARNING):
        no_users = Settings(_env_file=None, telegram_bot_token=TOKEN, telegram_chat_id=str(CHAT_ID))  # type: ignore[call-arg]
        assert TelegramCommands.from_settings(no_users, backend) is None
    assert any("TELEGRAM_ALLOWED_USER_IDS" in m for m in caplog.messages)
    allowed = Settings(
        _env_file=None,  # type: ignore[call-arg]
        telegram_bot_token=TOKEN,
        telegram_chat_id=str(CHAT_ID),
        telegram_allowed_user_ids=str(OPERATOR),
    )
    commands = TelegramCommands.from_settings(allowed, backend)
    assert commands is not None and commands.policy == AccessPolicy(frozenset({CHAT_ID}), frozenset({OPERATOR}))


# --- through the fake Bot API ----------------------------------------------------------------------
@pytest.fixture
async def running(telegram: FakeTelegram) -> AsyncIterator[tuple[TelegramCommands, RecordingBackend]]:
    backend = RecordingBackend()
    commands = TelegramCommands(
        TOKEN, backend, POLICY, base_url=telegram.base_url, poll_seconds=1.0, read_timeout=2.0, command_timeout=0.3
    )
    await commands.start()
    try:
        yield commands, backend
    finally:
        await commands.stop()


@pytest.mark.integration
async def test_only_allowed_chats_and_users_are_answered(
    telegram: FakeTelegram, running: tuple[TelegramCommands, RecordingBackend]
) -> None:
    commands, backend = running
    telegram.push_command("/status", chat_id=CHAT_ID, user_id=STRANGER)
    telegram.push_command("/reset_mcp", chat_id=OTHER_CHAT, user_id=OPERATOR)
    telegram.push_command("/mute 60", chat_id=STRANGER, user_id=STRANGER)
    telegram.push_update(
        {"channel_post": {"message_id": 9, "date": 1, "chat": {"id": CHAT_ID, "type": "channel"}, "text": "/status"}}
    )
    telegram.push_command("/status", chat_id=CHAT_ID, user_id=OPERATOR)
    await telegram.wait_for_messages(1)
    assert [(m.chat_id, m.text) for m in telegram.messages] == [
        (str(CHAT_ID), "<b>/status</b>\nuptime_seconds: 12.5\nservers.testing: running\nservers.monitoring: running")
    ]
    assert backend.calls == [("status", None)]  # denied updates never reach the backend
    assert commands.stats["denied"] == 4


@pytest.mark.integration
async def test_each_command_reaches_the_backend(
    telegram: FakeTelegram, running: tuple[TelegramCommands, RecordingBackend]
) -> None:
    _, backend = running
    for text in ("/health", "/mute 30", "/reset_mcp", f"/status@{telegram.username}", "/help"):
        telegram.push_command(text, chat_id=STAGING_CHAT_ID, user_id=OPERATOR)
    replies = await telegram.wait_for_messages(5)
    assert backend.calls == [("health", None), ("mute", 30), ("reset_mcp", None), ("status", None)]
    assert replies[0].text == "<b>/health</b>\noverall: healthy &lt;ok&gt; wallet ***fedcba token ***"
    assert replies[1].text == "<b>/mute</b>\nmuted for 30 minute(s)"
    assert replies[2].text == "<b>/reset_mcp</b>\nmcp_circuit_breaker_active: False"
    assert "/coverage — latest test coverage" in replies[4].text
    assert {m.chat_id for m in replies} == {str(STAGING_CHAT_ID)}


@pytest.mark.integration
async def test_bad_arguments_failures_hangs_and_unknown_commands_get_clear_replies(
    telegram: FakeTelegram, running: tuple[TelegramCommands, RecordingBackend]
) -> None:
    commands, backend = running
    for text in ("/mute abc", "/mute", "/coverage", "/scan", "/launch_rockets now"):
        telegram.push_command(text, chat_id=CHAT_ID, user_id=OPERATOR)
    replies = [m.text for m in await telegram.wait_for_messages(5)]
    assert replies[0].startswith("<b>/mute</b>\nUsage: /mute &lt;minutes&gt;") and replies[0].endswith("received 'abc'")
    assert replies[1].endswith("received nothing")
    assert replies[2] == "<b>/coverage</b>\nfailed: RuntimeError: history unreadable near ***"
    assert replies[3] == "<b>/scan</b>\nno answer within 0 s; try again later"
    assert replies[4].startswith("<b>Unknown command</b>\nreceived /launch_rockets; known commands: /status")
    assert ("mute", None) not in backend.calls and all(call[0] != "mute" for call in backend.calls)
    assert commands.stats["unknown"] == 1 and commands.stats["failed"] == 4
    # still polling and answering after all that
    telegram.push_command("/status", chat_id=CHAT_ID, user_id=OPERATOR)
    await telegram.wait_for_messages(6)


@pytest.mark.integration
async def test_odd_updates_are_ignored_without_crashing(
    telegram: FakeTelegram, running: tuple[TelegramCommands, RecordingBackend]
) -> None:
    commands, _ = running
    telegram.push_update({"some_future_update_kind": {"id": 1}})
    telegram.push_update({"message": {"message_id": 3, "date": 1, "chat": {"id": CHAT_ID, "type": "private"}}})
    allowed_photo = {
        "message_id": 4,
        "date": 1,
        "chat": {"id": CHAT_ID, "type": "private"},
        "from": {"id": OPERATOR, "is_bot": False, "first_name": "op"},
        "photo": [{"file_id": "f", "file_unique_id": "u", "width": 1, "height": 1}],
    }
    telegram.push_update({"message": allowed_photo})
    telegram.push_command("/status", chat_id=CHAT_ID, user_id=OPERATOR)
    replies = await telegram.wait_for_messages(1)
    assert replies[0].text.startswith("<b>/status</b>")
    assert commands.stats["denied"] == 2  # no chat/user: denied; the operator's photo: allowed, no command


@pytest.mark.integration
async def test_a_rejected_token_stops_start_with_a_message_without_the_token(telegram: FakeTelegram) -> None:
    commands = TelegramCommands("555:not-the-fake-token", RecordingBackend(), POLICY, base_url=telegram.base_url)
    with pytest.raises(RuntimeError, match="Telegram rejected TELEGRAM_BOT_TOKEN") as caught:
        await commands.start()
    assert "not-the-fake-token" not in str(caught.value)
    await commands.stop()


@pytest.mark.integration
async def test_run_polls_until_cancelled(telegram: FakeTelegram) -> None:
    commands = TelegramCommands(TOKEN, RecordingBackend(), POLICY, base_url=telegram.base_url, poll_seconds=1.0)
    ready = asyncio.Event()
    task = asyncio.create_task(commands.run(ready))
    async with asyncio.timeout(10):
        await ready.wait()
    telegram.push_command("/reset_mcp", chat_id=CHAT_ID, user_id=OPERATOR)
    await telegram.wait_for_messages(1)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert commands.application is None and commands.health()["status"] == "stopped"


@pytest.mark.integration
async def test_run_keeps_trying_while_telegram_is_unreachable(caplog: pytest.LogCaptureFixture) -> None:
    # port 9 (discard) on loopback: nothing listens, the connection is refused at once
    commands = TelegramCommands(
        TOKEN, RecordingBackend(), POLICY, base_url="http://127.0.0.1:9/bot", connect_timeout=0.2
    )
    ready = asyncio.Event()
    with caplog.at_level(logging.WARNING):
        task = asyncio.create_task(commands.run(ready, retry_cap_seconds=0.05))
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(1.5):
                await ready.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert commands.stats["polling_errors"] >= 2
    assert any("Telegram unreachable for commands" in m for m in caplog.messages)
    assert all(TOKEN not in m for m in caplog.messages)


async def test_the_application_is_built_off_the_event_loop(telegram: FakeTelegram) -> None:
    """Its two HTTPX transports each load the CA bundle (tens of ms of CPU): that happens in a worker thread."""
    built_on: list[int] = []

    class Recording(TelegramCommands):
        def build_application(self) -> Any:
            built_on.append(threading.get_ident())
            return super().build_application()

    commands = Recording(TOKEN, RecordingBackend(), POLICY, base_url=telegram.base_url, poll_seconds=1.0)
    await commands.start()
    try:
        assert commands.application is not None and commands.application.running
    finally:
        await commands.stop()
    assert built_on and threading.get_ident() not in built_on
