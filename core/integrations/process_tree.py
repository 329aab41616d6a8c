"""CPU and memory of the sidecar's whole process tree (itself plus every child, e.g. a test run).

psutil's `cpu_percent(interval=None)` compares against the previous call *on the same Process object*,
so the sampler keeps one object per live process between samples: the first sample of a process reads
0.0 and later ones give the average since the previous check, without ever sleeping. The sample says
how long that window was: a CPU figure averaged over a few milliseconds is noise, not load. `sample()` blocks
(it reads /proc): call it through `asyncio.to_thread`.

Issue 10: CPU under SCHED_IDLE (test runs, the heavy-work threads of scans and regex searches) runs only when
a core would otherwise idle, so it cannot delay the bot: it is reported apart, as `idle_cpu_percent`, and
`total_cpu_percent` is the rest, the CPU that competes with trading. A child process counts as idle when its
main thread is SCHED_IDLE; the sidecar's own process is split per thread (its heavy threads are idle).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import psutil

from core.integrations.rules import ResourceLimits, within_limits

MB = 1024 * 1024
SCHED_IDLE: int | None = getattr(os, "SCHED_IDLE", None)


def process_policy(proc: Any) -> int | None:
    """A process's scheduling policy: its own `sched_policy()` if it has one (fakes), else the kernel's answer
    for a real psutil.Process (never asked about a pid that did not come from the kernel)."""
    own = getattr(proc, "sched_policy", None)
    if callable(own):
        return own()
    if isinstance(proc, psutil.Process):
        return scheduling_policy(proc.pid)
    return None


def scheduling_policy(pid: int) -> int | None:
    """The policy of a thread or process (None where it cannot be read: gone, or not Linux)."""
    getter = getattr(os, "sched_getscheduler", None)
    if getter is None:
        return None
    try:
        return int(getter(pid))
    except OSError:
        return None


class ProcessLike(Protocol):
    """The part of psutil.Process the sampler uses (fakes in tests implement just this)."""

    pid: int

    def children(self, recursive: bool = False) -> list[Any]: ...

    def cpu_percent(self, interval: float | None = None) -> float: ...

    def memory_info(self) -> Any: ...


@dataclass(frozen=True)
class TreeSample:
    """Totals over the tree; cpu is in percent of one CPU (the unit of systemd's CPUQuota)."""

    total_cpu_percent: float  # non-idle CPU: what competes with trading
    total_memory_mb: float
    processes: int
    vanished: int  # exited between listing and reading: not an error
    denied: int  # not readable (another user's process): counted, not fatal
    warming_up: bool  # the root's first sample: its CPU figure is not meaningful yet
    window_seconds: float | None  # time since the previous sample: the span the CPU figure averages over
    idle_cpu_percent: float = 0.0  # SCHED_IDLE work (test runs, heavy threads): reported, never a trip
    idle_processes: int = 0


class ProcessTreeSampler:
    """Samples a root process and its descendants; `root` is injected (default: this process)."""

    def __init__(
        self,
        root: ProcessLike | None = None,
        *,
        factory: Callable[[], ProcessLike] = psutil.Process,
        clock: Callable[[], float] = time.monotonic,
        policy_of: Callable[[Any], int | None] = process_policy,
        thread_policy: Callable[[int], int | None] = scheduling_policy,
    ) -> None:
        self._root = root
        self._factory = factory
        self._clock = clock
        self._policy_of = policy_of
        self._thread_policy = thread_policy
        self._thread_cpu: dict[int, float] = {}  # the root's threads: CPU seconds at the previous sample
        self._known: dict[int, Any] = {}
        self._last_at: float | None = None
        self._lock = threading.Lock()

    def sample(self) -> TreeSample:
        """Read the whole tree now (blocking; psutil errors on the root itself propagate)."""
        with self._lock:
            if self._root is None:
                self._root = self._factory()
            root = self._root
            cpu = float(root.cpu_percent(interval=None))
            memory = float(root.memory_info().rss)
            now, previous = self._clock(), self._last_at
            self._last_at = now
            idle_seconds = self._idle_thread_seconds(root, first=previous is None)
            window = None if previous is None else max(0.0, now - previous)
            root_idle = min(cpu, 100.0 * idle_seconds / window) if window else 0.0
            cpu -= root_idle
            idle_cpu, idle_processes = root_idle, 0
            processes, vanished, denied = 1, 0, 0
            seen: dict[int, Any] = {}
            for listed in root.children(recursive=True):
                # reuse the object from the last sample so cpu_percent has its previous reading
                known = self._known.get(listed.pid)
                proc = known if known is not None and known == listed else listed
                try:
                    share = float(proc.cpu_percent(interval=None))
                    memory += float(proc.memory_info().rss)
                    if SCHED_IDLE is not None and self._policy_of(proc) == SCHED_IDLE:
                        idle_cpu += share
                        idle_processes += 1
                    else:
                        cpu += share
                except psutil.NoSuchProcess:
                    vanished += 1
                    continue
                except psutil.AccessDenied:
                    denied += 1
                    continue
                seen[listed.pid] = proc
                processes += 1
            self._known = seen
        return TreeSample(
            total_cpu_percent=round(cpu, 2),
            total_memory_mb=round(memory / MB, 2),
            processes=processes,
            vanished=vanished,
            denied=denied,
            warming_up=previous is None,
            window_seconds=None if window is None else round(window, 3),
            idle_cpu_percent=round(idle_cpu, 2),
            idle_processes=idle_processes,
        )

    def _idle_thread_seconds(self, root: Any, *, first: bool) -> float:
        """CPU seconds the root's SCHED_IDLE threads used since the previous sample (0 on the first)."""
        threads = getattr(root, "threads", None)
        if threads is None or SCHED_IDLE is None:
            return 0.0
        try:
            listed = threads()
        except psutil.Error:
            return 0.0
        seen: dict[int, float] = {}
        used = 0.0
        for thread in listed:
            total = float(thread.user_time) + float(thread.system_time)
            seen[thread.id] = total
            if self._thread_policy(thread.id) != SCHED_IDLE or first:
                continue
            # a thread new since the previous sample spent all its time in this window
            used += max(0.0, total - self._thread_cpu.get(thread.id, 0.0))
        self._thread_cpu = seen
        return used


def usage_report(sample: TreeSample | None, limits: ResourceLimits, error: str | None = None) -> dict[str, Any]:
    """monitor_all's `resource_usage` block; with no sample, an error status that is never "within limits"."""
    bounds = {"limit_cpu_percent": limits.cpu_percent, "limit_memory_mb": limits.memory_mb}
    if sample is None:
        return {"status": "error", "message": error or "no sample", "within_limits": False, **bounds}
    return {
        "status": "ok",
        # issue 10: non-idle CPU of the tree (what can delay trading); SCHED_IDLE work is on its own line
        "total_cpu_percent": sample.total_cpu_percent,
        "idle_cpu_percent": sample.idle_cpu_percent,
        "idle_processes": sample.idle_processes,
        "total_memory_mb": sample.total_memory_mb,
        "within_limits": within_limits(sample.total_cpu_percent, sample.total_memory_mb, limits),
        "processes": sample.processes,
        "vanished": sample.vanished,
        "denied": sample.denied,
        "cpu_warming_up": sample.warming_up,
        "cpu_window_seconds": sample.window_seconds,
        **bounds,
    }
