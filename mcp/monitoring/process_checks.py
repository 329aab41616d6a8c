"""Checks of the sidecar itself: each of its servers (from the supervisor), its own CPU/RSS, and the host.

psutil is injected (the module by default) and every call to it runs in a worker thread; CPU figures use
`cpu_percent(interval=None)`, the average since the previous call, so no call ever waits.
"""

from __future__ import annotations

import asyncio
import os
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
# the supervisor's server states, and the level each means while the server is not running
_STATE_LEVEL = {"starting": Level.DEGRADED, "restarting": Level.DEGRADED, "stopped": Level.DEGRADED}


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


def sample_process(process: ProcessLike) -> tuple[float, float]:
    """(CPU percent since the previous call, RSS in MB) of `process`; blocking-safe only in a thread."""
    cpu = float(process.cpu_percent(interval=None))
    rss_mb = process.memory_info().rss / MB
    # over a very short interval (the first sample right after priming) psutil's ratio is noise and can
    # read thousands of percent; a process cannot use more than all the cores
    cpu = min(cpu, 100.0 * (os.cpu_count() or 1))
    return round(cpu, 2), round(rss_mb, 1)


class SidecarCheck:
    """sidecar: this process's CPU and RSS vs MONITORING_MAX_* (degraded) and MCP_RESOURCE_LIMIT_* (critical)."""

    def __init__(
        self, psutil_like: PsutilLike, limits: MonitoringLimits, *, interval: float, min_duration: float
    ) -> None:
        self.name = "sidecar"
        self.interval = interval
        self._psutil = psutil_like
        self._limits = limits
        self._process: ProcessLike | None = None
        self._judge = Judge(
            {
                "cpu_percent": Hysteresis(limits.sidecar_cpu_percent, min_duration),
                "memory_mb": Hysteresis(limits.sidecar_memory_mb, min_duration),
            }
        )

    async def prime(self) -> None:
        """Get this process's handle and take psutil's CPU reference point (its first reading is always 0)."""
        process = await asyncio.to_thread(self._psutil.Process)
        await asyncio.to_thread(process.cpu_percent, None)
        self._process = process

    async def run(self, now: float) -> Mapping[str, Reading]:
        """Sample this process (off the loop) and judge it."""
        if self._process is None:
            await self.prime()
        assert self._process is not None
        cpu, rss = await asyncio.to_thread(sample_process, self._process)
        levels = [self._judge.level("cpu_percent", cpu, now), self._judge.level("memory_mb", rss, now)]
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
        message = f"CPU {cpu:g} %, RSS {rss:g} MB"
        if level is not Level.HEALTHY:
            message += f" (limits: {cpu_t.warning:g}/{cpu_t.critical:g} % CPU, {mem_t.warning:g}/{mem_t.critical:g} MB)"
        return {self.name: Reading(level, message, figures)}


def existing_ancestor(path: Path) -> Path:
    """`path` or its nearest existing parent (STATE_DIR may not exist before the bot's first write)."""
    candidate = path.absolute()
    while not candidate.exists() and candidate != candidate.parent:
        candidate = candidate.parent
    return candidate


def sample_host(psutil_like: PsutilLike, disk_path: Path) -> tuple[float, float, float, str]:
    """(CPU %, memory %, disk % used, the folder measured); blocking-safe only in a thread."""
    folder = existing_ancestor(disk_path)
    cpu = float(psutil_like.cpu_percent(interval=None))
    memory = float(psutil_like.virtual_memory().percent)
    disk = float(psutil_like.disk_usage(str(folder)).percent)
    return round(cpu, 1), round(memory, 1), round(disk, 1), str(folder)


class HostCheck:
    """host: CPU, memory and the disk holding STATE_DIR (the disk the bot's state files live on)."""

    def __init__(
        self,
        psutil_like: PsutilLike,
        limits: MonitoringLimits,
        disk_path: Path,
        *,
        interval: float,
        min_duration: float,
        sample: Callable[[PsutilLike, Path], tuple[float, float, float, str]] = sample_host,
    ) -> None:
        self.name = "host"
        self.interval = interval
        self._psutil = psutil_like
        self._disk_path = Path(disk_path)
        self._sample = sample
        self._judge = Judge(
            {
                "cpu_percent": Hysteresis(limits.host_cpu_percent, min_duration),
                "memory_percent": Hysteresis(limits.host_memory_percent, min_duration),
                "disk_percent": Hysteresis(limits.host_disk_percent, min_duration),
            }
        )

    async def prime(self) -> None:
        """Take psutil's system-wide CPU reference point."""
        await asyncio.to_thread(self._psutil.cpu_percent, None)

    async def run(self, now: float) -> Mapping[str, Reading]:
        """Sample the host (off the loop) and judge it."""
        cpu, memory, disk, folder = await asyncio.to_thread(self._sample, self._psutil, self._disk_path)
        figures = {"cpu_percent": cpu, "memory_percent": memory, "disk_percent": disk, "disk_path": folder}
        levels = {name: self._judge.level(name, figures[name], now) for name in self._judge.rules}
        level = overall(list(levels.values()))
        message = f"CPU {cpu:g} %, memory {memory:g} %, disk {disk:g} % used"
        bad = [name for name, found in levels.items() if found is not None and found is not Level.HEALTHY]
        if bad:
            message += f" — high: {', '.join(bad)}"
        return {self.name: Reading(level, message, figures)}
