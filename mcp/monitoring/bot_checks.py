"""Checks of the bot, from its risk snapshot and the breaker's state file (both strictly read-only).

main_bot: is the bot alive (its pid) and is its snapshot fresh? trade_executor: trading latency p99
against the budget, the order error rate over a window, the bot's memory. circuit_breaker: the trading
state (HALTED is critical) and the day's loss against DAILY_LOSS_WARNING/CRITICAL_PERCENT.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any

from mcp.monitoring.base import Judge, Reading, overall
from mcp.monitoring.levels import Hysteresis, Level, level_for
from mcp.monitoring.sources import BotStateReader, number
from mcp.monitoring.thresholds import MonitoringLimits


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def last_cleared_trip(history: Any) -> dict[str, Any]:
    """The kind, end time and `cleared_by` of the newest cleared trip in a breaker trip history."""
    entries = history if isinstance(history, list) else []
    for entry in reversed(entries):
        if isinstance(entry, Mapping) and entry.get("cleared_by"):
            return {
                "last_trip_kind": entry.get("kind"),
                "last_cleared_at": entry.get("cleared_at"),
                "last_cleared_by": entry.get("cleared_by"),
            }
    return {"last_trip_kind": None, "last_cleared_at": None, "last_cleared_by": None}


class MainBotCheck:
    """main_bot: critical when the snapshot is missing, unusable or stale, or the bot's pid is gone."""

    def __init__(
        self,
        reader: BotStateReader,
        pid_alive: Callable[[int], bool],
        limits: MonitoringLimits,
        *,
        interval: float,
        warmup: float = 0.0,
        name: str = "main_bot",
    ) -> None:
        self.name = name
        self.interval = interval
        self.warmup = warmup
        self._reader = reader
        self._pid_alive = pid_alive
        self._age_warning, self._age_critical = limits.snapshot_age_seconds

    async def run(self, now: float) -> Mapping[str, Reading]:
        """Read the snapshot, ask whether its pid is alive (off the loop), judge."""
        view = await self._reader.read(now)
        snapshot = view.snapshot
        if snapshot.payload is None:
            # the reader's message says what is wrong and what to do (a missing file: is the bot running?)
            return {self.name: Reading(Level.CRITICAL, str(snapshot.problem))}
        payload = snapshot.payload
        pid = payload.get("pid")
        known_pid = isinstance(pid, int) and not isinstance(pid, bool) and pid > 0
        alive = await asyncio.to_thread(self._pid_alive, pid) if known_pid else None
        updated = number(payload.get("updated_at_epoch"))
        age = None if updated is None else round(max(0.0, now - updated), 3)
        figures = {
            "pid": pid,
            "pid_alive": alive,
            "snapshot_age_seconds": age,
            "stale_after_seconds": self._age_critical,
            "trading_mode": payload.get("trading_mode"),
            "updated_at": payload.get("updated_at"),
        }
        return {self.name: Reading(*self._judge(pid, alive, age), figures)}

    def _judge(self, pid: Any, alive: bool | None, age: float | None) -> tuple[Level, str]:
        if alive is False:
            shown = "unknown" if age is None else f"{age:.0f} s"
            return Level.CRITICAL, f"bot process {pid} is not running (last snapshot {shown} old): restart the bot"
        if age is None:
            return Level.DEGRADED, "risk snapshot has no updated_at_epoch: cannot tell whether it is fresh"
        level = level_for(age, self._age_warning, self._age_critical)
        if level is Level.CRITICAL:
            return level, f"risk snapshot is stale: {age:.0f} s old (stale after {self._age_critical:g} s); bot stuck?"
        if level is Level.DEGRADED:
            return level, f"risk snapshot is {age:.0f} s old (stale after {self._age_critical:g} s)"
        if alive is None:
            return Level.DEGRADED, f"snapshot {age:.1f} s old, but it names no pid: cannot tell whether the bot runs"
        return Level.HEALTHY, f"snapshot {age:.1f} s old, pid {pid} alive"


