"""The supervisor's bookkeeping and its one decision: server states, per-server records, the restart policy.

`restart_decision` is pure (failure times and `now` in, decision out), so the 3-restarts-in-300-s rule is
proven by table and property tests without any clock.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from mcp.health import HealthStatus
from mcp.server import Server


class ServerState(StrEnum):
    STARTING = "starting"
    RUNNING = "running"
    RESTARTING = "restarting"
    FAILED = "failed"
    STOPPED = "stopped"


# The health of a server that is not running comes from its state, not from its own health().
STATE_HEALTH = {
    ServerState.STARTING: HealthStatus.STARTING,
    ServerState.RESTARTING: HealthStatus.DEGRADED,
    ServerState.FAILED: HealthStatus.CRITICAL,
    ServerState.STOPPED: HealthStatus.DEGRADED,
}


@dataclass(frozen=True, slots=True)
class RestartPolicy:
    """At most `max_attempts` restarts within `window_seconds`, waiting base × factor^(n-1) (capped)."""

    max_attempts: int = 3
    window_seconds: float = 300.0
    base_delay_seconds: float = 1.0
    factor: float = 2.0
    max_delay_seconds: float = 60.0


DEFAULT_POLICY = RestartPolicy()


def restart_decision(
    failures: Sequence[float], now: float, policy: RestartPolicy = DEFAULT_POLICY
) -> tuple[bool, float]:
    """Restart after the latest failure? `failures` are the failure times (latest included), `now` the time.

    Returns (restart, delay in seconds). The n-th failure within the window is followed by restart
    attempt n after base × factor^(n-1) seconds; a failure beyond `max_attempts` in the window means stop.
    """
    recent = sum(1 for moment in failures if moment > now - policy.window_seconds)
    if recent == 0:
        return True, 0.0
    if recent > policy.max_attempts:
        return False, 0.0
    delay = policy.base_delay_seconds * policy.factor ** (recent - 1)
    return True, min(delay, policy.max_delay_seconds)


@dataclass(eq=False)
class ServerRecord:
    """The supervisor's bookkeeping for one server (`server` is None when it could not even be built)."""

    name: str
    server: Server | None
    state: ServerState = ServerState.STARTING
    restarts: int = 0
    failures: list[float] = field(default_factory=list)
    last_error: str | None = None
    last_error_at: str | None = None
    running_since: float | None = None
    task: asyncio.Task[None] | None = None
    supervise_task: asyncio.Task[None] | None = None
    abandoned: list[asyncio.Task[None]] = field(default_factory=list)
    first_outcome: asyncio.Event = field(default_factory=asyncio.Event)
