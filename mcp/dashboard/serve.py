"""Starting the dashboard inside the sidecar: refuse an unsafe bind, mount the MCP breaker reset, listen.

The monitoring server calls `start_dashboard` from its run(); the returned runner is cleaned up on stop.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from aiohttp import web

from config.settings import Settings
from mcp.dashboard.app import DEFAULT_MAX_BODY_BYTES, Extension, MonitoringView, ResetBreaker, build_dashboard_app
from mcp.dashboard.security import check_bind_safety, is_loopback_host
from mcp.monitoring.http import start_site
from mcp.monitoring.http_guard import HttpGuard

logger = logging.getLogger(__name__)


async def start_dashboard(
    settings: Settings,
    monitoring: MonitoringView,
    *,
    registry: Any = None,
    reset_breaker: ResetBreaker | None = None,
    host: str,
    port: int,
    extend: Sequence[Extension] = (),
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    trading_source: Any = None,
) -> tuple[web.AppRunner, int]:
    """Serve the dashboard on `host`:`port` (the monitoring server's DASHBOARD_HOST and DASHBOARD_PORT, read
    once there); returns (runner, bound port). Without `reset_breaker` POST /reset-circuit-breaker answers 503.

    Raises DashboardBindError for a non-loopback host without DASHBOARD_TOKEN, and ServeError (naming
    DASHBOARD_PORT) when the port is in use.
    """
    check_bind_safety(host, settings.dashboard_token)
    if settings.dashboard_token is None:
        logger.info("DASHBOARD_TOKEN not set: POST /reset-circuit-breaker is disabled (403)")
    app = build_dashboard_app(
        settings,
        monitoring,
        reset_breaker=reset_breaker,
        registry=registry,
        extend=extend,
        max_body_bytes=max_body_bytes,
        trading_source=trading_source,  # None: the view of STATE_DIR
        # issue 11: beyond loopback, /, /health, /api/* and /metrics need the token (bearer or /login cookie)
        read_token_required=not is_loopback_host(host),
    )
    guard = HttpGuard.from_settings(settings)
    return await start_site(app, host, port, setting="DASHBOARD_PORT", what="dashboard", guard=guard)
