"""Issue 9's "done when", with real processes: a standalone sidecar (`python -m mcp.main_mcp all`, as under
systemd) beside the fake Bot API on loopback.

1. The daily loss crosses DAILY_LOSS_WARNING_PERCENT, then DAILY_LOSS_CRITICAL_PERCENT: one alert each,
   repeats deduplicated. The figures are written by this test through the bot's own RiskSnapshotWriter
   (pid = this test process, alive), because a paper bot cannot be made to lose a chosen amount.
2. A real paper bot (`python main.py`, MCP_INTEGRATION_ENABLED=false) takes over the snapshot (the loss
   alerts resolve, once each); `kill -9` of it brings "BOT DOWN" within 90 s; a new bot brings the
   resolved notice.
Intervals are shortened by settings (MONITOR_INTERVAL_SECONDS=1); waits are generous bounds, not timings.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from core.risk_snapshot import RiskSnapshotWriter, read_risk_snapshot, risk_snapshot_path
from tests.conftest import PROJECT_ROOT
from tests.fakes.fake_telegram import FakeTelegram
from tests.mcp.test_sidecar_telegram_process import StderrLog

pytestmark = [pytest.mark.integration, pytest.mark.slow]

TOKEN = "555123987:RULES-process-token-Zx9c8v7b6n"
CHAT = 4343
READY_BOUND_SECONDS = 60.0
ALERT_BOUND_SECONDS = 90.0  # the promise for "bot down"; the same bound for the other notices


def base_env(tmp_path: Path, telegram: FakeTelegram) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if key not in {"NOTIFY_SOCKET", "PYTEST_CURRENT_TEST"}}
    env.update(
        PYTHONPATH=str(PROJECT_ROOT),
        PYTHONUNBUFFERED="1",
        STATE_DIR=str(tmp_path / "state"),
        LOG_DIR=str(tmp_path / "logs"),
        MONITOR_INTERVAL_SECONDS="1",
        METRICS_PORT="0",
        DASHBOARD_PORT="0",
        TELEGRAM_BOT_TOKEN=TOKEN,
        TELEGRAM_CHAT_ID=str(CHAT),
        TELEGRAM_BASE_URL=telegram.base_url,
        MCP_CODEBASE_SEARCH_ENABLED="false",
        MCP_TESTING_ENABLED="false",
        MCP_INTEGRATION_ENABLED="false",
        PERFORMANCE_REPORT_TIME="off",
    )
    return env


class LossWriter:
    """Publishes a bot-shaped snapshot every 0.2 s with the loss the test sets (pid: this process)."""

    def __init__(self, state_dir: Path) -> None:
        self.writer = RiskSnapshotWriter(risk_snapshot_path(state_dir), min_interval=0.0, heartbeat_interval=0.0)
        self.loss = 0.0

    def payload(self) -> dict[str, Any]:
        now = time.time()
        breaker = {"state": "ACTIVE", "daily_loss": self.loss, "daily_loss_limit": 100.0, "trip_history": []}
        return {
            "schema_version": 1,
            "pid": os.getpid(),
            "updated_at": "now",
            "updated_at_epoch": now,
            "trading_mode": "paper",
            "trading_state": "ACTIVE",
            "breaker": breaker,
            "trades": {"executed": 0, "denied": 0, "failed": 0},
        }

    async def run(self) -> None:
        while True:
            await self.writer.publish(self.payload(), force=True)
            await asyncio.sleep(0.2)


def texts(telegram: FakeTelegram) -> list[str]:
    return [message.text for message in telegram.messages]


async def wait_for_text(telegram: FakeTelegram, needle: str, within: float = ALERT_BOUND_SECONDS) -> str:
    async with asyncio.timeout(within):
        while True:
            for text in texts(telegram):
                if needle in text:
                    return text
            await telegram.wait_for_messages(len(telegram.messages) + 1, within=within)


async def wait_for_snapshot_pid(state_dir: Path, pid: int, within: float = READY_BOUND_SECONDS) -> None:
    async with asyncio.timeout(within):
        while True:
            with contextlib.suppress(Exception):
                if (await asyncio.to_thread(read_risk_snapshot, risk_snapshot_path(state_dir))).get("pid") == pid:
                    return
            await asyncio.sleep(0.2)


async def start(args: list[str], env: dict[str, str], cwd: Path) -> tuple[asyncio.subprocess.Process, StderrLog]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        *args,
        cwd=cwd,
        env=env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    assert process.stderr is not None
    return process, StderrLog(process.stderr)


async def stop(process: asyncio.subprocess.Process, log: StderrLog) -> None:
    if process.returncode is None:
        process.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(process.wait(), 20)
        except TimeoutError:
            process.kill()
            await process.wait()
    with contextlib.suppress(Exception):
        await asyncio.wait_for(log.task, 5)


async def test_loss_levels_alert_once_each_and_a_killed_bot_is_alerted_then_resolved(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    async with FakeTelegram(TOKEN) as telegram:
        env = base_env(tmp_path, telegram)
        losses = LossWriter(state)
        writing = asyncio.create_task(losses.run())
        sidecar, sidecar_log = await start(["-m", "mcp.main_mcp", "all"], env, PROJECT_ROOT)
        bots: list[tuple[asyncio.subprocess.Process, StderrLog]] = []
        try:
            try:
                await sidecar_log.wait_for("start-up finished: all 3 server(s) running", READY_BOUND_SECONDS)
            except TimeoutError:
                raise AssertionError(f"the sidecar did not start; stderr:\n{sidecar_log.text()}") from None

            # 1. the daily loss: warning, then critical, each once, repeats deduplicated
            losses.loss = 13.0  # 13 % of the 100 limit: over DAILY_LOSS_WARNING_PERCENT (12 %)
            await wait_for_text(telegram, "DAILY LOSS WARNING")
            losses.loss = 14.0
            await asyncio.sleep(2.0)  # two rounds at 14 %: still only the warning
            losses.loss = 16.0  # over DAILY_LOSS_CRITICAL_PERCENT (15 %)
            await wait_for_text(telegram, "DAILY LOSS CRITICAL")
            losses.loss = 17.0
            await asyncio.sleep(3.0)  # several evaluation rounds (1 s) at 17 %: nothing new may come

            # 2. a real paper bot takes the snapshot over: the loss alerts resolve, once each
            writing.cancel()
            bot_env = {**env, "MAX_DAILY_LOSS": "1000000"}
            bots.append(await start(["main.py"], bot_env, PROJECT_ROOT))
            await wait_for_snapshot_pid(state, bots[-1][0].pid)
            await wait_for_text(telegram, "Daily loss back below 15%")
            await wait_for_text(telegram, "Daily loss back below 12%")

            # 3. kill -9 the bot (reaped at once, as its supervisor would): "bot down" within 90 s
            bots[-1][0].kill()
            killed_at = time.monotonic()
            await bots[-1][0].wait()
            down = await wait_for_text(telegram, "BOT DOWN", ALERT_BOUND_SECONDS)
            print(f"BOT DOWN delivered {time.monotonic() - killed_at:.1f} s after kill -9 (bound 90 s)")

            # 4. a new bot: the resolved notice
            bots.append(await start(["main.py"], bot_env, PROJECT_ROOT))
            back = await wait_for_text(telegram, "The bot is back", ALERT_BOUND_SECONDS)
        finally:
            writing.cancel()
            for process, log in bots:
                await stop(process, log)
            await stop(sidecar, sidecar_log)
        sent = texts(telegram)

    assert sum("DAILY LOSS WARNING" in text for text in sent) == 1, sent
    assert sum("DAILY LOSS CRITICAL" in text for text in sent) == 1, sent
    assert sum("Daily loss back below" in text for text in sent) == 2, sent
    assert any(text.startswith("<b>✅ RESOLVED</b> <b>Daily loss back below 12% of the limit (now 0.") for text in sent)
    assert sum("BOT DOWN" in text for text in sent) == 1, sent
    assert down.startswith("<b>🔴 CRITICAL ISSUE</b>") and str(bots[0][0].pid) in down
    assert back.startswith("<b>✅ RESOLVED</b>")
    assert TOKEN not in sidecar_log.text()
