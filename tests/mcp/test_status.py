"""`status` reads the sidecar's status file and says healthy only when it is running, fresh and whole."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest

from mcp.status import assess_status, format_status, status_command

NOW = 1_800_000_000.0


def payload(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "schema_version": 1,
        "pid": 4242,
        "sidecar_state": "running",
        "updated_at": "2027-01-15T08:00:00+00:00",
        "updated_at_epoch": NOW - 30,
        "health_interval_seconds": 60,
        "overall": "healthy",
        "uptime_seconds": 120.0,
        "restarts_total": 0,
        "servers": {
            "monitoring": {
                "state": "running",
                "status": "healthy",
                "restarts": 0,
                "last_error": None,
                "health": {
                    "components": {
                        "sidecar": {"status": "healthy", "message": "ok", "cpu_percent": 0.3, "memory_mb": 48.1}
                    }
                },
            }
        },
    }
    base.update(overrides)
    return base


@pytest.mark.parametrize(
    ("overrides", "pid_alive", "expected"),
    [
        ({}, True, []),
        ({}, None, []),
        ({"schema_version": 7}, True, ["status file schema_version 7 is not supported (expected 1)"]),
        ({"sidecar_state": "stopped"}, False, ["sidecar (pid 4242) stopped at 2027-01-15T08:00:00+00:00"]),
        ({}, False, ["sidecar process 4242 is gone (crashed or killed); last update 2027-01-15T08:00:00+00:00"]),
        ({"updated_at_epoch": NOW - 191}, True, ["status is stale: last update 191 s ago (expected every 60 s)"]),
        ({"updated_at_epoch": NOW - 190}, True, []),
        ({"health_interval_seconds": None}, True, ["status file lacks health_interval_seconds / updated_at_epoch"]),
        (
            {"servers": {"testing": {"state": "failed", "last_error": "RuntimeError: boom"}}},
            True,
            ["server testing failed: RuntimeError: boom"],
        ),
    ],
)
def test_assess_status(overrides: dict[str, Any], pid_alive: bool | None, expected: list[str]) -> None:
    assert assess_status(payload(**overrides), NOW, pid_alive) == expected


def test_format_status_shows_servers_and_component_figures() -> None:
    text = "\n".join(format_status(payload(), []))
    assert text.startswith("sidecar: HEALTHY\nverdict: [PASS] healthy\npid=4242 state=running overall=healthy")
    assert "  monitoring: running healthy restarts=0" in text
    assert "    sidecar: healthy - ok cpu_percent=0.3 memory_mb=48.1" in text


def run_status(state_dir: Path, *, as_json: bool = False, pid_alive: bool = True) -> tuple[int, str]:
    out = io.StringIO()
    code = status_command(state_dir, out, as_json=as_json, now=lambda: NOW, pid_exists=lambda _pid: pid_alive)
    return code, out.getvalue()


def test_status_command_healthy(tmp_path: Path) -> None:
    (tmp_path / "sidecar_status.json").write_text(json.dumps(payload()))
    code, text = run_status(tmp_path)
    assert code == 0 and text.startswith("sidecar: HEALTHY")
    code, text = run_status(tmp_path, as_json=True)
    document = json.loads(text)
    assert code == 0 and document["healthy"] is True and document["status"]["pid"] == 4242


def test_status_command_without_a_status_file(tmp_path: Path) -> None:
    code, text = run_status(tmp_path)
    assert code == 1
    assert (
        text
        == f"sidecar: NOT HEALTHY\nproblem: sidecar not running: no status file at {tmp_path}/sidecar_status.json\n"
    )


@pytest.mark.parametrize("content", ["{broken", "[1, 2]", ""])
def test_status_command_with_a_corrupt_status_file(tmp_path: Path, content: str) -> None:
    (tmp_path / "sidecar_status.json").write_text(content)
    code, text = run_status(tmp_path, as_json=True)
    document = json.loads(text)
    assert code == 1 and document["healthy"] is False
    assert document["problems"][0].startswith("status file unusable:")


def test_status_command_when_the_sidecar_died(tmp_path: Path) -> None:
    (tmp_path / "sidecar_status.json").write_text(json.dumps(payload()))
    code, text = run_status(tmp_path, pid_alive=False)
    assert code == 1 and "sidecar process 4242 is gone" in text
