"""The Polymarket CLOB V2 adapter, driven end to end through the real py-clob-client-v2 against a fake CLOB
(tests/fakes/fake_clob.py) on 127.0.0.1: real HTTP, real EIP-712 and HMAC signatures, a throwaway key."""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount

from config.settings import Settings
from core.clob.base import (
    ClobClient,
    ClobError,
    ClobNetworkError,
    ClobTimeoutError,
    OrderRejectedError,
    OrderRequest,
    OrderStatus,
    RateLimitedError,
    Side,
)
from core.clob.polymarket import (
    INSTALL_HINT,
    PolymarketClobClient,
    PolymarketExtraMissingError,
    limit_on_tick,
)
from core.clob.polymarket_responses import parse_order_book, to_clob_error
from tests.fakes.fake_clob import BASE_UNITS, UNMATCHED_FAK, FakeClob, FakeMarket, Fault

pytestmark = pytest.mark.integration

TOKEN = "71321045679252212594626385532706912750332728571942532289631379312455583992563"
UNKNOWN_TOKEN = "52114319501245915516055106046884209969926127482827954674443846427813813222426"


def market() -> FakeMarket:
    return FakeMarket(TOKEN, bids=[(0.48, 100.0), (0.47, 200.0)], asks=[(0.50, 50.0), (0.52, 100.0), (0.55, 300.0)])


