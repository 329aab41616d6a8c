"""Checks of the sidecar itself: each of its servers (from the supervisor), its own CPU/RSS, and the host.

psutil is injected (the module by default) and every call to it runs in a worker thread; CPU figures use
`cpu_percent(interval=None)`, the average since the previous call, so no call ever waits. That average needs
a baseline: the first call only primes it (psutil returns a meaningless 0.0), and a call a few milliseconds
after the previous one divides by almost nothing (a sidecar once read its own CPU as "200 %"). `CpuMeter`
therefore gives no reading until its baseline is at least `MIN_CPU_SPAN_SECONDS` old, and the check shows
`starting` meanwhile instead of judging noise.

The host check runs every `HOST_SAMPLE_SECONDS` at most and judges the mean over its window (as Glances and
Netdata do), rather than holding one momentary reading for a whole long interval.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from mcp.health import HealthStatus
from mcp.monitoring.base import Judge, Reading, overall
from mcp.monitoring.levels import Hysteresis, HysteresisState, Level, step
from mcp.monitoring.sources import (
    ProcessLike,
    PsutilLike,
    ServerStatesSource,
    ServerStatesUnavailable,
    call_source,
    number,
)
from mcp.monitoring.thresholds import MonitoringLimits

MB = 1024 * 1024
# a CPU percentage over less than this is noise: psutil divides the CPU time (10 ms ticks) by the wall time
# since the last call; half a second keeps 1 s check intervals (tests, deploy checks) measurable
MIN_CPU_SPAN_SECONDS = 0.5
# the supervisor's server states, and the level each means while the server is not running
_STATE_LEVEL = {"starting": Level.STARTING, "restarting": Level.DEGRADED, "stopped": Level.DEGRADED}


class CpuMeter:
    """psutil's `cpu_percent(None)` with its baseline kept: None until the previous call is old enough.

    Blocking-safe only in a worker thread (it calls psutil); `clock` is monotonic seconds (injected for tests).
    """

    def __init__(
        self,
        read: Callable[[], float],
        *,
        clock: Callable[[], float] = time.monotonic,
        min_span: float = MIN_CPU_SPAN_SECONDS,
    ) -> None:
        self._read = read
        self._clock = clock
        self.min_span = min_span
        self._since: float | None = None
        self._lock = threading.Lock()

    @property
    def primed(self) -> bool:
        """Has the baseline been taken?"""
        return self._since is not None

    def prime(self) -> None:
        """Take the baseline (psutil's first call returns 0.0, which is not a reading)."""
        with self._lock:
            self._read()
            self._since = self._clock()

    def sample(self) -> float | None:
        """The CPU percent since the baseline, which moves to now; None (baseline kept) while it is too young."""
        with self._lock:
            now = self._clock()
            if self._since is None:
                self._read()
                self._since = now
                return None
            if now - self._since < self.min_span:
                return None  # calling psutil now would replace a good baseline by a noisy reading
            value = float(self._read())
            self._since = now
            return value


def server_level(entry: Mapping[str, Any]) -> tuple[Level, str]:
    """A server's level from the supervisor's record of it: failed is critical, running is its own health."""
    state = str(entry.get("state", "unknown"))
    error = entry.get("last_error")
    if state == "failed":
        return Level.CRITICAL, f"failed and not restarted (last error: {error or 'none recorded'})"
    if state in _STATE_LEVEL:
        return _STATE_LEVEL[state], f"{state}" + (f" after: {error}" if error else "")
    if state != "running":
        return Level.CRITICAL, f"unknown supervisor state {state!r}"
    health = entry.get("health") if isinstance(entry.get("health"), Mapping) else {}
    level = HealthStatus.parse(entry.get("status", health.get("status", "healthy")))
    notes = health.get("notes") or health.get("message")
    return level, "running" + (f": {notes}" if notes and level is not Level.HEALTHY else "")


class ServersCheck:
    """One component per sidecar server (except monitoring itself), from the supervisor's per-server states.

    A server's level changes only after `min_duration` (a quick restart is not an incident), except
    "failed", which is final and shown at once.
    """

    def __init__(
        self,
        source: ServerStatesSource | None,
        *,
        interval: float,
        min_duration: float,
        exclude: frozenset[str] = frozenset({"monitoring"}),
        name: str = "servers",
    ) -> None:
        self.name = name
        self.interval = interval
        self.warmup = min_duration
        self.source = source
        self._min_duration = min_duration
        self._exclude = exclude
        self._states: dict[str, HysteresisState] = {}
        self.unavailable: str | None = "no check yet"

    async def run(self, now: float) -> Mapping[str, Reading]:
        """Judge every server the supervisor knows; none when its states cannot be had (see `unavailable`)."""
        if self.source is None:
            self.unavailable = "no supervisor wired in"
            return {}
        try:
            states = await call_source(self.source)
        except ServerStatesUnavailable as e:
            self.unavailable = str(e)
            return {}
        self.unavailable = None
        readings = {}
        for name, entry in states.items():
            if name in self._exclude or not isinstance(entry, Mapping):
                continue
            level, message = server_level(entry)
            if level is Level.CRITICAL and entry.get("state") == "failed":
                self._states[name] = HysteresisState(level, now)
            else:
                self._states[name] = step(self._states.get(name, HysteresisState()), level, now, self._min_duration)
            shown = self._states[name].level or level
            if shown is not level:
                message = f"{message} (shown as {shown.value} until it lasts {self._min_duration:g} s)"
            readings[name] = Reading(shown, message, self._figures(entry))
        for gone in set(self._states) - set(readings):
            del self._states[gone]
        return readings

    @staticmethod
    def _figures(entry: Mapping[str, Any]) -> dict[str, Any]:
        health = entry.get("health") if isinstance(entry.get("health"), Mapping) else {}
        figures = {key: entry.get(key) for key in ("state", "restarts", "uptime_seconds", "last_error")}
        last_run = health.get("last_run")
        if isinstance(last_run, Mapping) and number(last_run.get("coverage")) is not None:
            figures["coverage"] = number(last_run.get("coverage"))
            figures["coverage_threshold"] = number(health.get("threshold"))
            figures["coverage_run_id"] = last_run.get("run_id")
        cache = health.get("cache")
        if isinstance(cache, Mapping) and number(cache.get("hits")) is not None:
            # a server that keeps a cache reports {"hits": n, "requests": m} running totals in its health()
            figures["cache_hits"] = number(cache.get("hits"))
            figures["cache_requests"] = number(cache.get("requests"))
        figures["health"] = {key: value for key, value in health.items() if key != "status"}
        return figures


def sample_process(process: ProcessLike, cpu: CpuMeter) -> tuple[float | None, float]:
    """(CPU percent since the baseline or None, RSS in MB) of `process`; blocking-safe only in a thread."""
    percent = cpu.sample()
    rss_mb = process.memory_info().rss / MB
    if percent is not None:
        # a process cannot use more than all the cores
        percent = round(min(percent, 100.0 * (os.cpu_count() or 1)), 2)
    return percent, round(rss_mb, 1)


class SidecarCheck:
    """sidecar: this process's CPU and RSS vs MONITORING_MAX_* (degraded) and MCP_RESOURCE_LIMIT_* (critical)."""

    def __init__(
        self,
        psutil_like: PsutilLike,
        limits: MonitoringLimits,
        *,
        interval: float,
        min_duration: float,
        clock: Callable[[], float] = time.monotonic,
        min_cpu_span: float = MIN_CPU_SPAN_SECONDS,
    ) -> None:
        self.name = "sidecar"
        self.interval = interval
        self.warmup = min_duration
        self._psutil = psutil_like
        self._limits = limits
        self._clock = clock
        self._min_cpu_span = min_cpu_span
        self._process: ProcessLike | None = None
        self._cpu: CpuMeter | None = None
        self._judge = Judge(
            {
                "cpu_percent": Hysteresis(limits.sidecar_cpu_percent, min_duration),
                "memory_mb": Hysteresis(limits.sidecar_memory_mb, min_duration),
            }
        )

    async def prime(self) -> None:
        """Get this process's handle and take psutil's CPU baseline (its first reading is not a reading)."""
        process = await asyncio.to_thread(self._psutil.Process)
        cpu = CpuMeter(lambda: process.cpu_percent(interval=None), clock=self._clock, min_span=self._min_cpu_span)
        await asyncio.to_thread(cpu.prime)
        self._process, self._cpu = process, cpu

    async def run(self, now: float) -> Mapping[str, Reading]:
        """Sample this process (off the loop) and judge it."""
        if self._process is None or self._cpu is None:
            await self.prime()
        assert self._process is not None and self._cpu is not None
        cpu, rss = await asyncio.to_thread(sample_process, self._process, self._cpu)
        cpu_level = self._judge.waiting("cpu_percent") if cpu is None else self._judge.level("cpu_percent", cpu, now)
        levels = [cpu_level, self._judge.level("memory_mb", rss, now)]
        cpu_t, mem_t = self._limits.sidecar_cpu_percent, self._limits.sidecar_memory_mb
        figures = {
            "cpu_percent": cpu,
            "memory_mb": rss,
            "cpu_warning_percent": cpu_t.warning,
            "cpu_critical_percent": cpu_t.critical,
            "memory_warning_mb": mem_t.warning,
            "memory_critical_mb": mem_t.critical,
        }
        level = overall(levels)
        shown = "no reading yet (baseline too recent)" if cpu is None else f"{cpu:g} %"
        message = f"CPU {shown}, RSS {rss:g} MB"
        if level.rank >= Level.DEGRADED.rank:
            message += f" (limits: {cpu_t.warning:g}/{cpu_t.critical:g} % CPU, {mem_t.warning:g}/{mem_t.critical:g} MB)"
        return {self.name: Reading(level, message, figures)}


def existing_ancestor(path: Path) -> Path:
    """`path` or its nearest existing parent (STATE_DIR may not exist before the bot's first write)."""
    candidate = path.absolute()
    while not candidate.exists() and candidate != candidate.parent:
        candidate = candidate.parent
    return candidate


def sample_host(psutil_like: PsutilLike, disk_path: Path, cpu: CpuMeter) -> tuple[float | None, float, float, str]:
    """(CPU % since the baseline or None, memory %, disk % used, the folder measured); only in a thread."""
    folder = existing_ancestor(disk_path)
    percent = cpu.sample()
    memory = float(psutil_like.virtual_memory().percent)
    disk = float(psutil_like.disk_usage(str(folder)).percent)
    return None if percent is None else round(percent, 1), round(memory, 1), round(disk, 1), str(folder)


class WindowMean:
    """The mean of the readings of the last `window` seconds (a reading older than that no longer counts)."""

    def __init__(self, window: float) -> None:
        self.window = window
        self._points: deque[tuple[float, float]] = deque()

    def add(self, now: float, value: float | None) -> float | None:
        """Record `value` (None: no reading this time) and return the mean over the window (None: none yet)."""
        if value is not None:
            self._points.append((now, value))
        while self._points and self._points[0][0] <= now - self.window:
            self._points.popleft()
        if not self._points:
            return None
        return round(sum(v for _, v in self._points) / len(self._points), 1)


class HostCheck:
    """host: CPU, memory and the disk holding STATE_DIR, each judged on its mean over `window` seconds."""

    def __init__(
        self,
        psutil_like: PsutilLike,
        limits: MonitoringLimits,
        disk_path: Path,
        *,
        interval: float,
        min_duration: float,
        window: float | None = None,
        sample: Callable[[PsutilLike, Path, CpuMeter], tuple[float | None, float, float, str]] = sample_host,
        clock: Callable[[], float] = time.monotonic,
        min_cpu_span: float = MIN_CPU_SPAN_SECONDS,
    ) -> None:
        self.name = "host"
        self.interval = interval
        self.warmup = min_duration
        self._psutil = psutil_like
        self._disk_path = Path(disk_path)
        self._sample = sample
        self._cpu = CpuMeter(lambda: psutil_like.cpu_percent(interval=None), clock=clock, min_span=min_cpu_span)
        span = interval if window is None else window
        self._means = {name: WindowMean(span) for name in ("cpu_percent", "memory_percent", "disk_percent")}
        self._judge = Judge(
            {
                "cpu_percent": Hysteresis(limits.host_cpu_percent, min_duration),
                "memory_percent": Hysteresis(limits.host_memory_percent, min_duration),
                "disk_percent": Hysteresis(limits.host_disk_percent, min_duration),
            }
        )

    async def prime(self) -> None:
        """Take psutil's system-wide CPU baseline."""
        await asyncio.to_thread(self._cpu.prime)

    async def run(self, now: float) -> Mapping[str, Reading]:
        """Sample the host (off the loop), add it to the window, judge the window's means."""
        if not self._cpu.primed:
            await self.prime()
        cpu, memory, disk, folder = await asyncio.to_thread(self._sample, self._psutil, self._disk_path, self._cpu)
        latest = {"cpu_percent": cpu, "memory_percent": memory, "disk_percent": disk}
        means = {name: self._means[name].add(now, value) for name, value in latest.items()}
        levels = {
            name: self._judge.waiting(name) if mean is None else self._judge.level(name, mean, now)
            for name, mean in means.items()
        }
        level = overall(list(levels.values()))
        window = self._means["cpu_percent"].window
        figures: dict[str, Any] = {**means, "disk_path": folder, "window_seconds": window}
        figures.update({f"latest_{name}": value for name, value in latest.items()})
        shown = {name: "?" if mean is None else f"{mean:g}" for name, mean in means.items()}
        message = (
            f"CPU {shown['cpu_percent']} %, memory {shown['memory_percent']} %, "
            f"disk {shown['disk_percent']} % used (means over {window:g} s)"
        )
        bad = [name for name, found in levels.items() if found is not None and found.rank >= Level.DEGRADED.rank]
        if bad:
            message += f" — high: {', '.join(bad)}"
        return {self.name: Reading(level, message, figures)}
