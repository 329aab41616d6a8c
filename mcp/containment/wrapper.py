"""The leader of a test run's process group: `python -m mcp.containment.wrapper --parent PID [--cgroup DIR …]
[--no-idle] -- COMMAND …`.

It asks the kernel for SIGUSR1 when its parent (the sidecar) dies (PR_SET_PDEATHSIG), puts itself under
SCHED_IDLE (inherited by the command), starts the command in its own group (and in the run's cgroup, when
given: the wrapper stays outside it so it can kill the group whole), waits, and then kills what is left:
every other member of its process group and the cgroup. When the parent dies it does the same at once and
kills itself with its group. Its exit status is the command's (a signal death is passed on as one).

SIGTERM and SIGINT reach the whole group from the sidecar (its timeout); the wrapper only keeps waiting,
so the command gets the grace the sidecar gives it. Stdlib only, single-threaded (preexec_fn is safe here).
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from types import FrameType

from mcp.containment.cgroups import kill_dirs
from mcp.containment.policy import lower_heavy_priority

PR_SET_PDEATHSIG = 1
TEMP_FOLDER_PREFIX = "mcp-testing-"
PARENT_DIED = signal.SIGUSR1
EXIT_USAGE = 2
EXIT_CANNOT_START = 127
_KILL_ROUNDS = 20


def group_members(pgid: int, proc: Path = Path("/proc")) -> set[int]:
    """Every pid whose process group is `pgid` (read from /proc/<pid>/stat: field 5 after the command name)."""
    members: set[int] = set()
    for entry in proc.iterdir() if proc.is_dir() else ():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue  # exited meanwhile
        fields = stat.rpartition(")")[2].split()
        if len(fields) > 2 and fields[2] == str(pgid):
            members.add(int(entry.name))
    return members


def kill_group_but_me(pgid: int) -> None:
    """SIGKILL every other member of our group, again until none is left (a member may fork meanwhile)."""
    me = os.getpid()
    for _ in range(_KILL_ROUNDS):
        others = group_members(pgid) - {me}
        if not others:
            return
        for pid in others:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        # reap our own child if it was among them, so it does not linger as a zombie member
        with contextlib.suppress(ChildProcessError):
            while os.waitpid(-1, os.WNOHANG)[0]:
                pass


def set_parent_death_signal(signum: int) -> bool:
    """PR_SET_PDEATHSIG for this process; False where prctl is not available (not Linux)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(PR_SET_PDEATHSIG, int(signum), 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m mcp.containment.wrapper", description=__doc__)
    parser.add_argument("--parent", type=int, required=True, help="pid of the sidecar this run dies with")
    parser.add_argument("--cgroup", action="append", default=[], type=Path, help="the run's cgroup directory")
    parser.add_argument("--no-idle", action="store_true", help="keep the priority (no SCHED_IDLE / nice 19)")
    parser.add_argument(
        "--temp-folder", type=Path, help="the run's mcp-testing-* folder, removed if the sidecar dies (not at the end)"
    )
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- COMMAND ARG …")
    args = parser.parse_args(argv)
    if args.command[:1] == ["--"]:
        args.command = args.command[1:]
    if not args.command:
        parser.error("expected a command after --, received none")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    pgid = os.getpgrp()
    cgroups: list[Path] = args.cgroup

    def clean_up() -> None:
        kill_dirs(cgroups)  # first: it reaches a setsid escape that left our group
        kill_group_but_me(pgid)

    def parent_died(signum: int, frame: FrameType | None) -> None:
        del signum, frame
        clean_up()
        folder = args.temp_folder
        if folder is not None and folder.name.startswith(TEMP_FOLDER_PREFIX) and not folder.is_symlink():
            # nobody else will: the sidecar that made it is gone (its next start would, from its record)
            shutil.rmtree(folder, ignore_errors=True)
        if pgid == os.getpid():
            os.killpg(pgid, signal.SIGKILL)  # ourselves last
        os._exit(128 + PARENT_DIED)

    def keep_waiting(signum: int, frame: FrameType | None) -> None:
        del signum, frame  # the group got it too; we end when the command does

    signal.signal(PARENT_DIED, parent_died)
    # handlers, not SIG_IGN: an ignored signal would stay ignored in the command after exec
    signal.signal(signal.SIGTERM, keep_waiting)
    signal.signal(signal.SIGINT, keep_waiting)
    set_parent_death_signal(PARENT_DIED)
    if os.getppid() != args.parent:  # the sidecar died before prctl took effect
        parent_died(PARENT_DIED, None)
    if not args.no_idle:
        lower_heavy_priority(0)

    def join_cgroup() -> None:
        for directory in cgroups:
            (directory / "cgroup.procs").write_text(str(os.getpid()))

    try:
        child = subprocess.Popen(args.command, preexec_fn=join_cgroup if cgroups else None)
    except (OSError, subprocess.SubprocessError) as e:
        print(f"cannot start {args.command[0]!r}: {e}", file=sys.stderr)
        return EXIT_CANNOT_START
    code = child.wait()
    clean_up()
    if code < 0:
        # pass a signal death on as one, so the sidecar reads the same negative exit code (SIGKILL, e.g. the
        # memory limit's OOM kill, cannot have a handler: it needs no reset)
        with contextlib.suppress(OSError, ValueError):
            signal.signal(-code, signal.SIG_DFL)
        os.kill(os.getpid(), -code)
        return 128 - code
    return code


if __name__ == "__main__":
    sys.exit(main())
