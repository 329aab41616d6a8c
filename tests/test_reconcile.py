"""Live-mode reconciliation with the exchange (issue 8, item 4).

The pure decision is tested as a table; the service end to end over real loopback HTTP: the executor trades
through the real py-clob-client-v2 adapter against the fake CLOB (signed orders, balances, the
balance/allowance endpoint), and the exchange's positions come from the fake Data API's /positions.
"""

from __future__ import annotations

import asyncio
import math
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount
from hypothesis import given
from hypothesis import strategies as st

from config.settings import Settings
from core.circuit_breaker import CircuitBreaker
from core.clob.base import Side
from core.clob.polymarket import PolymarketClobClient
from core.execution_result import ExecutionStatus
from core.pre_trade_checks import DenyReason, check_reconcile
from core.reconcile import ReconcileGate, ReconcileResult, confirm, reconcile
from core.reconciler import DataApiPositions, ReconcileFetchError, Reconciler, parse_position_record
from core.trade_executor import TradeExecutor
from core.wallet.base import WalletTrade
from tests.circuit_breaker_support import AlertRecorder
from tests.fakes.fake_clob import BASE_UNITS, FakeClob, FakeMarket
from tests.fakes.fake_data_api import FakeDataApi, ScriptedResponse, position_record
from tests.test_main_process import ROOT, bot_env

NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
TOKEN = "71321045679252212594626385532706912750332728571942532289631379312455583992563"
OTHER = "52114319501245915516055106046884209969926127482827954674443846427813813222426"
TITLE = "Will the fake market resolve Yes?"


# --- the pure decision ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ours", "exchange", "tolerance", "mismatched"),
    [
        ({}, {}, 1.0, []),
        ({"a": 10.0}, {"a": 10.0}, 0.0, []),
        ({"a": 10.0}, {"a": 10.9}, 1.0, []),  # within the tolerance
        ({"a": 10.0}, {"a": 11.0}, 1.0, []),  # exactly at it: still within
        ({"a": 10.0}, {"a": 11.5}, 1.0, ["a"]),
        ({"a": 10.0}, {}, 1.0, ["a"]),  # we think we hold it; the exchange says nothing
        ({}, {"b": 3.0}, 1.0, ["b"]),  # the exchange holds what we do not know of
        ({"a": 0.5}, {}, 1.0, []),  # dust below the tolerance
        ({"a": 1.0, "b": 2.0}, {"a": 5.0, "b": 2.0, "c": 9.0}, 0.1, ["a", "c"]),
    ],
)
def test_positions_mismatch_only_beyond_the_tolerance(
    ours: dict[str, float], exchange: dict[str, float], tolerance: float, mismatched: list[str]
) -> None:
    result = reconcile(ours, exchange, now=NOW, position_tolerance=tolerance)
    assert [gap.token_id for gap in result.gaps] == mismatched
    assert result.ok is (not mismatched)
    assert result.compared_tokens == len(set(ours) | set(exchange))


shares = st.floats(min_value=0, max_value=1e6, allow_nan=False, allow_infinity=False)
books = st.dictionaries(st.sampled_from(["a", "b", "c", "d"]), shares, max_size=4)


@given(books, books, st.floats(min_value=0, max_value=100, allow_nan=False))
def test_a_token_mismatches_exactly_when_its_sizes_differ_beyond_the_tolerance(
    ours: dict[str, float], exchange: dict[str, float], tolerance: float
) -> None:
    result = reconcile(ours, exchange, now=NOW, position_tolerance=tolerance)
    expected = sorted(t for t in set(ours) | set(exchange) if abs(ours.get(t, 0.0) - exchange.get(t, 0.0)) > tolerance)
    assert [gap.token_id for gap in result.gaps] == expected
    # the comparison is symmetric, and the books always agree with themselves
    swapped = reconcile(exchange, ours, now=NOW, position_tolerance=tolerance)
    assert [gap.token_id for gap in swapped.gaps] == expected
    assert reconcile(ours, dict(ours), now=NOW, position_tolerance=tolerance).ok


