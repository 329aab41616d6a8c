"""Wiring: the sidecar's servers → one MCP dispatcher, served over stdio or mounted on the dashboard over HTTP.

Over HTTP, inside the running sidecar (`python -m mcp.main_mcp all`), `offer_tools_on_dashboard(settings,
servers)` gives the monitoring server's dashboard an extension that mounts /mcp:

    add_mcp_routes(app, dispatcher_factory(settings, servers, integrator=…), token=settings.dashboard_token,
                   allowed_origins=default_allowed_origins(<the monitoring server's dashboard_port>))

Over stdio (`python -m mcp.main_mcp stdio [servers…]`, one process per assistant session) the servers are
built the same way, but only the monitoring checks run in the background (without binding the dashboard or
metrics ports, which belong to the sidecar); scans and test runs happen when a tool asks, through the
integrator's gate.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from aiohttp import web

from config.settings import Settings
from mcp.dashboard.security import Scrubber
from mcp.monitoring.metrics import MonitoringMetrics, sidecar_version
from mcp.protocol.dispatcher import Dispatcher, ServerInfo
from mcp.protocol.http import DEFAULT_MAX_BODY_BYTES, add_mcp_routes, default_allowed_origins
from mcp.protocol.stdio import serve_stdio
from mcp.protocol.stdio_fds import StdioFds
from mcp.protocol.toolcall import PerClientLimit
from mcp.server import Server
from mcp.server_registry import SERVERS
from mcp.tools.catalog import ToolSource, build_tool_registry
from mcp.tools.monitoring_tools import MonitoringTools
from mcp.tools.trading_tools import TradingTools
from mcp.trading.source import TradingSource

logger = logging.getLogger(__name__)

MONITORING = "monitoring"


def make_scrubber(settings: Settings) -> Callable[[str], str]:
    """Removes every secret value of the settings and masks wallet addresses in outgoing text."""
    return Scrubber.from_settings(settings)


def server_root(server: Any) -> Path | None:
    """The tree a server works on (its path arguments are confined to it)."""
    for attribute in ("root", "project_root"):
        value = getattr(server, attribute, None)
        if isinstance(value, str | Path):
            return Path(value)
    return None


def monitoring_tools_for(
    settings: Settings, server: Any, ready: asyncio.Event | None = None, *, integrator: Any = None
) -> MonitoringTools:
    """The monitoring tools over a MonitoringServer (its cached health report and its metrics registry) and
    the sidecar's integrator (get_gate_state)."""
    metrics = getattr(server, "metrics", None)
    registry = getattr(metrics, "registry", None)
    report = getattr(server, "performance_report", None)
    return MonitoringTools(
        settings, health=server.health_report, registry=registry, ready=ready, report=report, integrator=integrator
    )


def tool_sources(
    settings: Settings,
    servers: Sequence[Server],
    ready: Mapping[str, asyncio.Event] | None = None,
    *,
    integrator: Any = None,
    trading: TradingSource | None = None,
) -> dict[str, ToolSource]:
    """Each server's MCP tools (the monitoring server's are the MonitoringTools over it), with its root.

    Only the servers of the registry (mcp.server_registry.SERVERS) offer tools; the sidecar's other services
    do not. `trading` defaults to the view of STATE_DIR.
    """
    sources: dict[str, ToolSource] = {}
    for server in servers:
        if server.name not in SERVERS:
            continue
        if server.name == MONITORING:
            tools = monitoring_tools_for(settings, server, (ready or {}).get(MONITORING), integrator=integrator)
            # issue 11: the trading view's tools (positions, recent trades, P&L) ride with monitoring
            view = trading if trading is not None else TradingSource.from_settings(settings)
            sources[MONITORING] = ToolSource([*tools.tools(), *TradingTools(view).tools()])
        else:
            sources[server.name] = ToolSource(list(server.tools()), server_root(server))
    return sources


def build_dispatcher(
    settings: Settings,
    servers: Sequence[Server],
    *,
    metrics: Any = None,
    ready: Mapping[str, asyncio.Event] | None = None,
    integrator: Any = None,
    trading: TradingSource | None = None,
) -> Dispatcher:
    """One dispatcher over every server's tools; tool-call metrics go to the monitoring server's registry.

    `integrator` (the sidecar's MCPRiskIntegrator) answers get_gate_state; without it that tool says so.
    """
    monitoring = next((server for server in servers if server.name == MONITORING), None)
    if metrics is None:
        metrics = getattr(monitoring, "metrics", None) if monitoring is not None else None
    if metrics is None:
        metrics = MonitoringMetrics()  # nobody scrapes it, but get_metrics_summary and the counters still work
    registry = build_tool_registry(tool_sources(settings, servers, ready, integrator=integrator, trading=trading))
    return Dispatcher(
        registry,
        server_info=ServerInfo(version=sidecar_version()),
        metrics=metrics,
        page_size=settings.mcp_tools_page_size,
        scrub=make_scrubber(settings),
        limits=tool_limits(settings),
    )


