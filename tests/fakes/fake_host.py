"""A psutil-shaped host for the monitoring checks: this process, host CPU, memory and disk.

Every call records whether it ran on the event loop's thread, so tests can prove that psutil is only
ever called from worker threads, and `cpu_percent(interval=...)` with a waiting interval is refused like
the blocking call it would be.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import psutil

MB = 1024 * 1024


class Memory(NamedTuple):
    rss: int
    vms: int


class VirtualMemory(NamedTuple):
    total: int
    available: int
    percent: float


class DiskUsage(NamedTuple):
    total: int
    used: int
    free: int
    percent: float


@dataclass
class FakeHost:
    """Figures the test sets; `calls` lists (name, thread name) for every psutil call."""

    process_cpu: float = 0.5
    process_rss_mb: float = 50.0
    host_cpu: float = 10.0
    memory_percent: float = 40.0
    disk_percent: float = 30.0
    process_error: Exception | None = None
    calls: list[tuple[str, str]] = field(default_factory=list)
    disk_paths: list[str] = field(default_factory=list)

    def _record(self, name: str) -> None:
        self.calls.append((name, threading.current_thread().name))

    def calls_on(self, thread_name: str) -> list[str]:
        """The calls that ran on the thread called `thread_name` (the loop runs on MainThread)."""
        return [name for name, thread in self.calls if thread == thread_name]

    # --- the psutil module's surface -----------------------------------------------------------------

    def Process(self, pid: int | None = None) -> FakeHostProcess:
        self._record("Process")
        return FakeHostProcess(self)

    def cpu_percent(self, interval: float | None = None) -> float:
        if interval:
            raise AssertionError(f"cpu_percent(interval={interval!r}) blocks; pass interval=None")
        self._record("cpu_percent")
        return self.host_cpu

    def virtual_memory(self) -> VirtualMemory:
        self._record("virtual_memory")
        return VirtualMemory(16 * 1024 * MB, 8 * 1024 * MB, self.memory_percent)

    def disk_usage(self, path: str) -> DiskUsage:
        self._record("disk_usage")
        self.disk_paths.append(path)
        return DiskUsage(100, int(self.disk_percent), 100 - int(self.disk_percent), self.disk_percent)


class FakeHostProcess:
    """psutil.Process for this process: CPU percent and RSS from the host's figures."""

    def __init__(self, host: FakeHost) -> None:
        self._host = host

    def cpu_percent(self, interval: float | None = None) -> float:
        if interval:
            raise AssertionError(f"cpu_percent(interval={interval!r}) blocks; pass interval=None")
        self._host._record("process.cpu_percent")
        if self._host.process_error is not None:
            raise self._host.process_error
        return self._host.process_cpu

    def memory_info(self) -> Any:
        self._host._record("process.memory_info")
        return Memory(int(self._host.process_rss_mb * MB), 0)


def denied() -> Exception:
    """The error psutil raises when it may not look at a process."""
    return psutil.AccessDenied(pid=1)
