"""Read-only views of the risk core: the sidecar sees the breaker and the executor, and can change neither.

`ReadOnlyView` wraps a live object (in the bot's process, or a Mock in the user's test plan) and lets
through only whitelisted read methods and properties; every result is a deep copy, so even mutating a
returned dict cannot reach the original. In the sidecar the targets are `SnapshotBackedBreakerView` and
`SnapshotBackedExecutorView`, which read the bot's state files (SPEC §5) through the one reader,
`core.state_reader.read_state` (opened O_RDONLY), and report missing, corrupt, stale or wrong-schema files
as a status instead of raising.

A view stops mistakes, not hostile code: Python can always dig an object out of a closure. The hard
guarantee is the sidecar's: it is another process and it only ever opens the bot's files for reading
(tests/test_mcp_risk_integration_processes.py audits every open).
"""

from __future__ import annotations

import asyncio
import copy
import datetime
import inspect
import logging
import os
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from decimal import Decimal
from enum import Enum, StrEnum
from pathlib import Path
from typing import Any

from core.circuit_breaker import STATE_FILE_NAME as BREAKER_STATE_FILE
from core.risk_snapshot import RISK_SNAPSHOT_FILE
from core.state_models import BreakerStateFile, RiskSnapshot, StateDocument
from core.state_reader import StateProblem, read_state

log = logging.getLogger(__name__)

BREAKER_READ_METHODS = frozenset({"state", "get_state", "get_mcp_integration_state", "trip_history"})
EXECUTOR_READ_METHODS = frozenset(
    {"get_performance_metrics", "monitor_risk_parameters", "snapshot", "get_risk_parameter_usage_report"}
)
SNAPSHOT_SCHEMA_VERSION = RiskSnapshot.SCHEMA_VERSION
# the sidecar's views accept a larger file than the bot's own restore does (a snapshot with many positions)
MAX_STATE_FILE_BYTES = 16 * 1024 * 1024
# the file names are defined once, by the modules that write the files
RISK_SNAPSHOT_FILE_NAME = RISK_SNAPSHOT_FILE
BREAKER_STATE_FILE_NAME = BREAKER_STATE_FILE


class ReadOnlyViolation(AttributeError):
    """Something tried to change risk state through a read-only view. The sidecar never changes a risk
    parameter or the trading state: change it in the bot (its settings or its CLI), not here."""


# names resolved on the view itself; everything else must be whitelisted or it does not exist
_OWN_NAMES = frozenset({"__class__", "__slots__", "__repr__", "__dir__", "__doc__", "readable_names"})


class ReadOnlyView:
    """Exposes only `allowed` read methods/properties of `target`; results are deep copies; writes raise."""

    __slots__ = ("_ro_allowed", "_ro_label", "_ro_target")

    def __init__(self, target: Any, allowed: Iterable[str], label: str | None = None) -> None:
        object.__setattr__(self, "_ro_target", target)
        object.__setattr__(self, "_ro_allowed", frozenset(allowed))
        object.__setattr__(self, "_ro_label", label or type(target).__name__)

    def __getattribute__(self, name: str) -> Any:
        allowed = object.__getattribute__(self, "_ro_allowed")
        if name in allowed:
            target = object.__getattribute__(self, "_ro_target")
            value = getattr(target, name)
            if callable(value):
                return _reading(value, f"{object.__getattribute__(self, '_ro_label')}.{name}")
            return detach(value)
        if name in _OWN_NAMES:
            return object.__getattribute__(self, name)
        label = object.__getattribute__(self, "_ro_label")
        raise AttributeError(
            f"the read-only view of {label} exposes only {sorted(allowed)}; {name!r} is not one of them"
        )

    def __setattr__(self, name: str, value: Any) -> None:
        label = object.__getattribute__(self, "_ro_label")
        raise ReadOnlyViolation(
            f"refused to set {name!r} on the read-only view of {label}: the MCP sidecar never changes risk state"
        )

    def __delattr__(self, name: str) -> None:
        label = object.__getattribute__(self, "_ro_label")
        raise ReadOnlyViolation(
            f"refused to delete {name!r} on the read-only view of {label}: the MCP sidecar never changes risk state"
        )

    def __repr__(self) -> str:
        label = object.__getattribute__(self, "_ro_label")
        return f"<ReadOnlyView of {label}: {', '.join(sorted(object.__getattribute__(self, '_ro_allowed')))}>"

    def __dir__(self) -> list[str]:
        return sorted(object.__getattribute__(self, "_ro_allowed"))

    @property
    def readable_names(self) -> frozenset[str]:
        """The whitelisted names."""
        return object.__getattribute__(self, "_ro_allowed")


def _reading(method: Callable[..., Any], qualified: str) -> Callable[..., Any]:
    """Wrap a read method so its result (awaited or not) comes back as a deep copy."""

    def call(*args: Any, **kwargs: Any) -> Any:
        result = method(*args, **kwargs)
        if inspect.isawaitable(result):
            return _detached(result)
        return detach(result)

    call.__name__ = qualified.rsplit(".", 1)[-1]
    call.__qualname__ = qualified
    call.__doc__ = getattr(method, "__doc__", None)
    return call


