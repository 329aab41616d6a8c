"""The monitoring server as the operator meets it: /health's report, the checks' verdicts, /metrics over HTTP.

Real state files in a temporary STATE_DIR, a psutil-shaped fake host, an injected clock and pid check; the
metrics endpoint is served on a real loopback port (port 0) and scraped over HTTP.
"""

from __future__ import annotations

import asyncio
import json
import math
import socket
from collections.abc import AsyncIterator, Callable, Mapping
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from mcp.monitoring.http import ServeError
from mcp.monitoring.metrics import METRICS
from mcp.monitoring.service import AlertTotals
from mcp.monitoring_server import MonitoringServer, format_report
from mcp.server import Server
from tests.fakes.fake_host import FakeHost
from tests.fakes.monitoring_builders import (
    NOW,
    Clock,
    bot_snapshot,
    breaker_record,
    files_state,
    settings,
    write_state,
)
from tests.fakes.monitoring_wiring import monitoring_server
from tests.waiting import eventually

COMPONENT_KEYS = {"status", "message", "figures", "checked_at", "since"}
GATE = {"market_hours": False, "mcp_circuit_breaker": "closed", "heavy_work_allowed": True, "reason": "ok"}


async def fixed_gate() -> Mapping[str, Any]:
    return GATE


def make_server(tmp_path: Path, clock: Clock | None = None, **kw: Any) -> MonitoringServer:
    overrides = kw.pop("settings", {})
    kw.setdefault("psutil_like", FakeHost())
    kw.setdefault("pid_exists", lambda pid: True)
    kw.setdefault("server_states", lambda: {})
    kw.setdefault("gate_status", fixed_gate)
    kw.setdefault("alert_stats", lambda: None)
    kw.setdefault("serve_metrics", False)
    kw.setdefault("serve_dashboard", False)  # the dashboard has its own tests (tests/test_dashboard.py)
    clock = clock or Clock()
    kw.setdefault("sleep", asyncio.sleep)  # real: a running server waits its interval (tests cancel it)
    # the ratings at once (no warm-up, no minimum duration unless a test sets one, no CPU baseline age):
    # the warm-up and the baseline are proven in tests/test_health_truth.py
    kw.setdefault("hold", 0.0)
    kw.setdefault("min_cpu_span", 0.0)
    return monitoring_server(settings(tmp_path, **overrides), clock=clock, **kw)


async def report_for(tmp_path: Path, snapshot: Any = None, breaker: Any = None, **kw: Any) -> dict[str, Any]:
    write_state(tmp_path, snapshot, breaker)
    return await make_server(tmp_path, **kw).check_once()


