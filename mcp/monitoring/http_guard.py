"""What both HTTP ports of the sidecar (dashboard + /mcp, and /metrics) refuse before any handler runs.

    guard = HttpGuard.from_settings(settings)
    runner, port = await start_site(app, host, port, setting="METRICS_PORT", what="metrics", guard=guard)

- A `Host` header naming anything but loopback, DASHBOARD_HOST or DASHBOARD_ALLOWED_HOSTS gets 421: a page on
  another site whose name was re-pointed at 127.0.0.1 (DNS rebinding) cannot read what we serve. The check is
  one middleware, outermost, so it covers every route, including routes mounted later.
- A request head must be complete within HTTP_HEADER_TIMEOUT_SECONDS of the connection opening (or of the
  last response on a kept-alive connection): aiohttp's keep-alive timer closes a connection that is still
  waiting for a whole request head when it fires, and it starts when the connection opens.
- A request body must arrive in full within HTTP_BODY_TIMEOUT_SECONDS: a middleware reads it under a
  deadline (408 otherwise, and the connection is closed after aiohttp has drained what is left for at most
  the same time again); handlers then get the bytes already read.
- A client IP may hold at most HTTP_MAX_CONNECTIONS_PER_CLIENT open connections per port; one more is
  answered 503 and closed at once, before a byte of it is read.

The decisions (`host_name`, `allowed_host_names`, `ConnectionCounts`) are pure and tested on their own.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from aiohttp import hdrs, web
from aiohttp.typedefs import Handler, Middleware

logger = logging.getLogger(__name__)

LOOPBACK_HOST_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})
WILDCARD_HOSTS = frozenset({"", "0.0.0.0", "::"})
HOST_SETTING = "DASHBOARD_ALLOWED_HOSTS"
CONNECTIONS_SETTING = "HTTP_MAX_CONNECTIONS_PER_CLIENT"
BODY_TIMEOUT_SETTING = "HTTP_BODY_TIMEOUT_SECONDS"
# a name or an IPv4 address: letters, digits, dots, hyphens, underscores (no space, slash, @ or colon)
_NAME = re.compile(r"^[a-z0-9._-]+$")
_IPV6 = re.compile(r"^[0-9a-f:.]+$")
MAX_LOGGED_NAMES = 64


def host_name(value: str) -> str | None:
    """The name in a Host header value: lower case, without port, brackets or trailing dot; None if malformed.

    "LocalHost:8080" -> "localhost", "[::1]:9090" -> "::1", "a b" -> None, "h:port" -> None.
    """
    text = value.strip().lower()
    if text.startswith("["):
        end = text.find("]")
        name, rest = text[1:end], text[end + 1 :]
        if end < 0 or not _IPV6.match(name) or (rest and not (rest[:1] == ":" and rest[1:].isdigit())):
            return None
        return name
    name, colon, port = text.rpartition(":")
    if colon and not port.isdigit():
        return None
    name = (name if colon else text).rstrip(".")
    return name if _NAME.match(name) else None


def allowed_host_names(dashboard_host: str, extra: Iterable[str] = ()) -> frozenset[str]:
    """The Host names both ports answer: loopback, DASHBOARD_HOST (unless a wildcard) and the extra names."""
    names = set(LOOPBACK_HOST_NAMES)
    for value in (dashboard_host, *extra):
        if value.strip() in WILDCARD_HOSTS:
            continue
        # a bare IPv6 address (DASHBOARD_HOST=fd00::5) is bracketed the way it appears in a Host header
        bracketed = f"[{value.strip()}]" if value.count(":") > 1 and not value.strip().startswith("[") else value
        name = host_name(bracketed)
        if name is not None:
            names.add(name)
    return frozenset(names)


def host_allowed(header: str | None, allowed: frozenset[str]) -> bool:
    """No Host header (a non-browser HTTP/1.0 client) passes; a present one must name an allowed host."""
    return header is None or host_name(header) in allowed


def misdirected_text(header: str) -> str:
    """The 421 body: what was refused and which setting lets it through."""
    shown = header.strip()[:100]
    return (
        f"421 Misdirected Request: this server does not answer to Host {shown!r} (DNS-rebinding protection). "
        f"If that name is really this machine, add it to {HOST_SETTING} (comma-separated) and restart the sidecar.\n"
    )


class ConnectionCounts:
    """Open connections per client IP, with a ceiling: `acquire` says whether one more may open."""

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError(f"expected a connection limit >= 1, received {limit!r}")
        self.limit = limit
        self._open: dict[str, int] = {}

    def acquire(self, client: str) -> bool:
        """Count one more connection of `client`; False (nothing counted) when it already holds `limit`."""
        held = self._open.get(client, 0)
        if held >= self.limit:
            return False
        self._open[client] = held + 1
        return True

    def release(self, client: str) -> None:
        """One connection of `client` closed."""
        held = self._open.get(client, 0) - 1
        if held > 0:
            self._open[client] = held
        else:
            self._open.pop(client, None)

    def held(self, client: str) -> int:
        """How many connections `client` holds now."""
        return self._open.get(client, 0)


def _refusal(limit: int) -> bytes:
    text = (
        f"503 Service Unavailable: this client already holds {limit} open connections to this port; close some "
        f"or raise {CONNECTIONS_SETTING}.\n"
    ).encode()
    head = (
        "HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain; charset=utf-8\r\n"
        f"Content-Length: {len(text)}\r\nConnection: close\r\nRetry-After: 1\r\n\r\n"
    ).encode()
    return head + text


def _peer(transport: asyncio.BaseTransport) -> str:
    peer = transport.get_extra_info("peername")
    return str(peer[0]) if isinstance(peer, tuple) and peer else "unknown"


@dataclass(frozen=True, slots=True)
class HttpGuard:
    """The limits of one HTTP port; `middlewares()` for the app, `runner_options()` and `limit_connections()`."""

    allowed_hosts: frozenset[str]
    header_timeout: float = 10.0
    body_timeout: float = 10.0
    max_connections_per_client: int = 32

    def __post_init__(self) -> None:
        if self.header_timeout <= 0 or self.body_timeout <= 0 or self.max_connections_per_client < 1:
            raise ValueError(
                "expected header_timeout > 0, body_timeout > 0, max_connections_per_client >= 1, received "
                f"{self.header_timeout}, {self.body_timeout}, {self.max_connections_per_client}"
            )

    @classmethod
    def from_settings(cls, settings: Any) -> HttpGuard:
        """DASHBOARD_HOST, DASHBOARD_ALLOWED_HOSTS and the HTTP_* limits."""
        return cls(
            allowed_hosts=allowed_host_names(settings.dashboard_host, settings.dashboard_allowed_hosts),
            header_timeout=settings.http_header_timeout_seconds,
            body_timeout=settings.http_body_timeout_seconds,
            max_connections_per_client=settings.http_max_connections_per_client,
        )

    def runner_options(self) -> dict[str, Any]:
        """AppRunner keyword arguments: the keep-alive timer doubles as the request-head deadline; after an
        answer sent before its body was read (408, 413, 421), aiohttp drains the rest for at most the body timeout.
        """
        return {"keepalive_timeout": self.header_timeout, "lingering_time": self.body_timeout}

    def middlewares(self) -> list[Middleware]:
        """The Host check (outermost) and the body deadline."""
        return [host_middleware(self.allowed_hosts), body_deadline_middleware(self.body_timeout)]

    def install(self, app: web.Application) -> None:
        """Put the middlewares first on `app` (before it is frozen by the runner's setup)."""
        app.middlewares[0:0] = self.middlewares()

    def limit_connections(self, server: web.Server) -> ConnectionCounts:
        """Make `server` (runner.server after setup) refuse a client's connection beyond the limit."""
        counts = ConnectionCounts(self.max_connections_per_client)
        admitted: dict[object, str] = {}
        warned: set[str] = set()
        made, lost = server.connection_made, server.connection_lost

        def connection_made(handler: Any, transport: asyncio.Transport) -> None:
            made(handler, transport)
            client = _peer(transport)
            if counts.acquire(client):
                admitted[handler] = client
                return
            if client not in warned:  # once per burst, so a flood cannot flood the log too
                warned.add(client)
                logger.warning(
                    "HTTP client %s holds %d connections (the limit, %s): further ones are refused with 503",
                    client,
                    counts.limit,
                    CONNECTIONS_SETTING,
                )
            transport.write(_refusal(counts.limit))
            transport.close()

        def connection_lost(handler: Any, exc: BaseException | None = None) -> None:
            client = admitted.pop(handler, None)
            if client is not None:
                counts.release(client)
                if counts.held(client) == 0:
                    warned.discard(client)
            lost(handler, exc)

        # aiohttp's Server has no hook for this: its connection callbacks are wrapped on this one instance
        server.connection_made = connection_made  # type: ignore[method-assign]
        server.connection_lost = connection_lost  # type: ignore[method-assign]
        return counts


def host_middleware(allowed: frozenset[str]) -> Middleware:
    """421 for a request whose Host is not allowed (no handler runs, nothing is read)."""
    logged: set[str] = set()

    @web.middleware
    async def check_host(request: web.Request, handler: Handler) -> web.StreamResponse:
        header = request.headers.get(hdrs.HOST)
        if host_allowed(header, allowed):
            return await handler(request)
        assert header is not None
        shown = header.strip()[:100]
        if shown not in logged and len(logged) < MAX_LOGGED_NAMES:
            logged.add(shown)
            logger.warning(
                "HTTP request for Host %r from %s refused with 421 (not loopback, DASHBOARD_HOST or %s)",
                shown,
                request.remote,
                HOST_SETTING,
            )
        response = web.Response(status=421, text=misdirected_text(header))
        response.force_close()
        return response

    return check_host


def body_deadline_middleware(timeout: float) -> Middleware:
    """Read a request's body within `timeout` seconds before its handler runs (408 otherwise).

    A body declared larger than the app's limit is left unread: the handler refuses it (413) on its own.
    """

    @web.middleware
    async def read_body(request: web.Request, handler: Handler) -> web.StreamResponse:
        declared = request.content_length
        if request.body_exists and (declared is None or declared <= request.client_max_size):
            try:
                async with asyncio.timeout(timeout):
                    await request.read()  # kept by aiohttp: the handler's read() returns these bytes
            except TimeoutError:
                logger.warning(
                    "HTTP body from %s not complete after %g s: 408, connection closed", request.remote, timeout
                )
                response = web.Response(
                    status=408,
                    text=f"408 Request Timeout: the request body did not arrive within {timeout:g} s "
                    f"({BODY_TIMEOUT_SETTING}); send it at once.\n",
                )
                response.force_close()
                return response
        return await handler(request)

    return read_body
