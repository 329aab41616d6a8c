"""The dashboard application over real HTTP on loopback (aiohttp's test server, port 0).

The monitoring server is replaced by `FakeMonitoring`, an object with the two methods the dashboard reads
(`health_report`, `history`) returning the documented shapes; the reset callable is a recording async function.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client import CollectorRegistry, Counter
from pydantic import SecretStr

from config.settings import Settings
from mcp.dashboard import security
from mcp.dashboard.app import (
    DEFAULT_MAX_BODY_BYTES,
    DISABLED_MESSAGE,
    MCP_RESET_ROUTE,
    RESET_ROUTE,
    build_dashboard_app,
    encode_json,
    health_http_status,
    parse_reset_body,
)
from mcp.dashboard.security import (
    BearerToken,
    DashboardBindError,
    Scrubber,
    bearer_from_header,
    check_bind_safety,
    is_loopback_host,
)

TOKEN = "dashboard-token-0123456789abcdef"
WALLET = "0x1234567890abcdef1234567890abcdef12c0ffee"
PRIVATE_KEY = "0x" + "ab" * 32
TELEGRAM = "123456789:AAFakeTelegramTokenForTheDashboardTest"


def make_report(status: str = "healthy", **component_status: str) -> dict[str, Any]:
    """A /health body in the documented shape."""
    names = ("main_bot", "trade_executor", "circuit_breaker", "codebase_search", "testing", "monitoring")
    return {
        "status": status,
        "generated_at": "2026-11-21T10:00:00+00:00",
        "uptime_seconds": 12.5,
        "environment": "development",
        "components": {
            name: {
                "status": component_status.get(name, "healthy"),
                "message": f"{name} fine",
                "figures": {"value": 1.5},
                "checked_at": "2026-11-21T10:00:00+00:00",
                "since": "2026-11-21T09:00:00+00:00",
            }
            for name in names
        },
        "circuit_breaker": {"trading_state": "ACTIVE", "trip_reason": None},
        "gate": {"market_hours": False, "mcp_circuit_breaker": "closed", "heavy_work_allowed": True, "reason": "ok"},
    }


class FakeMonitoring:
    """Stands in for MonitoringServer: serves whatever report and history the test sets."""

    def __init__(self, report: dict[str, Any] | None = None, history: dict[str, Any] | None = None) -> None:
        self.report = report if report is not None else make_report()
        self.samples = history if history is not None else {"trade_latency_p99_ms": [[1.0, 12.0]], "coverage": []}
        self.fail: Exception | None = None
        self.reports = 0

    def health_report(self) -> dict[str, Any]:
        self.reports += 1
        if self.fail is not None:
            raise self.fail
        return self.report

    async def history(self) -> dict[str, Any]:  # async on purpose: the dashboard accepts both kinds
        if self.fail is not None:
            raise self.fail
        return self.samples


class RecordingReset:
    def __init__(self, fail: Exception | None = None) -> None:
        self.calls: list[str] = []
        self.fail = fail

    async def __call__(self, by: str) -> dict[str, Any]:
        self.calls.append(by)
        if self.fail is not None:
            raise self.fail
        return {"state": "closed", "reason": None}


def settings(**overrides: Any) -> Settings:
    values: dict[str, Any] = {"dashboard_refresh_seconds": 2.0, "wallet_address": WALLET}
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


ClientFactory = Callable[..., Any]


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


def auth(token: str = TOKEN) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


# --- routes and status codes ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "expected"),
    [("healthy", 200), ("degraded", 200), ("critical", 503), ("CRITICAL", 503), ("nonsense", 503), (None, 503)],
)
def test_health_status_code_is_200_unless_critical(status: Any, expected: int) -> None:
    assert health_http_status({"status": status}) == expected


@pytest.mark.parametrize(("status", "code"), [("healthy", 200), ("degraded", 200), ("critical", 503)])
async def test_get_health_serves_the_report(make_client: ClientFactory, status: str, code: int) -> None:
    monitoring = FakeMonitoring(make_report(status, main_bot=status))
    client = await make_client(build_dashboard_app(settings(), monitoring))
    response = await client.get("/health")
    assert response.status == code
    assert response.content_type == "application/json"
    body = await response.json()
    assert body["status"] == status
    assert body["components"]["main_bot"]["status"] == status
    assert set(body["components"]) >= {"main_bot", "trade_executor", "circuit_breaker", "testing"}


async def test_health_turns_nan_into_null(make_client: ClientFactory) -> None:
    report = make_report()
    report["components"]["testing"]["figures"] = {"coverage": float("nan"), "ok": [float("inf"), 1.0]}
    client = await make_client(build_dashboard_app(settings(), FakeMonitoring(report)))
    body = json.loads(await (await client.get("/health")).text())  # strict JSON: NaN would not parse in a browser
    assert body["components"]["testing"]["figures"] == {"coverage": None, "ok": [None, 1.0]}


async def test_health_when_the_monitoring_server_fails_is_503_with_a_reason(make_client: ClientFactory) -> None:
    monitoring = FakeMonitoring()
    monitoring.fail = RuntimeError("check state is broken")
    client = await make_client(build_dashboard_app(settings(), monitoring))
    response = await client.get("/health")
    assert response.status == 503
    assert await response.json() == {"status": "critical", "error": "health report unavailable (RuntimeError)"}
    history = await client.get("/api/history")
    assert history.status == 503
    assert "RuntimeError" in (await history.json())["error"]


class StepClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


async def test_health_body_is_reused_for_cache_seconds_then_rebuilt(make_client: ClientFactory) -> None:
    monitoring, clock = FakeMonitoring(), StepClock()
    app = build_dashboard_app(settings(), monitoring, cache_seconds=0.5, clock=clock)
    client = await make_client(app)
    assert (await (await client.get("/health")).json())["status"] == "healthy"
    monitoring.report = make_report("critical", main_bot="critical")
    clock.now += 0.4
    cached = await client.get("/health")
    assert cached.status == 200 and (await cached.json())["status"] == "healthy"
    assert cached.headers["Cache-Control"] == "no-store"  # the server's reuse is not the browser's to repeat
    assert monitoring.reports == 1
    clock.now += 0.1
    fresh = await client.get("/health")
    assert fresh.status == 503 and (await fresh.json())["status"] == "critical"
    assert monitoring.reports == 2


async def test_a_failed_report_is_not_cached(make_client: ClientFactory) -> None:
    monitoring = FakeMonitoring()
    monitoring.fail = RuntimeError("not yet")
    client = await make_client(build_dashboard_app(settings(), monitoring, cache_seconds=60, clock=StepClock()))
    assert (await client.get("/health")).status == 503
    monitoring.fail = None
    assert (await client.get("/health")).status == 200  # retried at once, not served the error for 60 s
    assert monitoring.reports == 2


async def test_cache_seconds_zero_rebuilds_every_time(make_client: ClientFactory) -> None:
    monitoring = FakeMonitoring()
    client = await make_client(build_dashboard_app(settings(), monitoring, cache_seconds=0, clock=StepClock()))
    for _ in range(3):
        assert (await client.get("/health")).status == 200
    assert monitoring.reports == 3
    with pytest.raises(ValueError, match="cache_seconds must be >= 0"):
        build_dashboard_app(settings(), monitoring, cache_seconds=-1)


async def test_history_is_served(make_client: ClientFactory) -> None:
    monitoring = FakeMonitoring(history={"sidecar_rss_mb": [[10.0, 40.5], [20.0, 41.0]], "coverage": [[5.0, 0.9]]})
    client = await make_client(build_dashboard_app(settings(), monitoring))
    response = await client.get("/api/history")
    assert response.status == 200
    assert await response.json() == {"sidecar_rss_mb": [[10.0, 40.5], [20.0, 41.0]], "coverage": [[5.0, 0.9]]}


async def test_metrics_is_the_given_registry(make_client: ClientFactory) -> None:
    registry = CollectorRegistry()
    Counter("dashboard_test_events", "events", registry=registry).inc(3)
    client = await make_client(build_dashboard_app(settings(), FakeMonitoring(), registry=registry))
    response = await client.get("/metrics")
    assert response.status == 200
    assert response.content_type == "text/plain"
    assert "dashboard_test_events_total 3.0" in await response.text()


async def test_metrics_is_absent_without_a_registry(make_client: ClientFactory) -> None:
    client = await make_client(build_dashboard_app(settings(), FakeMonitoring()))
    assert (await client.get("/metrics")).status == 404


async def test_page_and_static_files(make_client: ClientFactory) -> None:
    client = await make_client(build_dashboard_app(settings(dashboard_refresh_seconds=7), FakeMonitoring()))
    page = await client.get("/")
    assert page.status == 200
    assert page.content_type == "text/html"
    text = await page.text()
    assert 'data-refresh-seconds="7"' in text
    assert 'data-latency-budget-ms="100"' in text
    assert 'data-coverage-target="0.85"' in text
    assert "{{" not in text
    assert '<script src="/static/dashboard.js"' in text
    assert "<script>" not in text and "style=" not in text  # the CSP allows no inline script or style
    js = await client.get("/static/dashboard.js")
    assert js.status == 200 and js.content_type == "text/javascript"
    assert "/health" in await js.text()
    css = await client.get("/static/dashboard.css")
    assert css.status == 200 and css.content_type == "text/css"


@pytest.mark.parametrize("name", ["index.html", "../app.py", "%2e%2e%2fapp.py", "secrets.txt"])
async def test_static_serves_only_the_two_assets(make_client: ClientFactory, name: str) -> None:
    client = await make_client(build_dashboard_app(settings(), FakeMonitoring()))
    assert (await client.get(f"/static/{name}")).status == 404


async def test_missing_static_folder_fails_start_up_clearly(tmp_path: Path) -> None:
    app = build_dashboard_app(settings(), FakeMonitoring(), static_dir=tmp_path / "nowhere")
    with pytest.raises(RuntimeError, match=r"dashboard files missing .*index\.html"):
        await TestServer(app, host="127.0.0.1", port=0).start_server()


def test_max_body_must_be_positive() -> None:
    with pytest.raises(ValueError, match="max_body_bytes must be > 0"):
        build_dashboard_app(settings(), FakeMonitoring(), max_body_bytes=0)


# --- headers -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", "/"), ("GET", "/health"), ("GET", "/api/history"), ("GET", "/static/dashboard.js"),
     ("GET", "/no-such-page"), ("GET", "/reset-circuit-breaker"), ("POST", "/reset-circuit-breaker"),
     ("POST", "/reset-mcp-circuit-breaker")],
)  # fmt: skip
async def test_every_response_has_the_security_headers(make_client: ClientFactory, method: str, path: str) -> None:
    client = await make_client(build_dashboard_app(settings(), FakeMonitoring()))
    response = await client.request(method, path)
    csp = response.headers["Content-Security-Policy"]
    assert "default-src 'self'" in csp and "unsafe-inline" not in csp and "frame-ancestors 'none'" in csp
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["Referrer-Policy"] == "no-referrer"
    assert response.headers["Cache-Control"] == "no-store"
    assert "aiohttp" not in response.headers.get("Server", "")


# --- POST /reset-circuit-breaker and its unmistakable name POST /reset-mcp-circuit-breaker -----------------
# (issue 12): both names run one handler, so every rule below is checked on both
ROUTES = pytest.mark.parametrize("route", [RESET_ROUTE, MCP_RESET_ROUTE])


async def test_the_page_says_which_breaker_each_reset_acts_on(make_client: ClientFactory) -> None:
    client = await make_client(build_dashboard_app(settings(dashboard_token=TOKEN), FakeMonitoring()))
    page = await (await client.get("/")).text()
    button = page.split('id="mcp-reset-button">', 1)[1].split("<", 1)[0]
    assert button == "Reset MCP circuit breaker (sidecar heavy work)"
    note = " ".join(page.split('id="mcp-reset-note">', 1)[1].split("</p>", 1)[0].split())
    assert "MCP circuit breaker" in note and "never touches the trading circuit breaker" in note
    trading = " ".join(page.split('id="breaker-reset-note">', 1)[1].split("</p>", 1)[0].split())
    assert "cannot reset the trading circuit breaker" in trading
    assert "python main.py --reset-circuit-breaker" in trading
    js = await (await client.get("/static/dashboard.js")).text()
    assert 'fetch("/reset-mcp-circuit-breaker"' in js and 'fetch("/reset-circuit-breaker"' not in js


@ROUTES
async def test_reset_with_the_right_token_resets_and_logs(
    make_client: ClientFactory, route: str, caplog: pytest.LogCaptureFixture
) -> None:
    reset = RecordingReset()
    client = await make_client(
        build_dashboard_app(settings(dashboard_token=TOKEN), FakeMonitoring(), reset_breaker=reset)
    )
    response = await client.post(route, headers=auth(), json={"reason": "cpu spike over"})
    assert response.status == 200
    body = await response.json()
    assert body == {
        "status": "reset",
        "reason": "cpu spike over",
        "mcp_circuit_breaker": {"state": "closed", "reason": None},
    }
    assert reset.calls == ["dashboard: cpu spike over"]
    assert "reset from the dashboard" in caplog.text
    assert TOKEN not in caplog.text


@ROUTES
async def test_reset_with_an_empty_body_uses_the_default_reason(make_client: ClientFactory, route: str) -> None:
    reset = RecordingReset()
    client = await make_client(
        build_dashboard_app(settings(dashboard_token=TOKEN), FakeMonitoring(), reset_breaker=reset)
    )
    response = await client.post(route, headers={"authorization": f"bearer   {TOKEN}  "})
    assert response.status == 200
    assert reset.calls == ["dashboard: manual reset from the dashboard"]


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": ""},
        {"Authorization": "Bearer"},
        {"Authorization": f"Basic {TOKEN}"},
        {"Authorization": f"Bearer {TOKEN}x"},
        {"Authorization": f"Bearer {TOKEN[:-1]}"},
        {"Authorization": "Bearer " + "x" * len(TOKEN)},
        {"Authorization": f"Bearer {TOKEN.upper()}"},
        {"X-Token": TOKEN},
    ],
)
@ROUTES
async def test_reset_without_the_right_token_is_401(
    make_client: ClientFactory, route: str, headers: dict[str, str]
) -> None:
    reset = RecordingReset()
    client = await make_client(
        build_dashboard_app(settings(dashboard_token=TOKEN), FakeMonitoring(), reset_breaker=reset)
    )
    response = await client.post(route, headers=headers)
    assert response.status == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert "Authorization: Bearer" in (await response.json())["error"]
    assert reset.calls == []


@ROUTES
async def test_reset_is_disabled_without_a_token(make_client: ClientFactory, route: str) -> None:
    reset = RecordingReset()
    client = await make_client(build_dashboard_app(settings(), FakeMonitoring(), reset_breaker=reset))
    response = await client.post(route, headers=auth())
    assert response.status == 403
    assert await response.json() == {"status": "disabled", "error": DISABLED_MESSAGE}
    assert "set DASHBOARD_TOKEN" in DISABLED_MESSAGE
    assert reset.calls == []


@ROUTES
async def test_reset_without_a_breaker_is_503(make_client: ClientFactory, route: str) -> None:
    client = await make_client(build_dashboard_app(settings(dashboard_token=TOKEN), FakeMonitoring()))
    response = await client.post(route, headers=auth())
    assert response.status == 503
    assert "integrator is unavailable" in (await response.json())["error"]


@ROUTES
async def test_reset_that_fails_is_500_and_says_why(make_client: ClientFactory, route: str) -> None:
    reset = RecordingReset(fail=OSError("state file is read-only"))
    client = await make_client(
        build_dashboard_app(settings(dashboard_token=TOKEN), FakeMonitoring(), reset_breaker=reset)
    )
    response = await client.post(route, headers=auth())
    assert response.status == 500
    assert "state file is read-only" in (await response.json())["error"]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"{not json", "invalid JSON"),
        (b"[1, 2]", "received a JSON list"),
        (b'"reset"', "received a JSON str"),
        (b'{"reason": 5}', "non-empty string"),
        (b'{"reason": "   "}', "non-empty string"),
        (b'{"reason": "ok", "force": true}', "unknown key"),
        (json.dumps({"reason": "r" * 201}).encode(), "at most 200"),
        (b"\xff\xfe\x00", "invalid JSON"),
    ],
)
@ROUTES
async def test_reset_with_a_malformed_body_is_400(
    make_client: ClientFactory, route: str, body: bytes, message: str
) -> None:
    reset = RecordingReset()
    client = await make_client(
        build_dashboard_app(settings(dashboard_token=TOKEN), FakeMonitoring(), reset_breaker=reset)
    )
    response = await client.post(route, headers=auth(), data=body)
    assert response.status == 400
    assert message in (await response.json())["error"]
    assert reset.calls == []


async def test_reset_reason_cannot_forge_log_lines() -> None:
    assert parse_reset_body(b'{"reason": "ok\\nFAKE LOG LINE"}') == "ok FAKE LOG LINE"


@ROUTES
async def test_huge_body_is_413_before_anything_else(make_client: ClientFactory, route: str) -> None:
    reset = RecordingReset()
    client = await make_client(
        build_dashboard_app(settings(dashboard_token=TOKEN), FakeMonitoring(), reset_breaker=reset)
    )
    huge = b"x" * (DEFAULT_MAX_BODY_BYTES + 1)
    for headers in ({}, auth()):
        response = await client.post(route, headers=headers, data=huge)
        assert response.status == 413
    assert reset.calls == []


@ROUTES
async def test_huge_chunked_body_is_413(make_client: ClientFactory, route: str) -> None:
    reset = RecordingReset()
    client = await make_client(
        build_dashboard_app(settings(dashboard_token=TOKEN), FakeMonitoring(), reset_breaker=reset, max_body_bytes=1024)
    )

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: the limit must hold while reading
        for _ in range(8):
            yield b"y" * 512

    response = await client.post(route, headers=auth(), data=chunks())
    assert response.status == 413
    assert reset.calls == []


@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", "/reset-circuit-breaker"), ("PUT", "/reset-circuit-breaker"), ("GET", "/reset-mcp-circuit-breaker"),
     ("PUT", "/reset-mcp-circuit-breaker"), ("POST", "/health"), ("DELETE", "/"),
     ("POST", "/api/history")],
)  # fmt: skip
async def test_wrong_method_is_405(make_client: ClientFactory, method: str, path: str) -> None:
    client = await make_client(build_dashboard_app(settings(dashboard_token=TOKEN), FakeMonitoring()))
    response = await client.request(method, path, headers=auth())
    assert response.status == 405
    assert "Allow" in response.headers


# --- token checks, bind safety, scrubbing (pure) ---------------------------------------------------------


def test_token_is_compared_in_constant_time_on_digests(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        seen.append((a, b))
        return real(a, b)

    monkeypatch.setattr(security.hmac, "compare_digest", spy)
    token = BearerToken(SecretStr(TOKEN))
    assert token.matches(TOKEN)
    assert not token.matches("short")
    assert not token.matches("x" * 500)
    assert not token.matches(None)  # "missing" takes the same path as "wrong"
    assert len(seen) == 4
    assert all(len(a) == len(b) == 32 for a, b in seen)  # equal lengths: nothing leaks through early exits
    assert all(b == hashlib.sha256(TOKEN.encode()).digest() for _, b in seen)


def test_token_object_never_holds_or_shows_the_token() -> None:
    token = BearerToken(TOKEN)
    assert TOKEN not in repr(token) and TOKEN not in str(vars(token) if hasattr(token, "__dict__") else repr(token))
    assert not BearerToken(None).configured and not BearerToken("   ").configured
    assert not BearerToken(None).matches("")


@pytest.mark.parametrize(
    ("header", "expected"),
    [(None, None), ("", None), ("Bearer", None), ("Bearer   ", None), ("Basic abc", None), ("Bearer abc", "abc"),
     ("bearer abc", "abc"), ("  Bearer  abc  ", "abc")],
)  # fmt: skip
def test_bearer_from_header(header: str | None, expected: str | None) -> None:
    assert bearer_from_header(header) == expected


@pytest.mark.parametrize(
    ("host", "loopback"),
    [("127.0.0.1", True), ("127.1.2.3", True), ("::1", True), ("[::1]", True), ("localhost", True),
     ("LOCALHOST", True), ("0.0.0.0", False), ("::", False), ("", False), ("192.168.1.5", False),
     ("dashboard.example.com", False), ("10.0.0.1", False)],
)  # fmt: skip
def test_is_loopback_host(host: str, loopback: bool) -> None:
    assert is_loopback_host(host) is loopback


def test_bind_safety_refuses_a_public_address_without_a_token() -> None:
    with pytest.raises(DashboardBindError, match=r"DASHBOARD_HOST=0\.0\.0\.0 without DASHBOARD_TOKEN"):
        check_bind_safety("0.0.0.0", None)
    with pytest.raises(DashboardBindError, match="every interface"):
        check_bind_safety("", SecretStr("  "))
    check_bind_safety("0.0.0.0", SecretStr(TOKEN))
    check_bind_safety("127.0.0.1", None)
    check_bind_safety("localhost", None)


def test_scrubber_removes_secrets_and_masks_wallets() -> None:
    scrub = Scrubber([SecretStr(TELEGRAM), PRIVATE_KEY, None, ""], [WALLET, None])
    text = f"token {TELEGRAM} key {PRIVATE_KEY} wallet {WALLET} url https://api.telegram.org/bot{TELEGRAM}/send"
    cleaned = scrub(text)
    assert TELEGRAM not in cleaned and PRIVATE_KEY not in cleaned and WALLET not in cleaned
    assert "wallet ***c0ffee" in cleaned  # the masked wallet (last 6 characters) may appear
    assert TELEGRAM not in repr(scrub)
    assert encode_json({"w": WALLET, "n": float("nan")}, scrub) == b'{"w":"***c0ffee","n":null}'


async def test_served_bodies_never_contain_a_secret(make_client: ClientFactory) -> None:
    config = settings(
        dashboard_token=TOKEN, private_key=PRIVATE_KEY, telegram_bot_token=TELEGRAM, wallet_address=WALLET
    )
    leaky = make_report()
    # a component message that (wrongly) carries secrets: the dashboard still must not serve them
    leaky["components"]["main_bot"]["message"] = f"wallet {WALLET} key {PRIVATE_KEY} token {TELEGRAM} {TOKEN}"
    monitoring = FakeMonitoring(leaky, {"note": [[1.0, 2.0]], "leak": WALLET})
    reset = RecordingReset()
    client = await make_client(build_dashboard_app(config, monitoring, reset_breaker=reset))
    bodies = [
        await (await client.get(path)).text()
        for path in ("/", "/health", "/api/history", "/static/dashboard.js", "/static/dashboard.css")
    ]
    bodies.append(await (await client.post("/reset-circuit-breaker", headers=auth())).text())
    bodies.append(await (await client.post("/reset-circuit-breaker", headers=auth("wrong"))).text())
    for body in bodies:
        for secret in (TOKEN, PRIVATE_KEY, TELEGRAM, WALLET):
            assert secret not in body
    assert "***c0ffee" in bodies[1]


async def test_extensions_add_routes_that_get_the_same_headers(make_client: ClientFactory) -> None:
    async def extra(request: web.Request) -> web.Response:
        return web.json_response({"extra": True})

    def mount(app: web.Application) -> None:
        app.router.add_get("/extra", extra)

    client = await make_client(build_dashboard_app(settings(), FakeMonitoring(), extend=[mount]))
    response = await client.get("/extra")
    assert response.status == 200 and await response.json() == {"extra": True}
    assert response.headers["X-Frame-Options"] == "DENY"
    assert (await client.get("/health")).status == 200
