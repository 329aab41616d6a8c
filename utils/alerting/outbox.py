"""The alert outbox: SQLite (WAL) in STATE_DIR, written before any send, so no alert is lost.

Each alert becomes one row per channel (`telegram` to one chat, `alertmanager`), pending until a
delivery succeeds (sent) or is refused for good (dead letter, kept for the operator). A channel and
destination form a queue delivered strictly in id order. Several processes share the file (the bot and
the sidecar): per channel, only the holder of that channel's delivery lease sends, so nothing goes out
twice and a process without a channel never holds up that channel's queue.

Every SQLite call runs on one dedicated thread, never on the event loop: a single thread keeps the
calls in the order they were made (inserts keep the order of the alerts) and the default thread pool,
busy with scans, can never hold up an alert. A corrupt file is moved aside as `<name>.corrupt-<ts>`
and a fresh outbox created, with a loud log line; `recovered_from` tells the pipeline to alert.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any, TypeVar

logger = logging.getLogger("utils.alerting.outbox")

OUTBOX_FILE_NAME = "alerts_outbox.sqlite3"
SCHEMA_VERSION = 1
MEMORY = ":memory:"
_CORRUPT_CODES = {11, 26}  # SQLITE_CORRUPT, SQLITE_NOTADB
_LEASE_NAME = "delivery"
_T = TypeVar("_T")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    alert_id TEXT NOT NULL,
    channel TEXT NOT NULL,
    destination TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    alert_key TEXT,
    severity TEXT NOT NULL,
    kind TEXT NOT NULL,
    payload TEXT NOT NULL,
    state TEXT NOT NULL DEFAULT 'pending',
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at REAL NOT NULL,
    created_at REAL NOT NULL,
    finished_at REAL,
    last_error TEXT
);
CREATE INDEX IF NOT EXISTS outbox_queue ON outbox (channel, destination, state, id);
CREATE INDEX IF NOT EXISTS outbox_created ON outbox (created_at);
CREATE TABLE IF NOT EXISTS lease (name TEXT PRIMARY KEY, owner TEXT NOT NULL, expires_at REAL NOT NULL);
"""


class RowState(StrEnum):
    PENDING = "pending"
    SENT = "sent"
    DEAD = "dead"


class OutboxError(Exception):
    """The outbox file cannot be opened or written (permissions, disk); see the message for the path."""


@dataclass(frozen=True)
class NewRow:
    """One channel's copy of an alert, as the pipeline hands it to `Outbox.enqueue`."""

    alert_id: str
    channel: str
    destination: str
    fingerprint: str
    alert_key: str | None
    severity: str
    kind: str
    payload: str


@dataclass(frozen=True)
class OutboxRow:
    id: int
    alert_id: str
    channel: str
    destination: str
    fingerprint: str
    alert_key: str | None
    severity: str
    kind: str
    payload: str
    state: RowState
    attempts: int
    next_attempt_at: float
    created_at: float
    finished_at: float | None
    last_error: str | None

    @property
    def queue(self) -> tuple[str, str]:
        """The (channel, destination) queue this row is delivered in."""
        return (self.channel, self.destination)


_COLUMNS = (
    "id, alert_id, channel, destination, fingerprint, alert_key, severity, kind, payload, state, attempts, "
    "next_attempt_at, created_at, finished_at, last_error"
)


def _row(values: Sequence[Any]) -> OutboxRow:
    return OutboxRow(*values[:9], RowState(values[9]), *values[10:])  # type: ignore[call-arg]


def corrupt_name(path: Path, now: float) -> Path:
    """Where a corrupt outbox is moved: `<name>.corrupt-<UTC timestamp>`."""
    stamp = datetime.fromtimestamp(now, UTC).strftime("%Y%m%dT%H%M%S.%fZ")
    return path.with_name(f"{path.name}.corrupt-{stamp}")


