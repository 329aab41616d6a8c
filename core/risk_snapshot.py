"""The risk snapshot: the bot's risk state as an atomic JSON file, the sidecar's read-only view of the bot.

Written by the bot at most once per `min_interval` and only when the content changed (the `updated_at`
fields do not count as a change), plus a heartbeat: unchanged content is rewritten every
`heartbeat_interval` so that a reader can tell a quiet bot from a dead one by `updated_at`. Writes are
serialised by the file's model (`core.state_models.RiskSnapshot`, the same one every reader checks
against) and go through `utils.atomic` (temp file, fsync, rename), so a reader never sees half a file;
they run off the event loop. Wallet addresses are masked before anything reaches the disk.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from core.breaker_io import quarantine  # the one naming rule for entries kept aside
from core.state_models import SNAPSHOT_SCHEMA_VERSION, RiskSnapshot
from core.state_reader import StateFileMissing, StateSchemaMismatch, encode_state, read_snapshot_state
from utils.atomic import StateFileError, atomic_write_bytes
from utils.secrets import mask_wallet

log = logging.getLogger(__name__)

SCHEMA_VERSION = SNAPSHOT_SCHEMA_VERSION
RISK_SNAPSHOT_FILE = "risk_state.json"
DEFAULT_MIN_INTERVAL = 1.0
DEFAULT_HEARTBEAT_INTERVAL = 10.0
# `as_of` is the breaker record's own "now": a new value on every read, not a change of state
VOLATILE_KEYS = frozenset({"updated_at", "updated_at_epoch", "as_of"})
WALLET_KEYS = frozenset({"wallet", "wallet_address", "address", "proxy_wallet", "owner", "maker", "taker"})
# Exactly 40 hex digits: a wallet address, not the first 40 digits of a 64-digit hash or condition id.
_FULL_ADDRESS = re.compile(r"(?<![0-9A-Za-z])0x[0-9a-fA-F]{40}(?![0-9A-Za-z])")

Writer = Callable[[Path, Any], None]


def write_snapshot(path: Path, payload: dict[str, Any]) -> None:
    """Write the snapshot through its model (the reader's own shape) atomically; StateFileError if the
    payload does not match the model, OSError if the disk refuses."""
    atomic_write_bytes(path, encode_state(RiskSnapshot, payload))


def risk_snapshot_path(state_dir: Path | str) -> Path:
    """Where the bot publishes its snapshot: `<STATE_DIR>/risk_state.json`."""
    return Path(state_dir) / RISK_SNAPSHOT_FILE


def set_aside_blocking_entry(path: Path, now: datetime) -> Path | None:
    """Issue 8: a directory at the snapshot's path would make every write fail (`os.replace` cannot replace
    one) and leave the sidecar blind. Move it aside as `<name>.corrupt-<UTC timestamp>` and say so; anything
    else there (a file, a FIFO, a link) is simply replaced by the first atomic write. Returns where it went."""
    if not path.is_dir() or path.is_symlink():
        return None
    kept = quarantine(path, now)
    log.critical(
        "%s was a directory, not the risk snapshot file: moved aside as %s so that the snapshot can be written",
        path,
        kept.name,
    )
    return kept


def should_publish(
    now: float, last_attempt_at: float | None, changed: bool, min_interval: float, heartbeat_interval: float | None
) -> bool:
    """Write when nothing was written yet, or when `min_interval` has passed and the content changed or a
    heartbeat is due."""
    if last_attempt_at is None:
        return True
    elapsed = now - last_attempt_at
    if elapsed < min_interval:
        return False
    return changed or (heartbeat_interval is not None and elapsed >= heartbeat_interval)


def without_volatile(value: Any) -> Any:
    """The payload minus every `updated_at`/`updated_at_epoch` key, at any depth (for change detection)."""
    if isinstance(value, dict):
        return {key: without_volatile(item) for key, item in value.items() if key not in VOLATILE_KEYS}
    if isinstance(value, list | tuple):
        return [without_volatile(item) for item in value]
    return value


def mask_payload(value: Any, key: str | None = None) -> Any:
    """A copy of the payload in which wallet fields and any full 0x address keep only their last 6 chars."""
    if isinstance(value, dict):
        return {_mask_text(str(k)): mask_payload(item, str(k)) for k, item in value.items()}
    if isinstance(value, list | tuple):
        return [mask_payload(item, key) for item in value]
    if isinstance(value, str):
        return mask_wallet(value) if key in WALLET_KEYS and value else _mask_text(value)
    return value


def _mask_text(text: str) -> str:
    return _FULL_ADDRESS.sub(lambda m: mask_wallet(m.group(0)), text) if "0x" in text else text


def contains_full_address(text: str) -> bool:
    """True if `text` holds an unmasked 40-hex-digit 0x address."""
    return _FULL_ADDRESS.search(text) is not None


class RiskSnapshotWriter:
    """Publishes the executor's snapshot: rate-limited, on change, atomic, masked."""

    def __init__(
        self,
        path: Path | str,
        *,
        min_interval: float = DEFAULT_MIN_INTERVAL,
        heartbeat_interval: float | None = DEFAULT_HEARTBEAT_INTERVAL,
        clock: Callable[[], float] = time.monotonic,
        write: Writer = write_snapshot,
    ) -> None:
        if min_interval < 0:
            raise ValueError(f"min_interval must be >= 0 seconds, received {min_interval!r}")
        if heartbeat_interval is not None and heartbeat_interval < min_interval:
            raise ValueError(
                f"heartbeat_interval must be None or >= min_interval ({min_interval}), received {heartbeat_interval!r}"
            )
        self.path = Path(path)
        self.min_interval = min_interval
        self.heartbeat_interval = heartbeat_interval
        self._clock = clock
        self._write = write
        self._last_attempt_at: float | None = None
        self._last_content: Any = None
        self._lock: asyncio.Lock | None = None
        self.writes = 0
        self.write_errors = 0

    def _due(self, payload: dict[str, Any], force: bool) -> tuple[bool, Any]:
        now = self._clock()
        if not force and self._last_attempt_at is not None and now - self._last_attempt_at < self.min_interval:
            return False, None  # the cheap path: no need to look at the content at all
        content = without_volatile(payload)
        changed = content != self._last_content
        due = force or should_publish(now, self._last_attempt_at, changed, self.min_interval, self.heartbeat_interval)
        if due:
            self._last_attempt_at = now
        return due, content

    def _write_masked(self, payload: dict[str, Any], content: Any) -> bool:
        try:
            self._write(self.path, mask_payload(payload))
        except OSError as e:
            # the bot trades on without its snapshot; the sidecar sees it go stale and says so
            self.write_errors += 1
            log.error("could not write the risk snapshot %s: %s (will retry)", self.path, e)
            return False
        except StateFileError as e:
            # the executor built a figure its own reader would refuse: a bug, not a disk problem
            self.write_errors += 1
            log.error("did not write the risk snapshot %s: %s (a bug: please report it)", self.path, e)
            return False
        self._last_content = content
        self.writes += 1
        return True

    def maybe_publish(self, payload: dict[str, Any]) -> bool:
        """Write now if due (see the module docstring); True if the file was written. Blocks: sync callers only."""
        due, content = self._due(payload, force=False)
        return self._write_masked(payload, content) if due else False

    def flush(self, payload: dict[str, Any]) -> bool:
        """Write now whatever the interval and content (shutdown); True if the file was written."""
        _, content = self._due(payload, force=True)
        return self._write_masked(payload, content)

    async def publish(self, payload: dict[str, Any], force: bool = False) -> bool:
        """Like `maybe_publish` (or `flush` with force=True), with the write in a worker thread."""
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            due, content = self._due(payload, force=force)
            if not due:
                return False
            return await asyncio.to_thread(self._write_masked, payload, content)


# --- the reader's side --------------------------------------------------------------------------------

# The one error model is core.state_reader's; these names stay for the callers that catch them.
SnapshotMissingError = StateFileMissing
SnapshotSchemaError = StateSchemaMismatch


def read_risk_snapshot(path: Path | str) -> dict[str, Any]:
    """The bot's snapshot as written (checked by core.state_models.RiskSnapshot); raises StateFileError —
    SnapshotMissingError, SnapshotSchemaError or another StateFileProblem — saying what is wrong."""
    reading = read_snapshot_state(path)
    reading.require()
    assert reading.payload is not None  # a read without a problem always has its payload
    return reading.payload
