"""Streamable HTTP for MCP at /mcp, mounted on an aiohttp application with one call:

    add_mcp_routes(app, dispatcher_factory, token=settings.dashboard_token,
                   allowed_origins=default_allowed_origins(dashboard_port), max_body=DEFAULT_MAX_BODY_BYTES)

POST carries one JSON-RPC message: a request gets `application/json`, or an SSE stream when it is a
tools/call with a progressToken and the client accepts `text/event-stream` (progress events, then the
response); notifications and client responses get 202. `initialize` opens a session (`Mcp-Session-Id`,
256 random bits); every later message must carry it (400 without, 404 when unknown or ended) and, when
sent, an `MCP-Protocol-Version` equal to the negotiated one (400 otherwise). DELETE ends a session, GET is
405 (no server-initiated stream). Before anything else: a present but unlisted Origin is 403 (DNS
rebinding), a missing or wrong bearer token 401 (no token configured: 403, disabled), a body over the limit
413. The dispatcher is built by `dispatcher_factory` on first use, so the app can be built before the tools.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from aiohttp import hdrs, web
from pydantic import SecretStr

from mcp.dashboard.security import BearerToken, bearer_from_header
from mcp.protocol.clip import clip_repr
from mcp.protocol.dispatcher import Dispatcher
from mcp.protocol.jsonrpc import (
    INTERNAL_ERROR,
    INVALID_REQUEST,
    ProtocolError,
    Request,
    encode,
    error_response,
    parse_message,
)
from mcp.protocol.session import SUPPORTED_VERSIONS, Session
from mcp.protocol.toolcall import progress_token

logger = logging.getLogger(__name__)

MCP_PATH = "/mcp"
SESSION_HEADER = "Mcp-Session-Id"
VERSION_HEADER = "MCP-Protocol-Version"
DEFAULT_MAX_BODY_BYTES = 256 * 1024
DEFAULT_MAX_SESSIONS = 64
DEFAULT_SESSION_IDLE_SECONDS = 3600.0
DISABLED_MESSAGE = "MCP over HTTP is disabled: set DASHBOARD_TOKEN to enable /mcp"

DispatcherFactory = Callable[[], Dispatcher]


def default_allowed_origins(port: int) -> set[str]:
    """The dashboard's own loopback origins (a browser page served by the dashboard may call /mcp)."""
    return {f"http://127.0.0.1:{port}", f"http://localhost:{port}", f"http://[::1]:{port}"}


def normalize_origin(origin: str) -> str:
    """Compare origins case-insensitively and without a trailing slash."""
    return origin.strip().rstrip("/").lower()


def origin_allowed(origin: str | None, allowed: set[str]) -> bool:
    """No Origin header (non-browser clients) is allowed; a present one must be listed."""
    return origin is None or normalize_origin(origin) in allowed


def accepts(header: str | None, media_type: str) -> bool:
    """Does an Accept header admit `media_type`? (A missing header admits anything.)"""
    if header is None or not header.strip():
        return True
    kind = media_type.split("/", 1)[0]
    for item in header.split(","):
        value = item.split(";", 1)[0].strip().lower()
        if value in (media_type, "*/*", f"{kind}/*"):
            return True
    return False


def _error(status: int, message: str, *, code: int = INVALID_REQUEST, headers: Mapping[str, str] | None = None,
           request_id: Any = None) -> web.Response:  # fmt: skip
    body = encode(error_response(request_id, code, message))
    return web.Response(status=status, body=body, content_type="application/json", headers=headers)


