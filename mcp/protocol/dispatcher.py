"""The method table of our MCP server, independent of the transport.

Methods: initialize (version negotiation), ping, tools/list (cursor pagination), tools/call (an unknown tool
is -32602; the call itself is mcp.protocol.toolcall's). Any other request method, including
`server/discover`, is -32601; a request before initialize is -32600 (ping excepted). Notifications
(initialized, cancelled, anything else) are never answered; a request method sent without an id is -32600.
"""

from __future__ import annotations

import base64
import binascii
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from mcp.protocol.cache import TTLCache
from mcp.protocol.clip import clip_repr
from mcp.protocol.jsonrpc import (
    INTERNAL_ERROR,
    INVALID_PARAMS,
    INVALID_REQUEST,
    METHOD_NOT_FOUND,
    Message,
    Notification,
    ProtocolError,
    Request,
    RequestId,
    error_response,
    result_response,
)
from mcp.protocol.session import LATEST_VERSION, Phase, Session, negotiate_version, supports
from mcp.protocol.tool_registry import ToolRegistry, ToolSpec
from mcp.protocol.toolcall import (
    PerClientLimit,
    ProgressNotifier,
    Sender,
    ToolCaller,
    ToolCallMetrics,
    progress_token,
)

logger = logging.getLogger(__name__)

DEFAULT_PAGE_SIZE = 50
SERVER_NAME = "polymarket-mcp"
INSTRUCTIONS = (
    "Read-only window on the polymarket-copy-bot and its monitoring sidecar: codebase search over the risk "
    "parameters, test runs with coverage, health, risk state (masked) and gate state. No tool changes a risk "
    "parameter or the trading state. Heavy tools (scans, test runs) may be deferred during market hours or "
    "while the MCP circuit breaker is open: their result then has status 'deferred' and a reason."
)
CURSOR_PREFIX = "tools:"


@dataclass(frozen=True, slots=True)
class ServerInfo:
    """What initialize tells the client about us."""

    name: str = SERVER_NAME
    version: str = "0.0.0"
    title: str = "Polymarket copy-bot monitoring sidecar"
    instructions: str = INSTRUCTIONS


def encode_cursor(offset: int) -> str:
    """An opaque cursor for the page starting at `offset`."""
    return base64.urlsafe_b64encode(f"{CURSOR_PREFIX}{offset}".encode()).decode()


def decode_cursor(cursor: Any, total: int) -> int:
    """The offset in a cursor we issued; ProtocolError(-32602) for anything else."""
    if not isinstance(cursor, str) or len(cursor) > 64:
        raise ProtocolError(
            INVALID_PARAMS, f"invalid params: expected a cursor from nextCursor, received {cursor!r:.70}"
        )
    try:
        text = base64.urlsafe_b64decode(cursor.encode("ascii")).decode("ascii")
    except (binascii.Error, UnicodeError, ValueError) as e:
        raise ProtocolError(INVALID_PARAMS, f"invalid params: unknown cursor {clip_repr(cursor, 70)}") from e
    number = text.removeprefix(CURSOR_PREFIX)
    if not text.startswith(CURSOR_PREFIX) or not number.isdigit() or not 0 < int(number) < total:
        raise ProtocolError(INVALID_PARAMS, f"invalid params: unknown or expired cursor {clip_repr(cursor, 70)}")
    return int(number)


