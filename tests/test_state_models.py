"""The one reader of the bot's two state files (core.state_reader, over the models of core.state_models),
its one error model, and the writers.

Every malformed case goes through `read_breaker_state` and `read_snapshot_state` and must come back as a
typed problem (kind + a message naming the file, what was expected, what was found); files written by
the previous release (tests/fixtures/state_v1/, produced by `main.py --duration 4` at commit 4769be0) must
keep reading; and the bot never writes a file its own reader would refuse.
"""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from core.breaker_io import StateStore
from core.breaker_rules import TradingState, TripKind
from core.breaker_state import record_from_document, record_to_json
from core.integrations.readonly import SnapshotBackedBreakerView, SnapshotBackedExecutorView
from core.risk_snapshot import (
    RiskSnapshotWriter,
    SnapshotMissingError,
    SnapshotSchemaError,
    read_risk_snapshot,
)
from core.state_models import BreakerStateFile, RiskSnapshot
from core.state_reader import (
    StateFileMissing,
    StateFileProblem,
    StateProblem,
    StateRead,
    StateSchemaMismatch,
    encode_state,
    read_breaker_state,
    read_snapshot_state,
)
from mcp.monitoring.sources import read_breaker_file, read_snapshot_file
from tests.circuit_breaker_support import FakeClock, make_breaker

V1 = Path(__file__).resolve().parent / "fixtures" / "state_v1"

Reader = Callable[[Path], StateRead[Any]]
READERS: dict[str, tuple[str, Reader]] = {
    "breaker": ("circuit_breaker.json", read_breaker_state),
    "breaker-complete": ("circuit_breaker.json", lambda path: read_breaker_state(path, complete=True)),
    "snapshot": ("risk_state.json", read_snapshot_state),
}


def huge(path: Path) -> None:
    with path.open("wb") as handle:  # sparse: 200 MB on paper, nothing on disk
        handle.truncate(200 * 1024 * 1024)


def folder(path: Path) -> None:
    path.mkdir()


# (id, what stands at the path: bytes, a JSON value, or a maker; the kind; a fragment of the message)
MALFORMED: list[tuple[str, Any, StateProblem, str]] = [
    ("missing", None, StateProblem.MISSING, "does not exist: the bot has not written it yet"),
    ("empty", b"", StateProblem.CORRUPT, "is not valid JSON"),
    ("not-json", b"{this is not json", StateProblem.CORRUPT, "is not valid JSON"),
    ("not-utf8", b"\xff\xfe\x00garbage", StateProblem.CORRUPT, "is not valid JSON"),
    ("array", b"[1, 2]", StateProblem.CORRUPT, "should hold a JSON object, found list"),
    ("null", b"null", StateProblem.CORRUPT, "should hold a JSON object, found NoneType"),
    ("string", b'"ACTIVE"', StateProblem.CORRUPT, "should hold a JSON object, found str"),
    ("nan", b'{"schema_version": 1, "day_start_equity": NaN}', StateProblem.CORRUPT, "found NaN (NaN and Infinity"),
    (
        "inf",
        b'{"schema_version": 1, "x": {"y": [Infinity]}}',
        StateProblem.CORRUPT,
        "field 'x.y[0]' should be a number",
    ),
    ("-inf", b'{"schema_version": 1, "last_equity": -Infinity}', StateProblem.CORRUPT, "found -Infinity"),
    ("no-schema", {"state": "ACTIVE"}, StateProblem.WRONG_SCHEMA, "field 'schema_version' is missing"),
    ("schema-text", {"schema_version": "1"}, StateProblem.WRONG_SCHEMA, "expected schema_version 1, received '1'"),
    ("schema-bool", {"schema_version": True}, StateProblem.WRONG_SCHEMA, "expected schema_version 1, received True"),
    ("schema-0", {"schema_version": 0}, StateProblem.WRONG_SCHEMA, "restart both from the same version"),
    ("newer", {"schema_version": 2}, StateProblem.NEWER_SCHEMA, "received 2: "),
    ("huge", huge, StateProblem.UNREADABLE, "is 209715200 bytes, expected at most"),
    ("directory", folder, StateProblem.UNREADABLE, "is a directory, expected a regular file"),
]


def place(path: Path, content: Any) -> None:
    if content is None:
        return
    if callable(content):
        content(path)
    elif isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(json.dumps(content))


