"""The loop guard (tests/loop_guard.py) fails a test that blocks its event loop, and only such a test.

Each check runs a real pytest in a subprocess on a small test file, with the guard loaded as it is for the
suite, and reads the outcome of every test in it.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.loop_guard import own_seconds, parse_schedstat

PROJECT_ROOT = Path(__file__).resolve().parent.parent

INI = """\
[pytest]
asyncio_mode = auto
asyncio_default_fixture_loop_scope = function
addopts = -rA --strict-markers -p tests.loop_guard -p no:cacheprovider
filterwarnings = error
"""

PROBES = """\
import asyncio, gc, os, subprocess, sys, time
import pytest

async def test_sleeps_on_the_loop():
    time.sleep(0.2)

async def test_awaits_200_ms():
    await asyncio.sleep(0.2)

async def test_waits_for_a_subprocess():
    subprocess.run([sys.executable, "-c", "import time; time.sleep(0.3)"], check=True)

async def test_blocking_file_open(tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    script = f"import time; time.sleep(0.3); open({str(fifo)!r}, 'w').write('x')"
    writer = subprocess.Popen([sys.executable, "-c", script])
    try:
        with open(fifo) as reader:  # blocks until the writer opens its end
            assert reader.read() == "x"
    finally:
        writer.wait()

async def test_blocking_callback():
    asyncio.get_running_loop().call_soon(time.sleep, 0.2)
    await asyncio.sleep(0.3)

async def test_work_handed_to_a_thread():
    await asyncio.to_thread(time.sleep, 0.2)

@pytest.mark.allows_loop_block(reason="deliberate: shows the reason in the summary")
async def test_allowed_block():
    time.sleep(0.2)

async def test_first_import_is_not_a_block():
    import slow_import_only  # noqa: F401  (sleeps 0.3 s at import)

async def test_import_then_sleep_is_still_a_block():
    import slow_import_too  # noqa: F401
    time.sleep(0.2)

async def test_garbage_collection_is_not_a_block():
    def slow_collection(phase, info):
        if phase == "start":
            time.sleep(0.2)
    gc.callbacks.append(slow_collection)
    try:
        gc.collect()
    finally:
        gc.callbacks.remove(slow_collection)

def test_sync_test_running_a_loop():
    async def blocking():
        time.sleep(0.2)
    asyncio.run(blocking())

@pytest.fixture
async def stops_slowly():
    yield
    time.sleep(0.2)

async def test_blocking_teardown(stops_slowly):
    await asyncio.sleep(0)

async def test_failing_test_keeps_its_own_error():
    time.sleep(0.2)
    assert 1 == 2, "the test's own failure"
"""

CONTENDED = """\
import asyncio, os, time

def busy_for(cpu_seconds):
    start = time.thread_time()
    while time.thread_time() - start < cpu_seconds:
        pass

async def test_cpu_work_under_contention(tmp_path):
    os.sched_setaffinity(0, {{{cpu}}})  # the loop's thread shares one CPU with two busy processes
    started = time.perf_counter()
    busy_for(0.07)  # 70 ms of CPU: under the limit, though the wall clock says more on a shared CPU
    with open({wall_file!r}, "w") as out:
        out.write(str(time.perf_counter() - started))
"""


def run_pytest(folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    (folder / "pytest.ini").write_text(INI)
    env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "pytest", *args],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def outcomes(output: str) -> dict[str, str]:
    """Test name -> PASSED / FAILED / ERROR, from the -rA short summary."""
    found: dict[str, str] = {}
    for status, name in re.findall(r"^(PASSED|FAILED|ERROR) \S+::(\w+)", output, re.MULTILINE):
        found[name] = "ERROR" if found.get(name) == "PASSED" and status == "ERROR" else status
    return found


@pytest.fixture(scope="module")
def probe_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, str], str]:
    folder = tmp_path_factory.mktemp("loop_guard_probes")
    (folder / "test_probes.py").write_text(PROBES)
    for module in ("slow_import_only", "slow_import_too"):
        (folder / f"{module}.py").write_text("import time\ntime.sleep(0.3)\n")
    result = run_pytest(folder, "test_probes.py")
    return outcomes(result.stdout), result.stdout + result.stderr


@pytest.mark.parametrize(
    ("test", "expected"),
    [
        ("test_sleeps_on_the_loop", "FAILED"),
        ("test_awaits_200_ms", "PASSED"),
        ("test_waits_for_a_subprocess", "FAILED"),
        ("test_blocking_file_open", "FAILED"),
        ("test_blocking_callback", "FAILED"),
        ("test_work_handed_to_a_thread", "PASSED"),
        ("test_allowed_block", "PASSED"),
        ("test_first_import_is_not_a_block", "PASSED"),
        ("test_import_then_sleep_is_still_a_block", "FAILED"),
        ("test_garbage_collection_is_not_a_block", "PASSED"),
        ("test_sync_test_running_a_loop", "FAILED"),
        ("test_blocking_teardown", "ERROR"),
        ("test_failing_test_keeps_its_own_error", "FAILED"),
    ],
)
def test_the_guard_fails_exactly_the_tests_that_block(
    probe_run: tuple[dict[str, str], str], test: str, expected: str
) -> None:
    found, output = probe_run
    assert found.get(test) == expected, output


def test_the_report_names_the_callback_its_duration_where_it_blocked_and_the_fix(
    probe_run: tuple[dict[str, str], str],
) -> None:
    _, output = probe_run
    section = output.split("test_sleeps_on_the_loop ___")[1].split("\n___")[0]
    assert "running test_sleeps_on_the_loop()" in section
    assert re.search(r"held the loop for (\d+) ms during the test", section)
    assert "time.sleep(0.2)" in section  # the line the loop thread was blocked on
    assert "asyncio.to_thread" in section and "allows_loop_block" in section
    callback = output.split("test_blocking_callback ___")[1].split("\n___")[0]
    assert "<Handle sleep(0.2)>" in callback


def test_a_failing_test_keeps_its_error_and_gains_the_block(probe_run: tuple[dict[str, str], str]) -> None:
    _, output = probe_run
    section = output.split("test_failing_test_keeps_its_own_error ___")[1].split("\n___")[0]
    assert "the test's own failure" in section and "held the loop for" in section


def test_allowed_blocks_are_printed_with_their_reason(probe_run: tuple[dict[str, str], str]) -> None:
    _, output = probe_run
    summary = output.split("loop blocks allowed by @pytest.mark.allows_loop_block")[1]
    assert "test_allowed_block: deliberate: shows the reason in the summary" in summary


def test_the_marker_without_a_reason_stops_the_run(tmp_path: Path) -> None:
    (tmp_path / "test_marked.py").write_text(
        "import pytest\n\n@pytest.mark.allows_loop_block\nasync def test_marked():\n    pass\n"
    )
    result = run_pytest(tmp_path, "test_marked.py")
    assert result.returncode == pytest.ExitCode.USAGE_ERROR, result.stdout + result.stderr
    assert 'needs reason="why this test may block the loop"' in result.stderr


@pytest.mark.skipif(not Path("/proc/thread-self/schedstat").exists(), reason="needs Linux's per-thread schedstat")
def test_waiting_for_a_cpu_is_not_a_block(tmp_path: Path) -> None:
    """70 ms of CPU work while two busy processes share the one CPU: over 100 ms of wall time, not a block."""
    wall_file = tmp_path / "wall"
    cpu = min(os.sched_getaffinity(0))
    (tmp_path / "test_contended.py").write_text(CONTENDED.format(wall_file=str(wall_file), cpu=cpu))
    spin = f"import os\nos.sched_setaffinity(0, {{{cpu}}})\nwhile True: pass\n"
    busy = [subprocess.Popen([sys.executable, "-c", spin]) for _ in range(2)]
    try:
        result = run_pytest(tmp_path, "test_contended.py")
    finally:
        for process in busy:
            process.kill()
            process.wait()
    assert outcomes(result.stdout) == {"test_cpu_work_under_contention": "PASSED"}, result.stdout + result.stderr
    # The premise: the callback did wait for the CPU, so a wall-clock guard would have failed it.
    assert float(wall_file.read_text()) > 0.1


def test_own_time_leaves_out_cpu_waits_and_excluded_work() -> None:
    assert own_seconds(0.25, 0.12, 0.0) == pytest.approx(0.13)
    assert own_seconds(0.25, 0.0, 0.2) == pytest.approx(0.05)
    assert own_seconds(0.1, 0.3, 0.0) == 0.0


@pytest.mark.parametrize("raw", [None, b"", b"12", b"a b c", b"\n"])
def test_an_unreadable_schedstat_is_none(raw: bytes | None) -> None:
    assert parse_schedstat(raw) is None


def test_schedstat_is_read_in_seconds() -> None:
    assert parse_schedstat(b"2000000000 500000000 7\n") == (2.0, 0.5)
