"""Human formatting of the component cards in Debian's chromium, over a crafted health report.

The dashboard app (real aiohttp on a free loopback port) serves a report whose figures are the raw kind the
issue found on the page: an epoch time in a field named *_at, a float with five decimals, a 78-digit token
id, nested dicts, and statuses the page may or may not know (`starting`, `warming_up`). The page must show a
relative time with the ISO time on hover, 2 decimals, `…last6`, nested figures folded in <details>, the
`starting` badge in its own colour and an unknown status in neutral grey with its own word.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestServer

from config.settings import Settings
from mcp.dashboard.app import build_dashboard_app
from tests.browser.test_dashboard_browser import CHROMIUM, CHROMIUM_ARGS, _playwright, note_console
from tests.test_dashboard import FakeMonitoring, make_report

pytestmark = [pytest.mark.browser, pytest.mark.integration]

TOKEN_ID = "71321045679252212594626385532706912750332728571942532289631379312455583992563"
EPOCH = re.compile(r"(?<![\d,.])\d{10}(?![\d,])")


def crafted_report() -> dict[str, Any]:
    report = make_report("degraded")
    components = report["components"]
    components["main_bot"]["status"] = "starting"
    components["testing"]["status"] = "warming_up"
    components["circuit_breaker"]["figures"] = {
        "daily_loss": 1.52097,
        "daily_loss_percent": 0.0152097,  # a fraction of the limit under a "_percent" name, as the check sends it
        "warning_percent": 0.12,
        "last_attempt_at": 1_796_600_824.7,
        "token": TOKEN_ID,
        "scan": {"status": "ok", "parameters": 92, "root": {"path": "/srv/bot", "files": 1_234_567_890}},
    }
    return report


async def test_cards_read_like_a_person_wrote_them(tmp_path: Path) -> None:
    async_playwright = _playwright()
    settings = Settings(_env_file=None, state_dir=tmp_path, dashboard_refresh_seconds=60)  # type: ignore[call-arg]
    server = TestServer(build_dashboard_app(settings, FakeMonitoring(crafted_report())), host="127.0.0.1", port=0)
    await server.start_server()
    problems: list[str] = []
    try:
        async with async_playwright() as playwright:
            browser = await playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
            try:
                page = await browser.new_page(viewport={"width": 1280, "height": 900})
                page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
                page.on("console", lambda message: note_console(problems, message.type, message.text))
                await page.goto(str(server.make_url("/")), wait_until="load")
                card = page.locator('[data-component="circuit_breaker"]')
                await card.locator(".badge").wait_for(timeout=15_000)

                starting = page.locator('[data-component="main_bot"] .badge')
                assert await starting.get_attribute("data-status") == "starting"
                assert await starting.inner_text() == "STARTING"  # uppercase by CSS
                colour = await starting.evaluate("node => getComputedStyle(node).backgroundColor")
                assert colour == "rgb(9, 105, 218)"
                unknown = page.locator('[data-component="testing"] .badge')
                assert await unknown.get_attribute("data-status") == "unknown"
                assert (await unknown.inner_text()).lower() == "warming_up"
                # a starting component is not a problem to attend to; an unknown status is
                assert "main bot" not in await page.locator("#problem-list").inner_text()

                text = await card.inner_text()
                assert "1.52" in text and "1.52097" not in text
                assert re.search(r"daily loss percent\s+1\.5 %", text) and re.search(r"warning percent\s+12\.0 %", text)
                assert "…992563" in text and TOKEN_ID not in text
                assert re.search(r"last attempt at\s+(in )?\d+ (s|min|h|d)\b.*", text), text
                hover = await card.locator("time[title]").first.get_attribute("title")
                assert hover is not None and hover.startswith("2026-12-06T23:47:04")
                # nested figures are folded: the inner rows are hidden until opened
                details = card.locator("details")
                assert await details.count() == 2  # scan, and root inside it
                assert await details.evaluate_all("nodes => nodes.every(node => !node.open)")
                assert "status · parameters · root" in text  # the folded row names what it holds
                assert not re.search(r"parameters\s+92", text)
                await card.locator("summary").first.click()
                opened = await card.inner_text()
                assert re.search(r"parameters\s+92", opened) and "/srv/bot" not in opened  # root still folded
                await card.locator("summary").nth(1).click()
                opened = await card.inner_text()
                assert "/srv/bot" in opened and "1,234,567,890" in opened
                assert not EPOCH.search(await page.locator("body").inner_text())
            finally:
                await browser.close()
    finally:
        await server.close()
    assert problems == [], problems


async def test_a_browser_signs_in_beyond_loopback(tmp_path: Path) -> None:
    """The sign-in form works under the strict CSP (form-action 'self') and the cookie opens the page."""
    async_playwright = _playwright()
    token = "browser-sign-in-token-0123456789"
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None, state_dir=tmp_path, dashboard_host="0.0.0.0", dashboard_token=token
    )
    server = TestServer(build_dashboard_app(settings, FakeMonitoring()), host="127.0.0.1", port=0)
    await server.start_server()
    problems: list[str] = []
    try:
        async with async_playwright() as playwright:
            browser = await playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
            try:
                page = await browser.new_page(viewport={"width": 390, "height": 800})
                page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
                await page.goto(str(server.make_url("/")), wait_until="load")
                assert page.url.endswith("/login")
                await page.fill("#token", "not-the-token")
                await page.click("button[type=submit]")
                assert "wrong token" in await page.locator("[role=alert]").inner_text()
                await page.fill("#token", token)
                await page.click("button[type=submit]")
                await page.locator("#trading").wait_for(timeout=15_000)
                assert page.url == str(server.make_url("/"))
                await page.locator('[data-component="main_bot"] .badge').wait_for(timeout=15_000)
                cookies = await page.context.cookies()
                [session] = [c for c in cookies if c["name"] == "dashboard_session"]
                assert session["httpOnly"] and session["sameSite"] == "Strict" and token not in session["value"]
            finally:
                await browser.close()
    finally:
        await server.close()
    assert problems == [], problems
