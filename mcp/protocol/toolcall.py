"""One tool call, from the client's arguments to the tools/call result, and the progress it reports.

refuse a call beyond the tool's per-client concurrency limit (isError "retry", never a queue) → bind the
arguments (schema + path confinement; a failure is an isError result, the tool never runs) → serve
a read-only tool's finished result from the TTL cache when fresh → call the tool (a `progress` callback when
the client sent a progressToken) → content (JSON text) + structuredContent, isError for an exception or a
result whose status is "error" → scrub secrets and wallet addresses → count and time the call.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, NamedTuple, Protocol

from mcp.protocol.cache import TTLCache, cache_key
from mcp.protocol.clip import MAX_ERROR_CHARS, clip
from mcp.protocol.jsonrpc import json_safe, notification
from mcp.protocol.session import LATEST_VERSION, supports
from mcp.protocol.tool_registry import InvalidArguments, ToolSpec

logger = logging.getLogger(__name__)

Sender = Callable[[dict[str, Any]], Awaitable[None]]


class PerClientLimit(NamedTuple):
    """At most `limit` calls of one tool running at once per client (MCP session); `setting` raises it."""

    limit: int
    setting: str


class ToolCallMetrics(Protocol):
    """The metrics the dispatcher feeds (mcp.monitoring.metrics.MonitoringMetrics fits)."""

    def record_tool_call(
        self, server: str, tool: str, duration_seconds: float, error_type: str | None = None
    ) -> None: ...

    def counter(self, name: str) -> Any: ...


def progress_token(params: dict[str, Any]) -> str | int | None:
    """The request's `_meta.progressToken` (a string or an integer), if any."""
    meta = params.get("_meta")
    if not isinstance(meta, dict):
        return None
    token = meta.get("progressToken")
    if isinstance(token, str) or (isinstance(token, int) and not isinstance(token, bool)):
        return token
    return None


class ProgressNotifier:
    """The `progress` callback handed to a tool: sends notifications/progress, strictly increasing."""

    def __init__(self, token: str | int, send: Sender, version: str) -> None:
        self._token = token
        self._send = send
        self._with_message = supports(version, "progress_message")
        self._last: float | None = None
        self.sent = 0

    async def __call__(self, progress: float, total: float | None = None, message: str = "") -> None:
        """Report progress; a value not above the last one is dropped (the spec requires it to increase)."""
        if self._last is not None and progress <= self._last:
            return
        self._last = progress
        params: dict[str, Any] = {"progressToken": self._token, "progress": progress}
        if total is not None:
            params["total"] = total
        if message and self._with_message:
            params["message"] = message
        try:
            await self._send(notification("notifications/progress", params))
        except (OSError, ConnectionError, RuntimeError) as e:
            # the client went away: the tool finishes anyway, its answer will fail the same way
            logger.debug("progress notification not delivered: %s", e)
            return
        self.sent += 1


