"""What the integrator asks of the sidecar's search and testing servers, and where it finds them.

The integrator is core; the servers are the sidecar (`mcp`). Core names only these two small protocols.
The sidecar's entry point passes its running servers in (`MCPRiskIntegrator(settings, search=..., testing=...)`);
a process that built the integrator without them (the user's test-plan snippets) gets the implementations
this package declares as entry points in pyproject.toml, group `polymarket_copy_bot.sidecar_capabilities`,
each called with the Settings. Looking them up by entry point keeps the dependency one-way: core never
imports mcp, and a build without the sidecar gets a clear error instead of an ImportError.
"""

from __future__ import annotations

import importlib.metadata
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from config.settings import Settings

ENTRY_POINT_GROUP = "polymarket_copy_bot.sidecar_capabilities"
SEARCH = "search"
TESTING = "testing"


@runtime_checkable
class SearchCapability(Protocol):
    """Where every risk parameter is used in the code (mcp.codebase_search.CodebaseSearchServer)."""

    async def risk_parameter_report(self) -> dict[str, Any]:
        """{"status": "ok", "parameters": {name: {...}}, "violations": [...], ...} or a deferred/error answer."""
        ...


@runtime_checkable
class TestingCapability(Protocol):
    """Runs the project's tests with coverage (mcp.testing_server.TestingServer)."""

    # the integrator compares it with this project's root: a run of our own suite from inside pytest recurses
    @property
    def project_root(self) -> Path:
        """The project whose tests `run_tests` runs."""
        ...

    async def run_tests(self) -> dict[str, Any]:
        """Run the suite now: {"status", "coverage" (0..1), "run_id", "started_at", ...}."""
        ...

    async def get_coverage(self) -> dict[str, Any]:
        """The latest stored run, same shape as run_tests()."""
        ...


class CapabilityUnavailable(LookupError):
    """No implementation of a capability can be found: install the package or pass one in."""


# entry_points(group=...) -> the entry points of that group (importlib.metadata's signature)
EntryPoints = Callable[..., Iterable[importlib.metadata.EntryPoint]]

_PROTOCOLS: dict[str, type] = {SEARCH: SearchCapability, TESTING: TestingCapability}
_KEYWORD = {SEARCH: "search", TESTING: "testing"}


def load_capability(name: str, settings: Settings, *, entry_points: EntryPoints | None = None) -> Any:
    """Build the installed implementation of capability `name` ("search" or "testing") from `settings`.

    `entry_points`: importlib.metadata.entry_points (looked up at call time) unless a test passes its own.

    Raises CapabilityUnavailable, saying what to do, when none is declared, two disagree, it cannot be
    imported or built, or what it builds lacks the protocol's methods.
    """
    if name not in _PROTOCOLS:
        raise ValueError(f"unknown capability {name!r}: expected one of {sorted(_PROTOCOLS)}")
    fix = (
        f"install this project (`make .venv/.installed` or `pip install -e .`) so its entry point "
        f"{ENTRY_POINT_GROUP}:{name} exists, or pass MCPRiskIntegrator({_KEYWORD[name]}=...)"
    )
    find = entry_points if entry_points is not None else importlib.metadata.entry_points
    found = {point.value: point for point in find(group=ENTRY_POINT_GROUP) if point.name == name}
    if not found:
        raise CapabilityUnavailable(f"no {name} capability is installed: {fix}")
    if len(found) > 1:
        raise CapabilityUnavailable(
            f"{len(found)} installed packages declare the {name} capability ({', '.join(sorted(found))}); "
            "uninstall all but one, or pass the one to use to MCPRiskIntegrator"
        )
    (point,) = found.values()
    try:
        factory = point.load()
        implementation = factory(settings)
    except Exception as e:
        raise CapabilityUnavailable(
            f"the {name} capability {point.value} could not be built: {type(e).__name__}: {e}; {fix}"
        ) from e
    protocol = _PROTOCOLS[name]
    if not isinstance(implementation, protocol):
        raise CapabilityUnavailable(
            f"the {name} capability {point.value} built a {type(implementation).__name__}, which lacks the methods "
            f"of {protocol.__name__}; fix the entry point, or pass MCPRiskIntegrator({_KEYWORD[name]}=...)"
        )
    return implementation


class CapabilitySlot:
    """One capability of the integrator: the one passed in, else the installed one, built on first use.

    A failed look-up is not remembered, so installing the package later is enough.
    """

    def __init__(
        self,
        name: str,
        settings: Settings,
        given: Any = None,
        *,
        loader: Callable[[str, Settings], Any] = load_capability,
    ) -> None:
        self.name = name
        self._settings = settings
        self._implementation = given
        self._loader = loader

    def get(self) -> Any:
        """The implementation (raises CapabilityUnavailable, saying what to do, when there is none)."""
        if self._implementation is None:
            self._implementation = self._loader(self.name, self._settings)
        return self._implementation