async def _detached(result: Awaitable[Any]) -> Any:
    return detach(await result)


_LEAVES = (str, int, float, bytes, Enum, datetime.date, datetime.time, datetime.timedelta, Decimal)


def detach(value: Any) -> Any:
    """A copy that cannot reach the original: dicts, lists and tuples are rebuilt, immutable leaves shared,
    anything else deep-copied. Much faster than copy.deepcopy on the JSON-like records the views return."""
    kind = type(value)
    if kind is dict:
        return {key: detach(item) for key, item in value.items()}
    if kind is list:
        return [detach(item) for item in value]
    if kind is tuple:
        return tuple(detach(item) for item in value)
    if value is None or isinstance(value, _LEAVES):
        return value
    return copy.deepcopy(value)


def read_only_breaker(target: Any) -> ReadOnlyView:
    """The circuit breaker's read-only view (get_state, get_mcp_integration_state, state, trip_history)."""
    return target if isinstance(target, ReadOnlyView) else ReadOnlyView(target, BREAKER_READ_METHODS)


def read_only_executor(target: Any) -> ReadOnlyView:
    """The trade executor's read-only view (get_performance_metrics, monitor_risk_parameters, snapshot, …)."""
    return target if isinstance(target, ReadOnlyView) else ReadOnlyView(target, EXECUTOR_READ_METHODS)


# --- views over the bot's state files (the sidecar's only source of risk state) -------------------


class FileStatus(StrEnum):
    OK = "ok"
    MISSING = "missing"
    CORRUPT = "corrupt"
    WRONG_SCHEMA = "wrong_schema"
    STALE = "stale"


@dataclass(frozen=True)
class FileReading:
    """One read of a state file: its payload (empty unless usable) and a status an operator can act on."""

    status: FileStatus
    payload: dict[str, Any]
    path: str
    reason: str
    age_seconds: float | None = None

    def meta(self) -> dict[str, Any]:
        """The `view` block attached to every answer of a file-backed view."""
        return {"status": str(self.status), "path": self.path, "reason": self.reason, "age_seconds": self.age_seconds}


_STATUS = {
    StateProblem.MISSING: FileStatus.MISSING,
    StateProblem.UNREADABLE: FileStatus.CORRUPT,
    StateProblem.CORRUPT: FileStatus.CORRUPT,
    StateProblem.WRONG_SCHEMA: FileStatus.WRONG_SCHEMA,
    StateProblem.NEWER_SCHEMA: FileStatus.WRONG_SCHEMA,
}


def read_state_file(
    path: Path,
    *,
    now_epoch: float,
    stale_after_seconds: float | None,
    model: type[StateDocument] = RiskSnapshot,
) -> FileReading:
    """Read a bot state file through the one reader (core.state_reader.read_state: opened O_RDONLY only,
    never repaired or moved) and judge its age; a problem becomes a status, never an exception."""
    shown = str(path)
    reading = read_state(path, model, max_bytes=MAX_STATE_FILE_BYTES)
    if reading.problem is not None:
        return FileReading(_STATUS[reading.problem.kind], {}, shown, str(reading.problem))
    payload = reading.payload or {}
    written = payload.get("updated_at_epoch")  # the model has checked it is a finite number when present
    if isinstance(written, bool) or not isinstance(written, int | float):
        written = _modified_at(path, now_epoch)
    age = round(max(0.0, now_epoch - float(written)), 3)
    if stale_after_seconds is not None and age > stale_after_seconds:
        reason = f"{shown} last updated {age:.0f} s ago (stale after {stale_after_seconds:g} s): is the bot running?"
        return FileReading(FileStatus.STALE, payload, shown, reason, age)
    return FileReading(FileStatus.OK, payload, shown, "fresh", age)


def _modified_at(path: Path, default: float) -> float:
    # a file without its own timestamp (the breaker's) is as old as its last write
    try:
        return os.stat(path).st_mtime
    except OSError:
        return default  # replaced or removed since the read: the content just read is current


class _FileView:
    """Shared base: immutable after construction, reads on demand."""

    __slots__ = ("_clock", "_model", "_path", "_stale_after")

    def __init__(
        self,
        path: Path | str,
        *,
        stale_after_seconds: float | None,
        clock: Callable[[], float],
        model: type[StateDocument],
    ) -> None:
        object.__setattr__(self, "_path", Path(path))
        object.__setattr__(self, "_stale_after", stale_after_seconds)
        object.__setattr__(self, "_clock", clock)
        object.__setattr__(self, "_model", model)

    def __setattr__(self, name: str, value: Any) -> None:
        raise ReadOnlyViolation(f"refused to set {name!r} on {type(self).__name__}: it only reads {self._path}")

    def __delattr__(self, name: str) -> None:
        raise ReadOnlyViolation(f"refused to delete {name!r} on {type(self).__name__}: it only reads {self._path}")

    @property
    def path(self) -> Path:
        """The file this view reads."""
        return self._path

    def read(self) -> FileReading:
        """Read the file now (blocking, small file: call from a thread when on the event loop)."""
        return read_state_file(
            self._path, now_epoch=self._clock(), stale_after_seconds=self._stale_after, model=self._model
        )