class Outbox:
    """The SQLite outbox; `await open()` first, `await close()` last. `path=":memory:"` keeps it in memory."""

    def __init__(
        self, path: Path | str, *, clock: Callable[[], float] = time.time, busy_timeout_ms: int = 5000
    ) -> None:
        self.path = path if path == MEMORY else Path(path)
        self._clock = clock
        self._busy_timeout_ms = busy_timeout_ms
        self._executor: ThreadPoolExecutor | None = None
        self._conn: sqlite3.Connection | None = None
        self.recovered_from: Path | None = None

    # --- lifecycle -------------------------------------------------------------------------------
    async def open(self) -> None:
        """Open (and create) the outbox; a corrupt file is moved aside. Raises OutboxError if impossible."""
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="alert-outbox")
        await self._call(self._open_sync)

    async def close(self) -> None:
        """Close the connection and its thread."""
        if self._executor is None:
            return
        try:
            await self._call(self._close_sync)
        finally:
            self._executor.shutdown(wait=False)
            self._executor = None

    async def _call(self, fn: Callable[..., _T], *args: Any) -> _T:
        if self._executor is None:
            raise OutboxError(f"the outbox {self.path} is not open: call `await outbox.open()` first")
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(str(self.path), isolation_level=None, timeout=self._busy_timeout_ms / 1000)
        try:
            conn.execute(f"PRAGMA busy_timeout = {int(self._busy_timeout_ms)}")
            # checked before anything writes, so a corrupt file is moved aside exactly as it was found
            check = conn.execute("PRAGMA quick_check").fetchone()
            if check is None or check[0] != "ok":
                raise sqlite3.DatabaseError(f"quick_check reported {check!r}")
            if self.path != MEMORY:
                conn.execute("PRAGMA journal_mode = WAL")
            # an alert acknowledged to its caller must survive a crash of the process: fsync each commit
            conn.execute("PRAGMA synchronous = FULL")
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version not in (0, SCHEMA_VERSION):
                raise OutboxError(
                    f"the outbox {self.path} has schema version {version}, expected {SCHEMA_VERSION}: "
                    "it was written by another version of the bot; move it aside to start a fresh one"
                )
            conn.executescript(_SCHEMA)
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        except Exception:
            conn.close()
            raise
        return conn

    def _open_sync(self) -> None:
        if self._conn is not None:
            return
        if isinstance(self.path, Path):
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as e:
                raise OutboxError(f"cannot create the outbox folder {self.path.parent}: {e}") from e
        created = isinstance(self.path, Path) and not self.path.exists()
        try:
            self._conn = self._connect()
        except OutboxError:
            raise
        except sqlite3.DatabaseError as e:
            code = getattr(e, "sqlite_errorcode", None)
            corrupt = code in _CORRUPT_CODES or "quick_check" in str(e) or "not a database" in str(e)
            if not corrupt or not isinstance(self.path, Path):
                raise OutboxError(f"cannot open the alert outbox {self.path}: {e} (check permissions and disk)") from e
            self.recovered_from = self._move_aside(self.path)
            logger.error(
                "ALERT OUTBOX CORRUPT: %s could not be read (%s); moved it aside to %s and started a fresh "
                "outbox. Undelivered alerts in the old file were not sent; inspect it with sqlite3.",
                self.path,
                e,
                self.recovered_from,
            )
            try:
                self._conn = self._connect()
            except sqlite3.DatabaseError as again:
                raise OutboxError(f"cannot create a fresh alert outbox at {self.path}: {again}") from again
            created = True
        if created and isinstance(self.path, Path):
            # alert texts are operator-only reading (SQLite gives the -wal/-shm files the same mode)
            try:
                self.path.chmod(0o600)
            except OSError as e:
                logger.warning("could not restrict the alert outbox %s to its owner: %s", self.path, e)

    def _move_aside(self, path: Path) -> Path:
        target = corrupt_name(path, self._clock())
        for suffix in ("", "-wal", "-shm"):
            source = path.with_name(path.name + suffix)
            if source.exists():
                source.replace(target.with_name(target.name + suffix))
        return target

    def _close_sync(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _db(self) -> sqlite3.Connection:
        if self._conn is None:
            raise OutboxError(f"the outbox {self.path} is closed")
        return self._conn

    # --- writes ----------------------------------------------------------------------------------
    async def enqueue(self, rows: Sequence[NewRow]) -> list[int]:
        """Insert the rows (pending, due now) in one transaction; their ids, in order."""
        return await self._call(self._enqueue_sync, list(rows), self._clock())

    def _enqueue_sync(self, rows: list[NewRow], now: float) -> list[int]:
        db = self._db()
        ids = []
        db.execute("BEGIN IMMEDIATE")
        try:
            for row in rows:
                cursor = db.execute(
                    "INSERT INTO outbox (alert_id, channel, destination, fingerprint, alert_key, severity, kind, "
                    "payload, next_attempt_at, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        row.alert_id,
                        row.channel,
                        row.destination,
                        row.fingerprint,
                        row.alert_key,
                        row.severity,
                        row.kind,
                        row.payload,
                        now,
                        now,
                    ),
                )
                ids.append(int(cursor.lastrowid or 0))
            db.execute("COMMIT")
        except Exception:
            db.execute("ROLLBACK")
            raise
        return ids

    async def mark_sent(self, row_id: int) -> None:
        """The row was delivered."""
        await self._call(self._finish_sync, row_id, RowState.SENT, None)

    async def mark_dead(self, row_id: int, error: str) -> None:
        """The row was refused for good; kept as a dead letter with the reason."""
        await self._call(self._finish_sync, row_id, RowState.DEAD, error)

    def _finish_sync(self, row_id: int, state: RowState, error: str | None) -> None:
        self._db().execute(
            "UPDATE outbox SET state = ?, attempts = attempts + 1, finished_at = ?, last_error = ? WHERE id = ?",
            (state.value, self._clock(), error, row_id),
        )

    async def reschedule(self, row_id: int, next_attempt_at: float, error: str) -> None:
        """The attempt failed and will be retried at `next_attempt_at`."""
        await self._call(self._reschedule_sync, row_id, next_attempt_at, error)

    def _reschedule_sync(self, row_id: int, next_attempt_at: float, error: str) -> None:
        self._db().execute(
            "UPDATE outbox SET attempts = attempts + 1, next_attempt_at = ?, last_error = ? WHERE id = ?",
            (next_attempt_at, error, row_id),
        )

    async def requeue_dead(self, channel: str | None = None) -> int:
        """Make dead letters pending again (after the operator fixed the chat or token); how many."""
        return await self._call(self._requeue_sync, channel, self._clock())

    def _requeue_sync(self, channel: str | None, now: float) -> int:
        sql = "UPDATE outbox SET state = 'pending', next_attempt_at = ?, finished_at = NULL WHERE state = 'dead'"
        args: tuple[Any, ...] = (now,)
        if channel is not None:
            sql += " AND channel = ?"
            args += (channel,)
        return self._db().execute(sql, args).rowcount

    async def prune(self, sent_older_than: float, dead_older_than: float) -> int:
        """Delete sent rows finished before `sent_older_than` and dead ones before `dead_older_than`."""
        return await self._call(self._prune_sync, sent_older_than, dead_older_than)

    def _prune_sync(self, sent_before: float, dead_before: float) -> int:
        return (
            self._db()
            .execute(
                "DELETE FROM outbox WHERE (state = 'sent' AND finished_at < ?) OR (state = 'dead' AND finished_at < ?)",
                (sent_before, dead_before),
            )
            .rowcount
        )

    # --- reads -----------------------------------------------------------------------------------
    async def head(self, channel: str, destination: str) -> OutboxRow | None:
        """The oldest pending row of a queue: nothing later in that queue goes out before it."""
        return await self._call(self._head_sync, channel, destination)

    def _head_sync(self, channel: str, destination: str) -> OutboxRow | None:
        values = (
            self._db()
            .execute(
                f"SELECT {_COLUMNS} FROM outbox WHERE channel = ? AND destination = ? AND state = 'pending' "
                "ORDER BY id LIMIT 1",
                (channel, destination),
            )
            .fetchone()
        )
        return None if values is None else _row(values)

    async def pending_queues(self) -> list[tuple[str, str]]:
        """Every (channel, destination) with something pending."""
        return await self._call(self._queues_sync)

    def _queues_sync(self) -> list[tuple[str, str]]:
        rows = self._db().execute("SELECT DISTINCT channel, destination FROM outbox WHERE state = 'pending'")
        return [(str(channel), str(destination)) for channel, destination in rows.fetchall()]

    async def states(self, row_ids: Sequence[int]) -> dict[int, RowState]:
        """The state of each of these rows (missing ids are left out)."""
        return await self._call(self._states_sync, list(row_ids))

    def _states_sync(self, row_ids: list[int]) -> dict[int, RowState]:
        if not row_ids:
            return {}
        marks = ",".join("?" * len(row_ids))
        rows = self._db().execute(f"SELECT id, state FROM outbox WHERE id IN ({marks})", row_ids).fetchall()
        return {int(row_id): RowState(state) for row_id, state in rows}

    async def rows(self, state: RowState | None = None, channel: str | None = None) -> list[OutboxRow]:
        """Rows in id order, optionally of one state and channel (operators, tests)."""
        return await self._call(self._rows_sync, state, channel)

    def _rows_sync(self, state: RowState | None, channel: str | None) -> list[OutboxRow]:
        sql, args = f"SELECT {_COLUMNS} FROM outbox WHERE 1 = 1", []
        if state is not None:
            sql += " AND state = ?"
            args.append(state.value)
        if channel is not None:
            sql += " AND channel = ?"
            args.append(channel)
        return [_row(values) for values in self._db().execute(sql + " ORDER BY id", args).fetchall()]

    async def counts(self) -> dict[str, int]:
        """How many rows are pending, sent and dead."""
        return await self._call(self._counts_sync)

    def _counts_sync(self) -> dict[str, int]:
        counts = {state.value: 0 for state in RowState}
        for state, count in self._db().execute("SELECT state, COUNT(*) FROM outbox GROUP BY state").fetchall():
            counts[str(state)] = int(count)
        return counts

    async def recent(self, since: float) -> list[OutboxRow]:
        """Rows created at or after `since` plus each key's latest row, in id order (to seed dedup)."""
        return await self._call(self._recent_sync, since)

    def _recent_sync(self, since: float) -> list[OutboxRow]:
        rows = self._db().execute(
            f"SELECT {_COLUMNS} FROM outbox WHERE created_at >= ? OR id IN "
            "(SELECT MAX(id) FROM outbox WHERE alert_key IS NOT NULL GROUP BY alert_key) ORDER BY id",
            (since,),
        )
        return [_row(values) for values in rows.fetchall()]

    # --- the delivery lease (one per channel) ----------------------------------------------------
    async def acquire_lease(self, owner: str, ttl_seconds: float, channel: str = "") -> bool:
        """Take or renew a channel's delivery lease for `owner`; False while another live owner holds it."""
        return await self._call(self._acquire_sync, owner, self._clock(), ttl_seconds, _LEASE_NAME + ":" + channel)

    def _acquire_sync(self, owner: str, now: float, ttl: float, name: str) -> bool:
        db = self._db()
        # a lease is worth no fsync: lost on a power cut, it is simply taken again
        db.execute("PRAGMA synchronous = NORMAL")
        try:
            return self._acquire_in_transaction(db, owner, now, ttl, name)
        finally:
            db.execute("PRAGMA synchronous = FULL")

    def _acquire_in_transaction(self, db: sqlite3.Connection, owner: str, now: float, ttl: float, name: str) -> bool:
        db.execute("BEGIN IMMEDIATE")
        try:
            held = db.execute("SELECT owner, expires_at FROM lease WHERE name = ?", (name,)).fetchone()
            if held is not None and held[0] != owner and held[1] > now:
                db.execute("COMMIT")
                return False
            db.execute(
                "INSERT OR REPLACE INTO lease (name, owner, expires_at) VALUES (?, ?, ?)", (name, owner, now + ttl)
            )
            db.execute("COMMIT")
            return True
        except Exception:
            db.execute("ROLLBACK")
            raise

    async def release_leases(self, owner: str) -> None:
        """Give up every lease `owner` holds (graceful stop) so another process can deliver at once."""
        await self._call(self._release_sync, owner)

    def _release_sync(self, owner: str) -> None:
        self._db().execute("DELETE FROM lease WHERE owner = ?", (owner,))
