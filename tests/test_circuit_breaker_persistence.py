"""CircuitBreaker persistence: a restart restores risk, writes happen only on change, write failures are
survived and reported, and the `--reset-circuit-breaker` CLI resets what is on disk.
"""

from __future__ import annotations

import logging
import os
from datetime import timedelta
from pathlib import Path

import pytest

from config.settings import Settings
from core.breaker_rules import TradingState
from core.circuit_breaker import STATE_FILE_NAME, BreakerPersistenceError, CircuitBreaker, reset_from_cli
from tests.circuit_breaker_support import T0, WALLET, AlertRecorder, FakeClock, make_breaker, on_disk


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(T0)


@pytest.fixture
def state_file(tmp_path: Path) -> Path:
    return tmp_path / "state" / "circuit_breaker.json"


# --- restart restores risk ------------------------------------------------------------------------------


def test_restart_restores_the_day_the_loss_and_the_counters(state_file: Path, clock: FakeClock) -> None:
    first = make_breaker(state_file, clock)
    first.update_equity(1000.0)
    first.record_trade_result(-5.0)
    first.record_trade_result(-5.0)
    first.record_error("timeout")
    first.record_error("timeout")
    first.update_equity(950.0)
    clock.advance(10)

    second = make_breaker(state_file, clock)
    state = second.get_state()
    assert (state["day_start_equity"], state["daily_loss"], state["realized_pnl_today"]) == (1000.0, 50.0, -10.0)
    assert state["consecutive_losses"] == 2
    assert state["errors_in_window"] == 2
    assert second.record_trade_result(-1.0) is TradingState.HALTED  # the streak survived the restart
    assert make_breaker(state_file, clock).get_state()["trip_kind"] == "consecutive_losses"


async def test_the_async_variants_decide_like_the_sync_ones_and_are_durable_on_return(
    tmp_path: Path, clock: FakeClock
) -> None:
    """update_equity_async / record_trade_result_async: same decisions, the write done in a worker thread."""
    sync = make_breaker(tmp_path / "sync" / STATE_FILE_NAME, clock)
    off_loop = make_breaker(tmp_path / "async" / STATE_FILE_NAME, clock)
    steps = [("equity", 1000.0), ("result", -5.0), ("equity", 990.0), ("result", -5.0), ("result", -5.0)]
    for kind, value in steps:
        if kind == "equity":
            expected, got = sync.update_equity(value), await off_loop.update_equity_async(value)
        else:
            expected, got = sync.record_trade_result(value), await off_loop.record_trade_result_async(value)
        assert got is expected
        # durable when the await returns: a new process reading the file sees this very step
        assert on_disk(off_loop.state_file)["realized_pnl_today"] == sync.get_state()["realized_pnl_today"]
    assert off_loop.state is TradingState.HALTED
    assert on_disk(off_loop.state_file)["trip_kind"] == "consecutive_losses"
    assert make_breaker(off_loop.state_file, clock).state is TradingState.HALTED


def test_restart_keeps_the_error_burst_window(state_file: Path, clock: FakeClock) -> None:
    first = make_breaker(state_file, clock)
    first.record_error("timeout")
    first.record_error("timeout")
    clock.advance(5)

    assert make_breaker(state_file, clock).record_error("timeout") is TradingState.HALTED


def test_restart_keeps_a_trip(state_file: Path, clock: FakeClock) -> None:
    first = make_breaker(state_file, clock)
    first.update_equity(1000.0)
    first.update_equity(800.0)
    before = first.get_state()
    clock.advance(hours=2)

    second = make_breaker(state_file, clock)
    after = second.get_state()
    assert second.state is TradingState.HALTED
    for key in ("trip_kind", "trip_reason", "tripped_at", "halted_until", "trip_figures", "trip_history"):
        assert after[key] == before[key]


def test_restart_on_a_new_day_starts_it_and_lets_the_boundary_clear_the_latch(
    state_file: Path, clock: FakeClock
) -> None:
    first = make_breaker(state_file, clock)
    first.update_equity(1000.0)
    first.record_trade_result(-1.0)
    first.update_equity(850.0)
    clock.advance(days=1)

    second = make_breaker(state_file, clock)
    state = second.get_state()
    assert state["state"] == "ACTIVE"
    assert state["trading_day"] == "2026-03-03"
    assert state["day_start_equity"] is None
    assert state["realized_pnl_today"] == 0.0
    assert state["trip_history"][-1]["cleared_by"] == "day boundary"


def test_restart_within_a_cooldown_stays_halted_until_it_ends(state_file: Path, clock: FakeClock) -> None:
    first = make_breaker(state_file, clock, cooldown_seconds=900.0)
    for _ in range(3):
        first.record_error("network")
    ends = clock.now + timedelta(seconds=900)
    clock.advance(300)

    second = make_breaker(state_file, clock, cooldown_seconds=900.0)
    assert second.allows_new_entries(ends - timedelta(seconds=1)) is False
    assert second.allows_new_entries(ends) is True


# --- persistence: only on change, failures --------------------------------------------------------------


