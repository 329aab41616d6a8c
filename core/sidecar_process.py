"""The bot's side of the sidecar: spawn `python -m mcp.main_mcp all` as a child at lower priority, restart it
the way systemd's StartLimitBurst=3 / StartLimitIntervalSec=300 would, and never let its death touch trading.

`restart_decision` is the whole policy, pure (restart times, now, exit code in; restart after a back-off or
give up out): at most 3 restarts within any 300 s (a sliding window, not a lifetime), waiting 1, 2, 4 s
between them; a settings error (the sidecar's exit code 2) is never retried, since it cannot fix itself.
On giving up the bot says so through its own alert channel (the outbox), CRITICAL.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import signal
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from config.settings import PROJECT_ROOT

log = logging.getLogger("polymarket_bot.sidecar")

SIDECAR_NICE = 10
MAX_SIDECAR_RESTARTS = 3
RESTART_WINDOW_SECONDS = 300.0
STOP_GRACE_SECONDS = 12.0
# the sidecar's exit code for invalid settings (config.mcp_config.EXIT_BAD_CONFIG): retrying cannot help
EXIT_BAD_SETTINGS = 2
GIVE_UP_ALERT_KEY = "sidecar-gave-up"


def sidecar_command(python: str = sys.executable, mode: str = "all") -> list[str]:
    """The sidecar's command line; `nice` lowers its CPU priority before Python even starts."""
    command = [python, "-m", "mcp.main_mcp", mode]
    nice = shutil.which("nice")
    return [nice, "-n", str(SIDECAR_NICE), *command] if nice else command


def restart_delay(attempt: int, base: float = 1.0, cap: float = 30.0) -> float:
    """Seconds to wait before restart `attempt` (1-based): 1, 2, 4 … capped."""
    return min(cap, base * 2 ** (attempt - 1))


@dataclass(frozen=True, slots=True)
class RestartPolicy:
    """At most `max_restarts` restarts within any `window_seconds` (StartLimitBurst / StartLimitIntervalSec)."""

    max_restarts: int = MAX_SIDECAR_RESTARTS
    window_seconds: float = RESTART_WINDOW_SECONDS
    base_delay: float = 1.0
    max_delay: float = 30.0


@dataclass(frozen=True, slots=True)
class RestartDecision:
    """Restart after `backoff_seconds`, or give up (`give_up` says why, in words for the operator)."""

    allowed: bool
    backoff_seconds: float = 0.0
    give_up: str | None = None


def restart_decision(
    restarts: Sequence[float], now: float, exit_code: int | None, policy: RestartPolicy = RestartPolicy()
) -> RestartDecision:
    """May the sidecar that just exited with `exit_code` at `now` be restarted, given the earlier restart times?

    Only restarts within the last `window_seconds` count; the n-th restart in the window waits base × 2^(n-1).
    """
    if exit_code == EXIT_BAD_SETTINGS:
        return RestartDecision(
            False, give_up="it refused its settings (exit code 2): a settings error is never retried; fix the settings"
        )
    recent = sum(1 for moment in restarts if now - policy.window_seconds < moment <= now)
    if recent >= policy.max_restarts:
        return RestartDecision(
            False,
            give_up=f"it was already restarted {recent} times in the last {policy.window_seconds:g} s "
            f"(at most {policy.max_restarts})",
        )
    return RestartDecision(True, restart_delay(recent + 1, policy.base_delay, policy.max_delay))


def give_up_message(reason: str, exit_code: int | None) -> str:
    """The CRITICAL alert the bot sends when it stops restarting the sidecar."""
    return (
        f"Sidecar given up: it exited with code {exit_code} and {reason}. Trading continues WITHOUT monitoring "
        "(no health checks, dashboard or sidecar alerts). See LOG_DIR/mcp_servers.log, then start it by hand: "
        "python -m mcp.main_mcp all (or restart the bot)."
    )


# message -> anything; the default sends it through utils.alerts, i.e. the bot's outbox
GiveUpAlert = Callable[[str], Awaitable[Any]]


async def alert_through_outbox(message: str) -> None:
    """🔴 CRITICAL ISSUE through the process's alert manager (outbox first, then Telegram or the log)."""
    # local: the alert manager (the alerting pipeline and its SQLite outbox) loads only when a give-up alert is sent
    from utils.alerts import AlertType, send_alert

    await send_alert(AlertType.CRITICAL_ISSUE, message, "critical", key=GIVE_UP_ALERT_KEY)


@dataclass(slots=True)
class SidecarStatus:
    pid: int | None = None
    starts: int = 0
    restarts: int = 0
    last_exit_code: int | None = None
    gave_up: bool = False
    give_up_reason: str | None = None
    restart_times: list[float] = field(default_factory=list)


class SidecarProcess:
    """Keeps one sidecar child running beside the bot (see `restart_decision` for when it stops trying)."""

    def __init__(
        self,
        command: Sequence[str] | None = None,
        *,
        cwd: Path = PROJECT_ROOT,
        env: dict[str, str] | None = None,
        policy: RestartPolicy = RestartPolicy(),
        alert: GiveUpAlert | None = alert_through_outbox,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.command = list(command) if command is not None else sidecar_command()
        self.cwd = cwd
        self.env = env
        self.policy = policy
        self._alert = alert
        self._clock = clock
        self.status = SidecarStatus()
        self._process: asyncio.subprocess.Process | None = None

    async def run(self, stop: asyncio.Event) -> None:
        """Start the sidecar and restart it when it dies, until `stop` is set or the policy gives up."""
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
                await self._give_up(f"it could not be started ({e})", None)
                return
            self.status.pid = self._process.pid
            self.status.starts += 1
            log.info("sidecar started (pid %d): %s", self._process.pid, " ".join(self.command))
            exit_code = await self._wait_or_stop(stop)
            if stop.is_set():
                return
            self.status.last_exit_code = exit_code
            now = self._clock()
            decision = restart_decision(self.status.restart_times, now, exit_code, self.policy)
            if not decision.allowed:
                await self._give_up(decision.give_up or "the restart policy said so", exit_code)
                return
            self.status.restarts += 1
            self.status.restart_times = [
                *(t for t in self.status.restart_times if now - t < self.policy.window_seconds),
                now,
            ]
            log.warning(
                "sidecar exited with code %s; restart %d (%d/%d in %g s) in %.0f s (trading is not affected)",
                exit_code,
                self.status.restarts,
                len(self.status.restart_times),
                self.policy.max_restarts,
                self.policy.window_seconds,
                decision.backoff_seconds,
            )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=decision.backoff_seconds)

    async def _give_up(self, reason: str, exit_code: int | None) -> None:
        # sent by the bot itself: with the sidecar gone, nothing else would tell the operator
        self.status.gave_up = True
        self.status.give_up_reason = reason
        message = give_up_message(reason, exit_code)
        log.critical("%s", message)
        if self._alert is None:
            return
        try:
            await self._alert(message)
        except Exception:
            # the alert channel failing must not stop the bot; the log line above already says it all
            log.exception("could not send the sidecar give-up alert")

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
