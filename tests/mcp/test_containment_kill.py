"""Issue 10, done-when: a test run whose tests spawn their own children (one of them a `setsid` escape) dies
with the sidecar that started it. Real processes throughout: a sidecar process (the testing server with its
containment), a project whose test forks, `kill -9`, and a bounded wait for every pid to be gone.

The setsid escape is reached only through the run's cgroup: where cgroups are not writable the cgroup
variant skips, loudly, and the process-group variant still runs.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mcp.containment.cgroups import discover
from mcp.containment.ledger import FILE_PREFIX
from mcp.containment.runtime import Containment
from tests.mcp.testing_projects import alive, write_project

pytestmark = [pytest.mark.integration, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
SURVIVOR_WAIT_SECONDS = 5.0

FORKING_TEST = """\
import os, subprocess, sys, time

SLEEP = [sys.executable, "-c", "import time; time.sleep(600)"]
NESTED = [sys.executable, "-c", "import subprocess, sys, time; subprocess.Popen({sleep!r}); time.sleep(600)"]


def test_forks_and_hangs():
    child = subprocess.Popen(SLEEP)
    nested = subprocess.Popen([NESTED[0], NESTED[1], NESTED[2].format(sleep=SLEEP)])
    escaped = subprocess.Popen(SLEEP, start_new_session=True)  # leaves the run's process group
    pids = [os.getpid(), child.pid, nested.pid, escaped.pid]
    tmp = os.environ["PID_FILE"] + ".tmp"
    with open(tmp, "w") as f:
        f.write(" ".join(map(str, pids)))
    os.replace(tmp, os.environ["PID_FILE"])
    time.sleep(600)
"""

SIDECAR = """\
import asyncio, sys
from pathlib import Path
from mcp.containment.runtime import Containment
from mcp.testing_server import TestingServer

state, root, cgroups = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3] == "on"


async def main():
    containment = Containment(state, cgroup_root=Path("/sys/fs/cgroup") if cgroups else None)
    server = TestingServer(
        project_root=root, python=Path(sys.executable), test_paths=["tests"], source_packages=[],
        timeout_seconds=600, threshold=0.0, record_history=False, niceness=None, containment=containment,
    )
    ready = asyncio.Event()
    serving = asyncio.create_task(server.run(ready))
    await ready.wait()
    print(await server.run_tests(force=True), flush=True)
    serving.cancel()