class ToolCaller:
    """Runs tool calls for a dispatcher: the cache, the metrics and the scrubber live here."""

    def __init__(
        self,
        *,
        metrics: ToolCallMetrics | None = None,
        cache: TTLCache | None = None,
        scrub: Callable[[str], str] | None = None,
        clock: Callable[[], float] = time.perf_counter,
        limits: Mapping[str, PerClientLimit] | None = None,
    ) -> None:
        self.metrics = metrics
        self.cache = cache if cache is not None else TTLCache()
        self._scrub = scrub
        self._clock = clock
        self.limits = dict(limits or {})
        for name, rule in self.limits.items():
            if rule.limit < 1:
                raise ValueError(f"expected a per-client limit >= 1 for tool {name!r}, received {rule.limit}")
        self._running: dict[tuple[str, str], int] = {}  # (client, tool) -> calls in progress

    async def call(
        self,
        spec: ToolSpec,
        arguments: dict[str, Any],
        *,
        progress: Callable[[float, float | None, str], Awaitable[None]] | None = None,
        version: str = LATEST_VERSION,
        client: str | None = None,
    ) -> dict[str, Any]:
        """Run one tool call and return the tools/call result (also the in-process entry point).

        `client` (the MCP session id) is what a tool's per-client concurrency limit counts against.
        """
        rule = self.limits.get(spec.name) if client is not None else None
        if rule is None or client is None:
            return await self._call(spec, arguments, progress, version)
        key = (client, spec.name)
        running = self._running.get(key, 0)
        if running >= rule.limit:
            # refused at once: a queue of CPU-heavy calls would hold the CPU just the same, only later
            self._record(spec, 0.0, "busy")
            return self._error_result(
                f"{spec.name}: this client already runs {running} {spec.name} call(s) at once, the limit "
                f"({rule.setting}={rule.limit}); retry when one of them has finished",
                spec,
                version,
            )
        self._running[key] = running + 1
        try:
            return await self._call(spec, arguments, progress, version)
        finally:
            left = self._running[key] - 1
            if left:
                self._running[key] = left
            else:
                del self._running[key]

    async def _call(
        self,
        spec: ToolSpec,
        arguments: dict[str, Any],
        progress: Callable[[float, float | None, str], Awaitable[None]] | None,
        version: str,
    ) -> dict[str, Any]:
        started = self._clock()
        error_type: str | None = None
        try:
            try:
                if spec.path_parameters and any(arguments.get(name) is not None for name in spec.path_parameters):
                    bound = await asyncio.to_thread(spec.bind, arguments)  # resolves symlinks on disk
                else:
                    bound = spec.bind(arguments)
            except InvalidArguments as e:
                error_type = e.error_type
                return self._error_result(str(e), spec, version)
            # the finished result is cached (scrubbed and encoded once), per result shape of the protocol version
            shape = "structured" if supports(version, "structured_content") else "text"
            key = cache_key(spec.name, bound) + "\0" + shape if spec.cache_ttl else None
            if key is not None:
                hit, cached = self.cache.get(key)
                self._count_cache(spec.server, hit)
                if hit:
                    return dict(cached)
            try:
                value = await spec.invoke(bound, progress if spec.accepts_progress else None)
            except asyncio.CancelledError:
                error_type = "cancelled"
                raise
            except Exception as e:  # contained: a failing tool is an isError result, the server keeps serving
                error_type = type(e).__name__
                logger.exception("tool %s failed", spec.name)
                return self._error_result(f"{spec.name} failed: {type(e).__name__}: {e}", spec, version)
            finally:
                for group in spec.invalidates:
                    self.cache.invalidate(group)
            result = self._tool_result(spec, value, version)
            if result["isError"]:
                error_type = "tool_error"
            elif key is not None and spec.cache_ttl:
                self.cache.put(key, result, spec.cache_ttl, spec.server)
            return result
        finally:
            self._record(spec, self._clock() - started, error_type)

    def _clean(self, value: Any) -> Any:
        value = json_safe(value)
        if self._scrub is None:
            return value
        return _scrub_strings(value, self._scrub)

    def _tool_result(self, spec: ToolSpec, value: Any, version: str) -> dict[str, Any]:
        value = self._clean(value)
        text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, separators=(",", ":"))
        structured = isinstance(value, dict)
        is_error = structured and value.get("status") == "error"
        result: dict[str, Any] = {"content": [{"type": "text", "text": text}], "isError": is_error}
        if structured and spec.output_schema is not None and supports(version, "structured_content"):
            result["structuredContent"] = value
        return result

    def _error_result(self, message: str, spec: ToolSpec, version: str) -> dict[str, Any]:
        message = clip(message, MAX_ERROR_CHARS)
        text = self._scrub(message) if self._scrub is not None else message
        result: dict[str, Any] = {"content": [{"type": "text", "text": text}], "isError": True}
        if spec.output_schema is not None and supports(version, "structured_content"):
            result["structuredContent"] = {"status": "error", "error": text}
        return result

    def _record(self, spec: ToolSpec, seconds: float, error_type: str | None) -> None:
        if self.metrics is None:
            return
        try:
            self.metrics.record_tool_call(spec.server, spec.name, seconds, error_type)
        except Exception:  # metrics must never break a tool call
            logger.exception("cannot record the metrics of tool %s", spec.name)

    def _count_cache(self, server: str, hit: bool) -> None:
        if self.metrics is None:
            return
        try:
            self.metrics.counter("mcp_cache_requests_total").labels(server).inc()
            if hit:
                self.metrics.counter("mcp_cache_hits_total").labels(server).inc()
        except Exception:
            logger.exception("cannot record the cache metrics of server %s", server)


def _scrub_strings(value: Any, scrub: Callable[[str], str]) -> Any:
    if isinstance(value, str):
        return scrub(value)
    if isinstance(value, dict):
        return {key: _scrub_strings(item, scrub) for key, item in value.items()}
    if isinstance(value, list):
        return [_scrub_strings(item, scrub) for item in value]
    return value
