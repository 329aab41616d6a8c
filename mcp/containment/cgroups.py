"""cgroup v1 groups for heavy work: discover where this process may make child groups, create a group in
each controller, set the unit's limits, and kill a group whole (freeze, SIGKILL every member, thaw, rmdir).

Stdlib only: the run wrapper (mcp.containment.wrapper) imports this module in every test run. A group is
made under the cgroup this process already belongs to in each hierarchy, never elsewhere, so it stays
inside whatever limits apply to us. Blocking (it writes /sys/fs/cgroup): the sidecar calls it through a thread.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")
# freezer: kill a group whole without a fork slipping through; cpu/memory: the unit's limits; pids: counted
REQUIRED_CONTROLLERS = ("freezer", "cpu", "memory")
OPTIONAL_CONTROLLERS = ("pids",)
FREEZE_WAIT_SECONDS = 2.0
EMPTY_WAIT_SECONDS = 3.0
_POLL_SECONDS = 0.02


class CgroupError(OSError):
    """A cgroup could not be made or set up: the run goes on without one (say so, do not fail the run)."""


def parse_proc_cgroup(text: str) -> dict[str, str]:
    """`/proc/<pid>/cgroup` of cgroup v1 -> {controller: path}; the v2 line (`0::/…`) and names are skipped."""
    paths: dict[str, str] = {}
    for line in text.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3 or not parts[1]:
            continue
        for controller in parts[1].split(","):
            if controller and not controller.startswith("name="):
                paths[controller] = parts[2]
    return paths


@dataclass(frozen=True)
class Cgroup:
    """One group, a directory per controller (the same relative name under each hierarchy)."""

    dirs: Mapping[str, Path]

    def paths(self) -> list[str]:
        """The directories, for the record in STATE_DIR and the wrapper's command line."""
        return [str(path) for path in self.dirs.values()]

    def child(self, name: str) -> Cgroup:
        """The group `name` under this one (not created yet)."""
        if not name or "/" in name or name in (".", ".."):
            raise ValueError(f"expected a plain cgroup name, received {name!r}")
        return Cgroup({controller: path / name for controller, path in self.dirs.items()})

    def create(self) -> None:
        """Make the directories (parents must exist); CgroupError if the kernel refuses."""
        try:
            for path in self.dirs.values():
                path.mkdir(exist_ok=True)
        except OSError as e:
            remove_dirs(self.dirs.values())
            raise CgroupError(e.errno, f"cannot create cgroup {path}: {e.strerror or e}") from e

    def set_limits(self, *, cfs_quota_us: int, cfs_period_us: int, memory_bytes: int) -> None:
        """The unit's CPUQuota and MemoryMax in v1 terms; CgroupError if a value is refused."""
        writes = [
            ("cpu", "cpu.cfs_period_us", cfs_period_us),
            ("cpu", "cpu.cfs_quota_us", cfs_quota_us),
            ("memory", "memory.limit_in_bytes", memory_bytes),
        ]
        for controller, name, value in writes:
            path = self.dirs[controller] / name
            try:
                path.write_text(str(value))
            except OSError as e:
                raise CgroupError(e.errno, f"cannot write {value} to {path}: {e.strerror or e}") from e
        self.make_idle_group()

    def make_idle_group(self) -> str:
        """Make the group itself idle towards its siblings: `cpu.idle` 1 (Linux >= 5.15), else the lowest
        `cpu.shares`. Why: a cgroup is one scheduling entity of full weight beside the bot's (as a session is
        under autogroup), so SCHED_IDLE inside it alone would still let it compete with the bot as an equal.
        Returns what was set."""
        cpu = self.dirs["cpu"]
        for name, value in (("cpu.idle", 1), ("cpu.shares", 2)):
            path = cpu / name
            if not path.exists():
                continue
            try:
                path.write_text(str(value))
                return f"{name}={value}"
            except OSError:
                continue
        return "none"

    def add_process(self, pid: int) -> None:
        """Move a process (all its threads) into the group in every hierarchy."""
        for path in self.dirs.values():
            (path / "cgroup.procs").write_text(str(pid))

    def add_thread_cpu(self, tid: int) -> None:
        """Move one thread into the group's cpu hierarchy only (v1 limits CPU per thread; memory is per process)."""
        (self.dirs["cpu"] / "tasks").write_text(str(tid))

    def release_threads_cpu(self, to: Cgroup) -> None:
        """Move the threads directly in this group's cpu hierarchy (our heavy-work threads) back to `to`, so
        the group can be removed while this process lives on."""
        tasks = self.dirs["cpu"] / "tasks"
        try:
            tids = tasks.read_text().split()
        except FileNotFoundError:
            return
        for tid in tids:
            with contextlib.suppress(ProcessLookupError, OSError):
                (to.dirs["cpu"] / "tasks").write_text(tid)

    def kill(self) -> int:
        """SIGKILL every process in the group and its subgroups, then remove them; returns how many were killed."""
        return kill_dirs(self.dirs.values())