class SnapshotBackedBreakerView(_FileView):
    """The circuit breaker as seen through its state file (default state/circuit_breaker.json)."""

    __slots__ = ()

    def __init__(self, path: Path | str, *, clock: Callable[[], float] = time.time) -> None:
        # the breaker writes only on change, so an old file is not a stale one
        super().__init__(path, stale_after_seconds=None, clock=clock, model=BreakerStateFile)

    def get_state(self) -> dict[str, Any]:
        """The breaker's record plus a `view` block (status ok / missing / corrupt / wrong_schema)."""
        reading = self.read()
        return {**reading.payload, "view": reading.meta()}

    def get_mcp_integration_state(self) -> dict[str, Any]:
        """The breaker's MCP-integration record ({} when the file is unusable) plus the `view` block."""
        reading = self.read()
        record = reading.payload.get("mcp_integration")
        return {**(record if isinstance(record, dict) else {}), "view": reading.meta()}

    @property
    def state(self) -> str:
        """ACTIVE / HALTED as last written by the bot, UNKNOWN when the file is unusable."""
        value = self.read().payload.get("state")
        return value if isinstance(value, str) else "UNKNOWN"

    @property
    def trip_history(self) -> list[dict[str, Any]]:
        """The breaker's trip history as last written."""
        history = self.read().payload.get("trip_history")
        return history if isinstance(history, list) else []


class SnapshotBackedExecutorView(_FileView):
    """The trade executor as seen through the bot's risk snapshot (default state/risk_state.json)."""

    __slots__ = ()

    def __init__(
        self, path: Path | str, *, stale_after_seconds: float = 60.0, clock: Callable[[], float] = time.time
    ) -> None:
        super().__init__(path, stale_after_seconds=stale_after_seconds, clock=clock, model=RiskSnapshot)

    def snapshot(self) -> dict[str, Any]:
        """The whole snapshot plus the `view` block."""
        reading = self.read()
        return {**reading.payload, "view": reading.meta()}

    async def get_performance_metrics(self) -> dict[str, Any]:
        """Latency percentiles, trade and error counts from the snapshot."""
        reading = await asyncio.to_thread(self.read)
        payload = reading.payload
        return {
            "latency_ms": _dict(payload.get("latency_ms")),
            "arrival_latency_ms": _dict(payload.get("arrival_latency_ms")),
            "trades": _dict(payload.get("trades")),
            "errors": _dict(payload.get("errors")),
            "view": reading.meta(),
        }

    async def monitor_risk_parameters(self) -> dict[str, Any]:
        """Risk parameters, breaker state, exposure, positions and memory from the snapshot."""
        reading = await asyncio.to_thread(self.read)
        payload = reading.payload
        breaker = _dict(payload.get("breaker"))
        positions = payload.get("positions")
        return {
            "risk_parameters": _dict(payload.get("risk_parameters")),
            "trading_state": payload.get("trading_state"),
            "breaker_state": breaker.get("state", payload.get("trading_state")),
            "exposure": _dict(payload.get("exposure")),
            "positions": positions if isinstance(positions, list) else [],
            "memory": {"rss_mb": payload.get("rss_mb")},
            "pid": payload.get("pid"),
            "updated_at": payload.get("updated_at"),
            "view": reading.meta(),
        }


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


async def read_dict(view: Any, name: str, *, in_thread: bool = False) -> dict[str, Any]:
    """Call read method `name` of `view` (in a thread when it reads a file); anything but a dict — a Mock's
    answer, an exception — comes back as {"status": "unavailable", "reason": ...}."""
    try:
        method = getattr(view, name)
        result = await asyncio.to_thread(method) if in_thread else method()
        if inspect.isawaitable(result):
            result = await result
    except Exception as e:
        log.exception("reading %s() from the risk core failed", name)
        return {"status": "unavailable", "reason": f"{name}() failed: {type(e).__name__}: {e}"}
    if not isinstance(result, dict):
        return {"status": "unavailable", "reason": f"expected a dict from {name}(), received {type(result).__name__}"}
    return result


async def read_risk_state(
    breaker_view: Any, executor_view: Any, *, breaker_reads_file: bool, source: str
) -> dict[str, Any]:
    """monitor_all's `risk_state` block: the breaker's record, the executor's risk and performance figures."""
    breaker = await read_dict(breaker_view, "get_state", in_thread=breaker_reads_file)
    executor = await read_dict(executor_view, "monitor_risk_parameters")
    performance = await read_dict(executor_view, "get_performance_metrics")
    trading_state = breaker.get("state")
    return {
        "source": source,
        "trading_state": trading_state if isinstance(trading_state, str) else None,
        "breaker": breaker,
        "executor": executor,
        "performance": performance,
    }
