"""A state file that cannot be used halts the breaker (CORRUPT_STATE), is kept aside, and is alerted.

Each malformed case names its problem in the trip reason; the bad bytes survive as
`<name>.corrupt-<UTC timestamp>`; only a manual reset resumes trading.
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from core.breaker_rules import TradingState
from core.circuit_breaker import BreakerPersistenceError
from tests.circuit_breaker_support import T0, AlertRecorder, FakeClock, make_breaker

STAMP = "20260302T140000Z"  # T0 as the quarantine suffix


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(T0)


@pytest.fixture
def state_file(tmp_path: Path) -> Path:
    return tmp_path / "circuit_breaker.json"


@pytest.fixture
def halted_payload(tmp_path: Path) -> dict[str, Any]:
    """A valid record of a breaker halted by a daily-loss trip, with an error and a history entry."""
    source = tmp_path / "source" / "circuit_breaker.json"
    breaker = make_breaker(source, FakeClock(T0))
    breaker.update_equity(1000.0)
    breaker.record_error("timeout")
    breaker.update_equity(850.0)
    return json.loads(source.read_text(encoding="utf-8"))


RAW_CASES = [
    ("not-json", b"{this is not json", "not valid JSON"),
    ("empty", b"", "not valid JSON"),
    ("binary", b"\xff\xfe\x00\x9c garbage", "not valid JSON"),
    ("json-array", b"[1, 2, 3]", "should hold a JSON object, found list"),
    ("json-string", b'"HALTED"', "should hold a JSON object, found str"),
    ("json-null", b"null", "should hold a JSON object, found NoneType"),
]


def set_field(key: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def mutate(payload: dict[str, Any]) -> None:
        payload[key] = value

    return mutate


def drop_field(key: str) -> Callable[[dict[str, Any]], None]:
    def mutate(payload: dict[str, Any]) -> None:
        del payload[key]

    return mutate


def set_nested(outer: str, key: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def mutate(payload: dict[str, Any]) -> None:
        payload[outer][key] = value

    return mutate


SHAPE_CASES = [
    (
        "schema-2",
        set_field("schema_version", 2),
        "expected schema_version 1, received 2: the circuit-breaker state file was written by a newer release",
    ),
    ("schema-text", set_field("schema_version", "1"), "expected schema_version 1, received '1'"),
    ("schema-true", set_field("schema_version", True), "expected schema_version 1, received True"),
    ("schema-missing", drop_field("schema_version"), "'schema_version' is missing"),
    ("streak-missing", drop_field("consecutive_losses"), "'consecutive_losses' is missing"),
    ("mcp-missing", drop_field("mcp_integration"), "'mcp_integration' is missing"),
    ("trip-kind-missing", drop_field("trip_kind"), "'trip_kind' is missing"),
    ("streak-text", set_field("consecutive_losses", "2"), "'consecutive_losses' should be a non-negative integer"),
    ("streak-negative", set_field("consecutive_losses", -1), "should be a non-negative integer, found -1"),
    ("streak-bool", set_field("consecutive_losses", False), "should be a non-negative integer, found False"),
    ("streak-float", set_field("consecutive_losses", 2.5), "should be a non-negative integer, found 2.5"),
    ("equity-text", set_field("day_start_equity", "1000"), "'day_start_equity' should be a number"),
    ("equity-nan", set_field("day_start_equity", math.nan), "'day_start_equity' should be a number"),
    ("pnl-null", set_field("realized_pnl_today", None), "'realized_pnl_today' should be a number"),
    (
        "written-off-negative",
        set_field("daily_loss_written_off", -5),
        "'daily_loss_written_off' should be a number ≥ 0.0",
    ),
    ("unknown-kind", set_field("trip_kind", "meltdown"), "'trip_kind' should be one of"),
    ("naive-time", set_field("tripped_at", "2026-03-02T14:00:00"), "'tripped_at' should be an ISO 8601"),
    ("time-garbage", set_field("tripped_at", "yesterday"), "'tripped_at' should be an ISO 8601"),
    ("bad-day", set_field("trading_day", "02/03/2026"), "'trading_day' should be a date YYYY-MM-DD"),
    ("bad-state", set_field("state", "PAUSED"), "'state' should be 'ACTIVE' or 'HALTED'"),
    ("active-with-trip", set_field("state", "ACTIVE"), "ACTIVE but a daily_loss trip is recorded"),
    ("halted-without-trip", set_field("trip_kind", None), "HALTED but 'trip_kind' is null"),
    ("latch-without-end", set_field("halted_until", None), "'halted_until' is null"),
    ("reason-not-text", set_field("trip_reason", 42), "'trip_reason' should be a string"),
    ("figures-not-object", set_field("trip_figures", [1]), "'trip_figures' should be a JSON object"),
    ("history-not-array", set_field("trip_history", {}), "'trip_history' should be a JSON array"),
    ("history-entry-number", set_field("trip_history", [7]), "'trip_history[0]' should be a JSON object"),
    ("history-entry-kind", set_field("trip_history", [{"time": T0.isoformat()}]), "'trip_history[0].kind' is missing"),
    ("errors-bad-time", set_field("recent_errors", [{"at": "noon", "kind": "timeout"}]), "'recent_errors[0].at'"),
    ("errors-no-kind", set_field("recent_errors", [{"at": T0.isoformat()}]), "'recent_errors[0].kind' is missing"),
    ("mcp-enabled-text", set_nested("mcp_integration", "enabled", "yes"), "'mcp_integration.enabled'"),
    ("mcp-count-negative", set_nested("mcp_integration", "resource_checks", -2), "'mcp_integration.resource_checks'"),
    ("last-reset-text", set_field("last_reset", "never"), "'last_reset' should be a JSON object"),
]


def assert_halted_on_corrupt_state(state_file: Path, breaker: Any, problem: str, original: bytes) -> None:
    state = breaker.get_state()
    assert breaker.state is TradingState.HALTED
    assert not breaker.allows_new_entries()
    assert state["trip_kind"] == "corrupt_state"
    assert problem in state["trip_reason"]
    assert f"kept as {state_file.name}.corrupt-{STAMP}" in state["trip_reason"]
    assert state["halted_until"] is None
    kept = state_file.with_name(f"{state_file.name}.corrupt-{STAMP}")
    assert kept.read_bytes() == original  # the evidence is kept byte for byte
    assert json.loads(state_file.read_text(encoding="utf-8"))["trip_kind"] == "corrupt_state"


@pytest.mark.parametrize(
    ("raw", "problem"), [(raw, problem) for _, raw, problem in RAW_CASES], ids=[c[0] for c in RAW_CASES]
)
def test_unparsable_file_halts(
    state_file: Path, clock: FakeClock, raw: bytes, problem: str, caplog: pytest.LogCaptureFixture
) -> None:
    state_file.write_bytes(raw)
    alerts = AlertRecorder()

    with caplog.at_level(logging.CRITICAL, logger="core.circuit_breaker"):
        breaker = make_breaker(state_file, clock, alert=alerts)

    assert_halted_on_corrupt_state(state_file, breaker, problem, raw)
    assert any(r.levelno == logging.CRITICAL and problem in r.getMessage() for r in caplog.records)
    assert alerts.severities() == ["critical"]  # delivered at construction, no event loop running
    assert problem in alerts.sent[0][1]


@pytest.mark.parametrize(("mutate", "problem"), [c[1:] for c in SHAPE_CASES], ids=[c[0] for c in SHAPE_CASES])
def test_wrong_shape_halts(
    state_file: Path,
    clock: FakeClock,
    halted_payload: dict[str, Any],
    mutate: Callable[[dict[str, Any]], None],
    problem: str,
) -> None:
    mutate(halted_payload)
    raw = json.dumps(halted_payload).encode("utf-8")
    state_file.write_bytes(raw)

    breaker = make_breaker(state_file, clock)

    assert_halted_on_corrupt_state(state_file, breaker, problem, raw)


def test_a_directory_in_place_of_the_file_is_unreadable_and_halts(state_file: Path, clock: FakeClock) -> None:
    state_file.mkdir()
    (state_file / "inside.txt").write_text("kept\n")

    breaker = make_breaker(state_file, clock)

    state = breaker.get_state()
    assert state["trip_kind"] == "corrupt_state"
    assert "is a directory, expected a regular file" in state["trip_reason"]
    kept = state_file.with_name(f"{state_file.name}.corrupt-{STAMP}")
    assert (kept / "inside.txt").read_text() == "kept\n"
    assert state_file.is_file()


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads a chmod 000 file; the directory case covers unreadable")
def test_a_file_without_read_permission_halts(state_file: Path, clock: FakeClock) -> None:
    state_file.write_text("{}")
    state_file.chmod(0o000)

    breaker = make_breaker(state_file, clock)

    assert breaker.get_state()["trip_kind"] == "corrupt_state"
    assert "Permission denied" in breaker.get_state()["trip_reason"]


def test_a_second_corrupt_file_in_the_same_second_gets_its_own_name(state_file: Path, clock: FakeClock) -> None:
    state_file.write_bytes(b"first")
    make_breaker(state_file, clock)
    state_file.write_bytes(b"second")
    make_breaker(state_file, clock)

    assert state_file.with_name(f"{state_file.name}.corrupt-{STAMP}").read_bytes() == b"first"
    assert state_file.with_name(f"{state_file.name}.corrupt-{STAMP}-1").read_bytes() == b"second"


def test_corrupt_halt_survives_restarts_days_and_cooldowns_until_a_manual_reset(
    state_file: Path, clock: FakeClock
) -> None:
    state_file.write_bytes(b"\x00")
    make_breaker(state_file, clock, cooldown_seconds=1.0)
    clock.advance(days=3)

    restarted = make_breaker(state_file, clock, cooldown_seconds=1.0)
    assert restarted.state is TradingState.HALTED
    assert restarted.get_state()["trip_kind"] == "corrupt_state"
    restarted.update_equity(1000.0)
    restarted.record_trade_result(5.0)
    assert restarted.state is TradingState.HALTED

    restarted.reset("checked the kept file")
    assert restarted.state is TradingState.ACTIVE
    assert make_breaker(state_file, clock).state is TradingState.ACTIVE
    assert len(list(state_file.parent.glob("*.corrupt-*"))) == 1  # restarts did not quarantine the good file


@pytest.fixture
def array_state_file(state_file: Path) -> Path:
    state_file.write_bytes(b"[]")
    return state_file


async def test_corrupt_file_alert_is_sent_from_the_event_loop(array_state_file: Path, clock: FakeClock) -> None:
    state_file = array_state_file
    alerts = AlertRecorder()

    breaker = make_breaker(state_file, clock, alert=alerts)
    await breaker.drain_alerts()

    assert alerts.severities() == ["critical"]
    assert "corrupt_state" in alerts.sent[0][1]


def test_a_valid_file_with_unknown_extra_fields_is_restored(
    state_file: Path, clock: FakeClock, halted_payload: dict[str, Any]
) -> None:
    halted_payload["written_by_a_newer_minor_version"] = {"x": 1}
    state_file.write_text(json.dumps(halted_payload))

    breaker = make_breaker(state_file, clock)

    assert breaker.get_state()["trip_kind"] == "daily_loss"
    assert not list(state_file.parent.glob("*.corrupt-*"))


@pytest.mark.skipif(not Path("/proc/self/status").is_file(), reason="needs Linux /proc, where renames are refused")
def test_a_bad_file_that_cannot_be_moved_aside_refuses_to_start(clock: FakeClock) -> None:
    # /proc refuses renames even for root: a real filesystem saying no, not a mock
    with pytest.raises(BreakerPersistenceError, match=r"cannot be moved aside .*move it away by hand"):
        make_breaker(Path("/proc/self/status"), clock)
