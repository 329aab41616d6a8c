"""Telegram /pnl /positions /trades [n] /daily [days] through the fake Bot API, over a real ledger.

The backend is the sidecar's own (SidecarCommandBackend) with a TradingSource on a temporary STATE_DIR
whose ledger was written by core.ledger.TradeLedger. The allow-list is the one every command goes through.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from mcp.telegram_backend import SidecarCommandBackend
from mcp.trading.source import TradingSource
from mcp.trading.view import Limits
from tests.alerting.conftest import TOKEN
from tests.fakes.fake_telegram import FakeTelegram
from tests.trading_support import RAIN_TITLE, WALLET_A, build_ledger, write_snapshot
from utils.alerting.commands import (
    MAX_DAYS,
    MAX_TRADES,
    AccessPolicy,
    CommandUsageError,
    TelegramCommands,
    parse_optional_count,
)

OPERATOR, STRANGER, CHAT_ID = 1001, 6666, 4242
POLICY = AccessPolicy(frozenset({CHAT_ID}), frozenset({OPERATOR}))


class NeverAsked:
    """An integrator the trading commands must never touch."""

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"the trading commands never use the risk integrator (asked for {name!r})")


@pytest.fixture
async def commands(tmp_path: Path, telegram: FakeTelegram) -> AsyncIterator[TelegramCommands]:
    build_ledger(tmp_path)
    write_snapshot(tmp_path)
    backend = SidecarCommandBackend(
        trading=TradingSource(tmp_path, Limits(100.0, 200.0, 800.0)), integrator=NeverAsked()
    )
    running = TelegramCommands(
        TOKEN, backend, POLICY, base_url=telegram.base_url, poll_seconds=1.0, read_timeout=2.0, command_timeout=5.0
    )
    await running.start()
    try:
        yield running
    finally:
        await running.stop()


@pytest.mark.parametrize(
    ("args", "count"), [([], 10), (["3"], 3), ([" 50 "], 50)]
)  # fmt: skip
def test_optional_counts(args: list[str], count: int) -> None:
    assert parse_optional_count(args, 10, MAX_TRADES, "usage") == count


@pytest.mark.parametrize(
    ("maximum", "edge"), [(MAX_TRADES, 50), (MAX_DAYS, 30)], ids=["/trades n 1-50", "/daily days 1-30"]
)
def test_the_counts_are_bounded_as_the_readme_says(maximum: int, edge: int) -> None:
    """README: `/trades [n]` with n 1-50, `/daily [days]` with days 1-30 (the literal figures, not the constants)."""
    assert parse_optional_count([str(edge)], 10, maximum, "usage") == edge
    assert parse_optional_count(["1"], 10, maximum, "usage") == 1
    for outside in (edge + 1, 0):
        with pytest.raises(CommandUsageError, match=f"received {outside}$"):
            parse_optional_count([str(outside)], 10, maximum, "usage")


@pytest.mark.integration
async def test_trading_commands_answer_for_a_phone(telegram: FakeTelegram, commands: TelegramCommands) -> None:
    for text in ("/pnl", "/positions", "/trades 2", "/daily", "/help"):
        telegram.push_command(text, chat_id=CHAT_ID, user_id=OPERATOR)
    pnl, positions, trades, daily, help_text = [m.text for m in await telegram.wait_for_messages(5)]
    assert pnl.startswith("<b>/pnl</b>\nDay ") and "P&amp;L +1.50 USDC" in pnl and "(0.0 %)" in pnl
    assert f"1. {RAIN_TITLE} — Yes" in positions and "exposure 7.50 of 100.00 (7.5 %)" in positions
    assert trades.startswith("<b>/trades</b>\nLast 2 followed trade(s)") and trades.count(" ago · ") == 2
    assert "→ denied: max_orders_per_minute" in trades and "→ copied 5 @ 0.6 in 5 ms" in trades
    assert "· 3/2" in daily
    assert "/trades — recent followed trades: /trades [n]" in help_text
    for text in (pnl, positions, trades, daily):
        assert WALLET_A not in text and max(len(line) for line in text.splitlines()) <= 70


@pytest.mark.integration
async def test_malformed_arguments_get_the_usage(telegram: FakeTelegram, commands: TelegramCommands) -> None:
    for text in ("/trades abc", "/trades 99999", "/trades 1 2", "/daily 0", "/daily many"):
        telegram.push_command(text, chat_id=CHAT_ID, user_id=OPERATOR)
    replies = [m.text for m in await telegram.wait_for_messages(5)]
    assert replies[0] == (
        f"<b>/trades</b>\nUsage: /trades [n] — n a whole number from 1 to {MAX_TRADES} (default 10); received 'abc'"
    )
    assert replies[1].endswith("received 99999") and replies[2].endswith("received '1 2'")
    assert replies[3].startswith(f"<b>/daily</b>\nUsage: /daily [days] — days a whole number from 1 to {MAX_DAYS}")
    assert replies[3].endswith("received 0") and replies[4].endswith("received 'many'")
    assert commands.stats["failed"] == 5


@pytest.mark.integration
async def test_strangers_get_no_trading_figures(telegram: FakeTelegram, commands: TelegramCommands) -> None:
    telegram.push_command("/positions", chat_id=CHAT_ID, user_id=STRANGER)
    telegram.push_command("/pnl", chat_id=STRANGER, user_id=OPERATOR)
    telegram.push_command("/help", chat_id=CHAT_ID, user_id=OPERATOR)
    [reply] = await telegram.wait_for_messages(1)
    assert reply.text.startswith("<b>/help</b>") and commands.stats["denied"] == 2


@pytest.mark.integration
async def test_without_a_trading_source_the_reply_says_so(telegram: FakeTelegram) -> None:
    running = TelegramCommands(TOKEN, SidecarCommandBackend(), POLICY, base_url=telegram.base_url, poll_seconds=1.0)
    await running.start()
    try:
        telegram.push_command("/pnl", chat_id=CHAT_ID, user_id=OPERATOR)
        [reply] = await telegram.wait_for_messages(1)
    finally:
        await running.stop()
    assert "no trading view in this sidecar" in reply.text
