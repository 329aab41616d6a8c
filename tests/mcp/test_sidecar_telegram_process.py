"""`python -m mcp.main_mcp all` as a real process with Telegram configured: commands are answered by the
sidecar over the fake Bot API (tests/fakes/fake_telegram.py on loopback), the integrator's watch runs
among its servers, and SIGTERM still ends it cleanly within 10 s, the stop alert delivered first.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import PROJECT_ROOT
from tests.fakes.fake_telegram import FakeTelegram, SentMessage

pytestmark = [pytest.mark.integration, pytest.mark.slow]

TOKEN = "555987654:SIDECAR-process-token-Qw8e7r6t5y"
CHAT, OPERATOR, STRANGER = 4242, 1001, 6666
READY_BOUND_SECONDS = 60.0  # generous: start-up on a loaded 2-core machine
EXIT_BOUND_SECONDS = 15.0
STOP_REQUIREMENT_SECONDS = 10.0
SERVICES_AND_SERVERS = (
    "codebase_search",
    "testing",
    "monitoring",
    "risk_integrator",
    "telegram_commands",
    "alert_rules",
)


def tiny_project(root: Path) -> Path:
    (root / "pkg").mkdir(parents=True)
    (root / "pkg" / "__init__.py").write_text("")
    (root / "pkg" / "mod.py").write_text("def add(a, b):\n    return a + b\n")
    (root / "tests").mkdir()
    (root / "tests" / "test_mod.py").write_text(
        "from pkg.mod import add\n\n\ndef test_add():\n    assert add(1, 2) == 3\n"
    )
    return root


def sidecar_env(tmp_path: Path, telegram: FakeTelegram) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if key not in {"NOTIFY_SOCKET", "PYTEST_CURRENT_TEST"}}
    env.update(
        PYTHONPATH=str(PROJECT_ROOT),
        PYTHONUNBUFFERED="1",
        STATE_DIR=str(tmp_path / "state"),
        LOG_DIR=str(tmp_path / "logs"),
        MCP_SEARCH_ROOT=str(tiny_project(tmp_path / "search_tree")),
        MCP_TESTING_PROJECT_ROOT=str(tiny_project(tmp_path / "test_tree")),
        MONITOR_INTERVAL_SECONDS="1",
        METRICS_PORT="0",
        DASHBOARD_PORT="0",
        TELEGRAM_BOT_TOKEN=TOKEN,
        TELEGRAM_CHAT_ID=str(CHAT),
        TELEGRAM_ALLOWED_USER_IDS=str(OPERATOR),
        TELEGRAM_BASE_URL=telegram.base_url,
    )
    return env


class StderrLog:
    """Reads the child's stderr as it comes (so the pipe never fills) and lets a test wait for a line."""

    def __init__(self, stream: asyncio.StreamReader) -> None:
        self.lines: list[str] = []
        self._changed = asyncio.Condition()
        self.task = asyncio.create_task(self._read(stream))

    async def _read(self, stream: asyncio.StreamReader) -> None:
        async for raw in stream:
            async with self._changed:
                self.lines.append(raw.decode(errors="replace"))
                self._changed.notify_all()

    async def wait_for(self, text: str, within: float) -> None:
        async with asyncio.timeout(within), self._changed:
            await self._changed.wait_for(lambda: any(text in line for line in self.lines))

    def text(self) -> str:
        return "".join(self.lines)


async def read_status_file(path: Path, within: float = 20.0) -> dict[str, Any]:
    """The supervisor's status file, once its first write after start-up has landed."""
    for _ in range(int(within / 0.05)):
        if await asyncio.to_thread(path.exists):
            return json.loads(await asyncio.to_thread(path.read_text))
        await asyncio.sleep(0.05)
    raise AssertionError(f"{path} was not written within {within} s")


async def reply_to(telegram: FakeTelegram, command: str, within: float = 20.0) -> SentMessage:
    """The first delivered message that answers `command` (alerts go to the same chat)."""
    async with asyncio.timeout(within):
        while True:
            for message in telegram.messages:
                if message.text.startswith(f"<b>{command}</b>"):
                    return message
            await telegram.wait_for_messages(len(telegram.messages) + 1, within=within)


async def test_all_answers_telegram_commands_and_stops_within_10_s_of_sigterm(tmp_path: Path) -> None:
    async with FakeTelegram(TOKEN) as telegram:
        work = tmp_path / "work"
        work.mkdir()
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "mcp.main_mcp",
            "all",
            cwd=work,
            env=sidecar_env(tmp_path, telegram),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        assert process.stderr is not None
        stderr = StderrLog(process.stderr)
        try:
            try:
                await stderr.wait_for("start-up finished: all 6 server(s) running", READY_BOUND_SECONDS)
            except TimeoutError:
                raise AssertionError(f"the sidecar did not start; stderr:\n{stderr.text()}") from None
            telegram.push_command("/status", chat_id=CHAT, user_id=STRANGER)  # not an operator: no answer
            telegram.push_command("/status", chat_id=CHAT, user_id=OPERATOR)
            reply = await reply_to(telegram, "/status")
            status_file = await read_status_file(tmp_path / "state" / "sidecar_status.json")
        finally:
            started = time.monotonic()
            if process.returncode is None:
                process.send_signal(signal.SIGTERM)
            try:
                code = await asyncio.wait_for(process.wait(), EXIT_BOUND_SECONDS)
            except TimeoutError:
                process.kill()
                await process.wait()
                raise AssertionError(f"no exit within {EXIT_BOUND_SECONDS} s of SIGTERM:\n{stderr.text()}") from None
            elapsed = time.monotonic() - started
            await stderr.task

    print(f"sidecar 'all' with Telegram commands stopped {elapsed:.2f} s after SIGTERM")
    assert code == 0, stderr.text()
    assert elapsed <= STOP_REQUIREMENT_SECONDS, f"stop took {elapsed:.2f} s; the requirement is 10 s"
    # the operator's /status, answered with the supervisor's own figures; the stranger's got nothing
    assert reply.chat_id == str(CHAT)
    assert "summary: 6/6 servers running; overall " in reply.text
    for name in SERVICES_AND_SERVERS:
        assert f"servers.{name}: running, restarts 0" in reply.text
    assert sum(m.text.startswith("<b>/status</b>") for m in telegram.messages) == 1
    assert "Telegram update denied: chat 4242, user 6666" in stderr.text()
    # the integrator's watch ran inside the sidecar: its monitor_all figures reached the status file
    watch = status_file["servers"]["risk_integrator"]
    assert watch["state"] == "running" and watch["health"]["monitor"]["total_memory_mb"] > 0
    assert watch["health"]["mcp_circuit_breaker"]["state"] in {"closed", "open", "half_open"}
    # the stop alert went out before the process ended: flushed in the sidecar's loop at stop
    assert any("MCP SERVERS STOPPED" in m.text for m in telegram.messages)
    assert TOKEN not in stderr.text()