def discover(root: Path = CGROUP_ROOT, proc_cgroup: Path = Path("/proc/self/cgroup")) -> Cgroup | None:
    """This process's own groups, where child groups can be made (cgroup v1, writable); None otherwise."""
    try:
        own = parse_proc_cgroup(proc_cgroup.read_text())
    except OSError:
        return None
    dirs: dict[str, Path] = {}
    for controller in (*REQUIRED_CONTROLLERS, *OPTIONAL_CONTROLLERS):
        mount = root / controller
        if controller not in own or not (mount / "cgroup.procs").is_file():
            if controller in REQUIRED_CONTROLLERS:
                return None
            continue
        here = mount / own[controller].lstrip("/")
        if not here.is_dir() or not os.access(here, os.W_OK):
            if controller in REQUIRED_CONTROLLERS:
                return None
            continue
        dirs[controller] = here
    return Cgroup(dirs)


def sweep_orphans(base: Cgroup, prefix: str, alive: Callable[[int], bool]) -> list[Path]:
    """Kill and remove `<prefix><pid>` groups under `base` whose owner pid is dead (a sidecar killed with
    SIGKILL whose record is gone); returns those found. A live owner's group is never touched, and a reused
    pid only makes us leave a group alone, never kill one that is in use."""
    found: list[Path] = []
    for directory in base.dirs.values():
        try:
            children = list(directory.iterdir())
        except OSError:
            continue
        for child in children:
            suffix = child.name.removeprefix(prefix)
            if child.name.startswith(prefix) and suffix.isdigit() and child.is_dir() and not alive(int(suffix)):
                found.append(child)
    if found:
        kill_dirs(found)
    return found


def _members(directories: Iterable[Path]) -> set[int]:
    pids: set[int] = set()
    for top in directories:
        for folder, _subdirs, files in os.walk(top):
            if "cgroup.procs" not in files:
                continue
            with contextlib.suppress(OSError, ValueError):
                pids.update(int(line) for line in Path(folder, "cgroup.procs").read_text().split())
    return pids


def _set_freezer(directory: Path, state: str) -> None:
    with contextlib.suppress(OSError):
        (directory / "freezer.state").write_text(state)


def _wait(predicate: Callable[[], bool], seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while True:
        if predicate():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(_POLL_SECONDS)


def _frozen(directory: Path) -> bool:
    try:
        return (directory / "freezer.state").read_text().strip() == "FROZEN"
    except OSError:
        return True  # gone: nothing left to freeze


def kill_dirs(directories: Iterable[Path]) -> int:
    """Freeze, SIGKILL every member, thaw, wait until empty, rmdir (subgroups first). Missing dirs are fine."""
    existing = [Path(path) for path in directories if Path(path).is_dir()]
    if not existing:
        return 0
    freezers = [path for path in existing if (path / "freezer.state").exists()]
    for path in freezers:
        # frozen, nobody can fork between the listing and the kill; SIGKILL is delivered on thaw
        _set_freezer(path, "FROZEN")
        _wait(lambda path=path: _frozen(path), FREEZE_WAIT_SECONDS)
    killed = 0
    own = os.getpid()
    for pid in _members(existing):
        if pid == own:
            continue  # never ourselves: the caller is outside the group, but a mistake must not kill it
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)
            killed += 1
    for path in freezers:
        _set_freezer(path, "THAWED")
    _wait(lambda: not (_members(existing) - {own}), EMPTY_WAIT_SECONDS)
    remove_dirs(existing)
    return killed


def remove_dirs(directories: Iterable[Path]) -> list[str]:
    """rmdir each group, deepest subgroups first; returns the ones that could not be removed (still busy)."""
    left: list[str] = []
    for top in directories:
        if not Path(top).is_dir():
            continue
        for folder, _subdirs, _files in os.walk(top, topdown=False):
            try:
                os.rmdir(folder)
            except FileNotFoundError:
                pass
            except OSError:
                left.append(str(folder))
    return left