class McpHttpEndpoint:
    """The /mcp handlers and their sessions."""

    def __init__(
        self,
        dispatcher_factory: DispatcherFactory,
        *,
        token: SecretStr | str | None,
        allowed_origins: Iterable[str],
        max_body: int = DEFAULT_MAX_BODY_BYTES,
        max_sessions: int = DEFAULT_MAX_SESSIONS,
        session_idle_seconds: float = DEFAULT_SESSION_IDLE_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_body <= 0 or max_sessions <= 0 or session_idle_seconds <= 0:
            raise ValueError(
                f"expected max_body, max_sessions, session_idle_seconds > 0, received {max_body}, {max_sessions}, "
                f"{session_idle_seconds}"
            )
        self._factory = dispatcher_factory
        self._dispatcher: Dispatcher | None = None
        self._token = BearerToken(token)
        self._allowed = {normalize_origin(origin) for origin in allowed_origins}
        self.max_body = max_body
        self._max_sessions = max_sessions
        self._idle = session_idle_seconds
        self._clock = clock
        self.sessions: OrderedDict[str, Session] = OrderedDict()
        self._last_used: dict[str, float] = {}

    # --- gatekeeping ------------------------------------------------------------------------------

    def _refuse(self, request: web.Request) -> web.Response | None:
        origin = request.headers.get(hdrs.ORIGIN)
        if origin is not None and not origin_allowed(origin, self._allowed):
            shown = origin[:100]
            logger.warning("MCP request from origin %r refused (not in the allowed origins)", shown)
            return _error(403, f"forbidden: origin {shown!r} is not allowed to call /mcp (DNS-rebinding protection)")
        if not self._token.configured:
            return _error(403, DISABLED_MESSAGE)
        if not self._token.matches(bearer_from_header(request.headers.get(hdrs.AUTHORIZATION))):
            return _error(
                401,
                "unauthorized: send the header 'Authorization: Bearer <DASHBOARD_TOKEN>'",
                headers={hdrs.WWW_AUTHENTICATE: 'Bearer realm="polymarket-mcp"'},
            )
        return None

    async def _read_body(self, request: web.Request) -> bytes | web.Response:
        declared = request.content_length
        if declared is not None and declared > self.max_body:
            return _error(413, f"request body of {declared} bytes exceeds the {self.max_body} byte limit")
        # read() (not the stream): the port's body-deadline middleware may have read the body already
        try:
            body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            return _error(413, f"request body exceeds the {self.max_body} byte limit")
        if len(body) > self.max_body:
            return _error(413, f"request body exceeds the {self.max_body} byte limit")
        return body

    def dispatcher(self) -> Dispatcher:
        """The dispatcher, built on first use."""
        if self._dispatcher is None:
            self._dispatcher = self._factory()
        return self._dispatcher

    # --- sessions ----------------------------------------------------------------------------------

    def _expire(self) -> None:
        now = self._clock()
        for session_id in [sid for sid, used in self._last_used.items() if now - used > self._idle]:
            session = self.sessions.get(session_id)
            if session is not None and not session.in_flight():
                logger.info("MCP session %s… expired after %.0f s idle", session_id[:8], self._idle)
                self._end(session_id)

    def _end(self, session_id: str) -> None:
        session = self.sessions.pop(session_id, None)
        self._last_used.pop(session_id, None)
        if session is not None:
            session.close()

    def _admit(self, session: Session) -> bool:
        while len(self.sessions) >= self._max_sessions:
            idle = next((sid for sid, s in self.sessions.items() if not s.in_flight()), None)
            if idle is None:
                return False
            logger.info("MCP session %s… ended to make room (limit %d)", idle[:8], self._max_sessions)
            self._end(idle)
        self.sessions[session.id] = session
        self._touch(session.id)
        return True

    def _touch(self, session_id: str) -> None:
        self._last_used[session_id] = self._clock()
        self.sessions.move_to_end(session_id)

    def _session_for(self, request: web.Request) -> Session | web.Response:
        session_id = request.headers.get(SESSION_HEADER)
        if not session_id:
            return _error(400, f"bad request: missing {SESSION_HEADER} header; send initialize first")
        session = self.sessions.get(session_id)
        if session is None:
            return _error(404, f"session not found: unknown or ended {SESSION_HEADER}; send initialize again")
        version = request.headers.get(VERSION_HEADER)
        if version is not None and version not in SUPPORTED_VERSIONS:
            supported = ", ".join(SUPPORTED_VERSIONS)
            return _error(400, f"bad request: unsupported {VERSION_HEADER} {version[:40]!r}; supported: {supported}")
        if version is not None and session.protocol_version is not None and version != session.protocol_version:
            return _error(
                400,
                f"bad request: {VERSION_HEADER} {version!r} differs from the version negotiated for this session "
                f"({session.protocol_version})",
            )
        self._touch(session.id)
        return session

    # --- handlers ----------------------------------------------------------------------------------

    async def post(self, request: web.Request) -> web.StreamResponse:
        """POST /mcp: one JSON-RPC message."""
        refused = self._refuse(request)
        if refused is not None:
            return refused
        content_type = request.headers.get(hdrs.CONTENT_TYPE, "")
        if content_type and not content_type.lower().startswith("application/json"):
            return _error(415, f"unsupported media type {content_type[:60]!r}: send application/json")
        accept = request.headers.get(hdrs.ACCEPT)
        if not (accepts(accept, "application/json") or accepts(accept, "text/event-stream")):
            return _error(406, "not acceptable: the client must accept application/json and text/event-stream")
        body = await self._read_body(request)
        if isinstance(body, web.Response):
            return body
        try:
            message = parse_message(body)
        except ProtocolError as e:
            return _error(400, e.message, code=e.code, request_id=e.request_id)
        try:
            dispatcher = self.dispatcher()
        except Exception as e:
            logger.exception("cannot build the MCP tools")
            return _error(503, f"MCP tools unavailable ({type(e).__name__}); see the sidecar log", code=INTERNAL_ERROR)
        self._expire()
        if isinstance(message, Request) and not dispatcher.knows(message.method):
            # an unknown method is -32601 whatever the session state (clients probe, e.g. server/discover)
            response = await dispatcher.handle(Session(), message)
            return self._json(response)
        if isinstance(message, Request) and message.method == "initialize":
            return await self._initialize(dispatcher, message)
        session = self._session_for(request)
        if isinstance(session, web.Response):
            return session
        if not isinstance(message, Request):
            answer = await dispatcher.handle(session, message)
            if answer is not None:  # a request method sent without an id
                return web.Response(status=400, body=encode(answer), content_type="application/json")
            return web.Response(status=202)
        if (
            message.method == "tools/call"
            and progress_token(message.params) is not None
            and accept is not None
            and accepts(accept, "text/event-stream")
        ):
            return await self._stream(request, dispatcher, session, message)
        response = await dispatcher.handle(session, message)
        if response is None:
            return web.Response(status=202)  # cancelled by the client: no response will follow
        return self._json(response)

    async def _initialize(self, dispatcher: Dispatcher, message: Request) -> web.Response:
        session = Session()
        response = await dispatcher.handle(session, message)
        if response is None or "error" in response:
            return self._json(response)
        if not self._admit(session):
            return _error(503, f"too many MCP sessions in progress (limit {self._max_sessions}); retry later")
        return self._json(response, {SESSION_HEADER: session.id})

    @staticmethod
    def _json(payload: dict[str, Any] | None, headers: Mapping[str, str] | None = None) -> web.Response:
        if payload is None:
            return web.Response(status=202)
        return web.Response(status=200, body=encode(payload), content_type="application/json", headers=headers)

    async def _stream(
        self, request: web.Request, dispatcher: Dispatcher, session: Session, message: Request
    ) -> web.StreamResponse:
        stream = web.StreamResponse(
            status=200, headers={hdrs.CONTENT_TYPE: "text/event-stream", hdrs.CACHE_CONTROL: "no-cache"}
        )
        await stream.prepare(request)
        lock = asyncio.Lock()

        async def send(event: dict[str, Any]) -> None:
            async with lock:
                await stream.write(b"event: message\ndata: " + encode(event) + b"\n\n")

        response = await dispatcher.handle(session, message, send)
        if response is not None:
            try:
                await send(response)
            except (ConnectionError, RuntimeError) as e:
                logger.info("client left before the response to %s was sent: %s", clip_repr(message.id, 80), e)
                return stream
        try:
            await stream.write_eof()
        except (ConnectionError, RuntimeError) as e:
            logger.debug("SSE stream already closed: %s", e)
        return stream

    async def delete(self, request: web.Request) -> web.Response:
        """DELETE /mcp: end the session named by Mcp-Session-Id."""
        refused = self._refuse(request)
        if refused is not None:
            return refused
        session = self._session_for(request)
        if isinstance(session, web.Response):
            return session
        self._end(session.id)
        logger.info("MCP session %s… ended by the client", session.id[:8])
        return web.Response(status=204)

    async def get(self, request: web.Request) -> web.Response:
        """GET /mcp: 405, this server opens no server-initiated stream."""
        refused = self._refuse(request)
        if refused is not None:
            return refused
        return _error(405, "method not allowed: this server has no GET stream; POST JSON-RPC messages", headers={
            hdrs.ALLOW: "POST, DELETE"
        })  # fmt: skip

    def close(self) -> None:
        """End every session (application shutdown)."""
        for session_id in list(self.sessions):
            self._end(session_id)


MCP_ENDPOINT_KEY = web.AppKey("mcp_endpoint", McpHttpEndpoint)


def add_mcp_routes(
    app: web.Application,
    dispatcher_factory: DispatcherFactory,
    *,
    token: SecretStr | str | None,
    allowed_origins: Iterable[str],
    max_body: int = DEFAULT_MAX_BODY_BYTES,
    path: str = MCP_PATH,
    max_sessions: int = DEFAULT_MAX_SESSIONS,
    session_idle_seconds: float = DEFAULT_SESSION_IDLE_SECONDS,
) -> McpHttpEndpoint:
    """Mount POST/GET/DELETE `path` on `app`; returns the endpoint (also at app[MCP_ENDPOINT_KEY])."""
    endpoint = McpHttpEndpoint(
        dispatcher_factory,
        token=token,
        allowed_origins=allowed_origins,
        max_body=max_body,
        max_sessions=max_sessions,
        session_idle_seconds=session_idle_seconds,
    )
    app[MCP_ENDPOINT_KEY] = endpoint
    app.router.add_post(path, endpoint.post)
    app.router.add_get(path, endpoint.get, allow_head=False)
    app.router.add_delete(path, endpoint.delete)

    async def close_sessions(app: web.Application) -> None:
        endpoint.close()

    app.on_shutdown.append(close_sessions)
    return endpoint
