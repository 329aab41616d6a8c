"""Serve a fake third-party service (a real aiohttp app) on 127.0.0.1, on a free port."""

from __future__ import annotations

from aiohttp import web


async def serve_on_loopback(app: web.Application, *, shutdown_timeout: float = 1.0) -> tuple[web.AppRunner, int]:
    """Start `app` on 127.0.0.1 port 0; returns the runner (cleanup() stops it) and the port bound."""
    runner = web.AppRunner(app, handle_signals=False, access_log=None, shutdown_timeout=shutdown_timeout)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    port = int(runner.addresses[0][1])
    return runner, port
