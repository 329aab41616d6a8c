"""Planted secrets never leave the processes: a real bot and the sidecar it spawns, canaries in their environment.

TELEGRAM_BOT_TOKEN, PRIVATE_KEY, DASHBOARD_TOKEN, the CLOB API credentials and WALLET_ADDRESS get unique
canary values. Alerts go to the fake Telegram Bot API (tests/fakes/fake_telegram.py, a real aiohttp server
on loopback). After a run that trips the breaker, sends alerts, answers right and wrong tokens and serves
every page, none of the canaries may appear in /health, /api/history, /metrics (both ports), the page and its
files, the log files, the processes' output, or the alerts. The masked wallet (last 6 characters) may.
"""

from __future__ import annotations

import asyncio
import secrets
from pathlib import Path

import aiohttp
import pytest

from tests.fakes.fake_telegram import FakeTelegram
from tests.live_stack import Child, clean_env, component_status, free_port, start_child, wait_for_health

pytestmark = [pytest.mark.slow, pytest.mark.integration]

CHAT_ID = "424242"


def canaries() -> dict[str, str]:
    """Fresh, unmistakable values for every secret setting (and the wallet)."""
    tag = secrets.token_hex(6)
    return {
        "TELEGRAM_BOT_TOKEN": f"{secrets.randbelow(10**9) + 10**9}:CANARYtelegram{tag}AAAAAAAAAAAAAAAA",
        "PRIVATE_KEY": "0x" + ("ca11ab1e" + tag[:8]) * 4,
        "DASHBOARD_TOKEN": f"canary-dashboard-{tag}-{secrets.token_urlsafe(16)}",
        "CLOB_API_KEY": f"canary-clob-key-{tag}",
        "CLOB_API_SECRET": f"canary-clob-secret-{tag}",
        "CLOB_API_PASSPHRASE": f"canary-clob-pass-{tag}",
        "WALLET_ADDRESS": "0x" + secrets.token_hex(20),
    }


def leaks(text: str, planted: dict[str, str]) -> list[str]:
    """The planted values found in `text` (by name), in clear or in the usual encodings of a URL."""
    found = []
    for name, value in planted.items():
        forms = {value, value.lower(), value.upper(), value.replace(":", "%3A")}
        if name == "WALLET_ADDRESS":
            forms.add(value[2:].lower())  # the address without 0x
        if any(form in text for form in forms):
            found.append(name)
    return found


def read_text(path: Path) -> str:
    return path.read_text(errors="replace")


def log_files(folder: Path) -> dict[str, str]:
    """Every log file under `folder` (rotated ones too), by relative path."""
    return {str(path.relative_to(folder)): read_text(path) for path in sorted(folder.rglob("*.log*"))}


async def fetch_text(session: aiohttp.ClientSession, url: str, **kw: object) -> tuple[int, str]:
    async with session.request(kw.pop("method", "GET"), url, timeout=aiohttp.ClientTimeout(total=10), **kw) as r:  # type: ignore[arg-type]
        return r.status, await r.text()


async def test_no_canary_reaches_any_output(tmp_path: Path) -> None:
    planted = canaries()
    dashboard, metrics = free_port(), free_port()
    base = f"http://127.0.0.1:{dashboard}"
    async with FakeTelegram(planted["TELEGRAM_BOT_TOKEN"]) as telegram:
        env = clean_env(
            tmp_path,
            **planted,
            TELEGRAM_BASE_URL=telegram.base_url,
            TELEGRAM_CHAT_ID=CHAT_ID,
            TELEGRAM_STAGING_CHAT_ID=CHAT_ID,
            TELEGRAM_ALLOWED_USER_IDS="1",
            TRADING_MODE="paper",
            REPLAY_SPEED="40",
            MCP_INTEGRATION_ENABLED="true",  # the bot spawns the sidecar, which inherits the canaries
            MCP_MARKET_HOURS_ENABLED="false",
            MONITOR_INTERVAL_SECONDS="1",
            MCP_HEALTH_LOOP_SECONDS="2",
            DASHBOARD_PORT=dashboard,
            METRICS_PORT=metrics,
            ALERT_ON_TRADE="true",
            ALERT_ON_ERROR="true",
        )
        bot: Child = await start_child("bot", ["main.py"], env, tmp_path)
        outputs: dict[str, str] = {}
        try:
            async with aiohttp.ClientSession() as session:
                report = await wait_for_health(
                    session,
                    f"{base}/health",
                    lambda body: component_status(body, "main_bot") == "healthy" and body["components"].get("sidecar"),
                    within=90,
                    watch=(bot,),
                )
                # the replayed trades trip the breaker and send alerts; give them and a few checks a moment
                await asyncio.sleep(4)
                # positive controls: the canaries really were read by the processes
                status, body = await fetch_text(
                    session,
                    f"{base}/reset-circuit-breaker",
                    method="POST",
                    headers={"Authorization": f"Bearer {planted['DASHBOARD_TOKEN']}"},
                    json={"reason": "canary test"},
                )
                assert status == 200, body  # DASHBOARD_TOKEN was planted and accepted
                outputs["reset (right token)"] = body
                status, body = await fetch_text(
                    session,
                    f"{base}/reset-circuit-breaker",
                    method="POST",
                    headers={"Authorization": f"Bearer {planted['DASHBOARD_TOKEN']}x"},
                )
                assert status == 401
                outputs["reset (wrong token)"] = body
                for path in ("/health", "/api/history", "/metrics", "/", "/static/dashboard.js", "/no-such-page"):
                    outputs[f"dashboard {path}"] = (await fetch_text(session, f"{base}{path}"))[1]
                outputs["metrics port /metrics"] = (await fetch_text(session, f"http://127.0.0.1:{metrics}/metrics"))[1]
        finally:
            await bot.stop(grace=20)  # SIGTERM: the bot stops its sidecar, logs and the outbox are flushed
        alerts = [message.text for message in telegram.messages]

    assert '"main_bot"' in outputs["dashboard /health"]
    assert report["status"] in {"starting", "healthy", "degraded", "critical"}
    assert "monitoring_component_status" in outputs["metrics port /metrics"]
    masked = "***" + planted["WALLET_ADDRESS"][-6:]
    assert masked in read_text(tmp_path / "state" / "risk_state.json")  # WALLET_ADDRESS was planted, read, masked
    assert alerts, "no alert reached the fake Telegram: TELEGRAM_BOT_TOKEN / TELEGRAM_BASE_URL were not used"

    logs = log_files(tmp_path)
    assert any("polymarket_bot" in name for name in logs) and any("mcp" in name for name in logs), sorted(logs)
    outputs.update({f"log {name}": text for name, text in logs.items()})
    outputs["bot and sidecar output"] = bot.text()
    outputs.update({f"alert {i}": text for i, text in enumerate(alerts)})

    found = {where: leaks(text, planted) for where, text in outputs.items()}
    assert {where: names for where, names in found.items() if names} == {}