asyncio.run(main())
"""


def wait_for_pids(pid_file: Path, sidecar: subprocess.Popen[bytes], within: float = 90.0) -> list[int]:
    deadline = time.monotonic() + within
    while not pid_file.exists():
        assert sidecar.poll() is None, f"the sidecar exited ({sidecar.returncode}) before the test forked"
        assert time.monotonic() < deadline, "the test run never forked its children"
        time.sleep(0.05)
    return [int(pid) for pid in pid_file.read_text().split()]


def survivors(pids: list[int], within: float = SURVIVOR_WAIT_SECONDS) -> list[int]:
    """The pids still alive after a bounded wait (an empty list as soon as all are gone)."""
    deadline = time.monotonic() + within
    while True:
        left = [pid for pid in pids if alive(pid)]
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.05)


def the_record(state: Path) -> dict:
    (path,) = state.glob(f"{FILE_PREFIX}*.json")
    return json.loads(path.read_text())


def kill_all(pids: list[int]) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def start_sidecar(tmp_path: Path, cgroups: bool) -> tuple[subprocess.Popen[bytes], Path, Path]:
    state, pid_file = tmp_path / "state", tmp_path / "pids"
    root = write_project(tmp_path / "proj", {"tests/test_fork.py": FORKING_TEST})
    env = {**os.environ, "PID_FILE": str(pid_file)}
    sidecar = subprocess.Popen(
        [sys.executable, "-c", SIDECAR, str(state), str(root), "on" if cgroups else "off"], cwd=REPO, env=env
    )
    return sidecar, state, pid_file


def need_cgroups() -> None:
    if discover() is None:
        pytest.skip(
            "SKIPPED LOUDLY: cgroup v1 (freezer, cpu, memory) is not writable here; a setsid escape is "
            "reached only through a cgroup, so this variant cannot run on this machine"
        )


def test_kill_9_of_the_sidecar_kills_the_whole_run_setsid_escape_included(tmp_path: Path) -> None:
    need_cgroups()
    sidecar, state, pid_file = start_sidecar(tmp_path, cgroups=True)
    pids: list[int] = []
    try:
        pids = wait_for_pids(pid_file, sidecar)
        record = the_record(state)
        (run,) = record["runs"].values()
        wrapper, cgroup_dirs = run["pgid"], run["cgroup"]
        assert cgroup_dirs, "the run got no cgroup although cgroups are writable"
        (folder,) = record["folders"]
        sidecar.kill()
        sidecar.wait()
        assert survivors([wrapper, *pids]) == [], "part of the test run outlived the SIGKILLed sidecar"
        assert [d for d in cgroup_dirs if Path(d).exists()] == []
        # the wrapper removed the run's temporary folder too: nobody else would if STATE_DIR were lost
        assert not Path(folder).exists()
        heavy_dirs = record["heavy_cgroup"]
        assert heavy_dirs and all(Path(d).is_dir() for d in heavy_dirs)  # the killed sidecar's heavy-work cgroup
        containment = Containment(state).start()
        try:
            assert [d for d in heavy_dirs if Path(d).exists()] == []
            assert [p.name for p in state.glob(f"{FILE_PREFIX}*.json") if p.name != containment_file()] == []
        finally:
            containment.stop()
    finally:
        sidecar.kill()
        kill_all(pids)


def containment_file() -> str:
    return f"{FILE_PREFIX}{os.getpid()}.json"


def test_without_cgroups_the_run_s_process_group_still_dies_with_the_sidecar(tmp_path: Path) -> None:
    sidecar, state, pid_file = start_sidecar(tmp_path, cgroups=False)
    pids: list[int] = []
    try:
        pids = wait_for_pids(pid_file, sidecar)
        test_process, child, nested, _escaped = pids
        record = the_record(state)
        (folder,) = record["folders"]
        (run,) = record["runs"].values()
        sidecar.kill()
        sidecar.wait()
        # the setsid escape left the group: only a cgroup reaches it (the variant above)
        assert survivors([run["pgid"], test_process, child, nested]) == []
        assert not Path(folder).exists()
        Containment(state, cgroup_root=None).start().stop()
        assert list(state.glob(f"{FILE_PREFIX}*.json")) == []  # the dead sidecar's record is gone too
    finally:
        sidecar.kill()
        kill_all(pids)


def test_the_next_start_kills_a_run_whose_wrapper_was_killed_too(tmp_path: Path) -> None:
    """Sidecar and wrapper SIGKILLed at once (nobody left to clean up): the next start does it from the record."""
    need_cgroups()
    sidecar, state, pid_file = start_sidecar(tmp_path, cgroups=True)
    pids: list[int] = []
    try:
        pids = wait_for_pids(pid_file, sidecar)
        record = the_record(state)
        (run,) = record["runs"].values()
        (folder,) = record["folders"]
        os.kill(run["pgid"], signal.SIGKILL)  # the wrapper first, so it cannot react to its parent's death
        sidecar.kill()
        sidecar.wait()
        time.sleep(0.5)
        assert [pid for pid in pids if alive(pid)], "expected orphans before the cleanup (else this proves nothing)"
        assert Path(folder).is_dir()
        containment = Containment(state).start()
        try:
            assert survivors(pids) == []
            assert not Path(folder).exists()  # removed from the dead sidecar's record
            assert [d for d in run["cgroup"] if Path(d).exists()] == []
        finally:
            containment.stop()
    finally:
        sidecar.kill()
        kill_all(pids)
