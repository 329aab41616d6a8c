"""The page, Telegram and MCP show the same figures, and they are the ledger's.

One ledger (written by core.ledger.TradeLedger) and one snapshot in a temporary STATE_DIR; the figures are
read from the ledger by LedgerReader, then through each surface: GET /api/trading over real HTTP, the
Telegram commands over the fake Bot API, the MCP tools through a real client.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer

from config.settings import Settings
from core.ledger_view import LedgerReader
from mcp.dashboard.app import build_dashboard_app
from mcp.monitoring.metrics import MonitoringMetrics
from mcp.protocol.dispatcher import Dispatcher
from mcp.telegram_backend import SidecarCommandBackend
from mcp.tools.catalog import ToolSource, build_tool_registry
from mcp.tools.trading_tools import TradingTools
from mcp.trading.source import TradingSource
from tests.fakes.fake_telegram import FakeTelegram
from tests.mcp.mcp_protocol_support import Client
from tests.test_dashboard import FakeMonitoring
from tests.trading_support import build_ledger, write_snapshot
from utils.alerting.commands import AccessPolicy, TelegramCommands

TOKEN = "987654321:agreement-bot-token-AAb3c4d5e6"
OPERATOR, CHAT_ID = 1001, 4242


@pytest.mark.integration
async def test_page_telegram_and_mcp_agree_with_the_ledger(tmp_path: Path) -> None:
    build_ledger(tmp_path)
    write_snapshot(tmp_path)
    settings = Settings(_env_file=None, state_dir=tmp_path)  # type: ignore[call-arg]
    reader = LedgerReader(tmp_path / "ledger.db")
    try:
        ledger_pnl, ledger_positions, ledger_trades = reader.pnl(), reader.positions(), reader.recent_trades(10)
    finally:
        reader.close()
    total = round(ledger_pnl.realized_pnl + ledger_pnl.unrealized_pnl, 2)

    # the page's JSON over real HTTP
    http = TestClient(TestServer(build_dashboard_app(settings, FakeMonitoring(), cache_seconds=0), host="127.0.0.1"))
    await http.start_server()
    try:
        page = await (await http.get("/api/trading")).json()
    finally:
        await http.close()

    # the MCP tools through a client
    source = TradingSource.from_settings(settings)
    registry = build_tool_registry({"monitoring": ToolSource(TradingTools(source).tools())})
    client = Client(Dispatcher(registry, metrics=MonitoringMetrics()))
    await client.initialize()
    mcp_pnl = (await client.call("get_pnl", {}))["structuredContent"]["pnl"]
    mcp_positions = (await client.call("get_positions", {}))["structuredContent"]["positions"]
    mcp_trades = (await client.call("get_recent_trades", {"limit": 10}))["structuredContent"]["trades"]

    # the Telegram replies through the fake Bot API
    async with FakeTelegram(TOKEN) as telegram:
        commands = TelegramCommands(
            TOKEN,
            SidecarCommandBackend(trading=source),
            AccessPolicy(frozenset({CHAT_ID}), frozenset({OPERATOR})),
            base_url=telegram.base_url,
            poll_seconds=1.0,
            read_timeout=2.0,
        )
        await commands.start()
        try:
            for text in ("/pnl", "/positions", "/trades 10"):
                telegram.push_command(text, chat_id=CHAT_ID, user_id=OPERATOR)
            tg_pnl, tg_positions, tg_trades = [m.text for m in await telegram.wait_for_messages(3)]
        finally:
            await commands.stop()

    # P&L: ledger == page == MCP == Telegram
    assert page["pnl"] == mcp_pnl
    assert page["pnl"]["total_pnl"] == total and page["pnl"]["realized_pnl"] == round(ledger_pnl.realized_pnl, 2)
    assert page["pnl"]["equity"] == round(ledger_pnl.equity, 2)
    assert f"P&amp;L {total:+.2f} USDC" in tg_pnl and f"realized {ledger_pnl.realized_pnl:+.2f}" in tg_pnl
    assert f"Equity {ledger_pnl.equity:.2f} USDC" in tg_pnl

    # positions: the same rows everywhere, each the ledger's
    assert page["positions"] == mcp_positions and len(mcp_positions) == len(ledger_positions) == 2
    for position in ledger_positions:
        [row] = [r for r in page["positions"] if r["token_id"] == position.token_id]
        assert (row["size"], row["avg_price"], row["mark"]) == (position.size, position.avg_price, position.mark)
        assert row["unrealized_pnl"] == round(position.unrealized_pnl, 2)
        assert f"{position.market_title} — {position.outcome}" in tg_positions
        assert f"P&amp;L {position.unrealized_pnl:+.2f}" in tg_positions

    # recent trades: same order and decisions everywhere
    page_trades = [(t["decision"], t["side"], t["size"]) for t in page["recent_trades"]]
    assert page_trades == [(t["decision"], t["side"], t["size"]) for t in mcp_trades]
    assert page_trades == [(t.decision, t.side, t.size) for t in ledger_trades]
    assert tg_trades.count("→ denied") == sum(t.decision == "denied" for t in ledger_trades)
    assert tg_trades.count("→ copied") == sum(t.decision == "copied" for t in ledger_trades)
