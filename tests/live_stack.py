"""A real bot and a real sidecar as child processes on loopback, for the end-to-end tests (browser, canaries).

Each process gets a clean environment (no MCP_/TELEGRAM_/... variable of the developer's shell), its own
STATE_DIR and LOG_DIR, free ports, and its output in a file; `stop()` ends it by pid (SIGTERM, then SIGKILL
of its process group after a grace period), so nothing outlives the test.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

PROJECT_ROOT = Path(__file__).resolve().parent.parent
PYTHON = PROJECT_ROOT / ".venv" / "bin" / "python"
FIXTURE_PROJECT = PROJECT_ROOT / "tests" / "fixtures" / "projects" / "integrator_covered"
# variables of the developer's shell that would change what the children do
FOREIGN_PREFIXES = ("MCP_", "TELEGRAM_", "DASHBOARD_", "MONITOR", "ALERT", "METRICS_", "DAILY_LOSS_", "CLOB_")
FOREIGN_NAMES = {"ENVIRONMENT", "NOTIFY_SOCKET", "PRIVATE_KEY", "WALLET_ADDRESS", "TARGET_WALLETS", "STATE_DIR",
                 "LOG_DIR", "PYTEST_CURRENT_TEST", "WATCHDOG_USEC", "WATCHDOG_PID"}  # fmt: skip


def free_port() -> int:
    """A port that was free a moment ago (bind port 0, read it, close)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def python() -> str:
    """The project's interpreter (the venv's, else the one running the tests)."""
    return str(PYTHON) if PYTHON.exists() else sys.executable


def clean_env(workdir: Path, **values: Any) -> dict[str, str]:
    """The children's environment: ours without the foreign variables, plus STATE_DIR/LOG_DIR and `values`."""
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(FOREIGN_PREFIXES) and name not in FOREIGN_NAMES
    }
    env.update(
        {
            "STATE_DIR": str(workdir / "state"),
            "LOG_DIR": str(workdir / "logs"),
            "PYTHONUNBUFFERED": "1",
            "PYTHONDONTWRITEBYTECODE": "1",
            # a small fixture project: a scan or test run there is cheap, and never recurses into this suite
            "MCP_TESTING_PROJECT_ROOT": str(FIXTURE_PROJECT),
            "MCP_SEARCH_ROOT": str(FIXTURE_PROJECT),
        }
    )
    env.update({name: str(value) for name, value in values.items()})
    return env


@dataclass
class Child:
    """One child process; its stdout and stderr go to `output`."""

    name: str
    process: asyncio.subprocess.Process
    output: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.returncode is None

    def kill(self, signum: int = signal.SIGKILL) -> None:
        """Signal the child itself (not its group)."""
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signum)

    async def stop(self, grace: float = 12.0) -> int | None:
        """SIGTERM, wait up to `grace` seconds, then SIGKILL the whole process group; the exit code."""
        if self.alive():
            self.kill(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.process.wait(), timeout=grace)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.pid, signal.SIGKILL)
                await self.process.wait()
        # grandchildren (the sidecar the bot spawned) live in groups of their own: the bot stops them itself
        return self.process.returncode

    def text(self) -> str:
        return self.output.read_text(errors="replace") if self.output.exists() else ""


async def start_child(name: str, args: list[str], env: Mapping[str, str], workdir: Path) -> Child:
    """Start `python <args>` in the project root, in a new session, output to workdir/<name>.out."""
    output = workdir / f"{name}.out"
    with output.open("wb") as sink:
        process = await asyncio.create_subprocess_exec(
            python(),
            *args,
            cwd=PROJECT_ROOT,
            env=dict(env),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=sink,
            stderr=asyncio.subprocess.STDOUT,
            start_new_session=True,
        )
    return Child(name, process, output)


async def get_json(session: aiohttp.ClientSession, url: str) -> tuple[int, Any]:
    """(status, parsed body) of GET url."""
    async with session.get(url, timeout=aiohttp.ClientTimeout(total=5)) as response:
        return response.status, await response.json(content_type=None)


async def wait_for_health(
    session: aiohttp.ClientSession,
    url: str,
    accept: Callable[[dict[str, Any]], bool],
    *,
    within: float,
    watch: tuple[Child, ...] = (),
) -> dict[str, Any]:
    """Poll GET url until `accept(body)`; fails with the last body and the children's output otherwise."""
    deadline = time.monotonic() + within
    last: Any = None
    while time.monotonic() < deadline:
        for child in watch:
            if not child.alive():
                raise AssertionError(
                    f"{child.name} exited with code {child.process.returncode} while waiting for {url}:\n"
                    f"{child.text()[-4000:]}"
                )
        try:
            _, last = await get_json(session, url)
        except (aiohttp.ClientError, TimeoutError, ValueError) as e:
            last = f"{type(e).__name__}: {e}"
        else:
            if isinstance(last, dict) and accept(last):
                return last
        await asyncio.sleep(0.25)
    outputs = "\n".join(f"--- {child.name} ---\n{child.text()[-3000:]}" for child in watch)
    raise AssertionError(f"{url} never matched within {within:g} s; last answer: {last!r}\n{outputs}")


def component_status(report: Mapping[str, Any], name: str) -> str | None:
    """components.<name>.status of a /health body (None when absent)."""
    component = (report.get("components") or {}).get(name)
    return component.get("status") if isinstance(component, Mapping) else None
