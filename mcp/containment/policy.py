"""Pure decisions of containment: which isolation is in effect, the unit's limits in cgroup v1 figures, and
the priority of a heavy-work thread or process (SCHED_IDLE, `nice` where SCHED_IDLE is refused).

The one side effect, `lower_heavy_priority`, takes its system calls as parameters so tests pass fakes.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from enum import StrEnum

# The limits of scripts/systemd/polymarket-mcp.service (CPUQuota=15%, MemoryMax=1G), applied directly when no
# unit manages the sidecar; tests/mcp/test_containment_policy.py checks they match the unit file.
UNIT_CPU_QUOTA_PERCENT = 15.0
UNIT_MEMORY_MAX_BYTES = 1024**3
CFS_PERIOD_US = 100_000
# the niceness of heavy work where SCHED_IDLE is refused: the lowest priority a normal process can take
FALLBACK_NICENESS = 19


class Isolation(StrEnum):
    """What keeps the sidecar's heavy work from hurting trading, strongest first (shown on /health)."""

    SYSTEMD_UNIT = "systemd unit"  # the unit's CPUQuota/MemoryMax apply (and SCHED_IDLE inside them)
    OWN_CGROUP = "own cgroup"  # no unit: the sidecar applies the unit's limits itself (and SCHED_IDLE)
    SCHED_IDLE = "SCHED_IDLE"  # no limits, but heavy work only runs when a core would otherwise idle
    NICE_ONLY = "nice only"  # SCHED_IDLE refused: niceness is the only protection


class HeavyPriority(StrEnum):
    """The priority a heavy-work thread or process actually got."""

    SCHED_IDLE = "SCHED_IDLE"
    NICE = "nice"
    UNCHANGED = "unchanged"  # neither could be set (logged by the caller)


def systemd_managed(environ: Mapping[str, str], proc_self_cgroup: str) -> bool:
    """True when a systemd unit runs this process: systemd sets INVOCATION_ID, and its cgroup is a .service."""
    if environ.get("INVOCATION_ID"):
        return True
    for line in proc_self_cgroup.splitlines():
        path = line.rpartition(":")[2]
        if any(part.endswith(".service") for part in path.split("/")):
            return True
    return False


def decide_isolation(*, systemd: bool, cgroups_writable: bool, heavy_priority: HeavyPriority) -> Isolation:
    """The isolation in effect: the unit if systemd runs us, else our own cgroup if we can make one, else the
    priority heavy work got."""
    if systemd:
        return Isolation.SYSTEMD_UNIT
    if cgroups_writable:
        return Isolation.OWN_CGROUP
    return Isolation.SCHED_IDLE if heavy_priority is HeavyPriority.SCHED_IDLE else Isolation.NICE_ONLY


def cfs_quota_us(cpu_percent: float, period_us: int = CFS_PERIOD_US) -> int:
    """cpu.cfs_quota_us for systemd's CPUQuota=<cpu_percent>% (percent of one CPU) over `period_us`."""
    if cpu_percent <= 0 or period_us <= 0:
        raise ValueError(f"expected a CPU quota > 0 % and a period > 0 us, received {cpu_percent} % / {period_us} us")
    # the kernel refuses quotas under 1 ms
    return max(1000, round(period_us * cpu_percent / 100.0))


def lower_heavy_priority(
    pid: int = 0,
    *,
    set_scheduler: Callable[[int, int, os.sched_param], None] | None = None,
    set_priority: Callable[[int, int, int], None] = os.setpriority,
    get_priority: Callable[[int, int], int] = os.getpriority,
) -> HeavyPriority:
    """Put `pid` (0: the calling thread on Linux) under SCHED_IDLE; where that is refused, at nice 19.

    Never raises for a refusal: heavy work still runs, at the best priority this machine allows.
    """
    scheduler = set_scheduler if set_scheduler is not None else getattr(os, "sched_setscheduler", None)
    idle = getattr(os, "SCHED_IDLE", None)
    if scheduler is not None and idle is not None:
        try:
            scheduler(pid, idle, os.sched_param(0))
            return HeavyPriority.SCHED_IDLE
        except OSError:  # PermissionError in some containers, EINVAL on kernels without the class
            pass
    try:
        if get_priority(os.PRIO_PROCESS, pid) < FALLBACK_NICENESS:
            set_priority(os.PRIO_PROCESS, pid, FALLBACK_NICENESS)
        return HeavyPriority.NICE
    except OSError:
        return HeavyPriority.UNCHANGED
