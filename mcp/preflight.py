"""The sidecar's start-up checks of its settings, beyond the field validation of config.mcp_config.

Both the sidecar (`python -m mcp.main_mcp all`, which exits 2 on a problem) and the bot (`python main.py`
with MCP_INTEGRATION_ENABLED, which refuses to start with the same message and exit code 2, before any
trading) call `sidecar_settings_problems`, so the operator sees the problem once, at once, and the bot never
spawns a sidecar that can only refuse to start.
"""

from __future__ import annotations

from config.settings import Settings
from mcp.dashboard.security import DashboardBindError, check_bind_safety
from mcp.monitoring.metrics_auth import metrics_token_for
from mcp.server_registry import selected_servers

NO_SERVER_ENABLED = "no server enabled: set MCP_CODEBASE_SEARCH_ENABLED, MCP_TESTING_ENABLED or MCP_MONITORING_ENABLED"


def sidecar_settings_problems(settings: Settings, command: str = "all") -> list[str]:
    """Every reason the sidecar would refuse to start `command` with these settings (empty: it would start)."""
    names = selected_servers(command, settings)
    problems = [] if names else [NO_SERVER_ENABLED]
    if "monitoring" in names and settings.dashboard_enabled:
        try:
            check_bind_safety(settings.dashboard_host, settings.dashboard_token)
        except DashboardBindError as e:
            # a public dashboard without a token is a configuration error, not something a restart fixes
            problems.append(str(e))
    elif "monitoring" in names and settings.metrics_enabled:
        # issue 11: METRICS_PORT binds DASHBOARD_HOST too; beyond loopback its /metrics needs the token
        # (said once: with the dashboard on, the check above already names the missing token)
        try:
            metrics_token_for(settings.dashboard_host, settings.dashboard_token)
        except DashboardBindError as e:
            problems.append(str(e))
    return problems
