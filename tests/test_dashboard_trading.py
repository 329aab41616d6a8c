"""The dashboard's trading section and its read token, over real HTTP on loopback (aiohttp test server, port 0).

/api/trading is read from a real ledger (written by core.ledger.TradeLedger) and a real snapshot file in a
temporary STATE_DIR. The read-token tests build the app as on a non-loopback host.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client import CollectorRegistry

from config.settings import Settings
from core.ledger import TradeLedger
from mcp.dashboard.app import build_dashboard_app
from mcp.dashboard.auth import COOKIE_NAME, MAX_LOGIN_BODY_BYTES, ReadAuth, needs_token, session_value
from mcp.dashboard.security import CONTENT_SECURITY_POLICY
from tests.fakes.monitoring_builders import bot_snapshot, write_state
from tests.test_dashboard import FakeMonitoring
from tests.test_dashboard_server import TOKEN as SERVER_TOKEN
from tests.test_dashboard_server import make_server
from tests.trading_support import (
    ELECTION,
    RAIN,
    RAIN_TITLE,
    WALLET_A,
    SteppingClock,
    _denied,
    _seen,
    build_ledger,
    write_snapshot,
)

TOKEN = "read-token-0123456789abcdef-xyz"
ClientFactory = Callable[..., Any]


def settings(tmp_path: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {"state_dir": tmp_path, "target_wallets": [WALLET_A]}
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


@pytest.fixture
async def make_client() -> AsyncIterator[ClientFactory]:
    clients: list[TestClient] = []

    async def factory(app: web.Application) -> TestClient:
        client = TestClient(TestServer(app, host="127.0.0.1", port=0))
        await client.start_server()
        clients.append(client)
        return client

    yield factory
    for client in clients:
        await client.close()


# --- GET /api/trading ----------------------------------------------------------------------------------
async def test_api_trading_serves_the_ledger_and_the_snapshot(tmp_path: Path, make_client: ClientFactory) -> None:
    build_ledger(tmp_path)
    write_snapshot(tmp_path)
    client = await make_client(build_dashboard_app(settings(tmp_path), FakeMonitoring(), cache_seconds=0))
    response = await client.get("/api/trading")
    assert response.status == 200 and response.content_type == "application/json"
    text = await response.text()
    body = await response.json()
    assert body["status"] == "ok" and body["pnl"]["realized_pnl"] == 0.5 and len(body["positions"]) == 2
    assert body["positions"][0]["market_title"] == RAIN_TITLE
    assert len(body["recent_trades"]) == 5 and body["recent_trades"][0]["decision"] == "denied"
    assert WALLET_A not in text  # masked (and scrubbed)
    assert not re.search(r"(?<![\d.])1\d{9}(?![\d])", text), "no unix-seconds timestamp in the trading JSON"
    assert body["positions"][1]["token"] == "…" + ELECTION[-6:]


async def test_api_trading_before_the_bot_ran(tmp_path: Path, make_client: ClientFactory) -> None:
    client = await make_client(build_dashboard_app(settings(tmp_path), FakeMonitoring()))
    body = await (await client.get("/api/trading")).json()
    assert body["status"] == "no_ledger" and body["positions"] == [] and "no trade ledger yet" in body["message"]


class BrokenSource:
    async def view(self) -> dict[str, Any]:
        raise RuntimeError("disk on fire")


async def test_api_trading_failure_is_a_503_with_a_reason(tmp_path: Path, make_client: ClientFactory) -> None:
    app = build_dashboard_app(settings(tmp_path), FakeMonitoring(), trading_source=BrokenSource())
    response = await (await make_client(app)).get("/api/trading")
    assert response.status == 503
    assert await response.json() == {"status": "error", "error": "trading view unavailable (RuntimeError)"}


async def test_the_page_has_the_trading_section_first(tmp_path: Path, make_client: ClientFactory) -> None:
    client = await make_client(build_dashboard_app(settings(tmp_path), FakeMonitoring()))
    page = await (await client.get("/")).text()
    assert page.index('id="trading"') < page.index('id="components"')
    for element in ("t-equity", "t-pnl", "t-gauge", "chart-equity", "positions", "trades", "wallets", "chart-denials"):
        assert f'id="{element}"' in page
    assert "<style" not in page and " style=" not in page  # the strict CSP allows no inline style
    css = await (await client.get("/static/dashboard.css")).text()
    assert "@media (max-width: 700px)" in css and ".badge.starting" in css


# --- the read token beyond loopback ----------------------------------------------------------------------
@pytest.mark.parametrize(
    ("path", "guarded"),
    [("/", True), ("/health", True), ("/metrics", True), ("/api/trading", True), ("/api/history", True),
     ("/login", False), ("/static/dashboard.js", False), ("/mcp", False), ("/reset-circuit-breaker", False),
     ("/reset-mcp-circuit-breaker", False)],
)  # fmt: skip
def test_which_paths_need_the_token(path: str, guarded: bool) -> None:
    assert needs_token(path) is guarded


def test_the_cookie_is_an_hmac_of_the_token_not_the_token() -> None:
    value = session_value(TOKEN)
    assert TOKEN not in value and len(value) == 64 and value != session_value(TOKEN + "x")
    auth = ReadAuth(TOKEN)
    assert auth.allows(f"Bearer {TOKEN}", None) and auth.allows(None, value)
    assert not auth.allows(None, TOKEN) and not auth.allows("Bearer nope", "nope") and not auth.allows(None, None)
    assert TOKEN not in repr(auth)
    with pytest.raises(ValueError, match="non-empty DASHBOARD_TOKEN"):
        ReadAuth("  ")


async def public_client(tmp_path: Path, make_client: ClientFactory) -> TestClient:
    registry = CollectorRegistry()
    app = build_dashboard_app(
        settings(tmp_path, dashboard_host="0.0.0.0", dashboard_token=TOKEN), FakeMonitoring(), registry=registry
    )
    return await make_client(app)


@pytest.mark.parametrize("path", ["/health", "/api/history", "/api/trading", "/metrics"])
async def test_beyond_loopback_reads_need_the_token(tmp_path: Path, make_client: ClientFactory, path: str) -> None:
    client = await public_client(tmp_path, make_client)
    refused = await client.get(path)
    assert refused.status == 401 and refused.headers["WWW-Authenticate"].startswith("Bearer")
    assert "/login" in (await refused.json())["error"]
    assert (await client.get(path, headers={"Authorization": "Bearer wrong"})).status == 401
    assert (await client.get(path, headers={"Authorization": f"Bearer {TOKEN}"})).status in (200, 503)


async def test_the_browser_signs_in_with_the_form(tmp_path: Path, make_client: ClientFactory) -> None:
    client = await public_client(tmp_path, make_client)
    page = await client.get("/", allow_redirects=False)
    assert page.status == 303 and page.headers["Location"] == "/login"
    form = await client.get("/login")
    assert form.status == 200 and '<form method="post" action="/login">' in await form.text()
    assert "form-action 'self'" in form.headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY

    wrong = await client.post("/login", data={"token": "guess"}, allow_redirects=False)
    assert wrong.status == 401 and "wrong token" in await wrong.text() and COOKIE_NAME not in wrong.cookies

    signed = await client.post("/login", data={"token": TOKEN}, allow_redirects=False)
    assert signed.status == 303 and signed.headers["Location"] == "/"
    header = signed.headers["Set-Cookie"]
    assert "HttpOnly" in header and "SameSite=Strict" in header and "Path=/" in header
    assert TOKEN not in header and session_value(TOKEN) in header
    # the client's cookie jar now carries the session: the page and the API open
    assert (await client.get("/")).status == 200
    assert (await client.get("/api/trading")).status == 200


@pytest.mark.parametrize(
    ("body", "content_type", "message"),
    [
        (b"token=%ff%fe", "application/x-www-form-urlencoded", "expected a form with one field, token"),
        (b"x" * (MAX_LOGIN_BODY_BYTES + 10), "application/x-www-form-urlencoded", "send only the token"),
        (b"", "application/x-www-form-urlencoded", "wrong token"),
    ],
)
async def test_malformed_sign_ins_get_a_clear_answer(
    tmp_path: Path, make_client: ClientFactory, body: bytes, content_type: str, message: str
) -> None:
    client = await public_client(tmp_path, make_client)
    response = await client.post("/login", data=body, headers={"Content-Type": content_type})
    assert response.status == 401 and message in await response.text()


async def test_on_loopback_reads_stay_open(tmp_path: Path, make_client: ClientFactory) -> None:
    client = await make_client(build_dashboard_app(settings(tmp_path, dashboard_token=TOKEN), FakeMonitoring()))
    assert (await client.get("/health")).status == 200 and (await client.get("/api/trading")).status == 200
    assert (await client.get("/login")).status == 404  # no form: nothing to sign in to


def test_a_public_host_without_a_token_is_refused_when_building(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="need DASHBOARD_TOKEN on a non-loopback DASHBOARD_HOST"):
        build_dashboard_app(settings(tmp_path), FakeMonitoring(), read_token_required=True)


@pytest.mark.integration
async def test_the_sidecar_on_a_public_host_guards_its_reads(tmp_path: Path) -> None:
    """The real monitoring server bound to 0.0.0.0 (port 0, briefly): reads need the token, /login is served."""
    write_state(tmp_path, bot_snapshot())
    server = make_server(tmp_path, dashboard_host="0.0.0.0")
    ready = asyncio.Event()
    task = asyncio.create_task(server.run(ready))
    try:
        await asyncio.wait_for(ready.wait(), 30)
        base = f"http://127.0.0.1:{server.dashboard_bound_port}"
        async with aiohttp.ClientSession() as session:
            for path in ("/health", "/api/trading", "/metrics"):
                async with session.get(base + path) as response:
                    assert response.status == 401, path
                async with session.get(base + path, headers={"Authorization": f"Bearer {SERVER_TOKEN}"}) as response:
                    assert response.status == 200, path
            async with session.get(base + "/", allow_redirects=False) as response:
                assert response.status == 303 and response.headers["Location"] == "/login"
            async with session.get(base + "/login") as response:
                assert response.status == 200
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


async def test_changing_the_token_signs_every_browser_out(tmp_path: Path, make_client: ClientFactory) -> None:
    """README: the cookie holds an HMAC of the token, so a restart with a new DASHBOARD_TOKEN refuses the
    cookies signed under the old one (the browser is sent back to /login); the new token's cookie opens."""
    old = await public_client(tmp_path, make_client)
    signed = await old.post("/login", data={"token": TOKEN}, allow_redirects=False)
    cookie = {COOKIE_NAME: signed.cookies[COOKIE_NAME].value}
    app = build_dashboard_app(
        settings(tmp_path, dashboard_host="0.0.0.0", dashboard_token=TOKEN + "-new"),
        FakeMonitoring(),
        registry=CollectorRegistry(),
    )
    new = await make_client(app)
    page = await new.get("/", cookies=cookie, allow_redirects=False)
    assert page.status == 303 and page.headers["Location"] == "/login"
    assert (await new.get("/api/trading", cookies=cookie)).status == 401
    fresh = {COOKIE_NAME: session_value(TOKEN + "-new")}
    assert (await new.get("/api/trading", cookies=fresh)).status == 200


