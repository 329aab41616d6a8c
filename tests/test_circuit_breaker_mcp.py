"""CircuitBreaker MCP methods: they record into the MCP-integration record and never touch the trading
state; the user's Phase 4 snippets run as written in a fresh interpreter.
"""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from core.breaker_rules import TradingState
from core.circuit_breaker import CircuitBreaker
from tests.circuit_breaker_support import T0, FakeClock, make_breaker, on_disk


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(T0)


@pytest.fixture
def state_file(tmp_path: Path) -> Path:
    return tmp_path / "state" / "circuit_breaker.json"


# --- MCP methods: record only, never the trading state --------------------------------------------------


@pytest.mark.parametrize(
    ("coverage", "threshold", "ok", "level"),
    [
        (0.85, 0.85, True, "ok"),
        (0.75, 0.85, False, "below_threshold"),
        (0.50, 0.85, False, "critical"),
        (0.68, 0.85, False, "below_threshold"),
        (0.6799, 0.85, False, "critical"),
        (1.0, 0.85, True, "ok"),
    ],
)
async def test_check_mcp_test_coverage(
    state_file: Path, clock: FakeClock, coverage: float, threshold: float, ok: bool, level: str
) -> None:
    breaker = make_breaker(state_file, clock)

    assert await breaker.check_mcp_test_coverage(coverage, threshold) is ok
    record = breaker.get_mcp_integration_state()
    assert record["last_coverage_check"]["level"] == level
    assert record["coverage_checks"] == 1
    assert record["critical_coverage_checks"] == (1 if level == "critical" else 0)


async def test_the_persisted_coverage_check_keeps_its_shape(state_file: Path, clock: FakeClock) -> None:
    # issue 12: the one coverage rule replaced the breaker's own; the file's record is unchanged
    breaker = make_breaker(state_file, clock)
    await breaker.check_mcp_test_coverage(0.6, 0.85)

    check = on_disk(state_file)["mcp_integration"]["last_coverage_check"]
    assert check == {
        "at": T0.isoformat(),
        "coverage": 0.6,
        "threshold": 0.85,
        "ok": False,
        "level": "critical",
        "critical_below": 0.8 * 0.85,
    }


@pytest.mark.parametrize(
    ("cpu", "memory", "limit", "ok"),
    [
        (1.0, 50.0, 200.0, True),
        (3.0, 50.0, 200.0, True),
        (1.0, 250.0, 200.0, False),
        (8.0, 50.0, 200.0, False),
        (5.0, 200.0, 200.0, True),  # at the limits is within them
        (5.01, 200.01, 200.0, False),
    ],
)
async def test_check_mcp_resource_usage(
    state_file: Path, clock: FakeClock, cpu: float, memory: float, limit: float, ok: bool
) -> None:
    breaker = make_breaker(state_file, clock)

    assert await breaker.check_mcp_resource_usage(cpu, memory, limit) is ok
    last = breaker.get_mcp_integration_state()["last_resource_check"]
    assert last["ok"] is ok
    assert len(last["problems"]) == (0 if ok else (memory > limit) + (cpu > 5.0))


def trading_view(breaker: CircuitBreaker) -> dict[str, Any]:
    state = breaker.get_state()
    return {key: value for key, value in state.items() if key not in {"mcp_integration", "as_of"}}


@pytest.mark.parametrize("halted", [False, True])
async def test_mcp_methods_never_touch_the_trading_state(state_file: Path, clock: FakeClock, halted: bool) -> None:
    breaker = make_breaker(state_file, clock)
    breaker.update_equity(1000.0)
    if halted:
        breaker.update_equity(800.0)
    before = trading_view(breaker)

    await breaker.enable_mcp_integration(0.9)
    await breaker.check_mcp_test_coverage(0.1, 0.9)
    await breaker.check_mcp_resource_usage(99.0, 5000.0, 200.0)
    await breaker.check_mcp_test_coverage(0.95, 0.9)
    await breaker.check_mcp_resource_usage(0.1, 10.0, 200.0)
    await breaker.disable_mcp_integration()

    assert trading_view(breaker) == before
    assert breaker.state is (TradingState.HALTED if halted else TradingState.ACTIVE)


