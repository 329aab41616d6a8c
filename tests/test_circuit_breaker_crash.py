"""Crash safety: a writer process updating the breaker in a tight loop is killed with SIGKILL at random
moments; after every kill the state file must load as a valid record (never corrupt).

Each writer restarts from the file the previous one left, so every iteration also checks that a restart
after a kill restores (rather than quarantines) the state.
"""

from __future__ import annotations

import random
import selectors
import signal
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import pytest

from core.breaker_rules import TradingState
from core.breaker_state import record_from_document
from core.state_reader import read_breaker_state
from tests.circuit_breaker_support import FakeClock, make_breaker

KILLS = 60
READY_TIMEOUT_SECONDS = 30.0

# argv: state file, iteration. The clock starts two days later per iteration so time moves forward
# across restarts, and moves up to 15 minutes per event so trips, 4-hour cooldowns and day boundaries all
# happen within a few dozen events. A random warm-up before "ready" makes the state at the kill varied
# whatever the machine's load; "ready" carries the record's `as_of` so the test can tell that the writer
# went on writing after it.
WRITER = """
import random, sys
from datetime import UTC, datetime, timedelta
from core.circuit_breaker import CircuitBreaker

path, iteration = sys.argv[1], int(sys.argv[2])
rng = random.Random(iteration)
now = [datetime(2026, 3, 6, 12, 0, tzinfo=UTC) + timedelta(days=2 * iteration)]
breaker = CircuitBreaker(
    100.0, "0x1234567890abcdef1234567890abcdef12c0ffee", path, 4 * 3600.0,
    consecutive_loss_limit=3, error_burst_count=3, timezone="America/New_York", clock=lambda: now[0],
)
equity = [1000.0]

def step():
    now[0] += timedelta(seconds=rng.randint(1, 900))
    roll = rng.random()
    if roll < 0.5:
        equity[0] += rng.uniform(-45.0, 40.0)
        breaker.update_equity(equity[0])
    elif roll < 0.75:
        breaker.record_trade_result(rng.uniform(-10.0, 4.0))
    elif roll < 0.99:
        breaker.record_error(rng.choice(["timeout", "network", "rate_limit"]))
    else:
        breaker.reset("crash test")

for _ in range(rng.randint(0, 80)):
    step()
print("ready", breaker.get_state()["as_of"], flush=True)
while True:
    step()
"""


def start_writer(project_root: Path, state_file: Path, iteration: int) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", WRITER, str(state_file), str(iteration)],
        cwd=project_root,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )


def wait_until_ready(writer: subprocess.Popen[str]) -> str:
    assert writer.stdout is not None
    with selectors.DefaultSelector() as selector:
        selector.register(writer.stdout, selectors.EVENT_READ)
        if not selector.select(READY_TIMEOUT_SECONDS):
            writer.kill()
            writer.wait()
            pytest.fail(f"the writer did not start within {READY_TIMEOUT_SECONDS} s")
    line = writer.stdout.readline()
    assert line.startswith("ready"), f"expected 'ready …' from the writer, received {line!r}"
    return line


@pytest.mark.slow
@pytest.mark.integration
def test_sigkill_at_random_moments_never_leaves_a_corrupt_state_file(tmp_path: Path, project_root: Path) -> None:
    state_file = tmp_path / "circuit_breaker.json"
    rng = random.Random(20261121)
    written_after_ready = 0
    states_seen: set[str] = set()

    for iteration in range(KILLS):
        writer = start_writer(project_root, state_file, iteration)
        try:
            ready_as_of = datetime.fromisoformat(wait_until_ready(writer).split()[1])
            # the kill must land at a random point of the write cycle, so this pause is the test's input
            time.sleep(rng.uniform(0.0, 0.04))
            writer.send_signal(signal.SIGKILL)
        finally:
            writer.kill()
            writer.wait(timeout=10)
            assert writer.stdout is not None
            writer.stdout.close()
        assert writer.returncode == -signal.SIGKILL

        reading = read_breaker_state(state_file, complete=True)
        payload = reading.payload
        # require() raises if the kill left anything but a whole record
        states_seen.add(record_from_document(reading.require()).state)
        assert payload is not None
        written_after_ready += datetime.fromisoformat(payload["as_of"]) > ready_as_of

    assert not list(tmp_path.glob("*.corrupt-*")), "a restart after a kill found a corrupt state file"
    # a sanity floor (typically ~55 of 60): most kills must land while the writer is busy writing
    assert written_after_ready >= KILLS // 6, f"only {written_after_ready} writers wrote after 'ready'"
    assert states_seen == {TradingState.ACTIVE, TradingState.HALTED}, "the kills should land in both states"
    survivor = make_breaker(state_file, FakeClock(), timezone="America/New_York")
    assert survivor.get_state()["trip_kind"] != "corrupt_state"
    assert not list(tmp_path.glob(".circuit_breaker.json.*.tmp")), "temp files left by killed writers remain"
