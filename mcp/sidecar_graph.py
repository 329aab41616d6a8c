"""The sidecar's object graph: what each server's or service's factory receives (issue 12).

`mcp.sidecar_builder.build_graph` builds it once per process (its docstring draws the order). A factory
reads what it needs from the graph (settings, the integrator, the gate, the servers built before it, the
trading view, the state folder) and never looks anything up on its own, so a new server needs no new
wiring: see mcp.server_registry.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from config.settings import Settings
from mcp.server import Server

if TYPE_CHECKING:
    from core.integrations.mcp_risk_integration import MCPRiskIntegrator

logger = logging.getLogger(__name__)

# the integrator's gate: gate(kind) -> a decision with .allowed and .reason (heavy work waits when refused)
Gate = Callable[[str], Awaitable[Any]]


class DeferredGate:
    """The integrator's gate, handed to the gated servers before the integrator exists.

    The integrator is built with those servers (its search and testing capabilities), so the gate they ask
    is bound to it right after, before anything runs. Unbound (the integrator could not be built), every
    call raises, and the servers answer a raising gate by deferring the work: heavy work never runs ungated.
    """

    def __init__(self) -> None:
        self._target: Gate | None = None
        self._why_unbound = "the sidecar is still being built"

    def bind(self, target: Gate) -> None:
        """From now on, answer with `target` (the integrator's gate)."""
        self._target = target

    def fail(self, why: str) -> None:
        """The integrator could not be built: every call says so."""
        self._why_unbound = why

    @property
    def bound(self) -> bool:
        """True once the integrator's gate is behind this one."""
        return self._target is not None

    async def __call__(self, kind: str) -> Any:
        if self._target is None:
            raise RuntimeError(f"no MCP risk integrator behind the gate: {self._why_unbound}")
        return await self._target(kind)


@dataclass
class SidecarGraph:
    """Everything a factory may need, built once (see the module docstring).

    `integrator` is None while the gated servers are built (it is built from them) and when it could not be
    built at all (`integrator_problem` says why). `servers` holds what was built so far, by name.
    """

    settings: Settings
    # None: heavy work ungated (benchmarks and tests of the servers alone); build_graph always has one
    gate: DeferredGate | None = field(default_factory=DeferredGate)
    integrator: MCPRiskIntegrator | None = None
    integrator_problem: str | None = None
    # the bot's trading view (snapshot + ledger, read-only): the dashboard, Telegram and the MCP tools
    trading: Any = None
    servers: dict[str, Server] = field(default_factory=dict)

    @property
    def state_dir(self) -> Path:
        """STATE_DIR: the bot's files (read-only), the supervisor's status file, the integrator's state."""
        return Path(self.settings.state_dir)

    def server(self, name: str) -> Any:
        """The server of that name built so far, or None (not enabled, not built yet, or unavailable)."""
        return self.servers.get(name)
