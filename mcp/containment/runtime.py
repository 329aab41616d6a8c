"""The sidecar's containment at run time: the isolation in effect, the heavy-work cgroup, one cgroup and one
record per test run, and the cleanup at start of what a killed sidecar left behind.

`Containment.start()` and the run methods block (they write /sys/fs/cgroup and STATE_DIR): the testing
server calls them through `asyncio.to_thread`. `get_process_containment(state_dir)` is the documented
accessor: one per process, since the heavy cgroup and the record file are per process.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mcp.containment import heavy
from mcp.containment.cgroups import CGROUP_ROOT, Cgroup, CgroupError, discover, kill_dirs, sweep_orphans
from mcp.containment.ledger import Ledger, clean_leftovers, identity
from mcp.containment.policy import (
    CFS_PERIOD_US,
    UNIT_CPU_QUOTA_PERCENT,
    UNIT_MEMORY_MAX_BYTES,
    HeavyPriority,
    Isolation,
    cfs_quota_us,
    decide_isolation,
    systemd_managed,
)

logger = logging.getLogger(__name__)

WRAPPER_MODULE = "mcp.containment.wrapper"
HEAVY_PREFIX = "mcp-heavy-"


def wrapper_prefix(
    cgroup_dirs: Sequence[str] = (), *, parent: int | None = None, idle: bool = True, temp_folder: Path | None = None
) -> list[str]:
    """The argv prefix that makes a command a contained run (its group's leader; `-P`: the tested project's
    folder, the child's cwd, must not shadow our own package)."""
    argv = [sys.executable, "-P", "-m", WRAPPER_MODULE, "--parent", str(os.getpid() if parent is None else parent)]
    for directory in cgroup_dirs:
        argv += ["--cgroup", directory]
    if not idle:
        argv.append("--no-idle")
    if temp_folder is not None:
        argv += ["--temp-folder", str(temp_folder)]
    return [*argv, "--"]


@dataclass(frozen=True)
class RunSlot:
    """One contained command: its id in the record and its cgroup (empty where cgroups are not writable)."""

    run_id: str
    cgroup_dirs: list[str]


class Containment:
    """Isolation of one sidecar process's heavy work; see the module docstring."""

    def __init__(
        self,
        state_dir: Path | None,
        *,
        environ: Mapping[str, str] = os.environ,
        cgroup_root: Path | None = CGROUP_ROOT,
        proc: Path = Path("/proc"),
    ) -> None:
        self._state_dir = state_dir
        self._environ = environ
        self._cgroup_root = cgroup_root
        self._proc = proc
        self._lock = threading.Lock()
        self._started = False
        self._base: Cgroup | None = None
        self._heavy: Cgroup | None = None
        self._ledger: Ledger | None = None
        self.isolation = Isolation.NICE_ONLY
        self.heavy_priority = HeavyPriority.UNCHANGED
        self.note = ""

    def start(self) -> Containment:
        """Clean up after dead sidecars, decide the isolation, make the heavy cgroup; idempotent. Blocking."""
        with self._lock:
            if self._started:
                return self
            self._started = True
            if self._state_dir is not None:
                cleanup = clean_leftovers(self._state_dir, self._proc)
                if cleanup.records or cleanup.problems:
                    logger.warning("cleaned up after a killed sidecar: %s", cleanup.summary())
                me = identity(os.getpid(), self._proc)
                if me is not None:
                    self._ledger = Ledger(self._state_dir, me)
            self.heavy_priority = heavy.probe_priority()
            try:
                proc_cgroup = (self._proc / "self" / "cgroup").read_text()
            except OSError:
                proc_cgroup = ""
            systemd = systemd_managed(self._environ, proc_cgroup)
            if self._cgroup_root is not None:
                self._base = discover(self._cgroup_root, self._proc / "self" / "cgroup")
            if self._base is not None:
                # also without a record (a STATE_DIR since deleted): groups of dead sidecars beside ours
                swept = sweep_orphans(self._base, HEAVY_PREFIX, lambda pid: (self._proc / str(pid)).exists())
                if swept:
                    logger.warning("removed the heavy-work cgroups of dead sidecars: %s", ", ".join(map(str, swept)))
            if self._base is not None and not systemd:
                self._heavy = self._make_heavy_cgroup(self._base)
            self.isolation = decide_isolation(
                systemd=systemd, cgroups_writable=self._heavy is not None, heavy_priority=self.heavy_priority
            )
            if self._heavy is not None:
                group = self._heavy
                heavy.set_thread_hook(lambda: group.add_thread_cpu(threading.get_native_id()))
            self._write()
        logger.info(
            "heavy work isolation: %s (heavy work priority %s; %s)",
            self.isolation.value,
            self.heavy_priority.value,
            (self.note or "no cgroup of its own") if self._heavy is None else f"cgroup {self._heavy.paths()[0]}",
        )
        return self

    def _make_heavy_cgroup(self, base: Cgroup) -> Cgroup | None:
        group = base.child(f"{HEAVY_PREFIX}{os.getpid()}")
        try:
            group.create()
            group.set_limits(
                cfs_quota_us=cfs_quota_us(UNIT_CPU_QUOTA_PERCENT),
                cfs_period_us=CFS_PERIOD_US,
                memory_bytes=UNIT_MEMORY_MAX_BYTES,
            )
        except CgroupError as e:
            self.note = f"cgroups looked writable but {e}"
            group.kill()
            return None
        if self._ledger is not None:
            self._ledger.heavy_cgroup = group.paths()
        return group

    def _write(self) -> None:
        if self._ledger is None:
            return
        try:
            self._ledger.write()
        except OSError as e:
            # without the record only the next start's cleanup is lost; the run itself is still contained
            logger.warning("cannot record heavy work in %s: %s", self._ledger.path, e)

    def describe(self) -> dict[str, Any]:
        """For /health and the dashboard: the isolation in effect and its figures."""
        if not self._started:
            return {"isolation": None, "note": "not decided yet (the sidecar is starting)"}
        return {
            "isolation": self.isolation.value,
            "heavy_priority": self.heavy_priority.value,
            "cgroup": None if self._heavy is None else self._heavy.paths()[0],
            "cpu_quota_percent": UNIT_CPU_QUOTA_PERCENT if self._heavy is not None else None,
            "memory_max_bytes": UNIT_MEMORY_MAX_BYTES if self._heavy is not None else None,
        }

    # --- runs ---------------------------------------------------------------------------------------
    def open_run(self) -> RunSlot:
        """A new run's slot: a cgroup (under the heavy one, or ours under a systemd unit) when writable."""
        self.start()
        run_id = uuid.uuid4().hex[:12]
        parent = self._heavy or self._base
        dirs: list[str] = []
        if parent is not None:
            group = parent.child(f"run-{run_id}")
            try:
                group.create()
                group.make_idle_group()  # an idle entity among its siblings too
                dirs = group.paths()
            except CgroupError as e:
                logger.warning("test run without a cgroup of its own (%s): a setsid escape could outlive it", e)
        with self._lock:
            if self._ledger is not None:
                self._ledger.runs[run_id] = {"pgid": None, "start_ticks": None, "cgroup": dirs}
            self._write()
        return RunSlot(run_id, dirs)

    def run_started(self, slot: RunSlot, pid: int) -> None:
        """Record the wrapper's pid (= the run's pgid) and its start time."""
        found = identity(pid, self._proc)
        with self._lock:
            if self._ledger is not None and slot.run_id in self._ledger.runs:
                self._ledger.runs[slot.run_id].update(pgid=pid, start_ticks=found.start_ticks if found else 0)
                self._write()

    def close_run(self, slot: RunSlot) -> None:
        """Kill whatever is left in the run's cgroup, remove it, drop the record."""
        kill_dirs(Path(d) for d in slot.cgroup_dirs)
        with self._lock:
            if self._ledger is not None:
                self._ledger.runs.pop(slot.run_id, None)
                self._write()

    def track_folder(self, folder: Path) -> None:
        """Record a run's temporary folder, so a killed sidecar's is removed at the next start."""
        with self._lock:
            if self._ledger is not None:
                self._ledger.folders.add(str(folder))
                self._write()

    def untrack_folder(self, folder: Path) -> None:
        with self._lock:
            if self._ledger is not None:
                self._ledger.folders.discard(str(folder))
                self._write()

    def stop(self) -> None:
        """At a clean exit: kill the heavy cgroup (and runs in it), drop the record. Blocking."""
        with self._lock:
            heavy.set_thread_hook(None)
            left: list[str] = []
            if self._heavy is not None:
                if self._base is not None:
                    # our own heavy threads sit in the group's cpu hierarchy: out first, or rmdir is refused
                    self._heavy.release_threads_cpu(self._base)
                self._heavy.kill()
                left = [path for path in self._heavy.paths() if Path(path).exists()]
                self._heavy = None
            if self._ledger is not None:
                self._ledger.heavy_cgroup = left
                if left or self._ledger.runs or self._ledger.folders:
                    logger.warning("left for the next start to clean up: %s", self._ledger.payload())
                    self._write()
                else:
                    self._ledger.remove()
            self._started = False


_PROCESS: dict[Path, Containment] = {}
_PROCESS_LOCK = threading.Lock()


def get_process_containment(state_dir: Path) -> Containment:
    """This process's containment for `state_dir` (made on first use; `start()` it off the event loop)."""
    key = Path(state_dir).absolute()
    with _PROCESS_LOCK:
        if key not in _PROCESS:
            _PROCESS[key] = Containment(key)
        return _PROCESS[key]


def process_isolation(state_dir: Path) -> dict[str, Any]:
    """/health's `isolation` block: what the process's containment says (nothing is started here)."""
    return get_process_containment(state_dir).describe()