def tool_limits(settings: Settings) -> dict[str, PerClientLimit]:
    """Per-client concurrency limits of the CPU-heavy tools (issue 10: parallel regexes from one client)."""
    return {
        "search_code": PerClientLimit(
            settings.mcp_search_max_concurrent_per_client, "MCP_SEARCH_MAX_CONCURRENT_PER_CLIENT"
        )
    }


def dispatcher_factory(
    settings: Settings, servers: Sequence[Server], *, integrator: Any = None, trading: TradingSource | None = None
) -> Callable[[], Dispatcher]:
    """For add_mcp_routes: builds the dispatcher on the first /mcp request."""
    return lambda: build_dispatcher(settings, servers, integrator=integrator, trading=trading)


def mcp_dashboard_extension(
    settings: Settings,
    servers: Sequence[Server],
    dashboard_port: int,
    *,
    integrator: Any = None,
    trading: TradingSource | None = None,
) -> Callable[[web.Application], None]:
    """A dashboard extension mounting /mcp over `servers`: token DASHBOARD_TOKEN, and the dashboard's own
    loopback origins on `dashboard_port` (the monitoring server's, which read DASHBOARD_PORT)."""

    def extend(app: web.Application) -> None:
        add_mcp_routes(
            app,
            dispatcher_factory(settings, servers, integrator=integrator, trading=trading),
            token=settings.dashboard_token,
            allowed_origins=default_allowed_origins(dashboard_port),
            max_body=DEFAULT_MAX_BODY_BYTES,
        )

    return extend


def offer_tools_on_dashboard(
    settings: Settings, servers: Sequence[Server], *, integrator: Any = None, trading: TradingSource | None = None
) -> bool:
    """Have the monitoring server's dashboard serve every server's tools at /mcp; False when none runs here."""
    monitoring = next((server for server in servers if server.name == MONITORING), None)
    if monitoring is None or not hasattr(monitoring, "dashboard_extensions"):
        return False
    extension = mcp_dashboard_extension(
        settings, servers, monitoring.dashboard_port, integrator=integrator, trading=trading
    )
    monitoring.dashboard_extensions = (*monitoring.dashboard_extensions, extension)
    # the dashboard app's own body limit must not be below /mcp's
    monitoring.dashboard_max_body_bytes = max(monitoring.dashboard_max_body_bytes, DEFAULT_MAX_BODY_BYTES)
    return True


async def _contained(server: Server, ready: asyncio.Event) -> None:
    try:
        await server.run(ready)
    except asyncio.CancelledError:
        raise
    except Exception:
        # the tools still answer from what was cached; the assistant sees a stale or degraded report
        logger.exception("background server %s stopped", server.name)
        ready.set()  # nobody should wait for a first round that will never come


async def serve_stdio_servers(
    settings: Settings,
    servers: Sequence[Server],
    fds: StdioFds,
    *,
    background: Sequence[str] = (MONITORING,),
    stop: asyncio.Event | None = None,
    install_signal_handlers: bool = True,
    integrator: Any = None,
    trading: TradingSource | None = None,
) -> int:
    """Serve the servers' tools over stdio until the client closes stdin (or SIGTERM/SIGINT); exit code 0."""
    ready = {server.name: asyncio.Event() for server in servers if server.name in background}
    dispatcher = build_dispatcher(settings, servers, ready=ready, integrator=integrator, trading=trading)
    stop = stop if stop is not None else asyncio.Event()
    loop = asyncio.get_running_loop()
    if install_signal_handlers:
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
    tasks = [
        asyncio.create_task(_contained(server, ready[server.name]), name=f"mcp-stdio-{server.name}")
        for server in servers
        if server.name in ready
    ]
    logger.info(
        "MCP stdio server ready: %d tools from %s", len(dispatcher.registry), ", ".join(s.name for s in servers)
    )
    try:
        session = await serve_stdio(dispatcher, fds.input_fd, fds.output_fd, stop=stop)
        logger.info("MCP stdio session ended after %d request(s)", session.requests)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if install_signal_handlers:
            for signum in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(signum)
    return 0
