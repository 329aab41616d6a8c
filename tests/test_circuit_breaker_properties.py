"""Property tests: the breaker's decisions across day boundaries, timezones and DST changes, and its
accounting against a simple model; a corrupt state file never starts it ACTIVE.

State files go to /dev/shm when it exists (tmpfs: fsync is free, so many examples stay quick).
"""

from __future__ import annotations

import functools
import json
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.breaker_rules import (
    CLEARED_BY_COOLDOWN,
    DEFAULT_MCP_CPU_LIMIT_PERCENT,
    TradingState,
    TripKind,
    evaluate_daily_loss,
    halt_ends_at,
    halt_over,
    next_consecutive_losses,
    next_day_boundary,
    resource_violations,
    trading_day_of,
)
from core.integrations.rules import CoverageVerdict, coverage_verdict
from tests.circuit_breaker_support import FakeClock, make_breaker

# no deadline: hypothesis would otherwise assert on wall-clock time per example
PROPERTY = settings(deadline=None, max_examples=150, suppress_health_check=[HealthCheck.too_slow])
STATEFUL = settings(deadline=None, max_examples=120, suppress_health_check=[HealthCheck.too_slow])

ZONES = [
    "UTC",
    "America/New_York",  # DST on 2026-03-08 and 2026-11-01
    "Europe/London",
    "Asia/Kolkata",  # +05:30, no DST
    "Australia/Lord_Howe",  # a 30-minute DST shift
    "Pacific/Chatham",  # +12:45 / +13:45
    "America/Santiago",  # DST changes at midnight
    "Pacific/Kiritimati",  # +14
    "America/St_Johns",  # -03:30 / -02:30
]
DST_CHANGES = [
    datetime(2026, 3, 8, 7, 0, tzinfo=UTC),  # New York springs forward at 02:00 EST
    datetime(2026, 11, 1, 6, 0, tzinfo=UTC),  # New York falls back at 02:00 EDT
    datetime(2026, 4, 5, 3, 0, tzinfo=UTC),  # Santiago falls back at local midnight
    datetime(2026, 9, 6, 4, 0, tzinfo=UTC),  # Santiago springs forward at local midnight
]

zones = st.sampled_from(ZONES).map(ZoneInfo)
plain_instants = st.datetimes(min_value=datetime(2024, 1, 1), max_value=datetime(2030, 12, 31), timezones=st.just(UTC))
near_dst = st.sampled_from(DST_CHANGES).flatmap(
    lambda change: st.integers(-2 * 86_400, 2 * 86_400).map(lambda s: change + timedelta(seconds=s))
)
instants = st.one_of(plain_instants, near_dst)


@contextmanager
def scratch_state_file() -> Iterator[Path]:
    """A fresh state-file path in a temporary folder on tmpfs when available."""
    shm = Path("/dev/shm")
    with tempfile.TemporaryDirectory(dir=shm if shm.is_dir() else None) as folder:
        yield Path(folder) / "circuit_breaker.json"


# --- trading days ---------------------------------------------------------------------------------------


@PROPERTY
@given(tz=zones, first=instants, gap=st.integers(0, 3 * 86_400_000_000))
def test_trading_day_never_goes_back_in_time(tz: ZoneInfo, first: datetime, gap: int) -> None:
    later = first + timedelta(microseconds=gap)
    assert trading_day_of(first, tz) <= trading_day_of(later, tz)


@PROPERTY
@given(tz=zones, now=instants)
def test_the_next_boundary_starts_the_next_day_and_no_earlier(tz: ZoneInfo, now: datetime) -> None:
    day = trading_day_of(now, tz)
    boundary = next_day_boundary(day, tz)
    previous_boundary = next_day_boundary(day - timedelta(days=1), tz)

    assert previous_boundary <= now < boundary
    assert trading_day_of(boundary, tz) == day + timedelta(days=1)
    assert trading_day_of(boundary - timedelta(microseconds=1), tz) == day
    assert timedelta(hours=22) <= boundary - previous_boundary <= timedelta(hours=26)


@pytest.mark.parametrize(
    ("day", "hours"), [(date(2026, 3, 8), 23), (date(2026, 11, 1), 25), (date(2026, 3, 9), 24), (date(2026, 7, 1), 24)]
)
def test_new_york_trading_days_are_23_and_25_hours_long_on_dst_changes(day: date, hours: int) -> None:
    tz = ZoneInfo("America/New_York")
    length = next_day_boundary(day, tz) - next_day_boundary(day - timedelta(days=1), tz)
    assert length == timedelta(hours=hours)


# --- pure decisions ------------------------------------------------------------------------------------

money = st.floats(min_value=-1e7, max_value=1e7, allow_nan=False, allow_infinity=False)
limits = st.floats(min_value=0.01, max_value=1e6, allow_nan=False, allow_infinity=False)