async def test_mcp_record_is_persisted_and_restored(state_file: Path, clock: FakeClock) -> None:
    breaker = make_breaker(state_file, clock)
    await breaker.enable_mcp_integration(test_coverage_threshold=0.9)
    await breaker.check_mcp_test_coverage(0.5, 0.9)
    await breaker.check_mcp_resource_usage(1.0, 300.0, 200.0)

    restored = make_breaker(state_file, clock).get_mcp_integration_state()
    assert restored["enabled"] is True
    assert restored["test_coverage_threshold"] == 0.9
    assert (restored["coverage_checks"], restored["coverage_failures"], restored["critical_coverage_checks"]) == (
        1,
        1,
        1,
    )
    assert (restored["resource_checks"], restored["resource_failures"]) == (1, 1)
    assert on_disk(state_file)["mcp_integration"]["last_resource_check"]["memory_mb"] == 300.0

    await make_breaker(state_file, clock).disable_mcp_integration()
    assert on_disk(state_file)["mcp_integration"]["enabled"] is False


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda b: b.check_mcp_test_coverage(85, 0.85), "coverage: expected a fraction between 0 and 1"),
        (lambda b: b.check_mcp_test_coverage(0.5, math.nan), "threshold: expected a finite number"),
        (lambda b: b.check_mcp_resource_usage(-1.0, 10.0, 200.0), "cpu_percent: expected a measurement"),
        (lambda b: b.check_mcp_resource_usage(1.0, 10.0, 0.0), "limit_mb: expected a number > 0"),
        (lambda b: b.enable_mcp_integration(1.5), "test_coverage_threshold: expected a fraction"),
    ],
)
async def test_bad_mcp_figures_are_refused(state_file: Path, clock: FakeClock, call: Any, message: str) -> None:
    breaker = make_breaker(state_file, clock)
    with pytest.raises(ValueError, match=message):
        await call(breaker)
    assert breaker.get_mcp_integration_state()["coverage_checks"] == 0


# --- the user's Phase 4 snippets, run as written in a fresh interpreter ----------------------------------

PHASE4_STATE_FILE = Path("/tmp/test_cb_state.json")

PHASE4_COVERAGE_SNIPPET = """
import asyncio
from core.circuit_breaker import CircuitBreaker

async def test():
    cb = CircuitBreaker(
        max_daily_loss=100.0,
        wallet_address='test_address',
        state_file='/tmp/test_cb_state.json',
        cooldown_seconds=3600,
    )

    # Test with acceptable coverage
    result1 = await cb.check_mcp_test_coverage(0.85, 0.85)
    print(f'Coverage 85%: {result1} (should be True)')

    # Test with below-threshold coverage
    result2 = await cb.check_mcp_test_coverage(0.75, 0.85)
    print(f'Coverage 75%: {result2} (should be False)')

    # Test with critically low coverage
    result3 = await cb.check_mcp_test_coverage(0.50, 0.85)
    print(f'Coverage 50%: {result3} (should be False)')

asyncio.run(test())
"""

PHASE4_RESOURCE_SNIPPET = """
import asyncio
from core.circuit_breaker import CircuitBreaker

async def test():
    cb = CircuitBreaker(
        max_daily_loss=100.0,
        wallet_address='test_address',
        state_file='/tmp/test_cb_state.json',
        cooldown_seconds=3600,
    )

    # Test with acceptable memory
    result1 = await cb.check_mcp_resource_usage(1.0, 50.0, 200.0)
    print(f'Memory 50MB: {result1} (should be True)')

    # Test with high CPU (should not trip unless very high)
    result2 = await cb.check_mcp_resource_usage(3.0, 50.0, 200.0)
    print(f'CPU 3%: {result2} (should be True - CPU not high enough)')

    # Test with critical memory (should trip)
    result3 = await cb.check_mcp_resource_usage(1.0, 250.0, 200.0)
    print(f'Memory 250MB: {result3} (should be False)')

    # Test with very high CPU (should trip)
    result4 = await cb.check_mcp_resource_usage(8.0, 50.0, 200.0)
    print(f'CPU 8%: {result4} (should be False)')

asyncio.run(test())
"""


@pytest.fixture
def phase4_state_file() -> Any:
    PHASE4_STATE_FILE.unlink(missing_ok=True)
    yield PHASE4_STATE_FILE
    PHASE4_STATE_FILE.unlink(missing_ok=True)
    for leftover in PHASE4_STATE_FILE.parent.glob(f"{PHASE4_STATE_FILE.name}.corrupt-*"):
        leftover.unlink()


def run_snippet(project_root: Path, source: str) -> list[str]:
    completed = subprocess.run(
        [sys.executable, "-c", source],
        cwd=project_root,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    return completed.stdout.splitlines()


@pytest.mark.integration
def test_phase4_snippets_print_the_expected_results(project_root: Path, phase4_state_file: Path) -> None:
    coverage_lines = run_snippet(project_root, PHASE4_COVERAGE_SNIPPET)
    assert coverage_lines == [
        "Coverage 85%: True (should be True)",
        "Coverage 75%: False (should be False)",
        "Coverage 50%: False (should be False)",
    ]
    record = on_disk(phase4_state_file)
    assert record["state"] == "ACTIVE"  # MCP checks never halt trading
    assert record["mcp_integration"]["critical_coverage_checks"] == 1  # 50 % < 68 %: flagged critical
    assert record["mcp_integration"]["last_coverage_check"]["level"] == "critical"

    resource_lines = run_snippet(project_root, PHASE4_RESOURCE_SNIPPET)
    assert resource_lines == [
        "Memory 50MB: True (should be True)",
        "CPU 3%: True (should be True - CPU not high enough)",
        "Memory 250MB: False (should be False)",
        "CPU 8%: False (should be False)",
    ]
    record = on_disk(phase4_state_file)
    assert record["state"] == "ACTIVE"
    assert (record["mcp_integration"]["resource_checks"], record["mcp_integration"]["resource_failures"]) == (4, 2)
    assert record["mcp_integration"]["coverage_checks"] == 3  # the first snippet's record survived the restart