@given(books, books, books)
def test_confirm_never_reports_what_either_look_did_not_see(
    ours: dict[str, float], first_view: dict[str, float], second_view: dict[str, float]
) -> None:
    first = reconcile(ours, first_view, now=NOW, position_tolerance=0.5)
    second = reconcile(ours, second_view, now=NOW, position_tolerance=0.5)
    confirmed = {gap.token_id for gap in confirm(first, second).gaps}
    assert confirmed == {g.token_id for g in first.gaps} & {g.token_id for g in second.gaps}


@pytest.mark.parametrize(
    ("ours", "exchange", "mismatch"),
    [(100.0, 100.0, False), (100.0, 104.0, False), (100.0, 106.0, True), (None, 50.0, False), (100.0, None, False)],
)
def test_collateral_mismatches_beyond_its_tolerance_and_unknown_cash_is_not_compared(
    ours: float | None, exchange: float | None, mismatch: bool
) -> None:
    result = reconcile(
        {}, {}, now=NOW, position_tolerance=1.0, our_cash=ours, exchange_cash=exchange, cash_tolerance=5.0
    )
    assert (result.cash_gap is not None) is mismatch
    if mismatch:
        assert "collateral: ours 100.00, exchange 106.00 USDC" in result.describe()


def test_the_result_names_the_markets_and_the_figures() -> None:
    result = reconcile(
        {TOKEN: 10.0}, {TOKEN: 0.0}, now=NOW, position_tolerance=1.0, market_names={TOKEN: "Fed cuts in March?"}
    )
    assert result.markets == ["Fed cuts in March?"]
    assert result.describe() == f"Fed cuts in March? (token …{TOKEN[-8:]}): ours 10.0000, exchange 0.0000 shares"


@pytest.mark.parametrize("bad", [math.nan, math.inf, -1.0])
def test_bad_figures_are_refused(bad: float) -> None:
    with pytest.raises(ValueError, match="expected a finite number"):
        reconcile({"a": bad}, {}, now=NOW, position_tolerance=1.0)
    with pytest.raises(ValueError, match="position_tolerance"):
        reconcile({}, {}, now=NOW, position_tolerance=bad)


def test_confirm_keeps_only_what_both_looks_saw() -> None:
    first = reconcile({"a": 1.0, "b": 1.0}, {}, now=NOW, position_tolerance=0.1, our_cash=10, exchange_cash=50)
    second = reconcile(
        {"a": 1.0, "b": 1.0, "c": 1.0}, {"b": 1.0}, now=NOW, position_tolerance=0.1, our_cash=10, exchange_cash=10
    )
    confirmed = confirm(first, second)
    assert [gap.token_id for gap in confirmed.gaps] == ["a"]  # b agreed the second time, c is new
    assert confirmed.cash_gap is None


def test_the_gate_closes_on_a_mismatch_and_opens_when_the_books_agree() -> None:
    gate = ReconcileGate()
    bad = reconcile({"a": 5.0}, {}, now=NOW, position_tolerance=1.0)
    good = ReconcileResult(NOW)
    assert not gate.blocks_entries
    assert gate.apply(bad) == "closed" and gate.blocks_entries and gate.markets == ["a"]
    assert gate.apply(bad) is None  # still closed: no second alert
    assert gate.apply(good) == "opened" and not gate.blocks_entries
    assert gate.apply(good) is None


def test_the_pre_trade_check_denies_entries_only() -> None:
    denied = check_reconcile(True, ["Fed cuts in March?"])
    assert not denied.allowed and denied.reason is DenyReason.RECONCILE_MISMATCH
    assert denied.figures["markets"] == "Fed cuts in March?"
    assert check_reconcile(False, ["Fed cuts in March?"]).allowed  # an exit always passes
    assert check_reconcile(True, None).allowed


