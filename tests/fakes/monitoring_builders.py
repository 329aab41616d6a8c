"""Builders for the monitoring tests: a bot's risk snapshot, the state files on disk, a clock that moves when told."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from typing import Any

from config.settings import Settings

NOW = 1_800_000_000.0


class Clock:
    """Wall-clock time (epoch seconds) that moves only when told; `sleep` advances it."""

    def __init__(self, start: float = NOW) -> None:
        self.now = start
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds
        await asyncio.sleep(0)  # a real sleep yields to the loop; so does this one


def settings(state_dir: Path, **overrides: Any) -> Settings:
    """Settings for a test: no .env, state under `state_dir`, a 10 s monitoring interval unless told."""
    overrides.setdefault("monitor_interval_seconds", 10.0)
    return Settings(_env_file=None, state_dir=state_dir, **overrides)  # type: ignore[call-arg]


def breaker_record(
    state: str = "ACTIVE", daily_loss: float = 0.0, limit: float = 100.0, **extra: Any
) -> dict[str, Any]:
    """The breaker's get_state() as the snapshot carries it."""
    record: dict[str, Any] = {
        "schema_version": 1,
        "state": state,
        "trip_kind": None,
        "trip_reason": None,
        "daily_loss": daily_loss,
        "daily_loss_limit": limit,
        "day_start_equity": 1000.0,
    }
    record.update(extra)
    return record


def bot_snapshot(now: float = NOW, **overrides: Any) -> dict[str, Any]:
    """A valid risk snapshot written by this process one second before `now`."""
    payload: dict[str, Any] = {
        "schema_version": 1,
        "pid": os.getpid(),
        "updated_at": "2027-01-15T08:00:00+00:00",
        "updated_at_epoch": now - 1.0,
        "trading_mode": "paper",
        "trading_state": "ACTIVE",
        "wallet": "***abcdef",
        "breaker": breaker_record(),
        "risk_parameters": {"max_daily_loss": 100.0, "trading_latency_budget_ms": 100.0},
        "exposure": {"total": 0.0, "by_market": {}},
        "positions": [],
        "latency_ms": {"p50": 4.0, "p95": 9.0, "p99": 12.0, "max": 20.0, "count": 50},
        "errors": {"rate_limit": 0, "timeout": 0, "rejected": 0, "network": 0, "total": 0},
        "trades": {"executed": 40, "denied": 3, "failed": 0},
        "rss_mb": 120.0,
    }
    payload.update(overrides)
    return payload


def write_state(
    folder: Path, snapshot: dict[str, Any] | str | None = None, breaker: dict[str, Any] | str | None = None
) -> None:
    """Write the snapshot and the breaker file as the bot would (a str is written verbatim: corrupt files)."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, content in (("risk_state.json", snapshot), ("circuit_breaker.json", breaker)):
        if content is not None:
            (folder / name).write_text(content if isinstance(content, str) else json.dumps(content))


def files_state(folder: Path) -> dict[str, tuple[bytes, int]]:
    """Content and mtime of every file in `folder` (to prove a reader changed nothing)."""
    return {path.name: (path.read_bytes(), path.stat().st_mtime_ns) for path in folder.iterdir()}
