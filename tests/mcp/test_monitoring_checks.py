"""Each health check on fake inputs: real state files in tmp_path, a fake psutil, injected pid_alive and clock."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import psutil
import pytest

from mcp.monitoring.base import Reading
from mcp.monitoring.bot_checks import CircuitBreakerCheck, ErrorRateWindow, MainBotCheck, TradeExecutorCheck
from mcp.monitoring.levels import Level
from mcp.monitoring.process_checks import HostCheck, ServersCheck, SidecarCheck, existing_ancestor, server_level
from mcp.monitoring.sources import BotStateReader, ServerStatesUnavailable, StatusFileServerStates
from mcp.monitoring.thresholds import MonitoringLimits
from tests.fakes.fake_host import FakeHost, denied
from tests.fakes.monitoring_builders import NOW, bot_snapshot, breaker_record, files_state, settings, write_state

H, S, D, C = Level.HEALTHY, Level.STARTING, Level.DEGRADED, Level.CRITICAL


def limits(tmp_path: Path, **overrides: Any) -> MonitoringLimits:
    return MonitoringLimits.from_settings(settings(tmp_path, **overrides))


def reader(folder: Path) -> BotStateReader:
    # cache_seconds=0: every run reads the files again, so tests can change them between runs
    return BotStateReader(folder / "risk_state.json", folder / "circuit_breaker.json", cache_seconds=0)


async def one(check: Any, now: float = NOW) -> Reading:
    readings = await check.run(now)
    assert list(readings) == [check.name]
    return readings[check.name]


# --- main_bot -----------------------------------------------------------------------------------------


def main_bot(tmp_path: Path, alive: bool = True) -> MainBotCheck:
    return MainBotCheck(reader(tmp_path), lambda pid: alive, limits(tmp_path), interval=10)


@pytest.mark.parametrize(
    ("snapshot", "alive", "level", "fragment"),
    [
        (bot_snapshot(), True, H, "snapshot 1.0 s old, pid"),
        (bot_snapshot(updated_at_epoch=NOW - 35), True, D, "35 s old (stale after 60 s)"),
        (bot_snapshot(updated_at_epoch=NOW - 61), True, C, "risk snapshot is stale: 61 s old"),
        (bot_snapshot(), False, C, "is not running (last snapshot 1 s old): restart the bot"),
        (bot_snapshot(updated_at_epoch=NOW - 500), False, C, "is not running"),
        (bot_snapshot(updated_at_epoch="yesterday"), True, C, "field 'updated_at_epoch' should be a number"),
        ({k: v for k, v in bot_snapshot().items() if k != "updated_at_epoch"}, True, D, "no updated_at_epoch"),
        ({k: v for k, v in bot_snapshot().items() if k != "pid"}, True, D, "names no pid"),
        (bot_snapshot(schema_version=2), True, C, "expected schema_version 1, received 2"),
        ("{not json", True, C, "is not valid JSON"),
        ("[1, 2]", True, C, "should hold a JSON object"),
    ],
)
async def test_main_bot(tmp_path: Path, snapshot: Any, alive: bool, level: Level, fragment: str) -> None:
    write_state(tmp_path, snapshot)
    reading = await one(main_bot(tmp_path, alive))
    assert (reading.level, fragment in reading.message) == (level, True), reading.message


async def test_main_bot_without_a_snapshot_is_critical_and_says_where_it_looked(tmp_path: Path) -> None:
    reading = await one(main_bot(tmp_path))
    assert reading.level is C
    assert str(tmp_path / "risk_state.json") in reading.message
    assert "is the bot running, with the same STATE_DIR?" in reading.message


async def test_main_bot_asks_about_the_pid_off_the_event_loop(tmp_path: Path) -> None:
    import threading

    threads: list[str] = []

    def pid_alive(pid: int) -> bool:
        threads.append(threading.current_thread().name)
        return True

    write_state(tmp_path, bot_snapshot(pid=4242))
    check = MainBotCheck(reader(tmp_path), pid_alive, limits(tmp_path), interval=10)
    reading = await one(check)
    assert reading.figures["pid"] == 4242 and reading.figures["pid_alive"] is True
    assert threads and "MainThread" not in threads


async def test_the_checks_never_write_the_bot_s_files(tmp_path: Path) -> None:
    write_state(tmp_path, bot_snapshot(), breaker_record())
    before = files_state(tmp_path)
    shared = reader(tmp_path)
    lim = limits(tmp_path)
    for check in (
        MainBotCheck(shared, lambda pid: True, lim, interval=10),
        TradeExecutorCheck(shared, lim, interval=10, min_duration=0),
        CircuitBreakerCheck(shared, lim, max_daily_loss=100, interval=10, min_duration=0),
    ):
        await check.run(NOW)
    assert files_state(tmp_path) == before


async def test_the_reader_reads_once_per_cache_period_however_many_checks_ask(tmp_path: Path) -> None:
    write_state(tmp_path, bot_snapshot())
    shared = BotStateReader(tmp_path / "risk_state.json", tmp_path / "circuit_breaker.json", cache_seconds=1.0)
    await asyncio.gather(*(shared.read(NOW) for _ in range(5)))
    assert shared.reads == 1
    await shared.read(NOW + 0.5)
    assert shared.reads == 1
    await shared.read(NOW + 1.0)
    assert shared.reads == 2


# --- trade_executor -------------------------------------------------------------------------------------


def executor(tmp_path: Path, min_duration: float = 0.0, **overrides: Any) -> TradeExecutorCheck:
    return TradeExecutorCheck(reader(tmp_path), limits(tmp_path, **overrides), interval=10, min_duration=min_duration)


@pytest.mark.parametrize(
    ("p99", "count", "level"),
    [(12.0, 50, H), (99.9, 50, H), (100.0, 50, D), (149.0, 50, D), (150.0, 50, C), (900.0, 0, H)],
)
async def test_trade_executor_latency_against_the_budget(tmp_path: Path, p99: float, count: int, level: Level) -> None:
    write_state(tmp_path, bot_snapshot(latency_ms={"p50": 3.0, "p99": p99, "count": count}))
    reading = await one(executor(tmp_path))
    assert reading.level is level
    assert reading.figures["budget_ms"] == 100.0


async def test_trade_executor_budget_comes_from_settings(tmp_path: Path) -> None:
    write_state(tmp_path, bot_snapshot(latency_ms={"p99": 60.0, "count": 5}))
    reading = await one(executor(tmp_path, trading_latency_budget_ms=50))
    assert reading.level is D
    assert "latency p99 60.0 ms (budget 50 ms)" in reading.message


async def test_trade_executor_reports_memory_and_judges_it(tmp_path: Path) -> None:
    write_state(tmp_path, bot_snapshot(rss_mb=700.0))
    reading = await one(executor(tmp_path))
    assert reading.level is D and reading.figures["memory_mb"] == 700.0
    assert "check memory" in reading.message


async def test_trade_executor_error_rate_over_the_window(tmp_path: Path) -> None:
    check = executor(tmp_path)
    write_state(tmp_path, bot_snapshot(trades={"executed": 100, "failed": 0}))
    assert (await one(check, NOW)).figures["error_rate"] is None  # one sample: no window yet
    write_state(tmp_path, bot_snapshot(trades={"executed": 110, "failed": 10}))
    reading = await one(check, NOW + 10)
    assert reading.figures["error_rate"] == 0.5 and reading.level is C
    assert "error rate 50.0% over 20 orders" in reading.message


async def test_trade_executor_without_a_snapshot_is_degraded_not_critical(tmp_path: Path) -> None:
    reading = await one(executor(tmp_path))
    assert reading.level is D and "executor's figures are unknown (no usable risk snapshot" in reading.message


async def test_trade_executor_rejects_a_snapshot_of_the_wrong_shape(tmp_path: Path) -> None:
    write_state(tmp_path, bot_snapshot(latency_ms="not a mapping"))
    reading = await one(executor(tmp_path))
    assert reading.level is D and "field 'latency_ms' should be a JSON object" in reading.message


@pytest.mark.parametrize("latency", [{"p99": "slow", "count": 3}, {"count": None}, {}], ids=["text", "none", "empty"])
async def test_trade_executor_tolerates_malformed_figures(tmp_path: Path, latency: Any) -> None:
    snapshot = bot_snapshot(latency_ms=latency, trades={"executed": "x"})
    del snapshot["rss_mb"]
    write_state(tmp_path, snapshot)
    reading = await one(executor(tmp_path))
    assert reading.level is H  # unknown figures are not judged; main_bot tells whether the bot is alive
    assert reading.figures["latency_p99_ms"] is None


async def test_trade_executor_latency_hysteresis_holds_for_the_minimum_duration(tmp_path: Path) -> None:
    check = executor(tmp_path, min_duration=20.0)
    levels = []
    readings = [(-20, 50.0), (-10, 50.0), (0, 50.0), (10, 120.0), (20, 120.0), (30, 120.0), (40, 97.0), (50, 94.0)]
    readings += [(60, 94.0), (70, 94.0)]
    for offset, p99 in readings:
        write_state(tmp_path, bot_snapshot(NOW + offset, latency_ms={"p99": p99, "count": 10}))
        levels.append((await one(check, NOW + offset)).level)
    # starting until the first readings lasted 20 s (t=0); over budget from t=10: degraded at t=30; 97 ms is
    # inside the 5 ms band: still degraded; 94 ms held 20 s: healthy
    assert levels == [S, S, H, H, H, D, D, D, D, H]


@pytest.mark.parametrize(
    ("samples", "expected"),
    [
        ([(0, 10, 0)], (None, 0)),
        ([(0, 10, 0), (10, 12, 1)], (None, 3)),  # fewer than 5 orders: not judged
        ([(0, 10, 0), (10, 18, 2)], (0.2, 10)),
        ([(0, 10, 0), (100, 20, 0), (400, 30, 5)], (round(5 / 15, 6), 15)),  # baseline: last sample at/before -300 s
        ([(0, 50, 5), (10, 3, 0), (20, 13, 0)], (0.0, 10)),  # totals went down: the bot restarted
    ],
)
def test_error_rate_window(samples: list[tuple[float, float, float]], expected: tuple[float | None, int]) -> None:
    window = ErrorRateWindow(window_seconds=300, min_attempts=5)
    result = None
    for now, executed, failed in samples:
        result = window.add(now, executed, failed)
    assert result == expected


# --- circuit_breaker --------------------------------------------------------------------------------------


def breaker(tmp_path: Path, min_duration: float = 0.0, **overrides: Any) -> CircuitBreakerCheck:
    return CircuitBreakerCheck(
        reader(tmp_path), limits(tmp_path, **overrides), max_daily_loss=100.0, interval=10, min_duration=min_duration
    )


@pytest.mark.parametrize(
    ("loss", "level", "fragment"),
    [
        (0.0, H, "trading ACTIVE, daily loss 0.00 USDC = 0.0% of the 100.00 limit"),
        (11.9, H, "11.9%"),
        (12.0, D, "12.0% of the 100.00 limit (warning at 12%)"),
        (14.99, D, "15.0%"),
        (15.0, C, "(critical at 15%)"),
        (80.0, C, "80.0%"),
    ],
)
async def test_daily_loss_against_the_warning_and_critical_percent(
    tmp_path: Path, loss: float, level: Level, fragment: str
) -> None:
    write_state(tmp_path, bot_snapshot(breaker=breaker_record(daily_loss=loss)))
    reading = await one(breaker(tmp_path))
    assert reading.level is level and fragment in reading.message, reading.message
    assert reading.figures["warning_percent"] == 0.12 and reading.figures["critical_percent"] == 0.15


async def test_staging_percentages_come_from_settings(tmp_path: Path) -> None:
    write_state(tmp_path, bot_snapshot(breaker=breaker_record(daily_loss=12.0)))
    reading = await one(breaker(tmp_path, daily_loss_warning_percent=0.10, daily_loss_critical_percent=0.12))
    assert reading.level is C


@pytest.mark.parametrize(
    ("snapshot", "on_disk", "fragment"),
    [
        (
            bot_snapshot(trading_state="HALTED", breaker=breaker_record("HALTED", trip_reason="daily loss 120 >= 100")),
            None,
            "trading HALTED: daily loss 120 >= 100 (new entries blocked; exits still pass)",
        ),
        (None, breaker_record("HALTED", trip_kind="error_burst"), "trading HALTED: error_burst"),
        # the file was written a moment ago, the snapshot still says ACTIVE: HALTED wins
        (
            bot_snapshot(),
            {"schema_version": 1, "state": "HALTED", "trip_reason": "5 consecutive losses"},
            "5 consecutive losses",
        ),
        (bot_snapshot(trading_state="PAUSED", breaker={"state": "PAUSED"}), None, "unknown trading state 'PAUSED'"),
        (None, "{corrupt", "breaker state file unusable"),
    ],
)
async def test_halted_or_unusable_breaker_is_critical(
    tmp_path: Path, snapshot: Any, on_disk: Any, fragment: str
) -> None:
    write_state(tmp_path, snapshot, on_disk)
    reading = await one(breaker(tmp_path))
    assert reading.level is C and fragment in reading.message, reading.message


async def test_no_breaker_state_at_all_is_degraded(tmp_path: Path) -> None:
    reading = await one(breaker(tmp_path))
    assert reading.level is D and "no circuit-breaker state yet" in reading.message


async def test_daily_loss_limit_falls_back_to_the_risk_parameters_then_settings(tmp_path: Path) -> None:
    record = {"state": "ACTIVE", "daily_loss": 13.0}
    write_state(tmp_path, bot_snapshot(breaker=record, risk_parameters={"max_daily_loss": 50.0}))
    assert (await one(breaker(tmp_path))).figures["daily_loss_limit"] == 50.0
    write_state(tmp_path, bot_snapshot(breaker=record, risk_parameters={}))
    assert (await one(breaker(tmp_path))).figures["daily_loss_percent"] == 0.13


# --- servers ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("entry", "level", "fragment"),
    [
        ({"state": "running", "status": "healthy", "health": {"status": "healthy"}}, H, "running"),
        ({"state": "running", "status": "degraded", "health": {"notes": ["history db locked"]}}, D, "history db"),
        ({"state": "failed", "last_error": "ImportError: x"}, C, "failed and not restarted (last error: ImportError"),
        ({"state": "restarting", "last_error": "boom"}, D, "restarting after: boom"),
        ({"state": "starting"}, S, "starting"),
        ({"state": "zombie"}, C, "unknown supervisor state 'zombie'"),
        ({"state": "running", "status": "???"}, C, "running"),
    ],
)
def test_server_level(entry: Mapping[str, Any], level: Level, fragment: str) -> None:
    found, message = server_level(entry)
    assert found is level and fragment in message


async def test_servers_check_reports_each_server_but_not_monitoring_itself() -> None:
    states = {
        "codebase_search": {"state": "running", "status": "healthy", "health": {"status": "healthy"}},
        "testing": {
            "state": "running",
            "status": "healthy",
            "health": {"status": "healthy", "last_run": {"coverage": 0.91}, "threshold": 0.85},
        },
        "monitoring": {"state": "running", "status": "healthy"},
    }
    check = ServersCheck(lambda: states, interval=10, min_duration=0)
    readings = await check.run(NOW)
    assert set(readings) == {"codebase_search", "testing"}
    assert readings["testing"].figures["coverage"] == 0.91
    assert readings["testing"].figures["coverage_threshold"] == 0.85
    assert check.unavailable is None


async def test_a_restart_shows_only_once_it_lasts_but_failed_shows_at_once() -> None:
    states: dict[str, dict[str, Any]] = {"testing": {"state": "running", "status": "healthy"}}

    async def source() -> dict[str, dict[str, Any]]:
        return states

    check = ServersCheck(source, interval=10, min_duration=20)
    first = (await check.run(NOW - 20))["testing"]
    assert first.level is S and "shown as starting until it lasts 20 s" in first.message
    assert (await check.run(NOW))["testing"].level is H
    states["testing"] = {"state": "restarting", "last_error": "boom"}
    brief = (await check.run(NOW + 10))["testing"]
    assert brief.level is H and "shown as healthy until it lasts 20 s" in brief.message
    states["testing"] = {"state": "failed", "last_error": "boom"}
    assert (await check.run(NOW + 20))["testing"].level is C


async def test_servers_check_without_states_reports_none_and_says_why() -> None:
    def unavailable() -> dict[str, Any]:
        raise ServerStatesUnavailable("status file too old")

    check = ServersCheck(unavailable, interval=10, min_duration=0)
    assert await check.run(NOW) == {}
    assert check.unavailable == "status file too old"
    check.source = None
    assert await check.run(NOW) == {} and check.unavailable == "no supervisor wired in"


async def test_a_source_returning_garbage_fails_the_check_loudly() -> None:
    check = ServersCheck(lambda: ["not", "a", "mapping"], interval=10, min_duration=0)  # type: ignore[arg-type,return-value]
    with pytest.raises(TypeError, match="must return a mapping of server name to state"):
        await check.run(NOW)


@pytest.mark.parametrize(
    ("payload", "fragment"),
    [
        (None, "does not exist yet"),
        ("{broken", "is not valid JSON"),
        ({"pid": 1, "updated_at_epoch": NOW, "servers": {}}, "was written by pid 1, not by this sidecar"),
        ({"pid": "me", "updated_at_epoch": NOW - 400, "servers": {}}, "too old (400 s, expected < 185 s)"),
        ({"pid": "me", "updated_at_epoch": None, "servers": {}}, "too old (unknown"),
        ({"pid": "me", "updated_at_epoch": NOW, "servers": []}, "has no 'servers' object"),
    ],
)
async def test_status_file_states_refuse_what_is_not_this_sidecar_s(
    tmp_path: Path, payload: Any, fragment: str
) -> None:
    import json
    import os

    path = tmp_path / "sidecar_status.json"
    if isinstance(payload, dict) and payload.get("pid") == "me":
        payload["pid"] = os.getpid()
    if payload is not None:
        path.write_text(payload if isinstance(payload, str) else json.dumps(payload))
    source = StatusFileServerStates(path, clock=lambda: NOW, max_age=185)
    with pytest.raises(ServerStatesUnavailable, match=re.escape(fragment)):
        await source()


async def test_status_file_states_of_this_process(tmp_path: Path) -> None:
    import json
    import os

    path = tmp_path / "sidecar_status.json"
    path.write_text(json.dumps({"pid": os.getpid(), "updated_at_epoch": NOW - 5, "servers": {"testing": {}}}))
    assert await StatusFileServerStates(path, clock=lambda: NOW, max_age=185)() == {"testing": {}}


# --- sidecar and host ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cpu", "rss", "level"),
    [(0.5, 50.0, H), (1.0, 50.0, D), (0.5, 100.0, D), (15.0, 50.0, C), (0.5, 1000.0, C)],
)
async def test_sidecar_against_the_monitoring_and_hard_limits(
    tmp_path: Path, cpu: float, rss: float, level: Level
) -> None:
    host = FakeHost(process_cpu=cpu, process_rss_mb=rss)
    check = SidecarCheck(host, limits(tmp_path), interval=10, min_duration=0, min_cpu_span=0)
    await check.prime()
    reading = await one(check)
    assert reading.level is level
    assert (reading.figures["cpu_percent"], reading.figures["memory_mb"]) == (cpu, rss)
    assert host.calls_on("MainThread") == []  # psutil only ever in worker threads


async def test_sidecar_staging_limits(tmp_path: Path) -> None:
    host = FakeHost(process_cpu=0.6, process_rss_mb=40.0)
    lim = limits(tmp_path, monitoring_max_cpu_percent=0.5, monitoring_max_memory_mb=50.0)
    reading = await one(SidecarCheck(host, lim, interval=10, min_duration=0, min_cpu_span=0))
    assert reading.level is D and "limits: 0.5/15 % CPU, 50/1000 MB" in reading.message


async def test_sidecar_psutil_error_propagates_for_the_scheduler_to_contain(tmp_path: Path) -> None:
    host = FakeHost(process_error=denied())
    with pytest.raises(psutil.AccessDenied):
        await SidecarCheck(host, limits(tmp_path), interval=10, min_duration=0).run(NOW)


@pytest.mark.parametrize(
    ("figures", "level", "fragment"),
    [
        ({}, H, "CPU 10 %, memory 40 %, disk 30 % used"),
        ({"host_cpu": 90.0}, D, "high: cpu_percent"),
        ({"memory_percent": 96.0}, C, "high: memory_percent"),
        ({"disk_percent": 88.0, "host_cpu": 99.0}, C, "high: cpu_percent, disk_percent"),
    ],
)
async def test_host(tmp_path: Path, figures: dict[str, float], level: Level, fragment: str) -> None:
    host = FakeHost(**figures)
    check = HostCheck(
        host, limits(tmp_path), tmp_path / "state" / "not-yet", interval=20, min_duration=0, min_cpu_span=0
    )
    await check.prime()
    reading = await one(check)
    assert reading.level is level and fragment in reading.message, reading.message
    assert host.disk_paths == [str(tmp_path)]  # the nearest folder that exists
    assert host.calls_on("MainThread") == []


def test_existing_ancestor(tmp_path: Path) -> None:
    assert existing_ancestor(tmp_path / "a" / "b") == tmp_path
    assert existing_ancestor(tmp_path) == tmp_path
