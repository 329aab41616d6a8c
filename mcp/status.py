"""`python -m mcp.main_mcp status`: read the running sidecar's status file and say whether it is healthy.

The supervisor rewrites `STATE_DIR/sidecar_status.json` on every health tick and once more when it stops,
so a missing file, a stopped sidecar, a dead pid, a file older than three ticks or a failed server all
mean "not healthy" (exit 1). So does a failing health verdict: the monitored components in the file are
judged by `mcp.health.verdict`, the function /health, validate_health.sh and the dashboard use too.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TextIO

import psutil

from mcp.health import Verdict, verdict
from mcp.supervisor import STATUS_SCHEMA_VERSION
from utils.atomic import StateFileError, read_json_object

STATUS_FILE_NAME = "sidecar_status.json"
EXIT_HEALTHY, EXIT_UNHEALTHY = 0, 1
# a status file counts as stale after this many missed health ticks (plus a little slack)
STALE_AFTER_TICKS = 3
STALE_SLACK_SECONDS = 10.0


def status_verdict(payload: Mapping[str, Any], excluded: frozenset[str] = frozenset()) -> Verdict:
    """The health verdict of the components in a status file: the monitoring server's components when it
    runs, else the servers' own statuses. `excluded` as in `mcp.health.verdict` (only a deploy passes it)."""
    servers = payload.get("servers") if isinstance(payload.get("servers"), Mapping) else {}
    monitoring = servers.get("monitoring") if isinstance(servers.get("monitoring"), Mapping) else {}
    health = monitoring.get("health") if isinstance(monitoring.get("health"), Mapping) else {}
    components = health.get("components")
    if isinstance(components, Mapping) and components:
        return verdict(components, excluded)
    return verdict({name: s for name, s in servers.items() if isinstance(s, Mapping) and "status" in s}, excluded)


def assess_status(payload: Mapping[str, Any], now: float, pid_alive: bool | None) -> list[str]:
    """The problems that make the sidecar described by `payload` not healthy at `now` (empty: healthy)."""
    problems = []
    version = payload.get("schema_version")
    if version != STATUS_SCHEMA_VERSION:
        return [f"status file schema_version {version!r} is not supported (expected {STATUS_SCHEMA_VERSION})"]
    pid = payload.get("pid")
    if payload.get("sidecar_state") == "stopped":
        problems.append(f"sidecar (pid {pid}) stopped at {payload.get('updated_at')}")
    elif pid_alive is False:
        problems.append(f"sidecar process {pid} is gone (crashed or killed); last update {payload.get('updated_at')}")
    else:
        interval = payload.get("health_interval_seconds")
        updated = payload.get("updated_at_epoch")
        if isinstance(interval, int | float) and isinstance(updated, int | float):
            age = now - updated
            if age > STALE_AFTER_TICKS * interval + STALE_SLACK_SECONDS:
                problems.append(f"status is stale: last update {age:.0f} s ago (expected every {interval:g} s)")
        else:
            problems.append("status file lacks health_interval_seconds / updated_at_epoch")
    servers = payload.get("servers") if isinstance(payload.get("servers"), Mapping) else {}
    for name, server in servers.items():
        if isinstance(server, Mapping) and server.get("state") == "failed":
            problems.append(f"server {name} failed: {server.get('last_error')}")
    judged = status_verdict(payload)
    if not judged.passed:
        problems.append(f"health verdict {judged.status.value}: " + "; ".join(judged.problems))
    return problems


def format_status(payload: Mapping[str, Any], problems: list[str]) -> list[str]:
    """Lines for a terminal: the verdict, the sidecar, each server, and the monitored components."""
    judged = status_verdict(payload)
    why = f" ({'; '.join(judged.problems)})" if judged.problems else ""
    lines = [
        "sidecar: " + ("HEALTHY" if not problems else "NOT HEALTHY"),
        f"verdict: [{judged.label}] {judged.status.value}{why}",
        f"pid={payload.get('pid')} state={payload.get('sidecar_state')} overall={payload.get('overall')} "
        f"uptime_seconds={payload.get('uptime_seconds')} restarts={payload.get('restarts_total')} "
        f"updated_at={payload.get('updated_at')}",
    ]
    lines += [f"problem: {problem}" for problem in problems]
    servers = payload.get("servers") if isinstance(payload.get("servers"), Mapping) else {}
    for name, server in servers.items():
        if not isinstance(server, Mapping):
            continue
        line = f"  {name}: {server.get('state')} {server.get('status')} restarts={server.get('restarts')}"
        if server.get("last_error"):
            line += f" last_error={server['last_error']}"
        lines.append(line)
        health = server.get("health") if isinstance(server.get("health"), Mapping) else {}
        components = health.get("components") if isinstance(health.get("components"), Mapping) else {}
        for component, details in components.items():
            if isinstance(details, Mapping):
                figures = " ".join(f"{k}={v}" for k, v in details.items() if k not in {"status", "message"})
                lines.append(f"    {component}: {details.get('status')} - {details.get('message')} {figures}".rstrip())
    return lines


def status_command(
    state_dir: Path,
    stream: TextIO,
    *,
    as_json: bool = False,
    now: Callable[[], float],
    pid_exists: Callable[[int], bool] = psutil.pid_exists,
) -> int:
    """Print the sidecar's health from its status file; 0 when healthy, 1 otherwise."""
    path = Path(state_dir) / STATUS_FILE_NAME
    try:
        payload = read_json_object(path)
    except StateFileError as e:
        payload, problems = None, [f"status file unusable: {e}"]
    else:
        problems = [] if payload is not None else [f"sidecar not running: no status file at {path}"]
    if payload is not None:
        pid = payload.get("pid")
        pid_alive = pid_exists(pid) if isinstance(pid, int) and pid > 0 else None
        problems = assess_status(payload, now(), pid_alive)
    if as_json:
        stream.write(json.dumps({"healthy": not problems, "problems": problems, "status": payload}, indent=2) + "\n")
    elif payload is None:
        stream.write("sidecar: NOT HEALTHY\n" + "".join(f"problem: {p}\n" for p in problems))
    else:
        stream.write("\n".join(format_status(payload, problems)) + "\n")
    return EXIT_HEALTHY if not problems else EXIT_UNHEALTHY
