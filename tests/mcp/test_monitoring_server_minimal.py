"""The monitoring server's first promises (issue 3), kept through the issue-4 rewrite.

It rates main_bot, trade_executor, circuit_breaker and the sidecar from files it only reads, contains a
failing check, is ready after its first check, and prints cpu_percent / memory_mb. The detailed rules
live in tests/mcp/test_monitoring_checks.py; here they are exercised through the server. One rule
changed on purpose in issue 4: a stale snapshot is critical (it was degraded).
"""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from typing import Any

import psutil
import pytest

from mcp.monitoring.sources import read_snapshot_file
from mcp.monitoring_server import MonitoringServer, format_report
from mcp.server import Server
from tests.fakes.fake_host import FakeHost
from tests.fakes.monitoring_builders import Clock, files_state
from tests.fakes.monitoring_wiring import monitoring_server

NOW = 1_800_000_000.0


def snapshot(**overrides: Any) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "schema_version": 1,
        "pid": 4242,
        "updated_at_epoch": NOW - 2,
        "trading_mode": "paper",
        "trading_state": "ACTIVE",
        "latency_ms": {"p50": 3.0, "p95": 9.0, "p99": 12.0, "max": 20.0, "count": 50},
        "errors": {"total": 1},
    }
    payload.update(overrides)
    return payload


def active(daily_loss: float) -> dict[str, Any]:
    return {"schema_version": 1, "state": "ACTIVE", "daily_loss": daily_loss, "daily_loss_limit": 1000.0}


def make_server(tmp_path: Path, **kw: Any) -> MonitoringServer:
    from config.settings import Settings

    settings = Settings(_env_file=None, state_dir=tmp_path)  # type: ignore[call-arg]
    clock = Clock(NOW)
    kw.setdefault("psutil_like", FakeHost(process_cpu=0.4, process_rss_mb=48.0))
    kw.setdefault("pid_exists", lambda pid: pid == os.getpid())
    kw.setdefault("server_states", lambda: {})
    kw.setdefault("gate_status", _no_gate)
    kw.setdefault("alert_stats", lambda: None)
    kw.setdefault("serve_metrics", False)
    kw.setdefault("sleep", clock.sleep)
    # the ratings themselves, at once: no minimum duration, no CPU baseline age (tests/mcp/test_monitoring_levels.py
    # and test_monitoring_checks.py prove those; test_health_truth.py proves the warm-up through the server)
    kw.setdefault("hold", 0.0)
    kw.setdefault("min_cpu_span", 0.0)
    return monitoring_server(settings, clock=clock, **kw)


async def _no_gate() -> dict[str, Any]:
    return {"heavy_work_allowed": None, "reason": "no integrator in this test"}


async def component(tmp_path: Path, name: str, snap: Any = None, breaker: Any = None, **kw: Any) -> dict[str, Any]:
    if snap is not None:
        (tmp_path / "risk_state.json").write_text(snap if isinstance(snap, str) else json.dumps(snap))
    if breaker is not None:
        (tmp_path / "circuit_breaker.json").write_text(breaker if isinstance(breaker, str) else json.dumps(breaker))
    report = await make_server(tmp_path, **kw).check_once()
    return dict(report["components"][name])


# --- the ratings, through the server -------------------------------------------------------------


@pytest.mark.parametrize(
    ("payload", "problem"),
    [
        (None, "has not published a risk snapshot yet"),
        ({"schema_version": 2}, "expected schema_version 1, received 2"),
        ({}, "expected schema_version 1, received None"),
        ({"schema_version": 1}, None),
    ],
)
def test_validate_snapshot(tmp_path: Path, payload: dict[str, Any] | None, problem: str | None) -> None:
    if payload is not None:
        (tmp_path / "risk_state.json").write_text(json.dumps(payload))
    view = read_snapshot_file(tmp_path / "risk_state.json")
    assert (view.problem is None) if problem is None else (problem in str(view.problem))


