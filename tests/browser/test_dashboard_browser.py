"""The dashboard in a real browser, over a real sidecar watching a real bot on paper.

Debian's chromium (/usr/bin/chromium) is driven by the `playwright` Python package (its own driver; no
browser is ever downloaded). The test starts `python main.py` (sidecar disabled) and
`python -m mcp.main_mcp monitoring` on free ports, loads the page, sees every component card, sees the
last-updated time change, SIGKILLs the bot and sees main_bot's card turn critical. Screenshots go to
test-output/<test name>/ (or $TEST_OUTPUT_DIR/<test name>/); their paths are printed.
"""

from __future__ import annotations

import os
import shutil
import signal
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.live_stack import PROJECT_ROOT, Child, clean_env, component_status, free_port, start_child, wait_for_health

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.integration]

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# the SPEC §6 components; the sidecar adds sidecar and host (and any other server it runs)
REQUIRED_CARDS = ("main_bot", "trade_executor", "circuit_breaker", "monitoring", "sidecar", "host")
STATUSES = {"healthy", "starting", "degraded", "critical"}


def _playwright() -> Any:
    try:
        from playwright.async_api import async_playwright
    except ImportError:
        pytest.skip(
            "BROWSER TEST SKIPPED: the Python package `playwright` is missing; install it with "
            "`.venv/bin/pip install playwright` (never `playwright install`: the test uses Debian's chromium)"
        )
    if not CHROMIUM.exists():
        pytest.skip(
            f"BROWSER TEST SKIPPED: {CHROMIUM} is missing; install Debian's browser with "
            "`apt-get install -y chromium` (make test does this through scripts/install_test_deps.sh)"
        )
    return async_playwright


def output_dir(test_name: str) -> Path:
    """test-output/<test name>/ under the project (or under $TEST_OUTPUT_DIR), emptied first."""
    base = Path(os.environ.get("TEST_OUTPUT_DIR") or PROJECT_ROOT / "test-output")
    folder = base / test_name
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    return folder


def note_console(problems: list[str], kind: str, text: str) -> None:
    """Keep CSP violations and script errors; a 503 from /health is the page working (critical is 503)."""
    if "Content Security Policy" in text or (kind == "error" and "status of 503" not in text):
        problems.append(f"console {kind}: {text}")


@pytest.fixture
async def stack(tmp_path: Path) -> AsyncIterator[dict[str, Any]]:
    """A bot on paper and a monitoring sidecar sharing one STATE_DIR; both stopped by pid afterwards."""
    dashboard_port, metrics_port = free_port(), free_port()
    common = {
        "TRADING_MODE": "paper",
        "REPLAY_SPEED": "20",
        "MCP_MARKET_HOURS_ENABLED": "false",
        "MONITOR_INTERVAL_SECONDS": "1",
        "DASHBOARD_REFRESH_SECONDS": "1",
        "DASHBOARD_PORT": str(dashboard_port),
        "METRICS_PORT": str(metrics_port),
    }
    children: list[Child] = []
    try:
        bot = await start_child(
            "bot", ["main.py"], clean_env(tmp_path, MCP_INTEGRATION_ENABLED="false", **common), tmp_path
        )
        children.append(bot)
        sidecar = await start_child(
            "sidecar", ["-m", "mcp.main_mcp", "monitoring"], clean_env(tmp_path, **common), tmp_path
        )
        children.append(sidecar)
        yield {"bot": bot, "sidecar": sidecar, "base": f"http://127.0.0.1:{dashboard_port}"}
    finally:
        for child in reversed(children):
            await child.stop()


async def test_dashboard_shows_the_stack_and_sees_the_bot_die(
    stack: dict[str, Any], request: pytest.FixtureRequest
) -> None:
    async_playwright = _playwright()
    bot: Child = stack["bot"]
    sidecar: Child = stack["sidecar"]
    base: str = stack["base"]
    folder = output_dir(request.node.name)

    async with aiohttp.ClientSession() as session:
        report = await wait_for_health(
            session,
            f"{base}/health",
            lambda body: component_status(body, "main_bot") == "healthy",
            within=60,
            watch=(bot, sidecar),
        )
    cards = set(report["components"])
    assert set(REQUIRED_CARDS) <= cards, f"/health lacks components: {sorted(set(REQUIRED_CARDS) - cards)}"

    problems: list[str] = []
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = await browser.new_page(viewport={"width": 1280, "height": 1000})
            page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
            page.on("console", lambda message: note_console(problems, message.type, message.text))
            await page.goto(f"{base}/", wait_until="load")

            # every component of /health has its card, each with a coloured status badge
            for name in cards:
                badge = page.locator(f'[data-component="{name}"] .badge')
                await badge.wait_for(state="visible", timeout=15_000)
                assert await badge.get_attribute("data-status") in STATUSES, name
            assert await page.locator("[data-component]").count() == len(cards)
            assert await page.locator("#breaker-badge").text_content() in {"ACTIVE", "HALTED"}
            assert await page.locator("#gate-badge").get_attribute("data-status") in STATUSES | {"unknown"}
            # issue 12: the page's reset names the MCP breaker; the trading breaker's panel says where its reset is
            button = page.locator("#mcp-reset-button")
            assert await button.text_content() == "Reset MCP circuit breaker (sidecar heavy work)"
            note = " ".join((await page.locator("#mcp-reset-note").text_content() or "").split())
            assert "never touches the trading circuit breaker" in note
            trading_note = await page.locator("#breaker-reset-note").text_content() or ""
            assert "python main.py --reset-circuit-breaker" in trading_note
            await page.locator("#mcp-reset-token").fill("not-the-token")
            seen = len(problems)
            await button.click()
            result = page.locator("#mcp-reset-result")
            await page.wait_for_function(
                "() => document.getElementById('mcp-reset-result').textContent.includes('HTTP 40')", timeout=15_000
            )
            assert "MCP circuit breaker not reset" in (await result.text_content() or "")
            # the browser logs the refused POST (401, or 403 without DASHBOARD_TOKEN) as a console error: expected here
            refusals = problems[seen:]
            assert all("status of 40" in entry for entry in refusals), refusals
            del problems[seen:]
            main_bot = page.locator('[data-component="main_bot"] .badge')
            assert await main_bot.get_attribute("data-status") != "critical"

            # the page refreshes by itself: the last-updated time moves on
            first = await page.locator("#last-updated").text_content()
            assert first and first != "never"
            await page.wait_for_function(
                "previous => document.getElementById('last-updated').textContent !== previous",
                arg=first,
                timeout=15_000,
            )
            await page.locator(".chart svg polyline, .chart svg circle").first.wait_for(timeout=15_000)
            before = folder / "dashboard-bot-running.png"
            await page.screenshot(path=str(before), full_page=True)

            # the bot dies without a word: main_bot turns critical on the page
            bot.kill(signal.SIGKILL)
            await bot.process.wait()
            await page.locator('[data-component="main_bot"] .badge[data-status="critical"]').wait_for(timeout=30_000)
            assert await page.locator("#overall").get_attribute("data-status") == "critical"
            assert "main bot" in (await page.locator("#problem-list").text_content() or "")
            after = folder / "dashboard-bot-killed.png"
            await page.screenshot(path=str(after), full_page=True)
        finally:
            await browser.close()

    print(f"\nscreenshots: {before}\n             {after}")
    assert before.stat().st_size > 10_000 and after.stat().st_size > 10_000
    assert problems == [], problems
    assert sidecar.alive(), "the sidecar must survive the bot's death"
