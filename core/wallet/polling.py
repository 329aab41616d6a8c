"""The decisions behind polling an HTTP API politely: backoff, Retry-After, request pacing, a bounded memory.

Pure functions and small stateful helpers with injected time, so each can be tested without waiting.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

# 2**62 seconds is already "forever"; capping the exponent keeps the float arithmetic from overflowing.
_MAX_EXPONENT = 62


def backoff_delay(failures: int, *, base: float, cap: float, jitter: float) -> float:
    """Seconds to wait after `failures` consecutive failures: exponential, capped, "equal jitter".

    The ceiling doubles per failure from `base` up to `cap`; the wait is half the ceiling plus `jitter`
    (a number in [0, 1), from the caller's rng) times the other half, so many clients failing together
    do not retry in lockstep, and no wait is shorter than half the ceiling.
    """
    if failures < 1:
        return 0.0
    if not 0.0 <= jitter < 1.0:
        raise ValueError(f"jitter: expected a number in [0, 1), received {jitter!r}")
    ceiling = min(cap, base * 2.0 ** min(failures - 1, _MAX_EXPONENT))
    return ceiling / 2 + jitter * ceiling / 2


def parse_retry_after(value: str | None, now: datetime) -> float | None:
    """Seconds to wait from a Retry-After header (delay-seconds or an HTTP date); None when absent or invalid."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        try:
            when = parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:  # "-0000": RFC 9110 dates are GMT anyway
            when = when.replace(tzinfo=UTC)
        return max(0.0, (when - now).total_seconds())
    if not math.isfinite(seconds) or seconds < 0:
        return None
    return seconds


class RequestPacer:
    """Spaces requests to one host at least 1/rate seconds apart (a client-side rate limit)."""

    def __init__(
        self,
        max_per_second: float,
        *,
        monotonic: Callable[[], float],
        sleep: Callable[[float], Awaitable[object]],
    ) -> None:
        if not max_per_second > 0:
            raise ValueError(f"max_per_second: expected a rate > 0, received {max_per_second!r}")
        self.interval = 1.0 / max_per_second
        self._monotonic = monotonic
        self._sleep = sleep
        self._next_at: float | None = None

    async def wait(self) -> None:
        """Return when the next request may go out (sleeping if the last one was too recent)."""
        now = self._monotonic()
        if self._next_at is not None and self._next_at > now:
            await self._sleep(self._next_at - now)
            now = max(self._monotonic(), self._next_at)
        self._next_at = now + self.interval


class BoundedKeySet:
    """A set that remembers at most `capacity` keys, forgetting the oldest first."""

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError(f"capacity: expected at least 1 key, received {capacity}")
        self.capacity = capacity
        self._keys: OrderedDict[Hashable, None] = OrderedDict()

    def add(self, key: Hashable) -> bool:
        """Remember `key`; True if it was new, False if already known."""
        if key in self._keys:
            return False
        self._keys[key] = None
        if len(self._keys) > self.capacity:
            self._keys.popitem(last=False)
        return True

    def __contains__(self, key: object) -> bool:
        return key in self._keys

    def __len__(self) -> int:
        return len(self._keys)
