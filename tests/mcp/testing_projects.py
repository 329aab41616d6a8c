"""Builders of small stand-alone Python projects for the testing server's tests (written into tmp_path).

Each project has its own pytest.ini, so pytest run inside it never climbs up to this repository's
configuration. Figures a test asserts are computed by hand in the comments next to the source.
"""

from __future__ import annotations

import os
import stat
import sys
import time
from pathlib import Path

import psutil

PYTEST_INI = "[pytest]\ntestpaths = tests\nasyncio_default_fixture_loop_scope = function\n"

# pkg/calc.py: 8 statements; the tests run add and sub, so 5 are covered (the three `def`s,
# both one-line bodies) and never()'s 3 body lines are not: 5/8 = 0.625
CALC = """\
def add(a, b):
    return a + b


def sub(a, b):
    return a - b


def never(x):
    if x:
        return 1
    return 2
"""
# pkg/risk_limits.py: 4 statements; cap(5, 3) covers def, if, `return limit`: 3/4 = 0.75
RISK_LIMITS = """\
def cap(x, limit):
    if x > limit:
        return limit
    return x
"""
PASSING_TESTS = """\
import pytest

from pkg.calc import add, sub
from pkg.risk_limits import cap


def test_add():
    assert add(2, 3) == 5


def test_sub():
    assert sub(2, 3) == -1


def test_cap():
    assert cap(5, 3) == 3


@pytest.mark.skip(reason="shows up as skipped")
def test_skipped():
    raise AssertionError("never runs")
"""
# whole project: (5 + 3) / (8 + 4) = 2/3
PASSING_TOTAL = round(8 / 12, 6)
PASSING_FILES = {"pkg/__init__.py": 1.0, "pkg/calc.py": 0.625, "pkg/risk_limits.py": 0.75}


def write_project(root: Path, files: dict[str, str], *, ini: str | None = PYTEST_INI) -> Path:
    """Write `files` (relative path -> text) under `root`, plus a pytest.ini unless `ini` is None."""
    root.mkdir(parents=True, exist_ok=True)
    if ini is not None:
        (root / "pytest.ini").write_text(ini)
    for relative, text in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def passing_project(root: Path) -> Path:
    """3 passing tests, 1 skipped; coverage 2/3 with source pkg (see the figures above)."""
    return write_project(
        root,
        {
            "pkg/__init__.py": "",
            "pkg/calc.py": CALC,
            "pkg/risk_limits.py": RISK_LIMITS,
            "tests/test_calc.py": PASSING_TESTS,
        },
    )


def failing_project(root: Path) -> Path:
    """One test passes, one fails with a recognisable message."""
    return write_project(
        root,
        {
            "pkg/__init__.py": "",
            "pkg/calc.py": CALC,
            "tests/test_calc.py": (
                "from pkg.calc import add\n\n\ndef test_ok():\n    assert add(1, 1) == 2\n\n\n"
                "def test_wrong():\n    assert add(1, 1) == 3, 'deliberately wrong sum'\n"
            ),
        },
    )


HANG_TEST = """\
import os
import signal
import subprocess
import sys
import time


def test_hangs():
    # ignore SIGTERM so the runner must escalate to SIGKILL
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    sleeper = [sys.executable, "-c", "import time; time.sleep(600)"]
    in_group = subprocess.Popen(sleeper)
    escaped = subprocess.Popen(sleeper, start_new_session=True)
    with open(os.environ["HANG_PID_FILE"] + ".tmp", "w") as f:
        f.write(f"{os.getpid()} {os.getpgid(0)} {in_group.pid} {escaped.pid}")
    os.replace(os.environ["HANG_PID_FILE"] + ".tmp", os.environ["HANG_PID_FILE"])
    while True:
        time.sleep(1)
"""


def hanging_project(root: Path) -> Path:
    """A test that spawns two sleeping grandchildren (one leaves the group), ignores SIGTERM and hangs."""
    return write_project(root, {"tests/test_hang.py": HANG_TEST})


def fake_interpreter(path: Path, message: str = "No module named coverage") -> Path:
    """An executable that behaves like a python lacking coverage: prints the error, exits 1."""
    path.write_text(f"#!{sys.executable}\nimport sys\nprint({message!r}, file=sys.stderr)\nsys.exit(1)\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


def alive(pid: int) -> bool:
    """Whether `pid` runs (a zombie waiting to be reaped counts as dead)."""
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def alive_in_group(pgid: int) -> list[int]:
    """Live processes whose process group is `pgid`."""
    found = []
    for process in psutil.process_iter(["pid"]):
        try:
            if os.getpgid(process.pid) == pgid and alive(process.pid):
                found.append(process.pid)
        except (ProcessLookupError, psutil.Error):
            continue
    return found


def gone_soon(pid: int, within: float = 5.0) -> bool:
    """True once `pid` has died; SIGKILL is delivered asynchronously, so a killed process may take a moment."""
    deadline = time.monotonic() + within
    while alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True
