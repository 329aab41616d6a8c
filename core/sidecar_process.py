"""The bot's side of the sidecar: spawn `python -m mcp.main_mcp all` as a child at lower priority, restart it
at most a few times, and never let its death touch trading.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import signal
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from config.settings import PROJECT_ROOT

log = logging.getLogger("polymarket_bot.sidecar")

SIDECAR_NICE = 10
MAX_SIDECAR_RESTARTS = 3
STOP_GRACE_SECONDS = 12.0


def sidecar_command(python: str = sys.executable, mode: str = "all") -> list[str]:
    """The sidecar's command line; `nice` lowers its CPU priority before Python even starts."""
    command = [python, "-m", "mcp.main_mcp", mode]
    nice = shutil.which("nice")
    return [nice, "-n", str(SIDECAR_NICE), *command] if nice else command


def restart_delay(attempt: int, base: float = 1.0, cap: float = 30.0) -> float:
    """Seconds to wait before restart `attempt` (1-based): 1, 2, 4 … capped."""
    return min(cap, base * 2 ** (attempt - 1))


@dataclass(slots=True)
class SidecarStatus:
    pid: int | None = None
    starts: int = 0
    restarts: int = 0
    last_exit_code: int | None = None
    gave_up: bool = False


class SidecarProcess:
    """Keeps one sidecar child running beside the bot (at most `max_restarts` restarts)."""

    def __init__(
        self,
        command: Sequence[str] | None = None,
        *,
        cwd: Path = PROJECT_ROOT,
        env: dict[str, str] | None = None,
        max_restarts: int = MAX_SIDECAR_RESTARTS,
        base_delay: float = 1.0,
    ) -> None:
        self.command = list(command) if command is not None else sidecar_command()
        self.cwd = cwd
        self.env = env
        self.max_restarts = max_restarts
        self.base_delay = base_delay
        self.status = SidecarStatus()
        self._process: asyncio.subprocess.Process | None = None

    async def run(self, stop: asyncio.Event) -> None:
        """Start the sidecar and restart it when it dies, until `stop` is set or the restarts run out."""
        while not stop.is_set():
            try:
                self._process = await asyncio.create_subprocess_exec(
                    *self.command,
                    cwd=self.cwd,
                    env=self.env,
                    stdin=asyncio.subprocess.DEVNULL,
                    # its own process group, so a Ctrl-C in the terminal reaches only the bot (which stops the
                    # sidecar itself); but the bot's session: with autogroup scheduling (Linux's default,
                    # kernel.sched_autogroup_enabled=1) a new session is a scheduling group of its own that gets
                    # an equal share of the CPU whatever its nice value, and a busy sidecar then starves the bot
                    # (tests/test_batch_performance.py --sidecar-session own measures it)
                    process_group=0,
                )
            except OSError as e:
                log.error("could not start the sidecar (%s); the bot trades on without it", e)
                self.status.gave_up = True
                return
            self.status.pid = self._process.pid
            self.status.starts += 1
            log.info("sidecar started (pid %d): %s", self._process.pid, " ".join(self.command))
            exit_code = await self._wait_or_stop(stop)
            if stop.is_set():
                return
            self.status.last_exit_code = exit_code
            if self.status.restarts >= self.max_restarts:
                self.status.gave_up = True
                log.error(
                    "sidecar exited with code %s and was restarted %d times already: giving up; "
                    "trading continues without monitoring (start it by hand: python -m mcp.main_mcp all)",
                    exit_code,
                    self.status.restarts,
                )
                return
            self.status.restarts += 1
            delay = restart_delay(self.status.restarts, self.base_delay)
            log.warning(
                "sidecar exited with code %s; restart %d/%d in %.0f s (trading is not affected)",
                exit_code,
                self.status.restarts,
                self.max_restarts,
                delay,
            )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=delay)

    async def _wait_or_stop(self, stop: asyncio.Event) -> int | None:
        assert self._process is not None
        waiter = asyncio.ensure_future(self._process.wait())
        stopper = asyncio.ensure_future(stop.wait())
        try:
            await asyncio.wait({waiter, stopper}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopper.cancel()
        if waiter.done():
            return waiter.result()
        await self.terminate()
        waiter.cancel()
        return self._process.returncode

    async def terminate(self, grace: float = STOP_GRACE_SECONDS) -> None:
        """SIGTERM the sidecar, SIGKILL its process group after `grace` seconds."""
        process = self._process
        if process is None or process.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(process.wait(), timeout=grace)
        except TimeoutError:
            log.warning("sidecar ignored SIGTERM for %.0f s; killing its process group", grace)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            await process.wait()
        log.info("sidecar stopped (exit code %s)", process.returncode)
