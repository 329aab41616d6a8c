"""promtool over our Prometheus files and over a real /metrics body.

`promtool check config`, `check rules`, `test rules` (config/prometheus/), and `check metrics` on what
the monitoring server serves over HTTP after real check rounds: only the names the user's reference
requires may draw a warning, and each such warning is documented in docs/metrics.md.
"""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from mcp.monitoring.metrics import METRICS, REQUIRED_NAMES, Kind
from mcp.monitoring.service import AlertTotals
from mcp.monitoring.wiring import MonitoringSources
from mcp.monitoring_server import MonitoringServer
from tests.conftest import PROJECT_ROOT
from tests.fakes.fake_host import FakeHost
from tests.fakes.monitoring_builders import Clock, bot_snapshot, breaker_record, settings, write_state

PROMETHEUS_DIR = PROJECT_ROOT / "config" / "prometheus"
GRAFANA_DASHBOARD = PROJECT_ROOT / "config" / "grafana" / "polymarket-mcp.json"
METRIC_NAME = re.compile(r"\b(?:monitoring|mcp)_[a-z0-9_]+\b")


@pytest.fixture(scope="module")
def promtool() -> str:
    found = shutil.which("promtool") or ("/usr/bin/promtool" if Path("/usr/bin/promtool").exists() else None)
    if found is None:
        pytest.skip(
            "promtool is not installed: `apt-get install prometheus` (Debian's package ships /usr/bin/promtool; "
            "`make test` installs it via scripts/install_test_deps.sh)"
        )
    return found


def run(
    promtool: str, *args: str, stdin: bytes | None = None, cwd: Path = PROMETHEUS_DIR
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [promtool, *args],
        input=None if stdin is None else stdin.decode(),
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.integration
def test_prometheus_config_is_valid(promtool: str) -> None:
    result = run(promtool, "check", "config", "prometheus.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout + result.stderr


@pytest.mark.integration
def test_alert_rules_are_valid(promtool: str) -> None:
    result = run(promtool, "check", "rules", "rules.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 9 rules found" in result.stdout + result.stderr


@pytest.mark.integration
def test_alert_rules_pass_their_unit_tests(promtool: str) -> None:
    result = run(promtool, "test", "rules", "rules_test.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout + result.stderr


@pytest.mark.integration
def test_every_alert_rule_has_a_unit_test() -> None:
    rules = set(re.findall(r"^\s+- alert: (\w+)$", (PROMETHEUS_DIR / "rules.yml").read_text(), re.MULTILINE))
    tested = set(re.findall(r"alertname: (\w+)", (PROMETHEUS_DIR / "rules_test.yml").read_text()))
    assert rules and rules == tested


HISTOGRAM_SUFFIX = re.compile(r"_(bucket|sum|count)$")


def known_series() -> set[str]:
    names = {spec.name for spec in METRICS}
    histograms = [spec.name for spec in METRICS if spec.kind is Kind.HISTOGRAM]
    return names | {f"{name}_{suffix}" for name in histograms for suffix in ("bucket", "sum", "count")}


def test_rules_and_dashboard_use_only_our_metrics() -> None:
    rules = (PROMETHEUS_DIR / "rules.yml").read_text()
    assert set(METRIC_NAME.findall(rules)) <= known_series()
    dashboard = json.loads(GRAFANA_DASHBOARD.read_text())
    exprs = [target["expr"] for panel in dashboard["panels"] for target in panel.get("targets", [])]
    used = {name for expr in exprs for name in METRIC_NAME.findall(expr)}
    assert used <= known_series(), used - known_series()
    table = {spec.name for spec in METRICS}
    panelled = {name if name in table else HISTOGRAM_SUFFIX.sub("", name) for name in used}
    assert panelled == table, f"metrics without a panel: {table - panelled}"
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert dashboard["uid"] == "polymarket-mcp" and len(set(ids)) == len(ids)


async def fixed_gate() -> Mapping[str, Any]:
    return {"market_hours": False, "mcp_circuit_breaker": "half_open", "heavy_work_allowed": False, "reason": "trial"}


async def scrape_after_real_rounds(tmp_path: Path) -> bytes:
    """Serve /metrics on port 0 after check rounds, tool calls, alerts and cache lookups; fetch it over HTTP."""
    clock = Clock()
    write_state(tmp_path, bot_snapshot(clock.now, breaker=breaker_record(daily_loss=20.0)), breaker_record())
    states = {"testing": {"state": "running", "status": "healthy", "health": {"last_run": {"coverage": 0.82}}}}
    server = MonitoringServer(
        settings(tmp_path),
        sources=MonitoringSources(
            psutil_like=FakeHost(),
            pid_exists=lambda pid: True,
            clock=clock,
            server_states=lambda: states,
            gate_status=fixed_gate,
            alert_stats=lambda: AlertTotals({"critical": 1, "warning": 4}, 9),
        ),
        serve_metrics=True,
        metrics_host="127.0.0.1",
        metrics_port=0,
    )
    server.metrics.record_tool_call("codebase_search", "search_code", 0.03)
    server.metrics.record_tool_call("testing", "run_tests", 41.0, error_type="timeout")
    server.metrics.sync_cache("codebase_search", hits=120, requests=130)
    ready = asyncio.Event()
    task = asyncio.create_task(server.run(ready))
    try:
        await asyncio.wait_for(ready.wait(), timeout=30)
        for _ in range(2):
            clock.advance(10)
            await server.check_once()
        url = f"http://127.0.0.1:{server.metrics_bound_port}/metrics"
        async with aiohttp.ClientSession() as session, session.get(url) as response:
            assert response.status == 200
            return await response.read()
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


@pytest.mark.integration
async def test_promtool_check_metrics_warns_only_about_the_reference_names(promtool: str, tmp_path: Path) -> None:
    body = await scrape_after_real_rounds(tmp_path)
    for spec in METRICS:  # every series has samples: promtool sees all of them
        assert f"\n{spec.name.removesuffix('_total')}".encode() in b"\n" + body, spec.name
    result = await asyncio.to_thread(run, promtool, "check", "metrics", stdin=body)
    lines = [line for line in (result.stdout + result.stderr).splitlines() if line.strip()]
    assert result.returncode in (0, 3), result.stdout + result.stderr  # 3: lint problems only
    documented = (PROJECT_ROOT / "docs" / "metrics.md").read_text()
    for line in lines:
        name = line.split()[0]
        assert name in REQUIRED_NAMES, f"promtool complains about a name of ours: {line}"
        assert f"`{line}`" in documented, f"undocumented promtool warning (add it to docs/metrics.md): {line}"
    assert (result.returncode == 0) == (not lines)
