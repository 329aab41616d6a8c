"""The scheduler: each check on its own interval, results cached, failures and overruns contained."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

import pytest

from mcp.monitoring.base import Reading
from mcp.monitoring.levels import Level
from mcp.monitoring.scheduler import Scheduler

H, D, C = Level.HEALTHY, Level.DEGRADED, Level.CRITICAL


class ScriptedCheck:
    """A check whose readings (or exception) the test sets; counts its runs."""

    def __init__(self, name: str, interval: float, level: Level = H, components: tuple[str, ...] = ()) -> None:
        self.name = name
        self.interval = interval
        self.level = level
        self.components = components or (name,)
        self.error: BaseException | None = None
        self.hang = False
        self.runs: list[float] = []

    async def run(self, now: float) -> Mapping[str, Reading]:
        self.runs.append(now)
        if self.hang:
            await asyncio.Event().wait()
        if self.error is not None:
            raise self.error
        return {
            name: Reading(self.level, f"{name} is {self.level.value}", {"n": len(self.runs)})
            for name in self.components
        }


def test_names_must_be_unique_and_intervals_positive() -> None:
    with pytest.raises(ValueError, match=r"check names must be unique.*duplicates: \['a'\]"):
        Scheduler([ScriptedCheck("a", 1), ScriptedCheck("a", 2)])
    with pytest.raises(ValueError, match="check 'b' needs an interval > 0 seconds, received 0"):
        Scheduler([ScriptedCheck("b", 0)])


async def test_each_check_runs_on_its_own_interval() -> None:
    fast, slow = ScriptedCheck("fast", 10), ScriptedCheck("slow", 30)
    scheduler = Scheduler([fast, slow])
    assert scheduler.seconds_until_due(0) == 0.0
    for now in range(0, 61, 5):
        await scheduler.run_due(float(now))
    assert fast.runs == [0, 10, 20, 30, 40, 50, 60]
    assert slow.runs == [0, 30, 60]
    assert scheduler.seconds_until_due(61) == 9.0
    assert scheduler.next_due() == {"fast": 70.0, "slow": 90.0}


async def test_results_are_cached_between_runs() -> None:
    check = ScriptedCheck("c", 10)
    scheduler = Scheduler([check])
    await scheduler.run_due(0)
    assert await scheduler.run_due(5) == []  # not due: nothing runs
    assert scheduler.results()["c"].figures == {"n": 1}


async def test_since_holds_while_the_level_holds() -> None:
    check = ScriptedCheck("c", 10)
    scheduler = Scheduler([check])
    await scheduler.run_due(0)
    await scheduler.run_due(10)
    assert (scheduler.results()["c"].checked_at, scheduler.results()["c"].since) == (10, 0)
    check.level = D
    await scheduler.run_due(20)
    assert scheduler.results()["c"].since == 20


async def test_a_failing_check_is_critical_with_its_error_and_the_others_run() -> None:
    good, bad = ScriptedCheck("good", 10), ScriptedCheck("bad", 10, components=("x", "y"))
    scheduler = Scheduler([good, bad])
    await scheduler.run_due(0)
    bad.error = OSError(5, "Input/output error")
    results = {r.component: r for r in await scheduler.run_due(10)}
    assert results["good"].level is H
    assert {results["x"].level, results["y"].level} == {C}  # the components it covered last time
    assert results["x"].message == "health check failed: OSError: [Errno 5] Input/output error"
    assert results["x"].error == "OSError: [Errno 5] Input/output error"
    assert scheduler.errors == {"bad": "OSError: [Errno 5] Input/output error"}
    bad.error = None
    await scheduler.run_due(20)
    assert scheduler.errors == {} and scheduler.results()["x"].level is H


async def test_a_check_that_fails_on_its_first_run_is_reported_under_its_own_name() -> None:
    check = ScriptedCheck("first", 10)
    check.error = RuntimeError("no such file")
    results = await Scheduler([check]).run_due(0)
    assert [(r.component, r.level) for r in results] == [("first", C)]


async def test_a_check_that_overruns_its_timeout_is_critical() -> None:
    stuck, fine = ScriptedCheck("stuck", 10), ScriptedCheck("fine", 10)
    stuck.hang = True
    scheduler = Scheduler([stuck, fine], timeout=0.05)
    results = {r.component: r for r in await scheduler.run_due(0)}
    assert results["stuck"].message == "health check failed: timed out after 0.05 s"
    assert results["fine"].level is H


async def test_a_timeout_raised_by_the_check_itself_is_not_called_an_overrun() -> None:
    check = ScriptedCheck("net", 10)
    check.error = TimeoutError("socket read")
    results = await Scheduler([check], timeout=5).run_due(0)
    assert results[0].message == "health check failed: TimeoutError: socket read"


async def test_a_check_returning_something_else_is_a_failure() -> None:
    class Odd(ScriptedCheck):
        async def run(self, now: float) -> Mapping[str, Reading]:
            return {"odd": "healthy"}  # type: ignore[dict-item]

    results = await Scheduler([Odd("odd", 10)]).run_due(0)
    assert results[0].level is C and "must return a mapping of component name to Reading" in results[0].message


async def test_cancellation_is_never_swallowed() -> None:
    check = ScriptedCheck("c", 10)
    check.error = asyncio.CancelledError()
    with pytest.raises(asyncio.CancelledError):
        await Scheduler([check]).run_due(0)


async def test_durations_come_from_the_injected_timer() -> None:
    ticks = iter([100.0, 100.25])
    results = await Scheduler([ScriptedCheck("c", 10)], timer=lambda: next(ticks)).run_due(0)
    assert results[0].duration_seconds == 0.25
