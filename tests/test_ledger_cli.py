"""`python main.py --positions / --trades [N] / --json`: the read-only operator view of the ledger."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

from core.ledger import FillRecord, OutcomeRecord, TradeLedger
from core.ledger_cli import show

ROOT = Path(__file__).resolve().parent.parent
WALLET = "0x" + "ab" * 17 + "143124"


@pytest.fixture
def state_dir(tmp_path: Path) -> Path:
    state = tmp_path / "state"
    ledger = TradeLedger(state / "ledger.db")
    ledger.open()
    ledger.ensure_account("paper", 1000.0)
    trade_id = ledger.record_seen_sync(
        wallet=WALLET,
        tx_hash="0xabc",
        token_id="1234567890123456",
        market="0xm",
        title="Will the river flood this spring?",
        outcome="Yes",
        side="BUY",
        size=40.0,
        price=0.6,
        traded_at=1.0,
    )
    ledger.record_outcome_sync(
        trade_id,
        OutcomeRecord(
            "1234567890123456",
            "BUY",
            "executed",
            "",
            latency_ms=0.4,
            market="0xm",
            title="Will the river flood this spring?",
            outcome="Yes",
            client_order_id="copy-1",
            order_size=4.0,
            limit_price=0.61,
            fill=FillRecord(4.0, 0.6, 0.0, 0.0),
            marks={"1234567890123456": 0.65},
            equity=1000.2,
            cash=997.6,
        ),
    )
    denied = ledger.record_seen_sync(
        wallet=WALLET,
        tx_hash="0xdef",
        token_id="999",
        market="0xm",
        title="Another market",
        outcome="No",
        side="SELL",
        size=5.0,
        price=0.3,
        traded_at=2.0,
    )
    ledger.record_outcome_sync(denied, OutcomeRecord("999", "SELL", "denied", "no_position", ("no_position",)))
    ledger.close()
    return state


def test_positions_as_text_show_market_outcome_cost_mark_and_the_day(state_dir: Path) -> None:
    out = io.StringIO()
    assert show(state_dir, "UTC", positions=True, trades=None, as_json=False, out=out) == 0
    text = out.getvalue()
    assert "Will the river flood this spring?" in text and "Yes" in text
    assert "…90123456" in text and "2.40" in text and "0.6500" in text  # token tail, cost 4 × 0.6, mark
    assert "1 position(s), exposure 2.40 USDC" in text and "1 copied, 1 denied" in text


def test_trades_as_json_are_newest_first_with_the_wallet_masked(state_dir: Path) -> None:
    out = io.StringIO()
    assert show(state_dir, "UTC", positions=False, trades=5, as_json=True, out=out) == 0
    payload = json.loads(out.getvalue())
    assert [t["decision"] for t in payload["trades"]] == ["denied", "copied"]
    assert payload["trades"][0]["deny_reasons"] == ["no_position"]
    assert payload["trades"][1]["fill_size"] == 4.0
    assert WALLET not in out.getvalue() and payload["trades"][0]["followed_wallet"].endswith("143124")
    assert "positions" not in payload


def test_no_ledger_yet_reads_as_empty_and_says_so(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = io.StringIO()
    assert show(tmp_path / "state", "UTC", positions=True, trades=3, as_json=False, out=out) == 0
    assert "(no open positions)" in out.getvalue() and "(no followed trades" in out.getvalue()
    assert "no trade ledger at" in capsys.readouterr().err
    assert not (tmp_path / "state").exists()


def test_an_unreadable_ledger_exits_1_with_a_clear_message(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    state = tmp_path / "state"
    state.mkdir()
    (state / "ledger.db").write_bytes(b"not a database" * 300)
    assert show(state, "UTC", positions=True, trades=None, as_json=False, out=io.StringIO()) == 1
    err = capsys.readouterr().err
    assert "cannot read the trade ledger" in err and "ledger.db.corrupt-" in err
    assert (state / "ledger.db").read_bytes().startswith(b"not a database")  # the view never moves it


@pytest.mark.integration
@pytest.mark.parametrize("bad", ["0", "-3", "many"])
def test_main_rejects_a_bad_trade_count_with_exit_2(tmp_path: Path, bad: str) -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "main.py"), "--trades", bad],
        cwd=tmp_path,
        env={"PATH": "/usr/bin:/bin", "STATE_DIR": str(tmp_path / "state"), "LOG_DIR": str(tmp_path / "logs")},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "expected a whole number of trades >= 1" in done.stderr


@pytest.mark.integration
def test_main_positions_json_from_a_real_process(state_dir: Path) -> None:
    before = {path.name: path.read_bytes() for path in state_dir.iterdir() if path.is_file()}
    done = subprocess.run(
        [sys.executable, str(ROOT / "main.py"), "--positions", "--trades", "--json"],
        cwd=state_dir.parent,
        env={"PATH": "/usr/bin:/bin", "STATE_DIR": str(state_dir), "LOG_DIR": str(state_dir.parent / "logs")},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    payload = json.loads(done.stdout)
    assert [p["token_id"] for p in payload["positions"]] == ["1234567890123456"]
    assert payload["pnl"]["copies"] == 1 and len(payload["trades"]) == 2
    assert not (state_dir.parent / "logs").exists()  # the view writes nothing, not even a log
    # README: the ledger is never changed; only SQLite's empty WAL companions may appear beside it
    after = {path.name: path.read_bytes() for path in state_dir.iterdir() if path.is_file()}
    assert after.pop("ledger.db-wal", b"") == b""
    after.pop("ledger.db-shm", None)
    assert after == before


@pytest.mark.integration
def test_trades_without_a_count_shows_the_last_20_newest_first(tmp_path: Path) -> None:
    """README: `python main.py --trades [N]`, the last N (default 20) followed trades, newest first."""
    state = tmp_path / "state"
    ledger = TradeLedger(state / "ledger.db")
    ledger.open()
    for n in range(23):
        row = ledger.record_seen_sync(
            wallet=WALLET,
            tx_hash=f"0x{n:04x}",
            token_id="1234567890123456",
            market="0xm",
            title="Will the river flood this spring?",
            outcome="Yes",
            side="BUY",
            size=float(n + 1),
            price=0.6,
            traded_at=float(n + 1),
        )
        ledger.record_outcome_sync(row, OutcomeRecord("1234567890123456", "BUY", "denied", "min_order_size"))
    ledger.close()
    done = subprocess.run(
        [sys.executable, str(ROOT / "main.py"), "--trades", "--json"],
        cwd=tmp_path,
        env={"PATH": "/usr/bin:/bin", "STATE_DIR": str(state), "LOG_DIR": str(tmp_path / "logs")},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    sizes = [trade["size"] for trade in json.loads(done.stdout)["trades"]]
    assert sizes == [float(23 - n) for n in range(20)]