@pytest.mark.parametrize(
    ("record", "problem"),
    [
        ([], "expected a position object, received list"),
        ({"size": 1.0}, "asset: expected a token id string"),
        ({"asset": "", "size": 1.0}, "asset: expected a token id string"),
        ({"asset": TOKEN, "size": "12"}, "size: expected a finite number of shares >= 0, received '12'"),
        ({"asset": TOKEN, "size": -1}, "size: expected a finite number of shares >= 0, received -1"),
        ({"asset": TOKEN, "size": True}, "size: expected a finite number"),
        ({"asset": TOKEN}, "size: expected a finite number of shares >= 0, received None"),
    ],
)
def test_a_malformed_position_record_says_which_field(record: Any, problem: str) -> None:
    with pytest.raises(ValueError) as refused:
        parse_position_record(record)
    assert problem in str(refused.value)


def test_a_position_record_names_its_market_and_outcome() -> None:
    position = parse_position_record(position_record("0x" + "1" * 40, asset=TOKEN, size=12.5, outcome="No"))
    assert (position.token_id, position.size, position.market) == (TOKEN, 12.5, f"{TITLE} [No]")


# --- end to end: the adapter against the fake CLOB, positions from the fake Data API ----------------


@dataclass
class Live:
    clob: FakeClob
    api: FakeDataApi
    adapter: PolymarketClobClient
    executor: TradeExecutor
    alerts: AlertRecorder
    settings: Settings
    sources: list[DataApiPositions]

    def reconciler(self, **overrides: Any) -> Reconciler:
        options: dict[str, Any] = {
            "position_tolerance": self.settings.reconcile_position_tolerance,
            "cash_tolerance": self.settings.reconcile_cash_tolerance,
            "interval": self.settings.reconcile_interval_seconds,
            "confirm_seconds": self.settings.reconcile_confirm_seconds,
            "alert": self.alerts,
            "clock": lambda: NOW,
        }
        options.update(overrides)
        positions = DataApiPositions(self.api.base_url)
        self.sources.append(positions)  # closed by the fixture
        return Reconciler(
            lambda: self.executor.portfolio,
            self.executor.reconcile_gate,
            positions,
            self.adapter.get_balance,
            self.adapter.address,
            **options,
        )

    def mirror_exchange(self) -> None:
        """The Data API shows what the exchange holds for us (as it does once the chain has settled)."""
        held = [
            position_record(self.adapter.address, asset=token, size=units / BASE_UNITS)
            for (owner, token), units in self.clob.shares.items()
            if owner == self.adapter.address.lower() and units > 0
        ]
        self.api.set_positions(self.adapter.address, *held)


def copied(side: Side, size: float, price: float) -> WalletTrade:
    return WalletTrade(
        wallet="0x" + "9" * 40,
        tx_hash="0x" + "1" * 64,
        token_id=TOKEN,
        market=TITLE,
        side=side,
        size=size,
        price=price,
        timestamp=NOW,
    )


@pytest.fixture
async def live(tmp_path: Path) -> AsyncIterator[Live]:
    wallet: LocalAccount = Account.create()  # made up for this test only: never a real key
    async with FakeClob() as clob, FakeDataApi() as api:
        clob.add_market(FakeMarket(TOKEN, bids=[(0.48, 500.0)], asks=[(0.50, 500.0)]))
        settings = Settings(
            _env_file=None,  # type: ignore[call-arg]
            trading_mode="live",
            private_key=wallet.key.hex(),
            clob_host=clob.url,
            data_api_url=api.base_url,
            state_dir=tmp_path / "state",
            copy_ratio=1.0,
            reconcile_position_tolerance=0.1,
            reconcile_confirm_seconds=0.0,
        )
        adapter = PolymarketClobClient(settings)
        breaker = CircuitBreaker.from_settings(settings)
        executor = TradeExecutor(adapter, settings=settings, circuit_breaker=breaker)
        live = Live(clob, api, adapter, executor, AlertRecorder(), settings, [])
        try:
            yield live
        finally:
            for source in live.sources:
                await source.close()
            await adapter.close()


async def buy_ten(live: Live) -> None:
    result = await live.executor.execute_copy(copied(Side.BUY, 10.0, 0.50))
    assert result.status is ExecutionStatus.EXECUTED, result.reason


