"""main.py as an operator runs it: real processes, real signals, the state left behind."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from core.risk_snapshot import read_risk_snapshot
from tests.waiting import wait_until

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parent.parent


def bot_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "STATE_DIR": str(tmp_path / "state"),
        "LOG_DIR": str(tmp_path / "logs"),
        "REPLAY_SPEED": "0",
        "MCP_INTEGRATION_ENABLED": "false",
        "PYTHONUNBUFFERED": "1",
    }
    env.update(extra)
    return env


def run_main(tmp_path: Path, *args: str, timeout: float = 60, **extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(ROOT / "main.py"), *args],
        cwd=tmp_path,
        env=bot_env(tmp_path, **extra),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_paper_run_copies_trades_and_leaves_a_valid_snapshot(tmp_path: Path) -> None:
    done = run_main(tmp_path, "--duration", "4")
    assert done.returncode == 0, done.stderr[-2000:]
    snapshot = read_risk_snapshot(tmp_path / "state" / "risk_state.json")
    assert snapshot["trades"]["executed"] > 0
    assert snapshot["trading_mode"] == "paper"
    assert "copy loop stopped" in done.stderr
    assert (tmp_path / "logs" / "polymarket_bot.log").read_text().count("copy BUY") > 0
    assert json.loads((tmp_path / "state" / "circuit_breaker.json").read_text())["schema_version"] == 1


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_signal_stops_the_bot_cleanly_and_flushes_state(tmp_path: Path, signum: int) -> None:
    snapshot_path = tmp_path / "state" / "risk_state.json"
    process = subprocess.Popen(
        [sys.executable, str(ROOT / "main.py")],
        cwd=tmp_path,
        env=bot_env(tmp_path, REPLAY_SPEED="20"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_until(snapshot_path.exists, "the bot publishing its snapshot", within=30.0, every=0.1)
        process.send_signal(signum)
        _, stderr = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0, stderr[-2000:]
    assert f"received {signal.Signals(signum).name}" in stderr
    assert "state flushed" in stderr
    assert read_risk_snapshot(snapshot_path)["pid"] == process.pid


def test_invalid_settings_exit_2_listing_every_bad_field(tmp_path: Path) -> None:
    done = run_main(tmp_path, MAX_DAILY_LOSS="-5", DASHBOARD_PORT="eighty", TRADING_DAY_TIMEZONE="Nowhere/Land")
    assert done.returncode == 2
    for name in ("MAX_DAILY_LOSS", "DASHBOARD_PORT", "TRADING_DAY_TIMEZONE", "'eighty'"):
        assert name in done.stderr
    assert not (tmp_path / "state").exists(), "nothing may be written with invalid settings"


def test_missing_replay_file_is_a_clear_settings_error(tmp_path: Path) -> None:
    done = run_main(tmp_path, "--duration", "2", REPLAY_FILE=str(tmp_path / "nope.jsonl"))
    assert done.returncode == 2  # REPLAY_FILE is a setting: exit 2 like every unusable REPLAY_FILE
    assert "Traceback" not in done.stderr
    assert "REPLAY_FILE" in done.stderr
    assert "nope.jsonl" in done.stderr


def test_reset_circuit_breaker_from_the_command_line(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    (state / "circuit_breaker.json").write_text("{ this is not json")
    # a corrupt state file halts the bot; only a person clears that
    run_main(tmp_path, "--duration", "1")
    halted = json.loads((state / "circuit_breaker.json").read_text())
    assert halted["state"] == "HALTED"
    assert list(state.glob("circuit_breaker.json.corrupt-*"))
    done = run_main(tmp_path, "--reset-circuit-breaker")
    assert done.returncode == 0, done.stderr
    assert "reset" in done.stdout.lower()
    assert json.loads((state / "circuit_breaker.json").read_text())["state"] == "ACTIVE"


def test_a_restart_keeps_the_days_risk(tmp_path: Path) -> None:
    first = run_main(tmp_path, "--duration", "3")
    assert first.returncode == 0, first.stderr[-2000:]
    before = json.loads((tmp_path / "state" / "circuit_breaker.json").read_text())
    second = run_main(tmp_path, "--duration", "1", REPLAY_FILE=str(write_empty_replay(tmp_path)))
    assert second.returncode == 0, second.stderr[-2000:]
    after = json.loads((tmp_path / "state" / "circuit_breaker.json").read_text())
    assert after["day_start_equity"] == before["day_start_equity"]
    assert after["state"] == before["state"]
    assert after["trip_history"] == before["trip_history"]


def write_empty_replay(tmp_path: Path) -> Path:
    path = tmp_path / "empty.jsonl"
    path.write_text("")
    return path


def test_an_unusable_state_dir_refuses_to_trade(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the state folder should be")
    done = run_main(tmp_path, "--duration", "1", STATE_DIR=str(blocker))
    assert done.returncode == 2  # issue 8: checked with the other settings, before anything starts
    assert "not-a-dir" in done.stderr
    assert "STATE_DIR" in done.stderr and "expected a folder the bot can write" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize(
    ("bad", "fragment"),
    [
        (
            {"DASHBOARD_HOST": "0.0.0.0"},
            "refusing to serve the dashboard on DASHBOARD_HOST=0.0.0.0 without DASHBOARD_TOKEN",
        ),
        (
            {"MCP_CODEBASE_SEARCH_ENABLED": "false", "MCP_TESTING_ENABLED": "false", "MCP_MONITORING_ENABLED": "false"},
            "no server enabled",
        ),
    ],
    ids=["public-dashboard-without-token", "no-server-enabled"],
)
def test_the_bot_refuses_settings_its_sidecar_would_refuse_before_trading(
    tmp_path: Path, bad: dict[str, str], fragment: str
) -> None:
    done = run_main(tmp_path, "--duration", "30", MCP_INTEGRATION_ENABLED="true", **bad)
    assert done.returncode == 2, done.stderr[-2000:]
    assert fragment in done.stderr
    assert not (tmp_path / "state" / "risk_state.json").exists(), "no trading with settings the sidecar refuses"
    # the sidecar itself says the very same thing, with the same exit code
    sidecar = subprocess.run(
        [sys.executable, "-m", "mcp.main_mcp", "all"],
        cwd=ROOT,
        env=bot_env(tmp_path, **bad),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert sidecar.returncode == 2
    assert done.stderr.strip() and sidecar.stderr.strip().endswith(done.stderr.strip())


def test_without_the_sidecar_its_settings_are_not_the_bot_s_business(tmp_path: Path) -> None:
    done = run_main(tmp_path, "--duration", "2", MCP_INTEGRATION_ENABLED="false", DASHBOARD_HOST="0.0.0.0")
    assert done.returncode == 0, done.stderr[-2000:]
