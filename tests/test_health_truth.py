"""Truthful health from the first second (issue 9, item 4).

* a CPU reading needs a baseline: psutil's first call only primes, and a call too soon after the last is noise;
* until a check has had one full window (its warm-up), its components are `starting`: 200, never critical;
* a level needs its minimum duration every time, the first included;
* the host check samples often and judges the mean over a window, not one momentary reading;
* /health, `status`, validate_health.sh's overall line and the dashboard share one verdict function;
* a real bot and sidecar, started on this machine: /health answers 200 from its first answer and no
  component reads critical while they start (slow).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from mcp.dashboard.app import health_http_status
from mcp.health import HealthStatus, verdict
from mcp.monitoring.base import Reading
from mcp.monitoring.levels import Level
from mcp.monitoring.process_checks import CpuMeter, HostCheck, SidecarCheck
from mcp.monitoring.scheduler import Scheduler
from mcp.monitoring.thresholds import MonitoringLimits
from mcp.status import assess_status, format_status
from mcp.supervisor import STATUS_SCHEMA_VERSION
from tests.fakes.fake_host import FakeHost
from tests.fakes.monitoring_builders import bot_snapshot, write_state
from tests.fakes.monitoring_builders import settings as make_settings
from tests.live_stack import clean_env, free_port, get_json, start_child
from tests.test_monitoring import make_server, samples

H, S, D, C = Level.HEALTHY, Level.STARTING, Level.DEGRADED, Level.CRITICAL


class Ticks:
    """A monotonic clock the test moves."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Counting:
    """A psutil cpu_percent: counts its calls, returns what the test queued (noise right after priming)."""

    def __init__(self, *values: float) -> None:
        self.values = list(values)
        self.calls = 0

    def __call__(self) -> float:
        self.calls += 1
        return self.values.pop(0) if self.values else 0.0


# --- the CPU baseline ---------------------------------------------------------------------------------


def test_the_first_cpu_call_primes_and_is_not_a_reading() -> None:
    ticks, read = Ticks(), Counting(0.0, 37.5)
    meter = CpuMeter(read, clock=ticks, min_span=1.0)
    assert meter.sample() is None  # primes
    ticks.now += 5
    assert meter.sample() == 37.5
    assert read.calls == 2


def test_a_call_too_soon_after_the_baseline_is_skipped_and_keeps_the_baseline() -> None:
    # psutil right after priming divides by a few milliseconds: "200 %" for an idle process
    ticks, read = Ticks(), Counting(0.0, 200.0, 3.0)
    meter = CpuMeter(read, clock=ticks, min_span=1.0)
    meter.prime()
    ticks.now += 0.004
    assert meter.sample() is None
    assert read.calls == 1, "psutil must not be asked: asking would replace a good baseline by noise"
    ticks.now += 2.0
    assert meter.sample() == 200.0  # the queued value: now a real 2 s average, which psutil would give
    assert read.calls == 2


async def test_the_sidecar_shows_starting_until_its_cpu_has_a_baseline() -> None:
    ticks = Ticks()
    host = FakeHost(process_cpu=200.0, process_rss_mb=60.0)
    limits = MonitoringLimits.from_settings(make_settings(Path("/nonexistent")))
    check = SidecarCheck(host, limits, interval=30, min_duration=45, clock=ticks)
    await check.prime()
    reading = (await check.run(0.0))["sidecar"]
    assert reading.level is S
    assert reading.figures["cpu_percent"] is None
    assert "no reading yet" in reading.message


# --- the host check: sampled often, judged on a window ---------------------------------------------------


def host_check(host: FakeHost, ticks: Ticks) -> HostCheck:
    limits = MonitoringLimits.from_settings(make_settings(Path("/nonexistent")))
    return HostCheck(host, limits, Path("/"), interval=10, window=60, min_duration=45, clock=ticks)