async def test_books_that_agree_with_the_exchange_leave_entries_open(live: Live) -> None:
    await buy_ten(live)
    live.mirror_exchange()
    reconciler = live.reconciler()

    result = await reconciler.reconcile()

    assert result is not None and result.ok and result.compared_tokens == 1
    assert not live.executor.reconcile_gate.blocks_entries
    asked = [r.params for r in live.api.requests if r.path == "/positions"]
    assert asked and all(p["user"] == live.adapter.address and p["sizeThreshold"] == "0" for p in asked)
    assert "GET /balance-allowance" in live.clob.paths()  # collateral came from the CLOB's balance endpoint
    assert live.alerts.sent == []


async def test_a_mismatch_halts_new_entries_with_a_critical_alert_and_exits_still_pass(live: Live) -> None:
    await buy_ten(live)
    live.api.set_positions(live.adapter.address)  # the exchange's view: we hold nothing
    reconciler = live.reconciler()

    result = await reconciler.reconcile()
    await reconciler.drain_alerts()

    assert result is not None and not result.ok
    assert live.executor.reconcile_gate.blocks_entries
    [(severity, message)] = live.alerts.sent
    assert severity == "critical"
    assert "RECONCILE MISMATCH: new entries halted (exits still pass)" in message
    assert f"{TITLE} (token …{TOKEN[-8:]}): ours 10.0000, exchange 0.0000 shares" in message
    entry = await live.executor.execute_copy(copied(Side.BUY, 4.0, 0.50))
    assert entry.status is ExecutionStatus.DENIED and entry.reason == "reconcile_mismatch"
    assert entry.decisions[-1].figures["markets"] == TITLE
    metrics = await live.executor.get_performance_metrics()
    assert metrics["denials"] == {"reconcile_mismatch": 1}
    shown = live.executor.snapshot()["reconcile"]  # the sidecar's view: risk_state.json
    assert shown["blocks_entries"] is True and shown["markets"] == [TITLE]
    assert "ours 10.0000, exchange 0.0000 shares" in shown["detail"]
    exit_ = await live.executor.execute_copy(copied(Side.SELL, 10.0, 0.48))
    assert exit_.status is ExecutionStatus.EXECUTED, exit_.reason
    assert live.executor.portfolio.positions == {}


async def test_a_stop_loss_exit_passes_while_entries_are_halted(live: Live) -> None:
    await buy_ten(live)
    live.api.set_positions(live.adapter.address)
    await live.reconciler().reconcile()
    assert live.executor.reconcile_gate.blocks_entries
    market = live.clob.markets[TOKEN]
    market.bids[:], market.asks[:] = [(0.30, 500.0)], [(0.32, 500.0)]  # the market fell 38 % under our cost

    [exit_] = await live.executor.enforce_stop_losses()

    assert exit_.status is ExecutionStatus.EXECUTED and exit_.reason == "stop_loss"
    assert live.executor.portfolio.positions == {}


async def test_a_mismatch_that_is_gone_at_the_second_look_does_not_halt(live: Live) -> None:
    await buy_ten(live)
    live.api.set_positions(live.adapter.address)  # the Data API has not indexed the fill yet …

    async def chain_settles(_: float) -> None:
        live.mirror_exchange()  # … and has by the confirming look

    result = await live.reconciler(sleep=chain_settles).reconcile()

    assert result is not None and result.ok
    assert not live.executor.reconcile_gate.blocks_entries
    assert live.alerts.sent == []


async def test_a_mismatch_that_lasts_is_one_critical_alert_not_one_per_round(live: Live) -> None:
    """README: a mismatch sends one CRITICAL alert; later rounds that still disagree keep entries halted
    and only log."""
    await buy_ten(live)
    live.api.set_positions(live.adapter.address)
    reconciler = live.reconciler()
    for _ in range(3):
        result = await reconciler.reconcile()
        assert result is not None and not result.ok
    await reconciler.drain_alerts()
    assert live.executor.reconcile_gate.blocks_entries
    assert live.alerts.severities() == ["critical"]


