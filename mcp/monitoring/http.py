"""Serving the metrics (and, for the dashboard, any app) on the sidecar's own event loop.

`metrics_app` is an aiohttp application with GET /metrics over a registry; `start_site` binds an app to
host:port with aiohttp's AppRunner and turns "port in use" into an error that names the setting to change.
Bound beyond loopback, METRICS_PORT's app gets the bearer check of `mcp.monitoring.metrics_auth` (issue 11).
With a `guard` (mcp.monitoring.http_guard) the port also refuses foreign Host names, slow request heads and
bodies, and a client's connections beyond the limit.
"""

from __future__ import annotations

import errno
import logging
from collections.abc import Iterable

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware
from prometheus_client import CollectorRegistry
from prometheus_client.aiohttp import make_aiohttp_handler

from mcp.monitoring.http_guard import HttpGuard

logger = logging.getLogger(__name__)

METRICS_PATH = "/metrics"


class ServeError(RuntimeError):
    """An HTTP endpoint of the sidecar cannot listen: change the named setting or free the address."""


def metrics_handler(registry: CollectorRegistry) -> Handler:
    """The GET /metrics handler over `registry` (prometheus_client's own aiohttp handler; the dashboard mounts it)."""
    return make_aiohttp_handler(registry)


def metrics_app(registry: CollectorRegistry, *, middlewares: Iterable[Middleware] = ()) -> web.Application:
    """An application serving `registry` at GET /metrics (the METRICS_PORT endpoint), behind `middlewares`
    (the bearer check when it listens beyond loopback)."""
    app = web.Application(middlewares=list(middlewares))
    app.router.add_get(METRICS_PATH, metrics_handler(registry))
    return app


async def start_site(
    app: web.Application, host: str, port: int, *, setting: str, what: str, guard: HttpGuard | None = None
) -> tuple[web.AppRunner, int]:
    """Serve `app` on host:port; returns the runner (clean it up to stop) and the port actually bound.

    Raises ServeError naming `setting` when the port is taken or the host cannot be bound.
    """
    if guard is not None:
        guard.install(app)
    runner = web.AppRunner(app, access_log=None, **(guard.runner_options() if guard is not None else {}))
    await runner.setup()
    if guard is not None and runner.server is not None:
        guard.limit_connections(runner.server)
    try:
        site = web.TCPSite(runner, host, port)
        await site.start()
    except OSError as e:
        await runner.cleanup()
        if e.errno == errno.EADDRINUSE:
            raise ServeError(
                f"cannot serve {what} on {host}:{port}: the port is already in use; stop the other process "
                f"or set {setting} to a free port"
            ) from e
        raise ServeError(
            f"cannot serve {what} on {host}:{port}: {e.strerror or e} (check DASHBOARD_HOST and {setting})"
        ) from e
    bound = runner.addresses[0][1] if runner.addresses else port
    logger.info("%s listening on http://%s:%d", what, host, bound)
    return runner, int(bound)