def test_nothing_is_written_when_nothing_changed(state_file: Path, clock: FakeClock) -> None:
    breaker = make_breaker(state_file, clock)
    breaker.update_equity(1000.0)
    before = os.stat(state_file)

    for _ in range(5):
        assert breaker.state is TradingState.ACTIVE
        breaker.allows_new_entries()
        breaker.get_state()
        breaker.update_equity(1000.0)
    unchanged = os.stat(state_file)
    breaker.update_equity(999.0)
    changed = os.stat(state_file)

    assert (unchanged.st_ino, unchanged.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    assert changed.st_ino != before.st_ino  # atomic replace: a new inode per write


def test_leftover_temp_files_from_a_killed_writer_are_removed(state_file: Path, clock: FakeClock) -> None:
    make_breaker(state_file, clock)
    orphan = state_file.parent / f".{state_file.name}.abc123.tmp"
    orphan.write_bytes(b'{"half": ')

    make_breaker(state_file, clock)

    assert not orphan.exists()


def test_unwritable_state_folder_refuses_to_start(tmp_path: Path, clock: FakeClock) -> None:
    not_a_folder = tmp_path / "state"
    not_a_folder.write_text("a file where the state folder should be\n")

    with pytest.raises(BreakerPersistenceError, match="writable folder"):
        make_breaker(not_a_folder / "circuit_breaker.json", clock)


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders; covered by the test above")
def test_read_only_state_folder_refuses_to_start(tmp_path: Path, clock: FakeClock) -> None:
    folder = tmp_path / "state"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        with pytest.raises(BreakerPersistenceError, match="refuses to trade"):
            make_breaker(folder / "circuit_breaker.json", clock)
    finally:
        folder.chmod(0o700)


def test_a_later_write_failure_is_counted_logged_alerted_once_and_retried(
    tmp_path: Path, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    folder = tmp_path / "state"
    alerts = AlertRecorder()
    breaker = make_breaker(folder / "circuit_breaker.json", clock, alert=alerts)
    folder.rename(tmp_path / "moved")
    folder.write_text("the disk went away\n")

    with caplog.at_level(logging.ERROR, logger="core.circuit_breaker"):
        breaker.update_equity(1000.0)
        assert breaker.update_equity(850.0) is TradingState.HALTED  # enforced in memory all the same

    assert breaker.get_state()["persist_errors"] >= 2
    assert sum("cannot write circuit-breaker state" in r.getMessage() for r in caplog.records) >= 2
    assert alerts.severities().count("error") == 1
    folder.unlink()
    (tmp_path / "moved").rename(folder)

    failures = breaker.persist_errors
    breaker.update_equity(850.0)
    assert breaker.persist_errors == failures
    assert on_disk(folder / "circuit_breaker.json")["trip_kind"] == "daily_loss"


# --- settings and the reset CLI -------------------------------------------------------------------------


def test_from_settings_uses_every_breaker_setting(tmp_path: Path, clock: FakeClock) -> None:
    settings = Settings(
        _env_file=None,
        state_dir=tmp_path,
        max_daily_loss=250.0,
        wallet_address=WALLET,
        circuit_breaker_cooldown_seconds=120.0,
        consecutive_loss_limit=7,
        error_burst_count=9,
        error_burst_window_seconds=30.0,
        trading_day_timezone="Europe/London",
        mcp_breaker_cpu_limit_percent=2.5,
    )

    breaker = CircuitBreaker.from_settings(settings, clock=clock)

    assert breaker.state_file == tmp_path / STATE_FILE_NAME
    state = breaker.get_state()
    assert (state["daily_loss_limit"], state["cooldown_seconds"], state["consecutive_loss_limit"]) == (250.0, 120.0, 7)
    assert (state["error_burst_count"], state["error_burst_window_seconds"], state["timezone"]) == (
        9,
        30.0,
        "Europe/London",
    )
    assert state["mcp_integration"]["cpu_limit_percent"] == 2.5


def test_reset_from_cli_clears_a_trip_and_says_what_it_was(tmp_path: Path) -> None:
    settings = Settings(_env_file=None, state_dir=tmp_path, max_daily_loss=100.0)
    breaker = CircuitBreaker.from_settings(settings)
    breaker.update_equity(1000.0)
    breaker.update_equity(880.0)

    message = reset_from_cli(settings)

    assert "Previous state: HALTED by daily_loss" in message
    assert "daily loss written off 120.00" in message
    stored = on_disk(tmp_path / STATE_FILE_NAME)
    assert stored["state"] == "ACTIVE"
    assert stored["last_reset"]["reason"].startswith("manual reset from the command line")
    assert CircuitBreaker.from_settings(settings).state is TradingState.ACTIVE


def test_reset_from_cli_on_an_active_breaker(tmp_path: Path) -> None:
    settings = Settings(_env_file=None, state_dir=tmp_path)
    message = reset_from_cli(settings)
    assert "Previous state: ACTIVE (no trip to clear)." in message


def test_reset_from_cli_recovers_from_a_corrupt_file(tmp_path: Path) -> None:
    settings = Settings(_env_file=None, state_dir=tmp_path)
    (tmp_path / STATE_FILE_NAME).write_bytes(b"\x00\x01 not json")

    message = reset_from_cli(settings)

    assert "HALTED by corrupt_state" in message
    assert "not valid JSON" in message
    assert len(list(tmp_path.glob(f"{STATE_FILE_NAME}.corrupt-*"))) == 1
    assert on_disk(tmp_path / STATE_FILE_NAME)["state"] == "ACTIVE"


def test_reset_from_cli_refuses_an_unwritable_state_folder(tmp_path: Path) -> None:
    (tmp_path / "state").write_text("not a folder\n")
    settings = Settings(_env_file=None, state_dir=tmp_path / "state")
    with pytest.raises(BreakerPersistenceError, match="writable"):
        reset_from_cli(settings)
