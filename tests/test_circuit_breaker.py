"""CircuitBreaker: trips, latch vs cooldown, day boundaries in several timezones, reset, history, inputs, alerts.

Every test moves an injected clock; nothing sleeps. State files live under tmp_path.
"""

from __future__ import annotations

import logging
import math
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from core.breaker_rules import TradingState
from tests.circuit_breaker_support import T0, WALLET, AlertRecorder, FakeClock, make_breaker, on_disk

INTERFACE_KEYS = {
    "state",
    "trip_kind",
    "trip_reason",
    "tripped_at",
    "halted_until",
    "daily_loss",
    "daily_loss_limit",
    "day_start_equity",
    "realized_pnl_today",
    "unrealized_pnl",
    "consecutive_losses",
    "trading_day",
    "trip_history",
    "mcp_integration",
    "wallet",
    "schema_version",
}


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(T0)


@pytest.fixture
def state_file(tmp_path: Path) -> Path:
    return tmp_path / "state" / "circuit_breaker.json"


# --- fresh start -------------------------------------------------------------------------------------


def test_missing_file_starts_active_and_writes_a_versioned_record(state_file: Path, clock: FakeClock) -> None:
    breaker = make_breaker(state_file, clock)

    assert breaker.state is TradingState.ACTIVE
    assert breaker.allows_new_entries()
    stored = on_disk(state_file)
    assert stored["schema_version"] == 1
    assert stored["state"] == "ACTIVE"
    assert stored["trading_day"] == "2026-03-02"
    assert set(breaker.get_state()) >= INTERFACE_KEYS


def test_wallet_is_masked_everywhere(state_file: Path, clock: FakeClock) -> None:
    breaker = make_breaker(state_file, clock)
    breaker.update_equity(1000.0)

    assert breaker.get_state()["wallet"] == "***c0ffee"
    assert WALLET not in state_file.read_text(encoding="utf-8")
    assert WALLET.lower()[2:] not in state_file.read_text(encoding="utf-8").lower()


# --- daily loss: latched until the day boundary ---------------------------------------------------------


def test_daily_loss_below_the_limit_does_not_trip(state_file: Path, clock: FakeClock) -> None:
    breaker = make_breaker(state_file, clock)
    breaker.update_equity(1000.0)

    assert breaker.update_equity(900.01) is TradingState.ACTIVE
    assert breaker.get_state()["daily_loss"] == pytest.approx(99.99)


def test_daily_loss_at_the_limit_trips_and_records_the_figures(state_file: Path, clock: FakeClock) -> None:
    breaker = make_breaker(state_file, clock)
    breaker.update_equity(1000.0)
    breaker.record_trade_result(-40.0)

    assert breaker.update_equity(900.0) is TradingState.HALTED
    state = breaker.get_state()
    assert state["trip_kind"] == "daily_loss"
    assert "daily loss 100.00 reached the limit 100.00" in state["trip_reason"]
    assert state["halted_until"] == "2026-03-03T00:00:00+00:00"
    assert state["daily_loss"] == 100.0
    assert state["realized_pnl_today"] == -40.0
    assert state["unrealized_pnl"] == -60.0
    assert state["trip_figures"]["day_start_equity"] == 1000.0
    assert state["trip_figures"]["equity"] == 900.0
    assert not breaker.allows_new_entries()


def test_daily_loss_latches_past_the_cooldown_until_midnight(state_file: Path, clock: FakeClock) -> None:
    breaker = make_breaker(state_file, clock, cooldown_seconds=60.0)
    breaker.update_equity(1000.0)
    breaker.update_equity(850.0)

    clock.set(datetime(2026, 3, 2, 23, 59, 59, 999999, tzinfo=UTC))
    breaker.update_equity(1200.0)  # recovering equity does not lift the latch either
    assert breaker.state is TradingState.HALTED

    clock.set(datetime(2026, 3, 3, 0, 0, tzinfo=UTC))
    assert breaker.state is TradingState.ACTIVE
    state = breaker.get_state()
    assert state["trading_day"] == "2026-03-03"
    assert state["day_start_equity"] is None  # the next equity figure starts the new day
    assert state["trip_history"][-1]["cleared_by"] == "day boundary"