@pytest.mark.parametrize(
    ("snap", "alive", "status", "fragment"),
    [
        (None, True, "critical", "is the bot running"),
        (snapshot(), True, "healthy", "snapshot 2.0 s old, pid 4242 alive"),
        (snapshot(), False, "critical", "bot process 4242 is not running"),
        (snapshot(updated_at_epoch=NOW - 500), True, "critical", "500 s old"),  # issue 4: stale is critical
        (snapshot(updated_at_epoch="yesterday"), True, "critical", "'updated_at_epoch' should be a number"),
    ],
)
async def test_assess_main_bot(tmp_path: Path, snap: Any, alive: bool, status: str, fragment: str) -> None:
    found = await component(tmp_path, "main_bot", snap, pid_exists=lambda pid: alive)
    assert found["status"] == status and fragment in found["message"], found


@pytest.mark.parametrize(
    ("latency", "status"),
    [
        ({"p99": 12.0, "count": 50}, "healthy"),
        ({"p99": 99.0, "count": 50}, "healthy"),
        ({"p99": 120.0, "count": 50}, "degraded"),
        ({"p99": 151.0, "count": 50}, "critical"),
        ({"p99": 0.0, "count": 0}, "healthy"),
        ({"count": 5}, "healthy"),  # p99 unknown: not judged
    ],
)
async def test_assess_trade_executor(tmp_path: Path, latency: Any, status: str) -> None:
    assert (await component(tmp_path, "trade_executor", snapshot(latency_ms=latency)))["status"] == status


async def test_assess_trade_executor_without_snapshot(tmp_path: Path) -> None:
    assert (await component(tmp_path, "trade_executor"))["status"] == "degraded"


@pytest.mark.parametrize(
    ("breaker", "snap", "status", "fragment"),
    [
        (active(5.0), None, "healthy", "ACTIVE"),
        (active(130.0), None, "degraded", "13.0%"),
        (active(150.0), None, "critical", "15.0%"),
        ({"schema_version": 1, "state": "HALTED", "trip_reason": "daily loss 120 >= 100"}, None, "critical", "120"),
        (None, snapshot(breaker={"state": "PAUSED"}), "critical", "expected ACTIVE or HALTED"),
        ({"schema_version": 1, "state": "PAUSED"}, None, "critical", "field 'state' should be 'ACTIVE' or 'HALTED'"),
        ("{not json", None, "critical", "not valid JSON"),
        (None, snapshot(trading_state="HALTED"), "critical", "HALTED"),
        (None, snapshot(breaker={"state": "ACTIVE"}), "healthy", "ACTIVE"),
        (None, None, "degraded", "no circuit-breaker state"),
        ({"schema_version": 1, "state": "ACTIVE", "daily_loss": "x"}, None, "critical", "'daily_loss' should be a"),
        ({"state": "ACTIVE"}, None, "critical", "field 'schema_version' is missing"),
    ],
)
async def test_assess_circuit_breaker(tmp_path: Path, breaker: Any, snap: Any, status: str, fragment: str) -> None:
    found = await component(tmp_path, "circuit_breaker", snap, breaker)
    assert found["status"] == status and fragment in found["message"], found


@pytest.mark.parametrize(
    ("cpu", "mem", "status"),
    [
        (0.5, 50.0, "healthy"),
        (2.0, 50.0, "degraded"),
        (0.5, 150.0, "degraded"),
        (20.0, 50.0, "critical"),
        (0.5, 1200.0, "critical"),
    ],
)
async def test_assess_sidecar(tmp_path: Path, cpu: float, mem: float, status: str) -> None:
    found = await component(tmp_path, "sidecar", psutil_like=FakeHost(process_cpu=cpu, process_rss_mb=mem))
    assert found["status"] == status
    assert found["figures"]["cpu_percent"] == cpu and found["figures"]["memory_mb"] == mem


async def test_sample_process_survives_psutil_errors(tmp_path: Path) -> None:
    host = FakeHost(process_error=psutil.AccessDenied(pid=1))
    found = await component(tmp_path, "sidecar", psutil_like=host)
    assert found["status"] == "critical" and "health check failed: AccessDenied" in found["message"]


