"""Wrong tokens at POST /login are limited per client IP: 5 a minute, then 429 with Retry-After (issue 11).

The decision is pure (`retry_after`); the HTTP tests run the real dashboard app on loopback port 0 with an
injected clock, and a second client address (127.0.0.2, also loopback on Linux) shows the limit is per IP.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from prometheus_client import CollectorRegistry

from config.settings import Settings
from mcp.dashboard.app import build_dashboard_app
from mcp.dashboard.login_limit import MAX_FAILURES, WINDOW_SECONDS, LoginLimiter, retry_after
from tests.test_dashboard import FakeMonitoring

TOKEN = "read-token-0123456789abcdef-xyz"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


# --- the pure decision -----------------------------------------------------------------------------------


def test_under_the_limit_a_client_may_try() -> None:
    assert retry_after([], 0.0) is None
    assert retry_after([1.0, 2.0, 3.0, 4.0], 5.0) is None  # 4 failures: one more try


def test_the_fifth_failure_in_a_minute_blocks_until_the_oldest_leaves_the_window() -> None:
    failures = [100.0, 110.0, 120.0, 130.0, 140.0]
    assert retry_after(failures, 141.0) == 19  # 100 + 60 - 141
    assert retry_after(failures, 159.5) == 1  # rounded up, never 0
    assert retry_after(failures, 160.0) is None  # the failure at 100 is a minute old: 4 left in the window


def test_only_the_last_five_failures_in_the_window_count() -> None:
    failures = [0.0, 1.0, 50.0, 51.0, 52.0, 53.0, 54.0]
    assert retry_after(failures, 55.0) == 55  # the 5th most recent (50) leaves the window at 110
    assert retry_after([0.0, 1.0, 2.0, 3.0], 100.0, limit=2, window=10.0) is None  # all stale


def test_the_limiter_is_per_client_and_a_right_token_clears_it() -> None:
    clock = Clock()
    limiter = LoginLimiter(clock)
    for _ in range(MAX_FAILURES):
        limiter.failed("10.0.0.1")
    assert limiter.retry_after("10.0.0.1") == WINDOW_SECONDS
    assert limiter.retry_after("10.0.0.2") is None
    limiter.succeeded("10.0.0.1")
    assert limiter.retry_after("10.0.0.1") is None


def test_the_limiter_forgets_the_oldest_client_past_its_bound() -> None:
    limiter = LoginLimiter(Clock(), limit=1, max_clients=2)
    for client in ("a", "b", "c"):
        limiter.failed(client)
    assert limiter.retry_after("a") is None  # evicted: memory stays bounded under a flood of addresses
    assert limiter.retry_after("b") is not None and limiter.retry_after("c") is not None


@pytest.mark.parametrize("kwargs", [{"limit": 0}, {"window": 0.0}, {"max_clients": 0}])
def test_nonsense_limits_are_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="expected limit >= 1"):
        LoginLimiter(Clock(), **kwargs)  # type: ignore[arg-type]


# --- over real HTTP ----------------------------------------------------------------------------------------


@pytest.fixture
async def public_dashboard(tmp_path: Path) -> AsyncIterator[tuple[str, Clock]]:
    clock = Clock()
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None, state_dir=tmp_path, dashboard_host="0.0.0.0", dashboard_token=TOKEN
    )
    app = build_dashboard_app(settings, FakeMonitoring(), registry=CollectorRegistry(), clock=clock)
    server = TestServer(app, host="0.0.0.0", port=0)
    await server.start_server()
    try:
        yield f"http://127.0.0.1:{server.port}/login", clock
    finally:
        await server.close()


async def sign_in(url: str, token: str, source: str = "127.0.0.1") -> tuple[int, str, str | None]:
    connector = aiohttp.TCPConnector(local_addr=(source, 0))
    async with (
        aiohttp.ClientSession(connector=connector) as session,
        session.post(url, data={"token": token}, allow_redirects=False) as response,
    ):
        return response.status, await response.text(), response.headers.get("Retry-After")


async def test_five_wrong_tokens_a_minute_then_429_with_retry_after(public_dashboard: tuple[str, Clock]) -> None:
    url, clock = public_dashboard
    for _ in range(MAX_FAILURES):
        assert (await sign_in(url, "guess"))[0] == 401
        clock.now += 1.0
    status, body, wait = await sign_in(url, TOKEN)  # even the right token waits: it is not looked at
    assert status == 429 and wait == "55"  # the first failure (at 1000) leaves the window at 1060; now 1005
    assert "too many wrong tokens from this address; try again in 55 s" in body
    assert (await sign_in(url, "guess", source="127.0.0.2"))[0] == 401  # another address has its own count
    clock.now += 55.0
    status, _, wait = await sign_in(url, TOKEN)
    assert status == 303 and wait is None  # the window moved on: signed in


async def test_a_right_token_resets_the_count(public_dashboard: tuple[str, Clock]) -> None:
    url, _ = public_dashboard
    for _ in range(MAX_FAILURES - 1):
        assert (await sign_in(url, "guess"))[0] == 401
    assert (await sign_in(url, TOKEN))[0] == 303
    for _ in range(MAX_FAILURES - 1):
        assert (await sign_in(url, "guess"))[0] == 401  # counted from zero again: not yet limited
