"""The paper CLOB: fills walk the book, the exchange's balance rules, determinism, latency, injected errors."""

from __future__ import annotations

import asyncio
import math
import random
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from config.settings import Settings
from core.clob.base import (
    BookLevel,
    ClobClient,
    ClobError,
    ClobNetworkError,
    ClobTimeoutError,
    OrderBook,
    OrderRejectedError,
    OrderRequest,
    OrderStatus,
    RateLimitedError,
    Side,
)
from core.clob.matching import walk_book
from core.clob.paper import ERROR_KINDS, PaperClobClient, injected_error

TOKEN = "token-yes"


def paper_settings(**overrides: object) -> Settings:
    return Settings(_env_file=None, **overrides)  # type: ignore[arg-type]


def book(
    bids: list[tuple[float, float]] | None = None, asks: list[tuple[float, float]] | None = None, token: str = TOKEN
) -> OrderBook:
    """A book from (price, size) pairs, e.g. asks 0.50×10, 0.52×20, 0.55×30."""
    bids = [(0.48, 10.0), (0.46, 20.0), (0.44, 30.0)] if bids is None else bids
    asks = [(0.50, 10.0), (0.52, 20.0), (0.55, 30.0)] if asks is None else asks
    return OrderBook(
        token_id=token,
        bids=tuple(BookLevel(p, s) for p, s in bids),
        asks=tuple(BookLevel(p, s) for p, s in asks),
    )


def buy(size: float, limit: float, token: str = TOKEN) -> OrderRequest:
    return OrderRequest(token_id=token, side=Side.BUY, size=size, limit_price=limit)


def sell(size: float, limit: float, token: str = TOKEN) -> OrderRequest:
    return OrderRequest(token_id=token, side=Side.SELL, size=size, limit_price=limit)


class RecordingSleep:
    """Stands in for asyncio.sleep: records the delays asked for (the paper client's latency)."""

    def __init__(self) -> None:
        self.calls: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)


@pytest.fixture
def client() -> PaperClobClient:
    paper = PaperClobClient(paper_settings(), seed=7, starting_balance=100.0)
    paper.set_book(book())
    return paper


def test_paper_client_speaks_the_protocol(client: PaperClobClient) -> None:
    assert isinstance(client, ClobClient)


# --- fills walk the book ---------------------------------------------------------------------


async def test_buy_walks_the_asks_level_by_level_up_to_the_limit(client: PaperClobClient) -> None:
    ack = await client.place_order(buy(25, 0.53))

    assert ack.status is OrderStatus.FILLED
    assert ack.filled_size == pytest.approx(25)
    # 10 @ 0.50 + 15 @ 0.52 = 12.8 USDC: slippage above the best ask is real
    assert ack.notional == pytest.approx(12.8)
    assert ack.avg_price == pytest.approx(0.512)
    assert client.balance == pytest.approx(100 - 12.8)
    assert client.positions() == {TOKEN: pytest.approx(25)}
    after = await client.get_order_book(TOKEN)
    assert after.asks == (BookLevel(0.52, 5.0), BookLevel(0.55, 30.0))  # liquidity consumed


async def test_the_rest_of_the_order_is_killed_at_the_limit(client: PaperClobClient) -> None:
    ack = await client.place_order(buy(50, 0.52))

    assert ack.status is OrderStatus.PARTIAL
    assert ack.filled_size == pytest.approx(30)
    assert ack.avg_price == pytest.approx((10 * 0.50 + 20 * 0.52) / 30)
    assert (await client.get_order_book(TOKEN)).asks == (BookLevel(0.55, 30.0),)  # nothing of ours rests


async def test_an_order_below_the_best_ask_fills_nothing_and_costs_nothing(client: PaperClobClient) -> None:
    ack = await client.place_order(buy(5, 0.49))

    assert (ack.status, ack.filled_size, ack.avg_price) == (OrderStatus.UNFILLED, 0.0, 0.0)
    assert client.balance == 100.0
    assert client.positions() == {}


async def test_sell_walks_the_bids_and_credits_the_balance(client: PaperClobClient) -> None:
    await client.place_order(buy(20, 0.52))
    cash_after_buy = client.balance

    ack = await client.place_order(sell(15, 0.45))

    assert ack.status is OrderStatus.FILLED
    assert ack.avg_price == pytest.approx((10 * 0.48 + 5 * 0.46) / 15)
    assert client.balance == pytest.approx(cash_after_buy + ack.notional)
    assert client.positions() == {TOKEN: pytest.approx(5)}


