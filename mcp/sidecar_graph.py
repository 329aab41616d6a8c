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
    from core.integrations.heavy_work_gate import HeavyWorkGate
    from core.integrations.mcp_risk_integration import MCPRiskIntegrator

logger = logging.getLogger(__name__)

# the integrator's gate: gate(kind) -> a decision with .allowed and .reason (heavy work waits when refused)
Gate = Callable[[str], Awaitable[Any]]


def refusing_gate(why: str) -> Gate:
    """A gate that refuses every job with `why` (the integrator's gate could not be built): the servers answer
    a raising gate by deferring the work, so heavy work never runs ungated."""

    async def gate(kind: str) -> Any:
        raise RuntimeError(why)

    return gate


@dataclass
class SidecarGraph:
    """Everything a factory may need, built once (see the module docstring).

    `work_gate` (the integrator's HeavyWorkGate) is built first and `gate` is what the gated servers ask
    (None: ungated, for benchmarks and tests of a server alone; build_graph always sets one). `integrator`
    is None while the gated servers are built (it is built over them) and when it could not be built at all
    (`integrator_problem` says why). `servers` holds what was built so far, by name.
    """

    settings: Settings
    work_gate: HeavyWorkGate | None = None
    gate: Gate | None = None
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