@PROPERTY
@given(start=money, equity=money, limit=limits)
def test_daily_loss_trips_at_or_above_the_limit_and_never_below(start: float, equity: float, limit: float) -> None:
    decision = evaluate_daily_loss(start, equity, limit)
    assert decision.loss == start - equity
    assert decision.trips == (decision.loss >= limit)


@PROPERTY
@given(pnls=st.lists(st.sampled_from([-2.0, -1.0, -0.01, 0.0, 0.01, 3.0]), max_size=40))
def test_the_losing_streak_counts_losses_since_the_last_win(pnls: list[float]) -> None:
    count = 0
    for pnl in pnls:
        count = next_consecutive_losses(count, pnl)
    since_win = pnls[max((i for i, p in enumerate(pnls) if p > 0), default=-1) + 1 :]
    assert count == sum(1 for p in since_win if p < 0)


@PROPERTY
@given(
    cpu=st.floats(0, 400, allow_nan=False),
    memory=st.floats(0, 1e5, allow_nan=False),
    limit=st.floats(1, 1e5, allow_nan=False),
    cpu_limit=st.floats(0.1, 100, allow_nan=False),
)
def test_resources_fail_iff_memory_or_cpu_is_over_its_limit(
    cpu: float, memory: float, limit: float, cpu_limit: float
) -> None:
    assert (not resource_violations(cpu, memory, limit, cpu_limit)) == (memory <= limit and cpu <= cpu_limit)


@pytest.mark.parametrize(
    ("coverage", "threshold", "ok"), [(0.85, 0.85, True), (0.75, 0.85, False), (0.50, 0.85, False)]
)
def test_the_user_plan_coverage_table(coverage: float, threshold: float, ok: bool) -> None:
    # the one coverage rule (core.integrations.rules) behind CircuitBreaker.check_mcp_test_coverage
    assert (coverage_verdict(coverage, threshold) is CoverageVerdict.OK) is ok


@pytest.mark.parametrize(
    ("cpu", "memory", "limit", "ok"),
    [(1.0, 50, 200, True), (3.0, 50, 200, True), (1.0, 250, 200, False), (8.0, 50, 200, False)],
)
def test_the_user_plan_resource_table(cpu: float, memory: float, limit: float, ok: bool) -> None:
    assert (not resource_violations(cpu, memory, limit, DEFAULT_MCP_CPU_LIMIT_PERCENT)) is ok  # 5 % by default


@PROPERTY
@given(
    kind=st.sampled_from(sorted(CLEARED_BY_COOLDOWN)),
    tripped_at=instants,
    cooldown=st.floats(1.0, 7 * 86_400.0, allow_nan=False),
    later=st.integers(0, 8 * 86_400_000_000),
)
def test_a_cooldown_halt_ends_exactly_when_the_cooldown_expires(
    kind: TripKind, tripped_at: datetime, cooldown: float, later: int
) -> None:
    until = halt_ends_at(kind, tripped_at, ZoneInfo("UTC"), cooldown)
    now = tripped_at + timedelta(microseconds=later)
    assert halt_over(until, now) == (now >= tripped_at + timedelta(seconds=cooldown))


@PROPERTY
@given(tz=zones, tripped_at=instants, later=st.integers(0, 3 * 86_400_000_000))
def test_a_daily_loss_halt_ends_exactly_when_the_trading_day_changes(
    tz: ZoneInfo, tripped_at: datetime, later: int
) -> None:
    until = halt_ends_at(TripKind.DAILY_LOSS, tripped_at, tz, cooldown_seconds=60.0)
    now = tripped_at + timedelta(microseconds=later)
    assert halt_over(until, now) == (trading_day_of(now, tz) > trading_day_of(tripped_at, tz))
    assert not halt_over(halt_ends_at(TripKind.CORRUPT_STATE, tripped_at, tz, 60.0), now)


# --- the breaker against a model -----------------------------------------------------------------------

advances = st.integers(min_value=0, max_value=30 * 3600)  # seconds between two events, up to 30 h


@STATEFUL
@given(
    tz_name=st.sampled_from(ZONES),
    start=instants,
    steps=st.lists(st.tuples(advances, st.floats(-150, 150, allow_nan=False)), min_size=1, max_size=30),
)
def test_daily_loss_latch_matches_the_model(tz_name: str, start: datetime, steps: list[tuple[int, float]]) -> None:
    tz = ZoneInfo(tz_name)
    clock = FakeClock(start)
    model_day: date | None = None
    model_start: float | None = None
    latched_until: datetime | None = None
    equity = 1000.0
    with scratch_state_file() as path:
        breaker = make_breaker(path, clock, timezone=tz_name, max_daily_loss=100.0, cooldown_seconds=60.0)
        for advance, delta in steps:
            now = clock.advance(advance)
            equity += delta
            day = trading_day_of(now, tz)
            if day != model_day:
                model_day, model_start = day, None
            if latched_until is not None and now >= latched_until:
                latched_until = None
            if model_start is None:
                model_start = equity
            if model_start - equity >= 100.0 and latched_until is None:
                latched_until = next_day_boundary(day, tz)

            state = breaker.update_equity(equity)

            assert (state is TradingState.HALTED) == (latched_until is not None)
            assert breaker.get_state()["daily_loss"] == model_start - equity
            if latched_until is not None:  # never cleared a moment before the boundary
                assert breaker.allows_new_entries(latched_until - timedelta(microseconds=1)) is False
                assert breaker.get_state()["halted_until"] == latched_until.isoformat()


