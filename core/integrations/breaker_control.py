"""Applies the MCP breaker's pure transitions: keeps the current record, persists it, sends the alerts.

The state machine itself is in mcp_breaker.py; this is the edge where its events become a file on disk
and a message to an operator. An alert channel that fails or hangs is logged and counted, never raised:
the breaker's state is what matters, and it is already saved by then.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

from core.integrations.mcp_breaker import (
    MAX_FAILED_RECOVERIES,
    BreakerEvent,
    BreakerRecord,
    BreakerStore,
    Step,
    advance,
    describe,
    reset,
    trip,
)
from utils import alerts

log = logging.getLogger(__name__)

# (alert type name from utils.alerts.AlertType or "", message, severity) -> anything
AlertSender = Callable[[str, str, str], Awaitable[Any]]


async def send_via_alerts_module(alert_type: str, message: str, severity: str) -> None:
    """Default alert channel: utils.alerts (Telegram, or the log without a token)."""
    kind = getattr(alerts.AlertType, alert_type, None) if alert_type else None
    if kind is None:
        await alerts.send_telegram_alert(message, severity=severity)
    else:
        await alerts.send_alert(kind, message, severity)


_EVENT_ALERTS: dict[BreakerEvent, tuple[str, str]] = {
    BreakerEvent.TRIPPED: ("CIRCUIT_BREAKER_TRIPPED", "warning"),
    BreakerEvent.RECOVERY_FAILED: ("CIRCUIT_BREAKER_TRIPPED", "warning"),
    BreakerEvent.LOCKED_OUT: ("CRITICAL_ISSUE", "critical"),
    BreakerEvent.RECOVERED: ("", "info"),
    BreakerEvent.RESET: ("", "info"),
}


def event_message(step: Step) -> str:
    """The operator's message for a transition."""
    record = step.record
    if step.event is BreakerEvent.TRIPPED:
        return f"MCP circuit breaker tripped: {record.reason}. Scans and test runs are deferred; trading goes on."
    if step.event is BreakerEvent.RECOVERY_FAILED:
        return (
            f"MCP circuit breaker recovery {record.failed_recoveries}/{MAX_FAILED_RECOVERIES} failed: "
            f"{record.last_failure_reason}. Next trial after the cooldown."
        )
    if step.event is BreakerEvent.LOCKED_OUT:
        return (
            f"MCP circuit breaker stays open after {MAX_FAILED_RECOVERIES} failed recoveries (last: "
            f"{record.last_failure_reason}; tripped: {record.reason}). Reset it by hand: dashboard, Telegram "
            "/reset_mcp or the CLI."
        )
    if step.event is BreakerEvent.RECOVERED:
        return "MCP circuit breaker closed after a healthy check; scans and test runs resume outside market hours."
    return f"MCP circuit breaker {step.event}; scans and test runs resume outside market hours."


class BreakerController:
    """The live MCP breaker of one process: the state file's record + alerts.

    The file is the truth (see `BreakerStore`): every change is a transition applied under the file lock
    to the record on disk, and `refresh` re-reads the file whenever another process changed it, so a trip
    or reset made anywhere is what this process decides on next.
    """

    def __init__(
        self,
        store: BreakerStore,
        *,
        cooldown_seconds: float,
        alert: AlertSender = send_via_alerts_module,
        alert_timeout_seconds: float = 10.0,
    ) -> None:
        self.store = store
        self.cooldown_seconds = cooldown_seconds
        self._alert = alert
        self._alert_timeout = alert_timeout_seconds
        # a small file read once at start, like the trading breaker's; a corrupt file starts it open
        self.record, problem = store.load()
        self._pending: list[tuple[str, str, str]] = []
        self._note_problem(problem)
        self._changing = asyncio.Lock()
        self.reloads = 0
        self._sync_problem: str | None = None
        self.alerts_sent = 0
        self.alert_failures = 0

    @property
    def version(self) -> int:
        """The version of the state file this process last read or wrote (0: never written)."""
        return self.store.version

    def _note_problem(self, problem: str | None) -> None:
        if problem:
            self._pending.append(("CRITICAL_ISSUE", f"MCP circuit breaker starts open: {problem}", "error"))

    def sync(self) -> bool:
        """Re-read the state file if another process changed it (blocking: a stat, a read when changed)."""
        try:
            fresh = self.store.reload_if_changed()
        except OSError as e:
            problem = f"{e.strerror or e}"
            if problem != self._sync_problem:  # once per distinct problem: this runs every half second
                log.error("cannot check the MCP breaker file %s (%s); keeping the last state read", self.store.path, e)
            self._sync_problem = problem
            return False
        self._sync_problem = None
        if fresh is None:
            return False
        self.record, problem = fresh
        self._note_problem(problem)
        self.reloads += 1
        return True

    async def refresh(self) -> bool:
        """`sync` off the event loop: True when the file had changed and was re-read."""
        return await asyncio.to_thread(self.sync)

    def current(self, now: datetime) -> BreakerRecord:
        """The record as of `now` (cooldown applied), without persisting anything."""
        return advance(self.record, now, self.cooldown_seconds).record

    def describe(self, now: datetime) -> dict[str, Any]:
        """JSON summary as of `now`, with the state file's version."""
        return {**describe(self.current(now), now, self.cooldown_seconds), "version": self.version}

    async def catch_up(self, now: datetime) -> None:
        """Re-read the file if it changed, persist an expired cooldown (open → half-open), send queued alerts."""
        await self.refresh()
        if advance(self.record, now, self.cooldown_seconds).event is not BreakerEvent.NONE:
            await self.update(lambda record: advance(record, now, self.cooldown_seconds))
        pending, self._pending = self._pending, []
        for alert_type, message, severity in pending:
            await self.notify(alert_type, message, severity)

    async def trip(self, reason: str, now: datetime) -> None:
        """Open the breaker (idempotent, judged on the record on disk)."""
        await self.catch_up(now)
        await self.update(lambda record: trip(record, reason, now))

    async def reset(self, by: str, now: datetime) -> None:
        """Close the breaker by hand (judged on the record on disk: a trip by another process is reset too)."""
        await self.update(lambda record: reset(record, now, by))

    async def update(self, transition: Callable[[BreakerRecord], Step]) -> Step:
        """Apply `transition` to the file's record under its lock (off the loop), make it current, alert."""
        async with self._changing:
            try:
                step, problem = await asyncio.to_thread(self.store.update, transition)
            except OSError as e:
                step, problem = transition(self.record), None
                if step.event is not BreakerEvent.NONE:
                    log.error(
                        "could not persist the MCP circuit breaker to %s (%s); it stays %s in memory (here only)",
                        self.store.path,
                        e.strerror or e,
                        step.record.state,
                    )
            self.record = step.record
            self._note_problem(problem)
        if step.event is BreakerEvent.NONE:
            return step
        log.warning("MCP circuit breaker %s: state=%s reason=%s", step.event, step.record.state, step.record.reason)
        alert = _EVENT_ALERTS.get(step.event)
        if alert is not None:
            await self.notify(alert[0], event_message(step), alert[1])
        return step

    async def notify(self, alert_type: str, message: str, severity: str) -> None:
        """Send one alert; a failing or hanging channel is logged and counted, never raised."""
        try:
            await asyncio.wait_for(self._alert(alert_type, message, severity), timeout=self._alert_timeout)
            self.alerts_sent += 1
        except TimeoutError:
            self.alert_failures += 1
            log.error("alert not confirmed within %.0f s (it is logged here): %s", self._alert_timeout, message)
        except Exception:
            self.alert_failures += 1
            log.exception("alert failed (it is logged here): %s", message)
