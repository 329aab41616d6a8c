"""Adding a server is one registry entry and one module (issue 12): the walk-through, proven.

A new server's module holds its class; its factory receives the one `SidecarGraph` (settings, the
integrator, the gate, the servers built before it) and needs no wiring in mcp/main_mcp.py. One entry in
`mcp.server_registry.SERVERS` (added here with monkeypatch) makes it a command, a server of `all`, started
and supervised by the real Supervisor, listed by `status`, and offered over MCP.
"""

from __future__ import annotations

import asyncio
import io
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from config.settings import Settings
from mcp.main_mcp import build_parser, serve
from mcp.server_registry import SERVERS, ServerSpec, selected_servers
from mcp.sidecar_builder import build_graph
from mcp.sidecar_graph import SidecarGraph
from mcp.status import STATUS_FILE_NAME, status_command
from mcp.tools.runtime import build_dispatcher
from utils.sd_notify import SystemdNotifier


class EchoServer:
    """The newcomer's module: a server built from the graph, with one tool."""

    name = "echo"

    def __init__(self, graph: SidecarGraph) -> None:
        self.settings = graph.settings
        self.integrator = graph.integrator  # what a server that reads the MCP breaker would keep
        self.runs = 0

    async def run(self, ready: asyncio.Event) -> None:
        self.runs += 1
        ready.set()
        await asyncio.Event().wait()

    def health(self) -> dict[str, Any]:
        return {"status": "healthy", "message": f"echoing (run {self.runs})"}

    async def echo(self, text: str) -> dict[str, Any]:
        """Say `text` back."""
        return {"status": "ok", "text": text}

    def tools(self) -> list[Callable[..., Any]]:
        return [self.echo]


def sidecar_settings(tmp_path: Path) -> Settings:
    return Settings(  # type: ignore[call-arg]
        _env_file=None,
        state_dir=tmp_path / "state",
        log_dir=tmp_path / "logs",
        mcp_search_root=tmp_path,
        mcp_testing_project_root=tmp_path,
        mcp_codebase_search_enabled=False,  # no scan, no test run: the newcomer is what this test is about
        mcp_testing_enabled=False,
        dashboard_enabled=False,
        metrics_enabled=False,
        mcp_health_loop_seconds=1,
    )


async def status_listing(state_dir: Path, name: str) -> dict[str, Any]:
    """The `status --json` answer once it lists `name` as running (the supervisor rewrites it every tick)."""
    for _ in range(3000):
        if (state_dir / STATUS_FILE_NAME).exists():
            out = io.StringIO()
            await asyncio.to_thread(status_command, state_dir, out, as_json=True, now=time.time)
            answer = json.loads(out.getvalue())
            servers = (answer.get("status") or {}).get("servers") or {}
            if servers.get(name, {}).get("state") == "running":
                return answer
        await asyncio.sleep(0.01)
    raise AssertionError(f"status never listed {name!r} as running")


async def test_one_registry_entry_makes_a_supervised_listed_server(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(SERVERS, "echo", ServerSpec(EchoServer, enabled_setting=None, gated=False))
    config = sidecar_settings(tmp_path)
    assert build_parser().parse_args(["echo"]).command == "echo"  # `python -m mcp.main_mcp echo`
    names = selected_servers("all", config)
    assert names == ["monitoring", "echo"]

    sidecar = await asyncio.to_thread(build_graph, config, names, services=True)  # file reads: off the loop
    assert sidecar.unavailable == {}
    echo = sidecar.graph.servers["echo"]
    assert isinstance(echo, EchoServer) and echo.integrator is sidecar.graph.integrator is not None
    assert echo.settings is config  # one Settings object for the whole sidecar
    dispatcher = build_dispatcher(config, sidecar.servers, integrator=sidecar.graph.integrator)
    assert "echo" in dispatcher.registry.names()

    stop = asyncio.Event()
    running = asyncio.create_task(
        serve(config, sidecar.servers, notifier=SystemdNotifier(""), stop=stop, install_signal_handlers=False)
    )
    try:
        answer = await status_listing(config.state_dir, "echo")
    finally:
        stop.set()
    assert await asyncio.wait_for(running, timeout=30) == 0
    listed = answer["status"]["servers"]
    assert listed["echo"]["health"]["message"] == "echoing (run 1)"
    assert {"monitoring", "echo", "risk_integrator", "alert_rules"} <= set(listed)
    text = io.StringIO()
    status_command(config.state_dir, text, now=time.time)
    assert "echo" in text.getvalue()
