"""The replay trade source: pacing on an injected clock, filtering, looping, and every malformed line case."""

from __future__ import annotations

import importlib.util
import json
import logging
import sys
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from core.clob.base import Side
from core.wallet.base import TradeSource
from core.wallet.records import parse_activity_record
from core.wallet.replay import ReplayFileError, ReplayTradeSource, file_offsets, round_period
from tests.fakes.fake_data_api import activity_record

WALLET_A = "0x" + "a1" * 20
WALLET_B = "0x" + "b2" * 20
T0 = 1_763_712_000  # the file's own time, unix seconds
START = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)  # the replay's "now" at the first poll


class FakeClock:
    """A wall clock that moves only when the test says so."""

    def __init__(self, start: datetime = START) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


def write_lines(path: Path, *lines: dict[str, Any] | str | bytes) -> Path:
    """A JSONL file from records (dicts) and raw lines (str/bytes) exactly as given."""
    with path.open("wb") as f:
        for line in lines:
            if isinstance(line, dict):
                f.write(json.dumps(line).encode() + b"\n")
            elif isinstance(line, str):
                f.write(line.encode() + b"\n")
            else:
                f.write(line + b"\n")
    return path


def record(offset: float = 0, wallet: str = WALLET_A, **fields: Any) -> dict[str, Any]:
    """A good Data API record `offset` seconds into the file; `fields` override (or break) any field."""
    fields.setdefault("timestamp", T0 + offset)
    return activity_record(wallet, **fields)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


async def test_is_a_trade_source(tmp_path: Path) -> None:
    source = ReplayTradeSource(write_lines(tmp_path / "t.jsonl", record()))
    assert isinstance(source, TradeSource)
    await source.close()


async def test_trades_are_released_at_their_relative_time(tmp_path: Path, clock: FakeClock) -> None:
    path = write_lines(
        tmp_path / "t.jsonl", record(0, tx_hash="0x01"), record(10, tx_hash="0x02"), record(30, tx_hash="0x03")
    )
    source = ReplayTradeSource(path, speed=1.0, clock=clock)

    first = await source.poll()
    assert [t.tx_hash for t in first] == ["0x01"]
    clock.advance(9.9)
    assert await source.poll() == []
    clock.advance(0.1)
    assert [t.tx_hash for t in await source.poll()] == ["0x02"]
    clock.advance(25)
    assert [t.tx_hash for t in await source.poll()] == ["0x03"]
    assert source.exhausted
    clock.advance(3600)
    assert await source.poll() == []
    assert source.stats.trades_emitted == 3
    assert source.stats.polls == 5


async def test_speed_scales_the_gaps_and_timestamps_are_rebased_to_replay_time(
    tmp_path: Path, clock: FakeClock
) -> None:
    path = write_lines(tmp_path / "t.jsonl", record(0), record(10), record(30))
    source = ReplayTradeSource(path, speed=2.0, clock=clock)

    assert len(await source.poll()) == 1
    clock.advance(5)  # 10 s of file time at double speed
    (second,) = await source.poll()
    assert second.timestamp == START + timedelta(seconds=5)
    clock.advance(100)
    (third,) = await source.poll()
    assert third.timestamp == START + timedelta(seconds=15)  # when it was due, not when it was polled


async def test_speed_zero_releases_everything_at_once(tmp_path: Path, clock: FakeClock) -> None:
    path = write_lines(tmp_path / "t.jsonl", *(record(i * 60) for i in range(5)))
    source = ReplayTradeSource(path, speed=0, clock=clock)
    trades = await source.poll()
    assert len(trades) == 5
    assert all(t.timestamp == START for t in trades)
    assert await source.poll() == []


async def test_file_order_holds_when_timestamps_go_backwards(tmp_path: Path, clock: FakeClock) -> None:
    path = write_lines(
        tmp_path / "t.jsonl", record(0, tx_hash="0x1"), record(20, tx_hash="0x2"), record(5, tx_hash="0x3")
    )
    source = ReplayTradeSource(path, clock=clock)
    await source.poll()
    clock.advance(20)
    assert [t.tx_hash for t in await source.poll()] == ["0x2", "0x3"]


