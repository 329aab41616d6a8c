"""A fake Alertmanager: a real aiohttp app on 127.0.0.1, port 0, serving `POST /api/v2/alerts`.

It validates the body like Alertmanager does (a JSON list of alerts, each with a `labels` object;
400 otherwise), records every accepted batch in `received`, and can answer scripted statuses first:

    async with FakeAlertmanager() as am:
        am.fail(503, 503)
        channel = AlertmanagerChannel(am.base_url)
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Any, Self

from aiohttp import web

from tests.fakes.loopback import serve_on_loopback


class FakeAlertmanager:
    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []
        self.attempts = 0
        self._script: deque[int] = deque()
        self._always: int | None = None
        self._runner: web.AppRunner | None = None
        self._arrived = asyncio.Event()
        self.port = 0

    def fail(self, *statuses: int) -> None:
        """Answer the next requests with these HTTP statuses (one each) instead of accepting them."""
        self._script.extend(statuses)

    def fail_always(self, status: int | None) -> None:
        """Answer every request with `status` (None: accept again)."""
        self._always = status

    async def start(self) -> str:
        app = web.Application()
        app.router.add_post("/api/v2/alerts", self._post)
        self._runner, self.port = await serve_on_loopback(app, shutdown_timeout=0.5)
        return self.base_url

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def wait_for(self, count: int, within: float = 10.0) -> list[dict[str, Any]]:
        """Wait until `count` alerts were accepted."""
        async with asyncio.timeout(within):
            while len(self.received) < count:
                self._arrived.clear()
                await self._arrived.wait()
        return self.received

    async def _post(self, request: web.Request) -> web.Response:
        self.attempts += 1
        if self._script:
            return web.Response(status=self._script.popleft(), text="scripted failure")
        if self._always is not None:
            return web.Response(status=self._always, text="failing")
        try:
            body = await request.json()
        except ValueError:
            return web.Response(status=400, text="body is not JSON")
        if not isinstance(body, list) or not all(
            isinstance(a, dict) and isinstance(a.get("labels"), dict) for a in body
        ):
            return web.Response(status=400, text="expected a list of alerts with labels")
        self.received.extend(body)
        self._arrived.set()
        return web.Response(status=200)
