"""Benchmark the CLOB clients: what each adds on the copy path.

    .venv/bin/python tests/benchmarks/bench_clob.py [--orders 20000] [--requests 300] [--rounds 5]

1. Paper client (zero simulated latency): p50/p99/max of `get_order_book` + `place_order` per order, over
   `--orders` orders on 10 simulated tokens (books drifting, liquidity consumed and refilling).
2. Polymarket adapter over py-clob-client-v2 against the fake CLOB V2 (tests/fakes/fake_clob.py), served on
   127.0.0.1 by its own event loop in a background thread: p50/p99 of `await adapter.get_order_book()`
   (worker thread + parsing) next to the baseline measured in the same run, the library's own
   `get_order_book()` called directly; `--rounds` interleaved rounds (A B A B …) of `--requests` each, and
   the ratio adapter/library.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from eth_account import Account

from config.settings import Settings
from core.clob.base import OrderRequest, Side
from core.clob.paper import PaperClobClient
from core.clob.polymarket import PolymarketClobClient
from tests.fakes.fake_clob import FakeClob, FakeMarket

TOKEN = "71321045679252212594626385532706912750332728571942532289631379312455583992563"


def percentiles(samples_ns: list[int]) -> dict[str, float]:
    ordered = sorted(samples_ns)
    pick = lambda q: ordered[min(len(ordered) - 1, int(q * len(ordered)))] / 1e6  # noqa: E731
    return {"p50_ms": pick(0.50), "p99_ms": pick(0.99), "max_ms": ordered[-1] / 1e6, "n": len(ordered)}


async def bench_paper(orders: int) -> dict[str, float]:
    paper = PaperClobClient(Settings(_env_file=None), seed=1, starting_balance=1e12)
    samples: list[int] = []
    for i in range(orders):
        token = f"token-{i % 10}"
        side = Side.BUY if (i // 10) % 2 == 0 else Side.SELL
        start = time.perf_counter_ns()
        book = await paper.get_order_book(token)
        held = paper.positions().get(token, 0.0)
        if side is Side.BUY or held <= 0:
            order = OrderRequest(token, Side.BUY, 20, min(0.99, (book.best_ask() or 0.5) + 0.02))
        else:
            order = OrderRequest(token, Side.SELL, min(held, 20), max(0.01, (book.best_bid() or 0.5) - 0.02))
        await paper.place_order(order)
        samples.append(time.perf_counter_ns() - start)
    return percentiles(samples)


class FakeInThread:
    """The fake CLOB served by its own event loop in a daemon thread, so sync callers can use it."""

    def __init__(self) -> None:
        self.fake = FakeClob()
        self.fake.add_market(FakeMarket(TOKEN, bids=[(0.48, 1e9), (0.47, 1e9)], asks=[(0.50, 1e9), (0.52, 1e9)]))
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    def __enter__(self) -> str:
        self.thread.start()
        return asyncio.run_coroutine_threadsafe(self.fake.start(), self.loop).result(timeout=10)

    def __exit__(self, *exc_info: object) -> None:
        asyncio.run_coroutine_threadsafe(self.fake.close(), self.loop).result(timeout=10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)
        self.loop.close()


async def bench_adapter(requests: int, rounds: int) -> dict[str, dict[str, float]]:
    with FakeInThread() as url:
        settings = Settings(_env_file=None, trading_mode="live", private_key=Account.create().key.hex(), clob_host=url)
        adapter = PolymarketClobClient(settings)
        library = adapter._client  # the same library client the adapter drives: the baseline
        library.get_order_book(TOKEN)  # warm the connection for both
        adapter_ns: list[int] = []
        library_ns: list[int] = []
        for _ in range(rounds):
            for _ in range(requests):
                start = time.perf_counter_ns()
                library.get_order_book(TOKEN)
                library_ns.append(time.perf_counter_ns() - start)
            for _ in range(requests):
                start = time.perf_counter_ns()
                await adapter.get_order_book(TOKEN)
                adapter_ns.append(time.perf_counter_ns() - start)
        await adapter.close()
    return {"library": percentiles(library_ns), "adapter": percentiles(adapter_ns)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--orders", type=int, default=20_000)
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()

    paper = asyncio.run(bench_paper(args.orders))
    print(
        f"paper book+order   p50 {paper['p50_ms']:.4f} ms  p99 {paper['p99_ms']:.4f} ms  "
        f"max {paper['max_ms']:.3f} ms  (n={paper['n']})"
    )
    live = asyncio.run(bench_adapter(args.requests, args.rounds))
    for name in ("library", "adapter"):
        row = live[name]
        print(f"{name:<8} get_order_book p50 {row['p50_ms']:.3f} ms  p99 {row['p99_ms']:.3f} ms  (n={row['n']})")
    print(
        "adapter/library ratio  p50 "
        f"{live['adapter']['p50_ms'] / live['library']['p50_ms']:.2f}  p99 "
        f"{live['adapter']['p99_ms'] / live['library']['p99_ms']:.2f}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