@pytest.mark.parametrize("reader_id", list(READERS))
@pytest.mark.parametrize(("content", "kind", "fragment"), [c[1:] for c in MALFORMED], ids=[c[0] for c in MALFORMED])
def test_every_malformed_file_is_a_typed_problem_with_a_clear_message(
    tmp_path: Path, reader_id: str, content: Any, kind: StateProblem, fragment: str
) -> None:
    name, read = READERS[reader_id]
    path = tmp_path / name
    place(path, content)
    before = sorted(p.name for p in tmp_path.iterdir())

    reading = read(path)

    assert reading.document is None and reading.payload is None
    problem = reading.problem
    assert problem is not None and problem.kind is kind
    assert fragment in str(problem) and str(path) in str(problem)
    with pytest.raises(StateFileProblem) as raised:
        reading.require()
    assert raised.value is problem
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # a reader never repairs or moves a file


def test_the_newer_schema_message_says_what_to_do(tmp_path: Path) -> None:
    path = tmp_path / "risk_state.json"
    path.write_text(json.dumps({"schema_version": 3, "pid": 1}))
    problem = read_snapshot_state(path).problem
    assert problem is not None and problem.kind is StateProblem.NEWER_SCHEMA
    assert "the risk snapshot was written by a newer release; run the bot and the sidecar from the same release" in (
        str(problem)
    )


@pytest.mark.parametrize(
    ("reader_id", "payload", "fragment"),
    [
        ("snapshot", {"pid": "4242"}, "field 'pid' should be an integer, found '4242' (str)"),
        ("snapshot", {"pid": True}, "field 'pid' should be an integer, found True (bool)"),
        ("snapshot", {"updated_at_epoch": "now"}, "field 'updated_at_epoch' should be a number, found 'now'"),
        ("snapshot", {"positions": [{}, 7]}, "field 'positions[1]' should be a JSON object, found 7 (int)"),
        ("snapshot", {"latency_ms": [1]}, "field 'latency_ms' should be a JSON object, found [1] (list)"),
        ("snapshot", {"rss_mb": None}, "field 'rss_mb' should be a number, found None"),
        ("breaker", {"state": "PAUSED"}, "field 'state' should be 'ACTIVE' or 'HALTED', found 'PAUSED'"),
        ("breaker", {"consecutive_losses": -1}, "field 'consecutive_losses' should be a non-negative integer"),
        ("breaker", {"trip_history": [{"kind": "meltdown"}]}, "field 'trip_history[0].kind' should be one of"),
        ("breaker", {"tripped_at": "2026-03-02T14:00:00"}, "should be an ISO 8601 date-time with a UTC offset"),
        ("breaker", {"mcp_integration": {"enabled": "yes"}}, "field 'mcp_integration.enabled' should be true or false"),
        ("breaker", {"daily_loss": "3"}, "field 'daily_loss' should be a number, found '3' (str)"),
    ],
)
def test_a_field_of_the_wrong_type_is_wrong_schema_naming_the_field(
    tmp_path: Path, reader_id: str, payload: dict[str, Any], fragment: str
) -> None:
    name, read = READERS[reader_id]
    path = tmp_path / name
    path.write_text(json.dumps({"schema_version": 1, **payload}))
    problem = read(path).problem
    assert problem is not None and problem.kind is StateProblem.WRONG_SCHEMA
    assert fragment in str(problem)
    assert isinstance(problem, StateSchemaMismatch)


def test_a_partial_breaker_record_is_shown_by_the_sidecar_but_never_restored(tmp_path: Path) -> None:
    path = tmp_path / "circuit_breaker.json"
    path.write_text(json.dumps({"schema_version": 1, "state": "ACTIVE", "daily_loss": 3.0}))
    shown = read_breaker_state(path)
    assert shown.problem is None and shown.payload == {"schema_version": 1, "state": "ACTIVE", "daily_loss": 3.0}
    restored = read_breaker_state(path, complete=True)
    assert restored.problem is not None and "field 'trip_kind' is missing" in str(restored.problem)


def test_the_old_error_names_are_the_one_error_model(tmp_path: Path) -> None:
    assert SnapshotMissingError is StateFileMissing and SnapshotSchemaError is StateSchemaMismatch
    with pytest.raises(SnapshotMissingError):
        read_risk_snapshot(tmp_path / "risk_state.json")
    (tmp_path / "risk_state.json").write_text('{"schema_version": 2}')
    with pytest.raises(SnapshotSchemaError) as raised:
        read_risk_snapshot(tmp_path / "risk_state.json")
    assert raised.value.kind is StateProblem.NEWER_SCHEMA


def test_every_reader_gives_the_same_answer_for_the_same_file(tmp_path: Path) -> None:
    path = tmp_path / "risk_state.json"
    path.write_text(json.dumps({"schema_version": 1, "pid": "x"}))
    message = str(read_snapshot_state(path).problem)
    view = SnapshotBackedExecutorView(path).snapshot()["view"]
    assert (view["status"], view["reason"]) == ("wrong_schema", message)
    assert read_snapshot_file(path).problem == message
    with pytest.raises(SnapshotSchemaError, match="field 'pid' should be an integer"):
        read_risk_snapshot(path)
    breaker = tmp_path / "circuit_breaker.json"
    breaker.write_text(json.dumps({"schema_version": 9}))
    assert SnapshotBackedBreakerView(breaker).get_state()["view"]["status"] == "wrong_schema"
    assert read_breaker_file(breaker).problem == str(read_breaker_state(breaker).problem)


