"""The MCP circuit breaker: a pure state machine over (record, now) plus crash-safe persistence.

closed --trip--> open --cooldown--> half_open --healthy trial--> closed
                  ^                     |
                  +----failed trial-----+   (after 3 failed trials: open until a manual reset)

Every transition is a function that takes the record and the time and returns a `Step` (the new record
and what happened), so the integrator decides *what* to persist and alert from the event alone, and the
property tests can drive the machine with any sequence of calls.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

from utils.atomic import StateFileError, atomic_write_json, read_regular_file

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
MAX_FAILED_RECOVERIES = 3
HISTORY_LIMIT = 50
STATE_FILE_NAME = "mcp_circuit_breaker.json"


class BreakerState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class BreakerEvent(StrEnum):
    """What a transition did; NONE means the record is unchanged."""

    NONE = "none"
    TRIPPED = "tripped"
    HALF_OPENED = "half_opened"
    RECOVERED = "recovered"
    RECOVERY_FAILED = "recovery_failed"
    LOCKED_OUT = "locked_out"
    RESET = "reset"


@dataclass(frozen=True)
class BreakerRecord:
    """Everything the breaker knows; immutable, so a transition can never half-apply."""

    state: BreakerState = BreakerState.CLOSED
    reason: str | None = None
    tripped_at: datetime | None = None
    opened_at: datetime | None = None  # start of the current cooldown
    trips: int = 0
    recoveries: int = 0
    failed_recoveries: int = 0  # failed trials in the current outage; MAX_FAILED_RECOVERIES locks it open
    manual_resets: int = 0
    last_failure_reason: str | None = None
    history: tuple[dict[str, Any], ...] = field(default=())

    @property
    def active(self) -> bool:
        """True while heavy work is held back: open or half-open."""
        return self.state is not BreakerState.CLOSED

    @property
    def locked(self) -> bool:
        """True once recovery has failed too often: only a manual reset closes it."""
        return self.state is BreakerState.OPEN and self.failed_recoveries >= MAX_FAILED_RECOVERIES

    def cooldown_remaining(self, now: datetime, cooldown_seconds: float) -> float | None:
        """Seconds until the trial, None when no trial is pending (closed, half-open or locked)."""
        if self.state is not BreakerState.OPEN or self.locked or self.opened_at is None:
            return None
        return max(0.0, cooldown_seconds - (now - self.opened_at).total_seconds())


@dataclass(frozen=True)
class Step:
    record: BreakerRecord
    event: BreakerEvent


def _with_history(record: BreakerRecord, now: datetime, event: BreakerEvent, reason: str | None) -> tuple:
    entry = {"time": now.isoformat(), "event": str(event), "reason": reason}
    return (*record.history, entry)[-HISTORY_LIMIT:]


def trip(record: BreakerRecord, reason: str, now: datetime) -> Step:
    """Open the breaker. Idempotent: an open breaker stays one trip with its first reason; a trip during
    the half-open trial counts as a failed recovery."""
    if record.state is BreakerState.OPEN:
        return Step(record, BreakerEvent.NONE)
    if record.state is BreakerState.HALF_OPEN:
        return finish_trial(record, healthy=False, now=now, reason=reason)
    opened = replace(
        record,
        state=BreakerState.OPEN,
        reason=reason,
        tripped_at=now,
        opened_at=now,
        trips=record.trips + 1,
        failed_recoveries=0,
        last_failure_reason=None,
        history=_with_history(record, now, BreakerEvent.TRIPPED, reason),
    )
    return Step(opened, BreakerEvent.TRIPPED)


def advance(record: BreakerRecord, now: datetime, cooldown_seconds: float) -> Step:
    """Move open → half-open once the cooldown has passed (never when locked out)."""
    remaining = record.cooldown_remaining(now, cooldown_seconds)
    if remaining is None or remaining > 0:
        return Step(record, BreakerEvent.NONE)
    half_open = replace(
        record,
        state=BreakerState.HALF_OPEN,
        history=_with_history(record, now, BreakerEvent.HALF_OPENED, record.reason),
    )
    return Step(half_open, BreakerEvent.HALF_OPENED)


def finish_trial(record: BreakerRecord, *, healthy: bool, now: datetime, reason: str | None = None) -> Step:
    """Judge the half-open trial: healthy closes the breaker, unhealthy re-opens it (and the third failure
    locks it open). Outside half-open this does nothing."""
    if record.state is not BreakerState.HALF_OPEN:
        return Step(record, BreakerEvent.NONE)
    if healthy:
        closed = replace(
            record,
            state=BreakerState.CLOSED,
            reason=None,
            opened_at=None,
            recoveries=record.recoveries + 1,
            failed_recoveries=0,
            history=_with_history(record, now, BreakerEvent.RECOVERED, None),
        )
        return Step(closed, BreakerEvent.RECOVERED)
    failures = record.failed_recoveries + 1
    event = BreakerEvent.LOCKED_OUT if failures >= MAX_FAILED_RECOVERIES else BreakerEvent.RECOVERY_FAILED
    reopened = replace(
        record,
        state=BreakerState.OPEN,
        opened_at=now,
        failed_recoveries=failures,
        last_failure_reason=reason,
        history=_with_history(record, now, event, reason),
    )
    return Step(reopened, event)


def reset(record: BreakerRecord, now: datetime, by: str = "manual reset") -> Step:
    """Close the breaker by hand (dashboard, Telegram, CLI): the only way out of a lock-out."""
    if record.state is BreakerState.CLOSED:
        return Step(record, BreakerEvent.NONE)
    closed = replace(
        record,
        state=BreakerState.CLOSED,
        reason=None,
        opened_at=None,
        failed_recoveries=0,
        last_failure_reason=None,
        manual_resets=record.manual_resets + 1,
        history=_with_history(record, now, BreakerEvent.RESET, by),
    )
    return Step(closed, BreakerEvent.RESET)


def describe(record: BreakerRecord, now: datetime, cooldown_seconds: float) -> dict[str, Any]:
    """A JSON-safe summary for monitor_all, /health and the dashboard."""
    remaining = record.cooldown_remaining(now, cooldown_seconds)
    return {
        "state": str(record.state),
        "active": record.active,
        "locked": record.locked,
        "reason": record.reason,
        "tripped_at": record.tripped_at.isoformat() if record.tripped_at else None,
        "trips": record.trips,
        "recoveries": record.recoveries,
        "failed_recoveries": record.failed_recoveries,
        "max_failed_recoveries": MAX_FAILED_RECOVERIES,
        "manual_resets": record.manual_resets,
        "last_failure_reason": record.last_failure_reason,
        "cooldown_seconds": cooldown_seconds,
        "cooldown_remaining_seconds": None if remaining is None else round(remaining, 3),
    }


# --- persistence ------------------------------------------------------------------------------------


class BreakerStateError(ValueError):
    """The persisted MCP breaker state cannot be used; the store opens the breaker and keeps the bad file."""


def _time(value: Any, name: str) -> datetime | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise BreakerStateError(f"{name}: expected an ISO-8601 time or null, received {value!r}")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError as e:
        raise BreakerStateError(f"{name}: expected an ISO-8601 time, received {value!r}") from e
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _count(payload: dict[str, Any], name: str) -> int:
    value = payload.get(name, 0)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise BreakerStateError(f"{name}: expected a count (integer >= 0), received {value!r}")
    return value


def _text(payload: dict[str, Any], name: str) -> str | None:
    value = payload.get(name)
    if value is not None and not isinstance(value, str):
        raise BreakerStateError(f"{name}: expected text or null, received {value!r}")
    return value


def record_to_json(record: BreakerRecord, now: datetime) -> dict[str, Any]:
    """The file format (schema_version 1)."""
    return {
        "schema_version": SCHEMA_VERSION,
        "updated_at": now.isoformat(),
        "state": str(record.state),
        "reason": record.reason,
        "tripped_at": record.tripped_at.isoformat() if record.tripped_at else None,
        "opened_at": record.opened_at.isoformat() if record.opened_at else None,
        "trips": record.trips,
        "recoveries": record.recoveries,
        "failed_recoveries": record.failed_recoveries,
        "manual_resets": record.manual_resets,
        "last_failure_reason": record.last_failure_reason,
        "history": list(record.history),
    }


def record_from_json(payload: Any) -> BreakerRecord:
    """Parse the file format; raise BreakerStateError saying which field is wrong."""
    if not isinstance(payload, dict):
        raise BreakerStateError(f"expected a JSON object, received {type(payload).__name__}")
    if payload.get("schema_version") != SCHEMA_VERSION:
        raise BreakerStateError(f"expected schema_version {SCHEMA_VERSION}, received {payload.get('schema_version')!r}")
    try:
        state = BreakerState(payload.get("state"))
    except ValueError as e:
        expected = [str(s) for s in BreakerState]
        raise BreakerStateError(f"state: expected one of {expected}, received {payload.get('state')!r}") from e
    history = payload.get("history", [])
    if not isinstance(history, list) or not all(isinstance(item, dict) for item in history):
        raise BreakerStateError("history: expected a list of objects")
    record = BreakerRecord(
        state=state,
        reason=_text(payload, "reason"),
        tripped_at=_time(payload.get("tripped_at"), "tripped_at"),
        opened_at=_time(payload.get("opened_at"), "opened_at"),
        trips=_count(payload, "trips"),
        recoveries=_count(payload, "recoveries"),
        failed_recoveries=_count(payload, "failed_recoveries"),
        manual_resets=_count(payload, "manual_resets"),
        last_failure_reason=_text(payload, "last_failure_reason"),
        history=tuple(history[-HISTORY_LIMIT:]),
    )
    if record.state is BreakerState.OPEN and record.opened_at is None:
        raise BreakerStateError("opened_at: an open breaker needs the time its cooldown started")
    return record


FileKey = tuple[int, int, int]


def file_key(path: Path) -> FileKey | None:
    """(mtime_ns, size, inode) of `path`, None when it does not exist: any write by anyone changes it."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return st.st_mtime_ns, st.st_size, st.st_ino