async def test_selling_the_whole_position_removes_it(client: PaperClobClient) -> None:
    await client.place_order(buy(5, 0.50))
    await client.place_order(sell(5, 0.40))
    assert client.positions() == {}


async def test_each_order_gets_its_own_id_and_echoes_the_client_order_id(client: PaperClobClient) -> None:
    first = await client.place_order(OrderRequest(TOKEN, Side.BUY, 1, 0.5, client_order_id="copy-1"))
    second = await client.place_order(buy(1, 0.5))
    assert first.order_id != second.order_id
    assert first.raw["client_order_id"] == "copy-1"


# --- the exchange's rules --------------------------------------------------------------------


async def test_a_buy_the_balance_cannot_cover_is_rejected_and_changes_nothing(client: PaperClobClient) -> None:
    before = await client.get_order_book(TOKEN)

    with pytest.raises(OrderRejectedError, match=r"needs 106\.000000 USDC.*balance is 100\.000000"):
        await client.place_order(buy(200, 0.53))

    assert client.balance == 100.0
    assert client.positions() == {}
    assert await client.get_order_book(TOKEN) == before


async def test_selling_more_than_held_is_rejected(client: PaperClobClient) -> None:
    await client.place_order(buy(5, 0.50))
    with pytest.raises(OrderRejectedError, match="holds 5"):
        await client.place_order(sell(6, 0.40))
    assert client.positions() == {TOKEN: pytest.approx(5)}


async def test_selling_without_a_position_is_rejected(client: PaperClobClient) -> None:
    with pytest.raises(OrderRejectedError, match="holds 0"):
        await client.place_order(sell(1, 0.40))


async def test_cancel_answers_false_because_fill_and_kill_orders_never_rest(client: PaperClobClient) -> None:
    ack = await client.place_order(buy(1, 0.5))
    assert await client.cancel_order(ack.order_id) is False
    assert await client.cancel_order("unknown") is False


async def test_balance_starts_from_the_setting() -> None:
    paper = PaperClobClient(paper_settings(paper_starting_balance=250.0))
    assert await paper.get_balance() == 250.0


async def test_a_closed_client_refuses_calls(client: PaperClobClient) -> None:
    await client.close()
    await client.close()  # idempotent
    with pytest.raises(ClobError, match="closed"):
        await client.get_order_book(TOKEN)


# --- malformed inputs: a clear ValueError, nothing changed ------------------------------------


@pytest.mark.parametrize(
    ("order", "message"),
    [
        (OrderRequest(TOKEN, Side.BUY, 0, 0.5), "size: expected a finite number of shares > 0, received 0"),
        (OrderRequest(TOKEN, Side.BUY, -3, 0.5), "size"),
        (OrderRequest(TOKEN, Side.BUY, math.nan, 0.5), "size"),
        (OrderRequest(TOKEN, Side.BUY, math.inf, 0.5), "size"),
        (OrderRequest(TOKEN, Side.BUY, True, 0.5), "size"),  # type: ignore[arg-type]
        (OrderRequest(TOKEN, Side.BUY, "5", 0.5), "size"),  # type: ignore[arg-type]
        (OrderRequest(TOKEN, Side.BUY, 5, 0.0), "limit_price: expected a price strictly between 0 and 1"),
        (OrderRequest(TOKEN, Side.BUY, 5, 1.0), "limit_price"),
        (OrderRequest(TOKEN, Side.BUY, 5, 1.5), "limit_price"),
        (OrderRequest(TOKEN, Side.BUY, 5, -0.1), "limit_price"),
        (OrderRequest(TOKEN, Side.BUY, 5, math.nan), "limit_price"),
        (OrderRequest(TOKEN, "HOLD", 5, 0.5), "side: expected BUY or SELL, received 'HOLD'"),  # type: ignore[arg-type]
        (OrderRequest(TOKEN, None, 5, 0.5), "side"),  # type: ignore[arg-type]
        (OrderRequest("", Side.BUY, 5, 0.5), "token_id: expected a non-empty string"),
    ],
)
async def test_malformed_orders_raise_a_clear_value_error(
    client: PaperClobClient, order: OrderRequest, message: str
) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        await client.place_order(order)
    assert client.balance == 100.0
    assert client.positions() == {}


