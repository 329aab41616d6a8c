"""Where the checks get their figures: the bot's state files (read-only), psutil, the supervisor.

Each source is injected into the checks so tests pass fakes: a psutil-like object, a `pid_alive`
callable, a callable returning the supervisor's per-server states. File reads and psutil calls run in
worker threads; nothing here blocks the event loop.
"""

from __future__ import annotations

import asyncio
import inspect
import math
import os
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from core.state_reader import StateProblem, StateRead, read_breaker_state, read_snapshot_state
from utils.atomic import StateFileError, read_json_object

ServerStates = Mapping[str, Mapping[str, Any]]
ServerStatesSource = Callable[[], ServerStates | Awaitable[ServerStates]]


class ProcessLike(Protocol):
    """The part of psutil.Process the checks use."""

    def cpu_percent(self, interval: float | None = None) -> float: ...

    def memory_info(self) -> Any: ...


class PsutilLike(Protocol):
    """The part of the psutil module the checks use (the module itself satisfies it)."""

    def Process(self, pid: int | None = None) -> ProcessLike: ...  # psutil's own spelling

    def cpu_percent(self, interval: float | None = None) -> float: ...

    def virtual_memory(self) -> Any: ...

    def disk_usage(self, path: str) -> Any: ...


def number(value: Any) -> float | None:
    """`value` as a float if it is a finite JSON number (not a bool), else None."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)


@dataclass(frozen=True, slots=True)
class FileView:
    """One state file as read: its JSON object, or why there is none."""

    payload: dict[str, Any] | None
    problem: str | None = None
    missing: bool = False

    @classmethod
    def of(cls, reading: StateRead[Any]) -> FileView:
        """The checks' view of one read by the one reader (core.state_reader.read_state)."""
        if reading.problem is None:
            return cls(reading.payload)
        return cls(None, str(reading.problem), missing=reading.problem.kind is StateProblem.MISSING)


@dataclass(frozen=True, slots=True)
class BotView:
    """The bot as the sidecar sees it: the risk snapshot and the breaker's state file, read at `read_at`."""

    snapshot: FileView
    breaker: FileView
    read_at: float


def read_snapshot_file(path: Path) -> FileView:
    """The risk snapshot, checked by its model (missing, corrupt and wrong schema say so)."""
    return FileView.of(read_snapshot_state(path))


def read_breaker_file(path: Path) -> FileView:
    """The circuit breaker's own state file, checked by its model (missing is normal before its first change)."""
    return FileView.of(read_breaker_state(path))


class BotStateReader:
    """Reads both files off the event loop, at most once per `cache_seconds` however many checks ask."""

    def __init__(self, snapshot_path: Path, breaker_path: Path, *, cache_seconds: float = 1.0) -> None:
        self.snapshot_path = Path(snapshot_path)
        self.breaker_path = Path(breaker_path)
        self.cache_seconds = cache_seconds
        self._last: BotView | None = None
        self._lock = asyncio.Lock()
        self.reads = 0

    async def read(self, now: float) -> BotView:
        """Both files as of `now` (a view read less than `cache_seconds` ago is reused)."""
        async with self._lock:
            last = self._last
            if last is not None and 0 <= now - last.read_at < self.cache_seconds:
                return last
            snapshot, breaker = await asyncio.gather(
                asyncio.to_thread(read_snapshot_file, self.snapshot_path),
                asyncio.to_thread(read_breaker_file, self.breaker_path),
            )
            self.reads += 1
            self._last = BotView(snapshot, breaker, now)
            return self._last


class ServerStatesUnavailable(Exception):
    """No per-server states to judge yet (no supervisor wired in, no status file of this process)."""


async def call_source(source: ServerStatesSource) -> ServerStates:
    """Call a sync or async server-states source."""
    result = source()
    if inspect.isawaitable(result):
        result = await result
    if not isinstance(result, Mapping):
        raise TypeError(f"a server-states source must return a mapping of server name to state, got {result!r:.80}")
    return result


class StatusFileServerStates:
    """Server states from the supervisor's status file, when no supervisor is wired in directly.

    Only a file written by this very process counts (a file left by an earlier sidecar says nothing about
    this one), and only while it is younger than `max_age` seconds.
    """

    def __init__(self, path: Path, *, clock: Callable[[], float], max_age: float, pid: int | None = None) -> None:
        self.path = Path(path)
        self._clock = clock
        self.max_age = max_age
        self.pid = os.getpid() if pid is None else pid

    async def __call__(self) -> ServerStates:
        """The `servers` mapping of the status file; ServerStatesUnavailable saying why not."""
        try:
            payload = await asyncio.to_thread(read_json_object, self.path)
        except StateFileError as e:
            raise ServerStatesUnavailable(str(e)) from e
        if payload is None:
            raise ServerStatesUnavailable(f"{self.path} does not exist yet (the supervisor writes it on every tick)")
        if payload.get("pid") != self.pid:
            raise ServerStatesUnavailable(
                f"{self.path} was written by pid {payload.get('pid')!r}, not by this sidecar (pid {self.pid})"
            )
        written = number(payload.get("updated_at_epoch"))
        age = None if written is None else self._clock() - written
        if age is None or age > self.max_age:
            shown = "unknown" if age is None else f"{age:.0f} s"
            raise ServerStatesUnavailable(f"{self.path} is too old ({shown}, expected < {self.max_age:g} s)")
        servers = payload.get("servers")
        if not isinstance(servers, Mapping):
            raise ServerStatesUnavailable(f"{self.path} has no 'servers' object")
        return servers