async def test_trade_fields_come_from_the_record(tmp_path: Path, clock: FakeClock) -> None:
    path = write_lines(
        tmp_path / "t.jsonl",
        record(
            wallet=WALLET_A.upper().replace("0X", "0x"),
            side="SELL",
            size=12.5,
            price=0.37,
            asset="123",
            condition_id="0x" + "cd" * 32,
            outcome="No",
            title="Will it?",
        ),
    )
    (trade,) = await ReplayTradeSource(path, speed=0, clock=clock).poll()
    assert (trade.wallet, trade.side, trade.size, trade.price) == (WALLET_A, Side.SELL, 12.5, 0.37)
    assert (trade.token_id, trade.market, trade.outcome, trade.title) == ("123", "0x" + "cd" * 32, "No", "Will it?")


@pytest.mark.parametrize("followed", [[WALLET_B], [WALLET_B.upper().replace("0X", "0x")], [f"  {WALLET_B} "]])
async def test_only_followed_wallets_are_replayed(tmp_path: Path, clock: FakeClock, followed: list[str]) -> None:
    path = write_lines(tmp_path / "t.jsonl", record(0, WALLET_A), record(1, WALLET_B), record(2, WALLET_A))
    source = ReplayTradeSource(path, wallets=followed, speed=0, clock=clock)
    trades = await source.poll()
    assert [t.wallet for t in trades] == [WALLET_B]
    assert source.stats.malformed_skipped == 0


async def test_a_filter_matching_nothing_says_so(
    tmp_path: Path, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    path = write_lines(tmp_path / "t.jsonl", record(0, WALLET_A))
    source = ReplayTradeSource(path, wallets=[WALLET_B], speed=0, clock=clock)
    with caplog.at_level(logging.WARNING):
        assert await source.poll() == []
    assert "no trade from the followed wallets" in caplog.text
    assert WALLET_A not in caplog.text  # wallets are masked in logs


def test_a_followed_wallet_that_is_not_an_address_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"TARGET_WALLETS.*40 hex"):
        ReplayTradeSource(tmp_path / "t.jsonl", wallets=["not-a-wallet"])


def test_a_negative_speed_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="REPLAY_SPEED"):
        ReplayTradeSource(tmp_path / "t.jsonl", speed=-1)


async def test_loop_forever_replays_again_with_unique_keys(tmp_path: Path, clock: FakeClock) -> None:
    path = write_lines(tmp_path / "t.jsonl", record(0, tx_hash="0xaa"), record(10, tx_hash="0xbb"))
    source = ReplayTradeSource(path, speed=0, clock=clock, loop_forever=True)
    rounds = [await source.poll() for _ in range(4)]

    assert [len(r) for r in rounds] == [2, 2, 2, 2]  # one file's worth per poll, never an endless burst
    assert [t.tx_hash for t in rounds[0]] == ["0xaa", "0xbb"]
    assert [t.tx_hash for t in rounds[2]] == ["0xaa-r2", "0xbb-r2"]
    keys = [t.dedup_key for r in rounds for t in r]
    assert len(set(keys)) == len(keys) == 8
    assert not source.exhausted


async def test_loop_forever_paces_the_next_round_after_one_average_gap(tmp_path: Path, clock: FakeClock) -> None:
    path = write_lines(tmp_path / "t.jsonl", record(0), record(10), record(20))  # span 20 s, average gap 10 s
    source = ReplayTradeSource(path, speed=1.0, clock=clock, loop_forever=True)
    await source.poll()
    clock.advance(20)
    assert len(await source.poll()) == 2
    clock.advance(9)
    assert await source.poll() == []
    clock.advance(1)  # 30 s: round 1 starts
    (again,) = await source.poll()
    assert again.tx_hash.endswith("-r1")
    assert again.timestamp == START + timedelta(seconds=30)


def test_offsets_never_decrease_and_period_adds_an_average_gap() -> None:
    trades = [parse_activity_record(record(offset)) for offset in (0, 30, 10, 40)]
    offsets = file_offsets(trades)
    assert offsets == [0, 30, 30, 40]
    assert round_period(offsets) == pytest.approx(40 + 40 / 3)
    assert round_period([]) == 1.0
    assert round_period([0.0]) == 1.0


GOOD_BEFORE = record(0, tx_hash="0xbefore")
GOOD_AFTER = record(1, tx_hash="0xafter")


def _without(field: str) -> dict[str, Any]:
    bad = record(0.5)
    del bad[field]
    return bad


