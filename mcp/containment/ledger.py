"""The record of what a sidecar process runs outside itself (test runs' process groups and cgroups, their
temporary folders, its heavy-work cgroup), kept in STATE_DIR so the next sidecar can clean up after one that
was killed with SIGKILL.

One file per sidecar process, `STATE_DIR/mcp-containment-<pid>.json`, written atomically on every change.
A file belongs to a dead owner when no process has its pid with its start time on this boot: only those are
cleaned, so a second sidecar process on the same STATE_DIR (`stdio testing` beside `all`) never touches the
live one's runs. Blocking (files, /proc): call through a thread.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import signal
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mcp.containment.cgroups import kill_dirs, remove_dirs
from utils.atomic import atomic_write_json

logger = logging.getLogger(__name__)

FILE_PREFIX = "mcp-containment-"
TEMP_FOLDER_PREFIX = "mcp-testing-"
SCHEMA_VERSION = 1


@dataclass(frozen=True)
class ProcessIdentity:
    """A pid is reused; a pid with its start time (clock ticks since boot) on one boot is not."""

    pid: int
    start_ticks: int
    boot_id: str


def _stat_fields(pid: int, proc: Path) -> list[str] | None:
    try:
        stat = (proc / str(pid) / "stat").read_text()
    except OSError:
        return None
    # fields after "(comm)": state ppid pgrp session … starttime is the 20th of them (field 22 of the line)
    return stat.rpartition(")")[2].split()


def boot_id(proc: Path = Path("/proc")) -> str:
    """This boot's id ("" where the kernel does not say)."""
    try:
        return (proc / "sys" / "kernel" / "random" / "boot_id").read_text().strip()
    except OSError:
        return ""


def identity(pid: int, proc: Path = Path("/proc")) -> ProcessIdentity | None:
    """The process's identity now, None when no such process exists."""
    fields = _stat_fields(pid, proc)
    if fields is None or len(fields) < 20:
        return None
    return ProcessIdentity(pid, int(fields[19]), boot_id(proc))


def group_survivors(pgid: int, since_ticks: int, proc: Path = Path("/proc")) -> list[int]:
    """Members of process group `pgid` that started no earlier than its recorded leader (so not a reused pgid)."""
    found = []
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        fields = _stat_fields(int(entry.name), proc)
        if fields and len(fields) >= 20 and fields[2] == str(pgid) and int(fields[19]) >= since_ticks:
            found.append(int(entry.name))
    return found


@dataclass
class Ledger:
    """This process's record; every change is written at once (atomically)."""

    state_dir: Path
    owner: ProcessIdentity
    runs: dict[str, dict[str, Any]] = field(default_factory=dict)
    folders: set[str] = field(default_factory=set)
    heavy_cgroup: list[str] = field(default_factory=list)

    @property
    def path(self) -> Path:
        return self.state_dir / f"{FILE_PREFIX}{self.owner.pid}.json"

    def payload(self) -> dict[str, Any]:
        return {
            "schema_version": SCHEMA_VERSION,
            "owner": {"pid": self.owner.pid, "start_ticks": self.owner.start_ticks, "boot_id": self.owner.boot_id},
            "runs": self.runs,
            "folders": sorted(self.folders),
            "heavy_cgroup": self.heavy_cgroup,
        }

    def write(self) -> None:
        atomic_write_json(self.path, self.payload())

    def remove(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()


@dataclass
class Cleanup:
    """What a start-up cleanup did, for one log line."""

    records: int = 0
    processes_killed: int = 0
    folders_removed: int = 0
    cgroups_left: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def summary(self) -> str:
        text = (
            f"{self.records} record(s) of killed sidecars: {self.processes_killed} process(es) killed, "
            f"{self.folders_removed} temporary folder(s) removed"
        )
        if self.cgroups_left:
            text += f"; cgroups still busy: {', '.join(self.cgroups_left)}"
        if self.problems:
            text += f"; problems: {'; '.join(self.problems)}"
        return text


def _owner_alive(owner: dict[str, Any], proc: Path) -> bool:
    now = identity(int(owner["pid"]), proc)
    return now is not None and now.start_ticks == int(owner["start_ticks"]) and now.boot_id == owner["boot_id"]


def _kill_run(run: dict[str, Any], same_boot: bool, proc: Path) -> int:
    killed = kill_dirs(Path(d) for d in run.get("cgroup", []))
    if same_boot and run.get("pgid"):
        for pid in group_survivors(int(run["pgid"]), int(run.get("start_ticks", 0)), proc):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
                killed += 1
    return killed


def _removable_folder(raw: str) -> Path | None:
    # only what the testing server makes: an absolute folder named mcp-testing-*, never a path from elsewhere
    path = Path(raw)
    if not path.is_absolute() or not path.name.startswith(TEMP_FOLDER_PREFIX) or path.is_symlink():
        return None
    return path


def clean_leftovers(state_dir: Path, proc: Path = Path("/proc")) -> Cleanup:
    """Kill and remove what dead sidecars recorded in `state_dir`; live owners' records are left alone."""
    report = Cleanup()
    try:
        candidates = sorted(state_dir.glob(f"{FILE_PREFIX}*.json"))
    except OSError as e:
        report.problems.append(f"cannot list {state_dir}: {e}")
        return report
    this_boot = boot_id(proc)
    for path in candidates:
        try:
            record = json.loads(path.read_text())
            owner = record["owner"]
            if _owner_alive(owner, proc):
                continue
            same_boot = owner["boot_id"] == this_boot
            for run in record.get("runs", {}).values():
                report.processes_killed += _kill_run(run, same_boot, proc)
            report.processes_killed += kill_dirs(Path(d) for d in record.get("heavy_cgroup", []))
            report.cgroups_left += remove_dirs(Path(d) for d in record.get("heavy_cgroup", []))
            for raw in record.get("folders", []):
                folder = _removable_folder(str(raw))
                if folder is not None and folder.is_dir():
                    shutil.rmtree(folder, ignore_errors=True)
                    report.folders_removed += 1
        except (OSError, ValueError, KeyError, TypeError) as e:
            # a record we cannot read is kept for a human to look at, and said once in the log
            report.problems.append(f"{path.name}: {type(e).__name__}: {e} (delete it once checked)")
            continue
        report.records += 1
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
    return report
