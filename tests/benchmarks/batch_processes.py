"""The processes of tests/test_batch_performance.py: the bot (the copy-latency driver) and the busy sidecar.

`BusySidecar` starts every part of the sidecar at nice 10 (the command line main.py uses), puts the load on
it (cold stdlib scans one after the other, test runs over MCP stdio, /metrics and dashboard polling), and
freezes / thaws the whole lot (SIGSTOP / SIGCONT of every process and its children) between arms.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
from pathlib import Path
from typing import Any

import aiohttp
import psutil

from tests.live_stack import PROJECT_ROOT, clean_env, free_port, python
from tests.sidecar_load import (
    HttpPoller,
    McpCallError,
    McpStdioClient,
    end_process,
    freeze,
    niced,
    process_tree,
    sidecar_process_env,
    spawn,
    stdlib_root,
    thaw,
    tree_usage,
    wait_until_served,
)

DRIVER = PROJECT_ROOT / "tests" / "benchmarks" / "copy_latency_driver.py"
TEST_PROJECT = PROJECT_ROOT / "tests" / "fixtures" / "projects" / "bench_project"
STARTUP_SECONDS = 120.0


class SetupError(Exception):
    """The benchmark could not start what it measures (the message says what and where its log is)."""


class Bot:
    """The driver process: one command in, one JSON line out."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process

    @classmethod
    async def start(cls, workdir: Path) -> Bot:
        """Start the driver with STATE_DIR=workdir/state and wait for its ready line."""
        # the bot leads its own process group in this script's session; the sidecar joins that session
        # (--sidecar-session bot), as it does when main.py spawns it
        process = await spawn(
            [python(), str(DRIVER), "--state-dir", str(workdir / "state")],
            clean_env(workdir),
            workdir / "bot.log",
            pipes=True,
        )
        bot = cls(process)
        ready = await bot._read(STARTUP_SECONDS)
        if ready.get("event") != "ready":
            raise SetupError(f"the bot driver did not start: expected a ready line, received {ready!r}")
        return bot

    async def run(self, label: str, seconds: float, rate: float) -> dict[str, Any]:
        """One measured run of `seconds` at `rate` copies/s."""
        assert self.process.stdin is not None
        command = {"cmd": "run", "label": label, "seconds": seconds, "rate": rate}
        self.process.stdin.write(json.dumps(command).encode() + b"\n")
        await self.process.stdin.drain()
        reply = await self._read(seconds + 60.0)
        if reply.get("event") != "run":
            raise SetupError(f"the bot driver answered {reply!r} to {command!r}")
        return reply

    async def _read(self, within: float) -> dict[str, Any]:
        assert self.process.stdout is not None
        line = await asyncio.wait_for(self.process.stdout.readline(), timeout=within)
        if not line:
            raise SetupError(f"the bot driver exited (code {await self.process.wait()}); see its bot.log")
        return json.loads(line)

    async def stop(self) -> None:
        """End of input (the driver flushes its snapshot and exits); SIGTERM/SIGKILL if it does not."""
        if self.process.stdin is not None and not self.process.stdin.is_closing():
            self.process.stdin.close()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.process.wait(), timeout=10)
        await end_process(self.process, grace=5)