MALFORMED_LINES: list[tuple[str, dict[str, Any] | str | bytes, str]] = [
    ("not JSON", '{"proxyWallet": "0x', "not JSON"),
    ("trailing garbage", json.dumps(record(0.5)) + " extra", "not JSON"),
    ("not UTF-8", b'{"title": "\xff\xfe"}', "not UTF-8"),
    ("a JSON list", "[1, 2, 3]", "expected a JSON object, received list"),
    ("a JSON string", '"BUY"', "expected a JSON object, received str"),
    ("missing asset", _without("asset"), "missing field(s): asset"),
    ("missing price", _without("price"), "missing field(s): price"),
    ("missing timestamp", _without("timestamp"), "missing field(s): timestamp"),
    ("missing wallet", _without("proxyWallet"), "missing field(s): proxyWallet"),
    ("size as text", record(0.5, size="10"), "size: expected a number, received str"),
    ("size as bool", record(0.5, size=True), "size: expected a number, received bool"),
    ("price as null", record(0.5, price=None), "price: expected a number, received null"),
    ("asset as number", record(0.5, asset=123), "asset: expected a string, received int"),
    ("empty tx hash", record(0.5, tx_hash=" "), "transactionHash: expected a non-empty string"),
    ("title as list", record(0.5, title=["x"]), "title: expected a string or null"),
    ("bad side", record(0.5, side="HOLD"), "side: expected 'BUY' or 'SELL', received 'HOLD'"),
    ("zero size", record(0.5, size=0), "size: expected shares > 0, received 0.0"),
    ("negative size", record(0.5, size=-3), "size: expected shares > 0"),
    ("NaN size", json.dumps(record(0.5)).replace('"size": 10.0', '"size": NaN'), "size: expected a finite number"),
    ("infinite price", json.dumps(record(0.5)).replace('"price": 0.5', '"price": Infinity'), "finite number"),
    ("zero price", record(0.5, price=0), "price: expected a price strictly between 0 and 1"),
    ("price of one", record(0.5, price=1), "strictly between 0 and 1"),
    ("price above one", record(0.5, price=1.5), "strictly between 0 and 1"),
    (
        "timestamp as text",
        record(0.5, timestamp="2025-11-21T08:00:00Z"),
        "timestamp: expected unix seconds as a number",
    ),
    ("negative timestamp", record(0.5, timestamp=-5), "timestamp: expected positive unix seconds"),
    ("timestamp in milliseconds", record(0.5, timestamp=T0 * 1000), "milliseconds?"),
    ("not a wallet", record(0.5, wallet="0x1234"), "proxyWallet: expected 0x followed by 40 hex characters"),
    ("not a trade", record(0.5, type="REDEEM"), "type: expected 'TRADE', received 'REDEEM'"),
]


@pytest.mark.parametrize(("case", "line", "reason"), MALFORMED_LINES, ids=[case for case, _, _ in MALFORMED_LINES])
async def test_a_malformed_line_is_skipped_counted_and_logged(
    tmp_path: Path,
    clock: FakeClock,
    caplog: pytest.LogCaptureFixture,
    case: str,
    line: dict[str, Any] | str | bytes,
    reason: str,
) -> None:
    path = write_lines(tmp_path / "trades.jsonl", GOOD_BEFORE, line, GOOD_AFTER)
    source = ReplayTradeSource(path, speed=0, clock=clock)
    with caplog.at_level(logging.WARNING, logger="core.wallet.replay"):
        trades = await source.poll()

    assert [t.tx_hash for t in trades] == ["0xbefore", "0xafter"], case
    assert source.stats.malformed_skipped == 1
    (message,) = [r.getMessage() for r in caplog.records if "skipped malformed" in r.getMessage()]
    assert f"{path}:2:" in message
    assert reason in message


async def test_null_labels_read_as_empty(tmp_path: Path, clock: FakeClock) -> None:
    path = write_lines(tmp_path / "t.jsonl", record(outcome=None, title=None))
    (trade,) = await ReplayTradeSource(path, speed=0, clock=clock).poll()
    assert (trade.outcome, trade.title) == ("", "")


async def test_blank_lines_are_not_malformed(tmp_path: Path, clock: FakeClock) -> None:
    path = write_lines(tmp_path / "t.jsonl", record(0), "", "   ", record(1))
    source = ReplayTradeSource(path, speed=0, clock=clock)
    assert len(await source.poll()) == 2
    assert source.stats.malformed_skipped == 0


