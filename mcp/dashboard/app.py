"""The dashboard: one aiohttp application serving the page, /health, /api/history, /api/trading (the
trading view, issue 11), /metrics and the token-protected POST /reset-mcp-circuit-breaker (also at its
contract name POST /reset-circuit-breaker); beyond loopback the read endpoints need DASHBOARD_TOKEN too
(mcp.dashboard.auth: bearer, or the /login form's cookie).

The reset acts on the MCP circuit breaker only (the one that gates the sidecar's heavy work: scans, test
runs), never on the trading circuit breaker, which only `python main.py --reset-circuit-breaker` resets,
with the bot stopped. The contract route's name reads like the trading one; the second name cannot.

    app = build_dashboard_app(settings, monitoring, reset_breaker=integrator.reset_mcp_circuit_breaker,
                              registry=metrics.registry)

Every handler reads what the monitoring server has cached: none of them measures anything itself. The
encoded bodies of /health and /api/history are kept for `cache_seconds` (default 0.25 s), so a burst of
polls costs one encoding; the data behind them changes once per check round anyway.
GET /health answers 200 while the overall status is healthy or degraded and 503 when it is critical
(Kubernetes style: a load balancer or `curl -f` sees "not OK"); the body is the full report either way.
"""

from __future__ import annotations

import asyncio
import html
import inspect
import json
import logging
import math
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from aiohttp import hdrs, web

from config.settings import Settings
from mcp.dashboard.auth import ReadAuth, login_routes, read_auth_middleware
from mcp.dashboard.login_limit import LoginLimiter
from mcp.dashboard.security import (
    BearerToken,
    DashboardBindError,
    Scrubber,
    add_security_headers,
    bearer_from_header,
    is_loopback_host,
)
from mcp.health import HealthStatus, Verdict
from mcp.monitoring.http import metrics_handler
from mcp.trading.source import TradingSource

logger = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).resolve().parent / "static"
STATIC_TYPES = {"dashboard.js": "text/javascript", "dashboard.css": "text/css"}
PAGE_FILE = "index.html"
DEFAULT_MAX_BODY_BYTES = 64 * 1024
DEFAULT_CACHE_SECONDS = 0.25
MAX_REASON_CHARS = 200
DEFAULT_RESET_REASON = "manual reset from the dashboard"
EXAMPLE_BODY = '{"reason": "..."}'
# the contract route (its name reads like main.py's --reset-circuit-breaker) and the name that cannot be misread
RESET_ROUTE = "/reset-circuit-breaker"
MCP_RESET_ROUTE = "/reset-mcp-circuit-breaker"
DISABLED_MESSAGE = "disabled: set DASHBOARD_TOKEN to enable POST /reset-mcp-circuit-breaker (or /reset-circuit-breaker)"

# reset_breaker(by) -> the MCP breaker's state afterwards (the integrator's reset_mcp_circuit_breaker)
ResetBreaker = Callable[[str], Awaitable[Mapping[str, Any]]]
# adds routes to the dashboard's application (e.g. MCP over HTTP at /mcp); runs once, before start-up
Extension = Callable[[web.Application], None]


class MonitoringView(Protocol):
    """What the dashboard reads: the cached health report and the chart history (plain or async methods)."""

    def health_report(self) -> Mapping[str, Any] | Awaitable[Mapping[str, Any]]:
        """The body of GET /health."""
        ...

    def history(self) -> Mapping[str, Any] | Awaitable[Mapping[str, Any]]:
        """The body of GET /api/history."""
        ...


@dataclass(frozen=True, slots=True)
class Encoded:
    """A JSON response ready to send: status and body."""

    status: int
    body: bytes


class BodyCache:
    """Encoded JSON bodies by route, each reused until `ttl` seconds after it was built (ttl 0: no reuse)."""

    def __init__(self, ttl: float, clock: Callable[[], float] = time.monotonic) -> None:
        if ttl < 0:
            raise ValueError(f"cache_seconds must be >= 0, received {ttl!r}")
        self.ttl = ttl
        self._clock = clock
        self._entries: dict[str, tuple[float, Encoded]] = {}

    def get(self, key: str) -> Encoded | None:
        """The cached body of `key` while fresh, else None."""
        entry = self._entries.get(key)
        if entry is None or self._clock() >= entry[0]:
            return None
        return entry[1]

    def put(self, key: str, encoded: Encoded) -> Encoded:
        """Keep `encoded` for `ttl` seconds (callers put only real answers, never an error: the next poll retries)."""
        if self.ttl > 0:
            self._entries[key] = (self._clock() + self.ttl, encoded)
        return encoded