@pytest.mark.parametrize(
    ("timezone", "trip_at_utc", "boundary_utc"),
    [
        # New York, winter: local midnight is 05:00 UTC
        ("America/New_York", datetime(2026, 3, 2, 20, 0, tzinfo=UTC), datetime(2026, 3, 3, 5, 0, tzinfo=UTC)),
        # New York, 2026-03-08 has 23 hours: the next midnight is already EDT, 04:00 UTC
        ("America/New_York", datetime(2026, 3, 8, 16, 0, tzinfo=UTC), datetime(2026, 3, 9, 4, 0, tzinfo=UTC)),
        # New York, 2026-11-01 has 25 hours: the next midnight is EST again, 05:00 UTC
        ("America/New_York", datetime(2026, 11, 1, 17, 0, tzinfo=UTC), datetime(2026, 11, 2, 5, 0, tzinfo=UTC)),
        # 23:30 in New York on March 7 is 04:30 UTC on March 8: the boundary is half an hour away
        ("America/New_York", datetime(2026, 3, 8, 4, 30, tzinfo=UTC), datetime(2026, 3, 8, 5, 0, tzinfo=UTC)),
        ("Asia/Kolkata", datetime(2026, 3, 2, 10, 0, tzinfo=UTC), datetime(2026, 3, 2, 18, 30, tzinfo=UTC)),
    ],
)
def test_daily_loss_clears_at_midnight_of_the_configured_timezone(
    tmp_path: Path, timezone: str, trip_at_utc: datetime, boundary_utc: datetime
) -> None:
    clock = FakeClock(trip_at_utc)
    breaker = make_breaker(tmp_path / "cb.json", clock, timezone=timezone)
    breaker.update_equity(500.0)
    breaker.update_equity(380.0)

    assert breaker.get_state()["halted_until"] == boundary_utc.isoformat()
    assert breaker.allows_new_entries(boundary_utc - timedelta(microseconds=1)) is False
    assert breaker.allows_new_entries(boundary_utc) is True
    local_day = boundary_utc.astimezone(ZoneInfo(timezone)).date()
    assert breaker.get_state()["trading_day"] == local_day.isoformat()


def test_a_new_day_counts_loss_from_its_own_start_equity(state_file: Path, clock: FakeClock) -> None:
    breaker = make_breaker(state_file, clock)
    breaker.update_equity(1000.0)
    breaker.update_equity(920.0)
    clock.advance(hours=12)  # 02:00 the next day

    assert breaker.update_equity(900.0) is TradingState.ACTIVE
    assert breaker.get_state()["day_start_equity"] == 900.0
    assert breaker.update_equity(801.0) is TradingState.ACTIVE
    assert breaker.update_equity(800.0) is TradingState.HALTED


def test_a_clock_that_steps_back_does_not_undo_the_day(state_file: Path, clock: FakeClock) -> None:
    breaker = make_breaker(state_file, clock)
    clock.advance(hours=12)
    breaker.update_equity(1000.0)
    clock.advance(hours=-12)  # an NTP step back across midnight

    breaker.update_equity(950.0)
    state = breaker.get_state()
    assert state["trading_day"] == "2026-03-03"
    assert state["day_start_equity"] == 1000.0


# --- consecutive losses and error bursts: cleared by the cooldown ----------------------------------------


def test_losing_streak_trips_and_a_win_or_breakeven_behaves(state_file: Path, clock: FakeClock) -> None:
    breaker = make_breaker(state_file, clock)
    breaker.record_trade_result(-1.0)
    breaker.record_trade_result(-1.0)
    breaker.record_trade_result(2.0)  # a win ends the streak
    breaker.record_trade_result(-1.0)
    breaker.record_trade_result(0.0)  # break-even neither extends nor ends it
    assert breaker.record_trade_result(-1.0) is TradingState.ACTIVE
    assert breaker.get_state()["consecutive_losses"] == 2

    assert breaker.record_trade_result(-0.01) is TradingState.HALTED
    state = breaker.get_state()
    assert state["trip_kind"] == "consecutive_losses"
    assert state["trip_figures"] == {"consecutive_losses": 3, "consecutive_loss_limit": 3, "last_realized_pnl": -0.01}
    assert state["realized_pnl_today"] == pytest.approx(-2.01)