async def test_many_malformed_lines_are_all_counted_but_logged_with_a_cap(
    tmp_path: Path, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    path = write_lines(tmp_path / "t.jsonl", *(["nope"] * 50), record(0))
    source = ReplayTradeSource(path, speed=0, clock=clock)
    with caplog.at_level(logging.WARNING, logger="core.wallet.replay"):
        assert len(await source.poll()) == 1
    assert source.stats.malformed_skipped == 50
    assert sum("skipped malformed trade line" in r.getMessage() for r in caplog.records) == 20
    assert "30 more skipped lines not shown" in caplog.text


async def test_duplicate_transaction_and_asset_is_skipped_and_counted(
    tmp_path: Path, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    path = write_lines(
        tmp_path / "t.jsonl",
        record(0, tx_hash="0xdup", asset="1"),
        record(1, tx_hash="0xdup", asset="2"),  # same transaction, another outcome token: a different trade
        record(2, tx_hash="0xdup", asset="1", size=99),
    )
    source = ReplayTradeSource(path, speed=0, clock=clock)
    with caplog.at_level(logging.WARNING, logger="core.wallet.replay"):
        trades = await source.poll()
    assert [t.dedup_key for t in trades] == [("0xdup", "1"), ("0xdup", "2")]
    assert source.stats.duplicates_skipped == 1
    assert f"{path}:3: skipped duplicate trade: same transactionHash and asset as line 1" in caplog.text


async def test_a_missing_file_names_the_path_and_the_setting(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "trades.jsonl"
    source = ReplayTradeSource(missing)
    with pytest.raises(ReplayFileError, match="REPLAY_FILE") as raised:
        await source.poll()
    assert str(missing) in str(raised.value)


async def test_an_unreadable_path_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ReplayFileError, match=r"cannot read the replay file .*REPLAY_FILE"):
        await ReplayTradeSource(tmp_path).load()  # a directory


async def test_a_closed_source_cannot_be_polled(tmp_path: Path) -> None:
    source = ReplayTradeSource(write_lines(tmp_path / "t.jsonl", record()))
    await source.close()
    with pytest.raises(RuntimeError, match="closed"):
        await source.poll()


# --- the shipped data -------------------------------------------------------------------------------


def _generator(project_root: Path, monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    spec = importlib.util.spec_from_file_location("make_replay_data", project_root / "scripts" / "make_replay_data.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    # dataclasses look their module up in sys.modules while the class is being built
    monkeypatch.setitem(sys.modules, spec.name, module)
    spec.loader.exec_module(module)
    return module


async def test_the_shipped_replay_file_is_clean_and_realistic(project_root: Path, clock: FakeClock) -> None:
    source = ReplayTradeSource(project_root / "data" / "replay_trades.jsonl", speed=0, clock=clock)
    trades = await source.poll()
    raw = [json.loads(line) for line in (project_root / "data" / "replay_trades.jsonl").read_text().splitlines()]

    assert source.stats.malformed_skipped == 0
    assert source.stats.duplicates_skipped == 0
    assert len(trades) == len(raw) == 300
    assert len({t.wallet for t in trades}) == 3
    assert len({t.market for t in trades}) == 12
    assert {t.side for t in trades} == {Side.BUY, Side.SELL}
    assert all(0.02 < t.price < 0.98 and 5 <= t.size <= 500 for t in trades)
    span = raw[-1]["timestamp"] - raw[0]["timestamp"]
    assert 25 * 60 <= span <= 30 * 60
    assert all(len(t.token_id) >= 70 and t.token_id.isdigit() for t in trades)

    held: dict[tuple[str, str], float] = defaultdict(float)
    for trade in trades:  # a wallet only sells what it bought earlier in the file
        key = (trade.wallet, trade.token_id)
        held[key] += trade.size if trade.side is Side.BUY else -trade.size
        assert held[key] >= -1e-9, f"{trade.tx_hash} sells more than {trade.wallet[-6:]} holds"


def test_the_shipped_replay_file_is_what_the_seeded_generator_writes(
    project_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    generator = _generator(project_root, monkeypatch)
    expected = generator.render(generator.generate())
    assert (project_root / "data" / "replay_trades.jsonl").read_text(encoding="utf-8") == expected


def test_the_generator_writes_where_it_is_told(
    project_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    generator = _generator(project_root, monkeypatch)
    out = tmp_path / "small.jsonl"
    assert generator.main(["--out", str(out), "--count", "20", "--minutes", "2", "--seed", "3"]) == 0
    assert len(out.read_text().splitlines()) == 20
    assert "wrote 20 trades" in capsys.readouterr().out