@dataclass(frozen=True, slots=True)
class Asset:
    """A file served from memory: its bytes and content type."""

    body: bytes
    content_type: str


SETTINGS_KEY = web.AppKey("dashboard_settings", Settings)
MONITORING_KEY = web.AppKey("dashboard_monitoring", MonitoringView)
RESET_KEY: web.AppKey[ResetBreaker | None] = web.AppKey("dashboard_reset_breaker")
TOKEN_KEY = web.AppKey("dashboard_token", BearerToken)
SCRUB_KEY = web.AppKey("dashboard_scrubber", Scrubber)
MAX_BODY_KEY = web.AppKey("dashboard_max_body_bytes", int)
ASSETS_KEY = web.AppKey("dashboard_assets", dict)
CACHE_KEY = web.AppKey("dashboard_body_cache", BodyCache)
# --- trading view (issue 11) ---
TRADING_KEY: web.AppKey[Any] = web.AppKey("dashboard_trading_source")


def health_http_status(report: Mapping[str, Any]) -> int:
    """The verdict's HTTP code (mcp.health.Verdict): 200 unless critical (or unrecognised), 503 then."""
    return Verdict(HealthStatus.parse(report.get("status"))).http_status


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Mapping):
        return {str(key): _finite(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(item) for item in value]
    return value


def encode_json(payload: Any, scrub: Callable[[str], str]) -> bytes:
    """Compact JSON a browser can parse (NaN/inf become null), scrubbed of secrets."""
    try:
        text = json.dumps(payload, separators=(",", ":"), allow_nan=False, default=str)
    except ValueError:
        # a NaN somewhere (an unknown gauge): the slow path replaces it, JSON has no NaN
        text = json.dumps(_finite(payload), separators=(",", ":"), allow_nan=False, default=str)
    return scrub(text).encode()


def _json(
    request: web.Request, payload: Any, status: int = 200, headers: Mapping[str, str] | None = None
) -> web.Response:
    body = encode_json(payload, request.app[SCRUB_KEY])
    return web.Response(body=body, status=status, content_type="application/json", headers=headers)


def _send(encoded: Encoded) -> web.Response:
    return web.Response(body=encoded.body, status=encoded.status, content_type="application/json")


async def _call(method: Callable[[], Any]) -> Any:
    value = method()
    return await value if inspect.isawaitable(value) else value


def render_page(template: str, settings: Settings) -> bytes:
    """The page with the settings the script needs as data attributes (no secret is among them)."""
    values = {
        "refresh_seconds": f"{settings.dashboard_refresh_seconds:g}",
        "latency_budget_ms": f"{settings.trading_latency_budget_ms:g}",
        "coverage_target": f"{settings.mcp_testing_coverage_target:g}",
    }
    for name, value in values.items():
        template = template.replace("{{" + name + "}}", html.escape(value, quote=True))
    return template.encode()


def load_assets(static_dir: Path, settings: Settings) -> dict[str, Asset]:
    """Read the page, script and style once (blocking: call it in a thread)."""
    try:
        assets = {
            name: Asset((static_dir / name).read_bytes(), content_type) for name, content_type in STATIC_TYPES.items()
        }
        template = (static_dir / PAGE_FILE).read_text(encoding="utf-8")
    except OSError as e:
        raise RuntimeError(
            f"dashboard files missing in {static_dir} (expected {PAGE_FILE} and {', '.join(STATIC_TYPES)}): {e}; "
            "reinstall the package"
        ) from e
    assets[PAGE_FILE] = Asset(render_page(template, settings), "text/html")
    return assets


# --- handlers -----------------------------------------------------------------------------------------


async def page(request: web.Request) -> web.Response:
    """GET /: the dashboard page."""
    asset = request.app[ASSETS_KEY][PAGE_FILE]
    return web.Response(body=asset.body, content_type=asset.content_type, charset="utf-8")


async def static_file(request: web.Request) -> web.Response:
    """GET /static/<name>: the page's script and style (nothing else is served from disk)."""
    name = request.match_info["name"]
    asset = request.app[ASSETS_KEY].get(name) if name in STATIC_TYPES else None
    if asset is None:
        raise web.HTTPNotFound(text=f"no static file {name!r} (served: {', '.join(STATIC_TYPES)})")
    return web.Response(body=asset.body, content_type=asset.content_type, charset="utf-8")


async def _cached_json(
    request: web.Request,
    key: str,
    produce: Callable[[], Any],
    status_of: Callable[[Any], int],
    unavailable: Mapping[str, str],
) -> web.Response:
    """Serve `key` from the short cache, else produce it once, encode it (secrets scrubbed) and cache it.

    A producer that fails is logged with its traceback and answered 503 with `unavailable` plus the error's
    type; a failure is not cached, so the next request tries again.
    """
    cache = request.app[CACHE_KEY]
    cached = cache.get(key)
    if cached is not None:
        return _send(cached)
    try:
        body = await _call(produce)
    except Exception as e:
        logger.exception("GET %s: could not be produced", request.path)
        return _json(request, {**unavailable, "error": f"{unavailable['error']} ({type(e).__name__})"}, 503)
    return _send(cache.put(key, Encoded(status_of(body), encode_json(body, request.app[SCRUB_KEY]))))


def _ok(_: Any) -> int:
    return 200


async def health(request: web.Request) -> web.Response:
    """GET /health: the cached health report; 503 when the overall status is critical."""
    unavailable = {"status": "critical", "error": "health report unavailable"}
    return await _cached_json(
        request, "health", request.app[MONITORING_KEY].health_report, health_http_status, unavailable
    )


async def history(request: web.Request) -> web.Response:
    """GET /api/history: recent samples for the charts."""
    unavailable = {"error": "history unavailable"}
    return await _cached_json(request, "history", request.app[MONITORING_KEY].history, _ok, unavailable)


async def trading(request: web.Request) -> web.Response:
    """GET /api/trading: the trading section (P&L, positions, recent copies, wallets, denials, equity curve)."""
    unavailable = {"status": "error", "error": "trading view unavailable"}
    return await _cached_json(request, "trading", request.app[TRADING_KEY].view, _ok, unavailable)


def parse_reset_body(raw: bytes) -> str:
    """The reset's reason from an empty body or a JSON object {"reason": "..."}; ValueError says what is wrong."""
    if not raw.strip():
        return DEFAULT_RESET_REASON
    try:
        body = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(
            f'expected an empty body or a JSON object such as {{"reason": "..."}}; invalid JSON: {e}'
        ) from e
    if not isinstance(body, dict):
        raise ValueError(f"expected a JSON object such as {EXAMPLE_BODY}, received a JSON {type(body).__name__}")
    unknown = sorted(set(body) - {"reason"})
    if unknown:
        raise ValueError(f'expected only the key "reason", received unknown key(s) {unknown}')
    reason = body.get("reason", DEFAULT_RESET_REASON)
    if not isinstance(reason, str) or not reason.strip():
        raise ValueError(f'expected "reason" to be a non-empty string, received {reason!r}')
    if len(reason) > MAX_REASON_CHARS:
        raise ValueError(f'expected "reason" of at most {MAX_REASON_CHARS} characters, received {len(reason)}')
    # the reason reaches the log: no control characters (no forged log lines)
    return "".join(char if char.isprintable() else " " for char in reason.strip())


async def reset_circuit_breaker(request: web.Request) -> web.Response:
    """POST /reset-mcp-circuit-breaker or /reset-circuit-breaker: close the MCP circuit breaker (never the trading
    one); needs `Authorization: Bearer <DASHBOARD_TOKEN>`, which a cross-site form cannot send (no CSRF)."""
    limit = request.app[MAX_BODY_KEY]
    if request.content_length is not None and request.content_length > limit:
        return _json(request, {"error": f"request body over {limit} bytes ({request.content_length})"}, 413)
    token = request.app[TOKEN_KEY]
    if not token.configured:
        return _json(request, {"status": "disabled", "error": DISABLED_MESSAGE}, 403)
    if not token.matches(bearer_from_header(request.headers.get(hdrs.AUTHORIZATION))):
        logger.warning("POST %s from %s refused: missing or wrong bearer token", request.path, request.remote)
        return _json(
            request,
            {"error": "unauthorized: send the header 'Authorization: Bearer <DASHBOARD_TOKEN>'"},
            401,
            {hdrs.WWW_AUTHENTICATE: 'Bearer realm="polymarket-mcp"'},
        )
    try:
        reason = parse_reset_body(await request.read())
    except ValueError as e:
        return _json(request, {"error": str(e)}, 400)
    reset = request.app[RESET_KEY]
    if reset is None:
        return _json(
            request,
            {"error": "no MCP circuit breaker in this process: the risk integrator is unavailable (see the log)"},
            503,
        )
    try:
        state = await reset(f"dashboard: {reason}")
    except Exception as e:
        logger.exception("POST %s: the MCP circuit breaker reset failed", request.path)
        return _json(request, {"error": f"reset failed ({type(e).__name__}: {e}); see the sidecar log"}, 500)
    logger.warning("MCP circuit breaker reset from the dashboard (client %s): %s", request.remote, reason)
    return _json(request, {"status": "reset", "reason": reason, "mcp_circuit_breaker": dict(state)})


# --- the application ----------------------------------------------------------------------------------


def build_dashboard_app(
    settings: Settings,
    monitoring: MonitoringView,
    *,
    reset_breaker: ResetBreaker | None = None,
    registry: Any = None,
    static_dir: Path = STATIC_DIR,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    cache_seconds: float = DEFAULT_CACHE_SECONDS,
    clock: Callable[[], float] = time.monotonic,
    extend: Iterable[Extension] = (),
    trading_source: Any = None,
    read_token_required: bool | None = None,
) -> web.Application:
    """The dashboard application; /metrics is mounted only when a prometheus registry is given.

    The page files are read at start-up (off the event loop); a missing file fails the start with a clear error.
    `max_body_bytes` caps every request body of the app (extensions included); each of `extend` may add
    routes (the security headers apply to them too).
    """
    if max_body_bytes <= 0:
        raise ValueError(f"max_body_bytes must be > 0, received {max_body_bytes!r}")
    # --- read token (issue 11): off on loopback; a non-loopback host needs DASHBOARD_TOKEN on /, /health, /api/*
    if read_token_required is None:
        read_token_required = not is_loopback_host(settings.dashboard_host)
    read_auth = None
    if read_token_required:
        if settings.dashboard_token is None or not settings.dashboard_token.get_secret_value().strip():
            raise DashboardBindError("the read endpoints need DASHBOARD_TOKEN on a non-loopback DASHBOARD_HOST; set it")
        read_auth = ReadAuth(settings.dashboard_token.get_secret_value())
    app = web.Application(client_max_size=max_body_bytes)
    if read_auth is not None:
        app.middlewares.append(read_auth_middleware(read_auth))
    app[SETTINGS_KEY] = settings
    app[MONITORING_KEY] = monitoring
    app[RESET_KEY] = reset_breaker
    app[TOKEN_KEY] = BearerToken(settings.dashboard_token)
    app[SCRUB_KEY] = Scrubber.from_settings(settings)
    app[MAX_BODY_KEY] = max_body_bytes
    app[ASSETS_KEY] = {}
    app[CACHE_KEY] = BodyCache(cache_seconds, clock)
    if trading_source is None:
        trading_source = TradingSource.from_settings(settings)
    app[TRADING_KEY] = trading_source

    async def load(app: web.Application) -> None:
        app[ASSETS_KEY].update(await asyncio.to_thread(load_assets, static_dir, settings))

    app.on_startup.append(load)
    app.on_response_prepare.append(add_security_headers)
    app.router.add_get("/", page)
    app.router.add_get("/static/{name}", static_file)
    app.router.add_get("/health", health)
    app.router.add_get("/api/history", history)
    app.router.add_get("/api/trading", trading)
    if read_auth is not None:
        # issue 11: wrong tokens limited per client IP, on the app's injected clock
        app.router.add_routes(login_routes(read_auth, LoginLimiter(clock)))
    # one handler, so both names keep the same token, body and size rules
    app.router.add_post(RESET_ROUTE, reset_circuit_breaker)
    app.router.add_post(MCP_RESET_ROUTE, reset_circuit_breaker)
    if registry is not None:
        app.router.add_get("/metrics", metrics_handler(registry))
    for extension in extend:
        extension(app)
    return app
