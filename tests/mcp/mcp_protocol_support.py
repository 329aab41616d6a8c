"""Builders for the MCP protocol tests: a small set of typed tools, a registry over them, and a client-side
helper that speaks to a Dispatcher the way a transport does (one Session, messages as dicts)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, Literal

from mcp.monitoring.metrics import MonitoringMetrics
from mcp.protocol.dispatcher import Dispatcher
from mcp.protocol.jsonrpc import validate_message
from mcp.protocol.session import Session
from mcp.protocol.tool_registry import ToolRegistry

Progress = Callable[[float, float | None, str], Awaitable[None]]
CANARY_SECRET = "canary-secret-7f3a9c"


class ToyTools:
    """Tools with every shape the protocol layer must handle."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.calls: dict[str, int] = {}
        self.started = asyncio.Event()
        self.cancelled = asyncio.Event()

    def _count(self, name: str) -> None:
        self.calls[name] = self.calls.get(name, 0) + 1

    async def echo(self, text: str, times: int = 1, shout: bool = False) -> dict[str, Any]:
        """Repeat `text` `times` times."""
        self._count("echo")
        value = " ".join([text.upper() if shout else text] * times)
        return {"status": "ok", "text": value}

    async def read_file(self, path: str) -> dict[str, Any]:
        """Read a text file under the root."""
        self._count("read_file")
        target = (self.root / path).resolve()
        return {"status": "ok", "text": await asyncio.to_thread(target.read_text)}

    async def explode(self) -> dict[str, Any]:
        """Always fails with an exception (whose message holds a secret)."""
        self._count("explode")
        raise RuntimeError(f"boom while holding {CANARY_SECRET}")

    async def refuse(self) -> dict[str, Any]:
        """Returns a failure as its result."""
        self._count("refuse")
        return {"status": "error", "error": "nothing to do"}

    async def count(self, steps: int = 3, progress: Progress | None = None) -> dict[str, Any]:
        """Count to `steps`, reporting progress (and one repeated value, which must be dropped)."""
        self._count("count")
        for step in range(steps + 1):
            if progress is not None:
                await progress(float(step), float(steps), f"step {step}")
                if step == 1:
                    await progress(1.0, float(steps), "repeated")
        return {"status": "ok", "steps": steps}

    async def wait_forever(self) -> dict[str, Any]:
        """Blocks until cancelled."""
        self._count("wait_forever")
        self.started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            self.cancelled.set()
            raise
        return {"status": "ok"}

    def total(self, values: list[float]) -> dict[str, Any]:
        """Sum numbers (a synchronous tool: it runs in a worker thread)."""
        self._count("total")
        return {"status": "ok", "total": sum(values), "nan": float("nan")}

    async def pick(self, mode: Literal["fast", "slow"] = "fast", limit: int | None = None) -> dict[str, Any]:
        """Choose a mode, optionally with a limit."""
        self._count("pick")
        return {"status": "ok", "mode": mode, "limit": limit}

    async def snapshot(self) -> dict[str, Any]:
        """A cached read."""
        self._count("snapshot")
        return {"status": "ok", "calls": self.calls.get("snapshot", 0)}

    async def reset(self) -> dict[str, Any]:
        """A write that makes cached reads stale."""
        self._count("reset")
        return {"status": "ok"}


def toy_registry(tools: ToyTools) -> ToolRegistry:
    """Every toy tool registered the way the catalog registers real ones."""
    registry = ToolRegistry()
    registry.register(tools.echo, server="toys", read_only=True)
    registry.register(tools.read_file, server="toys", read_only=True, root=tools.root)
    registry.register(tools.explode, server="toys")
    registry.register(tools.refuse, server="toys")
    registry.register(tools.count, server="toys")
    registry.register(tools.wait_forever, server="toys")
    registry.register(tools.total, server="toys", read_only=True)
    registry.register(tools.pick, server="toys", read_only=True)
    registry.register(tools.snapshot, server="toys", read_only=True, cache_ttl=5.0)
    registry.register(tools.reset, server="toys", invalidates=("toys",))
    return registry


class FakeClock:
    """A monotonic clock the test moves by hand."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def make_dispatcher(tools: ToyTools, **kw: Any) -> tuple[Dispatcher, MonitoringMetrics]:
    """A dispatcher over the toys with a fresh metrics registry (and a scrubber for the canary)."""
    metrics = MonitoringMetrics()
    kw.setdefault("scrub", lambda text: text.replace(CANARY_SECRET, "***"))
    return Dispatcher(toy_registry(tools), metrics=metrics, **kw), metrics


class Client:
    """Sends dict messages through a Dispatcher like a transport; collects what the server sends."""

    def __init__(self, dispatcher: Dispatcher, session: Session | None = None) -> None:
        self.dispatcher = dispatcher
        self.session = session or Session()
        self.sent: list[dict[str, Any]] = []  # notifications the server sent (progress)
        self._next_id = 1

    async def _send(self, message: dict[str, Any]) -> None:
        self.sent.append(json.loads(json.dumps(message)))

    async def raw(self, message: dict[str, Any]) -> dict[str, Any] | None:
        """One message in, the response (or None) out."""
        return await self.dispatcher.handle(self.session, validate_message(message), self._send)

    async def request(
        self, method: str, params: dict[str, Any] | None = None, request_id: Any = None
    ) -> dict[str, Any]:
        """A request; asserts a response came back."""
        if request_id is None:
            request_id, self._next_id = self._next_id, self._next_id + 1
        message: dict[str, Any] = {"jsonrpc": "2.0", "id": request_id, "method": method}
        if params is not None:
            message["params"] = params
        response = await self.raw(message)
        assert response is not None, f"no response to {method}"
        return response

    async def notify(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any] | None:
        """A notification; returns what the server answered (it must be None)."""
        message: dict[str, Any] = {"jsonrpc": "2.0", "method": method}
        if params is not None:
            message["params"] = params
        return await self.raw(message)

    async def initialize(self, version: str = "2025-11-25") -> dict[str, Any]:
        """initialize + notifications/initialized; returns the initialize result."""
        response = await self.request(
            "initialize",
            {"protocolVersion": version, "capabilities": {}, "clientInfo": {"name": "test", "version": "1"}},
        )
        assert await self.notify("notifications/initialized") is None
        return response["result"]

    async def call(self, name: str, arguments: dict[str, Any] | None = None, **params: Any) -> dict[str, Any]:
        """tools/call; returns the result (asserting it is not a JSON-RPC error)."""
        body: dict[str, Any] = {"name": name, **params}
        if arguments is not None:
            body["arguments"] = arguments
        response = await self.request("tools/call", body)
        assert "result" in response, response
        return response["result"]
