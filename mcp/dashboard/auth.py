"""A token on the dashboard's read endpoints when it listens beyond loopback (on loopback they stay open).

Scripts send `Authorization: Bearer <DASHBOARD_TOKEN>`; a browser signs in once through the form at
GET/POST /login, which sets an HttpOnly, SameSite=Strict cookie. The cookie holds an HMAC-SHA256 of the
token (never the token itself), so a leaked cookie does not reveal DASHBOARD_TOKEN, and changing the token
signs every browser out. Both checks run in constant time. The page's script and style (/static/) and
/login itself stay open; /mcp and POST /reset-circuit-breaker keep their own bearer check. Wrong tokens at
POST /login are limited per client IP (mcp.dashboard.login_limit: 5 a minute, then 429 with Retry-After).
"""

from __future__ import annotations

import hashlib
import hmac
import html
import logging
from collections.abc import Awaitable, Callable
from urllib.parse import parse_qs

from aiohttp import hdrs, web

from mcp.dashboard.login_limit import LoginLimiter
from mcp.dashboard.security import BearerToken, bearer_from_header

logger = logging.getLogger(__name__)

COOKIE_NAME = "dashboard_session"
COOKIE_MAX_AGE_SECONDS = 7 * 24 * 3600
# the HMAC's message: versioned so that a future cookie format never accepts this one
SESSION_CONTEXT = b"polymarket-dashboard-session-v1"
READ_PATHS = frozenset({"/", "/health", "/metrics"})
READ_PREFIXES = ("/api/",)
MAX_LOGIN_BODY_BYTES = 4096
LOGIN_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer"><title>Sign in · polymarket-copy-bot</title>
<link rel="icon" href="data:,"><link rel="stylesheet" href="/static/dashboard.css"></head>
<body><main class="login"><h1>polymarket-copy-bot</h1>
<p>This dashboard listens beyond this machine: enter DASHBOARD_TOKEN to see it.</p>{error}
<form method="post" action="/login"><label for="token">Dashboard token</label>
<input id="token" name="token" type="password" autocomplete="current-password" required autofocus>
<button type="submit">Sign in</button></form></main></body></html>
"""

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def session_value(token: str) -> str:
    """The cookie's value for `token`: HMAC-SHA256 keyed by the token (hex), not reversible to it."""
    return hmac.new(token.encode("utf-8", "surrogateescape"), SESSION_CONTEXT, hashlib.sha256).hexdigest()


def needs_token(path: str) -> bool:
    """True for the read endpoints the token guards: /, /health, /metrics and /api/*."""
    return path in READ_PATHS or path.startswith(READ_PREFIXES)


class ReadAuth:
    """Checks a request's bearer header or session cookie against DASHBOARD_TOKEN, in constant time."""

    __slots__ = ("_bearer", "_session")

    def __init__(self, token: str) -> None:
        if not token.strip():
            raise ValueError("a read token needs a non-empty DASHBOARD_TOKEN")
        self._bearer = BearerToken(token)
        self._session = session_value(token).encode()

    def allows(self, authorization: str | None, cookie: str | None) -> bool:
        """True for the right bearer token or the right session cookie (both always compared)."""
        bearer_ok = self._bearer.matches(bearer_from_header(authorization))
        cookie_ok = hmac.compare_digest((cookie or "").encode("utf-8", "surrogateescape"), self._session)
        return bearer_ok or (cookie_ok and cookie is not None)

    def session_cookie(self) -> str:
        """The value the login sets."""
        return self._session.decode()

    def __repr__(self) -> str:
        return "ReadAuth(configured=True)"


def login_page(error: str = "", *, status: int | None = None, headers: dict[str, str] | None = None) -> web.Response:
    """The sign-in form (no script: it works under the strict CSP); 401 with an error, 200 without."""
    notice = f'<p class="error" role="alert">{html.escape(error)}</p>' if error else ""
    code = status if status is not None else (401 if error else 200)
    return web.Response(text=LOGIN_PAGE.format(error=notice), status=code, content_type="text/html", headers=headers)


def read_auth_middleware(auth: ReadAuth) -> Callable[[web.Request, Handler], Awaitable[web.StreamResponse]]:
    """Refuse the read endpoints without the token: the page redirects to /login, the rest answer 401."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if not needs_token(request.path):
            return await handler(request)
        if auth.allows(request.headers.get(hdrs.AUTHORIZATION), request.cookies.get(COOKIE_NAME)):
            return await handler(request)
        if request.path == "/" and request.method == "GET":
            raise web.HTTPSeeOther("/login")
        return web.json_response(
            {
                "error": "unauthorized: send 'Authorization: Bearer <DASHBOARD_TOKEN>' or sign in at /login",
            },
            status=401,
            headers={hdrs.WWW_AUTHENTICATE: 'Bearer realm="polymarket-dashboard"'},
        )

    return middleware


def login_routes(auth: ReadAuth, limiter: LoginLimiter | None = None) -> list[web.RouteDef]:
    """GET /login (the form) and POST /login (check the token, set the cookie, back to the page).

    A client IP past `limiter`'s failures gets 429 with Retry-After, before its token is even looked at.
    """
    limiter = LoginLimiter() if limiter is None else limiter

    async def show(request: web.Request) -> web.Response:
        return login_page()

    async def submit(request: web.Request) -> web.Response:
        client = request.remote or "unknown"
        wait = limiter.retry_after(client)
        if wait is not None:
            logger.warning("dashboard sign-in from %s refused: too many wrong tokens, retry in %d s", client, wait)
            return login_page(
                f"too many wrong tokens from this address; try again in {wait} s",
                status=429,
                headers={hdrs.RETRY_AFTER: str(wait)},
            )
        if request.content_length is not None and request.content_length > MAX_LOGIN_BODY_BYTES:
            return login_page(f"the form is over {MAX_LOGIN_BODY_BYTES} bytes; send only the token")
        raw = await request.content.read(MAX_LOGIN_BODY_BYTES + 1)
        if len(raw) > MAX_LOGIN_BODY_BYTES:
            return login_page(f"the form is over {MAX_LOGIN_BODY_BYTES} bytes; send only the token")
        try:
            fields = parse_qs(raw.decode("utf-8"), max_num_fields=4, errors="strict")
        except (UnicodeDecodeError, ValueError):
            return login_page("expected a form with one field, token")
        presented = (fields.get("token") or [""])[0]
        if not auth.allows(f"Bearer {presented}" if presented else None, None):
            limiter.failed(client)
            logger.warning("dashboard sign-in from %s refused: wrong token", request.remote)
            return login_page("wrong token; expected the value of DASHBOARD_TOKEN")
        limiter.succeeded(client)
        response = web.Response(status=303, headers={hdrs.LOCATION: "/"})
        response.set_cookie(
            COOKIE_NAME,
            auth.session_cookie(),
            max_age=COOKIE_MAX_AGE_SECONDS,
            path="/",
            httponly=True,
            samesite="Strict",
            secure=request.secure,
        )
        logger.info("dashboard sign-in from %s", request.remote)
        return response

    return [web.get("/login", show), web.post("/login", submit)]