class BreakerStore:
    """The MCP breaker's state file: the one truth every process (sidecar, bot, CLI, snippets) shares.

    * Every write is atomic (temp file + fsync + rename) and carries a `version` that only goes up.
    * Every change is a read-modify-write under an exclusive `flock` on `<name>.lock` beside the file:
      the transition is applied to the record on disk at that moment, never to a stale copy in memory,
      so two processes changing the breaker at once never lose an update.
    * `reload_if_changed` compares (mtime_ns, size, inode) with what this process last saw, so a
      process re-reads the file (a few hundred bytes) only when someone changed it.

    A missing file is a closed breaker and nothing is written until the first change, so a fresh checkout
    gets no state/ folder from merely reading. A corrupt file never silently becomes a closed breaker: it
    is kept as `<name>.corrupt-<timestamp>` and the breaker starts open with that reason.
    """

    def __init__(self, path: Path, clock: Callable[[], datetime]) -> None:
        self.path = Path(path)
        self.lock_path = self.path.with_name(self.path.name + ".lock")
        self._clock = clock
        self._lock = threading.Lock()
        self.version = 0
        self._seen: FileKey | None = None

    def load(self) -> tuple[BreakerRecord, str | None]:
        """The stored record and, when the file was unusable, the problem (the breaker is then open)."""
        with self._lock:
            return self._load(locked=False)

    def changed(self) -> bool:
        """Has the file changed (written, replaced, removed) since this process last read or wrote it?"""
        return file_key(self.path) != self._seen

    def reload_if_changed(self) -> tuple[BreakerRecord, str | None] | None:
        """The stored record when the file changed since it was last seen here, else None (one stat)."""
        with self._lock:
            if file_key(self.path) == self._seen:
                return None
            return self._load(locked=False)

    def update(self, transition: Callable[[BreakerRecord], Step]) -> tuple[Step, str | None]:
        """Apply `transition` to the record on disk under the file lock and write the result (version + 1).

        Returns the step (its record is the truth after the call, written or not) and the problem, when the
        file on disk was unusable and the transition was applied to the open breaker that replaces it.
        """
        with self._lock, self._file_lock():
            record, problem = self._load(locked=True)
            step = transition(record)
            if step.event is not BreakerEvent.NONE:
                self._write(step.record)
            return step, problem

    @contextlib.contextmanager
    def _file_lock(self) -> Iterator[None]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing the descriptor releases the lock

    def _load(self, *, locked: bool) -> tuple[BreakerRecord, str | None]:
        key = file_key(self.path)
        try:
            # issue 8: never a hang on a FIFO, never an unbounded read; a non-regular or huge file is moved aside
            raw = read_regular_file(self.path)
        except StateFileError as e:
            return self._quarantine(str(e), move=True, locked=locked)
        if raw is None:
            self._seen = None
            return BreakerRecord(), None
        try:
            payload = json.loads(raw.decode("utf-8"))
            record = record_from_json(payload)
            self.version = _count(payload, "version")
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            return self._quarantine(f"{self.path} is not valid JSON ({e})", move=True, locked=locked)
        except BreakerStateError as e:
            return self._quarantine(f"{self.path} is not a usable MCP breaker state ({e})", move=True, locked=locked)
        self._seen = key
        return record, None

    def _quarantine(self, problem: str, *, move: bool, locked: bool) -> tuple[BreakerRecord, str]:
        now = self._clock()
        if move:
            kept = self.path.with_name(f"{self.path.name}.corrupt-{now.strftime('%Y%m%dT%H%M%S%fZ')}")
            try:
                os.replace(self.path, kept)
                problem = f"{problem}; kept as {kept.name}"
            except OSError as e:
                problem = f"{problem}; could not move it aside: {e.strerror or e}"
        reason = f"corrupt state: {problem}"
        log.error("MCP circuit breaker starts open: %s", reason)
        record = trip(BreakerRecord(), reason, now).record
        with contextlib.suppress(OSError):
            # best effort: the open state is in memory either way; the next change retries the write
            if locked:
                self._write(record)
            else:
                with self._file_lock():
                    self._write(record)
        return record, reason

    def _write(self, record: BreakerRecord) -> None:
        """Write `record` as the next version; only under the file lock (creates the folder lazily)."""
        payload = record_to_json(record, self._clock())
        payload["version"] = self.version + 1
        atomic_write_json(self.path, payload)
        self.version += 1
        self._seen = file_key(self.path)
