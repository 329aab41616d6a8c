"""The MCP Inspector's CLI (@modelcontextprotocol/inspector, run with the machine's node) lists our tools and
calls them, over stdio (it spawns `python -m mcp.main_mcp stdio`) and over Streamable HTTP (with the token)."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import sys
from pathlib import Path
from typing import Any

import pytest

from config.settings import PROJECT_ROOT
from tests.interop.interop_support import (
    INSPECTOR_BIN,
    INSPECTOR_DIR,
    TOKEN,
    require_installed,
    running_sidecar,
    sidecar_env,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ALL_TOOLS = {
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
}


def require_inspector() -> None:
    require_installed(INSPECTOR_DIR, "the MCP Inspector")
    if shutil.which("node") is None:
        pytest.skip("INTEROP SKIPPED - no `node` on PATH to run the MCP Inspector (apt-get install nodejs)")


async def inspector(tmp_path: Path, *args: str) -> dict[str, Any]:
    env = {key: value for key, value in os.environ.items() if not key.startswith(("MCP_", "PYTEST_"))}
    env.update(sidecar_env(tmp_path))
    env.pop("MCP_TOOLS_PAGE_SIZE")  # the Inspector's CLI shows one page: serve them all at once
    process = await asyncio.create_subprocess_exec(
        str(INSPECTOR_BIN),
        "--cli",
        *args,
        cwd=PROJECT_ROOT,  # a stdio server is spawned here, so `python -m mcp.main_mcp` finds our package
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(process.communicate(), 100)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode == 0, f"inspector failed ({process.returncode}):\n{err.decode()[-3000:]}"
    return json.loads(out)


# the server's command goes first: after the options, --tool-arg (variadic) would swallow it
STDIO_SERVER = [sys.executable, "-m", "mcp.main_mcp", "stdio"]


async def test_inspector_lists_and_calls_tools_over_stdio(tmp_path: Path) -> None:
    require_inspector()
    listed = await inspector(tmp_path, *STDIO_SERVER, "--method", "tools/list")
    assert {tool["name"] for tool in listed["tools"]} == ALL_TOOLS
    assert "nextCursor" not in listed
    called = await inspector(
        tmp_path, *STDIO_SERVER, "--method", "tools/call", "--tool-name", "search_code",
        "--tool-arg", "pattern=max_daily_loss", "max_results=5",
    )  # fmt: skip
    assert called["isError"] is False
    assert called["structuredContent"]["match_count"] >= 2
    bad = await inspector(
        tmp_path, *STDIO_SERVER, "--method", "tools/call", "--tool-name", "get_health", "--tool-arg", "component=nope"
    )
    assert bad["isError"] is True


async def test_inspector_lists_and_calls_tools_over_http(tmp_path: Path) -> None:
    require_inspector()
    async with running_sidecar(tmp_path) as endpoint:
        common = [endpoint.url, "--transport", "http", "--header", f"Authorization: Bearer {TOKEN}"]
        listed = await inspector(tmp_path, *common, "--method", "tools/list")
        names = [tool["name"] for tool in listed["tools"]]
        called = await inspector(tmp_path, *common, "--method", "tools/call", "--tool-name", "get_gate_state")
    assert names[:4] == ["search_code", "find_risk_parameter_usages", "risk_parameter_report", "run_tests"]
    assert called["isError"] is False
    assert called["structuredContent"]["status"] == "ok"
    assert called["structuredContent"]["heavy_work_allowed"] is True
