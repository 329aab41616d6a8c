"""METRICS_PORT's /metrics beyond loopback needs DASHBOARD_TOKEN as a bearer; on loopback it stays open (issue 11).

Real HTTP: the real MonitoringServer serves the metrics listener on port 0 (bound to 0.0.0.0 for the
non-loopback case, reached over 127.0.0.1), and the Prometheus example job is checked with promtool.
"""

from __future__ import annotations

import asyncio
import re
import shutil
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from config.settings import Settings
from mcp.dashboard.security import DashboardBindError
from mcp.monitoring.metrics_auth import UNAUTHORIZED, metrics_token_for
from mcp.monitoring_server import MonitoringServer
from mcp.preflight import sidecar_settings_problems
from tests.test_dashboard_server import TOKEN, make_server

ROOT = Path(__file__).resolve().parents[2]
PROMETHEUS_YML = ROOT / "config" / "prometheus" / "prometheus.yml"


def settings(**fields: object) -> Settings:
    return Settings(_env_file=None, **fields)  # type: ignore[call-arg]


@pytest.fixture
async def serve() -> AsyncIterator:  # type: ignore[type-arg]
    tasks: list[asyncio.Task[None]] = []

    async def start(server: MonitoringServer) -> str:
        ready = asyncio.Event()
        task = asyncio.create_task(server.run(ready))
        tasks.append(task)
        waiting = asyncio.create_task(ready.wait())
        await asyncio.wait({task, waiting}, timeout=30, return_when=asyncio.FIRST_COMPLETED)
        waiting.cancel()
        if task.done():
            task.result()  # raise what stopped it
        assert server.metrics_bound_port, "the metrics listener did not start"
        return f"http://127.0.0.1:{server.metrics_bound_port}/metrics"

    yield start
    for task in tasks:
        task.cancel()
        with pytest.raises((asyncio.CancelledError, DashboardBindError)):
            await task


def metrics_server(tmp_path: Path, host: str, **settings_overrides: object) -> MonitoringServer:
    return make_server(
        tmp_path,
        serve_dashboard=False,
        serve_metrics=True,
        metrics_host=host,
        metrics_port=0,
        settings={"dashboard_host": host, **settings_overrides},
    )


async def get(url: str, authorization: str | None = None) -> tuple[int, str, dict[str, str]]:
    headers = {} if authorization is None else {"Authorization": authorization}
    async with aiohttp.ClientSession() as session, session.get(url, headers=headers) as response:
        return response.status, await response.text(), dict(response.headers)


@pytest.mark.integration
async def test_beyond_loopback_metrics_port_needs_the_bearer_token(tmp_path: Path, serve) -> None:  # type: ignore[no-untyped-def]
    url = await serve(metrics_server(tmp_path, "0.0.0.0"))
    status, body, headers = await get(url)
    assert status == 401 and UNAUTHORIZED in body
    assert headers["WWW-Authenticate"] == 'Bearer realm="polymarket-metrics"'
    for wrong in ("Bearer wrong", f"Bearer {TOKEN}x", f"Basic {TOKEN}", "Bearer "):
        assert (await get(url, wrong))[0] == 401, wrong
    status, body, _ = await get(url, f"Bearer {TOKEN}")
    assert status == 200 and "# TYPE" in body  # the Prometheus exposition itself


@pytest.mark.integration
async def test_on_loopback_metrics_port_stays_open(tmp_path: Path, serve) -> None:  # type: ignore[no-untyped-def]
    url = await serve(metrics_server(tmp_path, "127.0.0.1"))
    status, body, _ = await get(url)
    assert status == 200 and "# TYPE" in body


@pytest.mark.integration
async def test_beyond_loopback_without_a_token_the_listener_refuses_to_start(tmp_path: Path) -> None:
    server = metrics_server(tmp_path, "0.0.0.0", dashboard_token=None)
    with pytest.raises(
        DashboardBindError, match=r"METRICS_PORT bound to DASHBOARD_HOST=0\.0\.0\.0 without DASHBOARD_TOKEN"
    ):
        await asyncio.wait_for(server.run(asyncio.Event()), 30)
    assert server.metrics_bound_port is None


@pytest.mark.parametrize(
    ("host", "guarded"),
    [("127.0.0.1", False), ("::1", False), ("localhost", False), ("0.0.0.0", True), ("", True), ("10.0.0.5", True)],
)
def test_the_loopback_rule_is_the_dashboards(host: str, guarded: bool) -> None:
    assert (metrics_token_for(host, TOKEN) is not None) is guarded
    if guarded:
        with pytest.raises(DashboardBindError, match="Set DASHBOARD_TOKEN"):
            metrics_token_for(host, "  ")


def test_preflight_names_the_missing_token_for_a_public_metrics_port_without_the_dashboard() -> None:
    problems = sidecar_settings_problems(
        settings(dashboard_enabled=False, metrics_enabled=True, dashboard_host="0.0.0.0")
    )
    assert len(problems) == 1 and "refusing to serve /metrics on METRICS_PORT" in problems[0]
    # with the dashboard on, its own check names the token once; on loopback nothing is said
    both = sidecar_settings_problems(settings(dashboard_enabled=True, metrics_enabled=True, dashboard_host="0.0.0.0"))
    assert len(both) == 1 and "refusing to serve the dashboard" in both[0]
    assert sidecar_settings_problems(settings(dashboard_enabled=False, metrics_enabled=True)) == []


def remote_scrape_example() -> str:
    """The commented remote-scrape job of prometheus.yml, uncommented."""
    text = PROMETHEUS_YML.read_text()
    found = re.search(r"# BEGIN remote-scrape example\n(.*?)\n\s*# END remote-scrape example", text, re.S)
    assert found, "prometheus.yml lost its remote-scrape example"
    return "\n".join(re.sub(r"^\s*# ?", "", line) for line in found.group(1).splitlines())


@pytest.mark.integration
def test_the_prometheus_remote_scrape_example_is_a_valid_config(tmp_path: Path) -> None:
    promtool = shutil.which("promtool") or "/usr/bin/promtool"
    if not Path(promtool).exists():
        pytest.skip("promtool is not installed (Debian: apt-get install prometheus)")
    example = remote_scrape_example()
    assert "credentials_file:" in example and "type: Bearer" in example
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN)
    job = example.replace("/etc/prometheus/polymarket_dashboard_token", str(token_file))
    config = tmp_path / "prometheus.yml"
    config.write_text("scrape_configs:\n" + "\n".join("  " + line for line in job.splitlines()) + "\n")
    result = subprocess.run([promtool, "check", "config", str(config)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr + config.read_text()
    assert "SUCCESS" in result.stdout + result.stderr


@pytest.mark.integration
def test_the_sidecar_cli_exits_2_for_a_public_metrics_port_without_a_token(tmp_path: Path) -> None:
    env = {
        "PATH": "/usr/bin:/bin",
        "STATE_DIR": str(tmp_path / "state"),
        "LOG_DIR": str(tmp_path / "logs"),
        "DASHBOARD_ENABLED": "false",  # the metrics listener alone: the dashboard's own check does not apply
        "DASHBOARD_HOST": "0.0.0.0",
        "METRICS_PORT": "0",
    }
    done = subprocess.run(
        [sys.executable, "-m", "mcp.main_mcp", "monitoring"],
        cwd=ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2, done.stderr
    assert "refusing to serve /metrics on METRICS_PORT bound to DASHBOARD_HOST=0.0.0.0" in done.stderr
    assert "Traceback" not in done.stderr
