"""Small servers that speak the real `mcp.server.Server` protocol, each with one scripted behaviour.

They let the supervisor be tested for what it promises (ready handshake, start-up timeout, crash
containment, restart limit, bounded stop) without the real servers' work.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Any


class FakeClock:
    """A monotonic clock that moves only when told; its `sleep` advances it instead of waiting."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds
        await asyncio.sleep(0)


class ReadyServer:
    """Becomes ready (at once, or once `gate` is set) and serves until cancelled."""

    def __init__(self, name: str = "ready", status: str = "healthy", *, gate: asyncio.Event | None = None) -> None:
        self.name = name
        self.status = status
        self.gate = gate
        self.runs = 0
        self.cancelled = 0

    async def run(self, ready: asyncio.Event) -> None:
        self.runs += 1
        if self.gate is not None:
            await self.gate.wait()
        ready.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            self.cancelled += 1
            raise

    def health(self) -> dict[str, Any]:
        return {"status": self.status, "runs": self.runs}

    def tools(self) -> Sequence[Callable[..., Any]]:
        return [self.health]


class CrashingServer(ReadyServer):
    """Crashes on each of its first `crashes` runs (after or before ready), then serves like ReadyServer.

    `before_crash`, when given, runs first on each crashing run (e.g. to move a fake clock forward).
    """

    def __init__(
        self,
        name: str = "crashing",
        crashes: int = 1,
        *,
        before_ready: bool = False,
        before_crash: Callable[[], None] | None = None,
    ) -> None:
        super().__init__(name)
        self.crashes = crashes
        self.before_ready = before_ready
        self.before_crash = before_crash

    async def run(self, ready: asyncio.Event) -> None:
        if self.runs < self.crashes:
            self.runs += 1
            if not self.before_ready:
                ready.set()
            await asyncio.sleep(0)
            if self.before_crash is not None:
                self.before_crash()
            raise RuntimeError(f"{self.name} crash #{self.runs}")
        await super().run(ready)


class ReturningServer(ReadyServer):
    """Becomes ready, then returns as if its work were done (a protocol violation the supervisor catches)."""

    async def run(self, ready: asyncio.Event) -> None:
        self.runs += 1
        ready.set()
        await asyncio.sleep(0)


class NeverReadyServer(ReadyServer):
    """Runs forever without ever setting its ready event."""

    async def run(self, ready: asyncio.Event) -> None:
        self.runs += 1
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            self.cancelled += 1
            raise


class StubbornServer(ReadyServer):
    """Becomes ready; when cancelled it keeps going until `release` is set (cleanup that takes a while)."""

    def __init__(self, name: str = "stubborn") -> None:
        super().__init__(name)
        self.release = asyncio.Event()
        self.finished = False

    async def run(self, ready: asyncio.Event) -> None:
        self.runs += 1
        ready.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            self.cancelled += 1
            # a deliberate cleanup that outlives the cancellation, then the cancellation is honoured
            await self._wait_release()
            self.finished = True
            raise

    async def _wait_release(self) -> None:
        while not self.release.is_set():
            try:
                await self.release.wait()
            except asyncio.CancelledError:
                self.cancelled += 1


class BrokenHealthServer(ReadyServer):
    """Serves fine but its health() raises."""

    def health(self) -> dict[str, Any]:
        raise ValueError("health source unavailable")


class AlertRecorder:
    """Captures the supervisor's alerts: (alert type, body, severity, key)."""

    def __init__(self) -> None:
        self.alerts: list[tuple[Any, str, str | None, str | None]] = []

    async def __call__(
        self, alert_type: Any, body: str, severity: str | None = None, *, key: str | None = None
    ) -> bool:
        self.alerts.append((alert_type, body, severity, key))
        return True

    def of_type(self, alert_type: Any) -> list[tuple[Any, str, str | None, str | None]]:
        return [alert for alert in self.alerts if alert[0] is alert_type]
