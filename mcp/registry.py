"""The one registry of the sidecar's servers: name → factory and the setting that enables it.

Adding a server means one entry here. Each factory imports its module only when called, so a server whose
module cannot be imported is reported as unavailable by name instead of breaking the others. The servers
that do heavy work (scans, test runs) receive the MCPRiskIntegrator's gate.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from config.settings import Settings
from mcp.server import Server

logger = logging.getLogger(__name__)


# the integrator's gate: gate(kind) -> a decision with .allowed and .reason (heavy work waits when refused)
Gate = Callable[[str], Awaitable[Any]]


def _codebase_search(settings: Settings, gate: Gate | None) -> Server:
    from mcp.codebase_search import CodebaseSearchServer

    return CodebaseSearchServer(settings, gate=gate)


def _testing(settings: Settings, gate: Gate | None) -> Server:
    from mcp.testing_server import TestingServer

    return TestingServer(settings, gate=gate)


def _monitoring(settings: Settings, gate: Gate | None) -> Server:
    from mcp.monitoring_server import MonitoringServer

    # monitoring is never gated: it keeps running (in a basic mode) whatever the gate says
    return MonitoringServer(settings)


ServerFactory = Callable[[Settings, Gate | None], Server]


@dataclass(frozen=True, slots=True)
class ServerSpec:
    """How to build a server, which setting turns it on in `all`, and whether it does gated heavy work."""

    factory: ServerFactory
    enabled_setting: str
    gated: bool


SERVERS: dict[str, ServerSpec] = {
    "codebase_search": ServerSpec(_codebase_search, "mcp_codebase_search_enabled", gated=True),
    "testing": ServerSpec(_testing, "mcp_testing_enabled", gated=True),
    "monitoring": ServerSpec(_monitoring, "mcp_monitoring_enabled", gated=False),
}


def selected_servers(command: str, settings: Settings) -> list[str]:
    """The server names a command runs: `all` honours the MCP_*_ENABLED flags; a server's own name runs it."""
    if command == "all":
        return [name for name, spec in SERVERS.items() if getattr(settings, spec.enabled_setting)]
    if command in SERVERS:
        return [command]
    raise ValueError(f"unknown server command {command!r}; expected 'all' or one of {sorted(SERVERS)}")


def build_servers(
    names: Sequence[str],
    settings: Settings,
    overrides: Mapping[str, ServerFactory] | None = None,
    *,
    gate: Gate | None = None,
) -> tuple[list[Server], dict[str, str]]:
    """Build the named servers (the gated ones get `gate`); returns (servers, {name: why unavailable}).

    A server that cannot be built (an import error, a bad setting) is reported, not raised, so the
    others still run.
    """
    servers: list[Server] = []
    unavailable: dict[str, str] = {}
    for name in names:
        spec = SERVERS[name]
        factory = (overrides or {}).get(name) or spec.factory
        try:
            server = factory(settings, gate if spec.gated else None)
        except Exception as e:
            logger.exception("server %r cannot be built", name)
            unavailable[name] = f"{type(e).__name__}: {e}"
            continue
        if not isinstance(server, Server):
            unavailable[name] = f"{type(server).__name__} does not implement the Server protocol"
            continue
        servers.append(server)
    return servers, unavailable


def integrator_gate() -> Gate | None:
    """The process's MCPRiskIntegrator gate; None (heavy work ungated, reason logged) if it is unavailable."""
    try:
        from core.integrations.mcp_risk_integration import get_mcp_risk_integrator

        return get_mcp_risk_integrator().gate
    except Exception:
        logger.exception("the MCP risk integrator is unavailable: heavy work (scans, test runs) runs ungated")
        return None
