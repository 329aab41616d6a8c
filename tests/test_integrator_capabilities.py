"""The integrator's search and testing capabilities (core/integrations/capabilities.py, issue 12).

Core finds the sidecar's servers through this package's entry points, never by importing mcp. The entry
points read here are real distribution metadata: this project's own (installed editable by
`make .venv/.installed`) and small dist-info folders written under tmp_path, read by importlib.metadata.
TestingCapability is reached as capabilities.TestingCapability: imported by name, pytest would try to collect it.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import pytest

from config.settings import Settings
from core.integrations import capabilities
from core.integrations.capabilities import (
    ENTRY_POINT_GROUP,
    CapabilityUnavailable,
    SearchCapability,
    load_capability,
)
from core.integrations.mcp_risk_integration import MCPRiskIntegrator
from mcp.codebase_search import CodebaseSearchServer
from mcp.testing_server import TestingServer
from tests.fakes.fake_psutil import FakeProc

FindEntryPoints = Callable[..., Iterable[importlib.metadata.EntryPoint]]


def settings_for(tmp_path: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {"state_dir": tmp_path / "state", "mcp_market_hours_enabled": False}
    values.update(overrides)
    return Settings(_env_file=None, **values)


def site_with(root: Path, *distributions: list[str]) -> FindEntryPoints:
    """A site folder holding one real dist-info per entry of `distributions` (its entry-point lines), and
    an entry_points(group=...) that reads only that folder's metadata."""
    root.mkdir(parents=True, exist_ok=True)
    for number, lines in enumerate(distributions):
        dist = root / f"sidecar_plugin_{number}-1.0.dist-info"
        dist.mkdir()
        (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: sidecar-plugin-{number}\nVersion: 1.0\n")
        (dist / "entry_points.txt").write_text(f"[{ENTRY_POINT_GROUP}]\n" + "\n".join(lines) + "\n")

    def entry_points(*, group: str) -> list[importlib.metadata.EntryPoint]:
        return [
            point
            for dist in importlib.metadata.distributions(path=[str(root)])
            for point in dist.entry_points
            if point.group == group
        ]

    return entry_points


# --- the installed entry points ---------------------------------------------------------------------


def test_this_project_declares_both_capabilities() -> None:
    declared = {point.name: point.value for point in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)}
    assert declared == {
        "search": "mcp.codebase_search:CodebaseSearchServer",
        "testing": "mcp.testing_server:TestingServer",
    }


def test_the_installed_capabilities_resolve_to_the_sidecar_servers(tmp_path: Path) -> None:
    settings = settings_for(tmp_path, mcp_search_root=tmp_path)
    search = load_capability("search", settings)
    testing = load_capability("testing", settings)
    assert isinstance(search, CodebaseSearchServer) and isinstance(search, SearchCapability)
    assert isinstance(testing, TestingServer) and isinstance(testing, capabilities.TestingCapability)
    assert testing.project_root == settings.mcp_testing_project_root


# --- what goes wrong, and what the error says ------------------------------------------------------------


def test_a_missing_entry_point_says_how_to_install_or_pass_one(tmp_path: Path) -> None:
    with pytest.raises(CapabilityUnavailable) as caught:
        load_capability("search", settings_for(tmp_path), entry_points=site_with(tmp_path / "site"))
    message = str(caught.value)
    assert "no search capability is installed" in message
    assert "make .venv/.installed" in message and f"{ENTRY_POINT_GROUP}:search" in message
    assert "MCPRiskIntegrator(search=...)" in message


def test_an_entry_point_that_cannot_be_imported_names_it(tmp_path: Path) -> None:
    site = site_with(tmp_path / "site", ["testing = no_such_module_anywhere:TestingServer"])
    with pytest.raises(CapabilityUnavailable) as caught:
        load_capability("testing", settings_for(tmp_path), entry_points=site)
    message = str(caught.value)
    assert "no_such_module_anywhere:TestingServer could not be built: ModuleNotFoundError" in message
    assert "MCPRiskIntegrator(testing=...)" in message


def test_an_entry_point_that_builds_the_wrong_thing_is_refused(tmp_path: Path) -> None:
    # str(settings) builds fine but has no risk_parameter_report
    site = site_with(tmp_path / "site", ["search = builtins:str"])
    with pytest.raises(CapabilityUnavailable, match="built a str, which lacks the methods of SearchCapability"):
        load_capability("search", settings_for(tmp_path), entry_points=site)


