"""The operator's promise, tested with real processes and real signals (SPEC §11): the sidecar can be killed
in the middle of its heaviest work and trading goes on, with no error; the bot restarts the sidecar it spawned
(at most 3 times) and runs alone when told to.

Each test starts a real bot (`python main.py`, a fast looping replay, limits wide enough that trades keep
executing) and judges it only from outside: its risk snapshot (updated_at advancing, trades.executed
growing), its log, its exit code on SIGTERM. Only processes started here are signalled, by pid.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import psutil
import pytest

from core.risk_snapshot import read_risk_snapshot
from tests.live_stack import Child, clean_env, free_port, start_child
from tests.sidecar_load import (
    McpCallError,
    McpStdioClient,
    end_process,
    niced,
    process_tree,
    sidecar_process_env,
    spawn,
    stdlib_root,
    wait_until_served,
)
from tests.waiting import eventually
from utils.atomic import StateFileError

pytestmark = [pytest.mark.integration, pytest.mark.slow]

# a logging line at ERROR or CRITICAL (utils.logging_setup.LOG_FORMAT: "<date> <time> LEVEL name: message")
PROBLEM_LINE = re.compile(r"^\S+ \S+ (ERROR|CRITICAL) |Traceback \(most recent call last\)")
WIDE_LIMITS = {
    "REPLAY_SPEED": "200",
    "MAX_ORDERS_PER_MINUTE": "6000",
    "CONSECUTIVE_LOSS_LIMIT": "1000000",
    "MAX_DAILY_LOSS": "1000000",
    "PAPER_STARTING_BALANCE": "1000000",
    "MAX_TOTAL_EXPOSURE": "1000000",
    "MAX_POSITION_SIZE": "100000",
    "MAX_OPEN_POSITIONS": "1000",
    "MAX_SLIPPAGE": "1",
}
SLOW_SUITE_TESTS = 40  # x 0.25 s: a run of about 10 s, killed a second or two in


def bot_env(workdir: Path, **extra: Any) -> dict[str, str]:
    """A bot trading on paper with free ports for the sidecar it may spawn."""
    values: dict[str, Any] = {
        **WIDE_LIMITS,
        "MCP_INTEGRATION_ENABLED": "false",
        "MCP_MARKET_HOURS_ENABLED": "false",
        "DASHBOARD_PORT": free_port(),
        "METRICS_PORT": free_port(),
    }
    return clean_env(workdir, **{**values, **extra})


def snapshot(workdir: Path) -> dict[str, Any] | None:
    try:
        return read_risk_snapshot(workdir / "state" / "risk_state.json")
    except StateFileError:
        return None


async def trades_on(workdir: Path, bot: Child, since: dict[str, Any] | None = None, within: float = 20.0) -> dict:
    """Wait until the bot's snapshot is newer than `since` (by >= 1 s) with more trades executed; that snapshot."""
    floor_time = since["updated_at_epoch"] + 1.0 if since else 0.0
    floor_trades = since["trades"]["executed"] if since else 0
    deadline = time.monotonic() + within
    last = None
    while time.monotonic() < deadline:
        assert bot.alive(), f"the bot exited with code {bot.process.returncode}:\n{bot.text()[-3000:]}"
        last = snapshot(workdir)
        if last and last["updated_at_epoch"] >= floor_time and last["trades"]["executed"] > floor_trades:
            return last
        await asyncio.sleep(0.2)
    raise AssertionError(f"the bot stopped trading: last snapshot {last!r}, expected newer than {since!r}")


def problems(log: Path) -> list[str]:
    """ERROR/CRITICAL lines and tracebacks of a log file."""
    text = log.read_text(errors="replace") if log.exists() else ""
    return [line for line in text.splitlines() if PROBLEM_LINE.search(line)]


async def stop_bot_cleanly(workdir: Path, bot: Child, allowed: tuple[str, ...] = ()) -> None:
    """SIGTERM: exit code 0, and no error line in its log other than `allowed` ones."""
    code = await bot.stop()
    assert code == 0, f"expected exit code 0 on SIGTERM, received {code}:\n{bot.text()[-3000:]}"
    unexpected = [
        line for line in problems(workdir / "logs" / "polymarket_bot.log") if not any(a in line for a in allowed)
    ]
    assert not unexpected, "the bot logged errors:\n" + "\n".join(unexpected)


def kill_leftovers(processes: list[psutil.Process]) -> None:
    """SIGKILL what is left of processes this test started (psutil checks the pid was not reused since)."""
    for process in processes:
        with contextlib.suppress(psutil.Error):
            process.kill()


