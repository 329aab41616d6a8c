"""The ledger as an operator meets it: real bot processes, `kill -9`, restarts, and the read-only CLI.

The paper bot trades from the shipped replay file; every check reads only what the processes leave on disk
(the ledger, the breaker's state file, the risk snapshot) and what they print.
"""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from core.ledger_view import LedgerReader, read_only_uri
from core.state_reader import read_breaker_state

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROOT = Path(__file__).resolve().parent.parent
REPLAY = ROOT / "data" / "replay_trades.jsonl"
FOLLOWED = "0x21f93bd80f95f0e161fd44f6b98634cbeb143124"


def bot_env(workdir: Path, **extra: str) -> dict[str, str]:
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "STATE_DIR": str(workdir / "state"),
        "LOG_DIR": str(workdir / "logs"),
        "MCP_INTEGRATION_ENABLED": "false",
        "PYTHONUNBUFFERED": "1",
        "PAPER_LATENCY_MS": "0",
    }
    env.update(extra)
    return env


def start_bot(workdir: Path, *args: str, **extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, str(ROOT / "main.py"), "--no-sidecar", *args],
        cwd=workdir,
        env=bot_env(workdir, **extra),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def run_main(workdir: Path, *args: str, **extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(ROOT / "main.py"), "--no-sidecar", *args],
        cwd=workdir,
        env=bot_env(workdir, **extra),
        capture_output=True,
        text=True,
        timeout=90,
    )


def kill_9(process: subprocess.Popen[str]) -> str:
    process.send_signal(signal.SIGKILL)
    _, stderr = process.communicate(timeout=30)
    assert process.returncode == -signal.SIGKILL
    return stderr


def snapshot(workdir: Path) -> dict[str, Any]:
    return json.loads((workdir / "state" / "risk_state.json").read_text())


def breaker_file(workdir: Path) -> dict[str, Any]:
    reading = read_breaker_state(workdir / "state" / "circuit_breaker.json", complete=True)
    reading.require()  # the shape is intact: everything a restart needs, of the right types
    assert reading.payload is not None
    return reading.payload


def ledger_exposure(workdir: Path) -> float:
    reader = LedgerReader(workdir / "state" / "ledger.db")
    try:
        return sum(p.notional for p in reader.positions())
    finally:
        reader.close()


def replay_line(side: str, token_id: str, size: float, price: float, tx: str) -> str:
    record = {
        "proxyWallet": FOLLOWED,
        "timestamp": int(time.time()),
        "conditionId": "0x" + "ab" * 32,
        "type": "TRADE",
        "size": size,
        "transactionHash": tx,
        "price": price,
        "asset": token_id,
        "side": side,
        "title": "held market",
        "outcome": "Yes",
    }
    return json.dumps(record) + "\n"


def test_kill_9_then_a_restart_keeps_exposure_and_the_days_loss_and_a_later_sell_exits(tmp_path: Path) -> None:
    bot = start_bot(tmp_path, REPLAY_SPEED="12", REPLAY_FILE=str(REPLAY))
    time.sleep(30)
    # the operator's view works while the bot runs (read-only, through the WAL)
    view = run_main(tmp_path, "--positions", "--json")
    assert view.returncode == 0, view.stderr
    assert json.loads(view.stdout)["positions"], "the running bot's ledger shows no position after 30 s"
    before = snapshot(tmp_path)
    kill_9(bot)
    loss_at_kill = breaker_file(tmp_path)["daily_loss"]
    exposure_at_kill = ledger_exposure(tmp_path)
    assert before["exposure"]["total"] > 0

    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    restarted = run_main(tmp_path, "--duration", "3", REPLAY_FILE=str(empty))
    assert restarted.returncode == 0, restarted.stderr[-2000:]
    after = snapshot(tmp_path)
    max_order = 100.0  # the default MAX_ORDER_SIZE: no single trade moves exposure more
    assert abs(after["exposure"]["total"] - before["exposure"]["total"]) <= max_order
    assert after["exposure"]["total"] == pytest.approx(exposure_at_kill, abs=1e-6)
    assert after["breaker"]["daily_loss"] >= loss_at_kill - 1e-6
    assert after["positions"], "the restart forgot the positions"

    # a followed wallet later sells a token we hold: the copy is executed (it used to be denied no_position)
    held = max(after["positions"], key=lambda p: p["notional"])
    sells = tmp_path / "sell.jsonl"
    sells.write_text(replay_line("SELL", held["token_id"], 100_000.0, round(held["mark"], 2), "0x" + "5e11" * 16))
    exit_run = run_main(tmp_path, "--duration", "3", REPLAY_FILE=str(sells), REPLAY_SPEED="0")
    assert exit_run.returncode == 0, exit_run.stderr[-2000:]
    # the replay loops, so the same SELL comes again as a new round: only the first one finds the position
    line = next(entry for entry in exit_run.stderr.splitlines() if "copy SELL" in entry)
    assert "→ executed" in line, line
    assert held["token_id"] not in {p["token_id"] for p in snapshot(tmp_path)["positions"]}

    trades = run_main(tmp_path, "--trades", "50", "--json")
    assert trades.returncode == 0, trades.stderr
    exits = [
        t for t in json.loads(trades.stdout)["trades"] if t["token_id"] == held["token_id"] and t["side"] == "SELL"
    ]
    assert [t["decision"] for t in exits][-1] == "copied"  # the oldest of them, the first SELL, was copied