def live_settings(fake: FakeClob, wallet: LocalAccount, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "trading_mode": "live",
        "private_key": wallet.key.hex(),
        "clob_host": fake.url,
        "clob_request_timeout_seconds": 5.0,
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[arg-type]


@pytest.fixture
def wallet() -> LocalAccount:
    """A key made up for this test only: never a real one."""
    return Account.create()


@pytest.fixture
async def fake() -> AsyncIterator[FakeClob]:
    async with FakeClob() as server:
        server.add_market(market())
        yield server


@pytest.fixture(autouse=True)
async def _close_every_adapter(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[None]:
    """Many tests build an adapter inline; each owns an HTTP client with pooled connections, so close them
    all after the test (as main.py closes its one adapter) instead of leaving them to the garbage collector."""
    built: list[PolymarketClobClient] = []
    original_init = PolymarketClobClient.__init__

    def recording_init(self: PolymarketClobClient, *args: Any, **kwargs: Any) -> None:
        original_init(self, *args, **kwargs)
        built.append(self)

    monkeypatch.setattr(PolymarketClobClient, "__init__", recording_init)
    yield
    for adapter in built:
        await adapter.close()


@pytest.fixture
async def client(fake: FakeClob, wallet: LocalAccount) -> AsyncIterator[PolymarketClobClient]:
    adapter = PolymarketClobClient(live_settings(fake, wallet))
    yield adapter
    await adapter.close()


def buy(size: float, limit: float, token: str = TOKEN) -> OrderRequest:
    return OrderRequest(token_id=token, side=Side.BUY, size=size, limit_price=limit)


def sell(size: float, limit: float, token: str = TOKEN) -> OrderRequest:
    return OrderRequest(token_id=token, side=Side.SELL, size=size, limit_price=limit)


def test_the_adapter_speaks_the_protocol(client: PolymarketClobClient) -> None:
    assert isinstance(client, ClobClient)


# --- happy paths ---------------------------------------------------------------------------------


async def test_book_is_fetched_and_sorted_best_first(client: PolymarketClobClient, fake: FakeClob) -> None:
    book = await client.get_order_book(TOKEN)

    assert book.token_id == TOKEN
    assert [(level.price, level.size) for level in book.bids] == [(0.48, 100.0), (0.47, 200.0)]
    assert [(level.price, level.size) for level in book.asks] == [(0.50, 50.0), (0.52, 100.0), (0.55, 300.0)]
    assert fake.paths() == ["GET /book"]


async def test_a_buy_is_signed_posted_fill_and_kill_and_acknowledged(
    client: PolymarketClobClient, fake: FakeClob, wallet: LocalAccount
) -> None:
    ack = await client.place_order(buy(100, 0.53))

    # What the exchange received: a FAK order for our token, side and size, signed by our wallet.
    [received] = fake.orders
    assert (received.token_id, received.side, received.size, received.order_type) == (TOKEN, "BUY", 100.0, "FAK")
    assert received.price == pytest.approx(0.53)
    assert received.signer == received.maker == wallet.address
    # What we made of the answer: 50 @ 0.50 + 50 @ 0.52.
    assert ack.status is OrderStatus.FILLED
    assert ack.filled_size == pytest.approx(100)
    assert ack.avg_price == pytest.approx(0.51)
    assert ack.order_id == received.order_id
    # No credentials configured: derived once through L1 auth; the trade id was resolved by polling.
    assert "POST /auth/api-key" in fake.paths()
    assert "GET /data/trades" in fake.paths()
    assert ack.raw["transactionsHashes"]


async def test_credentials_are_derived_only_once(client: PolymarketClobClient, fake: FakeClob) -> None:
    await client.place_order(buy(10, 0.50))
    await client.get_balance()
    assert fake.paths().count("POST /auth/api-key") == 1
    assert "GET /auth/derive-api-key" not in fake.paths()


async def test_existing_credentials_are_derived_when_creation_is_refused(fake: FakeClob, wallet: LocalAccount) -> None:
    fake.register_credentials(wallet.address)  # the key exists already: create fails, derive answers
    adapter = PolymarketClobClient(live_settings(fake, wallet))
    assert await adapter.get_balance() == 1000.0
    assert fake.paths() == ["POST /auth/api-key", "GET /auth/derive-api-key", "GET /balance-allowance"]


async def test_configured_credentials_are_used_without_deriving(fake: FakeClob, wallet: LocalAccount) -> None:
    creds = fake.register_credentials(wallet.address)
    adapter = PolymarketClobClient(
        live_settings(
            fake,
            wallet,
            clob_api_key=creds.api_key,
            clob_api_secret=creds.secret,
            clob_api_passphrase=creds.passphrase,
        )
    )
    ack = await adapter.place_order(buy(10, 0.50))
    assert ack.status is OrderStatus.FILLED
    assert not [path for path in fake.paths() if path.startswith(("POST /auth", "GET /auth"))]


async def test_a_partial_fill_reports_what_matched(client: PolymarketClobClient) -> None:
    ack = await client.place_order(buy(500, 0.52))
    assert ack.status is OrderStatus.PARTIAL
    assert ack.filled_size == pytest.approx(150)
    assert ack.avg_price == pytest.approx((50 * 0.50 + 100 * 0.52) / 150)


@pytest.mark.parametrize("style", ["error", "status"])
async def test_an_order_that_matches_nothing_is_unfilled_not_an_error(
    fake: FakeClob, wallet: LocalAccount, style: str
) -> None:
    fake.unmatched_style = style  # type: ignore[assignment]
    adapter = PolymarketClobClient(live_settings(fake, wallet))
    ack = await adapter.place_order(buy(10, 0.45))
    assert (ack.status, ack.filled_size, ack.avg_price) == (OrderStatus.UNFILLED, 0.0, 0.0)
    if style == "error":
        assert UNMATCHED_FAK in str(ack.raw["errorMsg"])


async def test_hashes_given_inline_need_no_polling(fake: FakeClob, wallet: LocalAccount) -> None:
    fake.trade_resolution = "inline"
    adapter = PolymarketClobClient(live_settings(fake, wallet))
    ack = await adapter.place_order(buy(10, 0.50))
    assert ack.status is OrderStatus.FILLED
    assert "GET /data/trades" not in fake.paths()


async def test_a_sell_walks_the_bids(client: PolymarketClobClient, fake: FakeClob, wallet: LocalAccount) -> None:
    fake.shares[(wallet.address.lower(), TOKEN)] = 200 * BASE_UNITS
    ack = await client.place_order(sell(150, 0.47))

    assert fake.orders[0].side == "SELL" and fake.orders[0].size == 150.0
    assert ack.status is OrderStatus.FILLED
    assert ack.avg_price == pytest.approx((100 * 0.48 + 50 * 0.47) / 150)


async def test_limits_off_the_tick_are_rounded_never_worse(
    client: PolymarketClobClient, fake: FakeClob, wallet: LocalAccount
) -> None:
    fake.shares[(wallet.address.lower(), TOKEN)] = 10 * BASE_UNITS
    await client.place_order(buy(5, 0.5399))
    await client.place_order(sell(5, 0.4701))
    assert [order.price for order in fake.orders] == [pytest.approx(0.53), pytest.approx(0.48)]


@pytest.mark.parametrize(
    ("side", "limit", "tick", "expected"),
    [
        (Side.BUY, 0.57, "0.01", 0.57),
        (Side.BUY, 0.579, "0.01", 0.57),
        (Side.SELL, 0.571, "0.01", 0.58),
        (Side.SELL, 0.57, "0.01", 0.57),
        (Side.BUY, 0.5555, "0.001", 0.555),
        (Side.SELL, 0.15, "0.1", 0.2),
    ],
)
def test_limit_on_tick(side: Side, limit: float, tick: str, expected: float) -> None:
    assert limit_on_tick(side, limit, tick) == expected


async def test_balance_is_read_in_usdc(client: PolymarketClobClient, fake: FakeClob) -> None:
    assert await client.get_balance() == 1000.0
    await client.place_order(buy(100, 0.53))
    assert await client.get_balance() == pytest.approx(949.0)


async def test_cancel_reports_what_the_exchange_cancelled(client: PolymarketClobClient, fake: FakeClob) -> None:
    fake.resting.add("0xresting")
    assert await client.cancel_order("0xresting") is True
    assert await client.cancel_order("0xresting") is False  # gone already
    ack = await client.place_order(buy(10, 0.50))
    assert await client.cancel_order(ack.order_id) is False  # FAK orders never rest
    assert fake.cancel_requests == ["0xresting", "0xresting", ack.order_id]


async def test_the_event_loop_keeps_running_while_the_library_waits(
    client: PolymarketClobClient, fake: FakeClob
) -> None:
    fake.fail_next("GET", "/book", Fault.delay(0.5))
    ticks = 0
    order_book = asyncio.create_task(client.get_order_book(TOKEN))
    while not order_book.done():
        ticks += 1
        await asyncio.sleep(0.01)
    await order_book
    assert ticks >= 5  # a blocking call would have frozen this loop for the whole request


# --- errors: what the CLOB answers → what the executor is told ----------------------------------


@pytest.mark.parametrize(
    ("fault", "expected", "message"),
    [
        (Fault.answer(429, {"error": "Too Many Requests"}), RateLimitedError, "rate limited"),
        (Fault.answer(400, {"error": "invalid order payload"}), OrderRejectedError, "invalid order payload"),
        (Fault.answer(404, {"error": "market not found"}), OrderRejectedError, "404"),
        (Fault.answer(500, {"error": "internal"}), ClobNetworkError, "server error \\(500\\)"),
        (Fault.answer(503, {"error": "Trading is currently disabled"}), ClobNetworkError, "503"),
        (Fault.answer(504, "gateway timeout"), ClobTimeoutError, "504"),
        (Fault.answer(401, {"error": "Unauthorized/Invalid api key"}), OrderRejectedError, "CLOB_API_"),
        (Fault.drop(), ClobNetworkError, "could not reach the CLOB"),
    ],
)
async def test_order_failures_map_to_our_errors(
    client: PolymarketClobClient, fake: FakeClob, fault: Fault, expected: type[ClobError], message: str
) -> None:
    fake.fail_next("POST", "/order", fault)
    with pytest.raises(expected, match=message):
        await client.place_order(buy(10, 0.50))
    assert fake.orders == []  # nothing was matched
    # The failure is not sticky: the next order goes through.
    assert (await client.place_order(buy(10, 0.50))).status is OrderStatus.FILLED


async def test_a_request_slower_than_the_timeout_is_a_timeout(fake: FakeClob, wallet: LocalAccount) -> None:
    adapter = PolymarketClobClient(live_settings(fake, wallet), timeout_seconds=0.3)
    fake.fail_next("GET", "/book", Fault.delay(3.0))
    with pytest.raises(ClobTimeoutError, match="timed out"):
        await adapter.get_order_book(TOKEN)


@pytest.mark.parametrize(
    ("method", "path", "call"),
    [
        ("GET", "/book", "book"),
        ("GET", "/balance-allowance", "balance"),
        ("DELETE", "/order", "cancel"),
    ],
)
async def test_every_call_maps_rate_limits_and_dropped_connections(
    client: PolymarketClobClient, fake: FakeClob, method: str, path: str, call: str
) -> None:
    async def invoke() -> object:
        if call == "book":
            return await client.get_order_book(TOKEN)
        if call == "balance":
            return await client.get_balance()
        return await client.cancel_order("0xabc")

    await client.get_balance()  # credentials first, so the faults hit the call under test
    fake.fail_next(method, path, Fault.answer(429, {"error": "Too Many Requests"}), Fault.drop())
    with pytest.raises(RateLimitedError):
        await invoke()
    with pytest.raises(ClobNetworkError):
        await invoke()
    await invoke()


async def test_an_unreachable_host_is_a_network_error(wallet: LocalAccount) -> None:
    closed = FakeClob()
    await closed.start()
    await closed.close()  # the port is now refused
    adapter = PolymarketClobClient(live_settings(closed, wallet))
    with pytest.raises(ClobNetworkError, match="ConnectError"):
        await adapter.get_order_book(TOKEN)


async def test_an_unknown_token_is_rejected(client: PolymarketClobClient) -> None:
    with pytest.raises(OrderRejectedError, match="No orderbook exists"):
        await client.get_order_book(UNKNOWN_TOKEN)


async def test_insufficient_funds_are_a_rejection(fake: FakeClob, wallet: LocalAccount) -> None:
    fake.starting_collateral = 1.0
    adapter = PolymarketClobClient(live_settings(fake, wallet))
    with pytest.raises(OrderRejectedError, match="not enough balance"):
        await adapter.place_order(buy(100, 0.53))


async def test_wrong_configured_credentials_are_refused_by_the_fake(fake: FakeClob, wallet: LocalAccount) -> None:
    creds = fake.register_credentials(wallet.address)
    adapter = PolymarketClobClient(
        live_settings(
            fake,
            wallet,
            clob_api_key=creds.api_key,
            clob_api_secret="d3Jvbmctc2VjcmV0LXdyb25nLXNlY3JldC13cm9uZyE=",
            clob_api_passphrase=creds.passphrase,
        )
    )
    with pytest.raises(OrderRejectedError, match="refused our credentials \\(401\\)"):
        await adapter.get_balance()


# --- malformed inputs and answers ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("order", "error", "message"),
    [
        (buy(0, 0.5), ValueError, "size"),
        (buy(10, 1.2), ValueError, "limit_price"),
        (OrderRequest(TOKEN, "HOLD", 10, 0.5), ValueError, "side"),  # type: ignore[arg-type]
        (buy(10, 0.5, token="not-a-number"), ValueError, "decimal integer token id"),
        (buy(0.004, 0.5), OrderRejectedError, "rounds down to 0"),
    ],
)
async def test_malformed_orders_are_refused_before_any_request(
    client: PolymarketClobClient, fake: FakeClob, order: OrderRequest, error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        await client.place_order(order)
    assert fake.requests == []


async def test_a_price_outside_the_tick_range_is_rejected(client: PolymarketClobClient, fake: FakeClob) -> None:
    with pytest.raises(OrderRejectedError, match="tick"):
        await client.place_order(sell(5, 0.995))  # rounds up to 1.00
    assert fake.orders == []


@pytest.mark.parametrize(
    "body",
    [
        {"asset_id": TOKEN, "bids": [{"price": "abc", "size": "1"}], "asks": []},
        {"asset_id": TOKEN, "bids": "none", "asks": []},
        {"asset_id": TOKEN, "bids": [{"price": "0.4"}], "asks": []},
        {"asset_id": UNKNOWN_TOKEN, "bids": [], "asks": []},
        "not json at all",
    ],
)
async def test_a_malformed_book_answer_is_a_clear_error(
    client: PolymarketClobClient, fake: FakeClob, body: object
) -> None:
    fake.fail_next("GET", "/book", Fault.answer(200, body))
    with pytest.raises(ClobError, match="unexpected CLOB response"):
        await client.get_order_book(TOKEN)


@pytest.mark.parametrize(
    ("path", "method", "body", "call"),
    [
        ("/balance-allowance", "GET", {"allowances": {}}, "balance"),
        ("/balance-allowance", "GET", {"balance": "-5"}, "balance"),
        ("/order", "DELETE", ["0xabc"], "cancel"),
    ],
)
async def test_malformed_account_answers_are_clear_errors(
    client: PolymarketClobClient, fake: FakeClob, path: str, method: str, body: object, call: str
) -> None:
    await client.get_balance()
    fake.fail_next(method, path, Fault.answer(200, body))
    with pytest.raises(ClobError, match="unexpected CLOB response"):
        await (client.get_balance() if call == "balance" else client.cancel_order("0xabc"))


async def test_a_malformed_order_answer_is_a_clear_error(client: PolymarketClobClient, fake: FakeClob) -> None:
    fake.fail_next("POST", "/order", Fault.answer(200, {"success": True, "status": "matched", "takingAmount": "x"}))
    with pytest.raises(ClobError, match="takingAmount"):
        await client.place_order(buy(10, 0.50))


async def test_a_refusal_inside_a_200_answer_is_a_rejection(client: PolymarketClobClient, fake: FakeClob) -> None:
    fake.fail_next("POST", "/order", Fault.answer(200, {"success": False, "errorMsg": "market closed"}))
    with pytest.raises(OrderRejectedError, match="market closed"):
        await client.place_order(buy(10, 0.50))


def test_book_parsing_accepts_an_empty_side() -> None:
    book = parse_order_book(TOKEN, {"asset_id": TOKEN, "bids": [], "asks": [{"price": "0.6", "size": "3"}]})
    assert book.bids == () and book.best_ask() == 0.6


def test_library_errors_outside_http_map_by_type() -> None:
    from py_clob_client_v2.exceptions import PolyException

    assert isinstance(to_clob_error(PolyException("invalid tick size")), OrderRejectedError)
    assert isinstance(to_clob_error(httpx.ReadTimeout("slow")), ClobTimeoutError)
    assert isinstance(to_clob_error(httpx.ConnectError("refused")), ClobNetworkError)
    assert type(to_clob_error(KeyError("minimum_tick_size"))) is ClobError


# --- configuration ----------------------------------------------------------------------------


def test_a_missing_library_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch, fake: FakeClob, wallet: LocalAccount
) -> None:
    # The extra is installed in this environment; hiding the module is the only way to test its absence.
    monkeypatch.setitem(sys.modules, "py_clob_client_v2", None)
    with pytest.raises(PolymarketExtraMissingError, match=INSTALL_HINT.replace("[", r"\[").replace("]", r"\]")):
        PolymarketClobClient(live_settings(fake, wallet))


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"clob_chain_id": 1}, "CLOB_CHAIN_ID: expected 137"),
        ({"clob_funder_address": "0x1234"}, "CLOB_FUNDER_ADDRESS"),
        ({"clob_api_key": "only-the-key"}, "all three or none"),
    ],
)
def test_bad_live_settings_are_refused(
    fake: FakeClob, wallet: LocalAccount, overrides: dict[str, object], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        PolymarketClobClient(live_settings(fake, wallet, **overrides))


@pytest.mark.parametrize("bad_key", ["0x" + "zz" * 32, "0x1234", "ab" * 40])
def test_a_bad_private_key_is_refused_without_being_shown(fake: FakeClob, wallet: LocalAccount, bad_key: str) -> None:
    with pytest.raises(ValueError, match="PRIVATE_KEY") as caught:
        PolymarketClobClient(live_settings(fake, wallet, private_key=bad_key))
    assert bad_key not in str(caught.value)
    assert caught.value.__cause__ is None and caught.value.__suppress_context__


async def test_secrets_never_reach_the_logs(
    fake: FakeClob, wallet: LocalAccount, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    creds = fake.register_credentials(wallet.address)
    adapter = PolymarketClobClient(
        live_settings(
            fake,
            wallet,
            clob_api_key=creds.api_key,
            clob_api_secret=creds.secret,
            clob_api_passphrase=creds.passphrase,
        )
    )
    await adapter.place_order(buy(10, 0.50))
    await adapter.get_balance()
    fake.fail_next("POST", "/order", Fault.answer(400, {"error": "invalid order payload"}))
    with pytest.raises(OrderRejectedError) as rejected:
        await adapter.place_order(buy(10, 0.50))

    key_hex = wallet.key.hex().removeprefix("0x")
    visible = caplog.text + repr(adapter) + str(rejected.value)
    for secret in (key_hex, creds.secret, creds.passphrase, creds.api_key):
        assert secret not in visible
    assert wallet.address not in visible.replace(fake.url, "")  # the wallet appears masked only
    assert wallet.address[-6:] in caplog.text


def test_building_the_adapter_keeps_the_interpreters_recursion_limit() -> None:
    """py_ecc raises the limit to 100,000 at import; the adapter undoes it so that deeply nested JSON
    raises RecursionError instead of overflowing the C stack (a segfault of the bot)."""
    import subprocess
    import sys
    from pathlib import Path

    code = (
        "import sys\n"
        "from config.settings import Settings\n"
        "from core.clob.polymarket import PolymarketClobClient\n"
        "before = sys.getrecursionlimit()\n"
        "PolymarketClobClient(Settings(_env_file=None, trading_mode='live', private_key='0x' + '11' * 32),"
        " host='http://127.0.0.1:9')\n"
        "import json\n"
        "try:\n"
        "    json.loads('[' * 200000)\n"
        "except RecursionError:\n"
        "    print('recursion-error', before, sys.getrecursionlimit())\n"
    )
    root = Path(__file__).resolve().parent.parent
    done = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["recursion-error", "1000", "1000"]


async def test_the_wallet_reconciled_is_the_funder_when_set_else_the_keys_address(
    fake: FakeClob, wallet: LocalAccount
) -> None:
    """README (reconciliation): the exchange is asked about CLOB_FUNDER_ADDRESS, else the PRIVATE_KEY's
    address; main.py hands the adapter's `address` to the reconciler (tested in tests/test_reconcile.py)."""
    proxy: LocalAccount = Account.create()  # a made-up proxy wallet that holds the funds
    funded = PolymarketClobClient(live_settings(fake, wallet, clob_funder_address=proxy.address, clob_signature_type=2))
    assert funded.address == proxy.address != wallet.address
    own = PolymarketClobClient(live_settings(fake, wallet))
    assert own.address == wallet.address
