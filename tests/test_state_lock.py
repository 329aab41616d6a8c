"""One bot per state folder (issue 8, item 1): the lock itself, and main.py as an operator runs it twice."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from core.risk_snapshot import read_risk_snapshot
from core.state_lock import (
    LOCK_FILE_NAME,
    StateDirBusyError,
    StateDirLock,
    StateDirLockError,
    busy_message,
    lock_path,
    parse_pid,
)
from tests.test_main_process import ROOT, bot_env, run_main
from tests.waiting import wait_until

EXIT_STATE_DIR_BUSY = 3

HOLDER_WITH_CHILD = """
import subprocess, sys, time
from core.state_lock import StateDirLock
lock = StateDirLock(sys.argv[1])
lock.acquire()
# spawned as the sidecar is; its own stdout, so the test's pipe closes when the holder dies
# close_fds=False: only the lock's own non-inheritable descriptor keeps it out of the child
child = subprocess.Popen(
    [sys.executable, "-c", "import time; time.sleep(120)"], stdout=subprocess.DEVNULL, close_fds=False
)
print(child.pid, flush=True)
time.sleep(120)
"""

HOLDER = """
import sys, time
from core.state_lock import StateDirLock
lock = StateDirLock(sys.argv[1])
lock.acquire()
print("held", flush=True)
time.sleep(120)
"""


# --- the pure parts ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (b"1234\n", 1234),
        (b"  77 ", 77),
        (b"", None),
        (b"0\n", None),
        (b"-5", None),
        (b"abc", None),
        (b"\xff\xfe", None),
    ],
)
def test_parse_pid_accepts_only_a_positive_integer(raw: bytes, expected: int | None) -> None:
    assert parse_pid(raw) == expected


def test_busy_message_names_the_holder_the_folder_and_what_to_do(tmp_path: Path) -> None:
    message = busy_message(tmp_path, 4242, "start the bot")
    assert "pid 4242" in message
    assert str(tmp_path) in message
    assert "Stop that bot first" in message
    assert "pid unknown" in busy_message(tmp_path, None, "start the bot")


# --- the lock, held by another real process -----------------------------------------------------


def start_holder(state_dir: Path) -> subprocess.Popen[str]:
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(state_dir)], cwd=ROOT, stdout=subprocess.PIPE, text=True
    )
    assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
    return holder


def test_a_second_process_is_refused_with_the_holders_pid(tmp_path: Path) -> None:
    holder = start_holder(tmp_path)
    try:
        with pytest.raises(StateDirBusyError) as refused:
            StateDirLock(tmp_path).acquire()
        assert refused.value.holder_pid == holder.pid
        assert f"pid {holder.pid}" in str(refused.value)
    finally:
        holder.kill()
        holder.communicate()


def test_the_lock_is_free_once_its_holder_is_killed_with_sigkill(tmp_path: Path) -> None:
    holder = start_holder(tmp_path)
    holder.send_signal(signal.SIGKILL)
    holder.communicate()
    with StateDirLock(tmp_path) as lock:  # no stale lock: the kernel released it with the process
        assert lock.held
        assert parse_pid(lock_path(tmp_path).read_bytes()) == os.getpid()
    assert lock_path(tmp_path).read_bytes() == b""  # released: no pid left that could be taken for a holder


def test_a_child_process_outliving_the_bot_does_not_keep_the_folder_locked(tmp_path: Path) -> None:
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER_WITH_CHILD, str(tmp_path)], cwd=ROOT, stdout=subprocess.PIPE, text=True
    )
    assert holder.stdout is not None
    child_pid = int(holder.stdout.readline())
    try:
        holder.send_signal(signal.SIGKILL)
        holder.communicate()
        os.kill(child_pid, 0)  # the child is still alive …
        with StateDirLock(tmp_path) as lock:  # … and the folder is free all the same
            assert lock.held
    finally:
        os.kill(child_pid, signal.SIGKILL)


def test_the_lock_can_be_taken_again_after_release(tmp_path: Path) -> None:
    first = StateDirLock(tmp_path / "new" / "state")  # a missing folder is created
    first.acquire()
    first.release()
    with StateDirLock(tmp_path / "new" / "state"):
        pass
    assert (tmp_path / "new" / "state" / LOCK_FILE_NAME).exists()


def test_a_state_dir_that_is_a_file_is_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "state"
    blocker.write_text("not a folder")
    with pytest.raises(StateDirLockError, match="writable STATE_DIR"):
        StateDirLock(blocker).acquire()


# --- main.py, twice on one folder ---------------------------------------------------------------


def start_bot(tmp_path: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, str(ROOT / "main.py")],
        cwd=tmp_path,
        env=bot_env(tmp_path, REPLAY_SPEED="20"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def stop(process: subprocess.Popen[str]) -> str:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    try:
        _, stderr = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    return stderr or ""


@pytest.mark.integration
def test_a_second_bot_on_the_same_folder_exits_at_once_and_trades_nothing(tmp_path: Path) -> None:
    state = tmp_path / "state"
    snapshot_path = state / "risk_state.json"
    first = start_bot(tmp_path)
    try:
        wait_until(snapshot_path.exists, "the first bot publishing its snapshot", within=30.0, every=0.1)
        breaker_before = json.loads((state / "circuit_breaker.json").read_text())

        second = run_main(tmp_path, "--duration", "5", REPLAY_SPEED="20")

        assert second.returncode == EXIT_STATE_DIR_BUSY, second.stderr[-2000:]
        assert f"in use by pid {first.pid}" in second.stderr
        assert "copy BUY" not in second.stderr and "bot starting" not in second.stderr
        assert first.poll() is None, "the first bot must go on"
        # the files are still the first bot's: same writer pid, and no write from the refused bot
        assert read_risk_snapshot(snapshot_path)["pid"] == first.pid
        assert json.loads((state / "circuit_breaker.json").read_text())["wallet"] == breaker_before["wallet"]
        published = read_risk_snapshot(snapshot_path)["updated_at_epoch"]
        wait_until(
            lambda: read_risk_snapshot(snapshot_path)["updated_at_epoch"] > published,
            "the first bot publishing a newer snapshot",
            within=15.0,
            every=0.1,
        )
    finally:
        stderr = stop(first)
    assert first.returncode == 0, stderr[-2000:]
    assert "state flushed" in stderr


@pytest.mark.integration
def test_reset_is_refused_while_the_bot_runs_and_allowed_after(tmp_path: Path) -> None:
    breaker_file = tmp_path / "state" / "circuit_breaker.json"
    first = start_bot(tmp_path)
    try:
        wait_until(
            (tmp_path / "state" / "risk_state.json").exists, "the bot publishing its snapshot", within=30.0, every=0.1
        )

        refused = run_main(tmp_path, "--reset-circuit-breaker")

        assert refused.returncode == EXIT_STATE_DIR_BUSY
        assert f"pid {first.pid}" in refused.stderr
        assert "write its own breaker state over the reset" in refused.stderr
        assert json.loads(breaker_file.read_text())["last_reset"] is None
    finally:
        stderr = stop(first)
    assert first.returncode == 0, stderr[-2000:]

    allowed = run_main(tmp_path, "--reset-circuit-breaker")

    assert allowed.returncode == 0, allowed.stderr
    assert json.loads(breaker_file.read_text())["last_reset"] is not None


@pytest.mark.integration
def test_a_bot_started_while_the_folder_is_locked_is_refused(tmp_path: Path) -> None:
    # a reset from the command line holds the same lock while it rewrites the breaker file
    holder = start_holder(tmp_path / "state")
    try:
        done = run_main(tmp_path, "--duration", "1")
    finally:
        holder.kill()
        holder.communicate()
    assert done.returncode == EXIT_STATE_DIR_BUSY
    assert f"in use by pid {holder.pid}" in done.stderr
    assert sorted(p.name for p in (tmp_path / "state").iterdir()) == [LOCK_FILE_NAME]  # nothing else written


@pytest.mark.integration
def test_a_refused_bot_leaves_every_file_of_the_folder_as_it_was(tmp_path: Path) -> None:
    """README: a refused bot "reads and writes none of the folder's files": not even the start-up repairs
    (a corrupt breaker file or a directory as risk_state.json are moved aside only by the lock's holder)."""
    state = tmp_path / "state"
    state.mkdir()
    (state / "circuit_breaker.json").write_text("{not json")
    (state / "risk_state.json").mkdir()
    (state / "ledger.db").write_bytes(b"not a ledger either")
    before = {p.name: (p.is_dir(), p.read_bytes() if p.is_file() else b"") for p in state.iterdir()}
    holder = start_holder(state)
    try:
        done = run_main(tmp_path, "--duration", "1")
    finally:
        holder.kill()
        holder.communicate()
    assert done.returncode == EXIT_STATE_DIR_BUSY, done.stderr[-2000:]
    after = {p.name: (p.is_dir(), p.read_bytes() if p.is_file() else b"") for p in state.iterdir()}
    after.pop(LOCK_FILE_NAME)
    assert after == before


@pytest.mark.integration
def test_a_bot_killed_with_sigkill_leaves_no_stale_lock(tmp_path: Path) -> None:
    first = start_bot(tmp_path)
    try:
        wait_until(
            (tmp_path / "state" / "risk_state.json").exists, "the bot publishing its snapshot", within=30.0, every=0.1
        )
    finally:
        first.send_signal(signal.SIGKILL)
        first.communicate(timeout=30)

    again = run_main(tmp_path, "--duration", "1")

    assert again.returncode == 0, again.stderr[-2000:]
    assert "bot starting" in again.stderr