def fresh_replay(path: Path, run: int) -> None:
    """The shipped replay with this run's own transaction hashes, so each run brings trades the ledger lacks."""
    lines = []
    for raw in REPLAY.read_text().splitlines():
        record = json.loads(raw)
        record["transactionHash"] = f"{record['transactionHash']}-k{run}"
        lines.append(json.dumps(record))
    path.write_text("\n".join(lines) + "\n")


def check_ledger_intact(workdir: Path) -> list[float]:
    """The file passes SQLite's integrity check and no fill lacks its order and decision (no torn write);
    returns the last two equities written."""
    conn = sqlite3.connect(read_only_uri(workdir / "state" / "ledger.db"), uri=True)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        orphans = conn.execute(
            "SELECT COUNT(*) FROM fills WHERE order_id NOT IN (SELECT id FROM orders)"
            " OR order_id IN (SELECT o.id FROM orders o LEFT JOIN decisions d ON d.id = o.decision_id"
            " WHERE d.id IS NULL)"
        ).fetchone()[0]
        assert orphans == 0, "a fill without its order and decision: a transaction was torn"
        return [row[0] for row in conn.execute("SELECT equity FROM equity ORDER BY id DESC LIMIT 2")]
    finally:
        conn.close()


def assert_restart_agrees(workdir: Path, empty_replay: Path) -> None:
    """A restart (nothing to copy) shows exactly the ledger's positions, exposure and equity, breaker included."""
    restarted = run_main(workdir, "--duration", "0.5", REPLAY_FILE=str(empty_replay))
    assert restarted.returncode == 0, restarted.stderr[-2000:]
    after = snapshot(workdir)
    reader = LedgerReader(workdir / "state" / "ledger.db")
    try:
        positions = {p.token_id: p.size for p in reader.positions()}
        exposure = sum(p.notional for p in reader.positions())
        equity = reader.pnl().equity
    finally:
        reader.close()
    assert {p["token_id"]: p["size"] for p in after["positions"]} == pytest.approx(positions)
    assert after["exposure"]["total"] == pytest.approx(exposure, abs=1e-6)
    assert breaker_file(workdir)["last_equity"] == pytest.approx(equity, abs=1e-6)


@pytest.mark.timeout(500)
def test_kill_9_at_random_moments_leaves_ledger_breaker_and_positions_in_agreement(tmp_path: Path) -> None:
    rng = random.Random(8)
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    kills = 15
    for run in range(kills):
        replay = tmp_path / f"replay-{run}.jsonl"
        fresh_replay(replay, run)
        bot = start_bot(
            tmp_path, REPLAY_SPEED="0", REPLAY_FILE=str(replay), CONSECUTIVE_LOSS_LIMIT="1000", MAX_DAILY_LOSS="900"
        )
        time.sleep(rng.uniform(1.0, 3.0))  # start-up takes about a second: the kill lands mid-trading
        stderr = kill_9(bot)
        assert "Traceback" not in stderr, stderr[-2000:]
        assert "copy BUY" in stderr or "copy SELL" in stderr, "killed before it traded: the kill tested nothing"
        equities = check_ledger_intact(tmp_path)
        # the ledger is written before the breaker: the breaker is at the ledger's last equity or one behind
        last_equity = breaker_file(tmp_path)["last_equity"]  # parses, every field checked
        assert any(last_equity == pytest.approx(e, abs=1e-9) for e in equities), (run, last_equity, equities)
        assert_restart_agrees(tmp_path, empty)