def samples(body: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    found = {}
    for family in text_string_to_metric_families(body):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


# --- the report ---------------------------------------------------------------------------------------


def test_it_is_a_sidecar_server(tmp_path: Path) -> None:
    server = make_server(tmp_path)
    assert isinstance(server, Server) and server.name == "monitoring"
    assert [tool.__name__ for tool in server.tools()] == ["health_report", "history"]


async def test_the_report_has_the_agreed_shape(tmp_path: Path) -> None:
    report = await report_for(tmp_path, bot_snapshot())
    assert set(report) == {
        "status",
        "verdict",
        "generated_at",
        "uptime_seconds",
        "environment",
        "components",
        "circuit_breaker",
        "gate",
        "isolation",  # issue 10: which isolation keeps heavy work from hurting trading
    }
    # not started in this process (serve() decides it): said, not guessed
    assert report["isolation"]["isolation"] is None and "starting" in report["isolation"]["note"]
    assert list(report["components"]) == [
        "main_bot",
        "trade_executor",
        "circuit_breaker",
        "monitoring",
        "sidecar",
        "host",
    ]
    for component in report["components"].values():
        assert set(component) == COMPONENT_KEYS
        assert component["status"] in {"healthy", "degraded", "critical"}
    assert report["verdict"] == {"status": report["status"], "passed": True, "label": "PASS", "problems": []}
    assert report["environment"] == "development"
    assert report["generated_at"] == "2027-01-15T08:00:00+00:00"
    assert report["circuit_breaker"] == {"trading_state": "ACTIVE", "trip_reason": None}
    assert report["gate"] == GATE
    json.dumps(report)  # JSON-safe as it stands


async def test_a_healthy_bot_is_healthy_everywhere(tmp_path: Path) -> None:
    report = await report_for(tmp_path, bot_snapshot())
    assert report["status"] == "healthy", report
    main_bot = report["components"]["main_bot"]
    assert main_bot["message"].startswith("snapshot 1.0 s old, pid") and main_bot["figures"]["pid_alive"] is True


async def test_trade_executor_shows_its_status_and_memory(tmp_path: Path) -> None:
    """The user's test plan, Phase 5: `jq '.components.trade_executor'` shows status and memory."""
    report = await report_for(tmp_path, bot_snapshot(rss_mb=142.5))
    executor = report["components"]["trade_executor"]
    assert executor["status"] == "healthy"
    assert executor["figures"]["memory_mb"] == 142.5
    assert executor["figures"]["latency_p99_ms"] == 12.0 and executor["figures"]["budget_ms"] == 100.0


@pytest.mark.parametrize(
    ("snapshot", "pid_alive", "fragment"),
    [
        (bot_snapshot(updated_at_epoch=NOW - 90), True, "risk snapshot is stale: 90 s old"),
        (bot_snapshot(), False, "is not running"),
        ("{truncated", True, "is not valid JSON"),
        (None, True, "has not published a risk snapshot yet"),
        (bot_snapshot(schema_version=7), True, "expected schema_version 1, received 7"),
    ],
    ids=["stale", "dead-pid", "corrupt", "missing", "wrong-schema"],
)
async def test_main_bot_critical(tmp_path: Path, snapshot: Any, pid_alive: bool, fragment: str) -> None:
    report = await report_for(tmp_path, snapshot, pid_exists=lambda pid: pid_alive)
    main_bot = report["components"]["main_bot"]
    assert main_bot["status"] == "critical" and fragment in main_bot["message"], main_bot
    assert report["status"] == "critical"


async def test_the_bot_s_files_are_only_read(tmp_path: Path) -> None:
    write_state(tmp_path, bot_snapshot(), "{corrupt breaker")
    before = files_state(tmp_path)
    server = make_server(tmp_path)
    for _ in range(3):
        await server.check_once()
    assert files_state(tmp_path) == before


async def test_halted_breaker_is_critical_and_named_in_the_report(tmp_path: Path) -> None:
    record = breaker_record("HALTED", trip_kind="daily_loss", trip_reason="daily loss 104.00 >= limit 100.00")
    report = await report_for(tmp_path, bot_snapshot(trading_state="HALTED", breaker=record))
    assert report["components"]["circuit_breaker"]["status"] == "critical"
    assert report["circuit_breaker"] == {"trading_state": "HALTED", "trip_reason": "daily loss 104.00 >= limit 100.00"}


@pytest.mark.parametrize(("loss", "status"), [(5.0, "healthy"), (12.0, "degraded"), (15.0, "critical")])
async def test_daily_loss_at_warning_and_critical(tmp_path: Path, loss: float, status: str) -> None:
    report = await report_for(tmp_path, bot_snapshot(breaker=breaker_record(daily_loss=loss)))
    breaker = report["components"]["circuit_breaker"]
    assert breaker["status"] == status
    assert breaker["figures"]["daily_loss_percent"] == loss / 100


@pytest.mark.parametrize(("p99", "status"), [(99.0, "healthy"), (100.0, "degraded"), (160.0, "critical")])
async def test_trading_latency_p99_against_the_100_ms_budget(tmp_path: Path, p99: float, status: str) -> None:
    report = await report_for(tmp_path, bot_snapshot(latency_ms={"p50": 5.0, "p99": p99, "count": 20}))
    assert report["components"]["trade_executor"]["status"] == status


async def test_latency_hovering_at_the_budget_does_not_flap(tmp_path: Path) -> None:
    clock = Clock()
    server = make_server(tmp_path, clock, hold=None)  # the standard minimum duration: 1.5 intervals
    seen = []
    for p99 in [90.0, 101.0, 99.0, 102.0, 98.0, 101.0, 99.5, 100.5]:
        write_state(tmp_path, bot_snapshot(clock.now, latency_ms={"p99": p99, "count": 9}))
        seen.append((await server.check_once())["components"]["trade_executor"]["status"])
        clock.advance(10)
    # starting until the readings have lasted 15 s, then healthy: no excursion lasted long enough
    assert seen == ["starting"] * 2 + ["healthy"] * (len(seen) - 2)


async def test_a_failing_check_is_reported_and_the_others_go_on(tmp_path: Path) -> None:
    def broken(pid: int) -> bool:
        raise RuntimeError("proc is not mounted")

    report = await report_for(tmp_path, bot_snapshot(), pid_exists=broken)
    components = report["components"]
    assert components["main_bot"]["status"] == "critical"
    assert components["main_bot"]["message"] == "health check failed: RuntimeError: proc is not mounted"
    assert components["trade_executor"]["status"] == "healthy"
    assert components["sidecar"]["status"] == "healthy"
    assert components["monitoring"]["status"] == "degraded"
    assert "1 check(s) failing: main_bot" in components["monitoring"]["message"]


async def test_each_check_keeps_its_own_interval(tmp_path: Path) -> None:
    clock = Clock()
    host = FakeHost()
    server = make_server(tmp_path, clock, psutil_like=host, settings={"monitor_interval_seconds": 30})
    await server.check_once()
    checked = {name: c["checked_at"] for name, c in server.health_report()["components"].items()}
    clock.advance(10)  # the host is sampled every 10 s (HOST_SAMPLE_SECONDS), the others every 30 s
    await server.check_once()
    again = {name: c["checked_at"] for name, c in server.health_report()["components"].items()}
    assert again["host"] != checked["host"]
    assert again["main_bot"] == checked["main_bot"] and again["sidecar"] == checked["sidecar"]
    clock.advance(20)
    await server.check_once()
    assert server.health_report()["components"]["main_bot"]["checked_at"] != checked["main_bot"]


async def test_reports_come_from_the_cache_and_never_call_psutil(tmp_path: Path) -> None:
    host = FakeHost()
    server = make_server(tmp_path, psutil_like=host)
    await server.check_once()
    calls = len(host.calls)
    for _ in range(50):
        server.health_report()
        server.health()
        server.history()
        server.metrics.exposition()
    assert len(host.calls) == calls
    assert host.calls_on("MainThread") == []  # and every psutil call ran in a worker thread


async def test_the_siblings_come_from_the_supervisor(tmp_path: Path) -> None:
    states = {
        "codebase_search": {"state": "running", "status": "healthy", "health": {"status": "healthy"}},
        "testing": {"state": "failed", "last_error": "ImportError: no module named coverage"},
        "monitoring": {"state": "running", "status": "healthy"},
    }
    server = make_server(tmp_path)
    server.set_server_states(lambda: states)
    report = await server.check_once()
    assert list(report["components"])[3:6] == ["codebase_search", "testing", "monitoring"]
    assert report["components"]["codebase_search"]["status"] == "healthy"
    assert report["components"]["testing"]["status"] == "critical"
    assert "ImportError: no module named coverage" in report["components"]["testing"]["message"]


async def test_staging_thresholds_come_from_settings(tmp_path: Path) -> None:
    staging = {"daily_loss_warning_percent": 0.10, "daily_loss_critical_percent": 0.12, "environment": "staging"}
    report = await report_for(tmp_path, bot_snapshot(breaker=breaker_record(daily_loss=11.0)), settings=staging)
    assert report["components"]["circuit_breaker"]["status"] == "degraded"
    assert report["environment"] == "staging"


async def test_no_secret_reaches_the_report_or_the_metrics(tmp_path: Path) -> None:
    canaries = {"telegram_bot_token": "123456:CANARY-telegram", "dashboard_token": "CANARY-dashboard"}
    canaries["private_key"] = "0x" + "c" * 64
    server = make_server(tmp_path, settings=canaries)
    write_state(tmp_path, bot_snapshot())
    await server.check_once()
    text = json.dumps(server.health_report()) + json.dumps(server.health()) + server.metrics.exposition().decode()
    assert "CANARY" not in text and "c" * 64 not in text


# --- what the operator sees on a terminal ---------------------------------------------------------------


async def test_report_lines_carry_cpu_percent_and_memory_mb(tmp_path: Path) -> None:
    printed: list[dict[str, Any]] = []
    server = make_server(tmp_path, psutil_like=FakeHost(process_cpu=0.4, process_rss_mb=48.0), report=printed.append)
    await server.check_once()
    lines = format_report(printed[-1])
    assert "monitoring overall=critical" in lines[0]  # no bot running here
    sidecar = next(line for line in lines if line.startswith("  sidecar:"))
    assert "cpu_percent=0.4" in sidecar and "memory_mb=48.0" in sidecar


async def test_health_for_the_supervisor_lists_components_in_brief(tmp_path: Path) -> None:
    server = make_server(tmp_path)
    assert server.health()["status"] == "starting"  # nothing checked yet
    write_state(tmp_path, bot_snapshot())
    await server.check_once()
    health = server.health()
    assert health["status"] == "healthy" and health["rounds"] == 1
    assert health["components"]["sidecar"]["cpu_percent"] == 0.5
    assert "figures" not in health["components"]["main_bot"]


# --- running ------------------------------------------------------------------------------------------


@pytest.fixture
async def running(tmp_path: Path) -> AsyncIterator[Callable[..., Any]]:
    tasks: list[asyncio.Task[None]] = []

    async def start(server: MonitoringServer) -> MonitoringServer:
        ready = asyncio.Event()
        tasks.append(asyncio.create_task(server.run(ready)))
        await asyncio.wait_for(ready.wait(), timeout=30)
        return server

    yield start
    for task in tasks:
        task.cancel()
    for task in tasks:
        with pytest.raises(asyncio.CancelledError):
            await task


@pytest.mark.integration
async def test_metrics_are_served_over_http_with_every_required_name(
    tmp_path: Path, running: Callable[..., Any]
) -> None:
    write_state(tmp_path, bot_snapshot(trading_state="HALTED", breaker=breaker_record("HALTED")))
    server = make_server(tmp_path, serve_metrics=True, metrics_host="127.0.0.1", metrics_port=0)
    server.metrics.record_tool_call("testing", "run_tests", 2.5)
    server.metrics.record_tool_call("testing", "run_tests", 0.1, error_type="timeout")
    await running(server)
    port = server.metrics_bound_port
    assert port and server.health()["metrics_endpoint"] == f"http://127.0.0.1:{port}/metrics"
    async with aiohttp.ClientSession() as session, session.get(f"http://127.0.0.1:{port}/metrics") as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        body = await response.text()
    found = samples(body)
    families = {family.name for family in text_string_to_metric_families(body)}
    for spec in METRICS:
        assert spec.name.removesuffix("_total") in families, spec.name
    assert found[("monitoring_circuit_breaker", ())] == 1.0
    assert found[("monitoring_component_status", (("component", "circuit_breaker"),))] == -1.0
    assert found[("monitoring_component_status", (("component", "main_bot"),))] == 1.0
    assert found[("mcp_tool_errors_total", (("error_type", "timeout"), ("server", "testing"), ("tool", "run_tests")))]


@pytest.mark.integration
async def test_the_endpoint_closes_when_the_server_stops(tmp_path: Path) -> None:
    server = make_server(tmp_path, serve_metrics=True, metrics_host="127.0.0.1", metrics_port=0)
    ready = asyncio.Event()
    task = asyncio.create_task(server.run(ready))
    await asyncio.wait_for(ready.wait(), timeout=30)
    port = server.metrics_bound_port
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert server.metrics_bound_port is None
    with pytest.raises(OSError), socket.create_connection(("127.0.0.1", port), timeout=2):
        pass


@pytest.mark.integration
async def test_a_port_in_use_is_a_clear_error_naming_the_setting(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        server = make_server(tmp_path, serve_metrics=True, metrics_host="127.0.0.1", metrics_port=port)
        with pytest.raises(ServeError) as error:
            await server.run(asyncio.Event())
    message = str(error.value)
    assert f"127.0.0.1:{port}" in message and "already in use" in message and "METRICS_PORT" in message


async def test_metrics_enabled_false_serves_nothing(tmp_path: Path, running: Callable[..., Any]) -> None:
    server = make_server(tmp_path, serve_metrics=None, settings={"metrics_enabled": False, "metrics_port": 1})
    await running(server)
    assert server.metrics_bound_port is None and server.health()["metrics_endpoint"] is None


async def test_after_each_round_the_metrics_follow_the_report(tmp_path: Path) -> None:
    write_state(tmp_path, bot_snapshot(breaker=breaker_record(daily_loss=13.0)))
    server = make_server(tmp_path, alert_stats=lambda: AlertTotals({"critical": 2, "info": 5}, 7))
    report = await server.check_once()
    found = samples(server.metrics.exposition().decode())
    value = {"healthy": 1.0, "degraded": 0.0, "critical": -1.0}
    for name, component in report["components"].items():
        assert found[("monitoring_component_status", (("component", name),))] == value[component["status"]]
    assert found[("monitoring_circuit_breaker", ())] == 0.0
    assert found[("monitoring_memory_usage_mb", ())] == 50.0
    assert found[("monitoring_cpu_usage_percent", ())] == 0.5
    assert found[("mcp_trading_latency_p99_seconds", ())] == pytest.approx(0.012)
    assert found[("mcp_trading_latency_budget_seconds", ())] == pytest.approx(0.1)
    assert found[("mcp_gate_open", ())] == 1.0 and found[("mcp_circuit_breaker_state", ())] == 0.0
    assert found[("monitoring_alerts_sent_total", (("severity", "critical"),))] == 2.0
    assert found[("monitoring_alerts_suppressed_total", ())] == 7.0
    assert found[("monitoring_health_checks_total", (("status", "degraded"),))] == 1.0
    assert math.isnan(found[("mcp_test_coverage_ratio", ())])  # no test run known: unknown, not 0


async def test_a_server_s_cache_totals_become_the_cache_counters(tmp_path: Path) -> None:
    health = {"status": "healthy", "cache": {"hits": 90, "requests": 100}}
    server = make_server(tmp_path, server_states=lambda: {"codebase_search": {"state": "running", "health": health}})
    await server.check_once()
    found = samples(server.metrics.exposition().decode())
    assert found[("mcp_cache_hits_total", (("server", "codebase_search"),))] == 90.0
    assert found[("mcp_cache_requests_total", (("server", "codebase_search"),))] == 100.0


async def test_history_for_the_charts(tmp_path: Path) -> None:
    clock = Clock()
    server = make_server(tmp_path, clock)
    runs = iter([{"run_id": 1, "coverage": 0.87}, {"run_id": 1, "coverage": 0.87}, {"run_id": 2, "coverage": 0.9}])
    last_run: dict[str, object] = {}

    def states() -> dict[str, object]:
        return {"testing": {"state": "running", "health": {"last_run": last_run}}}

    server.set_server_states(states)
    for p99 in (10.0, 20.0, 30.0):
        last_run.update(next(runs))
        write_state(tmp_path, bot_snapshot(clock.now, latency_ms={"p50": 2.0, "p99": p99, "count": 3}))
        await server.check_once()
        clock.advance(10)
    history = server.history()
    assert history["trade_latency_p99_ms"] == [[NOW, 10.0], [NOW + 10, 20.0], [NOW + 20, 30.0]]
    assert history["coverage"] == [[NOW, 0.87], [NOW + 20, 0.9]]  # one point per test run
    assert [point[1] for point in history["sidecar_rss_mb"]] == [50.0, 50.0, 50.0]
    assert set(history) == {
        "trade_latency_p99_ms",
        "trade_latency_p50_ms",
        "sidecar_cpu_percent",
        "sidecar_rss_mb",
        "coverage",
    }


async def test_run_checks_at_once_then_sleeps_until_the_next_check_is_due(
    tmp_path: Path, running: Callable[..., Any]
) -> None:
    clock = Clock()

    async def slow_sleep(seconds: float) -> None:
        await clock.sleep(seconds)
        await asyncio.sleep(0.01)

    server = make_server(tmp_path, clock, sleep=slow_sleep)
    await running(server)
    assert server.service.rounds >= 1
    await eventually(lambda: server.service.rounds >= 3, "three rounds of checks")
    # it wakes every 0.5 s to re-read the MCP breaker for the gate (never a busy loop); checks run when due
    assert clock.sleeps[:2] == [0.5, 0.5]
    assert server.service.scheduler.runs["main_bot"] <= 1 + sum(clock.sleeps) / 10.0
