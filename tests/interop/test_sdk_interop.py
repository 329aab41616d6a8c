"""Interoperability with the official MCP Python SDK client, 2.x and 1.x, over stdio and Streamable HTTP.

Each SDK lives in its own directory under .cache/mcp-sdk (never in .venv: our package `mcp` shadows it) and
runs in a separate interpreter, from a directory outside the project, with PYTHONPATH = that directory only.
The client script (scripts/mcp_interop/sdk_client.py) initializes, lists every tool page by page, calls each
read tool, runs the fixture project's tests with a progress callback, and checks isError for bad arguments.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

import pytest

from config.settings import PROJECT_ROOT
from tests.interop.interop_support import (
    SDK_DIR,
    SDK_PYTHON,
    TOKEN,
    client_workdir,
    require_installed,
    running_sidecar,
    sdk_env,
    sidecar_env,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]

EXPECTED_TOOLS = [
    "search_code",
    "find_risk_parameter_usages",
    "risk_parameter_report",
    "run_tests",
    "get_coverage",
    "coverage_history",
    "get_health",
    "get_risk_state",
    "get_metrics_summary",
    "get_gate_state",
    "get_performance_report",
    "get_positions",
    "get_recent_trades",
    "get_pnl",
]
SDK_MAJORS = ["v2", "v1"]


async def run_client(tmp_path: Path, major: str, *args: str) -> dict[str, Any]:
    workdir = client_workdir(tmp_path)
    process = await asyncio.create_subprocess_exec(
        str(SDK_PYTHON),
        "-s",
        str(workdir / "sdk_client.py"),
        *args,
        cwd=workdir,
        env=sdk_env(major),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(process.communicate(), 100)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert out, f"client printed nothing; stderr:\n{err.decode()[-3000:]}"
    report = json.loads(out.decode().strip().splitlines()[-1])
    assert process.returncode == 0 and "error" not in report, (
        f"{report.get('error')}\n{report.get('traceback', '')}\nstderr:\n{err.decode()[-3000:]}"
    )
    return report


def check_report(report: dict[str, Any], major: str) -> None:
    assert report["sdk_version"].startswith("2." if major == "v2" else "1."), report["sdk_version"]
    assert report["steps"] == ["initialize", "tools/list", "read tools", "run_tests", "bad arguments", "unknown tool"]
    assert report["protocol_version"] == "2025-11-25"
    assert report["server_name"] == "polymarket-mcp"
    assert report["tools"] == EXPECTED_TOOLS
    assert report["pages"] == -(-len(EXPECTED_TOOLS) // 4)  # MCP_TOOLS_PAGE_SIZE=4: the client followed nextCursor
    assert report["schemas_closed"] is True
    for name, call in report["read_calls"].items():
        assert call["is_error"] is False, (name, call)
        assert call["structured"] is True, name
    assert set(report["read_calls"]) == set(EXPECTED_TOOLS) - {"run_tests"}
    assert report["read_calls"]["find_risk_parameter_usages"]["status"] == "ok"
    assert report["read_calls"]["get_gate_state"]["status"] == "ok"
    assert report["run_tests"]["status"] == "passed", report["run_tests"]
    assert report["run_tests"]["coverage"] == 1.0
    progress = report["progress"]
    assert len(progress) >= 2
    values = [event["progress"] for event in progress]
    assert values == sorted(values) and len(set(values)) == len(values)
    assert progress[-1]["total"] is not None and progress[-1]["progress"] == progress[-1]["total"], progress
    assert any(event["message"] and "tests finished" in event["message"] for event in progress), progress
    assert report["bad_arguments"]["is_error"] is True
    assert "invalid arguments" in report["bad_arguments"]["text"]
    assert report["unknown_tool"]["error_code"] == -32602


@pytest.mark.parametrize("major", SDK_MAJORS)
async def test_official_sdk_client_over_stdio(tmp_path: Path, major: str) -> None:
    require_installed(SDK_DIR / major, f"the official MCP Python SDK {major[1]}.x")
    env_args = [item for key, value in sidecar_env(tmp_path).items() for item in ("--env", f"{key}={value}")]
    report = await run_client(
        tmp_path, major, "stdio", "--command", sys.executable, "--cwd", str(PROJECT_ROOT), *env_args
    )
    check_report(report, major)


@pytest.mark.parametrize("major", SDK_MAJORS)
async def test_official_sdk_client_over_streamable_http(tmp_path: Path, major: str) -> None:
    require_installed(SDK_DIR / major, f"the official MCP Python SDK {major[1]}.x")
    async with running_sidecar(tmp_path) as endpoint:
        report = await run_client(tmp_path, major, "http", "--url", endpoint.url, "--token", TOKEN)
    check_report(report, major)
