"""Shared fixtures: a fresh working directory for state, settings built without touching the real .env."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parent.parent

# issue 12 (8c): fail any test that blocks the event loop for more than 100 ms; see tests/loop_guard.py.
pytest_plugins = ["tests.loop_guard"]


@pytest.fixture(autouse=True)
def _isolated_environment(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No test reads the developer's own .env or inherits their ENVIRONMENT/TELEGRAM variables."""
    for name in list(os.environ):
        if name.startswith(("MCP_", "TELEGRAM_", "DASHBOARD_", "MONITOR", "ALERT", "METRICS_", "DAILY_LOSS_")):
            monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("ENVIRONMENT", raising=False)
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    yield


@pytest.fixture
def project_root() -> Path:
    return PROJECT_ROOT


_RECURSION_LIMIT_AT_START = sys.getrecursionlimit()


@pytest.fixture(autouse=True)
def _restore_recursion_limit() -> Iterator[None]:
    """eth_account (via py_ecc) raises the recursion limit to 100,000 when imported; with that limit deeply
    nested input crashes the C JSON decoder instead of raising RecursionError. Tests run with the
    interpreter's normal limit, as the product does (core/clob/polymarket.keep_recursion_limit)."""
    sys.setrecursionlimit(_RECURSION_LIMIT_AT_START)
    yield
    sys.setrecursionlimit(_RECURSION_LIMIT_AT_START)


# issue 12: process singletons
# Each test starts and ends with no cached Settings, no alert manager and no process integrator, so a test
# that builds one through its get_...() accessor never leaks it into the next. Three assignments: cheap.
@pytest.fixture(autouse=True)
def _fresh_process_singletons() -> Iterator[None]:
    """Forget get_settings()'s cache, utils.alerts' manager and the process's MCPRiskIntegrator."""
    # imported here to keep this whole block in one place at the end of the file (several branches edit it)
    from config.settings import get_settings
    from core.integrations.mcp_risk_integration import reset_process_integrator
    from utils.alerts import reset_alert_manager

    def reset() -> None:
        get_settings.cache_clear()
        reset_alert_manager()
        reset_process_integrator()

    reset()
    yield
    reset()