@STATEFUL
@given(
    tz_name=st.sampled_from(ZONES),
    start=instants,
    results=st.lists(st.tuples(advances, st.sampled_from([-7.5, -1.25, 0.0, 0.5, 4.0])), min_size=1, max_size=40),
)
def test_realized_pnl_and_losing_streak_match_the_model(
    tz_name: str, start: datetime, results: list[tuple[int, float]]
) -> None:
    tz = ZoneInfo(tz_name)
    limit, cooldown = 3, timedelta(hours=2)
    clock = FakeClock(start)
    model_day = trading_day_of(start, tz)
    realized = 0.0
    streak = 0
    halted_until: datetime | None = None
    with scratch_state_file() as path:
        breaker = make_breaker(path, clock, timezone=tz_name, consecutive_loss_limit=limit, cooldown_seconds=7200.0)
        for advance, pnl in results:
            now = clock.advance(advance)
            if trading_day_of(now, tz) != model_day:
                model_day, realized = trading_day_of(now, tz), 0.0
            if halted_until is not None and now >= halted_until:
                halted_until, streak = None, 0
            realized += pnl
            streak = streak + 1 if pnl < 0 else (0 if pnl > 0 else streak)
            if streak >= limit and halted_until is None:
                halted_until = now + cooldown

            state = breaker.record_trade_result(pnl)

            record = breaker.get_state()
            assert record["realized_pnl_today"] == realized
            assert record["consecutive_losses"] == streak
            assert (state is TradingState.HALTED) == (halted_until is not None)


@STATEFUL
@given(gaps=st.lists(st.integers(0, 90), min_size=1, max_size=40), burst=st.integers(1, 5))
def test_error_burst_with_bounded_memory_matches_the_full_history(gaps: list[int], burst: int) -> None:
    clock = FakeClock(datetime(2026, 3, 8, 6, 0, tzinfo=UTC))
    window = 60.0
    history: list[datetime] = []  # every error since the last clear
    halted_until: datetime | None = None
    with scratch_state_file() as path:
        breaker = make_breaker(
            path, clock, error_burst_count=burst, error_burst_window_seconds=window, cooldown_seconds=300.0
        )
        for gap in gaps:
            now = clock.advance(gap)
            if halted_until is not None and now >= halted_until:
                halted_until, history = None, []
            history.append(now)
            in_window = [t for t in history if now - timedelta(seconds=window) < t <= now]
            if halted_until is None and len(in_window) >= burst:
                halted_until = now + timedelta(seconds=300)

            state = breaker.record_error("timeout")

            assert (state is TradingState.HALTED) == (halted_until is not None)


# --- a corrupt state file never starts the breaker ACTIVE -----------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=10),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=12,
)


def starts_halted(raw: bytes) -> bool:
    with scratch_state_file() as path:
        path.write_bytes(raw)
        breaker = make_breaker(path, FakeClock())
        return breaker.state is TradingState.HALTED and breaker.get_state()["trip_kind"] == "corrupt_state"


@PROPERTY
@given(raw=st.binary(max_size=256))
def test_random_bytes_never_start_active(raw: bytes) -> None:
    assert starts_halted(raw)


@PROPERTY
@given(value=json_values)
def test_random_json_never_starts_active(value: Any) -> None:
    assert starts_halted(json.dumps(value).encode("utf-8"))


@functools.cache
def halted_record() -> dict[str, Any]:
    """A valid state file of a breaker halted by a daily-loss trip (built once, on first use)."""
    with scratch_state_file() as path:
        breaker = make_breaker(path, FakeClock())
        breaker.update_equity(1000.0)
        breaker.record_error("timeout")
        breaker.update_equity(800.0)
        return json.loads(path.read_text(encoding="utf-8"))


def json_kind(value: Any) -> str:
    if value is None or isinstance(value, bool | str | list | dict):
        return type(value).__name__
    return "number"


@PROPERTY
@given(data=st.data(), value=json_values)
def test_changing_one_field_of_a_halted_record_to_another_type_never_starts_active(
    data: st.DataObject, value: Any
) -> None:
    record = halted_record()
    key = data.draw(st.sampled_from(sorted(record)), label="key")
    if json_kind(value) == json_kind(record[key]):
        value = [value] if isinstance(record[key], dict) else {"replaced": value}
    payload = {**record, key: value}
    with scratch_state_file() as path:
        path.write_text(json.dumps(payload))
        breaker = make_breaker(path, FakeClock())
        assert breaker.state is TradingState.HALTED
