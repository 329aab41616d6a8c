"""The history of test runs in SQLite, for trends (dashboard charts, coverage drops) and restarts.

Every call goes through `asyncio.to_thread` and opens its own short-lived connection, so the event loop
never waits on the disk and no connection is shared between threads. A file that is not a usable
database is moved aside to `<name>.corrupt-<timestamp>` (kept for a human) and a fresh one is created.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import sqlite3
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

HISTORY_FILE_NAME = "testing_history.sqlite3"
DEFAULT_KEEP_RUNS = 1000
_SCHEMA_VERSION = 1
_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id TEXT NOT NULL,
    started_at TEXT NOT NULL,
    status TEXT NOT NULL,
    coverage REAL,
    fingerprint TEXT,
    result_json TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS runs_started ON runs (started_at);
"""
# the figures a trend needs; the full result stays in result_json
SUMMARY_KEYS = (
    "run_id",
    "started_at",
    "status",
    "coverage",
    "risk_coverage",
    "threshold",
    "meets_threshold",
    "passed",
    "failed",
    "skipped",
    "errors",
    "duration_seconds",
    "exit_code",
    "message",
)


class HistoryError(Exception):
    """The history could not be read or written (disk full, permissions); runs go on without it."""


def _utc_now() -> datetime:
    return datetime.now(UTC)


class HistoryStore:
    """Append-only run history with bounded size; newest-first reads."""

    def __init__(
        self,
        path: Path,
        *,
        keep: int = DEFAULT_KEEP_RUNS,
        clock: Callable[[], datetime] = _utc_now,
    ) -> None:
        if keep < 1:
            raise ValueError(f"keep must be at least 1 run, received {keep}")
        self.path = path
        self._keep = keep
        self._clock = clock
        self._checked = False
        # to_thread may run two calls at once; the first-open check and a move-aside must not interleave
        self._lock = threading.Lock()

    async def record(self, result: dict[str, Any]) -> None:
        """Store one run's result (needs run_id, started_at, status)."""
        await asyncio.to_thread(self.record_sync, result)

    async def recent(self, n: int) -> list[dict[str, Any]]:
        """The last `n` runs' summaries, newest first."""
        return await asyncio.to_thread(self.recent_sync, n)

    async def last_result(self) -> dict[str, Any] | None:
        """The newest run's full result, or None when there is none."""
        return await asyncio.to_thread(self.last_result_sync)

    def record_sync(self, result: dict[str, Any]) -> None:
        """Blocking `record`."""
        row = (
            str(result["run_id"]),
            str(result["started_at"]),
            str(result["status"]),
            result.get("coverage"),
            result.get("fingerprint"),
            json.dumps(result, default=str, sort_keys=True),
        )
        with self._connection() as db:
            db.execute(
                "INSERT INTO runs (run_id, started_at, status, coverage, fingerprint, result_json) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                row,
            )
            db.execute(
                "DELETE FROM runs WHERE seq NOT IN (SELECT seq FROM runs ORDER BY started_at DESC, seq DESC LIMIT ?)",
                (self._keep,),
            )

    def recent_sync(self, n: int) -> list[dict[str, Any]]:
        """Blocking `recent`."""
        with self._connection() as db:
            rows = db.execute(
                "SELECT result_json FROM runs ORDER BY started_at DESC, seq DESC LIMIT ?", (max(0, n),)
            ).fetchall()
        summaries = []
        for (raw,) in rows:
            result = self._decode(raw)
            if result is not None:
                summaries.append({key: result.get(key) for key in SUMMARY_KEYS})
        return summaries

    def last_result_sync(self) -> dict[str, Any] | None:
        """Blocking `last_result`."""
        with self._connection() as db:
            row = db.execute("SELECT result_json FROM runs ORDER BY started_at DESC, seq DESC LIMIT 1").fetchone()
        return None if row is None else self._decode(row[0])

    @staticmethod
    def _decode(raw: str) -> dict[str, Any] | None:
        try:
            value = json.loads(raw)
        except json.JSONDecodeError:
            logger.warning("skipping a history row that is not JSON")
            return None
        return value if isinstance(value, dict) else None

    @contextlib.contextmanager
    def _connection(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            if not self._checked:
                self._open_checked()
                self._checked = True
        try:
            db = sqlite3.connect(self.path, timeout=5.0)
        except sqlite3.Error as e:
            raise HistoryError(f"cannot open test history {self.path}: {e}") from e
        try:
            with db:  # commits on success, rolls back on error
                yield db
        except sqlite3.DatabaseError as e:
            raise HistoryError(f"test history {self.path} failed: {e}") from e
        finally:
            db.close()

    def _open_checked(self) -> None:
        """Create the schema; a file that is not a healthy SQLite database is moved aside and replaced."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise HistoryError(f"cannot create the folder for test history {self.path}: {e}") from e
        try:
            self._create_schema()
            return
        except sqlite3.OperationalError as e:
            if "locked" in str(e) or "unable to open" in str(e) or "readonly" in str(e):
                raise HistoryError(f"test history {self.path} is not usable: {e}") from e
            problem = e
        except sqlite3.DatabaseError as e:  # "file is not a database", "database disk image is malformed"
            problem = e
        aside = self.path.with_name(f"{self.path.name}.corrupt-{self._clock().strftime('%Y%m%dT%H%M%S%fZ')}")
        try:
            self.path.replace(aside)
        except OSError as e:
            raise HistoryError(f"test history {self.path} is corrupt ({problem}) and cannot be moved: {e}") from e
        logger.warning(
            "test history %s was corrupt (%s): kept as %s, starting a new history", self.path, problem, aside
        )
        try:
            self._create_schema()
        except sqlite3.Error as e:
            raise HistoryError(f"cannot create a new test history at {self.path}: {e}") from e

    def _create_schema(self) -> None:
        db = sqlite3.connect(self.path, timeout=5.0)
        try:
            check = db.execute("PRAGMA quick_check").fetchone()
            if check is None or check[0] != "ok":
                raise sqlite3.DatabaseError(f"integrity check failed: {check}")
            with db:
                db.executescript(_SCHEMA)
                db.execute(f"PRAGMA user_version = {_SCHEMA_VERSION}")
        finally:
            db.close()