class ErrorRateWindow:
    """Failed / (executed + failed) orders over the last `window_seconds`, from the bot's running totals."""

    def __init__(self, window_seconds: float, min_attempts: int) -> None:
        self.window_seconds = window_seconds
        self.min_attempts = min_attempts
        self._samples: deque[tuple[float, float, float]] = deque()

    def add(self, now: float, executed: float, failed: float) -> tuple[float | None, int]:
        """Record the totals at `now`; (error rate over the window or None if too few orders, orders in it)."""
        if self._samples and (executed < self._samples[-1][1] or failed < self._samples[-1][2]):
            self._samples.clear()  # totals went down: the bot restarted, its counters with it
        self._samples.append((now, executed, failed))
        # keep one sample at or before the window's start as the baseline of the window
        while len(self._samples) >= 2 and self._samples[1][0] <= now - self.window_seconds:
            self._samples.popleft()
        _, base_executed, base_failed = self._samples[0]
        attempts = int(executed - base_executed + failed - base_failed)
        if attempts < self.min_attempts:
            return None, attempts
        return round((failed - base_failed) / attempts, 6), attempts


class TradeExecutorCheck:
    """trade_executor: latency p99 vs TRADING_LATENCY_BUDGET_MS, error rate, the bot's RSS (with hysteresis)."""

    def __init__(
        self,
        reader: BotStateReader,
        limits: MonitoringLimits,
        *,
        interval: float,
        min_duration: float,
        name: str = "trade_executor",
    ) -> None:
        self.name = name
        self.interval = interval
        self.warmup = min_duration
        self._reader = reader
        self._limits = limits
        self._judge = Judge(
            {
                "latency_p99_ms": Hysteresis(limits.latency_p99_ms, min_duration),
                "error_rate": Hysteresis(limits.error_rate, min_duration),
                "memory_mb": Hysteresis(limits.bot_memory_mb, min_duration),
            }
        )
        self._errors = ErrorRateWindow(limits.error_rate_window_seconds, limits.error_rate_min_attempts)

    async def run(self, now: float) -> Mapping[str, Reading]:
        """Judge the executor's figures in the latest snapshot."""
        snapshot = (await self._reader.read(now)).snapshot
        payload = snapshot.payload
        if payload is None:
            message = f"the executor's figures are unknown (no usable risk snapshot: {snapshot.problem})"
            return {self.name: Reading(Level.DEGRADED, message)}
        latency = _mapping(payload.get("latency_ms"))
        trades = _mapping(payload.get("trades"))
        count = number(latency.get("count")) or 0.0
        p99 = number(latency.get("p99")) if count else None
        executed, failed = number(trades.get("executed")), number(trades.get("failed"))
        rate, attempts = (None, 0) if executed is None or failed is None else self._errors.add(now, executed, failed)
        memory = number(payload.get("rss_mb"))
        figures = {
            "latency_p50_ms": number(latency.get("p50")) if count else None,
            "latency_p95_ms": number(latency.get("p95")) if count else None,
            "latency_p99_ms": p99,
            "latency_count": int(count),
            "budget_ms": self._limits.latency_budget_ms,
            "error_rate": rate,
            "orders_in_error_window": attempts,
            "errors_total": number(_mapping(payload.get("errors")).get("total")),
            "memory_mb": memory,
        }
        levels = {
            "latency": self._judge.level("latency_p99_ms", p99, now),
            "errors": self._judge.level("error_rate", rate, now),
            "memory": self._judge.level("memory_mb", memory, now),
        }
        return {self.name: Reading(overall(list(levels.values())), self._message(levels, figures), figures)}

    def _message(self, levels: Mapping[str, Level | None], figures: Mapping[str, Any]) -> str:
        parts = []
        p99, budget = figures["latency_p99_ms"], figures["budget_ms"]
        parts.append("no trades measured yet" if p99 is None else f"latency p99 {p99:.1f} ms (budget {budget:g} ms)")
        rate = figures["error_rate"]
        if rate is not None:
            parts.append(f"error rate {rate:.1%} over {figures['orders_in_error_window']} orders")
        if figures["memory_mb"] is not None:
            parts.append(f"RSS {figures['memory_mb']:.0f} MB")
        bad = [name for name, level in levels.items() if level is not None and level is not Level.HEALTHY]
        return ("; ".join(parts) + (f" — check {', '.join(bad)}" if bad else "")).strip()


