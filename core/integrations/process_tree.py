"""CPU and memory of the sidecar's whole process tree (itself plus every child, e.g. a test run).

psutil's `cpu_percent(interval=None)` compares against the previous call *on the same Process object*,
so the sampler keeps one object per live process between samples: the first sample of a process reads
0.0 and later ones give the average since the previous check, without ever sleeping. The sample says
how long that window was: a CPU figure averaged over a few milliseconds is noise, not load. `sample()` blocks
(it reads /proc): call it through `asyncio.to_thread`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import psutil

from core.integrations.rules import ResourceLimits, within_limits

MB = 1024 * 1024


class ProcessLike(Protocol):
    """The part of psutil.Process the sampler uses (fakes in tests implement just this)."""

    pid: int

    def children(self, recursive: bool = False) -> list[Any]: ...

    def cpu_percent(self, interval: float | None = None) -> float: ...

    def memory_info(self) -> Any: ...


@dataclass(frozen=True)
class TreeSample:
    """Totals over the tree; cpu is in percent of one CPU (the unit of systemd's CPUQuota)."""

    total_cpu_percent: float
    total_memory_mb: float
    processes: int
    vanished: int  # exited between listing and reading: not an error
    denied: int  # not readable (another user's process): counted, not fatal
    warming_up: bool  # the root's first sample: its CPU figure is not meaningful yet
    window_seconds: float | None  # time since the previous sample: the span the CPU figure averages over


class ProcessTreeSampler:
    """Samples a root process and its descendants; `root` is injected (default: this process)."""

    def __init__(
        self,
        root: ProcessLike | None = None,
        *,
        factory: Callable[[], ProcessLike] = psutil.Process,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._root = root
        self._factory = factory
        self._clock = clock
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
            processes, vanished, denied = 1, 0, 0
            seen: dict[int, Any] = {}
            for listed in root.children(recursive=True):
                # reuse the object from the last sample so cpu_percent has its previous reading
                known = self._known.get(listed.pid)
                proc = known if known is not None and known == listed else listed
                try:
                    cpu += float(proc.cpu_percent(interval=None))
                    memory += float(proc.memory_info().rss)
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
            window_seconds=None if previous is None else round(max(0.0, now - previous), 3),
        )


def usage_report(sample: TreeSample | None, limits: ResourceLimits, error: str | None = None) -> dict[str, Any]:
    """monitor_all's `resource_usage` block; with no sample, an error status that is never "within limits"."""
    bounds = {"limit_cpu_percent": limits.cpu_percent, "limit_memory_mb": limits.memory_mb}
    if sample is None:
        return {"status": "error", "message": error or "no sample", "within_limits": False, **bounds}
    return {
        "status": "ok",
        "total_cpu_percent": sample.total_cpu_percent,
        "total_memory_mb": sample.total_memory_mb,
        "within_limits": within_limits(sample.total_cpu_percent, sample.total_memory_mb, limits),
        "processes": sample.processes,
        "vanished": sample.vanished,
        "denied": sample.denied,
        "cpu_warming_up": sample.warming_up,
        "cpu_window_seconds": sample.window_seconds,
        **bounds,
    }