def test_two_packages_declaring_one_capability_differently_is_an_error(tmp_path: Path) -> None:
    site = site_with(
        tmp_path / "site",
        ["search = mcp.codebase_search:CodebaseSearchServer"],
        ["search = other_plugin.search:Search"],
    )
    with pytest.raises(CapabilityUnavailable, match="2 installed packages declare the search capability"):
        load_capability("search", settings_for(tmp_path), entry_points=site)


def test_an_unknown_capability_name_is_a_value_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"unknown capability 'scanner': expected one of \['search', 'testing'\]"):
        load_capability("scanner", settings_for(tmp_path))


# --- the integrator without capabilities -------------------------------------------------------------------


async def test_without_installed_capabilities_scan_and_coverage_answer_the_error_shape(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the one boundary replaced: the interpreter's installed-package metadata, by an empty site folder
    # (this test's own process has the project installed, so "not installed" cannot be arranged otherwise)
    installed = importlib.metadata.entry_points
    monkeypatch.setattr(importlib.metadata, "entry_points", site_with(tmp_path / "empty_site"))
    tree = tmp_path / "tree"
    (tree / "pkg").mkdir(parents=True)
    (tree / "pkg" / "orders.py").write_text("def size(settings):\n    return settings.max_order_size\n")
    integrator = MCPRiskIntegrator(
        settings_for(tmp_path, mcp_search_root=tree), process=FakeProc(pid=100, rss_mb=40.0).handle()
    )

    scan = await integrator.scan_risk_parameters()
    assert scan["status"] == "error" and (scan["total_scans"], scan["scanned_params"]) == (0, {})
    assert scan["message"].startswith("risk parameter scan cannot run: no search capability is installed")
    coverage = await integrator.verify_test_coverage()
    assert coverage["status"] == "error" and coverage["threshold"] == 0.85
    assert "no testing capability is installed" in coverage["message"]
    assert "MCPRiskIntegrator(testing=...)" in coverage["message"]
    stats = integrator.get_statistics()
    assert (stats["scan_errors"], stats["coverage_errors"]) == (1, 1)

    # installing the package later is enough: a failed look-up is not remembered
    monkeypatch.setattr(importlib.metadata, "entry_points", installed)
    scan = await integrator.scan_risk_parameters()
    assert scan["status"] == "completed" and scan["scanned_params"]["max_order_size"]["usage_count"] == 1


# --- the user's test plan, in a fresh process ---------------------------------------------------------------

SNIPPET = """
import asyncio, json, sys
from core.integrations.mcp_risk_integration import get_mcp_risk_integrator
loaded_before = sorted(name for name in sys.modules if name == "mcp" or name.startswith("mcp."))
result = asyncio.run(get_mcp_risk_integrator().scan_risk_parameters())
print(json.dumps({"mcp_before_use": loaded_before, "status": result["status"], "total_scans": result["total_scans"],
                  "usage": result["scanned_params"].get("max_daily_loss", {}).get("usage_count"),
                  "violations": [v["parameter"] for v in result["violations"]]}))
"""


@pytest.mark.integration
def test_the_test_plan_snippet_scans_for_real_in_a_fresh_process(tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    (tree / "pkg").mkdir(parents=True)
    (tree / "pkg" / "orders.py").write_text("def loosen(settings):\n    settings.max_daily_loss = 1e9\n")
    env = {key: value for key, value in os.environ.items() if not key.startswith(("MCP_", "PYTEST_"))}
    env.update(STATE_DIR=str(tmp_path / "state"), MCP_SEARCH_ROOT=str(tree), MCP_MARKET_HOURS_ENABLED="false")
    # the working directory has no .env and no source tree: the installed package is what runs
    done = subprocess.run(
        [sys.executable, "-c", SNIPPET], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout.strip().splitlines()[-1])
    assert answer["mcp_before_use"] == []  # importing the integrator loads nothing of the sidecar
    assert answer["status"] == "completed" and answer["total_scans"] > 50
    assert answer["usage"] == 1 and answer["violations"] == ["max_daily_loss"]


def test_capabilities_module_names_no_sidecar_module() -> None:
    source = Path(capabilities.__file__).read_text()
    assert "import mcp" not in source and "from mcp" not in source
