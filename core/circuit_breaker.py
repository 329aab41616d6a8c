"""The trading circuit breaker: ACTIVE or HALTED, with its state kept crash-safe on disk.

Trips: the day's loss on equity (realized + unrealized) reaching `max_daily_loss` latches until the next
trading-day boundary (midnight in the configured IANA timezone) or a manual reset; a losing streak of
`consecutive_loss_limit` closing trades and a burst of `error_burst_count` errors within
`error_burst_window_seconds` clear after `cooldown_seconds`. A trip while already HALTED replaces the
current trip only when it is of another kind and would end later (tripping twice = one trip). When a halt
ends, the losing streak and the error burst count start again from zero.

Persistence: every change is written with `utils.atomic.atomic_write_json` before the method returns, so a
restart restores the day, the loss, the counters and any trip. A state file that cannot be read or does not
have the schema halts the breaker (CORRUPT_STATE, manual reset only) and is kept as
`<name>.corrupt-<UTC timestamp>`. A state folder that cannot be written refuses construction
(`BreakerPersistenceError`): the bot must not trade without its risk memory. A write that fails later is
logged at ERROR every time, counted in `get_state()["persist_errors"]` and alerted once per failing
streak, while the breaker keeps enforcing its state in memory and retries on the next call.

The decisions live in `core.breaker_rules` (pure functions); the record and its JSON form in
`core.breaker_state`. The MCP methods only record into the MCP-integration record.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.breaker_io import AlertCallback, AlertDispatcher, BreakerPersistenceError, StateStore, UnusableStateFile
from core.breaker_rules import (
    DEFAULT_MCP_CPU_LIMIT_PERCENT,
    LATCHED_UNTIL_DAY_BOUNDARY,
    MANUAL_RESET_ONLY,
    TradingState,
    TripDecision,
    TripKind,
    daily_loss_trip,
    error_burst_trip,
    errors_in_window,
    evaluate_daily_loss,
    halt_ends_at,
    halt_over,
    losing_streak_trip,
    next_consecutive_losses,
    next_day_boundary,
    positive,
    positive_count,
    require_aware,
    require_finite,
    trading_day_of,
    zone,
)
from core.breaker_state import BreakerRecord, Trip, iso, record_to_json
from core.integrations.rules import critical_coverage_below
from utils.atomic import StateFileError
from utils.secrets import mask_wallet

if TYPE_CHECKING:
    from config.settings import Settings

__all__ = [
    "STATE_FILE_NAME",
    "BreakerPersistenceError",
    "CircuitBreaker",
    "TradingState",
    "TripKind",
    "reset_from_cli",
]

logger = logging.getLogger(__name__)

STATE_FILE_NAME = "circuit_breaker.json"
Clock = Callable[[], datetime]


def utc_now() -> datetime:
    """The production clock."""
    return datetime.now(UTC)


class CircuitBreaker:
    """ACTIVE/HALTED gate for new entries; exits and cancels are never blocked by it."""

    def __init__(
        self,
        max_daily_loss: float,
        wallet_address: str,
        state_file: str | Path,
        cooldown_seconds: float,
        *,
        consecutive_loss_limit: int = 5,
        error_burst_count: int = 5,
        error_burst_window_seconds: float = 60.0,
        timezone: str = "UTC",
        mcp_cpu_limit_percent: float = DEFAULT_MCP_CPU_LIMIT_PERCENT,
        clock: Clock = utc_now,
        alert: AlertCallback | None = None,
    ) -> None:
        self.max_daily_loss = positive("max_daily_loss", max_daily_loss)
        self.cooldown_seconds = positive("cooldown_seconds", cooldown_seconds)
        self.consecutive_loss_limit = positive_count("consecutive_loss_limit", consecutive_loss_limit)
        self.error_burst_count = positive_count("error_burst_count", error_burst_count)
        self.error_burst_window_seconds = positive("error_burst_window_seconds", error_burst_window_seconds)
        self.mcp_cpu_limit_percent = positive("mcp_cpu_limit_percent", mcp_cpu_limit_percent)
        self.timezone = timezone
        self._tz = zone(timezone)
        self.state_file = Path(state_file)
        self._wallet = mask_wallet(wallet_address)
        self._clock = clock
        self._alerts = AlertDispatcher(alert)
        self._store = StateStore(self.state_file)

        now = self._now(None)
        self._record = self._load(now)
        self._refresh(now)
        # --- issue 8 (ledger): a restored figure is re-checked, and a restart can never erase the day's loss
        self._rebase_on_first_equity = self._record.last_equity is not None
        self._recheck_restored(now)
        error = self._write_pending(now)
        if error is not None:
            raise BreakerPersistenceError(
                f"cannot write the circuit-breaker state file {self.state_file}: {error}. Expected a writable "
                "folder (set STATE_DIR or fix its permissions); the bot refuses to trade without persisted risk state"
            ) from error

    @classmethod
    def from_settings(cls, settings: Settings, **overrides: Any) -> CircuitBreaker:
        """A breaker configured from Settings; keyword overrides (clock, alert, state_file, …) win."""
        options: dict[str, Any] = {
            "max_daily_loss": settings.max_daily_loss,
            "wallet_address": settings.wallet_address,
            "state_file": Path(settings.state_dir) / STATE_FILE_NAME,
            "cooldown_seconds": settings.circuit_breaker_cooldown_seconds,
            "consecutive_loss_limit": settings.consecutive_loss_limit,
            "error_burst_count": settings.error_burst_count,
            "error_burst_window_seconds": settings.error_burst_window_seconds,
            "timezone": settings.trading_day_timezone,
            "mcp_cpu_limit_percent": settings.mcp_breaker_cpu_limit_percent,
        }
        options.update(overrides)
        return cls(**options)

    # --- trading state ------------------------------------------------------------------------------

    @property
    def state(self) -> TradingState:
        """ACTIVE or HALTED at clock(), after applying a day rollover or an expired halt."""
        return self._current(None)

    def allows_new_entries(self, now: datetime | None = None) -> bool:
        """False while HALTED. Exits and cancels do not ask: they are always allowed."""
        return self._current(now) is TradingState.ACTIVE

    def update_equity(self, equity: float, now: datetime | None = None) -> TradingState:
        """Record equity (cash + mark-to-market); the day's first figure sets the day's start equity."""
        moment = self._now(now)
        return self._finish(self._equity_decision(equity, moment), moment)

    async def update_equity_async(self, equity: float, now: datetime | None = None) -> TradingState:
        """`update_equity` for the event loop: the state changes at once, the fsync'd write runs in a worker
        thread and is done (durable) when this returns."""
        moment = self._now(now)
        return await self._finish_async(self._equity_decision(equity, moment), moment)

    def _equity_decision(self, equity: float, moment: datetime) -> TripDecision | None:
        equity = require_finite("equity", equity)
        self._refresh(moment)
        record = self._record
        if record.day_start_equity is None:
            record.day_start_equity = equity
        elif self._rebase_on_first_equity:
            record.day_start_equity = restart_day_start(record.day_start_equity, record.last_equity, equity)
        self._rebase_on_first_equity = False
        record.last_equity = equity
        return daily_loss_trip(
            record.day_start_equity,
            equity,
            self.max_daily_loss,
            trading_day=record.trading_day or trading_day_of(moment, self._tz),
            realized_pnl_today=record.realized_pnl_today,
        )

    def record_trade_result(self, realized_pnl: float, now: datetime | None = None) -> TradingState:
        """Record the realized P&L of one closing trade; a long enough losing streak trips the breaker."""
        moment = self._now(now)
        return self._finish(self._result_decision(realized_pnl, moment), moment)

    async def record_trade_result_async(self, realized_pnl: float, now: datetime | None = None) -> TradingState:
        """`record_trade_result` for the event loop (the write runs in a worker thread, durable on return)."""
        moment = self._now(now)
        return await self._finish_async(self._result_decision(realized_pnl, moment), moment)

    def _result_decision(self, realized_pnl: float, moment: datetime) -> TripDecision | None:
        realized_pnl = require_finite("realized_pnl", realized_pnl)
        self._refresh(moment)
        record = self._record
        record.realized_pnl_today += realized_pnl
        record.consecutive_losses = next_consecutive_losses(record.consecutive_losses, realized_pnl)
        return losing_streak_trip(
            record.consecutive_losses, self.consecutive_loss_limit, realized_pnl, self.cooldown_seconds
        )

    def record_error(self, kind: str, now: datetime | None = None) -> TradingState:
        """Record one error (rate_limit, timeout, …); `error_burst_count` within the window trips the breaker."""
        if not isinstance(kind, str) or not kind.strip():
            raise ValueError(f"kind: expected a non-empty error kind such as 'timeout', received {kind!r}")
        moment = self._now(now)
        self._refresh(moment)
        record = self._record
        # only the newest N errors can decide whether N happened within the window
        record.recent_errors = [*record.recent_errors, (moment, kind)][-self.error_burst_count :]
        decision = error_burst_trip(
            record.recent_errors, moment, self.error_burst_window_seconds, self.error_burst_count, self.cooldown_seconds
        )
        return self._finish(decision, moment)

    def reset(self, reason: str = "manual reset", now: datetime | None = None) -> None:
        """Clear any trip and the streak/error counters (the only way to end a daily-loss trip early).

        If today's loss is still at or above the limit, the day's start equity is re-based to the last
        equity (the loss is reported as written off) so that the next update does not trip again at once.
        """
        moment = self._now(now)
        self._refresh(moment)
        record = self._record
        previous = record.trip
        written_off = 0.0
        if record.day_start_equity is not None and record.last_equity is not None:
            decision = evaluate_daily_loss(record.day_start_equity, record.last_equity, self.max_daily_loss)
            if decision.trips:
                written_off = decision.loss
                record.loss_written_off_today += decision.loss
                record.day_start_equity = record.last_equity
        streak, errors = record.consecutive_losses, len(record.recent_errors)
        if previous is not None:
            self._clear(moment, f"manual reset: {reason}")
        record.last_reset = {
            "at": iso(moment),
            "reason": reason,
            "previous_state": str(TradingState.HALTED if previous else TradingState.ACTIVE),
            "previous_trip_kind": str(previous.kind) if previous else None,
            "previous_trip_reason": previous.reason if previous else None,
            "previous_tripped_at": iso(previous.tripped_at) if previous else None,
            "consecutive_losses_cleared": streak,
            "errors_cleared": errors,
            "daily_loss_written_off": written_off,
        }
        record.consecutive_losses = 0
        record.recent_errors = []
        logger.warning("circuit breaker reset (%s); previous trip: %s", reason, previous.kind if previous else "none")
        if previous is None:
            self._notify("info", f"Circuit breaker reset ({reason}); it was already ACTIVE")
        self._write_pending(moment)

    @property
    def trip_history(self) -> list[dict[str, Any]]:
        """The last trips, oldest first: time, kind, reason, figures, halted_until, cleared_at, cleared_by."""
        return [dict(entry) for entry in self._record.trip_history]

    def get_state(self) -> dict[str, Any]:
        """The JSON-safe breaker record at clock() (what the state file holds, plus runtime counters)."""
        moment = self._now(None)
        self._refresh(moment)
        self._write_pending(moment)
        payload = self._full_payload(record_to_json(self._record), moment)
        payload["persist_errors"] = self._store.persist_errors
        return payload

    # --- MCP integration record (never changes the trading state) -----------------------------------

    async def check_mcp_test_coverage(self, coverage: float, threshold: float) -> bool:
        """True iff coverage ≥ threshold (fractions); below 0.8 × threshold is recorded as critical."""
        moment = self._now(None)
        ok = self._record.mcp.record_coverage(coverage, threshold, moment)
        await self._write_pending_async(moment)
        return ok

    async def check_mcp_resource_usage(self, cpu_percent: float, memory_mb: float, limit_mb: float) -> bool:
        """False iff memory_mb > limit_mb or cpu_percent > the breaker's CPU limit (default 5 %)."""
        moment = self._now(None)
        ok = self._record.mcp.record_resources(cpu_percent, memory_mb, limit_mb, self.mcp_cpu_limit_percent, moment)
        await self._write_pending_async(moment)
        return ok

    def get_mcp_integration_state(self) -> dict[str, Any]:
        """The MCP-integration record: enabled flag, threshold, check counts and the last results."""
        mcp = self._record.mcp
        return {
            **mcp.to_json(),
            "critical_coverage_below": critical_coverage_below(mcp.test_coverage_threshold),
            "cpu_limit_percent": self.mcp_cpu_limit_percent,
        }

    async def enable_mcp_integration(self, test_coverage_threshold: float = 0.85) -> None:
        """Mark the MCP integration enabled with this coverage threshold."""
        moment = self._now(None)
        self._record.mcp.enable(test_coverage_threshold, moment)
        await self._write_pending_async(moment)

    async def disable_mcp_integration(self) -> None:
        """Mark the MCP integration disabled (trading is unaffected)."""
        moment = self._now(None)
        self._record.mcp.disable(moment)
        await self._write_pending_async(moment)

    async def drain_alerts(self) -> None:
        """Wait for alert deliveries started from synchronous methods (used at shutdown and by tests)."""
        await self._alerts.drain()

    @property
    def persist_errors(self) -> int:
        """How many state-file writes have failed since start-up."""
        return self._store.persist_errors

    # --- internals ----------------------------------------------------------------------------------

    def _now(self, now: datetime | None) -> datetime:
        return require_aware(now if now is not None else self._clock())

    def _current(self, now: datetime | None) -> TradingState:
        moment = self._now(now)
        self._refresh(moment)
        self._write_pending(moment)
        return self._record.state

    def _load(self, now: datetime) -> BreakerRecord:
        try:
            record, payload = self._store.load(now)
        except UnusableStateFile as e:
            self._record = BreakerRecord(trading_day=trading_day_of(now, self._tz))
            reason = (
                f"state file {self.state_file} is unusable: {e.problem}. The bad file is kept as {e.kept_as.name}; "
                "check it, then run `python main.py --reset-circuit-breaker` to resume trading"
            )
            figures = {"problem": e.problem, "kept_as": str(e.kept_as)}
            self._trip(TripDecision(TripKind.CORRUPT_STATE, reason, figures), now)
            return self._record
        if record is None or payload is None:
            logger.info("no circuit-breaker state at %s: starting ACTIVE with a fresh record", self.state_file)
            return BreakerRecord(trading_day=trading_day_of(now, self._tz))
        record.recent_errors = record.recent_errors[-self.error_burst_count :]
        if payload.get("wallet") not in (None, self._wallet):
            logger.warning(
                "state file %s was kept for wallet %s; restoring it anyway", self.state_file, payload["wallet"]
            )
        logger.info("circuit breaker restored from %s: %s", self.state_file, record.state)
        return record

    def _recheck_restored(self, now: datetime) -> None:
        # a file that says ACTIVE is not believed blindly: its own figures must be within the limits
        record = self._record
        if record.trip is not None or record.day_start_equity is None or record.last_equity is None:
            return
        decision = evaluate_daily_loss(record.day_start_equity, record.last_equity, self.max_daily_loss)
        if not decision.trips:
            return
        reason = (
            f"the restored state file {self.state_file.name} said ACTIVE, but its daily loss {decision.loss:.2f} "
            f"(equity {record.day_start_equity:.2f} at the start of {record.trading_day} → {record.last_equity:.2f}) "
            f"is at or over MAX_DAILY_LOSS {self.max_daily_loss:.2f}; new entries halted until the next trading "
            "day or a manual reset"
        )
        figures = {
            "daily_loss": decision.loss,
            "max_daily_loss": self.max_daily_loss,
            "day_start_equity": record.day_start_equity,
            "equity": record.last_equity,
            "realized_pnl_today": record.realized_pnl_today,
            "restored": True,
        }
        self._trip(TripDecision(TripKind.DAILY_LOSS, reason, figures), now)

    def halt_for_corrupt_ledger(self, problem: str, kept_as: Path) -> None:
        """Halt (manual reset only) because the trade ledger was unusable and has been kept aside."""
        moment = self._now(None)
        reason = (
            f"the trade ledger is unusable: {problem}. The bad file is kept as {kept_as.name}; positions and the "
            "day's P&L could not be restored. Check it, then run `python main.py --reset-circuit-breaker`"
        )
        self._trip(TripDecision(TripKind.CORRUPT_STATE, reason, {"problem": problem, "kept_as": str(kept_as)}), moment)
        self._write_pending(moment)

    def _refresh(self, now: datetime) -> None:
        """Start a new trading day and end an expired halt; a clock that goes back never undoes a day."""
        record = self._record
        day = trading_day_of(now, self._tz)
        if record.trading_day is None or day > record.trading_day:
            if record.trading_day is not None:
                logger.info("new trading day %s (%s): daily loss counting starts again", day, self.timezone)
            record.start_day(day)
        if record.trip is not None and halt_over(record.trip.halted_until, now):
            ended_by = "day boundary" if record.trip.kind in LATCHED_UNTIL_DAY_BOUNDARY else "cooldown"
            self._clear(now, ended_by)

    def _finish(self, decision: TripDecision | None, now: datetime) -> TradingState:
        if decision is not None:
            self._trip(decision, now)
        self._write_pending(now)
        return self._record.state

    async def _finish_async(self, decision: TripDecision | None, now: datetime) -> TradingState:
        if decision is not None:
            self._trip(decision, now)
        state = self._record.state
        await self._write_pending_async(now)
        return state

    def _trip(self, decision: TripDecision, now: datetime) -> None:
        kind, reason = decision.kind, decision.reason
        until = halt_ends_at(kind, now, self._tz, self.cooldown_seconds, self._record.trading_day)
        if not self._record.apply_trip(
            Trip(kind, reason, tripped_at=now, halted_until=until, figures=decision.figures)
        ):
            return  # already halted at least as long: tripping twice is one trip
        severe = kind in LATCHED_UNTIL_DAY_BOUNDARY | MANUAL_RESET_ONLY
        logger.log(logging.CRITICAL if severe else logging.WARNING, "circuit breaker HALTED (%s): %s", kind, reason)
        self._notify("critical" if severe else "warning", f"Circuit breaker HALTED ({kind}): {reason}")

    def _clear(self, now: datetime, cleared_by: str) -> None:
        trip = self._record.clear_trip(now, cleared_by)
        if trip is not None:
            logger.warning("circuit breaker ACTIVE again: %s trip cleared by %s", trip.kind, cleared_by)
            self._notify("info", f"Circuit breaker {trip.kind} halt ended ({cleared_by}); trading state ACTIVE")

    def _full_payload(self, core: dict[str, Any], now: datetime) -> dict[str, Any]:
        record = self._record
        times = [at for at, _ in record.recent_errors]
        day = record.trading_day
        return {
            **core,
            "daily_loss": record.daily_loss,
            "daily_loss_limit": self.max_daily_loss,
            "unrealized_pnl": record.unrealized_pnl,
            "consecutive_loss_limit": self.consecutive_loss_limit,
            "cooldown_seconds": self.cooldown_seconds,
            "error_burst_count": self.error_burst_count,
            "error_burst_window_seconds": self.error_burst_window_seconds,
            "errors_in_window": len(errors_in_window(times, now, self.error_burst_window_seconds)),
            "timezone": self.timezone,
            "next_day_boundary": iso(next_day_boundary(day, self._tz)) if day else None,
            "mcp_integration": self.get_mcp_integration_state(),
            "wallet": self._wallet,
            "as_of": iso(now),
        }

    def _write_pending(self, now: datetime) -> OSError | StateFileError | None:
        version, payload = self._store.prepare(record_to_json(self._record), lambda core: self._full_payload(core, now))
        if payload is None:
            return None
        error = self._store.write(version, payload)
        self._settle(error)
        return error

    async def _write_pending_async(self, now: datetime) -> None:
        version, payload = self._store.prepare(record_to_json(self._record), lambda core: self._full_payload(core, now))
        if payload is not None:
            # the MCP methods run on the event loop: the fsync'd write goes to a worker thread
            self._settle(await asyncio.to_thread(self._store.write, version, payload))

    def _settle(self, error: OSError | StateFileError | None) -> None:
        if self._store.settle(error):
            self._notify("error", f"Circuit-breaker state cannot be written to {self.state_file}: {error}")

    def _notify(self, severity: str, message: str) -> None:
        self._alerts.notify(severity, message)


