"""A psutil-shaped process tree: what the kernel has (`FakeProc`) and psutil.Process-like handles to it.

Like psutil, `children()` hands out *new* handle objects on every call, a handle's first `cpu_percent()`
returns 0.0 (psutil has nothing to compare against yet), handles compare equal on (pid, create time),
and a process that exited or belongs to someone else raises psutil's own exceptions. That lets tests
check that the sampler keeps its handles between samples and never asks for a blocking interval.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import psutil

MB = 1024 * 1024


class FakeMemoryInfo(NamedTuple):
    rss: int
    vms: int


@dataclass
class FakeProc:
    """One process as the kernel sees it; tests change its figures between samples."""

    pid: int
    cpu: float = 0.0
    rss_mb: float = 10.0
    create_time: float = 1_000.0
    children: list[FakeProc] = field(default_factory=list)
    gone: bool = False
    denied: bool = False
    sched_idle: bool = False  # issue 10: SCHED_IDLE work is reported apart from the CPU that competes with trading

    def handle(self) -> FakeProcessHandle:
        """A psutil.Process-like object for this process."""
        return FakeProcessHandle(self)


class FakeProcessHandle:
    """What psutil.Process offers the sampler: pid, children(), cpu_percent(), memory_info()."""

    def __init__(self, proc: FakeProc) -> None:
        self._proc = proc
        self.pid = proc.pid
        self.cpu_calls = 0

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, FakeProcessHandle):
            return NotImplemented
        return (self.pid, self._proc.create_time) == (other.pid, other._proc.create_time)

    def __hash__(self) -> int:
        return hash((self.pid, self._proc.create_time))

    def _check(self) -> None:
        if self._proc.gone:
            raise psutil.NoSuchProcess(self.pid)
        if self._proc.denied:
            raise psutil.AccessDenied(self.pid)

    def children(self, recursive: bool = False) -> list[FakeProcessHandle]:
        # like psutil, listing works from the parent/child table: no access to the children is needed
        self._check()
        found: list[FakeProcessHandle] = []
        pending = list(self._proc.children)
        while pending:
            child = pending.pop(0)
            found.append(child.handle())
            if recursive:
                pending.extend(child.children)
        return found

    def cpu_percent(self, interval: float | None = None) -> float:
        if interval is not None:
            raise AssertionError(f"cpu_percent(interval={interval!r}) blocks; the sampler must pass interval=None")
        self._check()
        self.cpu_calls += 1
        return 0.0 if self.cpu_calls == 1 else self._proc.cpu

    def sched_policy(self) -> int:
        """What os.sched_getscheduler(pid) would answer for this process."""
        self._check()
        return os.SCHED_IDLE if self._proc.sched_idle else os.SCHED_OTHER

    def memory_info(self) -> Any:
        self._check()
        return FakeMemoryInfo(rss=int(self._proc.rss_mb * MB), vms=int(self._proc.rss_mb * MB * 2))
