"""The trading section in a real browser, after paper trading: what the bot holds, earned and did.

A real paper bot (`python main.py`, replaying the recorded trades fast) and a real monitoring sidecar share
a temporary STATE_DIR on free ports. Once the ledger shows positions and ten followed trades (a few seconds
at REPLAY_SPEED=100; the test asserts content, never time), Debian's chromium loads the page at desktop
(1280 px) and phone (390 px) width: it must show a market title, today's P&L, positions and recent copies,
and no epoch number anywhere in the visible text (nested details opened too). Screenshots:
test-output/<test name>/trading-desktop.png and trading-phone.png.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.browser.test_dashboard_browser import CHROMIUM, CHROMIUM_ARGS, _playwright, note_console, output_dir
from tests.live_stack import Child, clean_env, free_port, start_child, wait_for_health

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.integration]

EPOCH = re.compile(r"(?<![\d,.])\d{10}(?![\d,])")
MONEY = re.compile(r"^[+−]?\d+\.\d{2} USDC$")
WIDTHS = {"desktop": 1280, "phone": 390}


@pytest.fixture
async def trading_stack(tmp_path: Path) -> AsyncIterator[dict[str, Any]]:
    """A paper bot trading fast and a monitoring sidecar on one STATE_DIR; both stopped by pid afterwards."""
    dashboard_port, metrics_port = free_port(), free_port()
    common = {
        "TRADING_MODE": "paper",
        "REPLAY_SPEED": "100",
        "MCP_MARKET_HOURS_ENABLED": "false",
        "MONITOR_INTERVAL_SECONDS": "1",
        "DASHBOARD_REFRESH_SECONDS": "1",
        "DASHBOARD_PORT": str(dashboard_port),
        "METRICS_PORT": str(metrics_port),
    }
    children: list[Child] = []
    try:
        children.append(
            await start_child(
                "bot", ["main.py"], clean_env(tmp_path, MCP_INTEGRATION_ENABLED="false", **common), tmp_path
            )
        )
        children.append(
            await start_child("sidecar", ["-m", "mcp.main_mcp", "monitoring"], clean_env(tmp_path, **common), tmp_path)
        )
        yield {"children": tuple(children), "base": f"http://127.0.0.1:{dashboard_port}"}
    finally:
        for child in reversed(children):
            await child.stop()


def traded(body: dict[str, Any]) -> bool:
    """The ledger has positions and at least ten followed trades."""
    return bool(body.get("positions")) and len(body.get("recent_trades") or []) >= 10


async def test_the_trading_view_after_paper_trading(
    trading_stack: dict[str, Any], request: pytest.FixtureRequest
) -> None:
    async_playwright = _playwright()
    base: str = trading_stack["base"]
    folder = output_dir(request.node.name)
    async with aiohttp.ClientSession() as session:
        view = await wait_for_health(session, f"{base}/api/trading", traded, within=90, watch=trading_stack["children"])
    title = view["positions"][0]["market_title"]

    problems: list[str] = []
    shots: list[Path] = []
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            for name, width in WIDTHS.items():
                page = await browser.new_page(viewport={"width": width, "height": 900})
                page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
                page.on("console", lambda message: note_console(problems, message.type, message.text))
                await page.goto(f"{base}/", wait_until="load")
                await page.locator("#positions tr:not(.empty)").first.wait_for(timeout=15_000)
                await page.locator("#trades tr:not(.empty)").first.wait_for(timeout=15_000)
                await page.locator("[data-component] .badge").first.wait_for(timeout=15_000)

                # what it holds: a market title in the positions table
                assert title in (await page.locator("#positions").inner_text()), name
                # what it earned today, against the loss limit
                pnl = (await page.locator("#t-pnl").inner_text()).strip()
                assert MONEY.match(pnl), f"{name}: today's P&L reads {pnl!r}"
                assert "of" in await page.locator("#t-loss-text").inner_text()
                # what it did with the last ten followed trades, and why
                assert await page.locator("#trades tr").count() >= 10, name
                decisions = await page.locator("#trades .pill").all_inner_texts()
                assert set(decisions) <= {"copied", "denied", "error", "pending"} and decisions, decisions
                assert await page.locator("#trades time[title]").count() >= 10  # ISO time on hover

                text = await page.locator("body").inner_text()
                assert not EPOCH.search(text), f"{name}: an epoch number is visible: {EPOCH.search(text)}"
                # the wide tables fit the phone: nothing scrolls sideways
                overflow = await page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
                assert overflow <= 1, f"{name}: the page is {overflow} px wider than the screen"

                shot = folder / f"trading-{name}.png"
                await page.screenshot(path=str(shot), full_page=True)
                shots.append(shot)

                # folded details, opened, still show no epoch number
                await page.evaluate("document.querySelectorAll('details').forEach(d => { d.open = true; })")
                opened = await page.locator("body").inner_text()
                assert not EPOCH.search(opened), f"{name}: an epoch number in opened details: {EPOCH.search(opened)}"
                await page.close()
        finally:
            await browser.close()

    print("\nscreenshots: " + "\n             ".join(str(shot) for shot in shots))
    assert all(shot.stat().st_size > 10_000 for shot in shots)
    assert problems == [], problems
