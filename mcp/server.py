"""The one small protocol every sidecar server speaks, so the supervisor can run any of them."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Any, Protocol, runtime_checkable


@runtime_checkable
class Server(Protocol):
    """A server of the sidecar: runs until cancelled, says when it is ready, reports its health."""

    name: str

    async def run(self, ready: asyncio.Event) -> None:
        """Serve until cancelled; set `ready` once serving. Returning or raising counts as a crash."""
        ...

    def health(self) -> dict[str, Any]:
        """A cheap, cached view: at least {"status": "healthy"|"degraded"|"critical", ...}."""
        ...

    def tools(self) -> Sequence[Callable[..., Any]]:
        """The plain typed functions this server offers as MCP tools."""
        ...