def test_cooldown_trip_clears_after_cooldown_seconds_and_the_streak_restarts(
    state_file: Path, clock: FakeClock
) -> None:
    breaker = make_breaker(state_file, clock, cooldown_seconds=600.0)
    for _ in range(3):
        breaker.record_trade_result(-5.0)
    tripped_at = clock.now

    assert breaker.allows_new_entries(tripped_at + timedelta(seconds=599.999)) is False
    assert breaker.allows_new_entries(tripped_at + timedelta(seconds=600)) is True
    clock.set(tripped_at + timedelta(seconds=600))
    assert breaker.get_state()["consecutive_losses"] == 0
    assert breaker.record_trade_result(-5.0) is TradingState.ACTIVE
    assert breaker.trip_history[-1]["cleared_by"] == "cooldown"


def test_error_burst_trips_only_within_the_window(state_file: Path, clock: FakeClock) -> None:
    breaker = make_breaker(state_file, clock)
    breaker.record_error("timeout")
    clock.advance(30)
    breaker.record_error("rate_limit")
    clock.advance(30)  # the first error is now exactly 60 s old: outside the window
    assert breaker.record_error("timeout") is TradingState.ACTIVE
    assert breaker.get_state()["errors_in_window"] == 2

    clock.advance(1)
    assert breaker.record_error("network") is TradingState.HALTED
    state = breaker.get_state()
    assert state["trip_kind"] == "error_burst"
    assert state["trip_figures"]["kinds"] == {"network": 1, "rate_limit": 1, "timeout": 1}
    assert state["halted_until"] == (clock.now + timedelta(hours=1)).isoformat()

    clock.advance(hours=1)
    assert breaker.state is TradingState.ACTIVE
    assert breaker.record_error("timeout") is TradingState.ACTIVE  # the burst counter started again


def test_record_error_keeps_only_the_errors_that_can_matter(state_file: Path, clock: FakeClock) -> None:
    breaker = make_breaker(state_file, clock, error_burst_count=3)
    for _ in range(10):
        clock.advance(120)
        breaker.record_error("timeout")

    assert len(breaker.get_state()["recent_errors"]) == 3


# --- tripping while halted, history ---------------------------------------------------------------------


def test_tripping_twice_is_one_trip(state_file: Path, clock: FakeClock) -> None:
    breaker = make_breaker(state_file, clock)
    breaker.update_equity(1000.0)
    for equity in (890.0, 880.0, 700.0):
        clock.advance(60)
        breaker.update_equity(equity)

    assert [entry["kind"] for entry in breaker.trip_history] == ["daily_loss"]


def test_a_longer_halt_supersedes_a_shorter_one(state_file: Path, clock: FakeClock) -> None:
    breaker = make_breaker(state_file, clock, cooldown_seconds=600.0)
    breaker.update_equity(1000.0)
    for _ in range(3):
        breaker.record_trade_result(-10.0)
    assert breaker.get_state()["trip_kind"] == "consecutive_losses"

    breaker.update_equity(880.0)  # the daily-loss latch ends at midnight, later than the cooldown

    state = breaker.get_state()
    assert state["trip_kind"] == "daily_loss"
    assert [entry["kind"] for entry in state["trip_history"]] == ["consecutive_losses", "daily_loss"]
    assert state["trip_history"][0]["cleared_by"] == "superseded by daily_loss"


def test_a_shorter_halt_does_not_replace_a_longer_one(state_file: Path, clock: FakeClock) -> None:
    breaker = make_breaker(state_file, clock, cooldown_seconds=60.0)
    breaker.update_equity(1000.0)
    breaker.update_equity(800.0)
    for _ in range(3):
        breaker.record_error("timeout")

    assert breaker.get_state()["trip_kind"] == "daily_loss"
    assert len(breaker.trip_history) == 1


def test_trip_history_keeps_the_last_fifty(state_file: Path, clock: FakeClock) -> None:
    breaker = make_breaker(state_file, clock, cooldown_seconds=1.0, consecutive_loss_limit=1)
    for index in range(60):
        clock.advance(2)
        breaker.record_trade_result(-float(index + 1))

    history = breaker.trip_history
    assert len(history) == 50
    assert history[-1]["figures"]["last_realized_pnl"] == -60.0
    assert history[0]["figures"]["last_realized_pnl"] == -11.0
    assert set(history[0]) >= {"time", "kind", "reason", "figures", "halted_until", "cleared_at", "cleared_by"}