async def run_host(check: HostCheck, ticks: Ticks, host: FakeHost, cpus: list[float]) -> list[Level]:
    levels = []
    for second, cpu in enumerate(cpus):
        host.host_cpu = cpu
        ticks.now = 1000.0 + 10 * second
        levels.append((await check.run(10.0 * second))["host"].level)
    return levels


async def test_a_start_up_cpu_spike_never_makes_the_host_critical() -> None:
    ticks, host = Ticks(), FakeHost()
    check = host_check(host, ticks)
    await check.prime()
    # the first real reading is the start-up's 99 %, then the machine is quiet
    levels = await run_host(check, ticks, host, [0.0, 99.0, *[10.0] * 12])
    assert C not in levels and D not in levels
    assert levels[:5] == [S] * 5 and levels[-1] is H


async def test_a_sustained_high_host_cpu_turns_critical_after_its_minimum_duration() -> None:
    ticks, host = Ticks(), FakeHost()
    check = host_check(host, ticks)
    await check.prime()
    levels = await run_host(check, ticks, host, [10.0] * 7 + [99.0] * 14)
    # memory and disk are judged once their readings lasted 45 s (at 50 s); the CPU's first reading came at
    # 10 s (the one at 0 s had no baseline), so it is judged at 60 s; before 45 s, nothing is judged
    assert levels[4] is S and levels[5] is H and levels[6] is H
    first_critical = levels.index(C)
    # the 60 s mean crosses 95 % only once most of the window is high, then it must hold 45 s
    assert first_critical >= 7 + 5
    assert all(level is C for level in levels[first_critical:])


async def test_the_host_reports_its_window_and_the_latest_readings() -> None:
    ticks, host = Ticks(), FakeHost(host_cpu=20.0)
    check = host_check(host, ticks)
    await check.prime()
    ticks.now += 10
    figures = (await check.run(10.0))["host"].figures
    assert figures["window_seconds"] == 60
    assert (figures["cpu_percent"], figures["latest_cpu_percent"]) == (20.0, 20.0)
    assert "means over 60 s" in (await check.run(20.0))["host"].message


# --- the scheduler's warm-up -------------------------------------------------------------------------------


class AlwaysCritical:
    name, interval, warmup = "main_bot", 10.0, 45.0

    async def run(self, now: float) -> Mapping[str, Reading]:
        return {"main_bot": Reading(C, "bot process 7 is not running")}


class Broken:
    name, interval, warmup = "broken", 10.0, 45.0

    async def run(self, now: float) -> Mapping[str, Reading]:
        raise RuntimeError("proc unavailable")


async def test_no_component_is_critical_before_its_check_had_one_full_window() -> None:
    scheduler = Scheduler([AlwaysCritical(), Broken()])
    seen = {}
    for now in (0.0, 10.0, 20.0, 30.0, 40.0, 50.0):
        await scheduler.run_due(now)
        seen[now] = {name: result.level for name, result in scheduler.results().items()}
    for now in (0.0, 10.0, 20.0, 30.0, 40.0):
        assert seen[now] == {"main_bot": S, "broken": S}, now
        assert verdict(seen[now]).http_status == 200
    assert seen[50.0] == {"main_bot": C, "broken": C}
    message = scheduler.results()["main_bot"].message
    assert message == "bot process 7 is not running"


async def test_a_starting_component_says_what_it_has_read_so_far() -> None:
    scheduler = Scheduler([AlwaysCritical()])
    await scheduler.run_due(0.0)
    message = scheduler.results()["main_bot"].message
    assert message.startswith("starting: 0 of 45 s of readings before a verdict")
    assert "bot process 7 is not running" in message


