"""A bearer token on METRICS_PORT's /metrics when it listens beyond loopback (issue 11); open on loopback.

The dashboard port's /metrics already needs DASHBOARD_TOKEN beyond loopback (mcp.dashboard.auth); this is
the same rule for the separate metrics listener, which binds DASHBOARD_HOST too. Prometheus sends the token
with `authorization: { credentials_file: ... }` (config/prometheus/prometheus.yml). The loopback test and the
constant-time comparison are the dashboard's own (`is_loopback_host`, `BearerToken`), not copies.
"""

from __future__ import annotations

from aiohttp import hdrs, web
from aiohttp.typedefs import Handler, Middleware
from pydantic import SecretStr

from mcp.dashboard.security import BearerToken, DashboardBindError, bearer_from_header, is_loopback_host

UNAUTHORIZED = "unauthorized: METRICS_PORT listens beyond loopback; send 'Authorization: Bearer <DASHBOARD_TOKEN>'"


def metrics_token_for(host: str, token: SecretStr | str | None) -> BearerToken | None:
    """The token METRICS_PORT's /metrics needs when bound to `host`: None on loopback (open, as before).

    Beyond loopback other machines reach the port, so the figures (P&L, positions, health) need
    DASHBOARD_TOKEN; with none set Prometheus could not be let in either, so this raises DashboardBindError
    saying what to set.
    """
    if is_loopback_host(host):
        return None
    bearer = BearerToken(token)
    if not bearer.configured:
        shown = host if host.strip() else "'' (every interface)"
        raise DashboardBindError(
            f"refusing to serve /metrics on METRICS_PORT bound to DASHBOARD_HOST={shown} without DASHBOARD_TOKEN: "
            "other machines could read every figure. Set DASHBOARD_TOKEN (Prometheus then sends it as a bearer "
            "token, see config/prometheus/prometheus.yml) or bind DASHBOARD_HOST to loopback (127.0.0.1, ::1)"
        )
    return bearer


def metrics_auth_middleware(bearer: BearerToken) -> Middleware:
    """401 (with WWW-Authenticate) unless the request carries `Authorization: Bearer <DASHBOARD_TOKEN>`."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if bearer.matches(bearer_from_header(request.headers.get(hdrs.AUTHORIZATION))):
            return await handler(request)
        return web.json_response(
            {"error": UNAUTHORIZED},
            status=401,
            headers={hdrs.WWW_AUTHENTICATE: 'Bearer realm="polymarket-metrics"'},
        )

    return middleware


def metrics_middlewares(host: str, token: SecretStr | str | None) -> list[Middleware]:
    """What METRICS_PORT's app runs before /metrics: nothing on loopback, the bearer check beyond it."""
    bearer = metrics_token_for(host, token)
    return [] if bearer is None else [metrics_auth_middleware(bearer)]