class CircuitBreakerCheck:
    """circuit_breaker: HALTED (in the snapshot or the state file) is critical; daily loss with hysteresis.

    The daily loss is judged as a fraction of the breaker's limit (MAX_DAILY_LOSS) against
    DAILY_LOSS_WARNING_PERCENT / DAILY_LOSS_CRITICAL_PERCENT, which are fractions too (0.12 = 12 %).
    """

    def __init__(
        self,
        reader: BotStateReader,
        limits: MonitoringLimits,
        *,
        max_daily_loss: float,
        interval: float,
        min_duration: float,
        name: str = "circuit_breaker",
    ) -> None:
        self.name = name
        self.interval = interval
        self.warmup = min_duration
        self._reader = reader
        self._limits = limits
        self._max_daily_loss = max_daily_loss
        self._judge = Judge({"daily_loss_fraction": Hysteresis(limits.daily_loss_fraction, min_duration)})

    async def run(self, now: float) -> Mapping[str, Reading]:
        """Judge the trading state and the day's loss."""
        view = await self._reader.read(now)
        breaker_file = view.breaker
        if breaker_file.payload is None and not breaker_file.missing:
            message = f"breaker state file unusable: {breaker_file.problem} (the bot halts on a corrupt file)"
            return {self.name: Reading(Level.CRITICAL, message)}
        snapshot = view.snapshot.payload or {}
        in_snapshot = _mapping(snapshot.get("breaker"))
        on_disk = breaker_file.payload or {}
        states = [s for s in (in_snapshot.get("state"), snapshot.get("trading_state"), on_disk.get("state")) if s]
        if not states:
            return {self.name: Reading(Level.DEGRADED, "no circuit-breaker state yet: no snapshot, no state file")}
        # any source saying HALTED wins: the snapshot can lag the state file by up to a second, and vice versa
        state = "HALTED" if "HALTED" in states else str(states[0])
        record = in_snapshot or on_disk
        loss = number(record.get("daily_loss"))
        limit = (
            number(record.get("daily_loss_limit"))
            or number(_mapping(snapshot.get("risk_parameters")).get("max_daily_loss"))
            or self._max_daily_loss
        )
        fraction = None if loss is None else round(max(0.0, loss) / limit, 6)
        loss_level = self._judge.level("daily_loss_fraction", fraction, now)
        thresholds = self._limits.daily_loss_fraction
        figures = {
            "trading_state": state,
            "trip_kind": record.get("trip_kind") or on_disk.get("trip_kind"),
            "trip_reason": record.get("trip_reason") or on_disk.get("trip_reason"),
            "daily_loss": loss,
            "daily_loss_limit": limit,
            "daily_loss_percent": fraction,
            "warning_percent": thresholds.warning,
            "critical_percent": thresholds.critical,
            # issue 9 (alert rules): which trip this is, and how the last one ended (the bot's own wording)
            "tripped_at": record.get("tripped_at") or on_disk.get("tripped_at"),
            **last_cleared_trip(record.get("trip_history") or on_disk.get("trip_history")),
        }
        return {self.name: Reading(*self._judge_state(state, loss_level, figures), figures)}

    @staticmethod
    def _judge_state(state: str, loss_level: Level | None, figures: Mapping[str, Any]) -> tuple[Level, str]:
        if state == "HALTED":
            reason = figures["trip_reason"] or figures["trip_kind"] or "no reason recorded"
            return Level.CRITICAL, f"trading HALTED: {reason} (new entries blocked; exits still pass)"
        if state != "ACTIVE":
            return Level.CRITICAL, f"unknown trading state {state!r} (expected ACTIVE or HALTED)"
        fraction = figures["daily_loss_percent"]
        if fraction is None:
            return Level.HEALTHY, "trading ACTIVE (daily loss not reported yet)"
        loss, limit = figures["daily_loss"], figures["daily_loss_limit"]
        text = f"trading ACTIVE, daily loss {loss:.2f} USDC = {fraction:.1%} of the {limit:.2f} limit"
        if loss_level is Level.CRITICAL:
            return loss_level, f"{text} (critical at {figures['critical_percent']:.0%})"
        if loss_level is Level.DEGRADED:
            return loss_level, f"{text} (warning at {figures['warning_percent']:.0%})"
        return Level.HEALTHY, text
