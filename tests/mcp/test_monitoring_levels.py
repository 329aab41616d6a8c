"""Threshold levels and hysteresis: table tests for the rules, property tests for "no flapping"."""

from __future__ import annotations

import itertools
import math
import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mcp.monitoring.levels import Hysteresis, HysteresisState, Level, Thresholds, level_for, step
from mcp.monitoring.thresholds import MonitoringLimits
from tests.fakes.monitoring_builders import settings as make_settings

H, S, D, C = Level.HEALTHY, Level.STARTING, Level.DEGRADED, Level.CRITICAL


@pytest.mark.parametrize(
    ("value", "warning", "critical", "higher_is_worse", "expected"),
    [
        (0.0, 10, 20, True, H),
        (9.999, 10, 20, True, H),
        (10.0, 10, 20, True, D),  # at the threshold counts
        (19.9, 10, 20, True, D),
        (20.0, 10, 20, True, C),
        (1e9, 10, 20, True, C),
        (-5.0, 10, 20, True, H),
        (50.0, 20, 10, False, H),  # free space: lower is worse
        (20.0, 20, 10, False, D),
        (10.0, 20, 10, False, C),
        (15.0, 15, 15, True, C),  # equal thresholds: no degraded band
    ],
)
def test_level_for_table(value: float, warning: float, critical: float, higher_is_worse: bool, expected: Level) -> None:
    assert level_for(value, warning, critical, higher_is_worse) is expected


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        ((1.0, 20, 10, True), "expected warning <= critical when higher is worse, received 20.0 > 10.0"),
        ((1.0, 10, 20, False), "expected warning >= critical when lower is worse, received 10.0 < 20.0"),
        ((math.nan, 10, 20, True), "value must be a finite number, received nan"),
        ((math.inf, 10, 20, True), "value must be a finite number"),
        ((True, 10, 20, True), "value must be a finite number, received True"),
        ((1.0, "10", 20, True), "warning threshold must be a finite number, received '10'"),
    ],
)
def test_level_for_rejects_bad_input_saying_what_was_expected(args: tuple[object, ...], fragment: str) -> None:
    with pytest.raises(ValueError, match=re.escape(fragment)):
        level_for(*args)


def test_thresholds_validate_on_construction() -> None:
    with pytest.raises(ValueError, match="margin must be >= 0"):
        Thresholds(1, 2, margin=-0.1)
    with pytest.raises(ValueError, match="expected warning <= critical"):
        Thresholds(3, 2)


@pytest.mark.parametrize(
    ("value", "current", "expected"),
    [
        (12.0, None, D),  # no history: the plain level
        (12.0, H, D),  # worse: entered at the threshold
        (25.0, D, C),
        (9.5, D, D),  # inside the band below the warning threshold: stays degraded
        (9.0, D, D),  # exactly at threshold - margin: still inside
        (8.99, D, H),  # past it: recovers
        (19.5, C, C),  # inside the band below critical
        (18.9, C, D),
        (5.0, C, H),  # far past both: all the way down
    ],
)
def test_level_from_needs_the_margin_to_recover(value: float, current: Level | None, expected: Level) -> None:
    rule = Thresholds(10.0, 20.0, margin=1.0)
    assert rule.level_from(value, current) is expected


def test_level_from_lower_is_worse() -> None:
    rule = Thresholds(20.0, 10.0, higher_is_worse=False, margin=2.0)
    assert rule.level_from(19.0, H) is D
    assert rule.level_from(21.0, D) is D  # needs > 22 to recover
    assert rule.level_from(22.5, D) is H