# --- one verdict ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("components", "status", "http", "label"),
    [
        ({}, H, 200, "PASS"),
        ({"a": "healthy", "b": "healthy"}, H, 200, "PASS"),
        ({"a": "healthy", "b": "starting"}, S, 200, "PASS"),
        ({"a": "degraded", "b": "starting"}, D, 200, "PASS"),
        ({"a": "critical", "b": "starting"}, C, 503, "FAIL"),
        ({"a": {"status": "critical", "message": "m"}}, C, 503, "FAIL"),
        ({"a": "bogus"}, C, 503, "FAIL"),  # unknown: cannot be trusted
        ({"a": {"message": "no status at all"}}, C, 503, "FAIL"),
    ],
)
def test_the_verdict_table(components: dict[str, Any], status: Level, http: int, label: str) -> None:
    judged = verdict(components)
    assert (judged.status, judged.http_status, judged.label) == (status, http, label)
    # the dashboard's HTTP code for a report with that status is the same verdict
    assert health_http_status({"status": judged.status.value}) == http


def test_the_verdict_names_the_problems_worst_first() -> None:
    judged = verdict({"x": "starting", "y": {"status": "degraded", "message": "slow"}, "z": "critical"})
    assert judged.problems == ("z critical", "y degraded: slow")
    assert judged.as_dict() == {
        "status": "critical",
        "passed": False,
        "label": "FAIL",
        "problems": ["z critical", "y degraded: slow"],
    }


BOT = frozenset({"main_bot", "trade_executor", "circuit_breaker"})


@pytest.mark.parametrize(
    ("components", "excluded", "status", "label", "left_out"),
    [
        # nothing excluded: the verdict of /health, status and the dashboard
        ({"main_bot": "critical", "host": "healthy"}, frozenset(), C, "FAIL", ()),
        # the bot-derived components left out: only the rest is judged
        (
            {"main_bot": "critical", "trade_executor": "degraded", "host": "healthy"},
            BOT,
            H,
            "PASS",
            ("main_bot", "trade_executor"),
        ),
        (
            {"main_bot": "critical", "circuit_breaker": "bogus", "sidecar": "starting"},
            BOT,
            S,
            "PASS",
            ("circuit_breaker", "main_bot"),
        ),
        # what is not excluded still fails
        ({"main_bot": "critical", "codebase_search": "critical"}, BOT, C, "FAIL", ("main_bot",)),
        ({"main_bot": "critical", "host": {"status": "degraded", "message": "load"}}, BOT, D, "PASS", ("main_bot",)),
        # an excluded name that is absent is not listed; everything excluded is a pass with nothing judged
        ({"host": "healthy"}, BOT, H, "PASS", ()),
        ({"main_bot": "critical"}, BOT, H, "PASS", ("main_bot",)),
    ],
)
def test_the_verdict_table_with_exclusions(
    components: dict[str, Any], excluded: frozenset[str], status: Level, label: str, left_out: tuple[str, ...]
) -> None:
    judged = verdict(components, excluded)
    assert (judged.status, judged.label, judged.excluded) == (status, label, left_out)
    assert not any(problem.split()[0] in excluded for problem in judged.problems)
    # the JSON form of /health is unchanged by the new field
    assert set(judged.as_dict()) == {"status", "passed", "label", "problems"}


def test_status_judges_the_bot_unless_a_deploy_excludes_it() -> None:
    from mcp.status import status_verdict

    payload = {"servers": {"monitoring": {"health": {"components": {"main_bot": "critical", "host": "healthy"}}}}}
    assert status_verdict(payload).label == "FAIL"
    assert status_verdict(payload, BOT).label == "PASS"


def status_file(**components: str) -> dict[str, Any]:
    now = time.time()
    return {
        "schema_version": STATUS_SCHEMA_VERSION,
        "pid": 4242,
        "sidecar_state": "running",
        "updated_at": "now",
        "updated_at_epoch": now,
        "health_interval_seconds": 60,
        "overall": "healthy",
        "servers": {
            "monitoring": {
                "state": "running",
                "status": "healthy",
                "health": {
                    "status": "healthy",
                    "components": {
                        name: {"status": level, "message": f"{name} says"} for name, level in components.items()
                    },
                },
            }
        },
    }


