"""Hardened state-file reads (issue 8, item 6): whatever stands at a state file's path, the bot never hangs,
never reads without bound, and starts HALTED with a reason that says what was found.

The FIFO cases prove "no hang" with a real FIFO (os.mkfifo) and no writer: a plain open() of it would
block forever, so each such test runs under a short pytest timeout.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import pytest

from core.breaker_rules import TradingState
from core.integrations.mcp_breaker import BreakerState, BreakerStore
from core.integrations.readonly import FileStatus, read_state_file
from core.risk_snapshot import read_risk_snapshot
from tests.circuit_breaker_support import T0, FakeClock, make_breaker
from tests.test_main_process import run_main
from utils.atomic import MAX_STATE_FILE_BYTES, StateFileError, describe_file_type, read_json_object, read_regular_file

NO_HANG_SECONDS = 10


def make_fifo(path: Path) -> Path:
    os.mkfifo(path)
    return path


def make_directory(path: Path) -> Path:
    path.mkdir()
    (path / "inside.txt").write_text("a folder where a file should be")
    return path


def make_device(path: Path) -> Path:
    # creating a device node needs privileges a test should not rely on: a symlink to one is the same
    # thing to open() (it follows the link), and /dev/zero would never end if read whole
    path.symlink_to("/dev/zero")
    return path


def make_oversized(path: Path) -> Path:
    with path.open("wb") as handle:  # sparse: 200 MB on paper, nothing on disk
        handle.truncate(200 * 1024 * 1024)
    return path


BAD_FILES = [
    ("fifo", make_fifo, "is a FIFO (named pipe), expected a regular file"),
    ("directory", make_directory, "is a directory, expected a regular file"),
    ("device", make_device, "is a character device, expected a regular file"),
    ("oversized", make_oversized, f"is 209715200 bytes, expected at most {MAX_STATE_FILE_BYTES}"),
]


@pytest.mark.parametrize(
    ("mode", "expected"),
    [
        (0o100644, None),
        (0o040755, "a directory"),
        (0o010644, "a FIFO (named pipe)"),
        (0o020644, "a character device"),
        (0o060644, "a block device"),
        (0o140755, "a socket"),
    ],
)
def test_describe_file_type_names_what_stands_there(mode: int, expected: str | None) -> None:
    assert describe_file_type(mode) == expected


@pytest.mark.timeout(NO_HANG_SECONDS)
@pytest.mark.parametrize(("name", "make", "problem"), BAD_FILES, ids=[case[0] for case in BAD_FILES])
def test_reading_a_non_regular_or_huge_file_is_a_clear_error(tmp_path: Path, name: str, make, problem: str) -> None:  # type: ignore[no-untyped-def]
    path = make(tmp_path / "circuit_breaker.json")
    with pytest.raises(StateFileError, match="expected") as refused:
        read_json_object(path)
    assert problem in str(refused.value)
    assert str(path) in str(refused.value)


def test_a_file_at_the_cap_is_read_and_one_byte_more_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    path.write_bytes(b"x" * 100)
    assert read_regular_file(path, max_bytes=100) == b"x" * 100
    path.write_bytes(b"x" * 101)
    with pytest.raises(StateFileError, match="is 101 bytes, expected at most 100"):
        read_regular_file(path, max_bytes=100)
    assert read_regular_file(tmp_path / "missing.json") is None


@pytest.mark.timeout(NO_HANG_SECONDS)
@pytest.mark.parametrize(("name", "make", "problem"), BAD_FILES, ids=[case[0] for case in BAD_FILES])
def test_the_breaker_starts_halted_and_moves_the_bad_entry_aside(tmp_path: Path, name: str, make, problem: str) -> None:  # type: ignore[no-untyped-def]
    state_file = make(tmp_path / "circuit_breaker.json")

    breaker = make_breaker(state_file, FakeClock(T0))

    assert breaker.state is TradingState.HALTED
    state = breaker.get_state()
    assert state["trip_kind"] == "corrupt_state"
    assert problem in state["trip_reason"]
    assert "--reset-circuit-breaker" in state["trip_reason"]
    kept = list(tmp_path.glob("circuit_breaker.json.corrupt-*"))
    assert len(kept) == 1, "the bad entry is kept aside for a person to look at"
    assert state_file.is_file() and not state_file.is_symlink()  # a fresh, regular state file in its place
    assert json.loads(state_file.read_text())["state"] == "HALTED"


@pytest.mark.timeout(NO_HANG_SECONDS)
def test_the_sidecars_read_only_view_reports_a_fifo_without_hanging(tmp_path: Path) -> None:
    path = make_fifo(tmp_path / "risk_state.json")
    reading = read_state_file(path, now_epoch=time.time(), stale_after_seconds=None)
    assert reading.status is FileStatus.CORRUPT
    assert "is a FIFO (named pipe), expected a regular file" in reading.reason


@pytest.mark.timeout(NO_HANG_SECONDS)
@pytest.mark.parametrize(("name", "make", "problem"), BAD_FILES, ids=[case[0] for case in BAD_FILES])
def test_the_sidecars_mcp_breaker_starts_open_and_moves_the_bad_entry_aside(
    tmp_path: Path,
    name: str,
    make,
    problem: str,  # type: ignore[no-untyped-def]
) -> None:
    path = make(tmp_path / "mcp_circuit_breaker.json")
    record, reason = BreakerStore(path, lambda: T0).load()
    assert record.state is BreakerState.OPEN
    assert reason is not None and problem in reason and "kept as mcp_circuit_breaker.json.corrupt-" in reason


@pytest.mark.integration
@pytest.mark.timeout(90)
def test_main_with_a_fifo_as_breaker_file_starts_halted_instead_of_hanging(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    make_fifo(state / "circuit_breaker.json")

    try:
        done = run_main(tmp_path, "--duration", "1", timeout=60)
    except subprocess.TimeoutExpired:  # pragma: no cover - the failure this test exists to catch
        pytest.fail("main.py hung on a FIFO in place of circuit_breaker.json")

    assert done.returncode == 0, done.stderr[-2000:]
    assert "is a FIFO (named pipe), expected a regular file" in done.stderr
    payload = json.loads((state / "circuit_breaker.json").read_text())
    assert payload["state"] == "HALTED"
    assert payload["trip_kind"] == "corrupt_state"
    assert list(state.glob("circuit_breaker.json.corrupt-*"))


@pytest.mark.integration
@pytest.mark.timeout(90)
def test_main_with_a_directory_as_risk_snapshot_moves_it_aside_and_publishes(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    make_directory(state / "risk_state.json")

    done = run_main(tmp_path, "--duration", "1", timeout=60)

    assert done.returncode == 0, done.stderr[-2000:]
    assert "was a directory, not the risk snapshot file: moved aside as risk_state.json.corrupt-" in done.stderr
    assert read_risk_snapshot(state / "risk_state.json")["trading_mode"] == "paper"
    [kept] = state.glob("risk_state.json.corrupt-*")
    assert (kept / "inside.txt").exists()
    assert "could not write the risk snapshot" not in done.stderr
