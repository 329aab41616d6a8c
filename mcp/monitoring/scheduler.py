"""Runs each check on its own interval and caches what it found (Glances-style: a value serves until it expires).

A check that raises or overruns its timeout is contained: its components are reported critical with the
error, and every other check runs on as usual.

A check may declare a `warmup` (seconds, its minimum duration): until it has been running that long, its
components are shown as `starting` whatever its first readings say (a start-up reading is not a verdict).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping, Sequence

from mcp.monitoring.base import Check, ComponentResult, Reading
from mcp.monitoring.levels import Level

logger = logging.getLogger(__name__)

DEFAULT_CHECK_TIMEOUT_SECONDS = 10.0


class Scheduler:
    """The checks, when each is next due, and the latest result of every component."""

    def __init__(
        self,
        checks: Sequence[Check],
        *,
        timeout: float = DEFAULT_CHECK_TIMEOUT_SECONDS,
        timer: Callable[[], float] = time.perf_counter,
    ) -> None:
        names = [check.name for check in checks]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ValueError(f"check names must be unique, received {names} (duplicates: {duplicates})")
        for check in checks:
            if not check.interval > 0:
                raise ValueError(f"check {check.name!r} needs an interval > 0 seconds, received {check.interval!r}")
        self.checks: dict[str, Check] = {check.name: check for check in checks}
        self.timeout = timeout
        self._timer = timer
        self._next_due: dict[str, float | None] = dict.fromkeys(self.checks)
        self._results: dict[str, dict[str, ComponentResult]] = {name: {} for name in self.checks}
        self.errors: dict[str, str] = {}
        self.runs: dict[str, int] = dict.fromkeys(self.checks, 0)
        self._first_run: dict[str, float] = {}

    def due(self, now: float) -> list[Check]:
        """The checks whose cached result has expired at `now` (every check, the first time)."""
        return [check for name, check in self.checks.items() if (due := self._next_due[name]) is None or now >= due]

    def seconds_until_due(self, now: float) -> float:
        """How long until the next check is due (0 when one is due already)."""
        pending = [due for due in self._next_due.values()]
        if not pending or any(due is None for due in pending):
            return 0.0
        return max(0.0, min(due for due in pending if due is not None) - now)

    def next_due(self) -> dict[str, float | None]:
        """When each check is next due (None: at once)."""
        return dict(self._next_due)

    async def run_due(self, now: float) -> list[ComponentResult]:
        """Run every due check concurrently; the fresh results (failures included, as critical results)."""
        batches = await asyncio.gather(*(self._run_one(check, now) for check in self.due(now)))
        return [result for batch in batches for result in batch]

    async def _run_one(self, check: Check, now: float) -> list[ComponentResult]:
        started = self._timer()
        error: str | None = None
        readings: Mapping[str, Reading] = {}
        try:
            async with asyncio.timeout(self.timeout) as deadline:
                readings = await check.run(now)
            _validate(check, readings)
        except TimeoutError as e:
            error = f"timed out after {self.timeout:g} s" if deadline.expired() else f"TimeoutError: {e}"
            logger.error("health check %r %s", check.name, error)
        except Exception as e:
            # contained: logged with its traceback, reported critical; the other checks are not affected
            error = f"{type(e).__name__}: {e}"
            logger.exception("health check %r failed", check.name)
        duration = self._timer() - started
        self._next_due[check.name] = now + check.interval
        self.runs[check.name] += 1
        previous = self._results[check.name]
        if error is not None:
            self.errors[check.name] = error
            components = list(previous) or [check.name]
            readings = {name: Reading(Level.CRITICAL, f"health check failed: {error}") for name in components}
        else:
            self.errors.pop(check.name, None)
        readings = self._warming_up(check, readings, now)
        fresh = {}
        for component, reading in readings.items():
            before = previous.get(component)
            since = before.since if before is not None and before.level is reading.level else now
            fresh[component] = ComponentResult(
                component,
                check.name,
                reading.level,
                reading.message,
                dict(reading.figures),
                now,
                since,
                duration,
                error,
            )
        self._results[check.name] = fresh
        return list(fresh.values())

    def _warming_up(self, check: Check, readings: Mapping[str, Reading], now: float) -> Mapping[str, Reading]:
        """`starting` readings while the check is younger than its warmup; the readings themselves after."""
        first = self._first_run.setdefault(check.name, now)
        warmup = float(getattr(check, "warmup", 0.0) or 0.0)
        elapsed = now - first
        if elapsed >= warmup:
            return readings
        return {
            name: Reading(
                Level.STARTING,
                f"starting: {elapsed:.0f} of {warmup:g} s of readings before a verdict "
                f"(latest reading {reading.level.value}: {reading.message})",
                reading.figures,
            )
            for name, reading in readings.items()
        }

    def results(self) -> dict[str, ComponentResult]:
        """The latest result of every component, by component name."""
        return {component: result for batch in self._results.values() for component, result in batch.items()}


def _validate(check: Check, readings: object) -> None:
    if not isinstance(readings, Mapping) or not all(
        isinstance(name, str) and isinstance(reading, Reading) for name, reading in readings.items()
    ):
        raise TypeError(f"check {check.name!r} must return a mapping of component name to Reading: {readings!r:.80}")