def restart_day_start(day_start_equity: float, last_equity: float | None, equity: float) -> float:
    """The day's start equity after a restart's first equity figure: a jump up is not profit.

    Across a restart the account can look richer than it was (a paper account that was not restored, a
    deposit): that gap is added to the day's start so it cannot erase the day's loss; a jump down is
    left to count as loss.
    """
    if last_equity is None or equity <= last_equity:
        return day_start_equity
    return day_start_equity + (equity - last_equity)


def reset_from_cli(settings: Settings) -> str:
    """Load the breaker from STATE_DIR, reset it, persist, and say what was cleared (`--reset-circuit-breaker`)."""
    breaker = CircuitBreaker.from_settings(settings)
    before = breaker.get_state()
    failures = breaker.persist_errors
    breaker.reset("manual reset from the command line (python main.py --reset-circuit-breaker)")
    if breaker.persist_errors > failures:
        raise BreakerPersistenceError(
            f"the reset could not be written to {breaker.state_file}; the breaker stays as it was on disk "
            f"({before['state']}). Make the folder writable and run the command again"
        )
    after = breaker.get_state()
    reset = after["last_reset"] or {}
    lines = [f"Circuit breaker reset: {breaker.state_file} now says {after['state']}."]
    if before["trip_kind"] is not None:
        lines.append(
            f"Previous state: HALTED by {before['trip_kind']} since {before['tripped_at']}: {before['trip_reason']}"
        )
    else:
        lines.append("Previous state: ACTIVE (no trip to clear).")
    lines.append(
        f"Cleared: losing streak {reset.get('consecutive_losses_cleared', 0)}, "
        f"recent errors {reset.get('errors_cleared', 0)}, "
        f"daily loss written off {reset.get('daily_loss_written_off', 0.0):.2f}."
    )
    return "\n".join(lines)
