"""Benchmark the alert pipeline against the fake Telegram Bot API on loopback (SPEC §10, "Alerts").

    .venv/bin/python tests/benchmarks/bench_alerts.py [--identical 1000] [--distinct 200] [--strict]

1. `--identical` identical alerts through `send_telegram_alert`: how many messages reach the fake (the
   target is 1), and the per-call latency of the suppressed path (p50/p99, µs).
2. `--distinct` distinct alerts, healthy Bot API: the baseline drain time, measured in the same run.
3. The same while the fake answers 429 with retry_after=1, stalls past the client timeout and drops
   connections on a share of the early attempts: delivered, in order, duplicates, failures served, drain
   time and its ratio to the baseline (the retry_after waits dominate it, as they should).
4. The same again with a restart in the middle: the first manager is closed after a quarter of the
   messages and a second one, on the same outbox file, finishes.
`--strict` exits 1 unless every scenario delivered everything, in order, none twice, and (1) sent one.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import utils.alerts as alerts
from config.settings import Settings
from tests.fakes.fake_telegram import Drop, Failure, FakeTelegram, RateLimited, Stall
from utils.alerting.delivery import RetryPolicy

TOKEN = "123456789:BENCH-token-not-a-real-one"
CHAT = "4242"
FAST = {
    "retry": RetryPolicy(base_seconds=0.01, cap_seconds=0.05, error_pause_seconds=0.05),
    "telegram_read_timeout": 0.3,
    "poll_interval_seconds": 0.1,
}


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(fraction * len(ordered)) - 1))]


def build(state: Path, fake: FakeTelegram) -> alerts.TelegramAlertManager:
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        telegram_bot_token=TOKEN,
        telegram_chat_id=CHAT,
        telegram_base_url=fake.base_url,
        state_dir=state,
    )
    return alerts.configure_alerts(settings, confirm_seconds=0.0, **FAST)


def flaky(until: int) -> Any:
    def policy(attempt: int) -> Failure | None:
        if attempt > until:
            return None
        return {1: RateLimited(retry_after=1), 4: Stall(0.6), 7: Drop()}.get(attempt % 10)

    return policy


def verdict(texts: list[str], expected: list[str]) -> dict[str, Any]:
    return {
        "delivered": len(set(texts) & set(expected)),
        "in_order": texts == expected,
        "duplicates": len(texts) - len(set(texts)),
    }


async def identical(count: int, root: Path) -> dict[str, Any]:
    async with FakeTelegram(TOKEN) as fake:
        manager = build(root / "identical", fake)
        latencies = []
        for _ in range(count):
            start = time.perf_counter()
            await alerts.send_telegram_alert("🔴 CRITICAL ISSUE\ndisk full on /var", "critical")
            latencies.append(time.perf_counter() - start)
        await manager.flush(10.0)
        await manager.aclose()
        return {
            "alerts": count,
            "messages": len(fake.messages),
            "attempts": fake.send_attempts,
            "first_call_ms": latencies[0] * 1e3,
            "suppressed_p50_us": percentile(latencies[1:], 0.5) * 1e6,
            "suppressed_p99_us": percentile(latencies[1:], 0.99) * 1e6,
        }


async def distinct(count: int, root: Path, name: str, *, failing: bool, restart: bool) -> dict[str, Any]:
    texts = [f"alert {n:04d}" for n in range(count)]
    expected = [f"<b>{text}</b>" for text in texts]
    async with FakeTelegram(TOKEN) as fake:
        if failing:
            fake.fail_with(flaky(until=40))
        state = root / name
        manager = build(state, fake)
        start = time.perf_counter()
        for text in texts:
            await alerts.send_telegram_alert(text, "warning")
        if restart:
            await fake.wait_for_messages(count // 4, within=60.0)
            await manager.aclose()
            manager = build(state, fake)
        drained = await manager.flush(120.0)
        seconds = time.perf_counter() - start
        await manager.aclose()
        result = {"alerts": count, "drained": drained, "seconds": seconds, "attempts": fake.send_attempts}
        result["failures_served"] = {
            kind.__name__: sum(isinstance(f, kind) for f in fake.failures_served) for kind in (RateLimited, Stall, Drop)
        }
        result.update(verdict([m.text for m in fake.messages], expected))
        return result


async def main(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.ERROR)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        same = await identical(args.identical, root)
        print(
            f"1. {same['alerts']} identical alerts -> {same['messages']} message(s), {same['attempts']} sendMessage "
            f"attempt(s); first call {same['first_call_ms']:.1f} ms, suppressed calls p50 "
            f"{same['suppressed_p50_us']:.0f} µs p99 {same['suppressed_p99_us']:.0f} µs"
        )
        baseline = await distinct(args.distinct, root, "healthy", failing=False, restart=False)
        failing = await distinct(args.distinct, root, "failing", failing=True, restart=False)
        restarted = await distinct(args.distinct, root, "restart", failing=True, restart=True)
        for label, result in (("2. healthy", baseline), ("3. 429/stall/drop", failing), ("4. + restart", restarted)):
            ratio = result["seconds"] / baseline["seconds"]
            print(
                f"{label:18s}: {result['delivered']}/{result['alerts']} delivered, in order={result['in_order']}, "
                f"duplicates={result['duplicates']}, attempts={result['attempts']}, "
                f"failures={result['failures_served']}, drain {result['seconds']:.2f} s ({ratio:.1f}x healthy)"
            )
    ok = same["messages"] == 1 and all(
        r["delivered"] == r["alerts"] and r["in_order"] and r["duplicates"] == 0 for r in (baseline, failing, restarted)
    )
    print("PASS" if ok else "FAIL")
    return 0 if ok or not args.strict else 1


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--identical", type=int, default=1000)
    parser.add_argument("--distinct", type=int, default=200)
    parser.add_argument("--strict", action="store_true")
    sys.exit(asyncio.run(main(parser.parse_args())))