async def test_the_gate_opens_again_when_a_later_reconcile_agrees(live: Live) -> None:
    await buy_ten(live)
    live.api.set_positions(live.adapter.address)
    reconciler = live.reconciler()
    await reconciler.reconcile()
    assert live.executor.reconcile_gate.blocks_entries

    live.mirror_exchange()
    await reconciler.reconcile()
    await reconciler.drain_alerts()

    assert not live.executor.reconcile_gate.blocks_entries
    assert live.executor.snapshot()["reconcile"] == {
        "blocks_entries": False,
        "markets": [],
        "detail": None,
        "checked_at": None,
    }
    assert live.alerts.severities() == ["critical", "info"]
    assert "new entries allowed" in live.alerts.sent[-1][1]
    entry = await live.executor.execute_copy(copied(Side.BUY, 4.0, 0.50))
    assert entry.status is ExecutionStatus.EXECUTED


async def test_collateral_that_moved_at_the_exchange_is_a_mismatch(live: Live) -> None:
    await buy_ten(live)
    live.mirror_exchange()
    address = live.adapter.address.lower()
    live.clob.collateral[address] = live.clob.balance_of(address) - 50 * BASE_UNITS  # withdrawn behind our back

    result = await live.reconciler().reconcile()

    assert result is not None and result.cash_gap is not None and result.gaps == ()
    assert live.executor.reconcile_gate.blocks_entries
    assert live.executor.reconcile_gate.markets == ["collateral"]
    entry = await live.executor.execute_copy(copied(Side.BUY, 4.0, 0.50))
    assert entry.reason == "reconcile_mismatch" and entry.decisions[-1].figures["markets"] == "collateral"
    assert "collateral: ours 995.00, exchange 945.00 USDC" in result.describe()


async def test_positions_under_one_share_are_still_compared(live: Live) -> None:
    # the Data API leaves out positions under 1 share unless asked: a blind spot the reconciler closes
    live.executor.portfolio.apply_fill(TOKEN, TITLE, Side.BUY, 0.6, 0.5)
    live.executor.portfolio.cash = await live.adapter.get_balance()
    live.api.set_positions(live.adapter.address, position_record(live.adapter.address, asset=TOKEN, size=0.6))

    result = await live.reconciler().reconcile()

    assert result is not None and result.ok


async def test_every_page_of_positions_is_read(live: Live) -> None:
    tokens = [str(10**70 + n) for n in range(5)]
    live.api.set_positions(
        live.adapter.address, *(position_record(live.adapter.address, asset=t, size=2.0) for t in tokens)
    )
    source = DataApiPositions(live.api.base_url, page_limit=2)
    try:
        positions = await source.fetch(live.adapter.address)
    finally:
        await source.close()
    assert sorted(positions) == sorted(tokens)
    assert [r.params["offset"] for r in live.api.requests] == ["0", "2", "4"]


@pytest.mark.parametrize(
    ("answer", "problem"),
    [
        (ScriptedResponse(status=500, body={"error": "boom"}), "answered HTTP 500"),
        (ScriptedResponse(status=429, body={"error": "slow down"}), "answered HTTP 429"),
        (ScriptedResponse(body={"positions": []}), "expected a JSON list of positions, received a dict"),
        (ScriptedResponse(raw=b"<html>bad gateway</html>", content_type="text/html"), "received non-JSON"),
        (ScriptedResponse(body=[{"asset": TOKEN, "size": "ten"}]), "record 0: size: expected a finite number"),
    ],
)
async def test_an_unusable_answer_decides_nothing_and_is_retried_next_round(
    live: Live, answer: ScriptedResponse, problem: str, caplog: pytest.LogCaptureFixture
) -> None:
    await buy_ten(live)
    live.api.set_positions(live.adapter.address)
    reconciler = live.reconciler()
    await reconciler.reconcile()
    assert live.executor.reconcile_gate.blocks_entries
    live.mirror_exchange()
    live.api.script(answer)

    assert await reconciler.reconcile() is None

    assert reconciler.failures == 1
    assert live.executor.reconcile_gate.blocks_entries, "a failed look neither closes nor opens the gate"
    assert problem in caplog.text
    assert await reconciler.reconcile() is not None  # the next round reads again
    assert not live.executor.reconcile_gate.blocks_entries


