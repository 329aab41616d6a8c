"""The testing server's SQLite history: order, bounds, corrupt files moved aside, unusable paths reported."""

from __future__ import annotations

import logging
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from mcp.testing.history import HistoryError, HistoryStore


def run(n: int, *, minutes: int, status: str = "passed", coverage: float | None = 0.9) -> dict:
    started = datetime(2026, 11, 21, 10, 0, tzinfo=UTC) + timedelta(minutes=minutes)
    return {
        "run_id": f"run{n}",
        "started_at": started.isoformat(),
        "status": status,
        "coverage": coverage,
        "passed": n,
        "failed": 0,
        "skipped": 0,
        "errors": 0,
        "fingerprint": f"fp{n}",
        "files": {"pkg/a.py": 0.5},
    }


def corrupt_copies(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.corrupt-*"))


FIXED_CLOCK = datetime(2026, 11, 21, 12, 30, 45, 123456, tzinfo=UTC)


async def test_runs_come_back_newest_first_whatever_the_insert_order(tmp_path: Path) -> None:
    store = HistoryStore(tmp_path / "h.sqlite3")
    for n, minutes in [(1, 0), (3, 20), (2, 10)]:
        await store.record(run(n, minutes=minutes))
    assert [r["run_id"] for r in await store.recent(10)] == ["run3", "run2", "run1"]
    assert [r["run_id"] for r in await store.recent(2)] == ["run3", "run2"]
    last = await store.last_result()
    assert last is not None and last["files"] == {"pkg/a.py": 0.5} and last["fingerprint"] == "fp3"
    summary = (await store.recent(1))[0]
    assert "files" not in summary and summary["coverage"] == 0.9


async def test_history_is_bounded(tmp_path: Path) -> None:
    store = HistoryStore(tmp_path / "h.sqlite3", keep=3)
    for n in range(6):
        await store.record(run(n, minutes=n))
    assert [r["run_id"] for r in await store.recent(10)] == ["run5", "run4", "run3"]


async def test_empty_history(tmp_path: Path) -> None:
    store = HistoryStore(tmp_path / "sub" / "dir" / "h.sqlite3")
    assert await store.recent(5) == []
    assert await store.last_result() is None


@pytest.mark.parametrize(
    "garbage",
    [b"this is not a database at all" * 100, b"SQLite format 3\x00" + b"\xff" * 4000, b"\x00" * 8192],
)
async def test_a_corrupt_file_is_moved_aside_and_replaced(
    tmp_path: Path, garbage: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "h.sqlite3"
    path.write_bytes(garbage)
    store = HistoryStore(path, clock=lambda: FIXED_CLOCK)
    with caplog.at_level(logging.WARNING):
        await store.record(run(1, minutes=0))
    aside = tmp_path / "h.sqlite3.corrupt-20261121T123045123456Z"
    assert aside.read_bytes() == garbage  # kept for a human, byte for byte
    assert [r["run_id"] for r in await store.recent(5)] == ["run1"]
    assert "was corrupt" in caplog.text and str(aside) in caplog.text


async def test_a_healthy_existing_history_is_kept(tmp_path: Path) -> None:
    path = tmp_path / "h.sqlite3"
    await HistoryStore(path).record(run(1, minutes=0))
    reopened = HistoryStore(path)
    await reopened.record(run(2, minutes=1))
    assert [r["run_id"] for r in await reopened.recent(5)] == ["run2", "run1"]
    assert corrupt_copies(tmp_path) == []


async def test_a_row_that_is_not_json_is_skipped(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "h.sqlite3"
    store = HistoryStore(path)
    await store.record(run(1, minutes=0))
    with sqlite3.connect(path) as db:
        db.execute("INSERT INTO runs (run_id, started_at, status, result_json) VALUES ('x', '2027', 'passed', '{bad')")
    db.close()
    assert [r["run_id"] for r in await store.recent(5)] == ["run1"]
    assert "not JSON" in caplog.text


async def test_a_folder_that_cannot_be_created_is_a_history_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("in the way")
    with pytest.raises(HistoryError, match="cannot create the folder"):
        await HistoryStore(tmp_path / "file" / "h.sqlite3").record(run(1, minutes=0))


async def test_a_path_that_is_a_folder_is_a_history_error_and_nothing_is_moved(tmp_path: Path) -> None:
    path = tmp_path / "h.sqlite3"
    path.mkdir()
    with pytest.raises(HistoryError, match="not usable"):
        await HistoryStore(path).record(run(1, minutes=0))
    assert corrupt_copies(tmp_path) == []


def test_keep_must_be_positive(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="at least 1"):
        HistoryStore(tmp_path / "h.sqlite3", keep=0)
