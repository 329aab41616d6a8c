"""The integrator's pure decisions: MCP breaker state machine and its file, market hours, gate, trip rules."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.integrations import reports
from core.integrations.gate_rules import GateCode, GateKind, MarketHours, decide_gate, is_market_hours, parse_kind
from core.integrations.mcp_breaker import (
    HISTORY_LIMIT,
    MAX_FAILED_RECOVERIES,
    BreakerEvent,
    BreakerRecord,
    BreakerState,
    BreakerStore,
    advance,
    finish_trial,
    record_from_json,
    record_to_json,
    reset,
    trip,
)
from core.integrations.process_tree import ProcessTreeSampler
from core.integrations.rules import (
    CoverageVerdict,
    ResourceLimits,
    coverage_trip_reason,
    coverage_verdict,
    critical_coverage_below,
    latency_trip_reason,
    next_cpu_breaches,
    resource_trip_reasons,
    within_limits,
)
from tests.fakes.fake_psutil import FakeProc

T0 = datetime(2026, 11, 21, 20, 0, tzinfo=UTC)
COOLDOWN = 300.0
HOURS = MarketHours(enabled=True, start_hour=9, end_hour=16)


def at(hour: int, minute: int = 0, second: int = 0, tz: timezone = UTC) -> datetime:
    return datetime(2026, 11, 21, hour, minute, second, tzinfo=tz)


# --- the breaker state machine ------------------------------------------------------------------------


class TestBreakerStateMachine:
    def test_trip_opens_and_a_second_trip_is_the_same_trip(self) -> None:
        opened = trip(BreakerRecord(), "cpu", T0)
        assert (opened.event, opened.record.state, opened.record.trips) == (BreakerEvent.TRIPPED, "open", 1)
        again = trip(opened.record, "memory", T0 + timedelta(seconds=5))
        assert again.event is BreakerEvent.NONE
        assert again.record is opened.record  # same reason, same count, same cooldown start

    def test_cooldown_then_one_trial(self) -> None:
        opened = trip(BreakerRecord(), "cpu", T0).record
        assert advance(opened, T0 + timedelta(seconds=COOLDOWN - 1), COOLDOWN).event is BreakerEvent.NONE
        half = advance(opened, T0 + timedelta(seconds=COOLDOWN), COOLDOWN)
        assert (half.event, half.record.state) == (BreakerEvent.HALF_OPENED, BreakerState.HALF_OPEN)
        assert half.record.active is True
        healthy = finish_trial(half.record, healthy=True, now=T0 + timedelta(seconds=COOLDOWN + 1))
        assert (healthy.event, healthy.record.state, healthy.record.recoveries) == (BreakerEvent.RECOVERED, "closed", 1)
        assert healthy.record.active is False

    def test_failed_trial_reopens_and_restarts_the_cooldown(self) -> None:
        half = advance(trip(BreakerRecord(), "cpu", T0).record, T0 + timedelta(seconds=COOLDOWN), COOLDOWN).record
        failed_at = T0 + timedelta(seconds=COOLDOWN + 10)
        failed = finish_trial(half, healthy=False, now=failed_at, reason="cpu still high")
        assert (failed.event, failed.record.state, failed.record.failed_recoveries) == (
            BreakerEvent.RECOVERY_FAILED,
            "open",
            1,
        )
        assert failed.record.reason == "cpu"  # the trip's reason is kept; the trial's is stored beside it
        assert failed.record.last_failure_reason == "cpu still high"
        assert failed.record.cooldown_remaining(failed_at, COOLDOWN) == COOLDOWN

    def test_a_trip_during_the_trial_is_a_failed_recovery(self) -> None:
        half = advance(trip(BreakerRecord(), "cpu", T0).record, T0 + timedelta(seconds=COOLDOWN), COOLDOWN).record
        step = trip(half, "latency", T0 + timedelta(seconds=COOLDOWN + 1))
        assert step.event is BreakerEvent.RECOVERY_FAILED
        assert step.record.trips == 1

    def test_third_failed_recovery_locks_it_open(self) -> None:
        record = trip(BreakerRecord(), "cpu", T0).record
        now = T0
        events = []
        for _ in range(MAX_FAILED_RECOVERIES):
            now += timedelta(seconds=COOLDOWN)
            record = advance(record, now, COOLDOWN).record
            step = finish_trial(record, healthy=False, now=now, reason="still bad")
            record = step.record
            events.append(step.event)
        assert events == [BreakerEvent.RECOVERY_FAILED] * (MAX_FAILED_RECOVERIES - 1) + [BreakerEvent.LOCKED_OUT]
        assert record.locked is True
        assert record.cooldown_remaining(now, COOLDOWN) is None
        assert advance(record, now + timedelta(days=30), COOLDOWN).event is BreakerEvent.NONE
        manual = reset(record, now, "dashboard")
        assert (manual.event, manual.record.state, manual.record.failed_recoveries) == (BreakerEvent.RESET, "closed", 0)

    def test_reset_of_a_closed_breaker_changes_nothing(self) -> None:
        assert reset(BreakerRecord(), T0).event is BreakerEvent.NONE
        assert finish_trial(BreakerRecord(), healthy=True, now=T0).event is BreakerEvent.NONE

    def test_history_is_bounded(self) -> None:
        record = BreakerRecord()
        for i in range(HISTORY_LIMIT):
            record = reset(trip(record, f"trip {i}", T0).record, T0).record
        assert len(record.history) == HISTORY_LIMIT
        assert record.trips == HISTORY_LIMIT


# operations for the property tests: (name, argument)
operations = st.lists(
    st.one_of(
        st.tuples(st.just("trip"), st.sampled_from(["cpu", "memory", "latency"])),
        st.tuples(st.just("wait"), st.floats(min_value=0, max_value=3 * COOLDOWN)),
        st.tuples(st.just("trial"), st.booleans()),
        st.tuples(st.just("reset"), st.none()),
    ),
    max_size=40,
)


def run_operations(ops: list[tuple[str, Any]]) -> list[tuple[str, Any, BreakerRecord, BreakerRecord, BreakerEvent]]:
    """Apply the operations; the clock only moves on "wait". Returns (op, arg, before, after, event)."""
    record, now, trace = BreakerRecord(), T0, []
    for name, arg in ops:
        before = record
        if name == "trip":
            step = trip(record, arg, now)
        elif name == "wait":
            now += timedelta(seconds=arg)
            step = advance(record, now, COOLDOWN)
        elif name == "trial":
            step = finish_trial(record, healthy=arg, now=now, reason=None if arg else "still bad")
        else:
            step = reset(record, now)
        record = step.record
        trace.append((name, arg, before, record, step.event))
    return trace


class TestBreakerProperties:
    @given(operations)
    def test_tripping_an_open_breaker_is_one_trip(self, ops: list[tuple[str, Any]]) -> None:
        for name, _, before, after, _ in run_operations(ops):
            if name == "trip" and before.state is BreakerState.OPEN:
                assert after == before

    @given(operations)
    def test_never_closes_without_a_healthy_trial_or_a_manual_reset(self, ops: list[tuple[str, Any]]) -> None:
        for name, arg, before, after, _ in run_operations(ops):
            if before.state is not BreakerState.CLOSED and after.state is BreakerState.CLOSED:
                assert (name == "trial" and arg is True and before.state is BreakerState.HALF_OPEN) or name == "reset"

    @given(operations)
    def test_stays_open_after_three_failed_recoveries_until_reset(self, ops: list[tuple[str, Any]]) -> None:
        for name, _, before, after, _ in run_operations(ops):
            if before.locked and name != "reset":
                assert after.state is BreakerState.OPEN
                assert after.locked

    @given(operations)
    def test_trip_count_is_the_number_of_openings_from_closed(self, ops: list[tuple[str, Any]]) -> None:
        trace = run_operations(ops)
        openings = sum(1 for _, _, _, _, event in trace if event is BreakerEvent.TRIPPED)
        final = trace[-1][3] if trace else BreakerRecord()
        assert final.trips == openings
        assert final.failed_recoveries <= MAX_FAILED_RECOVERIES

    @given(operations)
    def test_records_survive_the_file_format(self, ops: list[tuple[str, Any]]) -> None:
        for _, _, _, after, _ in run_operations(ops):
            assert record_from_json(json.loads(json.dumps(record_to_json(after, T0)))) == after


# --- persistence --------------------------------------------------------------------------------------


class TestBreakerStore:
    def test_missing_file_is_a_closed_breaker_and_nothing_is_created(self, tmp_path: Path) -> None:
        store = BreakerStore(tmp_path / "state" / "mcp_circuit_breaker.json", lambda: T0)
        assert store.load() == (BreakerRecord(), None)
        assert not (tmp_path / "state").exists()

    def test_update_creates_the_folder_and_round_trips(self, tmp_path: Path) -> None:
        path = tmp_path / "state" / "mcp_circuit_breaker.json"
        store = BreakerStore(path, lambda: T0)
        step, problem = store.update(lambda record: trip(record, "cpu", T0))
        assert problem is None
        assert BreakerStore(path, lambda: T0).load() == (step.record, None)
        stored = json.loads(path.read_text())
        assert (stored["schema_version"], stored["version"]) == (1, 1)
        assert (tmp_path / "state" / "mcp_circuit_breaker.json.lock").exists()

    def test_an_update_that_changes_nothing_writes_nothing(self, tmp_path: Path) -> None:
        path = tmp_path / "mcp_circuit_breaker.json"
        store = BreakerStore(path, lambda: T0)
        store.update(lambda record: trip(record, "first", T0))
        before = path.read_bytes()
        step, _ = store.update(lambda record: trip(record, "second", T0))
        assert step.event is BreakerEvent.NONE
        assert path.read_bytes() == before

    @pytest.mark.parametrize(
        ("content", "fragment"),
        [
            (b"\x00\x01garbage", "not valid JSON"),
            (b'{"state": "open"', "not valid JSON"),
            (b"[]", "expected a JSON object, received list"),
            (b'{"schema_version": 99, "state": "closed"}', "expected schema_version 1, received 99"),
            (b'{"schema_version": 1, "state": "ajar"}', "state: expected one of ['closed', 'open', 'half_open']"),
            (b'{"schema_version": 1, "state": "closed", "trips": -1}', "trips: expected a count"),
            (b'{"schema_version": 1, "state": "closed", "trips": true}', "trips: expected a count"),
            (b'{"schema_version": 1, "state": "closed", "reason": 5}', "reason: expected text or null"),
            (b'{"schema_version": 1, "state": "closed", "tripped_at": "yesterday"}', "tripped_at: expected an ISO"),
            (b'{"schema_version": 1, "state": "closed", "history": [1]}', "history: expected a list of objects"),
            (b'{"schema_version": 1, "state": "open"}', "opened_at: an open breaker needs"),
        ],
    )
    def test_corrupt_file_opens_the_breaker_and_is_kept_aside(
        self, tmp_path: Path, content: bytes, fragment: str
    ) -> None:
        path = tmp_path / "mcp_circuit_breaker.json"
        path.write_bytes(content)
        record, problem = BreakerStore(path, lambda: T0).load()
        assert record.state is BreakerState.OPEN
        assert problem is not None and fragment in problem
        assert record.reason is not None and record.reason.startswith("corrupt state:")
        kept = tmp_path / "mcp_circuit_breaker.json.corrupt-20261121T200000000000Z"
        assert kept.read_bytes() == content
        assert f"kept as {kept.name}" in problem
        # the open state is on disk at once: a second restart does not come up closed
        assert BreakerStore(path, lambda: T0).load()[0].state is BreakerState.OPEN

    def test_unreadable_path_opens_the_breaker(self, tmp_path: Path) -> None:
        path = tmp_path / "mcp_circuit_breaker.json"
        path.mkdir()
        record, problem = BreakerStore(path, lambda: T0).load()
        assert record.state is BreakerState.OPEN
        assert problem is not None and "is a directory, expected a regular file" in problem


# --- market hours and the gate ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        (at(0, 0), False),
        (at(8, 59, 59), False),
        (at(9, 0, 0), True),  # start inclusive
        (at(12, 30), True),
        (at(15, 59, 59), True),
        (at(16, 0, 0), False),  # end exclusive
        (at(23, 59, 59), False),
        (at(11, 0, tz=timezone(timedelta(hours=2))), True),  # 09:00 UTC
        (at(10, 59, tz=timezone(timedelta(hours=2))), False),  # 08:59 UTC
        (at(10, 59, tz=timezone(timedelta(hours=-5))), True),  # 15:59 UTC
        (at(11, 0, tz=timezone(timedelta(hours=-5))), False),  # 16:00 UTC
    ],
)
def test_market_hours_table(now: datetime, expected: bool) -> None:
    assert is_market_hours(now, HOURS) is expected


def test_market_hours_disabled_is_never_market_hours() -> None:
    assert is_market_hours(at(12), MarketHours(enabled=False)) is False


def test_market_hours_needs_an_aware_time() -> None:
    with pytest.raises(ValueError, match=r"timezone-aware time such as datetime\.now\(timezone\.utc\); received naive"):
        is_market_hours(datetime(2026, 11, 21, 12, 0), HOURS)  # the malformed input under test


@given(
    st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)),
    st.integers(min_value=0, max_value=23),
    st.integers(min_value=1, max_value=24),
)
def test_market_hours_is_the_utc_hour_window(now: datetime, start: int, length: int) -> None:
    end = min(24, start + length)
    assert is_market_hours(now, MarketHours(True, start, end)) is (start <= now.hour < end)


def test_market_hours_from_settings() -> None:
    from config.settings import Settings

    hours = MarketHours.from_settings(
        Settings(_env_file=None, mcp_market_hours_start=8, mcp_market_hours_end=17, mcp_market_hours_enabled=False)
    )
    assert hours == MarketHours(enabled=False, start_hour=8, end_hour=17)
    assert hours.label() == "08:00-17:00 UTC"


def _locked() -> BreakerRecord:
    record = trip(BreakerRecord(), "cpu", T0).record
    for _ in range(MAX_FAILED_RECOVERIES):
        record = advance(record, T0 + timedelta(days=1), COOLDOWN).record
        record = finish_trial(record, healthy=False, now=T0, reason="bad").record
    return record


OPEN = trip(BreakerRecord(), "cpu high", T0).record
HALF_OPEN = advance(OPEN, T0 + timedelta(seconds=COOLDOWN), COOLDOWN).record


@pytest.mark.parametrize(
    ("enabled", "breaker", "now", "code", "fragment"),
    [
        (True, BreakerRecord(), at(20), GateCode.ALLOWED, "allowed"),
        (False, BreakerRecord(), at(20), GateCode.DISABLED, "MCP integration is disabled"),
        (False, OPEN, at(12), GateCode.DISABLED, "disabled"),  # disabled is reported first
        (True, OPEN, at(12), GateCode.BREAKER_OPEN, "breaker is open (cpu high)"),
        (True, HALF_OPEN, at(20), GateCode.BREAKER_HALF_OPEN, "half-open"),
        (True, _locked(), at(20), GateCode.BREAKER_LOCKED, "only a manual reset"),
        (True, BreakerRecord(), at(9), GateCode.MARKET_HOURS, "market hours 09:00-16:00 UTC (now 09:00 UTC)"),
    ],
)
def test_gate_table(enabled: bool, breaker: BreakerRecord, now: datetime, code: GateCode, fragment: str) -> None:
    for kind in GateKind:
        decision = decide_gate(kind, now=now, enabled=enabled, breaker=breaker, hours=HOURS)
        assert decision.code is code
        assert decision.allowed is (code is GateCode.ALLOWED)
        assert fragment in decision.reason
        assert decision.as_dict()["kind"] == str(kind)


def test_parse_kind() -> None:
    assert parse_kind("test_run") is GateKind.TEST_RUN
    with pytest.raises(ValueError, match="unknown gate kind"):
        parse_kind("Scan")


# --- trip rules ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("coverage", "verdict"),
    [
        (0.90, CoverageVerdict.OK),
        (0.85, CoverageVerdict.OK),
        (0.84, CoverageVerdict.BELOW_THRESHOLD),
        (0.68, CoverageVerdict.BELOW_THRESHOLD),  # exactly 0.8 × 0.85: an alert, not a trip
        (0.679, CoverageVerdict.CRITICAL),
        (0.0, CoverageVerdict.CRITICAL),
    ],
)
def test_coverage_verdict(coverage: float, verdict: CoverageVerdict) -> None:
    assert coverage_verdict(coverage, 0.85) is verdict
    assert (coverage_trip_reason(coverage, 0.85) is not None) is (verdict is CoverageVerdict.CRITICAL)


@given(st.floats(0, 1), st.floats(0, 1))
def test_coverage_verdict_is_ok_exactly_at_or_above_the_threshold(coverage: float, threshold: float) -> None:
    verdict = coverage_verdict(coverage, threshold)
    assert (verdict is CoverageVerdict.OK) == (coverage >= threshold)
    assert (verdict is CoverageVerdict.CRITICAL) == (coverage < threshold and coverage < 0.8 * threshold)
    assert critical_coverage_below(threshold) == 0.8 * threshold


@given(st.floats(0, 1), st.floats(0, 1))
def test_coverage_trips_exactly_below_80_percent_of_the_threshold(coverage: float, threshold: float) -> None:
    assert (coverage_trip_reason(coverage, threshold) is not None) is (coverage < 0.8 * threshold)


@pytest.mark.parametrize(
    ("before", "cpu", "window", "after"),
    [(0, 20.0, 5.0, 1), (1, 20.0, 1.0, 2), (2, 10.0, 5.0, 0), (1, 90.0, 0.5, 1), (1, 90.0, None, 1)],
)
def test_cpu_breaches_count_only_over_a_long_enough_window(
    before: int, cpu: float, window: float | None, after: int
) -> None:
    assert next_cpu_breaches(before, cpu, 15.0, window) == after


def test_resource_rules() -> None:
    limits = ResourceLimits(cpu_percent=15.0, memory_mb=1000.0)
    assert within_limits(15.0, 1000.0, limits) is True
    assert within_limits(15.1, 10.0, limits) is False
    memory = resource_trip_reasons(1.0, 1000.5, limits, cpu_breaches_in_a_row=0, cpu_breaches_required=2)
    assert memory == ["sidecar memory 1000.5 MB is over MCP_RESOURCE_LIMIT_MB=1000"]
    assert resource_trip_reasons(50.0, 10.0, limits, cpu_breaches_in_a_row=1, cpu_breaches_required=2) == []
    assert len(resource_trip_reasons(50.0, 10.0, limits, cpu_breaches_in_a_row=2, cpu_breaches_required=2)) == 1


@pytest.mark.parametrize(
    ("p99", "samples", "trips"),
    [(100.0, 10, False), (100.1, 10, True), (500.0, 0, False), (None, 10, False)],
)
def test_latency_rule(p99: float | None, samples: int, trips: bool) -> None:
    assert (latency_trip_reason(p99, samples, 100.0) is not None) is trips


# --- report shaping (malformed inputs from the search and testing servers) ---------------------------------


@pytest.mark.parametrize(
    ("report", "fragment"),
    [
        (None, "expected the search server's report (a dict), received None"),
        ({"status": "error", "reason": "root missing"}, "codebase scan failed: root missing"),
        ({"status": "error"}, "codebase scan failed: no reason given"),
        ({"status": "weird", "parameters": {}}, "expected a report with status 'ok'"),
        ({"status": "ok", "parameters": []}, "a 'parameters' object"),
    ],
)
def test_malformed_scan_report_is_an_error_status(report: Any, fragment: str) -> None:
    result = reports.scan_result(report, T0)
    assert result["status"] == "error"
    assert fragment in result["message"]
    assert (result["total_scans"], result["scanned_params"]) == (0, {})


def test_scan_deferred_by_the_search_server_is_deferred() -> None:
    result = reports.scan_result({"status": "deferred", "reason": "market hours"}, T0)
    assert (result["status"], result["reason"]) == ("deferred", "scan deferred by the search server: market hours")


def test_scan_report_counts_parameters() -> None:
    report = {
        "status": "ok",
        "parameters": {"max_daily_loss": {"usage_count": 3, "locations": [], "files": []}, "stop_loss": {}},
        "violations": [{"rule": "write_outside_allowed"}],
        "files_scanned": 12,
    }
    result = reports.scan_result(report, T0)
    assert (result["status"], result["total_scans"], result["violation_count"]) == ("completed", 2, 1)


@pytest.mark.parametrize(
    ("run", "expected"),
    [
        ({"coverage": 0.9}, 0.9),
        ({"coverage": 1}, 1.0),
        ({"coverage": None}, None),
        ({"coverage": True}, None),
        ({"coverage": "0.9"}, None),
        ({"coverage": 1.5}, None),
        ({"coverage": -0.1}, None),
        ("not a dict", None),
    ],
)
def test_coverage_figure_must_be_a_fraction(run: Any, expected: float | None) -> None:
    assert reports.coverage_of(run) == expected


@pytest.mark.parametrize(
    ("started_at", "fresh"),
    [
        ((T0 - timedelta(hours=1)).isoformat(), True),
        ((T0 - timedelta(hours=3)).isoformat(), False),
        ((T0 - timedelta(hours=1)).timestamp(), True),
        ("2026-11-21T19:00:00", True),  # naive means UTC
        ("last tuesday", False),
        (None, False),
    ],
)
def test_freshness_of_a_stored_result(started_at: Any, fresh: bool) -> None:
    assert reports.is_fresh({"coverage": 0.9, "started_at": started_at}, T0, 7200) is fresh


def test_latency_figures_from_malformed_metrics() -> None:
    assert reports.latency_figures({"latency_ms": "fast"})[2] == "no latency figures from the trade executor"
    assert reports.latency_figures({"latency_ms": {"p99": "1", "count": 5}})[2] is not None
    assert reports.latency_figures({"latency_ms": {"p99": 5.0, "count": 5}}) == (5.0, 5, None)


# --- process tree sampler -------------------------------------------------------------------------------


@settings(max_examples=50)
@given(st.lists(st.tuples(st.floats(0, 100), st.floats(0, 500)), max_size=6))
def test_sampler_sums_every_process_of_the_tree(children: list[tuple[float, float]]) -> None:
    procs = [FakeProc(pid=200 + i, cpu=cpu, rss_mb=rss) for i, (cpu, rss) in enumerate(children)]
    root = FakeProc(pid=100, cpu=1.0, rss_mb=10.0, children=procs)
    ticks = iter([10.0, 12.5])
    sampler = ProcessTreeSampler(root.handle(), clock=lambda: next(ticks))
    first = sampler.sample()
    second = sampler.sample()
    assert first.warming_up is True and second.warming_up is False
    assert (first.window_seconds, second.window_seconds) == (None, 2.5)
    assert second.processes == 1 + len(children)
    assert second.total_cpu_percent == pytest.approx(1.0 + sum(c for c, _ in children), abs=0.05)
    assert second.total_memory_mb == pytest.approx(10.0 + sum(r for _, r in children), abs=0.05)


def test_sampler_builds_its_root_lazily() -> None:
    built: list[int] = []

    def factory() -> Any:
        built.append(1)
        return FakeProc(pid=1).handle()

    sampler = ProcessTreeSampler(factory=factory)
    assert built == []
    sampler.sample()
    sampler.sample()
    assert built == [1]
