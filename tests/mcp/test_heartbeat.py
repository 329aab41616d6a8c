"""The heartbeat (dead man's switch, outside half) against a real aiohttp fake on loopback, port 0."""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from pydantic import ValidationError

from config.mcp_config import ConfigurationError, validate_monitoring_config
from config.settings import Settings
from mcp.heartbeat import HeartbeatServer, mask_url
from mcp.registry import build_services
from mcp.server import Server
from tests.fakes.loopback import serve_on_loopback
from utils.logging_setup import secret_values

pytestmark = pytest.mark.integration

CHECK_UUID = "5f1c2a3b-1111-2222-3333-444455556666"


class FakeDeadMansSwitch:
    """A healthchecks-style endpoint: GET /ping/<uuid> counts a ping; `status` scripts the answer."""

    def __init__(self) -> None:
        self.pings: list[str] = []
        self.third_ping = asyncio.Event()
        self.status = 200
        self.runner: web.AppRunner | None = None
        self.port = 0

    async def handle(self, request: web.Request) -> web.Response:
        self.pings.append(request.match_info["check"])
        if len(self.pings) >= 3:
            self.third_ping.set()
        return web.Response(status=self.status, text="OK" if self.status == 200 else "nope")

    async def __aenter__(self) -> FakeDeadMansSwitch:
        app = web.Application()
        app.router.add_get("/ping/{check}", self.handle)
        self.runner, self.port = await serve_on_loopback(app)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.runner is not None
        await self.runner.cleanup()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/ping/{CHECK_UUID}"


@pytest.fixture
async def switch() -> AsyncIterator[FakeDeadMansSwitch]:
    async with FakeDeadMansSwitch() as fake:
        yield fake


async def test_the_heartbeat_pings_every_interval_until_cancelled(switch: FakeDeadMansSwitch) -> None:
    heartbeat = HeartbeatServer(switch.url, 0.05)
    assert isinstance(heartbeat, Server)
    ready = asyncio.Event()
    task = asyncio.create_task(heartbeat.run(ready))
    try:
        async with asyncio.timeout(10):
            await ready.wait()
            await switch.third_ping.wait()
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert set(switch.pings) == {CHECK_UUID}
    assert heartbeat.health()["status"] == "healthy" and heartbeat.failures == 0


async def test_a_failing_ping_is_logged_masked_and_never_raised(
    switch: FakeDeadMansSwitch, caplog: pytest.LogCaptureFixture
) -> None:
    switch.status = 500
    heartbeat = HeartbeatServer(switch.url, 30.0)
    async with aiohttp.ClientSession() as session:
        with caplog.at_level(logging.WARNING, logger="mcp.heartbeat"):
            for _ in range(3):
                assert await heartbeat.ping(session) is False
        switch.status = 200
        assert await heartbeat.ping(session) is True
    assert heartbeat.failures == 3 and heartbeat.failures_in_a_row == 0
    assert any("HTTP 500" in message for message in caplog.messages)
    assert CHECK_UUID not in caplog.text and f"127.0.0.1:{switch.port}/ping/***" in caplog.text


async def test_an_unreachable_heartbeat_url_degrades_the_service_but_never_stops_it(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again on exit: nothing listens there
    heartbeat = HeartbeatServer(f"http://127.0.0.1:{port}/ping/{CHECK_UUID}", 30.0, timeout=2.0)
    async with aiohttp.ClientSession() as session:
        with caplog.at_level(logging.WARNING, logger="mcp.heartbeat"):
            for _ in range(3):
                assert await heartbeat.ping(session) is False
    health = heartbeat.health()
    assert health["status"] == "degraded" and health["failures"] == 3
    assert CHECK_UUID not in caplog.text and CHECK_UUID not in str(health)


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        (f"https://hc-ping.example/{CHECK_UUID}", "https://hc-ping.example/***"),
        (
            "https://user:pw@example.org:8443/ping/abcdefabcdefabcdef?key=s3cret",
            "https://example.org:8443/ping/***?key=***",
        ),
        ("http://127.0.0.1:5555/ping/abc", "http://127.0.0.1:5555/ping/abc"),
        ("http://[::1:bad", "<unparseable URL>"),
    ],
)
def test_mask_url_hides_token_like_parts(url: str, shown: str) -> None:
    assert mask_url(url) == shown


def settings(**values: Any) -> Settings:
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


@pytest.mark.parametrize("value", ["hc-ping.example/abc", "ftp://x/y", "http:///nohost", "https://host with space/x"])
def test_a_malformed_heartbeat_url_is_refused_without_echoing_it(value: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        validate_monitoring_config(heartbeat_url=value, heartbeat_interval_seconds=-1)
    message = str(caught.value)
    assert "HEARTBEAT_URL: expected an http(s):// URL" in message and "not shown" in message
    assert "HEARTBEAT_INTERVAL_SECONDS" in message  # every bad field at once
    assert value not in message


def test_the_heartbeat_url_is_a_secret_and_optional() -> None:
    assert settings(heartbeat_url="").heartbeat_url is None
    configured = settings(heartbeat_url=f"https://hc-ping.example/{CHECK_UUID}", heartbeat_interval_seconds=30)
    assert CHECK_UUID not in repr(configured)
    assert f"https://hc-ping.example/{CHECK_UUID}" in secret_values(configured)  # redacted from every log line
    with pytest.raises(ValidationError):
        settings(heartbeat_interval_seconds=0)


def test_the_heartbeat_service_runs_only_when_a_url_is_set(tmp_path: Any) -> None:
    services, _ = build_services(settings(state_dir=tmp_path), [])
    assert "heartbeat" not in [service.name for service in services]
    configured = settings(state_dir=tmp_path, heartbeat_url=f"https://hc-ping.example/{CHECK_UUID}")
    services, unavailable = build_services(configured, [])
    heartbeat = next(service for service in services if service.name == "heartbeat")
    assert unavailable == {} and heartbeat.health()["url"] == "https://hc-ping.example/***"