def test_status_takes_the_same_verdict_as_health() -> None:
    # the sidecar process itself is fine; what it monitors is not: status used to print HEALTHY here
    payload = status_file(main_bot="critical", host="healthy")
    problems = assess_status(payload, time.time(), pid_alive=True)
    assert problems == ["health verdict critical: main_bot critical: main_bot says"]
    lines = format_status(payload, problems)
    assert lines[:2] == ["sidecar: NOT HEALTHY", "verdict: [FAIL] critical (main_bot critical: main_bot says)"]


def test_status_passes_while_starting() -> None:
    payload = status_file(main_bot="starting", host="healthy")
    assert assess_status(payload, time.time(), pid_alive=True) == []
    assert format_status(payload, [])[1] == "verdict: [PASS] starting"


def test_health_status_parses_starting() -> None:
    assert HealthStatus.parse("STARTING") is HealthStatus.STARTING
    assert HealthStatus.HEALTHY.rank < HealthStatus.STARTING.rank < HealthStatus.DEGRADED.rank


# --- a real bot and sidecar, from their first second ----------------------------------------------------


@pytest.mark.integration
@pytest.mark.slow
async def test_bot_and_sidecar_answer_200_from_the_first_answer_and_nothing_is_critical_at_start(
    tmp_path: Path,
) -> None:
    port = free_port()
    # the default intervals (30 s checks, host window 60 s), as `make run` starts them
    env = clean_env(tmp_path, DASHBOARD_PORT=port, METRICS_PORT=free_port(), REPLAY_SPEED="0")
    bot = await start_child("bot", ["main.py"], env, tmp_path)
    url = f"http://127.0.0.1:{port}/health"
    answers: list[tuple[float, int, dict[str, str]]] = []
    started = time.monotonic()
    try:
        async with aiohttp.ClientSession() as session:
            while time.monotonic() - started < 45:
                assert bot.alive(), f"the bot exited ({bot.process.returncode}):\n{bot.text()[-3000:]}"
                try:
                    code, body = await get_json(session, url)
                except (aiohttp.ClientError, TimeoutError):
                    await asyncio.sleep(0.5)  # not listening yet: no answer is not a wrong answer
                    continue
                statuses = {name: item["status"] for name, item in body["components"].items()}
                answers.append((time.monotonic() - started, code, statuses))
                await asyncio.sleep(1.0)
    finally:
        await bot.stop()
    assert len(answers) >= 10, f"too few answers from {url}: {answers}\n{bot.text()[-3000:]}"
    wrong = [(at, code, s) for at, code, s in answers if code != 200 or "critical" in s.values()]
    assert wrong == [], json.dumps(wrong, indent=1)
    assert all(body_status in {"healthy", "starting", "degraded"} for _, _, s in answers for body_status in s.values())


def test_a_figure_that_appears_later_does_not_send_a_judged_component_back_to_starting() -> None:
    from mcp.monitoring.base import overall

    assert overall([S, S]) is S
    assert overall([S, None]) is S
    assert overall([None, None]) is H
    assert overall([H, S]) is H  # the RSS is judged; the first trade's latency is still warming up
    assert overall([D, S, H]) is D


async def test_monitoring_component_status_reads_half_for_a_starting_component(tmp_path: Path) -> None:
    """README: `monitoring_component_status` reads 0.5 for starting (a fresh server, its default warm-up)."""
    write_state(tmp_path, bot_snapshot())
    server = make_server(tmp_path, hold=None)  # the product's own warm-up: one full window before a verdict
    report = await server.check_once()
    found = samples(server.metrics.exposition().decode())
    starting = [name for name, component in report["components"].items() if component["status"] == "starting"]
    assert "main_bot" in starting, report["components"]
    for name in starting:
        assert found[("monitoring_component_status", (("component", name),))] == 0.5