@contextlib.asynccontextmanager
async def running_bot(workdir: Path, **extra: Any) -> AsyncIterator[Child]:
    """`python main.py` trading; killed (with everything it spawned) if the test did not stop it."""
    bot = await start_child("bot", ["main.py"], bot_env(workdir, **extra), workdir)
    try:
        yield bot
    finally:
        spawned = process_tree(bot.pid)[1:]
        if bot.alive():
            await bot.stop(grace=5)
        kill_leftovers(spawned)


async def test_sidecar_killed_mid_scan_the_bot_trades_on(tmp_path: Path) -> None:
    cache = tmp_path / "state" / "codebase_search_cache.json"
    env = sidecar_process_env(
        tmp_path, dashboard_port=free_port(), metrics_port=free_port(), MCP_SEARCH_ROOT=stdlib_root()
    )
    async with running_bot(tmp_path) as bot:
        await trades_on(tmp_path, bot)
        sidecar = await spawn(niced("all"), env, tmp_path / "sidecar.out")
        try:
            # the scan starts with the sidecar (cold cache: a fresh STATE_DIR) and takes seconds over the stdlib;
            # the metrics port answers as soon as the monitoring server is up, beside it
            await wait_for_metrics(env, sidecar)
            await asyncio.sleep(0.3)  # a moment into the scan, so the kill lands mid-scan (checked just below)
            assert not cache.exists(), "the stdlib scan finished before the kill: nothing was interrupted"
            assert psutil.Process(sidecar.pid).cpu_times().user > 0
            before = snapshot(tmp_path)
            os.kill(sidecar.pid, signal.SIGKILL)
            assert await sidecar.wait() == -signal.SIGKILL
        finally:
            await end_process(sidecar, grace=2)
        assert not cache.exists(), "a scan killed midway must leave no cache file behind (atomic writes)"
        await trades_on(tmp_path, bot, since=before)
        await asyncio.sleep(1.0)  # time passing is the point: a second later the bot still trades
        await trades_on(tmp_path, bot, since=snapshot(tmp_path))
        await stop_bot_cleanly(tmp_path, bot)


async def wait_for_metrics(env: dict[str, str], sidecar: asyncio.subprocess.Process, within: float = 60.0) -> None:
    """Wait until the sidecar serves /metrics (its monitoring server is up)."""
    async with aiohttp.ClientSession() as session:
        url = f"http://127.0.0.1:{env['METRICS_PORT']}/metrics"
        status = await wait_until_served(session, url, within, watch=[sidecar])
    assert status == 200, f"the sidecar never served {url} (exit code {sidecar.returncode})"


def write_slow_project(root: Path, marker: Path) -> Path:
    """A project whose suite takes about SLOW_SUITE_TESTS / 4 seconds and touches `marker` when it starts."""
    (root / "slowpkg").mkdir(parents=True)
    (root / "slowpkg" / "__init__.py").write_text("def limit(x: float) -> float:\n    return min(x, 10.0)\n")
    (root / "tests").mkdir()
    (root / "tests" / "test_slow.py").write_text(
        "import time\nfrom pathlib import Path\n\nimport pytest\n\nfrom slowpkg import limit\n\n\n"
        f"@pytest.mark.parametrize('n', range({SLOW_SUITE_TESTS}))\n"
        "def test_slowly(n: int) -> None:\n"
        f"    Path({str(marker)!r}).touch()\n"
        "    time.sleep(0.25)\n"
        "    assert limit(n) <= 10.0\n"
    )
    return root


async def test_sidecar_killed_mid_test_run_the_bot_trades_on_and_the_run_dies_too(tmp_path: Path) -> None:
    marker = tmp_path / "suite-started"
    project = write_slow_project(tmp_path / "project", marker)
    env = sidecar_process_env(
        tmp_path,
        dashboard_port=free_port(),
        metrics_port=free_port(),
        MCP_TESTING_PROJECT_ROOT=project,
        MCP_TESTING_PATHS="tests",
        MCP_TESTING_SOURCE_PACKAGES="slowpkg",
    )
    async with running_bot(tmp_path) as bot:
        await trades_on(tmp_path, bot)
        # the testing server's runs are started by its MCP tool: the sidecar serves it over stdio
        client = await McpStdioClient.start(niced("stdio", "testing"), env, tmp_path / "sidecar.out")
        run: asyncio.Task[dict[str, Any]] | None = None
        test_run: list[psutil.Process] = []
        try:
            run = asyncio.create_task(client.call_tool("run_tests", {"force": True}, within=90))
            deadline = time.monotonic() + 60
            while not marker.exists():
                assert time.monotonic() < deadline and not run.done(), f"the suite never started: {run}"
                await asyncio.sleep(0.1)
            test_run = process_tree(client.pid)[1:]
            assert test_run, "expected the test run's processes under the sidecar"
            before = snapshot(tmp_path)
            os.kill(client.pid, signal.SIGKILL)
            with pytest.raises(McpCallError, match="closed its stdout"):
                await run
            await trades_on(tmp_path, bot, since=before)
            # the runner's orphan guard (PR_SET_PDEATHSIG): a test run never outlives its sidecar
            assert await gone(test_run, within=10), f"the test run outlived its sidecar: {test_run}"
        finally:
            if run is not None and not run.done():
                run.cancel()
            await client.close(grace=2)
            kill_leftovers(test_run)
        await asyncio.sleep(1.0)  # time passing is the point: a second later the bot still trades
        await trades_on(tmp_path, bot, since=snapshot(tmp_path))
        await stop_bot_cleanly(tmp_path, bot)