# --- files written by the previous release (schema version 1) -----------------------------------------


def test_a_breaker_file_of_the_previous_release_restores_and_is_rewritten_without_losing_a_key(
    tmp_path: Path,
) -> None:
    old = json.loads((V1 / "circuit_breaker.json").read_text())
    document = read_breaker_state(V1 / "circuit_breaker.json", complete=True).require()
    record = record_from_document(document)
    assert record.state is TradingState.HALTED and record.trip is not None
    assert record.trip.kind is TripKind.CONSECUTIVE_LOSSES
    assert record.trip_history[0]["time"] == old["tripped_at"]  # times keep their exact text

    state_file = tmp_path / "circuit_breaker.json"
    shutil.copy(V1 / "circuit_breaker.json", state_file)
    tripped = datetime.fromisoformat(old["tripped_at"])
    breaker = make_breaker(state_file, FakeClock(tripped + timedelta(minutes=1)), consecutive_loss_limit=5)
    assert breaker.state is TradingState.HALTED
    assert breaker.get_state()["trip_reason"] == old["trip_reason"]
    breaker.record_error("timeout")  # a change: the breaker rewrites its file through the model
    rewritten = json.loads(state_file.read_text())
    assert set(old) <= set(rewritten)
    assert rewritten["recent_errors"][0]["kind"] == "timeout"
    assert read_breaker_state(state_file, complete=True).problem is None


def test_a_snapshot_of_the_previous_release_reads_everywhere(tmp_path: Path) -> None:
    path = V1 / "risk_state.json"
    old = json.loads(path.read_text())
    assert read_risk_snapshot(path) == old
    assert read_snapshot_file(path).payload == old
    view = SnapshotBackedExecutorView(path, clock=lambda: old["updated_at_epoch"] + 1.0).snapshot()
    assert view["view"]["status"] == "ok"
    assert {key: value for key, value in view.items() if key != "view"} == old
    # and written again by this release, it reads back to the same content
    writer = RiskSnapshotWriter(tmp_path / "risk_state.json")
    assert writer.flush(old) is True
    assert read_risk_snapshot(tmp_path / "risk_state.json") == old


# --- the writers go through the same models ------------------------------------------------------------


def test_the_snapshot_writer_refuses_a_payload_its_reader_would_refuse(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "risk_state.json"
    writer = RiskSnapshotWriter(path)
    good = json.loads((V1 / "risk_state.json").read_text())
    with caplog.at_level(logging.ERROR, logger="core.risk_snapshot"):
        assert writer.flush({**good, "rss_mb": float("nan")}) is False
    assert writer.write_errors == 1 and not path.exists()
    assert "field 'rss_mb' should be a number, found nan" in caplog.text and "a bug" in caplog.text
    assert writer.flush(good) is True
    assert path.read_bytes() == encode_state(RiskSnapshot, good)  # the bytes are the model's serialisation


def test_the_breaker_store_refuses_a_record_it_could_not_restore(tmp_path: Path) -> None:
    path = tmp_path / "circuit_breaker.json"
    store = StateStore(path)
    breaker = make_breaker(tmp_path / "source.json", FakeClock())
    payload = breaker.get_state()
    error = store.write(1, {**payload, "consecutive_losses": -1})
    assert isinstance(error, StateFileProblem) and "field 'consecutive_losses'" in str(error)
    assert not path.exists()
    assert store.write(2, payload) is None
    assert read_breaker_state(path, complete=True).problem is None


def test_a_breaker_record_survives_the_round_trip_through_its_file(tmp_path: Path) -> None:
    clock = FakeClock()
    state_file = tmp_path / "circuit_breaker.json"
    breaker = make_breaker(state_file, clock)
    breaker.update_equity(1000.0)
    breaker.record_error("timeout")
    breaker.record_trade_result(-4.0)
    breaker.update_equity(850.0)  # a daily-loss trip, with history, errors and figures
    written = json.loads(state_file.read_text())
    document = read_breaker_state(state_file, complete=True).require()
    assert isinstance(document, BreakerStateFile)
    core = record_to_json(record_from_document(document))
    mcp = core.pop("mcp_integration")
    assert {key: written[key] for key in core} == core
    assert mcp.items() <= written["mcp_integration"].items()  # the file adds the derived limits
    assert core["trip_kind"] == "daily_loss" and core["recent_errors"] and core["trip_history"]
