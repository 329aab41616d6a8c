"""The one explicit table of the sidecar's MCP tools: what each server offers and how each tool is treated.

A tool's policy says whether it only reads (annotations, caching), which gate kind guards it (the server
itself asks the integrator's gate and returns status "deferred" with the reason; the kind is listed here so
the heavy tools are known in one place), how long its result may be served from the cache, and which
server's cached results it makes stale. A tool a server offers that is not in the table is still served,
conservatively: not read-only, never cached, and a warning says it should be added here. A listed tool
must return a typed result (a TypedDict, or a union of them, see mcp/protocol/schema.py), so its outputSchema
says which keys a client will find and of which types; the catalog refuses one that returns a bare dict.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mcp.protocol.tool_registry import ToolDefinitionError, ToolRegistry, returns_typed_result

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ToolPolicy:
    """How the MCP layer treats one tool."""

    read_only: bool
    gate_kind: str | None = None
    cache_ttl: float | None = None
    invalidates: tuple[str, ...] = ()


POLICIES: dict[str, ToolPolicy] = {
    # codebase search: scans are heavy (gated by the server: "scan"); search_code is bounded and uncached
    "search_code": ToolPolicy(read_only=True),
    "find_risk_parameter_usages": ToolPolicy(read_only=True, gate_kind="scan"),
    "risk_parameter_report": ToolPolicy(read_only=True, gate_kind="scan"),
    # testing: a run is heavy (gated by the server: "test_run") and makes the cached coverage stale
    "run_tests": ToolPolicy(read_only=False, gate_kind="test_run", invalidates=("testing",)),
    "get_coverage": ToolPolicy(read_only=True, cache_ttl=5.0),
    "coverage_history": ToolPolicy(read_only=True, cache_ttl=5.0),
    # monitoring: cheap reads of cached state, refreshed at most once a second
    "get_health": ToolPolicy(read_only=True, cache_ttl=1.0),
    "get_risk_state": ToolPolicy(read_only=True, cache_ttl=1.0),
    "get_metrics_summary": ToolPolicy(read_only=True, cache_ttl=1.0),
    "get_gate_state": ToolPolicy(read_only=True, cache_ttl=1.0),
    "get_performance_report": ToolPolicy(read_only=True, cache_ttl=1.0),
    # trading view (issue 11): read-only views of the ledger and the snapshot, typed outputs
    "get_positions": ToolPolicy(read_only=True, cache_ttl=1.0),
    "get_recent_trades": ToolPolicy(read_only=True, cache_ttl=1.0),
    "get_pnl": ToolPolicy(read_only=True, cache_ttl=1.0),
}
UNLISTED = ToolPolicy(read_only=False)


@dataclass(frozen=True, slots=True)
class ToolSource:
    """One server's tools and the root their path arguments are confined to."""

    tools: Sequence[Callable[..., Any]]
    root: Path | None = None


def build_tool_registry(
    sources: Mapping[str, ToolSource], policies: Mapping[str, ToolPolicy] | None = None
) -> ToolRegistry:
    """A registry with every server's tools, in server order; raises DuplicateToolError on a name clash and
    ToolDefinitionError for a listed tool whose result is not typed."""
    table = POLICIES if policies is None else policies
    registry = ToolRegistry()
    for server, source in sources.items():
        for func in source.tools:
            name = getattr(func, "__name__", repr(func))
            policy = table.get(name)
            if policy is None:
                logger.warning("MCP tool %s of server %s has no policy in mcp.tools.catalog: not cached", name, server)
            elif not returns_typed_result(func):
                raise ToolDefinitionError(
                    f"tool {name!r} of server {server!r}: expected a TypedDict (or a union of them) as its return "
                    "hint, so its outputSchema describes the real result; received an untyped return hint"
                )
            effective = policy or UNLISTED
            registry.register(
                func,
                server=server,
                read_only=effective.read_only,
                gate_kind=effective.gate_kind,
                cache_ttl=effective.cache_ttl,
                root=source.root,
                invalidates=effective.invalidates,
            )
    return registry