async def test_a_large_answer_is_read_whole_and_an_oversized_one_is_refused(live: Live) -> None:
    tokens = [str(10**70 + n) for n in range(400)]  # ~200 kB of JSON: many reads of the socket
    live.api.set_positions(
        live.adapter.address, *(position_record(live.adapter.address, asset=t, size=2.0) for t in tokens)
    )
    whole = DataApiPositions(live.api.base_url)
    capped = DataApiPositions(live.api.base_url, max_body_bytes=10_000)
    try:
        assert len(await whole.fetch(live.adapter.address)) == 400
        with pytest.raises(ReconcileFetchError, match="body larger than 10000 bytes"):
            await capped.fetch(live.adapter.address)
    finally:
        await whole.close()
        await capped.close()


async def test_a_data_api_that_does_not_answer_is_a_fetch_error(live: Live) -> None:
    live.api.script(ScriptedResponse(body=[], delay=5.0))
    source = DataApiPositions(live.api.base_url, request_timeout=0.2)
    try:
        with pytest.raises(ReconcileFetchError, match=r"no answer within 0\.2s"):
            await source.fetch(live.adapter.address)
    finally:
        await source.close()


async def test_run_reconciles_every_interval_until_stopped(live: Live) -> None:
    live.mirror_exchange()
    three_looks = asyncio.Event()
    looks = 0

    def clock() -> datetime:  # called once per look
        nonlocal looks
        looks += 1
        if looks >= 3:
            three_looks.set()
        return NOW

    reconciler = live.reconciler(interval=0.01, clock=clock)
    stop = asyncio.Event()
    task = asyncio.create_task(reconciler.run(stop))
    await asyncio.wait_for(three_looks.wait(), 10)
    stop.set()
    await asyncio.wait_for(task, 5)
    assert reconciler.failures == 0 and reconciler.last_result is not None and reconciler.last_result.ok


def test_the_settings_have_sane_defaults() -> None:
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert settings.reconcile_interval_seconds == 60.0
    assert settings.reconcile_position_tolerance == 1.0
    assert settings.reconcile_cash_tolerance == 5.0
    assert settings.reconcile_confirm_seconds == 10.0


# --- main.py in live mode, against both fakes ----------------------------------------------------------


@pytest.mark.integration
@pytest.mark.timeout(120)
async def test_main_in_live_mode_reconciles_at_start_and_halts_entries_on_a_mismatch(tmp_path: Path) -> None:
    wallet: LocalAccount = Account.create()  # made up for this test only: never a real key
    empty_replay = tmp_path / "no_trades.jsonl"
    empty_replay.write_text("")
    async with FakeClob() as clob, FakeDataApi() as api:
        clob.add_market(FakeMarket(TOKEN, bids=[(0.48, 500.0)], asks=[(0.50, 500.0)]))
        # the exchange says we hold 7 shares the bot's books know nothing of
        api.set_positions(wallet.address, position_record(wallet.address, asset=TOKEN, size=7.0))
        env = {
            **bot_env(tmp_path),
            "TRADING_MODE": "live",
            "PRIVATE_KEY": wallet.key.hex(),
            "CLOB_HOST": clob.url,
            "DATA_API_URL": api.base_url,
            "REPLAY_FILE": str(empty_replay),
            "RECONCILE_INTERVAL_SECONDS": "0.5",
            "RECONCILE_CONFIRM_SECONDS": "0.1",
        }
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            str(ROOT / "main.py"),
            "--duration",
            "3",
            cwd=tmp_path,
            env=env,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        _, raw = await asyncio.wait_for(process.communicate(), 90)
    stderr = raw.decode(errors="replace")

    assert process.returncode == 0, stderr[-3000:]
    assert "RECONCILE MISMATCH: new entries halted (exits still pass)" in stderr
    assert f"{TITLE} [Yes] (token …{TOKEN[-8:]}): ours 0.0000, exchange 7.0000 shares" in stderr
    assert "CRITICAL" in stderr
    rounds = [r for r in api.requests if r.path == "/positions"]
    assert len(rounds) >= 3, "once at start, confirmed, then periodically"
    assert {r.params["user"] for r in rounds} == {wallet.address}
    assert "GET /balance-allowance" in clob.paths()
