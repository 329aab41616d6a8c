"""The heartbeat (dead man's switch, outside half) against a real aiohttp fake on loopback, port 0."""

from __future__ import annotations

import asyncio
import json
import logging
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from pydantic import ValidationError

from config.mcp_config import ConfigurationError, validate_monitoring_config
from config.settings import Settings
from mcp.heartbeat import HeartbeatServer, mask_url
from mcp.server import Server
from mcp.sidecar_builder import build_graph
from tests.conftest import PROJECT_ROOT
from tests.fakes.loopback import serve_on_loopback
from tests.live_stack import clean_env, free_port, python, start_child
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
    services = build_graph(settings(state_dir=tmp_path), services=True).servers
    assert "heartbeat" not in [service.name for service in services]
    configured = settings(state_dir=tmp_path, heartbeat_url=f"https://hc-ping.example/{CHECK_UUID}")
    sidecar = build_graph(configured, services=True)
    services, unavailable = sidecar.servers, sidecar.unavailable
    heartbeat = next(service for service in services if service.name == "heartbeat")
    assert unavailable == {} and heartbeat.health()["url"] == "https://hc-ping.example/***"


async def sidecar_status(env: dict[str, str]) -> dict[str, Any]:
    """`python -m mcp.main_mcp status --json` as an operator runs it; its parsed answer and exit code."""
    process = await asyncio.create_subprocess_exec(
        python(),
        "-m",
        "mcp.main_mcp",
        "status",
        "--json",
        cwd=PROJECT_ROOT,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    out, _ = await asyncio.wait_for(process.communicate(), 60)
    return {"exit": process.returncode, **json.loads(out)}


@pytest.mark.slow
@pytest.mark.timeout(120)
async def test_a_real_sidecar_pings_and_three_failures_show_degraded_in_status(
    switch: FakeDeadMansSwitch, tmp_path: Path
) -> None:
    """README: the sidecar GETs HEARTBEAT_URL every interval; three failed pings in a row make the
    `heartbeat` service degraded in `python -m mcp.main_mcp status`, and stop nothing."""
    env = clean_env(
        tmp_path,
        HEARTBEAT_URL=switch.url,
        HEARTBEAT_INTERVAL_SECONDS="0.2",
        MCP_HEALTH_LOOP_SECONDS="1",  # the status file is rewritten each second, not each minute
        DASHBOARD_PORT=free_port(),
        METRICS_PORT=free_port(),
    )
    # `all`, as main.py starts it: the heartbeat is a service of the whole sidecar
    sidecar = await start_child("sidecar", ["-m", "mcp.main_mcp", "all"], env, tmp_path)
    try:
        async with asyncio.timeout(45):
            await switch.third_ping.wait()  # pinged on its interval by the real process
        assert set(switch.pings) == {CHECK_UUID}
        switch.status = 500  # the external check now refuses every ping
        seen: dict[str, Any] = {}
        async with asyncio.timeout(60):
            while True:
                assert sidecar.alive(), f"the sidecar exited:\n{sidecar.text()[-3000:]}"
                answer = await sidecar_status(env)
                heartbeat = ((answer.get("status") or {}).get("servers") or {}).get("heartbeat") or {}
                seen = heartbeat
                if heartbeat.get("status") == "degraded":
                    break
                await asyncio.sleep(0.5)
        assert seen["state"] == "running" and "last ping failed: HTTP 500" in str(seen), seen
        pings_when_degraded = len(switch.pings)
        switch.third_ping.clear()  # set again by the next ping: it goes on pinging, a failure stops nothing
        async with asyncio.timeout(20):
            await switch.third_ping.wait()
        assert len(switch.pings) > pings_when_degraded
        assert sidecar.alive()
    finally:
        await sidecar.stop()
    log = sidecar.text()
    assert CHECK_UUID not in log and "HTTP 500" in log  # failures logged, the URL's token masked
