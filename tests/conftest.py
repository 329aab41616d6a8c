"""Shared fixtures: a fresh working directory for state, settings built without touching the real .env."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parent.parent


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