async def test_side_given_as_a_string_is_accepted(client: PaperClobClient) -> None:
    ack = await client.place_order(OrderRequest(TOKEN, "buy", 1, 0.5))  # type: ignore[arg-type]
    assert ack.status is OrderStatus.FILLED


@pytest.mark.parametrize(
    "bad_book",
    [
        book(bids=[(0.5, 10)], asks=[(0.5, 10)]),  # crossed
        book(bids=[(0.0, 10)]),
        book(asks=[(1.0, 10)]),
        book(asks=[(0.6, 0)]),
        book(asks=[(0.6, math.nan)]),
        book(token=""),
    ],
)
def test_malformed_books_are_refused(client: PaperClobClient, bad_book: OrderBook) -> None:
    with pytest.raises(ValueError, match="book"):
        client.set_book(bad_book)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"latency_ms": -1}, "latency_ms"),
        ({"error_rate": 1.5}, "error_rate"),
        ({"error_kinds": ["meteor"]}, "unknown: \\['meteor'\\]"),
        ({"error_rate": 0.1, "error_kinds": []}, "at least one kind"),
        ({"starting_balance": -5}, "starting_balance"),
        ({"books": {"other": book()}}, "must equal the book's token_id"),
    ],
)
def test_bad_constructor_arguments_are_refused(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        PaperClobClient(paper_settings(), **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize("bad", ["", None, 7])
async def test_bad_token_and_order_ids_are_refused(client: PaperClobClient, bad: object) -> None:
    with pytest.raises(ValueError, match="token_id"):
        await client.get_order_book(bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="order_id"):
        await client.cancel_order(bad)  # type: ignore[arg-type]


@pytest.mark.parametrize("mid", [0.0, 1.0, -0.2, math.nan])
def test_seed_book_refuses_a_mid_outside_the_price_range(client: PaperClobClient, mid: float) -> None:
    with pytest.raises(ValueError, match="mid_price"):
        client.seed_book(TOKEN, mid)


# --- simulated books: plausible, seeded, moving ------------------------------------------------


def assert_plausible(snapshot: OrderBook) -> None:
    assert len(snapshot.bids) >= 1 and len(snapshot.asks) >= 1
    assert snapshot.best_bid() < snapshot.best_ask()  # type: ignore[operator]
    prices = [level.price for level in snapshot.bids + snapshot.asks]
    assert all(0 < price < 1 for price in prices)
    assert all(abs(price * 100 - round(price * 100)) < 1e-9 for price in prices)  # on the 0.01 tick
    assert [level.price for level in snapshot.bids] == sorted((level.price for level in snapshot.bids), reverse=True)
    assert [level.price for level in snapshot.asks] == sorted(level.price for level in snapshot.asks)


@pytest.mark.parametrize("token", [f"token-{i}" for i in range(20)])
async def test_a_new_token_gets_a_plausible_book_with_several_levels(token: str) -> None:
    snapshot = await PaperClobClient(paper_settings(), seed=3).get_order_book(token)
    assert_plausible(snapshot)
    assert len(snapshot.bids) >= 5 and len(snapshot.asks) >= 5


async def test_books_are_the_same_for_the_same_seed_and_differ_across_seeds() -> None:
    first = await PaperClobClient(paper_settings(), seed=11).get_order_book("t")
    again = await PaperClobClient(paper_settings(), seed=11).get_order_book("t")
    other = await PaperClobClient(paper_settings(), seed=12).get_order_book("t")
    assert first == again
    assert first != other


async def test_a_whole_session_replays_identically_for_the_same_seed() -> None:
    async def session(seed: int) -> list[object]:
        paper = PaperClobClient(paper_settings(), seed=seed, error_rate=0.2, starting_balance=10_000)
        outcomes: list[object] = []
        for i in range(60):
            snapshot = await paper.get_order_book(f"t{i % 3}")
            try:
                ack = await paper.place_order(buy(7, snapshot.best_ask() + 0.02, token=f"t{i % 3}"))  # type: ignore[operator]
                outcomes.append((ack.status, round(ack.filled_size, 9), round(ack.avg_price, 9)))
            except ClobError as e:
                outcomes.append(type(e).__name__)
        outcomes.append(round(paper.balance, 9))
        return outcomes

    assert await session(5) == await session(5)
    assert await session(5) != await session(6)


async def test_simulated_books_drift_but_stay_plausible() -> None:
    paper = PaperClobClient(paper_settings(), seed=1)
    mids = set()
    for _ in range(200):
        snapshot = await paper.get_order_book("moving")
        assert_plausible(snapshot)
        mids.add(snapshot.mid())
    assert len(mids) > 1  # the market moved


async def test_pinned_books_do_not_drift(client: PaperClobClient) -> None:
    snapshots = {await client.get_order_book(TOKEN) for _ in range(20)}
    assert snapshots == {book()}


async def test_consumed_liquidity_of_a_simulated_book_comes_back() -> None:
    paper = PaperClobClient(paper_settings(), seed=9, starting_balance=10_000)
    start = await paper.get_order_book("refill")
    best = start.asks[0]
    await paper.place_order(buy(best.size, best.price, token="refill"))
    depth_after_fill = sum(level.size for level in (await paper.get_order_book("refill")).asks)
    for _ in range(30):
        snapshot = await paper.get_order_book("refill")
    assert sum(level.size for level in snapshot.asks) > depth_after_fill


async def test_seed_book_centres_the_book_on_the_copied_price() -> None:
    paper = PaperClobClient(paper_settings(), seed=4)
    seeded = paper.seed_book("copied", 0.37)
    assert_plausible(seeded)
    assert seeded.mid() == pytest.approx(0.37, abs=0.011)
    assert await paper.get_order_book("copied") != await PaperClobClient(paper_settings(), seed=4).get_order_book(
        "copied"
    )  # the seeded book replaced the generated one


@pytest.mark.parametrize("mid", [0.001, 0.01, 0.99, 0.999])
def test_seeded_books_near_the_edges_keep_prices_inside_the_range(mid: float) -> None:
    assert_plausible(PaperClobClient(paper_settings()).seed_book("edge", mid))


# --- latency ------------------------------------------------------------------------------------


async def test_zero_latency_never_awaits_a_sleep(client: PaperClobClient) -> None:
    sleep = RecordingSleep()
    paper = PaperClobClient(paper_settings(), latency_ms=0, sleep=sleep, books={TOKEN: book()})

    await paper.get_order_book(TOKEN)
    await paper.place_order(buy(1, 0.5))
    await paper.cancel_order("x")
    await paper.get_balance()

    assert sleep.calls == []


async def test_latency_is_awaited_once_per_call() -> None:
    sleep = RecordingSleep()
    paper = PaperClobClient(paper_settings(paper_latency_ms=25), sleep=sleep, books={TOKEN: book()})

    await paper.get_order_book(TOKEN)
    await paper.place_order(buy(1, 0.5))
    await paper.cancel_order("x")
    await paper.get_balance()

    assert sleep.calls == [0.025] * 4


# --- injected errors ----------------------------------------------------------------------------

EXPECTED_TYPES = {
    "rate_limit": RateLimitedError,
    "timeout": ClobTimeoutError,
    "rejected": OrderRejectedError,
    "network": ClobNetworkError,
}


async def count_failures(paper: PaperClobClient, orders: int) -> Counter[str]:
    failures: Counter[str] = Counter()
    for _ in range(orders):
        try:
            await paper.place_order(buy(0.01, 0.01))
        except ClobError as e:
            failures[e.kind] += 1
            assert isinstance(e, EXPECTED_TYPES[e.kind])
    return failures


@pytest.mark.parametrize("kind", ERROR_KINDS)
async def test_each_error_kind_is_injected_at_the_configured_rate(kind: str) -> None:
    orders, rate = 2000, 0.3
    paper = PaperClobClient(paper_settings(), seed=21, error_rate=rate, error_kinds=[kind], books={TOKEN: book()})

    failures = await count_failures(paper, orders)

    # Binomial(2000, 0.3): standard deviation ≈ 20.5; 4 standard deviations of tolerance.
    assert set(failures) == {kind}
    assert abs(failures[kind] - orders * rate) <= 82


async def test_mixed_kinds_share_the_rate_evenly() -> None:
    orders, rate = 4000, 0.2
    paper = PaperClobClient(
        paper_settings(paper_error_rate=rate), seed=8, books={TOKEN: book()}, starting_balance=1_000_000
    )

    failures = await count_failures(paper, orders)

    assert abs(sum(failures.values()) - orders * rate) <= 4 * math.sqrt(orders * rate * (1 - rate))
    per_kind = orders * rate / 4  # each of the four default kinds
    for kind in ERROR_KINDS:
        assert abs(failures[kind] - per_kind) <= 4 * math.sqrt(orders * 0.05 * 0.95)


async def test_an_injected_failure_changes_nothing() -> None:
    paper = PaperClobClient(paper_settings(), error_rate=1.0, error_kinds=["timeout"], books={TOKEN: book()})
    with pytest.raises(ClobTimeoutError, match="injected"):
        await paper.place_order(buy(5, 0.6))
    assert paper.balance == 1000.0
    assert paper.positions() == {}
    assert await paper.get_order_book(TOKEN) == book()


async def test_zero_error_rate_never_fails_and_injected_rate_limits_carry_a_retry_after() -> None:
    assert await count_failures(PaperClobClient(paper_settings(), books={TOKEN: book()}), 500) == Counter()
    error = injected_error("rate_limit", random.Random(1))
    assert isinstance(error, RateLimitedError)
    assert error.retry_after is not None and 0.5 <= error.retry_after <= 2.0
    with pytest.raises(ValueError, match="error kind"):
        injected_error("meteor", random.Random(1))


async def test_an_injected_rng_drives_the_error_draws() -> None:
    class AlwaysFail(random.Random):
        def random(self) -> float:
            return 0.0

    paper = PaperClobClient(
        paper_settings(), error_rate=0.01, error_kinds=["network"], rng=AlwaysFail(), books={TOKEN: book()}
    )
    with pytest.raises(ClobNetworkError):
        await paper.place_order(buy(1, 0.5))


# --- properties of the book walk ---------------------------------------------------------------

prices = st.integers(min_value=1, max_value=99).map(lambda tick: round(tick / 100, 2))
sizes = st.floats(min_value=0.01, max_value=1_000, allow_nan=False, allow_infinity=False)
levels = st.lists(st.builds(BookLevel, prices, sizes), max_size=12)


@settings(max_examples=300, deadline=None)
@given(
    opposite=levels,
    side=st.sampled_from(Side),
    size=sizes,
    limit=st.floats(min_value=0.001, max_value=0.999, allow_nan=False),
)
def test_walk_book_fills_at_most_the_size_within_best_and_limit(
    opposite: list[BookLevel], side: Side, size: float, limit: float
) -> None:
    fill = walk_book(opposite, side, size, limit)

    assert 0 <= fill.filled_size <= size + 1e-9
    if fill.filled_size > 0:
        best = min(level.price for level in opposite) if side is Side.BUY else max(level.price for level in opposite)
        low, high = (best, limit) if side is Side.BUY else (limit, best)
        assert low - 1e-9 <= fill.avg_price <= high + 1e-9
    for taken in fill.taken:
        assert taken.price <= limit + 1e-9 if side is Side.BUY else taken.price >= limit - 1e-9
    available = sum(
        level.size for level in opposite if (level.price <= limit if side is Side.BUY else level.price >= limit)
    )
    # Fill-and-kill takes everything it may, up to the size.
    assert fill.filled_size == pytest.approx(min(size, available), rel=1e-9, abs=1e-9)


orders = st.lists(
    st.tuples(
        st.sampled_from(Side),
        st.sampled_from(["a", "b"]),
        st.floats(min_value=0.01, max_value=400, allow_nan=False),
        st.floats(min_value=0.01, max_value=0.99, allow_nan=False),
    ),
    max_size=25,
)


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**16), balance=st.floats(min_value=0, max_value=500), script=orders)
def test_balance_and_positions_never_go_negative(
    seed: int, balance: float, script: list[tuple[Side, str, float, float]]
) -> None:
    async def run() -> None:
        paper = PaperClobClient(paper_settings(), seed=seed, starting_balance=balance)
        for side, token, size, limit in script:
            cash_before = paper.balance
            try:
                ack = await paper.place_order(OrderRequest(token, side, size, limit))
            except OrderRejectedError:
                assert paper.balance == cash_before
                continue
            assert ack.filled_size <= size + 1e-9
            if side is Side.BUY and ack.filled_size > 0:
                assert ack.notional <= size * limit + 1e-9
            assert paper.balance >= 0
            assert all(held > 0 for held in paper.positions().values())

    asyncio.run(run())
