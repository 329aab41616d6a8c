"""The circuit breaker's edges: its state file (read, quarantine, crash-safe write) and its alert channel.

`StateStore.write` may run on the event-loop thread or in `asyncio.to_thread`; each write carries a version
number and a write older than the one already on disk is skipped, so the file never goes back in time.
"""

from __future__ import annotations

import asyncio
import glob
import logging
import os
import threading
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from core.breaker_state import BreakerRecord, record_from_document
from core.state_models import BreakerStateFile
from core.state_reader import StateProblem, encode_state, read_breaker_state
from utils.atomic import StateFileError, atomic_write_bytes, fsync_directory

logger = logging.getLogger("core.circuit_breaker")

ALERT_TIMEOUT_SECONDS = 10.0
AlertCallback = Callable[[str, str], Awaitable[None]]


class BreakerPersistenceError(RuntimeError):
    """The breaker cannot keep its state file: make the state folder writable (or set STATE_DIR), then restart."""


class UnusableStateFile(Exception):
    """The state file exists but cannot be used; `problem` says why, `kept_as` is where it was moved."""

    def __init__(self, problem: str, kept_as: Path) -> None:
        super().__init__(problem)
        self.problem = problem
        self.kept_as = kept_as


def quarantine(path: Path, now: datetime) -> Path:
    """Move a bad state file (or whatever stands at its path) aside as `<name>.corrupt-<UTC timestamp>`."""
    stamp = now.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
    target = path.with_name(f"{path.name}.corrupt-{stamp}")
    suffix = 1
    while target.exists():
        target = path.with_name(f"{path.name}.corrupt-{stamp}-{suffix}")
        suffix += 1
    os.rename(path, target)
    fsync_directory(path.parent)
    return target


class StateStore:
    """One breaker state file: load it once, then write newer records, counting failures."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.persist_errors = 0
        self.failing = False
        self._lock = threading.Lock()
        self._version = 0
        self._written_version = 0
        self._last_core: dict[str, Any] | None = None

    def load(self, now: datetime) -> tuple[BreakerRecord | None, dict[str, Any] | None]:
        """The stored record and raw payload, (None, None) if there is no file.

        Raises UnusableStateFile after moving an unreadable / corrupt / wrong-shape file aside, and
        BreakerPersistenceError when it cannot even be moved aside.
        """
        if not self.path.parent.is_dir():
            return None, None  # no folder, so no file: the first write creates the folder or says why it cannot
        self._remove_orphaned_temp_files()
        reading = read_breaker_state(self.path, complete=True)
        if reading.problem is None:
            assert reading.document is not None and reading.payload is not None
            return record_from_document(reading.document), reading.payload
        if reading.problem.kind is StateProblem.MISSING:
            return None, None
        problem = str(reading.problem).removeprefix(f"{self.path}: ")  # the caller names the file itself
        try:
            kept = quarantine(self.path, now)
        except OSError as e:
            raise BreakerPersistenceError(
                f"the circuit-breaker state file {self.path} is unusable ({problem}) and cannot be moved aside "
                f"({e}); move it away by hand and restart"
            ) from e
        raise UnusableStateFile(problem, kept)

    def _remove_orphaned_temp_files(self) -> None:
        # a writer killed between mkstemp and os.replace leaves `.<name>.<random>.tmp` behind; this breaker
        # is the file's only writer, so at start-up such files are garbage (the real file is intact)
        pattern = f".{glob.escape(self.path.name)}.*.tmp"
        for orphan in self.path.parent.glob(pattern):
            try:
                orphan.unlink()
            except FileNotFoundError:
                continue
            except OSError as e:
                logger.warning("cannot remove %s, left by a writer killed mid-write: %s", orphan, e)
                continue
            logger.info("removed %s, left by a writer that was killed mid-write", orphan)

    def prepare(self, core: dict[str, Any], build: Callable[[dict[str, Any]], dict[str, Any]]) -> tuple[int, Any]:
        """A versioned write job if `core` differs from the last record written, else (0, None)."""
        if core == self._last_core:
            return 0, None
        self._last_core = core
        self._version += 1
        return self._version, build(core)

    def write(self, version: int, payload: dict[str, Any]) -> OSError | StateFileError | None:
        """Write `payload` atomically (serialised by BreakerStateFile) unless a newer version is already on
        disk; the error if it failed (an OSError, or the model refusing a record it could not read back)."""
        with self._lock:
            if version <= self._written_version:
                return None
            try:
                atomic_write_bytes(self.path, encode_state(BreakerStateFile, payload))
            except (OSError, StateFileError) as e:
                return e
            self._written_version = version
            return None

    def settle(self, error: OSError | StateFileError | None) -> bool:
        """Account for a write's outcome; True when this failure starts a new failing streak (alert once)."""
        if error is None:
            if self.failing:
                logger.warning("circuit-breaker state written to %s again", self.path)
            self.failing = False
            return False
        self._last_core = None  # retry on the next call even if nothing else changes
        self.persist_errors += 1
        logger.error(
            "cannot write circuit-breaker state to %s (%s); enforcing it in memory, a restart would lose the "
            "latest change (write failures so far: %d)",
            self.path,
            error,
            self.persist_errors,
        )
        first = not self.failing
        self.failing = True
        return first


class AlertDispatcher:
    """Deliver alerts through an optional async callback; a failing channel is logged, never raised."""

    def __init__(self, callback: AlertCallback | None, timeout: float = ALERT_TIMEOUT_SECONDS) -> None:
        self._callback = callback
        self._timeout = timeout
        self._tasks: set[asyncio.Task[None]] = set()

    def notify(self, severity: str, message: str) -> None:
        """Schedule the alert on the running loop, or deliver it now (bounded) when no loop runs."""
        if self._callback is None:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            # outside the event loop (start-up, the reset CLI): deliver now, bounded by the timeout
            asyncio.run(self._deliver(self._callback, severity, message))
            return
        task = loop.create_task(self._deliver(self._callback, severity, message))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def drain(self) -> None:
        """Wait until every scheduled alert has been delivered or has failed."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def _deliver(self, callback: AlertCallback, severity: str, message: str) -> None:
        try:
            await asyncio.wait_for(callback(severity, message), self._timeout)
        except Exception:
            # a broken alert channel must never break the breaker; the event itself is already logged
            logger.exception("circuit-breaker alert (%s) could not be delivered", severity)