# --- the server, on real files ----------------------------------------------------------------------


async def test_check_reads_the_state_files_read_only_and_reports_every_component(tmp_path: Path) -> None:
    (tmp_path / "risk_state.json").write_text(json.dumps(snapshot(pid=os.getpid())))
    (tmp_path / "circuit_breaker.json").write_text(json.dumps({"schema_version": 1, "state": "ACTIVE"}))
    before = files_state(tmp_path)
    report = await make_server(tmp_path).check_once()
    assert report["status"] == "healthy"
    assert {name: c["status"] for name, c in report["components"].items()} == {
        "main_bot": "healthy",
        "trade_executor": "healthy",
        "circuit_breaker": "healthy",
        "monitoring": "healthy",
        "sidecar": "healthy",
        "host": "healthy",
    }
    assert report["components"]["main_bot"]["figures"]["snapshot_age_seconds"] == 2.0
    assert report["components"]["trade_executor"]["figures"]["latency_p99_ms"] == 12.0
    assert report["components"]["sidecar"]["figures"]["cpu_percent"] == 0.4
    assert report["components"]["sidecar"]["figures"]["memory_mb"] == 48.0
    assert files_state(tmp_path) == before


async def test_missing_and_corrupt_files_give_a_clear_status(tmp_path: Path) -> None:
    (tmp_path / "circuit_breaker.json").write_text("{not json")
    report = await make_server(tmp_path).check_once()
    components = report["components"]
    assert components["main_bot"]["status"] == "critical"
    assert "(is the bot running, with the same STATE_DIR?)" in components["main_bot"]["message"]
    assert components["circuit_breaker"]["status"] == "critical"
    assert "not valid JSON" in components["circuit_breaker"]["message"]
    assert report["status"] == "critical"
    assert (tmp_path / "circuit_breaker.json").read_text() == "{not json"  # left as it was


async def test_run_is_ready_after_its_first_check_and_serves_health(tmp_path: Path) -> None:
    printed: list[dict[str, Any]] = []
    host = FakeHost()
    # a real sleep of an hour: the test sees exactly the first round
    server = make_server(tmp_path, report=printed.append, interval=3600, psutil_like=host, sleep=asyncio.sleep)
    assert isinstance(server, Server)
    assert server.health()["status"] == "starting"  # nothing checked yet
    ready = asyncio.Event()
    task = asyncio.create_task(server.run(ready))
    await asyncio.wait_for(ready.wait(), timeout=10)
    health = server.health()
    assert health["status"] == "healthy" and health["rounds"] == 1
    assert {"main_bot", "trade_executor", "circuit_breaker", "sidecar"} <= set(health["components"])
    assert len(printed) == 1
    assert [name for name, _ in host.calls].count("process.cpu_percent") == 2  # primed once, then sampled
    assert server.health_report()["status"] == printed[0]["status"]
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_a_failing_check_is_contained_and_reported(tmp_path: Path) -> None:
    def broken_pid_exists(pid: int) -> bool:
        raise RuntimeError("proc unavailable")

    (tmp_path / "risk_state.json").write_text(json.dumps(snapshot()))
    server = make_server(tmp_path, pid_exists=broken_pid_exists, interval=3600, sleep=asyncio.sleep)
    ready = asyncio.Event()
    task = asyncio.create_task(server.run(ready))
    await asyncio.wait_for(ready.wait(), timeout=10)
    health = server.health()
    assert health["status"] == "degraded"
    assert "main_bot" in health["message"]
    assert health["components"]["main_bot"]["message"] == "health check failed: RuntimeError: proc unavailable"
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_report_lines_carry_cpu_percent_and_memory_mb(tmp_path: Path) -> None:
    report = await make_server(tmp_path).check_once()
    lines = format_report(report)
    sidecar = [line for line in lines if line.startswith("  sidecar:")]
    assert sidecar and "cpu_percent=0.4" in sidecar[0] and "memory_mb=48.0" in sidecar[0]
    assert "monitoring overall=critical" in lines[0] and "components=6" in lines[0]