class BusySidecar:
    """The sidecar's processes and the load on them; freeze() for the arms without, thaw() for those with."""

    def __init__(
        self, workdir: Path, scrape_hz: float, dashboard_hz: float, *, own_sessions: bool, idle_policy: bool
    ) -> None:
        self.workdir = workdir
        self.own_sessions = own_sessions
        # --sidecar-policy idle: the whole sidecar under chrt --idle 0 (the default leaves SCHED_IDLE to the product,
        # which applies it to its heavy work only)
        self.prefix = [shutil.which("chrt") or "chrt", "--idle", "0"] if idle_policy else []
        self.dashboard_port, self.metrics_port = free_port(), free_port()
        self.env = sidecar_process_env(
            workdir,
            dashboard_port=self.dashboard_port,
            metrics_port=self.metrics_port,
            MCP_SEARCH_ROOT=stdlib_root(),
            MCP_TESTING_PROJECT_ROOT=TEST_PROJECT,
            MCP_TESTING_PATHS="tests",
            MCP_TESTING_SOURCE_PACKAGES="ledger",
            MCP_TESTING_TIMEOUT_SECONDS=3600,
        )
        self.scrape_hz, self.dashboard_hz = scrape_hz, dashboard_hz
        self.all: asyncio.subprocess.Process | None = None
        self.testing: McpStdioClient | None = None
        self.scan: asyncio.subprocess.Process | None = None
        self.pollers: list[HttpPoller] = []
        self.notes: list[str] = []
        self.scans_done = self.test_runs_done = 0
        self.test_statuses: dict[str, int] = {}
        self._busy = asyncio.Event()
        self._spawn_lock = asyncio.Lock()
        self._frozen: set[int] = set()
        self._tasks: list[asyncio.Task[None]] = []
        self._session: aiohttp.ClientSession | None = None

    @property
    def roots(self) -> list[int]:
        return [p.pid for p in (self.all, self.scan, self.testing and self.testing.process) if p is not None]

    async def start(self) -> None:
        """Start every part, wait until the sidecar serves, then start the load (it begins busy)."""
        self.all = await spawn(
            [*self.prefix, *niced("all")], self.env, self.workdir / "sidecar_all.log", new_session=self.own_sessions
        )
        self._session = aiohttp.ClientSession()
        metrics = f"http://127.0.0.1:{self.metrics_port}/metrics"
        if await wait_until_served(self._session, metrics, STARTUP_SECONDS, watch=[self.all]) is None:
            raise SetupError(f"the sidecar never served {metrics}; see {self.workdir / 'sidecar_all.log'}")
        self.pollers.append(HttpPoller(metrics, self.scrape_hz))
        dashboard = f"http://127.0.0.1:{self.dashboard_port}"
        if await wait_until_served(self._session, f"{dashboard}/health", 10.0) not in (None, 404):
            self.pollers += [
                HttpPoller(f"{dashboard}/health", self.dashboard_hz),
                HttpPoller(f"{dashboard}/api/history", self.dashboard_hz),
            ]
        else:
            self.notes.append("the dashboard's GET /health is not served yet: polling /metrics only")
        self.testing = await McpStdioClient.start(
            [*self.prefix, *niced("stdio", "testing")],
            self.env,
            self.workdir / "stdio.log",
            new_session=self.own_sessions,
        )
        self._busy.set()
        for poller in self.pollers:
            poller.resume()
            self._tasks.append(asyncio.create_task(poller.run(self._session)))
        self._tasks += [asyncio.create_task(self._scan_forever()), asyncio.create_task(self._test_forever())]

    async def _scan_forever(self) -> None:
        command = [*self.prefix, *niced("scan", "--root", str(stdlib_root()), "--json")]
        while True:
            # wait for a thawed sidecar *before* taking the lock: a scan that ended while the others were frozen
            # would otherwise hold the lock waiting for a thaw, and the next freeze() would wait for the lock
            await self._busy.wait()
            async with self._spawn_lock:  # never start a scan while the others are frozen
                if not self._busy.is_set():
                    continue
                # the report (megabytes of JSON per cold scan) is not kept: written to a log on the bot's filesystem,
                # it was writeback the bot's fsync'd state writes waited for, a cost the product's sidecar never has
                self.scan = await spawn(
                    command,
                    self.env,
                    self.workdir / "scans.log",
                    new_session=self.own_sessions,
                    discard_stdout=True,
                )
            code = await self.scan.wait()
            if code in (0, 1):  # 1: the stdlib has "violations" of our rules, the scan still completed
                self.scans_done += 1
            else:
                self.notes.append(f"a scan exited with code {code}; see scans.log")
                await asyncio.sleep(1.0)

    async def _test_forever(self) -> None:
        assert self.testing is not None
        while True:
            try:
                result = await self.testing.call_tool("run_tests", {"force": True}, within=24 * 3600.0)
            except McpCallError as e:
                self.notes.append(f"run_tests failed: {e}")
                return
            status = str(result.get("status"))
            self.test_statuses[status] = self.test_statuses.get(status, 0) + 1
            self.test_runs_done += 1

    async def freeze(self) -> None:
        """Pause the pollers, then SIGSTOP every sidecar process and its children."""
        for poller in self.pollers:
            await poller.pause()
        async with self._spawn_lock:
            self._busy.clear()
            self._frozen = freeze(self.roots)

    async def thaw(self) -> None:
        """SIGCONT what freeze() stopped, resume the pollers."""
        thaw(self._frozen)
        self._frozen = set()
        self._busy.set()
        for poller in self.pollers:
            poller.resume()

    def usage(self) -> tuple[float, float]:
        """(CPU seconds, RSS MB) of the whole sidecar (all its processes and their children)."""
        return tree_usage(self.roots)

    async def stop(self) -> None:
        """Thaw, stop the load and every process; SIGKILL any descendant left behind. Never raises."""
        thaw(self._frozen)
        # psutil.Process objects remember their start time: kill() never hits a reused pid
        leftovers = [proc for pid in self.roots for proc in process_tree(pid)]
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self.testing is not None:
            await self.testing.close(grace=5)
        for process in (self.scan, self.all):
            if process is not None:
                await end_process(process, grace=12)
        if self._session is not None:
            await self._session.close()
        for proc in leftovers:  # e.g. a test run's group, if its sidecar could not stop it
            with contextlib.suppress(psutil.Error):
                proc.kill()