class Dispatcher:
    """Answers MCP messages for one registry of tools; shared by every session of a process."""

    def __init__(
        self,
        registry: ToolRegistry,
        *,
        server_info: ServerInfo | None = None,
        metrics: ToolCallMetrics | None = None,
        cache: TTLCache | None = None,
        page_size: int = DEFAULT_PAGE_SIZE,
        scrub: Callable[[str], str] | None = None,
        clock: Callable[[], float] = time.perf_counter,
        limits: Mapping[str, PerClientLimit] | None = None,
    ) -> None:
        if page_size <= 0:
            raise ValueError(f"page_size must be > 0, received {page_size}")
        self.registry = registry
        self.server_info = server_info or ServerInfo()
        self.page_size = page_size
        self.tool_calls = ToolCaller(metrics=metrics, cache=cache, scrub=scrub, clock=clock, limits=limits)
        self.cache = self.tool_calls.cache
        self.call = self.tool_calls.call  # the in-process entry point: one tool call, its tools/call result
        self._methods: dict[str, Callable[[Session, Request, Sender | None], Awaitable[dict[str, Any]]]] = {
            "initialize": self._initialize,
            "ping": self._ping,
            "tools/list": self._list_tools,
            "tools/call": self._call_tool,
        }

    def knows(self, method: str) -> bool:
        """Is `method` a request method this server answers?"""
        return method in self._methods

    # --- entry point ----------------------------------------------------------------------------

    async def handle(self, session: Session, message: Message, send: Sender | None = None) -> dict[str, Any] | None:
        """The response to send for `message`, or None (notifications, client responses, cancelled requests)."""
        if isinstance(message, Notification):
            if self.knows(message.method):
                # a request method without an id is neither a valid request nor a notification we know
                return error_response(
                    None, INVALID_REQUEST, f"invalid request: {message.method} is a request and needs an id"
                )
            self._notify(session, message)
            return None
        if not isinstance(message, Request):
            return None  # a response to a server request: we send none, so there is nothing to match
        try:
            handler = self._methods.get(message.method)
            if handler is None:
                raise ProtocolError(
                    METHOD_NOT_FOUND,
                    f"method not found: {message.method[:80]!r}; this server answers {', '.join(self._methods)}",
                )
            if not session.initialized and message.method not in ("initialize", "ping"):
                raise ProtocolError(
                    INVALID_REQUEST, f"invalid request: {message.method} before initialize; send initialize first"
                )
            answered, result = await session.run_request(message.id, lambda: handler(session, message, send))
        except ProtocolError as e:
            return error_response(message.id, e.code, e.message, e.data)
        except Exception as e:  # a bug of ours: the client gets -32603, the server keeps serving
            logger.exception("internal error answering %s", message.method)
            return error_response(message.id, INTERNAL_ERROR, f"internal error: {type(e).__name__}")
        return result_response(message.id, result) if answered else None

    def _notify(self, session: Session, message: Notification) -> None:
        if message.method == "notifications/initialized":
            if session.phase is Phase.INITIALIZED:
                session.phase = Phase.READY
            elif session.phase is Phase.NEW:
                logger.warning("notifications/initialized before initialize: ignored")
        elif message.method == "notifications/cancelled":
            request_id: RequestId | None = message.params.get("requestId")
            reason = message.params.get("reason")
            session.cancel(request_id, reason if isinstance(reason, str) else None)
        else:
            logger.debug("notification %s ignored", message.method[:80])

    # --- methods --------------------------------------------------------------------------------

    async def _initialize(self, session: Session, request: Request, send: Sender | None) -> dict[str, Any]:
        if session.initialized:
            raise ProtocolError(INVALID_REQUEST, "invalid request: this session is already initialized")
        params = request.params
        requested = params.get("protocolVersion")
        if not isinstance(requested, str):
            raise ProtocolError(
                INVALID_PARAMS, f"invalid params: expected protocolVersion to be a string, received {requested!r:.40}"
            )
        for name in ("capabilities", "clientInfo"):
            if name in params and not isinstance(params[name], dict):
                raise ProtocolError(INVALID_PARAMS, f"invalid params: expected {name} to be an object")
        version = negotiate_version(requested)
        session.protocol_version = version
        session.client_info = dict(params.get("clientInfo") or {})
        session.client_capabilities = dict(params.get("capabilities") or {})
        session.phase = Phase.INITIALIZED
        info: dict[str, Any] = {"name": self.server_info.name, "version": self.server_info.version}
        if supports(version, "tool_title"):
            info["title"] = self.server_info.title
        logger.info(
            "MCP session %s… initialized: client %s, protocol %s (asked %s)",
            session.id[:8],
            session.client_info.get("name", "?"),
            version,
            requested,
        )
        return {
            "protocolVersion": version,
            "capabilities": {"tools": {"listChanged": False}},
            "serverInfo": info,
            "instructions": self.server_info.instructions,
        }

    async def _ping(self, session: Session, request: Request, send: Sender | None) -> dict[str, Any]:
        return {}

    async def _list_tools(self, session: Session, request: Request, send: Sender | None) -> dict[str, Any]:
        tools = self.registry.tools()
        cursor = request.params.get("cursor")
        offset = 0 if cursor is None else decode_cursor(cursor, len(tools))
        page = tools[offset : offset + self.page_size]
        version = session.protocol_version or LATEST_VERSION
        result: dict[str, Any] = {"tools": [self.definition(spec, version) for spec in page]}
        if offset + self.page_size < len(tools):
            result["nextCursor"] = encode_cursor(offset + self.page_size)
        return result

    def definition(self, spec: ToolSpec, version: str = LATEST_VERSION) -> dict[str, Any]:
        """The tools/list entry of `spec` for a session speaking `version`."""
        entry: dict[str, Any] = {"name": spec.name, "description": spec.description, "inputSchema": spec.input_schema}
        if supports(version, "tool_title"):
            entry["title"] = spec.title
        if spec.output_schema is not None and supports(version, "output_schema"):
            entry["outputSchema"] = spec.output_schema
        if supports(version, "tool_annotations"):
            entry["annotations"] = spec.annotations()
        return entry

    async def _call_tool(self, session: Session, request: Request, send: Sender | None) -> dict[str, Any]:
        params = request.params
        name = params.get("name")
        if not isinstance(name, str):
            raise ProtocolError(
                INVALID_PARAMS, f"invalid params: expected the tool name as a string, received {name!r:.40}"
            )
        spec = self.registry.get(name)
        if spec is None:
            raise ProtocolError(
                INVALID_PARAMS, f"unknown tool {name[:80]!r}; available tools: {', '.join(self.registry.names())}"
            )
        arguments = params.get("arguments")
        if arguments is None:
            arguments = {}
        if not isinstance(arguments, dict):
            raise ProtocolError(INVALID_PARAMS, "invalid params: expected arguments to be an object")
        version = session.protocol_version or LATEST_VERSION
        token = progress_token(params)
        progress = ProgressNotifier(token, send, version) if token is not None and send is not None else None
        return await self.tool_calls.call(spec, arguments, progress=progress, version=version, client=session.id)

    # --- the tool-call pipeline ---------------------------------------------------------------------
