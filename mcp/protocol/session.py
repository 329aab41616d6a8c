"""One MCP connection: protocol version negotiation, the lifecycle, in-flight requests and their cancellation.

The transports own one Session per stdio process or per HTTP `Mcp-Session-Id`. A request runs as its own
task so that `notifications/cancelled` can stop it; a cancelled request gets no response at all (the
client has stopped waiting), while the cancellation of the transport itself propagates as usual.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Awaitable, Callable
from enum import StrEnum
from typing import Any

from mcp.protocol.clip import clip, clip_repr
from mcp.protocol.jsonrpc import INVALID_REQUEST, SERVER_BUSY, ProtocolError, RequestId

logger = logging.getLogger(__name__)

# newest first: the order the server prefers when the client asks for a version it does not know
SUPPORTED_VERSIONS: tuple[str, ...] = ("2025-11-25", "2025-06-18", "2025-03-26", "2024-11-05")
LATEST_VERSION = SUPPORTED_VERSIONS[0]
# what a Streamable HTTP server assumes when a client sends no MCP-Protocol-Version (spec, transports)
HTTP_DEFAULT_VERSION = "2025-03-26"

# the first revision where each version-dependent feature exists
FEATURE_SINCE: dict[str, str] = {
    "tool_annotations": "2025-03-26",
    "progress_message": "2025-03-26",
    "structured_content": "2025-06-18",
    "output_schema": "2025-06-18",
    "tool_title": "2025-06-18",
}


def negotiate_version(requested: Any) -> str:
    """The client's version when we support it, else our latest (the client then decides to stay or leave)."""
    if isinstance(requested, str) and requested in SUPPORTED_VERSIONS:
        return requested
    return LATEST_VERSION


def supports(version: str | None, feature: str) -> bool:
    """Does the negotiated `version` have `feature` (see FEATURE_SINCE)? Unknown versions count as the latest."""
    if version not in SUPPORTED_VERSIONS:
        return True
    return SUPPORTED_VERSIONS.index(version) <= SUPPORTED_VERSIONS.index(FEATURE_SINCE[feature])


DEFAULT_MAX_IN_FLIGHT = 32


def new_session_id() -> str:
    """256 random bits, URL-safe (visible ASCII only, as the transport requires)."""
    return secrets.token_urlsafe(32)


class Phase(StrEnum):
    """Where the connection is in the MCP lifecycle."""

    NEW = "new"  # nothing but initialize and ping are accepted
    INITIALIZED = "initialized"  # initialize answered; waiting for notifications/initialized
    READY = "ready"  # notifications/initialized received
    CLOSED = "closed"


class Session:
    """The state of one connection; the dispatcher reads and updates it."""

    def __init__(self, session_id: str | None = None, *, max_in_flight: int = DEFAULT_MAX_IN_FLIGHT) -> None:
        self.id = session_id or new_session_id()
        self.max_in_flight = max_in_flight
        self.phase = Phase.NEW
        self.protocol_version: str | None = None
        self.client_info: dict[str, Any] = {}
        self.client_capabilities: dict[str, Any] = {}
        self._in_flight: dict[RequestId, asyncio.Task[Any]] = {}
        self._cancelled: set[RequestId] = set()
        self.requests = 0
        self.cancellations = 0

    @property
    def initialized(self) -> bool:
        """True once initialize has been answered."""
        return self.phase in (Phase.INITIALIZED, Phase.READY)

    def in_flight(self) -> list[RequestId]:
        """Ids of the requests still running."""
        return list(self._in_flight)

    async def run_request(self, request_id: RequestId, work: Callable[[], Awaitable[Any]]) -> tuple[bool, Any]:
        """Run `work` as a cancellable task: (True, result), or (False, None) when the client cancelled it."""
        if request_id in self._in_flight:
            raise ProtocolError(
                INVALID_REQUEST,
                f"invalid request: id {clip_repr(request_id, 80)} is already in use by a request in progress",
                request_id,
            )
        if len(self._in_flight) >= self.max_in_flight:
            raise ProtocolError(
                SERVER_BUSY,
                f"server busy: {len(self._in_flight)} requests already in progress on this session "
                f"(limit {self.max_in_flight}); wait for one to finish or cancel one",
                request_id,
            )
        self.requests += 1
        task = asyncio.ensure_future(work())
        self._in_flight[request_id] = task
        try:
            return True, await task
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if request_id in self._cancelled and task.cancelled() and (current is None or current.cancelling() == 0):
                return False, None  # the client cancelled this request: no response is sent
            raise
        finally:
            self._in_flight.pop(request_id, None)
            self._cancelled.discard(request_id)

    def cancel(self, request_id: Any, reason: str | None = None) -> bool:
        """Stop an in-flight request (notifications/cancelled); unknown or finished ids are ignored."""
        task = self._in_flight.get(request_id) if isinstance(request_id, str | int) else None
        if task is None or task.done():
            logger.debug("cancellation of unknown or finished request %s ignored", clip_repr(request_id, 80))
            return False
        logger.info(
            "request %s cancelled by the client: %s", clip_repr(request_id, 80), clip(reason or "no reason given")
        )
        self._cancelled.add(request_id)
        self.cancellations += 1
        task.cancel()
        return True

    def close(self) -> None:
        """End the session: every in-flight request is cancelled."""
        self.phase = Phase.CLOSED
        for task in self._in_flight.values():
            task.cancel()