# --- manual reset ---------------------------------------------------------------------------------------


def test_manual_reset_clears_a_daily_loss_latch_and_rebases_the_day(state_file: Path, clock: FakeClock) -> None:
    breaker = make_breaker(state_file, clock)
    breaker.update_equity(1000.0)
    breaker.update_equity(870.0)
    clock.advance(60)

    breaker.reset("operator checked the positions")

    state = breaker.get_state()
    assert state["state"] == "ACTIVE"
    assert state["day_start_equity"] == 870.0
    assert state["daily_loss_written_off"] == pytest.approx(130.0)
    assert state["last_reset"]["previous_trip_kind"] == "daily_loss"
    assert state["last_reset"]["reason"] == "operator checked the positions"
    assert state["trip_history"][-1]["cleared_by"] == "manual reset: operator checked the positions"
    assert breaker.update_equity(870.0) is TradingState.ACTIVE  # no instant re-trip
    assert breaker.update_equity(770.0) is TradingState.HALTED  # a fresh allowance, not an unlimited one
    assert on_disk(state_file)["state"] == "HALTED"


def test_reset_clears_counters_even_when_active(state_file: Path, clock: FakeClock) -> None:
    breaker = make_breaker(state_file, clock)
    breaker.record_trade_result(-1.0)
    breaker.record_trade_result(-1.0)
    breaker.record_error("timeout")

    breaker.reset()

    last_reset = on_disk(state_file)["last_reset"]
    assert last_reset["previous_state"] == "ACTIVE"
    assert (last_reset["consecutive_losses_cleared"], last_reset["errors_cleared"]) == (2, 1)
    assert breaker.get_state()["consecutive_losses"] == 0


# --- input checks ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda b: b.update_equity(math.nan), "equity: expected a finite number"),
        (lambda b: b.update_equity("1000"), "equity: expected a number"),
        (lambda b: b.record_trade_result(math.inf), "realized_pnl: expected a finite number"),
        (lambda b: b.record_error(""), "non-empty error kind"),
        (lambda b: b.update_equity(1.0, now=datetime(2026, 3, 2, 12, 0)), "timezone-aware"),
    ],
)
def test_bad_inputs_are_refused_with_what_was_expected(
    state_file: Path, clock: FakeClock, call: Any, message: str
) -> None:
    breaker = make_breaker(state_file, clock)
    with pytest.raises((ValueError, TypeError), match=message):
        call(breaker)
    assert breaker.state is TradingState.ACTIVE


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"timezone": "Mars/Olympus_Mons"}, "IANA timezone"),
        ({"max_daily_loss": 0.0}, "max_daily_loss: expected a number > 0"),
        ({"consecutive_loss_limit": 0}, "consecutive_loss_limit: expected an integer"),
        ({"cooldown_seconds": math.nan}, "cooldown_seconds: expected a finite number"),
    ],
)
def test_bad_configuration_is_refused(state_file: Path, clock: FakeClock, overrides: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make_breaker(state_file, clock, **overrides)
    assert not state_file.exists()


# --- alerts ---------------------------------------------------------------------------------------------


async def test_trips_and_clears_are_alerted_from_the_event_loop(state_file: Path, clock: FakeClock) -> None:
    alerts = AlertRecorder()
    breaker = make_breaker(state_file, clock, alert=alerts, cooldown_seconds=60.0)
    for _ in range(3):
        breaker.record_error("timeout")
    clock.advance(60)
    assert breaker.state is TradingState.ACTIVE
    breaker.update_equity(1000.0)
    breaker.update_equity(500.0)
    await breaker.drain_alerts()

    assert alerts.severities() == ["warning", "info", "critical"]
    assert "HALTED (error_burst)" in alerts.sent[0][1]


async def test_a_broken_alert_channel_never_breaks_the_breaker(
    state_file: Path, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    async def broken(severity: str, message: str) -> None:
        raise ConnectionError("telegram unreachable")

    breaker = make_breaker(state_file, clock, alert=broken)
    breaker.update_equity(1000.0)
    assert breaker.update_equity(10.0) is TradingState.HALTED
    with caplog.at_level(logging.ERROR, logger="core.circuit_breaker"):
        await breaker.drain_alerts()

    assert any("could not be delivered" in r.getMessage() for r in caplog.records)
