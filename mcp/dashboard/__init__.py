"""The sidecar's dashboard: one page, /health, /api/history, /metrics and POST /reset-mcp-circuit-breaker
(also at its contract name POST /reset-circuit-breaker; the MCP breaker only, never the trading one)."""

from mcp.dashboard.app import build_dashboard_app, health_http_status
from mcp.dashboard.security import DashboardBindError, check_bind_safety, is_loopback_host

__all__ = ["DashboardBindError", "build_dashboard_app", "check_bind_safety", "health_http_status", "is_loopback_host"]