@pytest.mark.parametrize(
    ("state", "proposed", "now", "expected"),
    [
        # the first verdict needs its minimum duration too: starting until then
        (HysteresisState(), C, 0.0, HysteresisState(S, 0.0, C, 0.0)),
        (HysteresisState(S, 0.0, C, 0.0), C, 9.9, HysteresisState(S, 0.0, C, 0.0)),
        (HysteresisState(S, 0.0, C, 0.0), C, 10.0, HysteresisState(C, 10.0)),
        # from starting, every reading counts towards the first verdict, which is the mildest of them
        (HysteresisState(S, 0.0, H, 0.0), C, 10.0, HysteresisState(H, 10.0, C, 10.0)),
        (HysteresisState(S, 0.0, C, 0.0), D, 10.0, HysteresisState(D, 10.0)),
        # still starting (a server that has not said it is ready): the wait starts over
        (HysteresisState(S, 0.0, C, 0.0), S, 5.0, HysteresisState(S, 0.0)),
        (HysteresisState(H, 0.0), H, 5.0, HysteresisState(H, 0.0)),
        (HysteresisState(H, 0.0), D, 5.0, HysteresisState(H, 0.0, D, 5.0)),
        (HysteresisState(H, 0.0, D, 5.0), D, 14.9, HysteresisState(H, 0.0, D, 5.0)),
        (HysteresisState(H, 0.0, D, 5.0), D, 15.0, HysteresisState(D, 15.0)),
        # worse, then worse still: the change goes only as far as every reading agreed
        (HysteresisState(H, 0.0, C, 5.0), D, 15.0, HysteresisState(D, 15.0)),
        (HysteresisState(H, 0.0, D, 5.0), C, 15.0, HysteresisState(D, 15.0, C, 15.0)),
        # a reading back at the current level cancels the pending change
        (HysteresisState(H, 0.0, D, 5.0), H, 8.0, HysteresisState(H, 0.0)),
        # a change in the other direction restarts the wait
        (HysteresisState(D, 0.0, C, 5.0), H, 8.0, HysteresisState(D, 0.0, H, 8.0)),
        # better: only as far as the worst reading
        (HysteresisState(C, 0.0, H, 5.0), D, 15.0, HysteresisState(D, 15.0)),
    ],
)
def test_step_table(state: HysteresisState, proposed: Level, now: float, expected: HysteresisState) -> None:
    assert step(state, proposed, now, min_duration=10.0) == expected


def test_a_first_reading_is_never_a_verdict() -> None:
    rule = Hysteresis(Thresholds(10, 20), min_duration=45)
    assert [rule.update(v, t) for t, v in [(0, 99), (30, 99), (44.9, 99)]] == [S, S, S]
    assert rule.update(99, 45) is C


def test_zero_min_duration_changes_at_once() -> None:
    rule = Hysteresis(Thresholds(10, 20, margin=1), min_duration=0)
    assert [rule.update(v, t) for t, v in enumerate([5, 12, 25, 19.5, 8])] == [H, D, C, C, H]


def test_reset_forgets_the_history() -> None:
    rule = Hysteresis(Thresholds(10, 20), min_duration=60)
    rule.update(5, 0)
    assert rule.update(25, 60) is H
    assert rule.update(25, 61) is H
    rule.reset()
    assert rule.update(25, 62) is S
    assert rule.update(25, 122) is C


def test_hysteresis_rejects_a_negative_duration() -> None:
    with pytest.raises(ValueError, match="min_duration must be >= 0 seconds, received -1"):
        Hysteresis(Thresholds(1, 2), min_duration=-1)


# --- properties ---------------------------------------------------------------------------------------

WARNING, CRITICAL, MARGIN, HOLD = 100.0, 150.0, 5.0, 30.0
gaps = st.floats(min_value=0.5, max_value=20.0, allow_nan=False)


def _run(rule: Hysteresis, readings: list[tuple[float, float]], start: float = 0.0) -> list[Level]:
    now, levels = start, []
    for gap, value in readings:
        now += gap
        levels.append(rule.update(value, now))
    return levels


def _changes(levels: list[Level]) -> int:
    return sum(1 for a, b in itertools.pairwise(levels) if a is not b)


@settings(max_examples=300, deadline=None)
@given(
    start=st.floats(min_value=WARNING - MARGIN, max_value=WARNING + MARGIN),
    readings=st.lists(st.tuples(gaps, st.floats(min_value=WARNING - MARGIN, max_value=WARNING + MARGIN)), max_size=60),
)
def test_a_value_oscillating_within_the_margin_never_flaps(start: float, readings: list[tuple[float, float]]) -> None:
    """Around the warning threshold, within the margin: at most one change, never back again."""
    rule = Hysteresis(Thresholds(WARNING, CRITICAL, margin=MARGIN), min_duration=HOLD)
    assert rule.update(start, 0.0) is S
    levels = [rule.update(start, HOLD), *_run(rule, readings, start=HOLD)]
    assert set(levels) <= {H, D}
    assert _changes(levels) <= 1
    if _changes(levels) == 1:
        assert levels[0] is H and levels[-1] is D  # it may settle into degraded, never return from it


