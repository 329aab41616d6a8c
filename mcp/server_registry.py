"""The one registry of the sidecar's servers and services: name -> factory, the setting that enables it,
whether it does gated heavy work.

Adding a server: write its module, with a class or function that takes the one `SidecarGraph`
(mcp.sidecar_graph: settings, the integrator, the gate, the servers built before it) and returns a
`mcp.server.Server`; then add one entry to `SERVERS`, e.g.

    "echo": ServerSpec("mcp.echo:EchoServer", enabled_setting=None, gated=False),

(`enabled_setting=None`: always on in `all`). mcp.sidecar_builder then builds it, the Supervisor starts and
supervises it, `status` lists it, `stdio` and /mcp offer its tools, and `python -m mcp.main_mcp echo` runs
it alone. `SERVICES` (the integrator's watch, the Telegram commands, the alert rules, the heartbeat) run
only in `all`, beside the servers, supervised like them.

A factory is named "module:attribute" and imported only when built: the bot imports this registry (its
start-up check, mcp.preflight) without loading any server, and a server whose module cannot be imported
is reported as unavailable by name instead of breaking the others.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from config.settings import Settings

if TYPE_CHECKING:
    from mcp.server import Server
    from mcp.sidecar_graph import SidecarGraph

# factory(graph) -> the server; a service's factory may answer None (off for these settings: it logs why)
ServerFactory = Callable[["SidecarGraph"], "Server"]
ServiceFactory = Callable[["SidecarGraph"], "Server | None"]
BUILDER = "mcp.sidecar_builder"


@dataclass(frozen=True, slots=True)
class ServerSpec:
    """How to build a server ("module:attribute", or the callable itself), which setting turns it on in
    `all` (None: always), and whether it does gated heavy work (gated servers are built before the
    integrator, which wraps them; the others after it, and see it)."""

    factory: ServerFactory | str
    enabled_setting: str | None
    gated: bool


SERVERS: dict[str, ServerSpec] = {
    "codebase_search": ServerSpec(f"{BUILDER}:codebase_search_server", "mcp_codebase_search_enabled", gated=True),
    "testing": ServerSpec(f"{BUILDER}:testing_server", "mcp_testing_enabled", gated=True),
    "monitoring": ServerSpec(f"{BUILDER}:monitoring_server", "mcp_monitoring_enabled", gated=False),
}

# the background work of `all` only: supervised like a server (restarts, health, status) but no command of
# its own and never served over stdio (the integrator's watch belongs to the one running sidecar, and
# Telegram allows one getUpdates consumer per token)
SERVICES: dict[str, ServiceFactory | str] = {
    "risk_integrator": f"{BUILDER}:risk_watch",
    "telegram_commands": f"{BUILDER}:telegram_commands",
    "alert_rules": f"{BUILDER}:alert_rules",
    "heartbeat": f"{BUILDER}:heartbeat",
}


def resolve_factory(factory: Callable[..., Any] | str) -> Callable[..., Any]:
    """The callable a registry entry names ("package.module:attribute"), imported now; a callable as is."""
    if not isinstance(factory, str):
        return factory
    module, _, attribute = factory.partition(":")
    if not module or not attribute:
        raise ValueError(f"factory {factory!r}: expected 'package.module:attribute'")
    found = getattr(importlib.import_module(module), attribute, None)
    if not callable(found):
        raise TypeError(f"factory {factory!r}: {module} has no callable {attribute!r}")
    return found


def selected_servers(command: str, settings: Settings) -> list[str]:
    """The server names a command runs: `all` honours the MCP_*_ENABLED flags; a server's own name runs it."""
    if command == "all":
        return [
            name
            for name, spec in SERVERS.items()
            if spec.enabled_setting is None or getattr(settings, spec.enabled_setting)
        ]
    if command in SERVERS:
        return [command]
    raise ValueError(f"unknown server command {command!r}; expected 'all' or one of {sorted(SERVERS)}")
