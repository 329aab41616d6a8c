#!/usr/bin/env python3
"""Generate the shipped replay file `data/replay_trades.jsonl`: made-up wallets trading made-up markets.

Seeded, so the same arguments always write the same bytes (a test checks the shipped file against it):

    .venv/bin/python scripts/make_replay_data.py            # rewrite data/replay_trades.jsonl
    .venv/bin/python scripts/make_replay_data.py --out /tmp/t.jsonl --count 1000 --minutes 120

Every wallet, token id, condition id and transaction hash is random: none is a real Polymarket one.
Records have the Data API `/activity` shape (see core/wallet/records.py). Wallets only sell tokens they
bought earlier in the file, and never more than they hold.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import re
import sys
from dataclasses import dataclass
from pathlib import Path

DEFAULT_SEED = 20251121
DEFAULT_COUNT = 300
DEFAULT_MINUTES = 30
DEFAULT_START = 1763712000  # 2025-11-21T08:00:00Z
DEFAULT_OUT = Path(__file__).resolve().parent.parent / "data" / "replay_trades.jsonl"

MIN_SHARES, MAX_SHARES = 5.0, 500.0
MIN_PRICE, MAX_PRICE = 0.03, 0.97  # inside the required open interval (0.02, 0.98)
SELL_PROBABILITY = 0.4

TITLES = (
    "Will the Lakeside Metro extension open before July?",
    "Will Northwind Air announce a merger this quarter?",
    "Will the city of Valdora hold a snap election in 2026?",
    "Will the Aurora-7 satellite launch on schedule?",
    "Will Q1 median rent in Port Elm exceed $2,000?",
    "Will the Redwater River flood warning be lifted by Friday?",
    "Will Team Falcons win the Coastal Cup final?",
    "Will the Helix Labs IPO price above $30?",
    "Will the national chess champion defend the title?",
    "Will the Brightline ferry strike end this month?",
    "Will average fuel prices in Westmark fall below $3?",
    "Will the Summit Film Festival open with a documentary?",
)
WALLET_WEIGHTS = (0.45, 0.35, 0.20)


@dataclass
class Market:
    title: str
    slug: str
    condition_id: str
    token_ids: tuple[str, str]  # (Yes, No)
    yes_price: float


def _hex(rng: random.Random, digits: int) -> str:
    return f"0x{rng.getrandbits(digits * 4):0{digits}x}"


def _slug(title: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")


def _markets(rng: random.Random) -> list[Market]:
    markets = []
    for title in TITLES:
        # Polymarket token ids are uint256 values written in decimal (76-78 digits).
        tokens = (str(rng.randrange(10**76, 10**77)), str(rng.randrange(10**76, 10**77)))
        markets.append(Market(title, _slug(title), _hex(rng, 64), tokens, rng.uniform(0.1, 0.9)))
    return markets


def _shares(rng: random.Random, low: float, high: float) -> float:
    """Log-uniform share count, two decimals: small trades are more common than large ones."""
    return round(math.exp(rng.uniform(math.log(low), math.log(high))), 2)


def generate(
    seed: int = DEFAULT_SEED, count: int = DEFAULT_COUNT, minutes: float = DEFAULT_MINUTES, start: int = DEFAULT_START
) -> list[dict[str, object]]:
    """The records, oldest first."""
    rng = random.Random(seed)
    wallets = [_hex(rng, 40) for _ in WALLET_WEIGHTS]
    markets = _markets(rng)
    # Each wallet follows 6 of the 12 markets; the three sets overlap and together cover all of them.
    followed = [markets[0:6], markets[4:10], markets[8:12] + markets[0:2]]
    holdings: list[dict[tuple[int, int], float]] = [{} for _ in wallets]
    times = sorted(start + rng.randrange(int(minutes * 60)) for _ in range(count))

    records: list[dict[str, object]] = []
    for timestamp in times:
        w = rng.choices(range(len(wallets)), weights=WALLET_WEIGHTS)[0]
        sellable = [key for key, shares in holdings[w].items() if shares >= MIN_SHARES]
        if sellable and rng.random() < SELL_PROBABILITY:
            market_index, outcome_index = rng.choice(sorted(sellable))
            held = holdings[w][(market_index, outcome_index)]
            size = min(held, _shares(rng, MIN_SHARES, min(held, MAX_SHARES)))
            if held - size < MIN_SHARES and held <= MAX_SHARES:
                size = held  # close the position rather than leave dust behind
            side = "SELL"
        else:
            market = rng.choice(followed[w])
            market_index, outcome_index = markets.index(market), rng.choice((0, 1))
            size = _shares(rng, MIN_SHARES, MAX_SHARES)
            side = "BUY"
        market = markets[market_index]
        market.yes_price = min(0.95, max(0.05, market.yes_price + rng.gauss(0, 0.015)))
        mid = market.yes_price if outcome_index == 0 else 1 - market.yes_price
        # Takers pay the spread: buys a cent above the mid, sells a cent below.
        price = round(min(MAX_PRICE, max(MIN_PRICE, mid + (0.01 if side == "BUY" else -0.01))), 2)
        key = (market_index, outcome_index)
        holdings[w][key] = round(holdings[w].get(key, 0.0) + (size if side == "BUY" else -size), 2)
        records.append(
            {
                "proxyWallet": wallets[w],
                "timestamp": timestamp,
                "conditionId": market.condition_id,
                "type": "TRADE",
                "size": size,
                "usdcSize": round(size * price, 4),
                "transactionHash": _hex(rng, 64),
                "price": price,
                "asset": market.token_ids[outcome_index],
                "side": side,
                "outcomeIndex": outcome_index,
                "title": market.title,
                "slug": market.slug,
                "eventSlug": market.slug,
                "outcome": ("Yes", "No")[outcome_index],
            }
        )
    return records


def render(records: list[dict[str, object]]) -> str:
    """JSONL text: one record per line, newline-terminated."""
    return "".join(json.dumps(record) + "\n" for record in records)


def main(argv: list[str] | None = None) -> int:
    """Write the replay file and say what was written."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="file to write (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--count", type=int, default=DEFAULT_COUNT, help="number of trades")
    parser.add_argument("--minutes", type=float, default=DEFAULT_MINUTES, help="time the trades spread over")
    args = parser.parse_args(argv)
    if args.count < 1 or args.minutes <= 0:
        parser.error(f"expected --count >= 1 and --minutes > 0, received {args.count} and {args.minutes}")
    records = generate(args.seed, args.count, args.minutes)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(render(records), encoding="utf-8")
    wallets = len({r["proxyWallet"] for r in records})
    markets = len({r["conditionId"] for r in records})
    print(f"wrote {len(records)} trades ({wallets} wallets, {markets} markets) to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