@settings(max_examples=300, deadline=None)
@given(
    readings=st.lists(
        st.tuples(st.floats(min_value=0.5, max_value=HOLD / 3), st.booleans()), min_size=1, max_size=60
    ).filter(lambda rs: all(gap < HOLD for gap, _ in rs)),
)
def test_excursions_shorter_than_the_minimum_duration_never_change_the_level(
    readings: list[tuple[float, bool]],
) -> None:
    """Past the critical threshold in short bursts only (each burst < HOLD): the level never moves from healthy."""
    rule = Hysteresis(Thresholds(WARNING, CRITICAL, margin=MARGIN), min_duration=HOLD)
    rule.update(50.0, 0.0)
    assert rule.update(50.0, HOLD) is H
    now, burst_started = HOLD, None
    for gap, high in readings:
        now += gap
        if high and burst_started is not None and now - burst_started >= HOLD:
            high = False  # end the burst before it lasts HOLD: the property is about short excursions
        burst_started = (now if burst_started is None else burst_started) if high else None
        assert rule.update(CRITICAL + 50 if high else 50.0, now) is H


@settings(max_examples=300, deadline=None)
@given(
    before=st.sampled_from([20.0, 120.0, 200.0]),
    after=st.sampled_from([20.0, 120.0, 200.0]),
    samples=st.lists(gaps, min_size=1, max_size=40),
)
def test_a_sustained_crossing_changes_the_level_exactly_after_the_minimum_duration(
    before: float, after: float, samples: list[float]
) -> None:
    """From a settled level, a new value held steadily is adopted at the first reading HOLD after it began."""
    rule = Hysteresis(Thresholds(WARNING, CRITICAL, margin=MARGIN), min_duration=HOLD)
    rule.update(before, 0.0)
    old = rule.update(before, 100.0)  # settled
    target = Thresholds(WARNING, CRITICAL).level(after)
    now = 100.0
    first = None
    for gap in samples:
        now += gap
        first = now if first is None else first
        level = rule.update(after, now)
        assert level is (target if now - first >= HOLD else old)


@settings(max_examples=300, deadline=None)
@given(readings=st.lists(st.tuples(gaps, st.floats(min_value=0.0, max_value=1000.0)), min_size=1, max_size=40))
def test_no_verdict_before_the_readings_have_lasted_the_minimum_duration(readings: list[tuple[float, float]]) -> None:
    """From a fresh start, whatever the readings: starting until HOLD after the first, never degraded before."""
    rule = Hysteresis(Thresholds(WARNING, CRITICAL, margin=MARGIN), min_duration=HOLD)
    now = 0.0
    first = None
    for gap, value in readings:
        now += gap
        first = now if first is None else first
        level = rule.update(value, now)
        if now - first < HOLD:
            assert level is S


def test_limits_come_from_settings(tmp_path: Path) -> None:
    limits = MonitoringLimits.from_settings(
        make_settings(
            tmp_path,
            trading_latency_budget_ms=80,
            daily_loss_warning_percent=0.10,
            daily_loss_critical_percent=0.12,
            monitoring_max_cpu_percent=0.5,
            monitoring_max_memory_mb=50,
        )
    )
    assert (limits.latency_p99_ms.warning, limits.latency_p99_ms.critical) == (80, 120)
    assert (limits.daily_loss_fraction.warning, limits.daily_loss_fraction.critical) == (0.10, 0.12)
    assert (limits.sidecar_cpu_percent.warning, limits.sidecar_cpu_percent.critical) == (0.5, 15.0)
    assert (limits.sidecar_memory_mb.warning, limits.sidecar_memory_mb.critical) == (50, 1000)
    assert limits.latency_p99_ms.margin == pytest.approx(4.0)


def test_a_hard_limit_below_the_monitoring_limit_leaves_no_degraded_band(tmp_path: Path) -> None:
    limits = MonitoringLimits.from_settings(
        make_settings(tmp_path, monitoring_max_memory_mb=2000, mcp_resource_limit_mb=1000)
    )
    assert limits.sidecar_memory_mb.warning == limits.sidecar_memory_mb.critical == 1000