async def test_recent_copies_are_the_ten_newest_and_the_ledger_is_only_read(
    tmp_path: Path, make_client: ClientFactory
) -> None:
    """README: "Recent copies: the last ten followed trades"; the view only reads the ledger."""
    state_dir = tmp_path
    state_dir.mkdir(exist_ok=True)
    ledger = TradeLedger(state_dir / "ledger.db", clock=SteppingClock())
    ledger.open()
    for n in range(12):
        row = _seen(ledger, f"0xtx{n:02d}", WALLET_A, RAIN, RAIN_TITLE, "Yes", "BUY", 10.0 + n, 0.5)
        ledger.record_outcome_sync(row, _denied(RAIN, "BUY", "min_order_size"))
    ledger.close()
    write_snapshot(state_dir)
    before = {path.name: path.read_bytes() for path in state_dir.iterdir() if path.is_file()}
    client = await make_client(build_dashboard_app(settings(state_dir), FakeMonitoring(), cache_seconds=0))
    for _ in range(2):
        body = await (await client.get("/api/trading")).json()
        assert [row["size"] for row in body["recent_trades"]] == [21.0 - n for n in range(10)]
    after = {path.name: path.read_bytes() for path in state_dir.iterdir() if path.is_file()}
    # SQLite's own companions of a WAL file may appear beside a closed ledger; the ledger never changes
    assert after.pop("ledger.db-wal", b"") == b""
    after.pop("ledger.db-shm", None)
    assert after == before, "the trading view changed a file in STATE_DIR"


async def test_before_the_first_trade_every_list_is_empty_and_no_ledger_is_made(
    tmp_path: Path, make_client: ClientFactory
) -> None:
    client = await make_client(build_dashboard_app(settings(tmp_path), FakeMonitoring(), cache_seconds=0))
    body = await (await client.get("/api/trading")).json()
    assert body["status"] == "no_ledger"
    lists = ("positions", "recent_trades", "followed_wallets", "deny_reasons", "equity_curve")
    assert {name: body[name] for name in lists} == {name: [] for name in lists}
    assert not (tmp_path / "ledger.db").exists()