async def gone(processes: list[psutil.Process], within: float) -> bool:
    """True once none of `processes` is running (zombies awaiting their reaper count as gone)."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        alive = []
        for process in processes:
            with contextlib.suppress(psutil.NoSuchProcess):
                if process.is_running() and process.status() != psutil.STATUS_ZOMBIE:
                    alive.append(process)
        if not alive:
            return True
        await asyncio.sleep(0.1)
    return False


def sidecar_children(bot: Child) -> list[psutil.Process]:
    """The bot's direct children running the sidecar."""
    try:
        children = psutil.Process(bot.pid).children()
    except psutil.NoSuchProcess:
        return []
    found = []
    for child in children:
        with contextlib.suppress(psutil.Error):
            if "mcp.main_mcp" in child.cmdline():
                found.append(child)
    return found


async def next_sidecar(bot: Child, not_pid: int | None, within: float = 30.0) -> psutil.Process:
    """Wait for a sidecar child of the bot other than `not_pid`."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        assert bot.alive(), f"the bot exited with code {bot.process.returncode}:\n{bot.text()[-3000:]}"
        fresh = [child for child in sidecar_children(bot) if child.pid != not_pid and child.is_running()]
        if fresh:
            return fresh[0]
        await asyncio.sleep(0.05)
    raise AssertionError(f"the bot did not (re)start its sidecar within {within:g} s:\n{bot.text()[-3000:]}")


async def test_the_bot_spawns_its_sidecar_at_low_priority_and_restarts_it_at_most_three_times(tmp_path: Path) -> None:
    async with running_bot(tmp_path, MCP_INTEGRATION_ENABLED="true") as bot:
        await trades_on(tmp_path, bot)
        child = await next_sidecar(bot, None)
        assert "all" in child.cmdline()
        # `nice -n 10` lowers its own priority, then execs the sidecar: wait for that, not a fixed time
        await eventually(lambda: child.nice() >= 10, "the sidecar running at nice 10", within=10)
        # its own process group (a Ctrl-C reaches only the bot) but the bot's session: with autogroup
        # scheduling, a session of its own would be a scheduling group as strong as the bot's
        assert os.getpgid(child.pid) == child.pid
        assert os.getsid(child.pid) == os.getsid(bot.pid)
        starts = [child.pid]
        for _ in range(3):
            before = snapshot(tmp_path)
            os.kill(starts[-1], signal.SIGKILL)
            await trades_on(tmp_path, bot, since=before)
            starts.append((await next_sidecar(bot, starts[-1])).pid)
        before = snapshot(tmp_path)
        os.kill(starts[-1], signal.SIGKILL)
        log = tmp_path / "logs" / "polymarket_bot.log"
        deadline = time.monotonic() + 15
        while "Sidecar given up" not in log.read_text():
            assert time.monotonic() < deadline, f"expected the bot to give up on its sidecar:\n{log.read_text()}"
            await asyncio.sleep(0.1)
        await trades_on(tmp_path, bot, since=before)
        assert sidecar_children(bot) == [], "a 4th restart: at most 3 are allowed"
        assert log.read_text().count("sidecar started (pid") == 4
        assert len(set(starts)) == 4
        # the give-up is CRITICAL twice: the log line and the alert it sends through the outbox
        await stop_bot_cleanly(tmp_path, bot, allowed=("Sidecar given up",))


async def test_with_the_integration_disabled_the_bot_runs_alone(tmp_path: Path) -> None:
    async with running_bot(tmp_path, MCP_INTEGRATION_ENABLED="false") as bot:
        first = await trades_on(tmp_path, bot)
        for _ in range(10):
            assert psutil.Process(bot.pid).children(recursive=True) == []
            await asyncio.sleep(0.2)
        await trades_on(tmp_path, bot, since=first)
        assert "the bot runs alone" in (tmp_path / "logs" / "polymarket_bot.log").read_text()
        await stop_bot_cleanly(tmp_path, bot)
