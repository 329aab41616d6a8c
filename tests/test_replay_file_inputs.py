"""REPLAY_FILE as an outside input (issue 8, hardened inputs): anything but a regular file of bounded size is
refused with a clear error naming what stands there, never a hang; main.py exits 2 with one clear line."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from core.wallet.factory import resolve_replay_file
from core.wallet.replay import MAX_REPLAY_FILE_BYTES, ReplayFileError, ReplayTradeSource

ROOT = Path(__file__).resolve().parent.parent

TRADE = (
    '{"proxyWallet": "0x' + "ab" * 20 + '", "timestamp": 1763712003, "conditionId": "0x' + "cd" * 32 + '", '
    '"type": "TRADE", "size": 10, "usdcSize": 4.5, "transactionHash": "0x01", "price": 0.45, '
    '"asset": "7190", "side": "BUY", "outcomeIndex": 0, "title": "Will it?", "outcome": "Yes"}\n'
)


def sparse_file(path: Path, size: int) -> Path:
    """A file of `size` bytes that takes no disk space (a hole): the size check must not need to read it."""
    with path.open("wb") as handle:
        handle.truncate(size)
    return path


# --- the source's own read (also guards the window between start-up's check and the first poll)


@pytest.mark.timeout(10)
async def test_a_fifo_is_refused_at_once_not_read_forever(tmp_path: Path) -> None:
    fifo = tmp_path / "trades.jsonl"
    os.mkfifo(fifo)  # no writer ever opens it: a plain read would block for good
    with pytest.raises(ReplayFileError) as raised:
        await ReplayTradeSource(fifo).load()
    message = str(raised.value)
    assert f"{fifo} is a FIFO (named pipe), expected a regular file" in message
    assert "REPLAY_FILE" in message


async def test_a_directory_is_refused_naming_it(tmp_path: Path) -> None:
    with pytest.raises(ReplayFileError, match=r"is a directory, expected a regular file.*REPLAY_FILE"):
        await ReplayTradeSource(tmp_path).load()


async def test_a_device_is_refused_naming_it() -> None:
    with pytest.raises(ReplayFileError, match=r"/dev/null is a character device, expected a regular file"):
        await ReplayTradeSource("/dev/null").load()


async def test_an_oversized_file_is_refused_without_reading_it(tmp_path: Path) -> None:
    big = sparse_file(tmp_path / "big.jsonl", MAX_REPLAY_FILE_BYTES + 1)
    with pytest.raises(ReplayFileError) as raised:
        await ReplayTradeSource(big).load()
    assert f"is {MAX_REPLAY_FILE_BYTES + 1} bytes, expected at most {MAX_REPLAY_FILE_BYTES}" in str(raised.value)
    assert "a replay file (REPLAY_FILE)" in str(raised.value)


async def test_a_file_at_the_cap_is_read(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    path.write_text(TRADE)
    source = ReplayTradeSource(path, speed=0, max_bytes=len(TRADE))
    assert len(await source.poll()) == 1  # exactly at the cap is still fine
    with pytest.raises(ReplayFileError, match="expected at most"):
        await ReplayTradeSource(path, max_bytes=len(TRADE) - 1).load()


# --- start-up's resolution of the setting: stat only (never opens, so a FIFO cannot block it)


@pytest.mark.timeout(10)
def test_resolution_names_a_fifo_instead_of_saying_no_such_file(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    os.mkfifo(tmp_path / "data" / "trades.jsonl")
    with pytest.raises(ReplayFileError) as raised:
        resolve_replay_file(Path("data/trades.jsonl"), cwd=tmp_path, project_root=tmp_path / "root")
    assert "REPLAY_FILE=data/trades.jsonl" in str(raised.value)
    assert "is a FIFO (named pipe), expected a regular JSONL file" in str(raised.value)


def test_resolution_names_a_directory(tmp_path: Path) -> None:
    with pytest.raises(ReplayFileError, match="is a directory, expected a regular JSONL file"):
        resolve_replay_file(tmp_path)


def test_resolution_refuses_an_oversized_file(tmp_path: Path) -> None:
    big = sparse_file(tmp_path / "big.jsonl", MAX_REPLAY_FILE_BYTES + 1)
    with pytest.raises(ReplayFileError, match=f"is {MAX_REPLAY_FILE_BYTES + 1} bytes, expected at most"):
        resolve_replay_file(big)


# --- main.py as the operator runs it


@pytest.mark.integration
@pytest.mark.timeout(60)
@pytest.mark.parametrize("kind", ["fifo", "directory"])
def test_main_exits_2_with_a_clear_line_for_an_unusable_replay_file(tmp_path: Path, kind: str) -> None:
    replay = tmp_path / "trades.jsonl"
    if kind == "fifo":
        os.mkfifo(replay)
    else:
        replay.mkdir()
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "STATE_DIR": str(tmp_path / "state"),
        "LOG_DIR": str(tmp_path / "logs"),
        "REPLAY_FILE": str(replay),
        "MCP_INTEGRATION_ENABLED": "false",
        "PYTHONUNBUFFERED": "1",
    }
    done = subprocess.run(
        [sys.executable, str(ROOT / "main.py"), "--duration", "5"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=45,
    )
    assert done.returncode == 2, done.stderr[-2000:]
    expected = "a FIFO (named pipe)" if kind == "fifo" else "a directory"
    assert f"invalid settings: REPLAY_FILE={replay}: {replay} is {expected}" in done.stderr
    assert "Traceback" not in done.stderr
    # refused before the breaker and the ledger were opened: nothing traded, no state written
    assert not (tmp_path / "state" / "circuit_breaker.json").exists()
