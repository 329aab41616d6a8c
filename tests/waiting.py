"""Wait for a thing to happen, not for a time to pass (issue 12, item 8b).

A test that sleeps a fixed time to let something happen is slow when the machine is idle and flaky when it is
busy. When the product gives no event to await (another process, a file, a server's counter), these helpers
poll the condition itself and return as soon as it holds; the bound is generous because on a loaded 2-core CI
machine slow is not wrong, and running out of it fails with what was awaited.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")


async def eventually(
    condition: Callable[[], T | Awaitable[T]], what: str, within: float = 15.0, every: float = 0.01
) -> T:
    """Poll `condition` (plain or async) on the loop until it returns something truthy; return that."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        value = condition()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value  # type: ignore[return-value]
        if loop.time() > deadline:
            raise AssertionError(f"{what} did not happen within {within:g} s (last seen: {value!r})")
        await asyncio.sleep(every)


def wait_until(condition: Callable[[], T], what: str, within: float = 15.0, every: float = 0.05) -> T:
    """Poll `condition` from synchronous code until it returns something truthy; return that."""
    deadline = time.monotonic() + within
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not happen within {within:g} s (last seen: {value!r})")
        time.sleep(every)
